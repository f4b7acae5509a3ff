//! Logging, the request id that follows a request end to end, and the per-request root span.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Header carrying the request id to and from callers.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Graph's and the SDKs' name for the caller-chosen request id.
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// The id of one request: accepted from the caller when sane, minted otherwise.
#[derive(Debug, Clone)]
pub struct RequestId(pub std::sync::Arc<str>);

impl RequestId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The request id of the request being served on this task, or a fresh one outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.0.to_string())
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// True for ids safe to echo and forward: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_sane_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn pick_request_id(req: &ServiceRequest) -> RequestId {
    let from = |name: &HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_sane_request_id(v))
    };
    let id = from(&CLIENT_REQUEST_ID)
        .or_else(|| from(&X_REQUEST_ID))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    RequestId(id.into())
}

/// Middleware: assigns the request id, makes it visible to error rendering, echoes it, and adds
/// the security headers every response carries.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = pick_request_id(&req);
    let start = Instant::now();
    req.extensions_mut().insert(id.clone());
    req.extensions_mut().insert(RequestStart(start));
    // Handler and extractor errors are already responses here; rendering happens inside the
    // scope so their problem bodies carry this request's id.
    let mut res = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    let route = res
        .request()
        .extensions()
        .get::<RouteTemplate>()
        .map(|r| r.0.to_owned())
        .or_else(|| res.request().match_pattern())
        .unwrap_or_else(|| "unmatched".to_owned());
    crate::metrics::http_request(
        route,
        res.request().method().as_str(),
        res.status().as_u16(),
        start.elapsed(),
    );
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        headers.insert(X_REQUEST_ID, v.clone());
        headers.insert(CLIENT_REQUEST_ID, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// The route template a request was matched to (bounded label for metrics, never raw ids).
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// When the request entered the gateway.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

/// Root span per request: request id, method, route template, status, latency, calling app and
/// target kind. Never the raw query string (it may carry a token) and never headers.
pub struct GatewayRootSpan;

impl RootSpanBuilder for GatewayRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| "-".into());
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        tracing::info_span!(
            "HTTP request",
            request_id = %request_id,
            http.method = %request.method(),
            http.route = %route,
            http.status_code = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            client_app = tracing::field::Empty,
            tenant_id = tracing::field::Empty,
            target_kind = tracing::field::Empty,
            photo_bytes = tracing::field::Empty,
            error.code = tracing::field::Empty,
            otel.kind = "server",
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, start) = match outcome {
            Ok(res) => (
                res.status(),
                res.request().extensions().get::<RequestStart>().copied(),
            ),
            Err(e) => (e.as_response_error().status_code(), None),
        };
        span.record("http.status_code", status.as_u16());
        let latency_ms = start.map(|s| s.0.elapsed().as_secs_f64() * 1000.0);
        if let Some(ms) = latency_ms {
            span.record("latency_ms", ms);
        }
        span.in_scope(|| {
            if status.is_server_error() {
                tracing::warn!(status = status.as_u16(), latency_ms, "request finished");
            } else {
                tracing::info!(status = status.as_u16(), latency_ms, "request finished");
            }
        });
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init<W>(format: LogFormat, filter: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
