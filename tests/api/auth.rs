//! Caller authentication and authorization: every refusal with its status, code and RFC 6750
//! challenge, and nothing sent upstream.

use jsonwebtoken::Algorithm;
use photo_gateway_emulators::CallerTokenSpec;
use serde_json::json;

use crate::support::jwt::{b64, claims, header, now, rs256, sign_hmac};
use crate::support::{
    DEMO, ME, MEGAN, TestApp, assert_insufficient_scope, jpeg, spawn_app, spawn_app_with,
};

async fn expect_refused(
    app: &TestApp,
    token: &str,
    status: u16,
    code: &str,
    challenge: &str,
    what: &str,
) -> serde_json::Value {
    let resp = app.put_raw(ME, token, jpeg(200, 1)).await;
    let (got, headers, body) = TestApp::problem(resp).await;
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(body["code"], code, "{what}");
    let www = headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        www.starts_with("Bearer"),
        "{what}: WWW-Authenticate {www:?}"
    );
    assert!(
        www.contains(challenge),
        "{what}: WWW-Authenticate {www:?} should contain {challenge}"
    );
    body
}

#[tokio::test]
async fn invalid_tokens_get_401_and_nothing_reaches_upstream() {
    let app = spawn_app().await;
    let good = app.token(DEMO);
    let c = claims(&app);
    let kid = app.emus.current_kid();
    let (h, p, _s) = {
        let mut it = good.split('.');
        (
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
        )
    };
    let pem = app.emus.public_key_pem();

    let mut cases: Vec<(String, String)> = Vec::new();
    // Signature: same header and claims, signature of other bytes.
    let other = app.token(MEGAN);
    cases.push((
        "bad signature".into(),
        format!("{h}.{p}.{}", other.split('.').nth(2).unwrap()),
    ));
    cases.push((
        "alg none".into(),
        format!("{}.{p}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
    ));
    cases.push((
        "HS256 with the public key".into(),
        sign_hmac(&header(Algorithm::HS256, &kid), &c, pem.as_bytes()),
    ));
    cases.push((
        "unknown kid".into(),
        app.emus.sign_jwt(rs256("not-a-tenant-key"), &c),
    ));
    cases.push((
        "expired".into(),
        app.token_with(CallerTokenSpec::for_user(DEMO).ttl_secs(-3600)),
    ));
    let mut future = c.clone();
    future["nbf"] = json!(now() + 3600);
    future["exp"] = json!(now() + 7200);
    cases.push((
        "not yet valid".into(),
        app.emus.sign_jwt(rs256(&kid), &future),
    ));
    let mut wrong_iss = c.clone();
    wrong_iss["iss"] =
        json!("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0");
    cases.push((
        "wrong iss".into(),
        app.emus.sign_jwt(rs256(&kid), &wrong_iss),
    ));
    let mut slash_iss = c.clone();
    slash_iss["iss"] = json!(format!("{}/", c["iss"].as_str().unwrap()));
    cases.push((
        "iss with a trailing slash".into(),
        app.emus.sign_jwt(rs256(&kid), &slash_iss),
    ));
    cases.push((
        "wrong aud".into(),
        app.token_with(CallerTokenSpec::for_user(DEMO).audience("api://someone-else")),
    ));
    let mut aud_array = c.clone();
    aud_array["aud"] = json!([c["aud"].clone(), "api://other"]);
    cases.push((
        "aud array containing ours".into(),
        app.emus.sign_jwt(rs256(&kid), &aud_array),
    ));
    let mut no_exp = c.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    cases.push(("no exp".into(), app.emus.sign_jwt(rs256(&kid), &no_exp)));
    let mut no_nbf = c.clone();
    no_nbf.as_object_mut().unwrap().remove("nbf");
    cases.push(("no nbf".into(), app.emus.sign_jwt(rs256(&kid), &no_nbf)));
    let mut long = c.clone();
    long["exp"] = json!(now() + 10 * 86_400);
    cases.push((
        "lifetime over the maximum".into(),
        app.emus.sign_jwt(rs256(&kid), &long),
    ));
    let mut crit = rs256(&kid);
    crit.crit = Some(vec!["exp".into()]);
    cases.push(("crit header".into(), app.emus.sign_jwt(crit, &c)));
    cases.push(("not a JWT".into(), "abc.def".into()));

    for (what, token) in &cases {
        expect_refused(
            &app,
            token,
            401,
            "invalid-token",
            "error=\"invalid_token\"",
            what,
        )
        .await;
    }

    let graph_aud =
        app.token_with(CallerTokenSpec::for_user(DEMO).audience("https://graph.microsoft.com"));
    let body = expect_refused(
        &app,
        &graph_aud,
        401,
        "invalid-token",
        "error=\"invalid_token\"",
        "Graph audience",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("Microsoft Graph"),
        "{body}"
    );

    app.assert_nothing_upstream("nothing reached Graph; no token exchange for a refused token");
}

#[tokio::test]
async fn scope_app_only_and_caller_refusals_are_403() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_ALLOWED_CLIENT_IDS".into(),
            photo_gateway_emulators::directory::DEMO_CLIENT_ID.into(),
        ))
    })
    .await;
    let no_scope = app.token_with(CallerTokenSpec::for_user(DEMO).scp("User.Read"));
    let body = expect_refused(
        &app,
        &no_scope,
        403,
        "insufficient-scope",
        "scope=\"access_as_user\"",
        "missing scope",
    )
    .await;
    assert_eq!(body["scope"], "access_as_user");
    let app_only = app.token_with(CallerTokenSpec::for_user(DEMO).app_only(&["Photo.Write"]));
    expect_refused(
        &app,
        &app_only,
        403,
        "user-token-required",
        "error=\"insufficient_scope\"",
        "app-only",
    )
    .await;

    let stranger =
        app.token_with(CallerTokenSpec::for_user(DEMO).app("99999999-0000-0000-0000-000000000000"));
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &stranger, jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("caller-not-allowed"))
    );
    assert_insufficient_scope(&headers);

    assert!(app.emus.graph.requests().is_empty());
    assert_eq!(app.emus.entra.counters().token_requests, 0);
}

