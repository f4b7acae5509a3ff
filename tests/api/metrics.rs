//! `/metrics` on its own port: Prometheus text with bounded labels (route templates, never ids).

use crate::support::{DEMO, GUEST_PHOTO, ME, jpeg, raw_http, spawn_app};

#[tokio::test]
async fn metrics_use_route_templates_and_count_the_flow() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    assert_eq!(
        app.put_raw(GUEST_PHOTO, &token, jpeg(3000, 1))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.put_raw(ME, &token, b"not a jpeg".to_vec())
            .await
            .status(),
        415
    );

    let text = app.metrics_text().await;
    assert!(
        text.contains(r#"route="/v1.0/users/{user}/photo/$value""#),
        "{text}"
    );
    assert!(!text.contains("alex_fabrikam"), "no raw ids in labels");
    for name in [
        "photo_gateway_http_requests_total",
        "photo_gateway_http_request_duration_seconds_bucket",
        "photo_gateway_photo_bytes_received_total",
        "photo_gateway_token_cache_requests_total",
        "photo_gateway_token_requests_total",
        "photo_gateway_graph_requests_total",
        "photo_gateway_jwks_refreshes_total",
        "photo_gateway_uploads_in_flight",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    // The API port does not serve metrics.
    assert_eq!(
        app.client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_series() {
    // Issue 14 item 1: every label comes from a fixed set, so a client cannot grow /metrics.
    let app = spawn_app().await;
    for (i, path) in ["/healthz", "/v1.0/me/photo/$value", "/nowhere"]
        .iter()
        .enumerate()
    {
        raw_http::send_framed(&app.address, &format!("WARMUP{i} {path} HTTP/1.1"), b"").await;
    }
    let before = app.metrics_text().await.lines().count();
    for i in 0..300 {
        let path = ["/healthz", "/v1.0/me/photo/$value", &format!("/x{i}")][i % 3].to_owned();
        let (status, _) =
            raw_http::send_framed(&app.address, &format!("X{i} {path} HTTP/1.1"), b"").await;
        assert!(status >= 400, "X{i} {path}: {status}");
    }
    let text = app.metrics_text().await;
    let after = text.lines().count();
    assert!(!text.contains("method=\"X"), "invented methods are `other`");
    assert!(!text.contains("/x1"), "raw paths are never labels");
    assert!(
        after <= before + 40,
        "300 invented requests grew /metrics from {before} to {after} lines"
    );
}
