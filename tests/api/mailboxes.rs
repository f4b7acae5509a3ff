//! One mailbox, two names: another user's userPrincipalName and object id share Graph's
//! per-mailbox limits, through one lookup of the UPN per hour; a refused or failed lookup never
//! fails the upload (hardening round 2, item 3).

use std::time::{Duration, Instant};

use photo_gateway_emulators::FaultRule;
use photo_gateway_emulators::directory::GUEST_USER_ID;

use crate::support::{
    DEMO, GUEST_PHOTO, MEGAN, TestApp, captured_logs, jpeg, spawn_app_with, user_photo,
};

/// Megan Bowen's object id in the seeded directory.
const MEGAN_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000102";
/// A contact in Megan's mailbox.
const MEGAN_CONTACT: &str = "AAMkADSandboxContact0004AAA=";
/// How the Graph emulator counts user lookups.
const USERS: &str = "/users/{id}";

fn megan_contact_by_upn() -> String {
    format!("/v1.0/users/{MEGAN}/contacts/{MEGAN_CONTACT}/photo/$value")
}

/// Mailbox byte window of 1000 bytes, no queueing: a second upload over it is refused at once.
fn small_window(v: &mut Vec<(String, String)>) {
    v.push(("PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S".into(), "1000".into()));
    v.push(("PHOTO_GATEWAY_MAILBOX_QUEUE_SECS".into(), "0".into()));
}

/// User lookups the Graph emulator answered with `status`.
fn lookups(app: &TestApp, status: u16) -> u64 {
    app.emus.graph.counters().count("GET", USERS, status)
}

async fn assert_rate_limited(resp: reqwest::Response, what: &str) {
    let (status, headers, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate-limited")),
        "{what}: {body}"
    );
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{what}: Retry-After {wait}");
}

#[tokio::test]
async fn another_users_upn_and_object_id_share_one_byte_window() {
    let app = spawn_app_with(small_window).await;
    let token = app.token(DEMO);
    let resp = app.put_raw(&user_photo(MEGAN), &token, jpeg(800, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_rate_limited(
        app.put_raw(&user_photo(MEGAN_ID), &token, jpeg(800, 2))
            .await,
        "800 + 800 bytes to one mailbox under two names",
    )
    .await;
    // Upper case is the same name, and the refused upload never reached Graph.
    assert_rate_limited(
        app.put_raw(&user_photo(&MEGAN.to_uppercase()), &token, jpeg(800, 3))
            .await,
        "the UPN in upper case",
    )
    .await;
    assert_eq!(app.emus.graph.requests().len(), 1, "only the first upload");
    assert_eq!(lookups(&app, 200), 1, "one lookup for one UPN");
    // Another user is another mailbox.
    let lee = user_photo("lee.gu@contoso.onmicrosoft.com");
    assert_eq!(app.put_raw(&lee, &token, jpeg(800, 4)).await.status(), 200);
    // A guest's UPN (`#EXT#`, sent encoded) is looked up like any other.
    assert_eq!(
        app.put_raw(GUEST_PHOTO, &token, jpeg(800, 5))
            .await
            .status(),
        200
    );
    assert_rate_limited(
        app.put_raw(&user_photo(GUEST_USER_ID), &token, jpeg(800, 6))
            .await,
        "the guest by object id",
    )
    .await;
}

#[tokio::test]
async fn the_object_id_first_then_the_upn_is_the_same_mailbox_too() {
    let app = spawn_app_with(small_window).await;
    let token = app.token(DEMO);
    assert_eq!(
        app.put_raw(&user_photo(MEGAN_ID), &token, jpeg(800, 1))
            .await
            .status(),
        200
    );
    assert_eq!(lookups(&app, 200), 0, "an object id needs no lookup");
    assert_rate_limited(
        app.put_raw(&user_photo(MEGAN), &token, jpeg(800, 2)).await,
        "object id, then UPN",
    )
    .await;
}

#[tokio::test]
async fn concurrent_and_repeated_uploads_to_one_upn_look_it_up_once() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S".into(),
            "1000000".into(),
        ));
    })
    .await;
    let token = app.token(DEMO);
    let path = user_photo(MEGAN);
    let first = (1..=4u8).map(|i| app.put_raw(&path, &token, jpeg(500, i)));
    for resp in futures_util::future::join_all(first).await {
        assert_eq!(resp.status(), 200);
    }
    for i in 5..=7u8 {
        assert_eq!(app.put_raw(&path, &token, jpeg(500, i)).await.status(), 200);
    }
    let counters = app.emus.graph.counters();
    assert_eq!(
        counters.count("GET", USERS, 200),
        1,
        "7 uploads, 4 of them at once: {counters:?}"
    );
    assert_eq!(app.emus.graph.requests().len(), 7);
    let metrics = app.metrics_text().await;
    for series in [
        r#"photo_gateway_user_lookups_total{result="miss"}"#,
        r#"photo_gateway_user_lookups_total{result="hit"}"#,
        r#"photo_gateway_user_lookup_duration_seconds_count{outcome="found"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    assert!(!metrics.contains("megan"), "no UPN in a label");
}

