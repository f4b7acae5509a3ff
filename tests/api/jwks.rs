//! Key rotation and the unknown-kid refresh policy.

use crate::support::jwt::{claims, rs256};
use crate::support::{DEMO, ME, jpeg, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_token_signed_with_a_new_key_validates_after_one_refresh() {
    let app = spawn_app().await;
    let before = app.emus.entra.counters().jwks;
    app.emus.entra.rotate_keys().unwrap();
    let token = app.token(DEMO);
    let resp = app.put_raw(ME, &token, jpeg(200, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        app.emus.entra.counters().jwks,
        before + 1,
        "exactly one refresh"
    );
    // And the next token with that kid needs no fetch at all.
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(200, 2)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.emus.entra.counters().jwks, before + 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_causes_at_most_one_fetch_per_cooldown() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_JWKS_UNKNOWN_KID_COOLDOWN_SECS".into(),
            "60".into(),
        ))
    })
    .await;
    let before = app.emus.entra.counters().jwks;
    let claims = claims(&app);
    let tokens: Vec<String> = (0..100)
        .map(|i| {
            let kid = format!("random-kid-{i}-{}", uuid::Uuid::new_v4());
            app.emus.sign_jwt(rs256(&kid), &claims)
        })
        .collect();
    let calls = tokens.iter().map(|t| {
        let app = &app;
        async move { app.put_raw(ME, t, jpeg(200, 1)).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let fetched = app.emus.entra.counters().jwks - before;
    assert!(fetched <= 1, "{fetched} JWKS fetches for 100 unknown kids");
}

/// A token the gateway has validated (and remembers, issue 12) stops working once its signing
/// key has left the tenant's key set: the remembered verdict dies with the key.
#[tokio::test]
async fn a_validated_token_is_refused_once_its_key_left_the_key_set() {
    let app = spawn_app().await;
    let old = app.token(DEMO);
    let resp = app.put_raw(ME, &old, jpeg(200, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // Two rotations: the old key is no longer published.
    app.emus.entra.rotate_keys().unwrap();
    app.emus.entra.rotate_keys().unwrap();
    // A token with the newest kid makes the gateway fetch the new key set.
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(200, 2)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = app.put_raw(ME, &old, jpeg(200, 3)).await;
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid-token", "{body}");
}
