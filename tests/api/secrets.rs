//! Tokens, assertions, the client secret and photo bytes never reach the logs.

use photo_gateway_emulators::directory::GATEWAY_CLIENT_SECRET;
use photo_gateway_emulators::{FaultRule, TokenErrorKind};

use crate::support::{DEMO, ME, MEGAN, captured_logs, jpeg, spawn_app};

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let marker = b"PHOTO-BYTES-MARKER-5f1c9e";
    let mut photo = jpeg(5000, 4);
    photo[100..100 + marker.len()].copy_from_slice(marker);

    let ok = app.put_raw(ME, &token, photo.clone()).await;
    assert_eq!(ok.status(), 200);
    let rid = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    // Failure paths log more: a Graph refusal, an Entra refusal, a bad token.
    app.emus
        .graph
        .add_fault(FaultRule::status(401).path_prefix("/v1.0/me").times(2));
    let _ = app.put_raw(ME, &token, photo.clone()).await;
    app.emus
        .entra
        .set_token_error(MEGAN, TokenErrorKind::MfaRequired);
    let _ = app.put_raw(ME, &app.token(MEGAN), photo.clone()).await;
    let _ = app.put_raw(ME, &format!("{token}x"), photo).await;

    let logs = captured_logs();
    assert!(
        logs.contains(&rid),
        "the capture works: this request's id is logged"
    );
    assert!(
        logs.contains("photo_gateway::audit"),
        "the audit line is logged"
    );
    assert!(!logs.contains(&token), "caller token in logs");
    assert!(
        !logs.contains(token.split('.').nth(2).unwrap()),
        "token signature in logs"
    );
    assert!(
        !logs.contains("eyJ"),
        "something JWT-shaped (a token or assertion) in logs"
    );
    assert!(
        !logs.contains(GATEWAY_CLIENT_SECRET),
        "client secret in logs"
    );
    assert!(
        !logs.contains(std::str::from_utf8(marker).unwrap()),
        "photo bytes in logs"
    );
}
