//! `/metrics` on its own port: Prometheus text with bounded labels (route templates, never ids).

use crate::support::{DEMO, GUEST_PHOTO, GatewayProcess, ME, free_port, jpeg, raw_http, spawn_app};

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
    // Only the series invented methods can reach are counted: this process's recorder is shared
    // with the tests running beside this one, which add series of their own meanwhile.
    let invented_series = |text: &str| {
        text.lines()
            .filter(|l| l.contains("method=\"other\""))
            .count()
    };
    let before = invented_series(&app.metrics_text().await);
    for i in 0..300 {
        let path = ["/healthz", "/v1.0/me/photo/$value", &format!("/x{i}")][i % 3].to_owned();
        let (status, _) =
            raw_http::send_framed(&app.address, &format!("X{i} {path} HTTP/1.1"), b"").await;
        assert!(status >= 400, "X{i} {path}: {status}");
    }
    let text = app.metrics_text().await;
    let after = invented_series(&text);
    assert!(!text.contains("method=\"X"), "invented methods are `other`");
    assert!(!text.contains("/x1"), "raw paths are never labels");
    assert!(
        before > 0,
        "the warm-up's invented methods are counted as `other`"
    );
    assert!(
        after <= before + 40,
        "300 invented requests grew the `other` series from {before} to {after} lines"
    );
}

#[tokio::test]
async fn the_binary_reports_its_allocators_figures() {
    // The real binary (jemalloc is its allocator) after one upload: what it has live, the pages
    // that holds, and what the allocator keeps resident, so that RSS can be explained.
    let emus = photo_gateway_emulators::Emulators::start(Default::default())
        .await
        .expect("emulators start");
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let g = GatewayProcess::spawn(&emus, &[("PHOTO_GATEWAY_METRICS_ADDR", &metrics_addr)]).await;
    let token = emus.caller_token(&photo_gateway_emulators::CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    let r = client
        .put(format!("{}{ME}", g.base()))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(jpeg(200_000, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let figure = |kind: &str| -> f64 {
        let prefix = format!("photo_gateway_allocator_bytes{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {kind} figure:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (allocated, active, resident) = (figure("allocated"), figure("active"), figure("resident"));
    assert!(
        allocated > 1_000_000.0,
        "a running gateway has over 1 MB live: {allocated}"
    );
    assert!(active >= allocated, "{active} < {allocated}");
    assert!(resident >= active, "{resident} < {active}");
    assert!(figure("retained") >= 0.0);
}
