//! App-only (daemon) callers end to end: a client-credentials token for the gateway (`roles`, no
//! `scp`) is refused unless `APP_POLICY` allows the app; an allowed app's change reaches Graph
//! with the gateway's own application token (one token request for many calls, shared through
//! Redis); a missing role, `/me`, and the app's own rate are refused with their codes.

use std::sync::Arc;

use photo_gateway_emulators::directory::{DEMO_CLIENT_ID, GATEWAY_CLIENT_ID, GROUP_ID, TENANT_ID};
use photo_gateway_emulators::roles::{HR_SYNC_CLIENT_ID, PHOTO_READER_CLIENT_ID};
use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators, FaultRule};

use crate::support::{
    GatewayProcess, ME, MEGAN, RedisServer, TestApp, assert_no_clear_jwt, captured_logs,
    group_photo, jpeg, sha256_hex, spawn_app, spawn_app_with, user_photo,
};

/// HR sync may write users' and groups' photos; the reader may only read users'.
fn policy() -> String {
    format!(
        "{HR_SYNC_CLIENT_ID}/Photos.ReadWrite.All=users:write,groups:write,users:read;\
         {PHOTO_READER_CLIENT_ID}/Photos.Read.All=users:read"
    )
}

async fn spawn_with_policy(extra: &[(&str, &str)]) -> TestApp {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_APP_POLICY".into(), policy()));
        v.extend(extra);
    })
    .await
}

fn daemon(app: &TestApp, client_id: &str) -> String {
    app.token_with(CallerTokenSpec::daemon(client_id))
}

fn client_credentials_requests(emus: &Emulators) -> u64 {
    emus.entra
        .counters()
        .by_grant_type
        .get("client_credentials")
        .copied()
        .unwrap_or(0)
}

/// Asserts a 403 with `code` and an RFC 6750 `insufficient_scope` challenge.
async fn assert_refused(resp: reqwest::Response, code: &str) -> serde_json::Value {
    let (status, headers, body) = TestApp::problem(resp).await;
    assert_eq!((status, body["code"].as_str()), (403, Some(code)), "{body}");
    let challenge = headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{code} carries WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer realm=\"photo-gateway\"")
            && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    body
}

#[tokio::test]
async fn app_only_is_refused_by_default() {
    let app = spawn_app().await;
    let resp = app
        .put_raw(
            &user_photo(MEGAN),
            &daemon(&app, HR_SYNC_CLIENT_ID),
            jpeg(600, 1),
        )
        .await;
    let body = assert_refused(resp, "user-token-required").await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("PHOTO_GATEWAY_APP_POLICY")),
        "the detail says how to allow it: {body}"
    );
    app.assert_nothing_upstream("app-only refused by default");
}

