//! The gateway in this process: emulators + the real server on an ephemeral port, request
//! helpers, and the log capture.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use photo_gateway::Application;
use photo_gateway::config::Config;
use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators};

use super::bodies::{jpeg, multipart_body};
use super::paths::{DEMO, ME};

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

/// The image settings every test gateway starts with unless the test says otherwise.
pub const PASSTHROUGH_ENV: [(&str, &str); 2] = [
    ("PHOTO_GATEWAY_IMAGE_MODE", "passthrough"),
    (
        "PHOTO_GATEWAY_IMAGE_ALLOWED_MODES",
        "normalize,strip,passthrough",
    ),
];

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

/// Starts a gateway against already running emulators and waits until it is ready.
pub async fn spawn_gateway(
    emus: Arc<Emulators>,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> TestApp {
    let t = start_gateway(emus, adjust).await;
    t.wait_ready().await;
    t
}

/// Starts a gateway against already running emulators without waiting: for tests of a gateway
/// that cannot become ready.
pub async fn start_gateway(
    emus: Arc<Emulators>,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> TestApp {
    init_logs();
    let mut vars = emus.gateway_env();
    vars.push(("PHOTO_GATEWAY_LISTEN_ADDR".into(), "127.0.0.1:0".into()));
    vars.push(("PHOTO_GATEWAY_METRICS_ADDR".into(), "127.0.0.1:0".into()));
    vars.push(("PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS".into(), "0".into()));
    vars.push(("PHOTO_GATEWAY_WORKERS".into(), "2".into()));
    // The tests written before the image stage send JPEGs and expect them forwarded as sent:
    // they run in `passthrough`, and the image tests ask for the mode they test.
    vars.extend(
        PASSTHROUGH_ENV
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into())),
    );
    // Rate limits are tested on their own (overload.rs); every other test runs without them.
    for k in [
        "CALLER_RATE_PER_MIN",
        "APP_RATE_PER_MIN",
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
    TestApp {
        address,
        emus,
        client: reqwest::Client::new(),
        metrics_port,
    }
}

/// Polls `{base}/readyz` until it answers 200; panics after `limit`.
pub(super) async fn wait_until_ready(client: &reqwest::Client, base: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway at {base} was not ready within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl TestApp {
    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_until_ready(&self.client, &self.address, Duration::from_secs(10)).await;
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

    /// Asserts that a valid upload still succeeds: what came before left the gateway serving.
    pub async fn assert_still_serving(&self) {
        let resp = self.put_raw(ME, &self.token(DEMO), jpeg(400, 5)).await;
        assert_eq!(
            resp.status(),
            200,
            "the gateway still serves a valid request: {}",
            resp.text().await.unwrap()
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

    /// PUTs `body` as `image/jpeg` with chunked transfer encoding, in chunks of `chunk` bytes.
    pub async fn put_chunked(
        &self,
        path: &str,
        token: &str,
        body: &[u8],
        chunk: usize,
    ) -> reqwest::Result<reqwest::Response> {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
        self.client
            .put(format!("{}{path}", self.address))
            .bearer_auth(token)
            .header("content-type", "image/jpeg")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
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

    /// GET `url` and return the body text (for `/metrics`, `/openapi.json` and the like).
    pub async fn get_text(&self, url: &str) -> String {
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let port = self.metrics_port.expect("metrics served");
        self.get_text(&format!("http://127.0.0.1:{port}/metrics"))
            .await
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

/// A 403's challenge: RFC 6750's `insufficient_scope`, whoever refused.
pub fn assert_insufficient_scope(headers: &reqwest::header::HeaderMap) {
    let challenge = headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"photo-gateway\", error=\"insufficient_scope\""),
        "{headers:?}"
    );
}
