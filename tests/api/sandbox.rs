//! The real `photo-gateway sandbox` binary: the ready file, the README's curl flow (upload through
//! the gateway, read back from the Graph emulator), and `sandbox token`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use photo_gateway_emulators::directory::{
    CONTACT_FOLDER_ID, FOLDER_CONTACT_ID, GROUP_ID, GUEST_USER_UPN,
};
use photo_gateway_emulators::sample_jpeg;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::support::jwt::{claims_of, now};
use crate::support::{BINARY, ME, MEGAN, group_photo, user_photo};

/// A running `photo-gateway sandbox` process with its own state directory.
struct Sandbox {
    child: Child,
    dir: PathBuf,
    ready: Value,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_sandbox(extra: &[&str]) -> Sandbox {
    start_sandbox_with_env(extra, &[]).await
}

/// The sandbox with these variables added to its environment.
async fn start_sandbox_with_env(extra: &[&str], env: &[(&str, &str)]) -> Sandbox {
    let dir = std::env::temp_dir().join(format!(
        "photo-gateway-sandbox-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ready_file = dir.join("ready.json");
    let mut child = Command::new(BINARY)
        .arg("sandbox")
        .args(["--gateway-port", "0", "--state-dir"])
        .arg(&dir)
        .arg("--ready-file")
        .arg(&ready_file)
        .args(extra)
        // The sandbox's gateway reads PHOTO_GATEWAY_IMAGE_* from its environment: these flows
        // check that Graph holds the bytes sent, as they did before the image stage.
        .envs(crate::support::PASSTHROUGH_ENV)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..1200 {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            let ready: Value = serde_json::from_str(&text)
                .expect("the ready file is complete JSON when it appears");
            return Sandbox { child, dir, ready };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "sandbox exited with {status} before ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sandbox not ready within 60 s");
}

fn https_client(ca_file: &Path) -> reqwest::Client {
    let ca = std::fs::read(ca_file).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap()
}

fn exp_in(token: &str) -> i64 {
    claims_of(token)["exp"].as_i64().unwrap() - now() as i64
}

#[tokio::test]
async fn readme_flow_uploads_through_the_gateway_and_reads_back_from_graph() {
    let sb = start_sandbox(&[]).await;
    let r = &sb.ready;
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "ca_file",
            "contacts",
            "demo_user",
            "entra_url",
            "env_applied",
            "env_ignored",
            "gateway_env",
            "gateway_url",
            "graph_token",
            "graph_url",
            "groups",
            "sample_file",
            "teams",
            "tenant_id",
            "token",
            "users"
        ]
    );
    assert_eq!(
        r["teams"],
        serde_json::json!([{"id": photo_gateway_emulators::teams::TEAM_ID, "displayName": "Sales and Marketing"}])
    );
    assert!(
        exp_in(r["token"].as_str().unwrap()) >= 3600,
        "the caller token lasts at least an hour"
    );
    assert_eq!(
        r["gateway_env"]["PHOTO_GATEWAY_GRAPH_BASE_URL"],
        r["graph_url"]
    );
    assert_eq!(
        r["gateway_env"]["PHOTO_GATEWAY_AUTHORITY_HOST"],
        r["entra_url"]
    );
    assert!(
        r["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userPrincipalName"] == GUEST_USER_UPN)
    );
    assert!(
        r["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["folder"] == CONTACT_FOLDER_ID && c["id"] == FOLDER_CONTACT_ID)
    );
    assert!(
        r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == GROUP_ID)
    );

    let gateway = r["gateway_url"].as_str().unwrap();
    let graph = r["graph_url"].as_str().unwrap();
    let token = r["token"].as_str().unwrap();
    let graph_token = r["graph_token"].as_str().unwrap();
    let graph_client = https_client(Path::new(r["ca_file"].as_str().unwrap()));
    let plain = reqwest::Client::new();
    let guest = GUEST_USER_UPN.replace('#', "%23");
    let targets = [
        ("user", user_photo(MEGAN)),
        ("group", group_photo(GROUP_ID)),
        (
            "contact in a named folder",
            format!(
                "/v1.0/me/contactFolders/{CONTACT_FOLDER_ID}/contacts/{FOLDER_CONTACT_ID}/photo/$value"
            ),
        ),
        ("guest UPN", user_photo(&guest)),
    ];
    for (what, path) in targets {
        let photo = sample_jpeg(96, 96, what);
        let up = plain
            .put(format!("{gateway}{path}"))
            .bearer_auth(token)
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(up.status(), 200, "{what}: {}", up.text().await.unwrap());
        let back = graph_client
            .get(format!("{graph}{path}"))
            .bearer_auth(graph_token)
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 200, "{what}");
        assert_eq!(
            back.bytes().await.unwrap(),
            photo,
            "{what}: bytes read back equal bytes sent"
        );
    }
}

