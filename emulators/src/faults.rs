//! Fault rules: which requests they match, how many times, and what they do to them (answer a
//! status, add latency, reset the connection).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::util::{Body, lock};

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

    pub(crate) fn set_refusing(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::Release);
    }

    pub(crate) fn decide(&self, method: &Method, path: &str) -> Decision {
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

/// A status fault that matched a request: what to answer instead of serving it.
pub(crate) struct StatusFault {
    pub status: StatusCode,
    retry_after: Option<String>,
    body: Option<String>,
    garbage: bool,
}

impl StatusFault {
    pub(crate) fn new(
        status: u16,
        retry_after: Option<String>,
        body: Option<String>,
        garbage: bool,
    ) -> StatusFault {
        StatusFault {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            retry_after,
            body,
            garbage,
        }
    }

    /// The answer: the fault's own body when it gives one (garbage, or its text as JSON), else the
    /// emulator's own error shape from `emulator_error`; with the fault's status and `Retry-After`.
    pub(crate) fn answer(&self, emulator_error: impl FnOnce() -> Response<Body>) -> Response<Body> {
        let mut resp = self.verbatim().unwrap_or_else(emulator_error);
        *resp.status_mut() = self.status;
        if let Some(v) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
        resp
    }

    fn verbatim(&self) -> Option<Response<Body>> {
        let bytes = if self.garbage {
            Bytes::from_static(GARBAGE)
        } else {
            Bytes::from(self.body.clone()?)
        };
        let mut r = Response::new(Body::new(bytes));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Some(r)
    }
}

/// A "garbage" fault body: not JSON, not UTF-8.
const GARBAGE: &[u8] = b"\x00\xff<html>upstream garbage \xfe\x01{\"not\": json";

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
