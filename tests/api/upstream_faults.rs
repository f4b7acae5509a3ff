//! Upstream faults injected through the emulators (issue 5, "Upstream faults"): Entra's token
//! endpoint, the JWKS endpoint and Graph refuse, stall, reset, throttle or talk nonsense. Every
//! case shows the status and problem code of the errors table, `Retry-After` where it helps, a
//! problem body naming the upstream, no panic (the gateway keeps answering), and that the first
//! request after the upstream recovers succeeds: no stuck state, no cached failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators, FaultRule};
use serde_json::Value;

use crate::support::jwt::{claims, rs256};
use crate::support::{DEMO, ME, TestApp, jpeg, spawn_app_with, start_gateway};

fn token_path(emus: &Emulators) -> String {
    format!("/{}/oauth2", emus.tenant_id())
}

fn jwks_path(emus: &Emulators) -> String {
    format!("/{}/discovery", emus.tenant_id())
}

/// Asserts the problem's status, code and upstream, and returns its headers and body.
async fn expect_upstream_problem(
    resp: reqwest::Response,
    status: u16,
    code: &str,
    upstream: &str,
    what: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let (got, headers, body) = TestApp::problem(resp).await;
    assert_eq!(
        (got, body["code"].as_str()),
        (status, Some(code)),
        "{what}: {body}"
    );
    assert_eq!(
        body["upstream"], upstream,
        "{what}: names the upstream: {body}"
    );
    (headers, body)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Waits until `port` on 127.0.0.1 accepts connections again (an emulator's refusal is over).
async fn wait_listening(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("port {port} never listened again");
}

/// The first request after recovery, with a fresh token (nothing cached from before) and one
/// whose exchange may have failed before.
async fn assert_recovered(app: &TestApp, token: &str, what: &str) {
    let resp = app.put_raw(ME, token, jpeg(700, 9)).await;
    assert_eq!(
        resp.status(),
        200,
        "{what}: the first request after recovery succeeds: {}",
        resp.text().await.unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Entra (token endpoint)

#[tokio::test]
async fn entra_refusing_connections_is_503_identity_unavailable_then_recovers() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.token(DEMO);
    app.emus
        .entra
        .refuse_connections(Duration::from_secs(2))
        .await;
    let (headers, body) = expect_upstream_problem(
        app.put_raw(ME, &token, jpeg(500, 1)).await,
        503,
        "identity-unavailable",
        "entra",
        "Entra refuses connections",
    )
    .await;
    assert!(retry_after(&headers).is_some_and(|s| s >= 1), "{headers:?}");
    assert!(body.get("graphError").is_none(), "{body}");
    assert!(
        app.emus.graph.requests().is_empty(),
        "nothing sent to Graph"
    );

    wait_listening(app.emus.entra.port()).await;
    assert_recovered(&app, &token, "Entra listening again").await;
}

#[tokio::test]
async fn entra_slower_than_the_token_timeout_is_503_identity_unavailable() {
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_TOKEN_TIMEOUT_SECS".into(), "1".into()))).await;
    let token = app.token(DEMO);
    app.emus.entra.add_fault(
        FaultRule::latency(Duration::from_millis(3_000))
            .path_prefix(&token_path(&app.emus))
            .times(1),
    );
    let started = Instant::now();
    let (headers, _) = expect_upstream_problem(
        app.put_raw(ME, &token, jpeg(500, 1)).await,
        503,
        "identity-unavailable",
        "entra",
        "Entra slower than the token timeout",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "answered at the token timeout, not when Entra finally answered: {:?}",
        started.elapsed()
    );
    assert!(retry_after(&headers).is_some(), "{headers:?}");
    assert!(app.emus.graph.requests().is_empty());
    // The fault was used once: the very next request exchanges and uploads.
    assert_recovered(&app, &token, "Entra fast again").await;
}

#[tokio::test]
async fn entra_garbage_and_5xx_are_503_identity_unavailable() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.token(DEMO);
    let path = token_path(&app.emus);
    let cases: Vec<(&str, FaultRule)> = vec![
        ("200 with garbage", FaultRule::status(200).garbage()),
        (
            "200 with JSON lacking access_token",
            FaultRule::status(200).body("{\"token_type\":\"Bearer\"}"),
        ),
        (
            "200 with an HTML page",
            FaultRule::status(200).body("<html><body>Sign in</body></html>"),
        ),
        ("400 with garbage", FaultRule::status(400).garbage()),
        ("500", FaultRule::status(500)),
        ("502 with garbage", FaultRule::status(502).garbage()),
        ("504", FaultRule::status(504)),
        ("a reset", FaultRule::reset()),
    ];
    for (what, rule) in cases {
        app.emus.entra.add_fault(rule.path_prefix(&path).times(1));
        let (headers, _) = expect_upstream_problem(
            app.put_raw(ME, &token, jpeg(500, 1)).await,
            503,
            "identity-unavailable",
            "entra",
            what,
        )
        .await;
        assert!(retry_after(&headers).is_some(), "{what}: Retry-After");
        assert!(
            app.emus.entra.faults().is_empty(),
            "{what}: the fault was used"
        );
    }
    assert!(
        app.emus.graph.requests().is_empty(),
        "nothing sent to Graph"
    );
    assert_recovered(&app, &token, "after garbage").await;
}

#[tokio::test]
async fn entra_429_with_retry_after_is_503_with_that_retry_after() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.token(DEMO);
    app.emus.entra.add_fault(
        FaultRule::status(429)
            .retry_after("17")
            .path_prefix(&token_path(&app.emus)),
    );
    for _ in 0..2 {
        let (headers, body) = expect_upstream_problem(
            app.put_raw(ME, &token, jpeg(500, 1)).await,
            503,
            "identity-unavailable",
            "entra",
            "Entra 429",
        )
        .await;
        assert_eq!(
            retry_after(&headers),
            Some(17),
            "Entra's Retry-After: {headers:?}"
        );
        assert!(body["detail"].as_str().unwrap().contains("429"), "{body}");
    }
    app.emus.entra.clear_faults();
    assert_recovered(&app, &token, "Entra no longer throttling").await;
}

// ---------------------------------------------------------------------------------------------
// JWKS

async fn readyz(app: &TestApp) -> reqwest::Response {
    app.client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("readyz answers")
}

/// Polls `/readyz` until 200; returns how long that took, or panics after `limit`.
async fn time_until_ready(app: &TestApp, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if readyz(app).await.status() == 200 {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not ready within {limit:?}");
}

async fn assert_not_ready(app: &TestApp, what: &str) {
    let (status, headers, body) = TestApp::problem(readyz(app).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not-ready")),
        "{what}: {body}"
    );
    assert!(retry_after(&headers).is_some(), "{what}: Retry-After");
    // A photo request meanwhile is refused the same way, never a 401 for a valid token.
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(300, 1)).await;
    let (status, headers, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("not-ready")),
        "{what}: a photo request while not ready: {body}"
    );
    assert!(retry_after(&headers).is_some(), "{what}: Retry-After");
}

