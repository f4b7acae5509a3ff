//! Who may change whose photo in the Graph emulator, as in Graph: delegated changes of another
//! user's photo need an admin role (`wids`), self changes a self or photo scope; app-only tokens
//! carry the app's granted application permissions (`roles`).

mod common;
use common::{access_token as token_request, claims_of, client, send, start};

use photo_gateway_emulators::directory::{
    DEMO_USER_ID, DEMO_USER_UPN, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET, GROUP_ID,
};
use photo_gateway_emulators::roles::{
    DEFAULT_USER_ROLE, GATEWAY_APP_PERMISSIONS, GLOBAL_ADMINISTRATOR, PEOPLE_ADMINISTRATOR,
    PLAIN_USER_ID, PLAIN_USER_UPN, USER_ADMINISTRATOR,
};
use photo_gateway_emulators::{CallerTokenSpec, Emulators, sample_jpeg};
use serde_json::Value;

const MEGAN: &str = "megan.bowen@contoso.onmicrosoft.com";
const PHOTO_ADMIN: &str = "photo.admin@contoso.onmicrosoft.com";

/// Graph's refusal, exactly: 403, `Authorization_RequestDenied`, its message and bookkeeping.
async fn assert_request_denied(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status(), 403, "{what}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "Authorization_RequestDenied",
        "{what}: {body}"
    );
    assert_eq!(
        body["error"]["message"], "Insufficient privileges to complete the operation.",
        "{what}: {body}"
    );
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
}

/// An On-Behalf-Of answer of the Entra emulator, as the gateway gets it.
async fn obo(emus: &Emulators, user: &str, scope: &str) -> String {
    let assertion = emus.caller_token(&CallerTokenSpec::for_user(user));
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("requested_token_use", "on_behalf_of"),
        ("assertion", assertion.as_str()),
        ("client_id", GATEWAY_CLIENT_ID),
        ("client_secret", GATEWAY_CLIENT_SECRET),
        ("scope", scope),
    ];
    token_request(emus, &form).await
}

#[tokio::test]
async fn obo_tokens_carry_the_users_directory_roles_as_wids() {
    let emus = start().await;
    let scope = format!("{}/ProfilePhoto.ReadWrite.All", emus.graph_url());
    let cases = [
        (DEMO_USER_UPN, vec![USER_ADMINISTRATOR, DEFAULT_USER_ROLE]),
        (MEGAN, vec![GLOBAL_ADMINISTRATOR, DEFAULT_USER_ROLE]),
        (PHOTO_ADMIN, vec![PEOPLE_ADMINISTRATOR, DEFAULT_USER_ROLE]),
        (PLAIN_USER_UPN, vec![DEFAULT_USER_ROLE]),
    ];
    for (user, wids) in cases {
        let claims = claims_of(&obo(&emus, user, &scope).await);
        assert_eq!(claims["wids"], serde_json::json!(wids), "{user}");
    }
}

