//! `spawn_app`: emulators + the real gateway on an ephemeral port, and request helpers.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use photo_gateway::Application;
use photo_gateway::config::Config;
use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators};

/// Every log line the gateway writes during the tests, so tests can prove secrets never appear.
pub fn captured_logs() -> String {
    let buf = log_buffer().lock().unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

#[derive(Clone)]
struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(data);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stdout().write_all(data)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Everything at debug, upstream HTTP libraries included: the secrets test must see it all.
        let _ = photo_gateway::telemetry::init(
            photo_gateway::telemetry::LogFormat::Json,
            "debug",
            || CaptureWriter,
        );
    });
}

/// A running gateway and its emulators.
pub struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    /// The emulators the gateway talks to.
    pub emus: Arc<Emulators>,
    /// A plain client for talking to the gateway.
    pub client: reqwest::Client,
    /// The metrics port.
    pub metrics_port: Option<u16>,
}

/// The demo user every test uploads as, unless it says otherwise.
pub const DEMO: &str = "adele.vance@contoso.onmicrosoft.com";

/// Starts emulators and a gateway with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts emulators and a gateway, letting the test adjust the gateway's variables.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Vec<(String, String)>)) -> TestApp {
    init_logs();
    let emus = Arc::new(
        Emulators::start(EmulatorOptions::default())
            .await
            .expect("emulators start"),
    );
    spawn_gateway(emus, adjust).await
}

/// Starts a gateway against already running emulators.
pub async fn spawn_gateway(
    emus: Arc<Emulators>,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> TestApp {
    init_logs();
    let mut vars = emus.gateway_env();
    vars.push(("PHOTO_GATEWAY_LISTEN_ADDR".into(), "127.0.0.1:0".into()));
    vars.push(("PHOTO_GATEWAY_METRICS_ADDR".into(), "127.0.0.1:0".into()));
    vars.push(("PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS".into(), "0".into()));
    vars.push(("PHOTO_GATEWAY_WORKERS".into(), "2".into()));
    // Rate limits are tested on their own (overload.rs); every other test runs without them.
    for k in [
        "CALLER_RATE_PER_MIN",
        "MAILBOX_CONCURRENCY",
        "MAILBOX_BYTES_PER_30S",
    ] {
        vars.push((format!("PHOTO_GATEWAY_{k}"), "0".into()));
    }
    adjust(&mut vars);
    let config = Config::from_vars(vars).expect("valid config");
    let app = Application::build(config).await.expect("gateway builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until_stopped());
    let t = TestApp {
        address,
        emus,
        client: reqwest::Client::new(),
        metrics_port,
    };
    t.wait_ready().await;
    t
}

/// A JPEG of exactly `len` bytes (SOI, APP0, filler, EOI), content varying with `seed`.
pub fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    assert!(len >= 6);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    let mut x = seed as u32 | 1;
    while v.len() < len - 2 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8);
    }
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// SHA-256, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

impl TestApp {
    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway never became ready");
    }

    /// On-Behalf-Of exchanges the Entra emulator has answered (0 when none).
    pub fn obo_exchanges(&self) -> u64 {
        self.emus
            .entra
            .counters()
            .by_grant_type
            .get("on_behalf_of")
            .copied()
            .unwrap_or(0)
    }

    /// Asserts that nothing reached Graph and no token was requested from Entra.
    pub fn assert_nothing_upstream(&self, what: &str) {
        assert!(
            self.emus.graph.requests().is_empty(),
            "{what}: nothing may reach Graph"
        );
        assert_eq!(
            self.emus.entra.counters().token_requests,
            0,
            "{what}: no token exchange"
        );
    }

    /// A valid caller token for `upn`.
    pub fn token(&self, upn: &str) -> String {
        self.emus.caller_token(&CallerTokenSpec::for_user(upn))
    }

    /// A caller token built from `spec`.
    pub fn token_with(&self, spec: CallerTokenSpec) -> String {
        self.emus.caller_token(&spec)
    }

    /// Sends raw bytes with `method` to `path` (relative to the gateway).
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        content_type: &str,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.address, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// PUTs raw JPEG bytes as `image/jpeg`.
    pub async fn put_raw(&self, path: &str, token: &str, body: Vec<u8>) -> reqwest::Response {
        self.send_raw("PUT", path, Some(token), body, "image/jpeg")
            .await
    }

    /// Sends a multipart form with one `photo` file part.
    pub async fn send_multipart(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let (ct, bytes) = multipart_body(&[("photo", Some("me.jpg"), &body)]);
        self.send_raw(method, path, Some(token), bytes, &ct).await
    }

    /// The body of the problem answer, checked to be problem+json with the request id.
    pub async fn problem(
        resp: reqwest::Response,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: serde_json::Value = resp.json().await.expect("problem body is JSON");
        assert_eq!(
            ct, "application/problem+json",
            "problem content type for {status}: {body}"
        );
        let rid = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("x-request-id");
        assert_eq!(body["requestId"], rid, "problem carries the request id");
        assert_eq!(body["status"], status);
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        (status, headers, body)
    }
}

/// One multipart part: name, optional filename, bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// Builds a multipart/form-data body from parts.
pub fn multipart_body(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----photo-gateway-test-boundary-7MA4YWxkTrZu0gW";
    let mut out = Vec::new();
    for (name, filename, bytes) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

/// Sends `head` (request line and headers, without the final blank line) and `body` over a plain
/// TCP connection, so paths reach the server byte for byte (no client-side normalisation), and
/// returns the status and the body.
pub async fn raw_http(address: &str, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!(
        "{head}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The real `photo-gateway serve` binary, as its own process, against `emus`.
pub struct GatewayProcess {
    /// The child process.
    pub child: tokio::process::Child,
    /// Its API port.
    pub port: u16,
}

impl GatewayProcess {
    /// Starts the binary with the emulators' configuration plus `env`, and waits until ready.
    pub async fn spawn(emus: &Emulators, env: &[(&str, &str)]) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_photo-gateway"))
            .arg("serve")
            .env_clear()
            .envs(emus.gateway_env())
            .env("PHOTO_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("PHOTO_GATEWAY_METRICS_ADDR", "off")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let g = GatewayProcess { child, port };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while client
            .get(format!("{}/readyz", g.base()))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway never became ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        g
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.pid().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits for the exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits")
            .unwrap()
            .code()
    }
}
