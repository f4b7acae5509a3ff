//! What the Graph emulator keeps of the requests it served: counters by (method, route template,
//! status), and a bounded ring of the write requests as received.

use std::collections::BTreeMap;

use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response};
use serde::{Deserialize, Serialize};

use super::GraphState;
use super::inspect::ReceivedImage;
use crate::util::{Body, guid, lock};

/// One write request (PUT, PATCH or DELETE) as the Graph emulator received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// The path exactly as received (still percent-encoded), without the query.
    pub path: String,
    /// The resolved target, e.g. `/users/{object id}/photo/$value`; `None` when it did not resolve.
    pub target: Option<String>,
    /// The route template, e.g. `/users/{id}/photo/$value`.
    pub template: String,
    /// The answered status.
    pub status: u16,
    /// `Content-Type` as sent.
    pub content_type: Option<String>,
    /// `Content-Length` as sent.
    pub content_length: Option<u64>,
    /// Bytes of body read (0 when the body was refused before reading).
    pub bytes: usize,
    /// SHA-256 (lowercase hex) of the body; empty when it was not read completely.
    pub sha256: String,
    /// `scp` of the bearer token, when it validated.
    pub scp: Option<String>,
    /// `roles` (space-joined) of an app-only bearer token.
    pub roles: Option<String>,
    /// `oid` of the bearer token, when it validated.
    pub oid: Option<String>,
    /// `appid` of the bearer token, when it validated.
    pub app_id: Option<String>,
    /// `client-request-id` as the client sent it (`None` when absent; the answer then carries a generated one).
    pub client_request_id: Option<String>,
    /// `request-id` answered.
    pub request_id: String,
    /// W3C `traceparent` as the client sent it, so tests can check trace propagation.
    pub traceparent: Option<String>,
    /// What the emulator made of the photo (format, size, metadata), when a body was read.
    pub image: Option<ReceivedImage>,
    /// The request's protocol, `HTTP/1.1` or `HTTP/2.0` (HTTP/2 only with `graph_http2`).
    #[serde(default)]
    pub http_version: String,
}

/// One (method, path template, status) counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphCount {
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/users/{id}/photo/$value` (`other` when the path is not a photo path).
    pub path: String,
    /// Answered status.
    pub status: u16,
    /// How many.
    pub count: u64,
}

/// Graph request counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphCounters {
    /// Every non-control request.
    pub total: u64,
    /// By method.
    pub by_method: BTreeMap<String, u64>,
    /// By route template.
    pub by_path: BTreeMap<String, u64>,
    /// By answered status.
    pub by_status: BTreeMap<u16, u64>,
    /// By (method, template, status).
    pub requests: Vec<GraphCount>,
    /// The most photo writes ever in progress at once per mailbox (`/users/{object id}` or
    /// `/groups/{id}`; a contact's photo counts for its user's mailbox): Graph allows 4.
    #[serde(default)]
    pub max_in_flight_per_mailbox: BTreeMap<String, u64>,
    /// Photo writes in progress now per mailbox (those with none left out).
    #[serde(default)]
    pub in_flight_per_mailbox: BTreeMap<String, u64>,
}

impl GraphCounters {
    /// The count for one (method, template, status).
    pub fn count(&self, method: &str, path: &str, status: u16) -> u64 {
        self.requests
            .iter()
            .filter(|c| c.method == method && c.path == path && c.status == status)
            .map(|c| c.count)
            .sum()
    }
}

/// What one request left for counting and recording.
#[derive(Default)]
pub(super) struct Trace {
    pub(super) template: Option<String>,
    pub(super) target: Option<String>,
    pub(super) bytes: usize,
    pub(super) sha256: String,
    pub(super) scp: Option<String>,
    pub(super) roles: Option<String>,
    pub(super) oid: Option<String>,
    pub(super) app_id: Option<String>,
    pub(super) image: Option<ReceivedImage>,
}

impl GraphState {
    pub(super) fn finish(
        &self,
        parts: &Parts,
        trace: Trace,
        mut resp: Response<Body>,
        request_id: &str,
        client_request_id: &str,
    ) -> Response<Body> {
        let status = resp.status().as_u16();
        let template = trace.template.unwrap_or_else(|| "other".to_string());
        *lock(&self.counters)
            .entry((parts.method.to_string(), template.clone(), status))
            .or_default() += 1;
        if matches!(parts.method, Method::PUT | Method::PATCH | Method::DELETE) {
            let rec = RecordedRequest {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                target: trace.target,
                template,
                status,
                content_type: parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                content_length: content_length(parts),
                bytes: trace.bytes,
                sha256: trace.sha256,
                scp: trace.scp,
                roles: trace.roles,
                oid: trace.oid,
                app_id: trace.app_id,
                client_request_id: sent_client_request_id(parts),
                request_id: request_id.to_string(),
                traceparent: parts
                    .headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                image: trace.image,
                http_version: format!("{:?}", parts.version),
            };
            let mut ring = lock(&self.requests);
            if self.capacity > 0 {
                if ring.len() >= self.capacity {
                    ring.pop_front();
                }
                ring.push_back(rec);
            }
        }
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(client_request_id) {
            headers.insert("client-request-id", v);
        }
        headers.insert(
            "x-ms-ags-diagnostic",
            HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Sandbox","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"photo-gateway-sandbox"}}"#),
        );
        resp
    }

    pub(super) fn counters(&self) -> GraphCounters {
        let map = lock(&self.counters).clone();
        let mut out = GraphCounters::default();
        for ((method, path, status), count) in map {
            out.total += count;
            *out.by_method.entry(method.clone()).or_default() += count;
            *out.by_path.entry(path.clone()).or_default() += count;
            *out.by_status.entry(status).or_default() += count;
            out.requests.push(GraphCount {
                method,
                path,
                status,
                count,
            });
        }
        {
            let in_flight = lock(&self.in_flight);
            out.max_in_flight_per_mailbox = in_flight
                .iter()
                .map(|(k, (_, max))| (k.clone(), *max))
                .collect();
            out.in_flight_per_mailbox = in_flight
                .iter()
                .filter(|(_, (now, _))| *now > 0)
                .map(|(k, (now, _))| (k.clone(), *now))
                .collect();
        }
        out.requests
            .sort_by(|a, b| (&a.path, &a.method, a.status).cmp(&(&b.path, &b.method, b.status)));
        out
    }

    /// Counts a photo write to `target`'s mailbox as in progress until the guard is dropped.
    pub(super) fn writing(&self, target: &str) -> Writing<'_> {
        let mailbox: String = target.split('/').take(3).collect::<Vec<_>>().join("/");
        let mut map = lock(&self.in_flight);
        let e = map.entry(mailbox.clone()).or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
        Writing {
            state: self,
            mailbox,
        }
    }

    pub(super) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }
}

pub(super) fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn sent_client_request_id(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The client's `client-request-id` when usable, else a fresh GUID (as Graph does).
pub(super) fn client_request_id(parts: &Parts) -> String {
    sent_client_request_id(parts)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(guid)
}

/// A photo write in progress (see [`GraphState::writing`]).
pub(super) struct Writing<'a> {
    state: &'a GraphState,
    mailbox: String,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(e) = lock(&self.state.in_flight).get_mut(&self.mailbox) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}