#[tokio::test]
async fn a_plain_user_changes_only_their_own_photo_with_each_self_scope() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    for (i, scope) in [
        "User.ReadWrite",
        "ProfilePhoto.ReadWrite.All",
        "User.ReadWrite.All",
    ]
    .into_iter()
    .enumerate()
    {
        // Through the real OBO answer: the token Graph sees is the one the gateway would send.
        let token = obo(&emus, PLAIN_USER_UPN, &format!("{g}/{scope}")).await;
        for (j, path) in [
            "/v1.0/me/photo/$value".to_owned(),
            format!("/v1.0/users/{PLAIN_USER_ID}/photo/$value"),
            format!("/v1.0/users/{PLAIN_USER_UPN}/photo/$value"),
        ]
        .iter()
        .enumerate()
        {
            let photo = sample_jpeg(16, 16, &format!("{i}{j}"));
            let resp = send(&c, "PUT", &format!("{g}{path}"), &token, photo.clone()).await;
            assert_eq!(resp.status(), 200, "{scope} {path}");
            assert_eq!(emus.graph.photo_of_user(PLAIN_USER_ID).unwrap(), photo);
        }
        // Another user's photo: refused as Graph refuses it, whatever the scope says, and kept.
        emus.graph.set_photo(
            &format!("/users/{MEGAN}"),
            &sample_jpeg(8, 8, "megan"),
            "image/jpeg",
        );
        for method in ["PUT", "PATCH", "DELETE"] {
            let resp = send(
                &c,
                method,
                &format!("{g}/v1.0/users/{MEGAN}/photo/$value"),
                &token,
                sample_jpeg(16, 16, "not hers"),
            )
            .await;
            assert_request_denied(resp, &format!("{scope} {method} another user")).await;
        }
        assert_eq!(
            emus.graph.photo_of_user(MEGAN).unwrap(),
            sample_jpeg(8, 8, "megan"),
            "{scope}: a refused write changes nothing"
        );
    }
    // Reading another user's photo needs no role.
    let token = emus.graph_token(PLAIN_USER_UPN, &["ProfilePhoto.ReadWrite.All"]);
    let resp = c
        .get(format!("{g}/v1.0/users/{MEGAN}/photo/$value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let refused = emus
        .graph
        .counters()
        .count("PUT", "/users/{id}/photo/$value", 403);
    assert_eq!(refused, 3, "one refused PUT per scope");
}

#[tokio::test]
async fn each_admin_role_changes_and_deletes_another_users_photo() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let scope = format!("{g}/ProfilePhoto.ReadWrite.All");
    for (i, admin) in [DEMO_USER_UPN, MEGAN, PHOTO_ADMIN].into_iter().enumerate() {
        let token = obo(&emus, admin, &scope).await;
        let photo = sample_jpeg(16, 16, &format!("by admin {i}"));
        let url = format!("{g}/v1.0/users/{PLAIN_USER_UPN}/photo/$value");
        for method in ["PUT", "PATCH"] {
            let resp = send(&c, method, &url, &token, photo.clone()).await;
            assert_eq!(resp.status(), 200, "{admin} {method}");
        }
        assert_eq!(emus.graph.photo_of_user(PLAIN_USER_ID).unwrap(), photo);
        let rec = emus.graph.requests().pop().unwrap();
        assert_eq!(
            rec.target.as_deref(),
            Some(&*format!("/users/{PLAIN_USER_ID}/photo/$value"))
        );
        let resp = send(&c, "DELETE", &url, &token, Vec::new()).await;
        assert_eq!(resp.status(), 204, "{admin} DELETE");
        assert!(emus.graph.photo_of_user(PLAIN_USER_ID).is_none());
    }
    // The role alone is not enough: the scope must cover the write too.
    let token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);
    let resp = send(
        &c,
        "PUT",
        &format!("{g}/v1.0/users/{PLAIN_USER_UPN}/photo/$value"),
        &token,
        sample_jpeg(8, 8, "x"),
    )
    .await;
    assert_request_denied(resp, "admin with a self-only scope").await;
    // A token whose wids were stripped is a plain user's, even for the demo user.
    let claims = claims_of(&emus.graph_token(DEMO_USER_UPN, &["ProfilePhoto.ReadWrite.All"]));
    let mut stripped = claims.clone();
    stripped["wids"] = serde_json::json!([DEFAULT_USER_ROLE]);
    let token = emus.sign_jwt(
        jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &stripped,
    );
    let resp = send(
        &c,
        "PUT",
        &format!("{g}/v1.0/users/{MEGAN}/photo/$value"),
        &token,
        sample_jpeg(8, 8, "y"),
    )
    .await;
    assert_request_denied(resp, "no admin role in wids").await;
    let resp = send(
        &c,
        "PUT",
        &format!("{g}/v1.0/users/{DEMO_USER_ID}/photo/$value"),
        &token,
        sample_jpeg(8, 8, "z"),
    )
    .await;
    assert_eq!(resp.status(), 200, "own photo needs no role");
}

