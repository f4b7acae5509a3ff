//! One audit line per photo change, on its own log target, with who, what, how much and how it
//! went.

use photo_gateway_emulators::directory::{DEMO_CLIENT_ID, DEMO_USER_ID, TENANT_ID};

use crate::support::{
    DEMO, MEGAN, captured_logs, group_photo, jpeg, sha256_hex, spawn_app, user_photo,
};

fn audit_lines() -> Vec<serde_json::Value> {
    captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "photo_gateway::audit")
        .collect()
}

#[tokio::test]
async fn every_photo_change_is_audited() {
    let app = spawn_app().await;
    let photo = jpeg(7777, 42);
    let path = user_photo(MEGAN);
    let resp = app
        .send_multipart("PATCH", &path, &app.token(DEMO), photo.clone())
        .await;
    assert_eq!(resp.status(), 200);
    let receipt: serde_json::Value = resp.json().await.unwrap();

    let sha = sha256_hex(&photo);
    let lines = audit_lines();
    let line = lines
        .iter()
        .find(|l| l["fields"]["sha256"] == sha.as_str())
        .unwrap_or_else(|| panic!("no audit line for this upload among {lines:?}"));
    let f = &line["fields"];
    assert_eq!(f["tenant_id"], TENANT_ID);
    assert_eq!(f["user_oid"], DEMO_USER_ID);
    assert_eq!(f["client_app"], DEMO_CLIENT_ID);
    assert_eq!(f["target_path"], path.trim_start_matches("/v1.0"));
    assert_eq!(f["method"], "PATCH");
    assert_eq!(f["bytes"], 7777);
    assert_eq!(f["outcome"], "success");
    assert_eq!(f["graph_request_id"], receipt["graphRequestId"]);

    // A refused change is audited too, with its outcome.
    let group = group_photo("00000000-0000-0000-0000-00000000dead");
    let resp = app.put_raw(&group, &app.token(DEMO), jpeg(500, 43)).await;
    assert_eq!(resp.status(), 404);
    let lines = audit_lines();
    assert!(
        lines.iter().any(
            |l| l["fields"]["target_path"] == group.trim_start_matches("/v1.0")
                && l["fields"]["outcome"] == "graph-rejected"
        ),
        "{lines:?}"
    );
}
