//! Token-endpoint failures reach the caller as the errors table says, and nothing is cached.

use base64::Engine as _;
use photo_gateway_emulators::{FaultRule, TokenErrorKind};

use crate::support::{DEMO, ME, TestApp, captured_logs, jpeg, spawn_app};

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
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
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
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
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
        app.put_raw(ME, &app.token(DEMO), jpeg(200, 1))
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
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
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
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
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
        TestApp::problem(app.put_raw(ME, &token, jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("identity-unavailable")),
        "{body}"
    );
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["upstream"], "entra");

    app.emus.entra.clear_faults();
    let resp = app.put_raw(ME, &token, jpeg(200, 1)).await;
    assert_eq!(
        resp.status(),
        200,
        "first request after recovery: {}",
        resp.text().await.unwrap()
    );
}

/// Entra's real error texts name the gateway's app id, trace and correlation ids and times.
fn entra_text(code: u64, what: &str, client_id: &str) -> String {
    format!(
        "AADSTS{code}: {what} Application '{client_id}'(photo-gateway). Trace ID: 0b9d4e0e-6c1f-4b8a-9d3e-1f2a3b4c5d6e Correlation ID: 3f1b2c9e-6a4d-4c1e-9f0a-2b7d8e6c5a41 Timestamp: 2026-12-03 09:00:00Z"
    )
}

#[tokio::test]
async fn entra_free_text_reaches_the_log_and_only_its_aadsts_number_the_caller() {
    // Issue 14 item 5: the caller gets a stable detail and `aadsts`; Entra's text (with the
    // gateway's app id and trace ids) goes to the log only.
    let app = spawn_app().await;
    let client_id = app.emus.gateway_client_id().to_owned();
    let cases = [
        (
            400,
            "invalid_grant",
            500133u64,
            "Assertion is not within its valid time range.",
            401,
            "invalid-token",
        ),
        (
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
            500,
            "gateway-credential-rejected",
        ),
        (
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
            502,
            "identity-rejected",
        ),
        (
            400,
            "invalid_grant",
            65001,
            "The user or administrator has not consented to use the application.",
            403,
            "consent-required",
        ),
    ];
    for (http, error, code, what, status, problem_code) in cases {
        let text = entra_text(code, what, &client_id);
        let body =
            serde_json::json!({"error": error, "error_description": text, "error_codes": [code]});
        app.emus.entra.clear_faults();
        app.emus.entra.add_fault(
            FaultRule::status(http)
                .body(&body.to_string())
                .path_prefix(&token_path(&app)),
        );
        let (got, headers, problem) =
            TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(problem_code)),
            "{problem}"
        );
        assert_eq!(problem["aadsts"], code, "{problem}");
        let answer = format!("{problem} {:?}", headers.get("www-authenticate"));
        for secret in [
            "AADSTS",
            "Trace ID",
            "0b9d4e0e",
            "Correlation",
            client_id.as_str(),
            what,
        ] {
            assert!(
                !answer.contains(secret),
                "{secret:?} reached the caller: {answer}"
            );
        }
        assert!(
            problem["requestId"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        assert!(
            captured_logs().contains(&format!("AADSTS{code}: {what}")),
            "Entra's text for AADSTS{code} is in the log"
        );
    }
}

#[tokio::test]
async fn an_absurd_expires_in_is_an_answer_not_a_dropped_connection() {
    // Issue 14 item 6: `expires_in` = u64::MAX overflowed a Duration and panicked the worker, so
    // the caller's connection was dropped without an answer. It is saturated now: the request
    // gets a problem answer (here Graph refuses the made-up token) and the gateway keeps serving.
    let app = spawn_app().await;
    let absurd = r#"{"token_type":"Bearer","access_token":"not-a-graph-token","expires_in":18446744073709551615}"#;
    app.emus.entra.add_fault(
        FaultRule::status(200)
            .body(absurd)
            .path_prefix(&token_path(&app))
            .times(2),
    );
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("graph-rejected-token")),
        "{body}"
    );
    // A different user: the cached made-up token is not theirs, the fault is spent.
    let other = app.token(crate::support::MEGAN);
    assert_eq!(app.put_raw(ME, &other, jpeg(200, 2)).await.status(), 200);
}
