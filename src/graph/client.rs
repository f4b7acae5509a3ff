//! Uploads a photo to Graph: retries on 429/503/504 honouring `Retry-After`, exponential backoff
//! with jitter otherwise, all within one deadline; Graph's errors translated per the errors table.
//! Every Graph call (the user lookup of `users.rs` too) is built by [`GraphClient::request`].

use std::time::{Duration, Instant};

use crate::upload::Photo;
use base64::Engine as _;
use futures_util::StreamExt;
use rand::Rng;
use reqwest::header;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::{self, GraphOutcome};
use crate::outbound::{PerThreadClient, parse_retry_after};

/// Largest Graph error body read; the rest is ignored.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One upload to send.
pub struct GraphUpload<'a> {
    /// PUT or PATCH, as the caller sent it.
    pub method: Method,
    /// Path below `/v1.0`, already encoded.
    pub path: &'a str,
    /// The JPEG bytes.
    pub body: &'a Photo,
    /// The id Graph will log for this request.
    pub client_request_id: &'a str,
    /// W3C trace context to propagate, if the caller sent one.
    pub traceparent: Option<&'a str>,
}

/// One read or delete to send.
pub struct GraphCall<'a> {
    /// Path below `/v1.0`, already encoded.
    pub path: &'a str,
    /// The id Graph will log for this request.
    pub client_request_id: &'a str,
    /// W3C trace context to propagate, if the caller sent one.
    pub traceparent: Option<&'a str>,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct GraphRead {
    /// Graph answered 304: the copy named in `If-None-Match` is current (no body).
    pub not_modified: bool,
    /// Graph's `Content-Type`.
    pub content_type: Option<String>,
    /// Graph's `ETag`.
    pub etag: Option<String>,
    /// Graph's `request-id`.
    pub request_id: Option<String>,
    /// The answer's bytes.
    pub body: bytes::Bytes,
}

/// Graph's own error details, surfaced in the problem body.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphErrorInfo {
    /// HTTP status Graph answered with.
    pub status: u16,
    /// Graph's `error.code`, e.g. `ErrorItemNotFound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Graph's `error.message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Graph's `request-id` (header or `innerError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The `client-request-id` the gateway sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Graph's `innerError.date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// How a Graph call failed.
#[derive(Debug)]
pub enum GraphFailure {
    /// Graph refused the token: the caller should get a fresh one (with these claims) and retry.
    Unauthorized {
        /// CAE claims challenge from Graph's `WWW-Authenticate`, decoded.
        claims: Option<String>,
        /// Graph's answer.
        info: GraphErrorInfo,
    },
    /// Graph refused the request with a client error other than 401 and 429.
    Rejected(GraphErrorInfo),
    /// Graph kept throttling or was unavailable (429, 503, 504) after the retries.
    Unavailable {
        /// Graph's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// Graph's last answer.
        info: GraphErrorInfo,
    },
    /// Another server error after the retries.
    ServerError(GraphErrorInfo),
    /// The connection was refused or failed.
    ConnectFailed,
    /// The connection was reset before Graph answered.
    Reset,
    /// No answer within one attempt's timeout.
    AttemptTimeout,
    /// The deadline (retries included) passed.
    DeadlinePassed,
}

/// The Graph client.
pub struct GraphClient {
    http: PerThreadClient,
    base: String,
    attempt_timeout: Duration,
    deadline: Duration,
    max_retries: u32,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "innerError", alias = "innererror")]
    inner: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

/// Backoff before retry `attempt` (0-based): 0.5 s doubling, capped at 8 s, plus up to 50 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(4))
        .min(Duration::from_secs(8));
    let jitter = rand::rng().random_range(0.0..0.5);
    base.mul_f64(1.0 + jitter)
}

