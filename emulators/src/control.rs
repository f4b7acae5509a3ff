//! The control side both emulators share, once: fault rules, refusing connections and reset, in
//! process ([`FaultControl`], which `EntraEmulator` and `GraphEmulator` dereference to) and over
//! HTTP (`/_emulator/faults`, `/_emulator/reset`). Each emulator adds its own endpoints through
//! [`ControlApi::control`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::faults::{ActiveFault, FaultRule, Faults};
use crate::server::Command;
use crate::util::{Body, collect_limited, empty, json};

/// What the shared control side asks of the emulator behind it.
pub(crate) trait ControlApi: Send + Sync + 'static {
    /// Serves `/_emulator/…` requests other than the shared ones; `None` when unknown.
    fn control(&self, method: &Method, path: &str, body: &[u8]) -> Option<Response<Body>>;
    /// Forgets counters, recorded requests and injected state.
    fn reset(&self);
}

/// The fault rules, connection refusal and reset of one running emulator.
pub struct FaultControl {
    pub(crate) addr: SocketAddr,
    pub(crate) faults: Faults,
    commands: mpsc::UnboundedSender<Command>,
    emulator: Arc<dyn ControlApi>,
}

impl FaultControl {
    pub(crate) fn new(
        addr: SocketAddr,
        commands: mpsc::UnboundedSender<Command>,
        emulator: Arc<dyn ControlApi>,
    ) -> FaultControl {
        FaultControl {
            addr,
            faults: Faults::default(),
            commands,
            emulator,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.faults.add(rule)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.faults.list()
    }

    /// Stops listening for `duration` (ECONNREFUSED; open connections reset), then listens again.
    /// Returns once the listener is closed.
    pub async fn refuse_connections(&self, duration: Duration) {
        let (ack, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Refuse { duration, ack })
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Clears the fault rules and what the emulator counted, recorded or had injected: for Entra
    /// counters, injected token errors and the lifetime override; for Graph counters, recorded
    /// requests and photos.
    pub fn reset(&self) {
        self.faults.clear();
        self.emulator.reset();
    }
}

#[derive(Deserialize)]
struct RefuseRequest {
    duration_ms: u64,
}

/// Serves a `/_emulator/…` request: the shared endpoints here, the rest by the emulator.
pub(crate) async fn serve(control: &FaultControl, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Some(body) = collect_limited(body, 1024 * 1024).await else {
        return json(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"error": "control request body over 1 MiB"}),
        );
    };
    let path = parts.uri.path().trim_end_matches('/');
    match (&parts.method, path) {
        (&Method::GET, "/_emulator/faults") => json(StatusCode::OK, &json!(control.faults())),
        (&Method::DELETE, "/_emulator/faults") => {
            control.clear_faults();
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
                control
                    .refuse_connections(Duration::from_millis(refuse_req.duration_ms))
                    .await;
                return json(
                    StatusCode::OK,
                    &json!({"refused_ms": refuse_req.duration_ms}),
                );
            }
            match serde_json::from_value::<FaultRule>(value) {
                Ok(rule) => {
                    let id = control.add_fault(rule);
                    json(StatusCode::CREATED, &json!({"id": id}))
                }
                Err(e) => bad_request(&e.to_string()),
            }
        }
        (&Method::POST, "/_emulator/reset") => {
            control.reset();
            empty(StatusCode::NO_CONTENT)
        }
        (method, path) => control
            .emulator
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