#[tokio::test]
async fn sandbox_token_mints_tokens_the_running_sandbox_accepts() {
    let sb = start_sandbox(&[]).await;
    let gateway = sb.ready["gateway_url"].as_str().unwrap().to_owned();
    let user = "lee.gu@contoso.onmicrosoft.com";
    let offline = Command::new(BINARY)
        .args([
            "sandbox",
            "token",
            "--user",
            user,
            "--ttl",
            "600",
            "--state-dir",
        ])
        .arg(&sb.dir)
        .output()
        .await
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let online = Command::new(BINARY)
        .args([
            "sandbox",
            "token",
            "--user",
            user,
            "--entra-url",
            sb.ready["entra_url"].as_str().unwrap(),
            "--ca-file",
        ])
        .arg(sb.ready["ca_file"].as_str().unwrap())
        .output()
        .await
        .unwrap();
    assert!(
        online.status.success(),
        "{}",
        String::from_utf8_lossy(&online.stderr)
    );
    for out in [offline, online] {
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let resp = reqwest::Client::new()
            .put(format!("{gateway}{ME}"))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(sample_jpeg(16, 16, "token"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
}

#[tokio::test]
async fn emulators_only_writes_the_gateway_configuration() {
    let sb = start_sandbox(&["--emulators-only"]).await;
    assert!(sb.ready.get("gateway_url").is_none());
    let env = std::fs::read_to_string(sb.dir.join("gateway.env")).unwrap();
    for (k, v) in sb.ready["gateway_env"].as_object().unwrap() {
        assert!(
            env.lines()
                .any(|l| l == format!("{k}={}", v.as_str().unwrap())),
            "{k} in gateway.env:\n{env}"
        );
    }
    assert!(
        env.lines()
            .any(|l| l.starts_with("PHOTO_GATEWAY_LISTEN_ADDR=127.0.0.1:")),
        "{env}"
    );
    let ca = Path::new(sb.ready["ca_file"].as_str().unwrap());
    let discovery = format!(
        "{}/{}/v2.0/.well-known/openid-configuration",
        sb.ready["entra_url"].as_str().unwrap(),
        sb.ready["tenant_id"].as_str().unwrap()
    );
    let doc: Value = https_client(ca)
        .get(discovery)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["issuer"],
        format!(
            "{}/{}/v2.0",
            sb.ready["entra_url"].as_str().unwrap(),
            sb.ready["tenant_id"].as_str().unwrap()
        )
    );
}

/// Any setting can be tried in the sandbox: `PHOTO_GATEWAY_*` from its environment applies (here a
/// photo size limit), except the emulator wiring, which it ignores and names.
#[tokio::test]
async fn sandbox_applies_settings_from_its_environment_but_keeps_its_wiring() {
    // The limit is exclusive: the sandbox's sample (the same generator) is one byte too large.
    let limit = sample_jpeg(648, 648, "photo-gateway sandbox sample").len();
    let limit_var = limit.to_string();
    let sb = start_sandbox_with_env(
        &[],
        &[
            ("PHOTO_GATEWAY_MAX_PHOTO_BYTES", limit_var.as_str()),
            ("PHOTO_GATEWAY_GRAPH_BASE_URL", "https://graph.invalid"),
            ("PHOTO_GATEWAY_CLIENT_SECRET", "not-the-emulators-secret"),
        ],
    )
    .await;
    let r = &sb.ready;
    // The passthrough settings every sandbox test runs with are applied too.
    assert_eq!(
        r["env_applied"],
        serde_json::json!([
            "PHOTO_GATEWAY_IMAGE_ALLOWED_MODES",
            "PHOTO_GATEWAY_IMAGE_MODE",
            "PHOTO_GATEWAY_MAX_PHOTO_BYTES"
        ])
    );
    assert_eq!(
        r["env_ignored"],
        serde_json::json!([
            "PHOTO_GATEWAY_CLIENT_SECRET",
            "PHOTO_GATEWAY_GRAPH_BASE_URL"
        ])
    );
    let gateway = r["gateway_url"].as_str().unwrap();
    let token = r["token"].as_str().unwrap();
    let sample = std::fs::read(r["sample_file"].as_str().unwrap()).unwrap();
    assert_eq!(sample.len(), limit, "the sample is at the limit set by env");
    let put = |body: Vec<u8>| {
        reqwest::Client::new()
            .put(format!("{gateway}{ME}"))
            .bearer_auth(token)
            .header("content-type", "image/jpeg")
            .body(body)
            .send()
    };
    let big = put(sample).await.unwrap();
    assert_eq!(big.status(), 413);
    let problem: Value = big.json().await.unwrap();
    assert_eq!(problem["code"], "photo-too-large", "{problem}");
    // Under the limit it goes through: Graph and the credentials are still the emulators'.
    let small = sample_jpeg(8, 8, "env");
    assert!(small.len() < limit);
    let ok = put(small).await.unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
}

#[tokio::test]
async fn the_sandbox_shows_a_daemon_call_with_the_demo_clients_app_role() {
    let sb = start_sandbox(&[]).await;
    let gateway = sb.ready["gateway_url"].as_str().unwrap().to_owned();
    let out = Command::new(BINARY)
        .args(["sandbox", "token", "--app-only", "--state-dir"])
        .arg(&sb.dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["roles"], serde_json::json!(["Photos.ReadWrite.All"]));
    assert!(claims.get("scp").is_none());
    let put = |path: String| {
        reqwest::Client::new()
            .put(format!("{gateway}{path}"))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(sample_jpeg(16, 16, "daemon"))
            .send()
    };
    let resp = put(user_photo(MEGAN)).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // `/me` still needs a user.
    let resp = put(ME.to_owned()).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "user-token-required");
}