#[tokio::test]
async fn jwks_down_at_start_means_not_ready_until_it_recovers_within_the_capped_backoff() {
    let emus = Arc::new(
        Emulators::start(EmulatorOptions::default())
            .await
            .expect("emulators start"),
    );
    // The keys endpoint answers 503 until cleared; discovery itself works.
    emus.entra
        .add_fault(FaultRule::status(503).path_prefix(&jwks_path(&emus)));
    let app = start_gateway(emus.clone(), |v| {
        v.push((
            "PHOTO_GATEWAY_JWKS_RETRY_MAX_BACKOFF_SECS".into(),
            "1".into(),
        ))
    })
    .await;
    // Long enough for an uncapped backoff (0.25 s doubling) to have grown past 2 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_not_ready(&app, "JWKS answering 503").await;
    let attempts = emus.entra.counters().jwks;
    assert!(
        attempts >= 4,
        "kept retrying while the JWKS was down: {attempts} fetches"
    );

    emus.entra.clear_faults();
    let took = time_until_ready(&app, Duration::from_secs(10)).await;
    assert!(
        took < Duration::from_millis(2_500),
        "ready within the 1 s backoff cap after the JWKS recovered, took {took:?}"
    );
    assert_recovered(&app, &app.token(DEMO), "JWKS recovered").await;
}