#[tokio::test]
async fn missing_and_malformed_authorization() {
    let app = spawn_app().await;
    let resp = app
        .send_raw("PUT", ME, None, jpeg(200, 1), "image/jpeg")
        .await;
    let (status, headers, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing-token"))
    );
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"photo-gateway\""
    );

    let good = app.token(DEMO);
    for (what, value) in [
        ("Basic scheme", "Basic dXNlcjpwYXNz".to_owned()),
        ("two tokens", format!("Bearer {good} {good}")),
        ("empty bearer", "Bearer ".to_owned()),
    ] {
        let resp = app
            .client
            .put(format!("{}{ME}", app.address))
            .header("authorization", value)
            .header("content-type", "image/jpeg")
            .body(jpeg(200, 1))
            .send()
            .await
            .unwrap();
        let (status, headers, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid-request")),
            "{what}"
        );
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_request\""),
            "{what}"
        );
    }

    let resp = app
        .client
        .put(format!("{}{ME}?access_token={good}", app.address))
        .header("content-type", "image/jpeg")
        .body(jpeg(200, 1))
        .send()
        .await
        .unwrap();
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid-request")),
        "token in query"
    );

    let resp = app
        .client
        .put(format!("{}{ME}", app.address))
        .bearer_auth(&good)
        .header("authorization", format!("Bearer {good}"))
        .header("content-type", "image/jpeg")
        .body(jpeg(200, 1))
        .send()
        .await
        .unwrap();
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid-request")),
        "two Authorization headers"
    );
    assert!(app.emus.graph.requests().is_empty());
}

#[tokio::test]
async fn v1_tokens_with_the_app_id_uri_audience_are_accepted() {
    let app = spawn_app().await;
    let v1 = app.token_with(CallerTokenSpec::for_user(DEMO).version(1));
    let resp = app.put_raw(ME, &v1, jpeg(300, 2)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn unrelated_cookies_do_not_block_a_valid_request() {
    let app = spawn_app().await;
    let resp = app
        .client
        .put(format!("{}{ME}", app.address))
        .bearer_auth(app.token(DEMO))
        .header("cookie", "XSRF-TOKEN=5f1c9e; session=1")
        .header("content-type", "image/jpeg")
        .body(jpeg(200, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_token_for_another_tenant_is_refused_even_when_its_issuer_is_accepted() {
    // Issue 14 item 7: with several accepted issuers, `iss` alone would take another tenant's
    // token; `tid` must be the gateway's own tenant.
    let other = "99999999-8888-7777-6666-555555555555";
    let app = spawn_app_with(|v| {
        let entra = v
            .iter()
            .find(|(k, _)| k == "PHOTO_GATEWAY_AUTHORITY_HOST")
            .map(|(_, u)| u.clone())
            .unwrap();
        let tenant = v
            .iter()
            .find(|(k, _)| k == "PHOTO_GATEWAY_TENANT_ID")
            .map(|(_, t)| t.clone())
            .unwrap();
        v.push((
            "PHOTO_GATEWAY_ISSUERS".into(),
            format!("{entra}/{tenant}/v2.0,{entra}/{other}/v2.0"),
        ));
    })
    .await;
    let mut spec = CallerTokenSpec::for_user(DEMO);
    spec.extra_claims.insert(
        "iss".into(),
        json!(format!("{}/{other}/v2.0", app.emus.entra_url())),
    );
    spec.extra_claims.insert("tid".into(), json!(other));
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &app.token_with(spec), jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid-token")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("tenant"),
        "{body}"
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // The same configuration still takes the gateway's own tenant's tokens.
    assert_eq!(
        app.put_raw(ME, &app.token(DEMO), jpeg(200, 2))
            .await
            .status(),
        200
    );
}