#[tokio::test]
async fn a_refused_lookup_falls_back_to_the_upn_and_is_not_retried_per_request() {
    let app = spawn_app_with(|v| {
        small_window(v);
        v.push((
            "PHOTO_GATEWAY_SCOPE_USERS".into(),
            "ProfilePhoto.ReadWrite.All".into(),
        ));
    })
    .await;
    let token = app.token(DEMO);
    for i in 1..=2u8 {
        let resp = app.put_raw(&user_photo(MEGAN), &token, jpeg(400, i)).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let put = app.emus.graph.requests();
    assert_eq!(put.len(), 2);
    assert!(
        put[0]
            .scp
            .as_deref()
            .is_some_and(|s| s.contains("ProfilePhoto.ReadWrite.All")),
        "{put:?}"
    );
    // A refusal is about the scope, not the user: another UPN is not looked up either.
    let lee = user_photo("lee.gu@contoso.onmicrosoft.com");
    assert_eq!(app.put_raw(&lee, &token, jpeg(400, 9)).await.status(), 200);
    assert_eq!(lookups(&app, 403), 1, "the refusal is remembered");
    assert_eq!(lookups(&app, 200), 0);
    // The operator hears of it once (this gateway's scope names this emulator's port).
    let scope = format!("{}/ProfilePhoto.ReadWrite.All", app.emus.graph_url());
    let warnings = captured_logs()
        .lines()
        .filter(|l| l.contains("Graph refuses to look up users") && l.contains(&scope))
        .count();
    assert_eq!(warnings, 1);
    // Without the object id, the UPN is its own mailbox: its window is still counted.
    assert_rate_limited(
        app.put_raw(&user_photo(MEGAN), &token, jpeg(400, 3)).await,
        "400 + 400 + 400 bytes under the UPN",
    )
    .await;
}

#[tokio::test]
async fn a_lookup_that_fails_or_hangs_never_fails_the_upload() {
    let app = spawn_app_with(small_window).await;
    let token = app.token(DEMO);
    app.emus.graph.add_fault(
        FaultRule::status(503)
            .method("GET")
            .path_prefix("/v1.0/users")
            .times(1),
    );
    let resp = app.put_raw(&user_photo(MEGAN), &token, jpeg(200, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(lookups(&app, 503), 1);

    app.emus.graph.add_fault(
        FaultRule::latency(Duration::from_secs(10))
            .method("GET")
            .path_prefix("/v1.0/users"),
    );
    let started = Instant::now();
    let resp = app
        .put_raw(
            &user_photo("lee.gu@contoso.onmicrosoft.com"),
            &token,
            jpeg(200, 2),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the lookup gives up after its own short timeout: {:?}",
        started.elapsed()
    );
    // An unknown user: the lookup's 404 is not the answer; the upload's own 404 is.
    app.emus.graph.clear_faults();
    let (status, _, body) = TestApp::problem(
        app.put_raw(
            &user_photo("nobody@contoso.onmicrosoft.com"),
            &token,
            jpeg(200, 3),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["graphError"]["code"], "Request_ResourceNotFound",
        "{body}"
    );
    assert_eq!(
        app.emus.graph.requests().last().unwrap().method,
        "PUT",
        "the upload itself was sent"
    );
}

#[tokio::test]
async fn another_users_contacts_share_that_users_mailbox() {
    let app = spawn_app_with(small_window).await;
    let token = app.token(DEMO);
    // A contacts token cannot read users: this lookup is refused, the contact keyed by the UPN.
    let resp = app
        .put_raw(&megan_contact_by_upn(), &token, jpeg(200, 1))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(lookups(&app, 403), 1);
    // That refusal belongs to the contacts token: the photo upload's own token still resolves it.
    assert_eq!(
        app.put_raw(&user_photo(MEGAN), &token, jpeg(200, 2))
            .await
            .status(),
        200
    );
    assert_eq!(lookups(&app, 200), 1);
    assert_eq!(
        app.put_raw(&user_photo(MEGAN_ID), &token, jpeg(700, 3))
            .await
            .status(),
        200
    );
    // Now the UPN is known: the contact lands in the same window (100 + 700 + 300 > 1000).
    assert_rate_limited(
        app.put_raw(&megan_contact_by_upn(), &token, jpeg(300, 4))
            .await,
        "a contact of the same mailbox",
    )
    .await;
}
