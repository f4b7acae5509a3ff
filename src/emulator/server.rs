//! The HTTPS server both emulators run on: an own accept loop (so faults can refuse connections
//! or reset them mid-request), fault rules, and the control API endpoints both emulators share.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::util::{Body, collect_limited, drain, empty, json, lock};

/// One injected fault: which requests it matches, how many times, and what it does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); any method when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path prefix to match (case-insensitive, on the raw path); any path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// How many matching requests it applies to; until cleared when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What happens to a matching request.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// What a fault does to a matching request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status instead of serving the request.
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After` header value, verbatim (seconds, fractional seconds, or an HTTP date).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
        /// Body to send verbatim (as `application/json`); the emulator's own error shape when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Send bytes that are not JSON at all (an unreadable answer).
        #[serde(default)]
        garbage: bool,
    },
    /// Delay matching requests by this many milliseconds, then serve them normally.
    Latency {
        /// The added delay.
        latency_ms: u64,
    },
    /// Read the request head, then drop the TCP connection with a reset (SO_LINGER 0).
    Reset,
}

impl FaultRule {
    /// Answer `status` for matching requests.
    pub fn status(status: u16) -> FaultRule {
        FaultRule::new(FaultAction::Status {
            status,
            retry_after: None,
            body: None,
            garbage: false,
        })
    }

    /// Delay matching requests.
    pub fn latency(delay: Duration) -> FaultRule {
        FaultRule::new(FaultAction::Latency {
            latency_ms: delay.as_millis() as u64,
        })
    }

    /// Reset the connection of matching requests.
    pub fn reset() -> FaultRule {
        FaultRule::new(FaultAction::Reset)
    }

    fn new(action: FaultAction) -> FaultRule {
        FaultRule {
            method: None,
            path_prefix: None,
            times: None,
            action,
        }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_string());
        self
    }

    /// Only requests whose path starts with this prefix.
    pub fn path_prefix(mut self, prefix: &str) -> FaultRule {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u64) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Adds a `Retry-After` header (status faults only).
    pub fn retry_after(mut self, value: &str) -> FaultRule {
        if let FaultAction::Status { retry_after, .. } = &mut self.action {
            *retry_after = Some(value.to_string());
        }
        self
    }

    /// Sends this body verbatim (status faults only).
    pub fn body(mut self, text: &str) -> FaultRule {
        if let FaultAction::Status { body, .. } = &mut self.action {
            *body = Some(text.to_string());
        }
        self
    }

    /// Sends a body that is not JSON (status faults only).
    pub fn garbage(mut self) -> FaultRule {
        if let FaultAction::Status { garbage, .. } = &mut self.action {
            *garbage = true;
        }
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
        let path_ok = self.path_prefix.as_deref().is_none_or(|p| {
            path.len() >= p.len()
                && path.is_char_boundary(p.len())
                && path[..p.len()].eq_ignore_ascii_case(p)
        });
        method_ok && path_ok
    }
}

/// An active fault rule, as listed by `GET /_emulator/faults`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Id returned when the rule was added.
    pub id: u64,
    /// Matching requests left; `None` = until cleared.
    pub remaining: Option<u64>,
    /// The rule.
    pub rule: FaultRule,
}

/// The fault rules of one emulator.
#[derive(Default)]
pub(crate) struct Faults {
    rules: std::sync::Mutex<Vec<ActiveFault>>,
    // Lets the request path skip the mutex entirely when no rule is set (the benchmark case).
    any: AtomicBool,
    refusing: AtomicBool,
    next_id: AtomicU64,
}

/// What the fault rules decided for one request.
#[derive(Default)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub action: Option<FaultAction>,
}

impl Faults {
    pub(crate) fn add(&self, rule: FaultRule) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut rules = lock(&self.rules);
        rules.push(ActiveFault {
            id,
            remaining: rule.times,
            rule,
        });
        self.any.store(true, Ordering::Release);
        id
    }

    pub(crate) fn clear(&self) {
        lock(&self.rules).clear();
        self.any.store(false, Ordering::Release);
    }

    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        lock(&self.rules).clone()
    }

    pub(crate) fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    fn decide(&self, method: &Method, path: &str) -> Decision {
        let mut decision = Decision::default();
        if !self.any.load(Ordering::Acquire) {
            return decision;
        }
        let mut rules = lock(&self.rules);
        for active in rules.iter_mut() {
            if active.remaining == Some(0) || !active.rule.matches(method, path) {
                continue;
            }
            match &active.rule.action {
                FaultAction::Latency { latency_ms } => {
                    decision.latency += Duration::from_millis(*latency_ms);
                }
                other => {
                    if decision.action.is_some() {
                        continue;
                    }
                    decision.action = Some(other.clone());
                }
            }
            if let Some(n) = active.remaining.as_mut() {
                *n -= 1;
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        self.any.store(!rules.is_empty(), Ordering::Release);
        decision
    }
}

/// What one emulator adds on top of the shared transport.
pub(crate) trait Service: Send + Sync + 'static {
    /// Serves a request that is neither a control request nor faulted.
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
    /// Serves `/_emulator/…` requests other than the shared ones; `None` when unknown.
    fn control(&self, method: &Method, path: &str, body: &[u8]) -> Option<Response<Body>>;
    /// Builds (and counts) the answer to a status fault; `body_head` is the start of the request body.
    fn fault_response(
        &self,
        parts: &Parts,
        body_head: &[u8],
        status: StatusCode,
        retry_after: Option<&str>,
        body: Option<&str>,
        garbage: bool,
    ) -> Response<Body>;
    /// Forgets counters, recorded requests and injected state.
    fn reset(&self);
}

enum Command {
    Refuse {
        duration: Duration,
        ack: oneshot::Sender<()>,
    },
}

struct Shared<S> {
    service: Arc<S>,
    faults: Arc<Faults>,
    commands: mpsc::UnboundedSender<Command>,
}

/// A running server: its address, its faults, and the way to stop it.
pub(crate) struct ServerHandle {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    commands: mpsc::UnboundedSender<Command>,
    // Dropping the sender stops the accept loop and every connection.
    _shutdown: watch::Sender<bool>,
}

impl ServerHandle {
    /// Stops listening for `duration` (connects are refused, open connections reset), then listens again.
    /// Returns once the listener is closed.
    pub(crate) async fn refuse(&self, duration: Duration) {
        refuse(&self.commands, duration).await;
    }
}

async fn refuse(commands: &mpsc::UnboundedSender<Command>, duration: Duration) {
    let (ack, done) = oneshot::channel();
    if commands.send(Command::Refuse { duration, ack }).is_ok() {
        let _ = done.await;
    }
}

/// Binds 127.0.0.1:`port` (0 = a free port); bound before the service exists so its URL is known.
pub(crate) async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// Serves `service` over TLS on `listener` until the handle is dropped.
pub(crate) fn start<S: Service>(
    listener: TcpListener,
    tls: TlsAcceptor,
    service: Arc<S>,
) -> io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let faults = Arc::new(Faults::default());
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        service,
        faults: faults.clone(),
        commands: commands.clone(),
    });
    tokio::spawn(accept_loop(
        listener,
        addr,
        tls,
        shared,
        command_rx,
        shutdown_rx,
    ));
    Ok(ServerHandle {
        addr,
        faults,
        commands,
        _shutdown: shutdown,
    })
}

async fn accept_loop<S: Service>(
    mut listener: TcpListener,
    addr: SocketAddr,
    tls: TlsAcceptor,
    shared: Arc<Shared<S>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (duration, ack) = loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                cmd = commands.recv() => match cmd {
                    Some(Command::Refuse { duration, ack }) => break (duration, ack),
                    None => return,
                },
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => spawn_connection(tcp, peer, tls.clone(), shared.clone(), shutdown.clone()),
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
            }
        };
        drop(listener);
        shared.faults.refusing.store(true, Ordering::Release);
        let _ = ack.send(());
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(duration) => {}
        }
        listener = match rebind(addr).await {
            Some(l) => l,
            None => return,
        };
        shared.faults.refusing.store(false, Ordering::Release);
    }
}

async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Per-connection control: a duplicate of the socket's descriptor, so a fault can set SO_LINGER 0
/// on a socket that hyper and rustls own, and a signal to drop the connection.
struct ConnCtl {
    fd: Option<OwnedFd>,
    reset: Notify,
}

impl ConnCtl {
    fn reset(&self) {
        if let Some(fd) = &self.fd {
            let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
        }
        self.reset.notify_one();
    }
}

fn spawn_connection<S: Service>(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    shared: Arc<Shared<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let _ = tcp.set_nodelay(true);
        let ctl = Arc::new(ConnCtl {
            fd: tcp.as_fd().try_clone_to_owned().ok(),
            reset: Notify::new(),
        });
        if shared.faults.refusing() {
            ctl.reset();
            return;
        }
        let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            _ => return,
        };
        let svc_ctl = ctl.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let ctl = svc_ctl.clone();
            async move { Ok::<_, Infallible>(dispatch(shared, req, peer, ctl).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = conn => {}
            _ = ctl.reset.notified() => {}
            _ = shutdown.changed() => {}
        }
    });
}

const CONTROL_PREFIX: &str = "/_emulator";

async fn dispatch<S: Service>(
    shared: Arc<Shared<S>>,
    req: Request<Incoming>,
    peer: SocketAddr,
    ctl: Arc<ConnCtl>,
) -> Response<Body> {
    let path = req.uri().path();
    if path == CONTROL_PREFIX || path.starts_with("/_emulator/") {
        if !peer.ip().is_loopback() {
            return json(
                StatusCode::FORBIDDEN,
                &json!({"error": "the control API answers loopback clients only"}),
            );
        }
        return control(&shared, req).await;
    }
    if shared.faults.refusing() {
        ctl.reset();
        return std::future::pending().await;
    }
    let decision = shared.faults.decide(req.method(), path);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.action {
        Some(FaultAction::Reset) => {
            ctl.reset();
            std::future::pending().await
        }
        Some(FaultAction::Status {
            status,
            retry_after,
            body,
            garbage,
        }) => {
            let (parts, incoming) = req.into_parts();
            let head = drain(incoming, 64 * 1024).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            shared.service.fault_response(
                &parts,
                &head,
                status,
                retry_after.as_deref(),
                body.as_deref(),
                garbage,
            )
        }
        _ => shared.service.handle(req).await,
    }
}

#[derive(Deserialize)]
struct RefuseRequest {
    duration_ms: u64,
}

async fn control<S: Service>(shared: &Shared<S>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Some(body) = collect_limited(body, 1024 * 1024).await else {
        return json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"error": "control request body over 1 MiB"}),
        );
    };
    let path = parts.uri.path().trim_end_matches('/');
    match (&parts.method, path) {
        (&Method::GET, "/_emulator/faults") => json(StatusCode::OK, &json!(shared.faults.list())),
        (&Method::DELETE, "/_emulator/faults") => {
            shared.faults.clear();
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, "/_emulator/faults") => {
            let value: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return bad_request(&e.to_string()),
            };
            if value.get("kind").and_then(|k| k.as_str()) == Some("refuse") {
                let refuse_req: RefuseRequest = match serde_json::from_value(value) {
                    Ok(r) => r,
                    Err(e) => return bad_request(&e.to_string()),
                };
                refuse(
                    &shared.commands,
                    Duration::from_millis(refuse_req.duration_ms),
                )
                .await;
                return json(
                    StatusCode::OK,
                    &json!({"refused_ms": refuse_req.duration_ms}),
                );
            }
            match serde_json::from_value::<FaultRule>(value) {
                Ok(rule) => {
                    let id = shared.faults.add(rule);
                    json(StatusCode::CREATED, &json!({"id": id}))
                }
                Err(e) => bad_request(&e.to_string()),
            }
        }
        (&Method::POST, "/_emulator/reset") => {
            shared.faults.clear();
            shared.service.reset();
            empty(StatusCode::NO_CONTENT)
        }
        (method, path) => shared
            .service
            .control(method, path, &body)
            .unwrap_or_else(|| {
                json(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("unknown control endpoint {method} {path}")}),
                )
            }),
    }
}

/// A control-API 400 with a reason.
pub(crate) fn bad_request(reason: &str) -> Response<Body> {
    json(StatusCode::BAD_REQUEST, &json!({"error": reason}))
}

/// Decodes a control request body as JSON (an empty body reads as `{}`); the error says why not.
pub(crate) fn parse_control<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Bytes of a "garbage" fault body: not JSON, not UTF-8.
pub(crate) fn garbage_body() -> Bytes {
    Bytes::from_static(b"\x00\xff<html>upstream garbage \xfe\x01{\"not\": json")
}

/// The answer a status fault sends verbatim (garbage, or the given text as JSON), if it asks for one.
pub(crate) fn verbatim_fault_body(body: Option<&str>, garbage: bool) -> Option<Response<Body>> {
    let bytes = if garbage {
        garbage_body()
    } else {
        Bytes::from(body?.to_string())
    };
    let mut r = Response::new(http_body_util::Full::new(bytes));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_expire_and_latency_stacks() {
        let faults = Faults::default();
        faults.add(FaultRule::status(503).times(2).path_prefix("/V1.0/me"));
        faults.add(FaultRule::latency(Duration::from_millis(5)));
        let d = faults.decide(&Method::PUT, "/v1.0/me/photo/$value");
        assert!(matches!(
            d.action,
            Some(FaultAction::Status { status: 503, .. })
        ));
        assert_eq!(d.latency, Duration::from_millis(5));
        assert!(faults.decide(&Method::GET, "/other").action.is_none());
        assert!(faults.decide(&Method::PUT, "/v1.0/me/x").action.is_some());
        assert!(faults.decide(&Method::PUT, "/v1.0/me/x").action.is_none());
        assert_eq!(faults.list().len(), 1);
    }

    #[test]
    fn rules_round_trip_as_json() {
        let rule = FaultRule::status(429)
            .retry_after("0.5")
            .times(1)
            .method("PUT");
        let text = serde_json::to_string(&rule).unwrap();
        assert!(text.contains("\"kind\":\"status\""), "{text}");
        assert_eq!(serde_json::from_str::<FaultRule>(&text).unwrap(), rule);
        let reset: FaultRule = serde_json::from_str(r#"{"kind":"reset","times":1}"#).unwrap();
        assert_eq!(reset, FaultRule::reset().times(1));
    }
}
