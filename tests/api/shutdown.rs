//! Graceful shutdown of the real binary: on SIGTERM readiness turns false at once, new
//! connections are still served during the drain, an upload in flight completes, and the process
//! exits 0.

use std::time::Duration;

use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators};
use tokio::io::AsyncWriteExt;

use crate::support::raw_http::{open, read_response};
use crate::support::{DEMO, GatewayProcess, ME, jpeg};

/// GETs `path` over a new connection: during the drain the listener still accepts.
async fn get_on_a_new_connection(base: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("served during the drain")
}

#[tokio::test]
async fn sigterm_drains_finishes_in_flight_uploads_and_exits_zero() {
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let mut gw = GatewayProcess::spawn(
        &emus,
        &[
            ("PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS", "2"),
            ("PHOTO_GATEWAY_SHUTDOWN_TIMEOUT_SECS", "10"),
        ],
    )
    .await;
    let (port, base) = (gw.port, gw.base());

    // An upload in flight: the head and half the body now, the rest after the drain is over.
    let photo = jpeg(200_000, 5);
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let head = format!(
        "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\nContent-Length: {}",
        photo.len()
    );
    let mut conn = open(&base, &head).await;
    conn.write_all(&photo[..100_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    gw.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // During the drain: a new connection is served, and readiness is false.
    let ready = get_on_a_new_connection(&base, "/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["code"], "not-ready");
    let live = get_on_a_new_connection(&base, "/healthz").await;
    assert_eq!(live.status(), 200);

    // After the drain the listener is closed, but the upload in flight still completes.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "no longer accepting"
    );
    conn.write_all(&photo[100_000..]).await.unwrap();
    let answer = read_response(&mut conn, Duration::from_secs(10)).await;
    assert!(
        answer
            .as_ref()
            .is_some_and(|a| a.status_line.starts_with("HTTP/1.1 200")),
        "in-flight upload answer: {answer:?}"
    );

    assert_eq!(gw.exit_code().await, Some(0));
    assert_eq!(
        emus.graph.requests().len(),
        1,
        "the in-flight photo reached Graph"
    );
}

/// SIGINT is the same graceful stop (actix's own handling would make it a fast one).
#[tokio::test]
async fn sigint_is_the_same_graceful_stop() {
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let mut gw = GatewayProcess::spawn(&emus, &[("PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS", "1")]).await;
    gw.signal("INT");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = get_on_a_new_connection(&gw.base(), "/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(gw.exit_code().await, Some(0));
}
