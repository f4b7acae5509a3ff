//! One audit line per photo change, on its own log target, with who, what, how much and how it
//! went.

use photo_gateway_emulators::directory::{DEMO_CLIENT_ID, DEMO_USER_ID, GROUP_ID, TENANT_ID};

use crate::support::{
    DEMO, MEGAN, TestApp, captured_logs, group_photo, jpeg, sha256_hex, spawn_app, spawn_app_with,
    user_photo,
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
    // Before Graph is called, an "attempt" line: a change that may happen leaves a trace even if
    // the caller goes away.
    let attempt = lines
        .iter()
        .position(|l| l["fields"]["sha256"] == sha.as_str() && l["fields"]["outcome"] == "attempt")
        .unwrap_or_else(|| panic!("no attempt line for this upload among {lines:?}"));
    let (i, line) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l["fields"]["sha256"] == sha.as_str() && l["fields"]["outcome"] != "attempt")
        .unwrap_or_else(|| panic!("no audit line for this upload among {lines:?}"));
    assert!(attempt < i, "the attempt is logged before the outcome");
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

#[tokio::test]
async fn every_authenticated_refusal_is_audited_with_its_code_and_401s_are_not() {
    // Issue 14 item 4: refusals before Graph leave an audit line with their outcome code.
    let app = spawn_app_with(|v| {
        v.retain(|(k, _)| k != "PHOTO_GATEWAY_CALLER_POLICY");
        v.push(("PHOTO_GATEWAY_CALLER_RATE_PER_MIN".into(), "1".into()));
        v.push(("PHOTO_GATEWAY_CALLER_BURST".into(), "2".into()));
    })
    .await;
    let me = "/v1.0/me/photo/$value";
    let group = format!("/v1.0/groups/{GROUP_ID}/photo/$value");
    // A user of its own, so the lines found are this test's.
    let user = "lee.gu@contoso.onmicrosoft.com";
    let token = app.token(user);
    let png = b"\x89PNG\r\n\x1a\n0000000000000000".to_vec();
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (group.clone(), jpeg(200, 1), 403, "caller-not-allowed"),
        (me.to_owned(), png, 415, "unsupported-media-type"),
        (me.to_owned(), jpeg(4_194_304, 2), 413, "photo-too-large"),
        (
            "/v1.0/users/a%2Fb/photo/$value".to_owned(),
            jpeg(200, 3),
            400,
            "invalid-target",
        ),
        (me.to_owned(), jpeg(200, 4), 429, "rate-limited"),
    ];
    for (path, body, status, code) in cases {
        let (got, _, problem) = TestApp::problem(app.put_raw(&path, &token, body).await).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{path}: {problem}"
        );
        let lines = audit_lines();
        assert!(
            lines.iter().any(|l| l["fields"]["user_oid"] == LEE_USER_ID
                && l["fields"]["outcome"] == code
                && l["fields"]["method"] == "PUT"),
            "no audit line with outcome {code} among {lines:?}"
        );
    }
    // An unauthenticated request is a request-log line, not an audit line: every audit line
    // names an authenticated caller — a user, or an app-only caller's app (app_only.rs).
    let resp = app.put_raw(me, "not-a-token", jpeg(200, 5)).await;
    assert_eq!(resp.status(), 401);
    let named = |v: &serde_json::Value| v.as_str().is_some_and(|u| !u.is_empty());
    for line in audit_lines() {
        let f = &line["fields"];
        assert!(
            named(&f["user_oid"]) || (f["app_only"] == true && named(&f["client_app"])),
            "{line}"
        );
    }
}

/// Lee Gu of the seeded directory.
const LEE_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000103";

#[tokio::test]
async fn the_access_line_carries_what_the_request_learned_along_the_way() {
    let app = spawn_app().await;
    let path = user_photo(MEGAN);
    let resp = app
        .send_multipart("PUT", &path, &app.token(DEMO), jpeg(4321, 44))
        .await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let logs = captured_logs();
    let raw = logs
        .lines()
        .find(|l| {
            l.contains(&request_id) && l.contains("request finished") && l.contains("latency_ms")
        })
        .unwrap_or_else(|| panic!("no access line for {request_id}"));
    let line: serde_json::Value = serde_json::from_str(raw).unwrap();
    // Recorded on the request's span at different moments: once the caller is known, once the
    // target is parsed, once Graph answered, and as the answer left.
    let span = &line["span"];
    assert_eq!(span["request_id"], request_id.as_str());
    assert_eq!(span["client_app"], DEMO_CLIENT_ID);
    assert_eq!(span["tenant_id"], TENANT_ID);
    assert_eq!(span["http.route"], "/v1.0/users/{user}/photo/$value");
    assert_eq!(span["target_kind"], "user");
    assert_eq!(span["photo_bytes"], 4321);
    assert_eq!(span["http.status_code"], 200);
    assert!(
        span["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{span}"
    );
    assert_eq!(line["fields"]["status"], 200);
    // The route first recorded at the start is replaced, not repeated.
    assert_eq!(raw.matches("\"http.route\"").count(), 1, "{raw}");
}
