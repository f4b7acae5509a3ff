//! The gateway's own credential: certificate (PS256 assertion), workload-identity token file,
//! and a secret file rotated without a restart.

use std::path::PathBuf;

use crate::support::{DEMO, ME, TestApp, captured_logs, jpeg, spawn_app_with, spawn_gateway};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgw-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Replaces the client secret in the gateway's variables with `(name, value)`.
fn swap_credential(v: &mut Vec<(String, String)>, name: &str, value: String) {
    v.retain(|(k, _)| k != "PHOTO_GATEWAY_CLIENT_SECRET");
    v.push((name.to_owned(), value));
}

#[tokio::test]
async fn a_certificate_credential_signs_a_ps256_assertion() {
    let dir = temp_dir("cert");
    let emus = std::sync::Arc::new(
        photo_gateway_emulators::Emulators::start(Default::default())
            .await
            .unwrap(),
    );
    let cert = emus.entra.create_client_certificate().unwrap();
    std::fs::write(dir.join("cert.pem"), &cert.certificate_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &cert.private_key_pem).unwrap();
    let app = spawn_gateway(emus, |v| {
        swap_credential(
            v,
            "PHOTO_GATEWAY_CLIENT_CERTIFICATE_FILE",
            dir.join("cert.pem").display().to_string(),
        );
        v.push((
            "PHOTO_GATEWAY_CLIENT_CERTIFICATE_KEY_FILE".into(),
            dir.join("key.pem").display().to_string(),
        ));
    })
    .await;
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(500, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn a_federated_token_file_is_reread_so_rotation_needs_no_restart() {
    let dir = temp_dir("wi");
    let file = dir.join("azure-identity-token");
    // Azure Workload Identity sets AZURE_FEDERATED_TOKEN_FILE; start with an expired assertion.
    let emus = std::sync::Arc::new(
        photo_gateway_emulators::Emulators::start(Default::default())
            .await
            .unwrap(),
    );
    std::fs::write(&file, emus.entra.federated_assertion(None, -600)).unwrap();
    let app = spawn_gateway(emus.clone(), |v| {
        v.retain(|(k, _)| k != "PHOTO_GATEWAY_CLIENT_SECRET");
        v.push((
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            file.display().to_string(),
        ));
    })
    .await;
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(500, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("gateway-credential-rejected")),
        "{body}"
    );

    // The kubelet rotates the file: the next request uses the new assertion.
    std::fs::write(&file, emus.entra.federated_assertion(None, 3600)).unwrap();
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(500, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn a_secret_file_is_reread_when_it_changes() {
    let dir = temp_dir("secret");
    let file = dir.join("client-secret");
    std::fs::write(&file, "an-old-revoked-secret\n").unwrap();
    let app = with_secret_file(&file).await;
    let (status, _, _) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(500, 1)).await).await;
    assert_eq!(status, 500);
    std::fs::write(&file, format!("{}\n", app.emus.gateway_client_secret())).unwrap();
    let resp = app.put_raw(ME, &app.token(DEMO), jpeg(500, 1)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn an_unreadable_credential_file_is_500_without_its_path_in_the_answer() {
    // Issue 14 item 5: the path and the OS error go to the log, not to the caller.
    let dir = temp_dir("vanishing");
    let file = dir.join("client-secret-that-vanishes");
    std::fs::write(&file, "whatever\n").unwrap();
    let app = with_secret_file(&file).await;
    std::fs::remove_file(&file).unwrap();
    let (status, _, body) =
        TestApp::problem(app.put_raw(ME, &app.token(DEMO), jpeg(500, 1)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("gateway-credential-rejected")),
        "{body}"
    );
    let answer = body.to_string();
    for leak in [
        "client-secret-that-vanishes",
        "/tmp",
        "No such file",
        "os error",
    ] {
        assert!(
            !answer.contains(leak),
            "{leak:?} reached the caller: {answer}"
        );
    }
    assert!(
        captured_logs().contains("client-secret-that-vanishes"),
        "the path is in the log for the operator"
    );
}

/// The gateway with its client secret read from `file`.
async fn with_secret_file(file: &std::path::Path) -> TestApp {
    let file = file.display().to_string();
    spawn_app_with(|v| swap_credential(v, "PHOTO_GATEWAY_CLIENT_SECRET_FILE", file)).await
}
