//! Graph's answers: retries honouring Retry-After, errors surfaced with Graph's code, a refused
//! token replaced once.

use std::time::{Duration, Instant};

use photo_gateway_emulators::FaultRule;

use crate::support::{DEMO, ME, TestApp, jpeg, spawn_app, spawn_app_with};

#[tokio::test]
async fn throttled_then_accepted_waits_for_retry_after() {
    let app = spawn_app().await;
    app.emus.graph.add_fault(
        FaultRule::status(429)
            .retry_after("0.5")
            .path_prefix("/v1.0/me")
            .times(1),
    );
    let started = Instant::now();
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(1000, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
    let stored: Vec<_> = app
        .emus
        .graph
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(stored.len(), 1, "one upload stored");
    assert_eq!(
        app.emus.graph.counters().by_status.get(&429).copied(),
        Some(1)
    );
}

#[tokio::test]
async fn graph_404_is_404_with_graphs_code() {
    let app = spawn_app().await;
    let resp = app
        .put_raw(
            "/v1.0/users/nobody@contoso.onmicrosoft.com/photo/$value",
            &app.token(DEMO),
            jpeg(200, 1),
        )
        .await;
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("graph-rejected")),
        "{body}"
    );
    assert!(
        body["graphError"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert!(body["graphError"]["requestId"].as_str().is_some(), "{body}");
    assert_eq!(body["upstream"], "graph");
}

#[tokio::test]
async fn graph_503_four_times_is_503_graph_unavailable() {
    let app = spawn_app().await;
    app.emus.graph.add_fault(
        FaultRule::status(503)
            .retry_after("0.1")
            .path_prefix("/v1.0/me")
            .times(4),
    );
    let (status, headers, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("graph-unavailable")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        app.emus.graph.counters().by_status.get(&503).copied(),
        Some(4),
        "1 try + 3 retries"
    );
    // The fault is used up: the next request goes through.
    assert_eq!(
        app.put_raw(ME, &app.token(DEMO), jpeg(200, 1))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn graph_401_once_then_success_costs_exactly_one_extra_exchange() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    assert_eq!(app.put_raw(ME, &token, jpeg(200, 1)).await.status(), 200);
    assert_eq!(app.obo_exchanges(), 1);
    app.emus
        .graph
        .add_fault(FaultRule::status(401).path_prefix("/v1.0/me").times(1));
    let resp = app.put_raw(ME, &token, jpeg(200, 2)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(app.obo_exchanges(), 2, "exactly one extra exchange");
}

#[tokio::test]
async fn graph_401_twice_is_502_graph_rejected_token() {
    let app = spawn_app().await;
    app.emus
        .graph
        .add_fault(FaultRule::status(401).path_prefix("/v1.0/me"));
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("graph-rejected-token")),
        "{body}"
    );
}

#[tokio::test]
async fn graph_500_is_502_and_a_reset_is_graph_unreachable() {
    let app = spawn_app().await;
    app.emus
        .graph
        .add_fault(FaultRule::status(500).path_prefix("/v1.0/me").times(1));
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("graph-error")),
        "{body}"
    );
    app.emus
        .graph
        .add_fault(FaultRule::reset().path_prefix("/v1.0/me").times(1));
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(200, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("graph-unreachable")),
        "{body}"
    );
    assert_eq!(
        app.put_raw(ME, &app.token(DEMO), jpeg(200, 1))
            .await
            .status(),
        200,
        "recovers at once"
    );
}

#[tokio::test]
async fn requests_refused_together_by_graph_share_one_fresh_exchange() {
    // Many uploads at once with one cached token that Graph has revoked (continuous access
    // evaluation): each gets 401 with a claims challenge, and all of them must wait for one
    // single-flight exchange instead of exchanging once each (issue 14 item 8).
    let app = spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_MAILBOX_CONCURRENCY".into(), "0".into()));
        v.push(("PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S".into(), "0".into()));
    })
    .await;
    let token = app.token(DEMO);
    assert_eq!(app.put_raw(ME, &token, jpeg(200, 1)).await.status(), 200);
    assert_eq!(app.obo_exchanges(), 1);
    // The cached token must be from an earlier second than the revocation.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.emus.graph.revoke_tokens_issued_before_now();
    let n = 16;
    let uploads = (0..n).map(|i| app.put_raw(ME, &token, jpeg(200, 10 + i as u8)));
    let answers = futures_util::future::join_all(uploads).await;
    for r in answers {
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    assert_eq!(
        app.obo_exchanges(),
        2,
        "{n} requests refused with one token cause one fresh exchange"
    );
    let revoked = app
        .emus
        .graph
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert!(revoked >= 1, "Graph refused the revoked token");
}