#[tokio::test]
async fn entra_unreachable_at_start_means_not_ready_then_ready() {
    let emus = Arc::new(
        Emulators::start(EmulatorOptions::default())
            .await
            .expect("emulators start"),
    );
    emus.entra.refuse_connections(Duration::from_secs(3)).await;
    let app = start_gateway(emus.clone(), |v| {
        v.push((
            "PHOTO_GATEWAY_JWKS_RETRY_MAX_BACKOFF_SECS".into(),
            "1".into(),
        ))
    })
    .await;
    assert_not_ready(&app, "Entra refusing connections").await;
    wait_listening(emus.entra.port()).await;
    let took = time_until_ready(&app, Duration::from_secs(10)).await;
    assert!(
        took < Duration::from_millis(2_500),
        "ready within the 1 s backoff cap after Entra came back, took {took:?}"
    );
    assert_recovered(&app, &app.token(DEMO), "Entra back").await;
}

#[tokio::test]
async fn jwks_down_during_a_refresh_keeps_the_last_known_good_keys() {
    let app = spawn_app_with(|v| {
        v.push((
            "PHOTO_GATEWAY_JWKS_UNKNOWN_KID_COOLDOWN_SECS".into(),
            "0".into(),
        ))
    })
    .await;
    let claims = claims(&app);
    let unknown_kid = |app: &TestApp| {
        let kid = format!("unknown-{}", uuid::Uuid::new_v4());
        app.emus.sign_jwt(rs256(&kid), &claims)
    };

    for (what, fault) in [
        ("JWKS 503", Some(FaultRule::status(503))),
        ("JWKS garbage", Some(FaultRule::status(200).garbage())),
        (
            "JWKS with no keys",
            Some(FaultRule::status(200).body("{\"keys\":[]}")),
        ),
        ("JWKS reset", Some(FaultRule::reset())),
        ("Entra refusing connections", None),
    ] {
        let injected = fault.is_some();
        match fault {
            Some(rule) => {
                app.emus
                    .entra
                    .add_fault(rule.path_prefix(&jwks_path(&app.emus)).times(1));
            }
            None => {
                app.emus
                    .entra
                    .refuse_connections(Duration::from_secs(2))
                    .await
            }
        }
        // An unknown kid forces a refresh, which fails.
        let resp = app.put_raw(ME, &unknown_kid(&app), jpeg(300, 1)).await;
        let (status, _, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid-token")),
            "{what}: an unknown kid is still just an invalid token: {body}"
        );
        if injected {
            assert!(
                app.emus.entra.faults().is_empty(),
                "{what}: a refresh was attempted (and hit the fault)"
            );
        }
        // The keys loaded before are still used: a valid token validates.
        assert_eq!(readyz(&app).await.status(), 200, "{what}: still ready");
        let resp = app
            .put_raw(
                ME,
                &app.token_with(CallerTokenSpec::for_user(DEMO)),
                jpeg(300, 2),
            )
            .await;
        let status = resp.status();
        if what == "Entra refusing connections" {
            // The exchange needs Entra too; the token itself validated (no 401).
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                (status.as_u16(), body["code"].as_str()),
                (503, Some("identity-unavailable")),
                "{what}: {body}"
            );
            wait_listening(app.emus.entra.port()).await;
        } else {
            assert_eq!(
                status,
                200,
                "{what}: last-known-good keys kept: {}",
                resp.text().await.unwrap()
            );
        }
        app.emus.entra.clear_faults();
    }
    assert_recovered(&app, &app.token(DEMO), "JWKS back").await;
}

// ---------------------------------------------------------------------------------------------
// Graph

#[tokio::test]
async fn graph_refusing_connections_is_502_graph_unreachable_then_recovers() {
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_GRAPH_DEADLINE_SECS".into(), "3".into()))).await;
    let token = app.token(DEMO);
    // Warm the token cache so only Graph is involved.
    assert_recovered(&app, &token, "before the fault").await;
    app.emus
        .graph
        .refuse_connections(Duration::from_secs(6))
        .await;
    let (headers, body) = expect_upstream_problem(
        app.put_raw(ME, &token, jpeg(500, 1)).await,
        502,
        "graph-unreachable",
        "graph",
        "Graph refuses connections",
    )
    .await;
    assert!(
        body.get("graphError").is_none_or(Value::is_null),
        "Graph never answered: {body}"
    );
    assert!(!headers.contains_key("retry-after") || retry_after(&headers).is_some());
    wait_listening(app.emus.graph.port()).await;
    assert_recovered(&app, &token, "Graph listening again").await;
}

