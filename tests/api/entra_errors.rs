//! Token-endpoint failures reach the caller as the errors table says, and nothing is cached.

use base64::Engine as _;
use photo_gateway_emulators::{FaultRule, TokenErrorKind};

use crate::support::{DEMO, ME, TestApp, jpeg, spawn_app};

fn token_path(app: &TestApp) -> String {
    format!("/{}/oauth2", app.emus.tenant_id())
}

#[tokio::test]
async fn consent_required_is_403_with_a_scope_challenge() {
    let app = spawn_app().await;
    app.emus
        .entra
        .set_token_error(DEMO, TokenErrorKind::ConsentRequired);
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(100, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("consent-required")),
        "{body}"
    );
    let www = headers["www-authenticate"].to_str().unwrap();
    assert!(
        www.contains("error=\"insufficient_scope\"") && www.contains("/User.ReadWrite\""),
        "{www}"
    );
    assert_eq!(body["upstream"], "entra");
    assert!(app.emus.graph.requests().is_empty());
}

#[tokio::test]
async fn claims_challenge_is_401_insufficient_claims_with_the_claims() {
    let app = spawn_app().await;
    app.emus
        .entra
        .set_token_error(DEMO, TokenErrorKind::MfaRequired);
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(100, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("claims-challenge")),
        "{body}"
    );
    let www = headers["www-authenticate"].to_str().unwrap();
    assert!(www.contains("error=\"insufficient_claims\""), "{www}");
    let b64 = www.split("claims=\"").nth(1).unwrap().trim_end_matches('"');
    let claims = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    let claims: serde_json::Value = serde_json::from_str(&claims).unwrap();
    assert!(claims["access_token"].is_object(), "{claims}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body["claims"].as_str().unwrap()).unwrap(),
        claims
    );

    // Once the user satisfied it, the next request succeeds: the failure was not cached.
    app.emus.entra.clear_token_error(DEMO);
    assert_eq!(
        app.put_raw(ME, &app.token(DEMO), jpeg(100, 1))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_assertion_entra_rejects_is_401_invalid_token() {
    let app = spawn_app().await;
    let aadsts = r#"{"error":"invalid_grant","error_description":"AADSTS500133: Assertion is not within its valid time range.","error_codes":[500133]}"#;
    app.emus.entra.add_fault(
        FaultRule::status(400)
            .body(aadsts)
            .path_prefix(&token_path(&app))
            .times(1),
    );
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(100, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid-token")),
        "{body}"
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn a_rejected_gateway_credential_is_500_for_the_operator() {
    let app = spawn_app().await;
    let aadsts = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
    app.emus.entra.add_fault(
        FaultRule::status(401)
            .body(aadsts)
            .path_prefix(&token_path(&app)),
    );
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(100, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("gateway-credential-rejected")),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains("operator"));
}

#[tokio::test]
async fn token_endpoint_down_is_503_with_retry_after_and_recovery_is_immediate() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    app.emus.entra.add_fault(
        FaultRule::status(503)
            .retry_after("7")
            .path_prefix(&token_path(&app)),
    );
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &token, jpeg(100, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("identity-unavailable")),
        "{body}"
    );
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["upstream"], "entra");

    app.emus.entra.clear_faults();
    let resp = app.put_raw(ME, &token, jpeg(100, 1)).await;
    assert_eq!(
        resp.status(),
        200,
        "first request after recovery: {}",
        resp.text().await.unwrap()
    );
}
