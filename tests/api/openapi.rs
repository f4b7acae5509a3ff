//! The committed OpenAPI document is what the code generates, and what the server serves.

use crate::support::{TestApp, spawn_app};

#[tokio::test]
async fn committed_openapi_json_is_up_to_date_and_served() {
    let generated = photo_gateway::http::docs::openapi_pretty_json();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap_or_default();
    assert!(
        generated == committed,
        "openapi/openapi.json is stale: regenerate it with `cargo run -- openapi > openapi/openapi.json`"
    );
    let app = spawn_app().await;
    let served = app.get_text(&format!("{}/openapi.json", app.address)).await;
    assert_eq!(served, generated);
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"].as_object().unwrap().len(),
        22,
        "8 …/photo/$value paths (7 update paths + teams), 6 …/photo, 3 …/photos, 3 …/photos/{{size}}/$value, 2 probes"
    );
    let ui = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(
        ui.text().await.unwrap().contains("swagger"),
        "vendored Swagger UI"
    );
}

#[tokio::test]
async fn the_documentations_files_are_served_and_a_missing_one_is_a_problem() {
    let app = spawn_app().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();

    // The initializer is rewritten to load this gateway's document.
    let init = get("/docs/swagger-initializer.js").await.unwrap();
    assert_eq!(init.status(), 200);
    assert!(
        init.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert!(init.text().await.unwrap().contains("/openapi.json"));

    for path in [
        "/docs/no-such-file.js",
        "/docs/../../etc/passwd",
        "/docs/%2e%2e/Cargo.toml",
    ] {
        let resp = get(path).await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let (status, headers, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not-found")),
            "{path}"
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}"
        );
        assert_eq!(body["requestId"], id.as_str(), "{path}");
    }
}