#[tokio::test]
async fn an_allowed_daemon_writes_a_users_and_a_groups_photo_with_an_application_token() {
    let app = spawn_with_policy(&[]).await;
    let token = daemon(&app, HR_SYNC_CLIENT_ID);
    let user_jpeg = jpeg(3000, 11);
    let group_jpeg = jpeg(3100, 12);
    for (path, photo) in [
        (user_photo(MEGAN), &user_jpeg),
        (group_photo(GROUP_ID), &group_jpeg),
    ] {
        let resp = app.put_raw(&path, &token, photo.clone()).await;
        assert_eq!(resp.status(), 200, "{path}: {}", resp.text().await.unwrap());
    }

    // Graph received both with the gateway's own application token: roles, no scp, no user.
    let seen = app.emus.graph.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for r in &seen {
        assert_eq!(r.status, 200);
        assert_eq!(r.scp, None, "an application token has no scp");
        assert!(
            r.roles
                .as_deref()
                .is_some_and(|roles| roles.contains("ProfilePhoto.ReadWrite.All")),
            "{r:?}"
        );
        assert_eq!(r.app_id.as_deref(), Some(GATEWAY_CLIENT_ID));
    }
    assert_eq!(seen[0].bytes, user_jpeg.len());
    assert_eq!(seen[1].bytes, group_jpeg.len());
    let stored = app
        .emus
        .graph
        .photo(&format!("/groups/{GROUP_ID}"))
        .expect("the group's photo is stored");
    assert_eq!(sha256_hex(&stored.bytes), sha256_hex(&group_jpeg));

    // The gateway asked for its own token (client credentials, `.default`) once, and never
    // exchanged anything On-Behalf-Of.
    let c = app.emus.entra.counters();
    assert_eq!(c.by_grant_type.get("client_credentials"), Some(&1));
    assert_eq!(c.by_grant_type.get("on_behalf_of"), None);
    // Graph's `.default` (the emulator stands in for https://graph.microsoft.com).
    let scopes: Vec<&String> = c.by_scope.keys().collect();
    assert!(
        scopes.len() == 1 && scopes[0].ends_with("/.default"),
        "{c:?}"
    );

    // The audit lines mark the change as app-only and name the app, with no user.
    let sha = sha256_hex(&group_jpeg);
    let line = captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["target"] == "photo_gateway::audit"
                && l["fields"]["sha256"] == sha.as_str()
                && l["fields"]["outcome"] == "success"
        })
        .expect("an audit line for the group's change");
    let f = &line["fields"];
    assert_eq!(f["app_only"], true);
    assert_eq!(f["client_app"], HR_SYNC_CLIENT_ID);
    assert_eq!(f["tenant_id"], TENANT_ID);
    assert!(f.get("user_oid").is_none_or(|v| v.is_null()), "{f}");
}

#[tokio::test]
async fn a_missing_role_is_insufficient_role_and_me_needs_a_user() {
    let app = spawn_with_policy(&[]).await;
    // The reader holds Photos.Read.All: reads only.
    let reader = daemon(&app, PHOTO_READER_CLIENT_ID);
    let body = assert_refused(
        app.put_raw(&user_photo(MEGAN), &reader, jpeg(600, 2)).await,
        "insufficient-role",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("PHOTO_GATEWAY_APP_POLICY")),
        "no role of the reader grants writes: the detail says where that is decided: {body}"
    );
    // An app named in the policy whose token lacks the role (not assigned to it).
    let no_role = app.token_with(
        CallerTokenSpec::for_user(HR_SYNC_CLIENT_ID)
            .app(HR_SYNC_CLIENT_ID)
            .app_only(&["Something.Else"]),
    );
    let body = assert_refused(
        app.put_raw(&group_photo(GROUP_ID), &no_role, jpeg(600, 3))
            .await,
        "insufficient-role",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Photos.ReadWrite.All")),
        "the detail names the role that would do: {body}"
    );
    // A kind the policy grants no role of the app: contacts.
    let writer = daemon(&app, HR_SYNC_CLIENT_ID);
    let contact = format!("/v1.0/users/{MEGAN}/contacts/AAMkADSandboxContact0001AAA=/photo/$value");
    assert_refused(
        app.put_raw(&contact, &writer, jpeg(600, 4)).await,
        "insufficient-role",
    )
    .await;
    // `/me` names a signed-in user an app does not have, whatever its roles.
    for path in [
        ME,
        "/v1.0/me/contacts/AAMkADSandboxContact0001AAA=/photo/$value",
    ] {
        let body = assert_refused(
            app.put_raw(path, &writer, jpeg(600, 5)).await,
            "user-token-required",
        )
        .await;
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("/me")),
            "{body}"
        );
    }
    app.assert_nothing_upstream("refused app-only calls");
}