#[tokio::test]
async fn client_credentials_tokens_carry_the_apps_application_permissions() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", GATEWAY_CLIENT_ID),
        ("client_secret", GATEWAY_CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let token = token_request(&emus, &form).await;
    let claims = claims_of(&token);
    assert_eq!(claims["roles"], serde_json::json!(GATEWAY_APP_PERMISSIONS));
    assert!(
        claims.get("scp").is_none() && claims.get("wids").is_none(),
        "{claims}"
    );
    assert_eq!(claims["idtyp"], "app");

    // ProfilePhoto.ReadWrite.All as an application permission: any user's and any group's photo.
    for path in [
        format!("/v1.0/users/{MEGAN}/photo/$value"),
        format!("/v1.0/users/{PLAIN_USER_ID}/photo/$value"),
        format!("/v1.0/groups/{GROUP_ID}/photo/$value"),
    ] {
        let photo = sample_jpeg(16, 16, &path);
        let resp = send(&c, "PUT", &format!("{g}{path}"), &token, photo.clone()).await;
        assert_eq!(resp.status(), 200, "{path}");
        let back = c
            .get(format!("{g}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 200, "{path}");
        assert_eq!(back.bytes().await.unwrap(), photo);
        let rec = emus.graph.requests().pop().unwrap();
        assert_eq!(
            rec.roles.as_deref(),
            Some(GATEWAY_APP_PERMISSIONS.join(" ").as_str())
        );
        assert_eq!(rec.scp, None);
    }
    let resp = send(
        &c,
        "DELETE",
        &format!("{g}/v1.0/users/{MEGAN}/photo/$value"),
        &token,
        Vec::new(),
    )
    .await;
    assert_eq!(resp.status(), 204);
    // /me needs a signed-in user.
    let resp = send(
        &c,
        "PUT",
        &format!("{g}/v1.0/me/photo/$value"),
        &token,
        sample_jpeg(8, 8, "m"),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest", "{body}");

    // ProfilePhoto.Read.All reads but does not write; an unrelated permission does neither.
    let reader = emus.graph_app_token(&["ProfilePhoto.Read.All"]);
    let url = format!("{g}/v1.0/users/{PLAIN_USER_ID}/photo/$value");
    let resp = c.get(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = send(&c, "PUT", &url, &reader, sample_jpeg(8, 8, "r")).await;
    assert_request_denied(resp, "app ProfilePhoto.Read.All write").await;
    let resp = send(&c, "DELETE", &url, &reader, Vec::new()).await;
    assert_request_denied(resp, "app ProfilePhoto.Read.All delete").await;
    let other = emus.graph_app_token(&["Mail.Read"]);
    let resp = c.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_request_denied(resp, "app Mail.Read read").await;
    // User.ReadWrite.All as an application permission also writes users' photos (not groups').
    let users = emus.graph_app_token(&["User.ReadWrite.All"]);
    assert_eq!(
        send(&c, "PUT", &url, &users, sample_jpeg(8, 8, "u"))
            .await
            .status(),
        200
    );
    let resp = send(
        &c,
        "PUT",
        &format!("{g}/v1.0/groups/{GROUP_ID}/photo/$value"),
        &users,
        sample_jpeg(8, 8, "g"),
    )
    .await;
    assert_request_denied(resp, "app User.ReadWrite.All on a group").await;
}

#[tokio::test]
async fn control_api_mints_app_only_graph_tokens_with_roles() {
    let emus = start().await;
    let c = client(&emus);
    let url = format!("{}/_emulator/graph-tokens", emus.entra_url());
    let body: Value = c
        .post(&url)
        .json(&serde_json::json!({"roles": ["ProfilePhoto.Read.All"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["roles"],
        serde_json::json!(["ProfilePhoto.Read.All"])
    );
    assert_eq!(claims["idtyp"], "app");
    assert!(
        claims.get("scp").is_none() && claims.get("upn").is_none(),
        "{claims}"
    );
    // A user's token carries wids; neither user nor roles is a 400.
    let body: Value = c
        .post(&url)
        .json(&serde_json::json!({"user": PLAIN_USER_UPN, "scopes": ["User.ReadWrite"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["wids"], serde_json::json!([DEFAULT_USER_ROLE]));
    let resp = c
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn granted_application_permissions_can_be_changed_and_reset() {
    let emus = start().await;
    let c = client(&emus);
    let g = emus.graph_url();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", GATEWAY_CLIENT_ID),
        ("client_secret", GATEWAY_CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let url = format!("{g}/v1.0/users/{MEGAN}/photo/$value");
    // Consent revoked down to a read permission: the next app token reads but cannot write.
    emus.entra.set_app_permissions(&["ProfilePhoto.Read.All"]);
    let token = token_request(&emus, &form).await;
    assert_eq!(
        claims_of(&token)["roles"],
        serde_json::json!(["ProfilePhoto.Read.All"])
    );
    let resp = send(&c, "PUT", &url, &token, sample_jpeg(8, 8, "a")).await;
    assert_request_denied(resp, "app with a read permission only").await;
    // The same through the control API.
    let resp = c
        .put(format!("{}/_emulator/app-permissions", emus.entra_url()))
        .json(&serde_json::json!({"roles": ["User.ReadWrite.All"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let token = token_request(&emus, &form).await;
    assert_eq!(
        claims_of(&token)["roles"],
        serde_json::json!(["User.ReadWrite.All"])
    );
    assert_eq!(
        send(&c, "PUT", &url, &token, sample_jpeg(8, 8, "b"))
            .await
            .status(),
        200
    );
    // Reset restores the seed's grant.
    emus.reset();
    let token = token_request(&emus, &form).await;
    assert_eq!(
        claims_of(&token)["roles"],
        serde_json::json!(GATEWAY_APP_PERMISSIONS)
    );
}

/// A seeded daemon gets an app-only token for the gateway with the client-credentials grant, as
/// from Entra: the gateway app roles assigned to it as `roles`, no `scp`; a wrong secret or a
/// scope that is not the gateway's `.default` is refused.
#[tokio::test]
async fn seeded_daemons_get_app_only_tokens_for_the_gateway() {
    use photo_gateway_emulators::roles::{
        DAEMON_CLIENT_SECRET, HR_SYNC_CLIENT_ID, PHOTO_READER_CLIENT_ID, PHOTOS_READ_ALL,
        PHOTOS_READWRITE_ALL,
    };
    let emus = start().await;
    let scope = format!("api://{GATEWAY_CLIENT_ID}/.default");
    for (app, role) in [
        (HR_SYNC_CLIENT_ID, PHOTOS_READWRITE_ALL),
        (PHOTO_READER_CLIENT_ID, PHOTOS_READ_ALL),
    ] {
        let token = token_request(
            &emus,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", app),
                ("client_secret", DAEMON_CLIENT_SECRET),
                ("scope", &scope),
            ],
        )
        .await;
        let c = claims_of(&token);
        assert_eq!(c["aud"], GATEWAY_CLIENT_ID);
        assert_eq!(c["azp"], app);
        assert_eq!(c["idtyp"], "app");
        assert_eq!(c["roles"], serde_json::json!([role]));
        assert!(c.get("scp").is_none(), "{c}");
    }
    let url = emus.entra.token_endpoint();
    for (secret, scope, code) in [
        ("wrong", scope.as_str(), "invalid_client"),
        (
            DAEMON_CLIENT_SECRET,
            "https://graph.microsoft.com/.default",
            "invalid_scope",
        ),
    ] {
        let resp = client(&emus)
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", HR_SYNC_CLIENT_ID),
                ("client_secret", secret),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
    }
}
