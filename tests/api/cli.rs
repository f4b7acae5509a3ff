//! The binary's small commands: `healthcheck` (for distroless images and `helm test`) and
//! `check-config` (fails fast, naming the variable).

use std::process::Command;

use crate::support::{BINARY, spawn_app};

fn bin() -> Command {
    let mut c = Command::new(BINARY);
    c.env_clear();
    c
}

#[tokio::test]
async fn healthcheck_exits_0_when_ready_and_1_otherwise() {
    let app = spawn_app().await;
    let ready = bin()
        .args(["healthcheck", &format!("{}/readyz", app.address)])
        .status()
        .unwrap();
    assert_eq!(ready.code(), Some(0));
    let missing = bin()
        .args(["healthcheck", &format!("{}/nothing", app.address)])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = bin()
        .args([
            "healthcheck",
            "--timeout",
            "1",
            &format!("http://127.0.0.1:{closed}/readyz"),
        ])
        .status()
        .unwrap();
    assert_eq!(down.code(), Some(1));
}

#[test]
fn check_config_names_the_variable_to_fix() {
    let out = bin().arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PHOTO_GATEWAY_TENANT_ID"));

    let out = bin()
        .arg("check-config")
        .env(
            "PHOTO_GATEWAY_TENANT_ID",
            "8f3c2a10-5b7e-4d21-9c3a-000000000001",
        )
        .env(
            "PHOTO_GATEWAY_CLIENT_ID",
            "4a7d1c2e-0000-4b5f-8e6a-0000000000a1",
        )
        .env("PHOTO_GATEWAY_CLIENT_SECRET", "x")
        .env("PHOTO_GATEWAY_MAX_PHOTO_BYTES", "5000000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PHOTO_GATEWAY_MAX_PHOTO_BYTES"));

    let serve = bin().arg("serve").output().unwrap();
    assert_eq!(
        serve.status.code(),
        Some(2),
        "serve fails fast on bad config too"
    );
}