#[tokio::test]
async fn fifty_concurrent_daemon_uploads_cost_one_token_request() {
    let app = spawn_with_policy(&[]).await;
    let token = daemon(&app, HR_SYNC_CLIENT_ID);
    let path = user_photo(MEGAN);
    let statuses = futures_util::future::join_all((0..50u8).map(|i| {
        let (app, token, path) = (&app, &token, &path);
        async move { app.put_raw(path, token, jpeg(600, i)).await.status() }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.emus.graph.requests().len(), 50);
    assert_eq!(
        client_credentials_requests(&app.emus),
        1,
        "50 concurrent daemon calls, one token request"
    );
    assert_eq!(app.obo_exchanges(), 0);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("photo_gateway_app_token_cache_requests_total{result=\"miss\"}")
            && metrics.contains("photo_gateway_app_token_cache_requests_total{result=\"hit\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_graph_401_refreshes_the_application_token_once() {
    let app = spawn_with_policy(&[]).await;
    let token = daemon(&app, HR_SYNC_CLIENT_ID);
    let path = user_photo(MEGAN);
    assert_eq!(app.put_raw(&path, &token, jpeg(600, 1)).await.status(), 200);
    // Graph now refuses the cached token once (a revoked or rotated token).
    app.emus
        .graph
        .add_fault(FaultRule::status(401).path_prefix("/v1.0/users").times(1));
    let resp = app.put_raw(&path, &token, jpeg(600, 2)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        client_credentials_requests(&app.emus),
        2,
        "one fresh token after Graph's 401"
    );
}

#[tokio::test]
async fn the_rate_limit_is_keyed_by_the_calling_app() {
    let policy = format!(
        "{};{DEMO_CLIENT_ID}/Photos.ReadWrite.All=users:write",
        policy()
    );
    let app = spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_APP_POLICY".into(), policy));
        v.push(("PHOTO_GATEWAY_APP_RATE_PER_MIN".into(), "6".into()));
        v.push(("PHOTO_GATEWAY_APP_BURST".into(), "2".into()));
    })
    .await;
    let hr = daemon(&app, HR_SYNC_CLIENT_ID);
    // One bucket for the app, whichever users' photos it changes.
    for user in [MEGAN, "lee.gu@contoso.onmicrosoft.com"] {
        assert_eq!(
            app.put_raw(&user_photo(user), &hr, jpeg(600, 1))
                .await
                .status(),
            200
        );
    }
    let resp = app
        .put_raw(
            &user_photo("photo.admin@contoso.onmicrosoft.com"),
            &hr,
            jpeg(600, 2),
        )
        .await;
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate-limited")));
    // Another app has its own bucket; the limited app's delegated users keep theirs (the
    // per-caller rate is off in the test harness).
    let other = daemon(&app, DEMO_CLIENT_ID);
    assert_eq!(
        app.put_raw(&user_photo(MEGAN), &other, jpeg(600, 3))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn with_redis_a_second_gateway_takes_the_application_token_from_l2() {
    let emus = Arc::new(
        Emulators::start(EmulatorOptions::default())
            .await
            .expect("emulators start"),
    );
    let redis = RedisServer::start().await;
    let mut vars = redis.gateway_env();
    vars.push(("PHOTO_GATEWAY_APP_POLICY".into(), policy()));
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let client = reqwest::Client::new();
    let token = emus.caller_token(&CallerTokenSpec::daemon(HR_SYNC_CLIENT_ID));
    let put = |g: &GatewayProcess, seed: u8| {
        client
            .put(format!("{}{}", g.base(), user_photo(MEGAN)))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(jpeg(600, seed))
            .send()
    };

    let first = GatewayProcess::spawn(&emus, &pairs).await;
    assert_eq!(put(&first, 1).await.unwrap().status(), 200);
    assert_eq!(client_credentials_requests(&emus), 1);
    // Sealed in Redis under a keyed name: no token in the clear.
    let stored = redis.keys("pgw:tok:*").await;
    let sealed: Vec<&String> = stored.iter().filter_map(|(_, v)| v.as_ref()).collect();
    assert_eq!(sealed.len(), 1, "{stored:?}");
    assert_no_clear_jwt(sealed[0]);
    drop(first);

    let second = GatewayProcess::spawn(&emus, &pairs).await;
    assert_eq!(put(&second, 2).await.unwrap().status(), 200);
    assert_eq!(
        client_credentials_requests(&emus),
        1,
        "the second gateway found the application token in L2"
    );
    let seen = emus.graph.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.scp.is_none() && r.roles.is_some()));
}

#[tokio::test]
async fn a_daemon_token_from_the_token_endpoint_is_accepted() {
    use photo_gateway_emulators::roles::DAEMON_CLIENT_SECRET;
    let app = spawn_with_policy(&[]).await;
    // What a daemon does: client credentials for the gateway's `.default`, from Entra.
    let resp = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(app.emus.ca_pem().as_bytes()).unwrap()])
        .build()
        .unwrap()
        .post(app.emus.entra.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", HR_SYNC_CLIENT_ID),
            ("client_secret", DAEMON_CLIENT_SECRET),
            ("scope", &format!("api://{GATEWAY_CLIENT_ID}/.default")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let resp = app
        .put_raw(&group_photo(GROUP_ID), token, jpeg(800, 9))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let c = app.emus.entra.counters();
    assert_eq!(
        c.by_user.get(&format!("app:{GATEWAY_CLIENT_ID}")),
        Some(&1),
        "the gateway's own token request: {c:?}"
    );
}

/// Reads and deletes by daemons follow their roles as writes do: the reader (`Photos.Read.All`)
/// reads a user's photo through the gateway's application token but may not delete it; HR sync,
/// granted `users:delete`, deletes it; `/me` needs a user for a read too.
#[tokio::test]
async fn daemons_read_and_delete_by_their_roles() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_APP_POLICY".into(),
            format!(
                "{HR_SYNC_CLIENT_ID}/Photos.ReadWrite.All=users:write,users:delete;\
                 {PHOTO_READER_CLIENT_ID}/Photos.Read.All=users:read"
            ),
        ));
    })
    .await;
    let store = format!("/users/{MEGAN}");
    let photo = jpeg(2500, 7);
    assert!(app.emus.graph.set_photo(&store, &photo, "image/jpeg"));
    let path = user_photo(MEGAN);
    let reader = daemon(&app, PHOTO_READER_CLIENT_ID);
    let hr = daemon(&app, HR_SYNC_CLIENT_ID);

    let resp = app
        .send_raw("GET", &path, Some(&reader), vec![], "image/jpeg")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), photo.as_slice());
    // Graph was asked once, with the gateway's own application token: one client-credentials
    // request, no On-Behalf-Of exchange.
    let g = app.emus.graph.counters();
    assert_eq!(g.by_path.get("/users/{id}/photo/$value"), Some(&1), "{g:?}");
    let c = app.emus.entra.counters();
    assert_eq!(c.by_grant_type.get("client_credentials"), Some(&1));
    assert_eq!(c.by_grant_type.get("on_behalf_of"), None);

    // HR sync holds no read grant; the reader no delete; neither reaches Graph.
    let before = app.emus.graph.counters().total;
    assert_refused(
        app.send_raw("GET", &path, Some(&hr), vec![], "image/jpeg")
            .await,
        "insufficient-role",
    )
    .await;
    assert_refused(
        app.send_raw("DELETE", &path, Some(&reader), vec![], "image/jpeg")
            .await,
        "insufficient-role",
    )
    .await;
    assert_refused(
        app.send_raw("GET", ME, Some(&reader), vec![], "image/jpeg")
            .await,
        "user-token-required",
    )
    .await;
    assert_eq!(
        app.emus.graph.counters().total,
        before,
        "refused before Graph"
    );
    assert!(app.emus.graph.photo(&store).is_some());

    let resp = app
        .send_raw("DELETE", &path, Some(&hr), vec![], "image/jpeg")
        .await;
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    assert!(app.emus.graph.photo(&store).is_none(), "Graph deleted it");
}