#[tokio::test]
async fn graph_reset_mid_request_is_502_graph_unreachable_then_recovers() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.token(DEMO);
    for method in ["PUT", "PATCH"] {
        app.emus.graph.add_fault(
            FaultRule::reset()
                .method(method)
                .path_prefix("/v1.0/me")
                .times(1),
        );
        let resp = app
            .send_raw(method, ME, Some(&token), jpeg(200_000, 1), "image/jpeg")
            .await;
        expect_upstream_problem(resp, 502, "graph-unreachable", "graph", method).await;
    }
    assert!(
        app.emus.graph.requests().iter().all(|r| r.status != 200),
        "nothing stored"
    );
    assert_recovered(&app, &token, "after resets").await;
}

#[tokio::test]
async fn graph_slower_than_the_attempt_timeout_is_504_graph_timeout() {
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_GRAPH_TIMEOUT_SECS".into(), "1".into()))).await;
    let token = app.token(DEMO);
    assert_recovered(&app, &token, "before the fault").await;
    app.emus.graph.add_fault(
        FaultRule::latency(Duration::from_millis(3_000))
            .path_prefix("/v1.0/me")
            .times(1),
    );
    let started = Instant::now();
    expect_upstream_problem(
        app.put_raw(ME, &token, jpeg(500, 1)).await,
        504,
        "graph-timeout",
        "graph",
        "Graph slower than the timeout",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2_900),
        "answered at the timeout: {:?}",
        started.elapsed()
    );
    assert_recovered(&app, &token, "Graph fast again").await;
}

#[tokio::test]
async fn graph_503_repeatedly_is_503_graph_unavailable_with_retry_after() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.token(DEMO);
    app.emus.graph.add_fault(
        FaultRule::status(503)
            .retry_after("0.2")
            .path_prefix("/v1.0/me"),
    );
    let (headers, body) = expect_upstream_problem(
        app.put_raw(ME, &token, jpeg(500, 1)).await,
        503,
        "graph-unavailable",
        "graph",
        "Graph 503 on every attempt",
    )
    .await;
    assert!(retry_after(&headers).is_some_and(|s| s >= 1), "{headers:?}");
    assert!(
        body["graphError"].is_object(),
        "Graph's error is passed on: {body}"
    );
    assert!(
        body["graphError"]["requestId"].as_str().is_some(),
        "Graph's request id is passed on: {body}"
    );
    let tries = app.emus.graph.counters().by_status.get(&503).copied();
    assert_eq!(tries, Some(4), "one try and three retries");
    // Without Retry-After from Graph too.
    app.emus.graph.clear_faults();
    app.emus
        .graph
        .add_fault(FaultRule::status(503).path_prefix("/v1.0/me"));
    let (headers, _) = expect_upstream_problem(
        app.put_raw(ME, &token, jpeg(500, 1)).await,
        503,
        "graph-unavailable",
        "graph",
        "Graph 503 without Retry-After",
    )
    .await;
    assert!(retry_after(&headers).is_some_and(|s| s >= 1), "{headers:?}");
    app.emus.graph.clear_faults();
    assert_recovered(&app, &token, "Graph available again").await;
}

#[tokio::test]
async fn graph_2xx_with_an_unexpected_body_is_200() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.token(DEMO);
    let cases: Vec<(&str, FaultRule)> = vec![
        ("200 with garbage", FaultRule::status(200).garbage()),
        (
            "200 with an HTML page",
            FaultRule::status(200).body("<html>ok</html>"),
        ),
        (
            "200 with an error-shaped JSON",
            FaultRule::status(200).body("{\"error\":{\"code\":\"Weird\",\"message\":\"?\"}}"),
        ),
        (
            "201 with an object",
            FaultRule::status(201).body("{\"unexpected\":[1,2,3]}"),
        ),
        ("204", FaultRule::status(204)),
    ];
    for (what, rule) in cases {
        app.emus
            .graph
            .add_fault(rule.path_prefix("/v1.0/me").times(1));
        let photo = jpeg(900, 4);
        let resp = app.put_raw(ME, &token, photo.clone()).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{what}: {text}");
        let receipt: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(receipt["bytes"], photo.len(), "{what}: {receipt}");
        assert_eq!(receipt["target"], "/me/photo/$value", "{what}");
        assert!(receipt.get("code").is_none(), "{what}: not a problem");
    }
    assert_recovered(&app, &token, "after odd 2xx").await;
}