fn header_str(headers: &header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Extracts and decodes `claims="…"` from a Bearer challenge.
fn challenge_claims(headers: &header::HeaderMap) -> Option<String> {
    let v = headers.get(header::WWW_AUTHENTICATE)?.to_str().ok()?;
    let start = v.find("claims=\"")? + "claims=\"".len();
    let end = v[start..].find('"')? + start;
    let raw = &v[start..end];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl GraphClient {
    /// Builds the client for `{base}/v1.0`.
    pub fn new(
        http: PerThreadClient,
        graph_base: &str,
        attempt_timeout: Duration,
        deadline: Duration,
        max_retries: u32,
    ) -> GraphClient {
        GraphClient {
            http,
            base: format!("{}/v1.0", graph_base.trim_end_matches('/')),
            attempt_timeout,
            deadline,
            max_retries,
        }
    }

    /// `{base}/v1.0` followed by `path` (already encoded).
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request carrying what every Graph call of the gateway carries: the token, the request's
    /// id as `client-request-id` (so Graph's logs and ours meet) and the trace context.
    pub(super) fn request(
        &self,
        method: Method,
        url: &str,
        token: &SecretString,
        client_request_id: &str,
        traceparent: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .get()
            .request(method, url)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", token.expose_secret()),
            )
            .header("client-request-id", client_request_id)
            .header("return-client-request-id", "true");
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        req
    }

    /// The timeout of one Graph attempt.
    pub(super) fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// Sends the upload, retrying what may be retried; returns Graph's `request-id`.
    pub async fn upload(
        &self,
        up: &GraphUpload<'_>,
        token: &SecretString,
    ) -> Result<Option<String>, GraphFailure> {
        let url = self.url(up.path);
        let resp = self
            .execute(up.client_request_id, "upload", |timeout| {
                self.request(
                    up.method.clone(),
                    &url,
                    token,
                    up.client_request_id,
                    up.traceparent,
                )
                .timeout(timeout)
                .header(header::CONTENT_TYPE, "image/jpeg")
                .header(header::CONTENT_LENGTH, up.body.len())
                .body(reqwest::Body::wrap(up.body.body()))
            })
            .await?;
        Ok(header_str(resp.headers(), "request-id"))
    }

    /// Deletes a photo (`DELETE …/photo/$value`), retrying what may be retried; returns Graph's
    /// `request-id`.
    pub async fn delete(
        &self,
        call: &GraphCall<'_>,
        token: &SecretString,
    ) -> Result<Option<String>, GraphFailure> {
        let url = self.url(call.path);
        let resp = self
            .execute(call.client_request_id, "delete", |timeout| {
                self.request(
                    Method::DELETE,
                    &url,
                    token,
                    call.client_request_id,
                    call.traceparent,
                )
                .timeout(timeout)
            })
            .await?;
        Ok(header_str(resp.headers(), "request-id"))
    }

    /// Reads a photo or its metadata (`GET`), with `If-None-Match` when the caller holds a copy.
    /// The answer is buffered, at most `max_bytes` (photos are small: Graph takes none of 4 MiB
    /// or more), so it can be cached and its digest known; a larger answer is a Graph failure.
    pub async fn read(
        &self,
        call: &GraphCall<'_>,
        token: &SecretString,
        if_none_match: Option<&str>,
        max_bytes: usize,
    ) -> Result<GraphRead, GraphFailure> {
        let url = self.url(call.path);
        let resp = self
            .execute(call.client_request_id, "read", |timeout| {
                let mut req = self
                    .request(
                        Method::GET,
                        &url,
                        token,
                        call.client_request_id,
                        call.traceparent,
                    )
                    .timeout(timeout);
                if let Some(tag) = if_none_match {
                    req = req.header(header::IF_NONE_MATCH, tag);
                }
                req
            })
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let too_large = || {
            GraphFailure::ServerError(GraphErrorInfo {
                status,
                message: Some(format!(
                    "Graph's answer is larger than the {max_bytes} bytes a photo read may take"
                )),
                request_id: header_str(&headers, "request-id"),
                client_request_id: Some(call.client_request_id.to_owned()),
                ..GraphErrorInfo::default()
            })
        };
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(too_large());
        }
        let mut body = bytes::BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() {
                    GraphFailure::AttemptTimeout
                } else {
                    GraphFailure::Reset
                }
            })?;
            if body.len() + chunk.len() > max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(GraphRead {
            not_modified: status == StatusCode::NOT_MODIFIED.as_u16(),
            content_type: header_str(&headers, header::CONTENT_TYPE.as_str()),
            etag: header_str(&headers, header::ETAG.as_str()),
            request_id: header_str(&headers, "request-id"),
            body: body.freeze(),
        })
    }

    /// Sends what `build` makes (given the time left for one attempt), retrying Graph's 429,
    /// 503, 504 and refused connections within the deadline; a 2xx or 304 is returned, anything
    /// else is a `GraphFailure`.
    async fn execute(
        &self,
        client_request_id: &str,
        what: &'static str,
        build: impl Fn(Duration) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphFailure> {
        let started = Instant::now();
        let deadline = started + self.deadline;
        let mut attempt = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GraphFailure::DeadlinePassed);
            }
            let req = build(self.attempt_timeout.min(remaining));
            let sent = Instant::now();
            let result = req.send().await;
            let (status, retry_after, failure) = match result {
                Err(e) if e.is_timeout() => {
                    metrics::graph_call(GraphOutcome::Timeout, sent.elapsed());
                    return Err(GraphFailure::AttemptTimeout);
                }
                Err(e) if e.is_connect() => {
                    metrics::graph_call(GraphOutcome::ConnectError, sent.elapsed());
                    (None, None, GraphFailure::ConnectFailed)
                }
                Err(_) => {
                    metrics::graph_call(GraphOutcome::Reset, sent.elapsed());
                    return Err(GraphFailure::Reset);
                }
                Ok(resp) => {
                    let status = resp.status();
                    metrics::graph_call(GraphOutcome::Status(status.as_u16()), sent.elapsed());
                    if status.is_success() || status == StatusCode::NOT_MODIFIED {
                        return Ok(resp);
                    }
                    let retry_after = parse_retry_after(resp.headers().get(header::RETRY_AFTER));
                    let claims = challenge_claims(resp.headers());
                    let info = read_error(resp, client_request_id).await;
                    if status == StatusCode::UNAUTHORIZED {
                        return Err(GraphFailure::Unauthorized { claims, info });
                    }
                    let failure = classify(status, info, retry_after);
                    if !matches!(status.as_u16(), 429 | 503 | 504) {
                        return Err(failure);
                    }
                    (Some(status), retry_after, failure)
                }
            };
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            let fits = Instant::now() + wait < deadline;
            if attempt >= self.max_retries || !fits {
                return Err(failure);
            }
            attempt += 1;
            metrics::graph_retry();
            tracing::info!(
                status = status.map(|s| s.as_u16()),
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying Graph {what}"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

pub(super) async fn read_error(resp: reqwest::Response, client_request_id: &str) -> GraphErrorInfo {
    let status = resp.status().as_u16();
    let header_request_id = header_str(resp.headers(), "request-id");
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_ERROR_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let parsed = serde_json::from_slice::<GraphErrorBody>(&body)
        .ok()
        .map(|b| b.error);
    let (code, message, inner) = match parsed {
        Some(e) => (e.code, e.message, e.inner),
        None => (None, None, None),
    };
    let (inner_rid, date) = inner
        .map(|i| (i.request_id, i.date))
        .unwrap_or((None, None));
    GraphErrorInfo {
        status,
        code,
        message,
        request_id: header_request_id.or(inner_rid),
        client_request_id: Some(client_request_id.to_owned()),
        date,
    }
}

fn classify(
    status: StatusCode,
    info: GraphErrorInfo,
    retry_after: Option<Duration>,
) -> GraphFailure {
    match status.as_u16() {
        429 | 503 | 504 => GraphFailure::Unavailable { retry_after, info },
        400..=499 => GraphFailure::Rejected(info),
        _ => GraphFailure::ServerError(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(0) >= Duration::from_millis(500) && backoff(0) <= Duration::from_millis(750)
        );
        assert!(backoff(10) <= Duration::from_secs(12));
    }

    #[test]
    fn claims_challenge_is_decoded() {
        let mut h = header::HeaderMap::new();
        let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(claims);
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(
                "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"{b64}\""
            ))
            .unwrap(),
        );
        assert_eq!(challenge_claims(&h).as_deref(), Some(claims));
    }
}
