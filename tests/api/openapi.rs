//! The committed OpenAPI document is what the code generates, and what the server serves.

use crate::support::spawn_app;

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
