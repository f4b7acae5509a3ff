//! Tokens, assertions, the client secret and photo bytes never reach the logs.

use photo_gateway_emulators::directory::GATEWAY_CLIENT_SECRET;
use photo_gateway_emulators::{FaultRule, TokenErrorKind};

use crate::support::{DEMO, ME, MEGAN, captured_logs, jpeg, spawn_app_with, user_photo};

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    // With a mailbox limit on, uploads to a UPN look its object id up in Graph too.
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S".into(),
            "15000000".into(),
        ))
    })
    .await;
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
    let _ = app.put_raw(ME, &format!("{token}x"), photo.clone()).await;
    // A user lookup that succeeds, and one Graph refuses (logged at warn).
    let _ = app.put_raw(&user_photo(MEGAN), &token, photo.clone()).await;
    app.emus.graph.add_fault(
        FaultRule::status(403)
            .method("GET")
            .path_prefix("/v1.0/users")
            .times(1),
    );
    let lee = user_photo("lee.gu@contoso.onmicrosoft.com");
    let _ = app.put_raw(&lee, &token, photo).await;
    assert_eq!(
        app.emus
            .graph
            .counters()
            .by_path
            .get("/users/{id}")
            .copied(),
        Some(2),
        "both lookups happened"
    );

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
