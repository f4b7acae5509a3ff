//! `/metrics` on its own port: Prometheus text with bounded labels (route templates, never ids).

use crate::support::{DEMO, GUEST_PHOTO, ME, jpeg, spawn_app};

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

    let port = app.metrics_port.expect("metrics served");
    let text = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
