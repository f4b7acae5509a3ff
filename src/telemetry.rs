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
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{JsonVisitor, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields, MakeWriter};

pub use crate::config::LogFormat;

/// Header carrying the request id to and from callers.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Graph's and the SDKs' name for the caller-chosen request id.
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

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
fn is_sane_request_id(v: &str) -> bool {
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
    let method = req.method().clone();
    let mut res = match REQUEST_ID.scope(id.clone(), next.call(req)).await {
        Ok(res) => res,
        Err(e) => {
            // Only a caught panic gets here (its answer is already stamped); still count it.
            let status = e.as_response_error().status_code().as_u16();
            crate::metrics::http_request(UNMATCHED, method.as_str(), status, start.elapsed());
            return Err(e);
        }
    };
    let route = res
        .request()
        .extensions()
        .get::<RouteTemplate>()
        .map(|r| r.0)
        .or_else(|| {
            res.request().match_pattern().and_then(|p| {
                crate::http::ROUTE_PATTERNS
                    .iter()
                    .copied()
                    .find(|k| *k == p)
            })
        })
        .unwrap_or(UNMATCHED);
    crate::metrics::http_request(
        route,
        res.request().method().as_str(),
        res.status().as_u16(),
        start.elapsed(),
    );
    stamp_headers(res.headers_mut(), id.as_str());
    Ok(res)
}

/// The headers every answer carries: the request id (echoed) and the security headers.
pub fn stamp_headers(headers: &mut actix_web::http::header::HeaderMap, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
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
}

/// The route label of a request no route matched (bounded: never the raw path).
const UNMATCHED: &str = "unmatched";

/// The route template a request was matched to (bounded label for metrics, never raw ids).
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// When the request entered the gateway.
#[derive(Debug, Clone, Copy)]
struct RequestStart(Instant);

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
        let span = tracing::info_span!(
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
        );
        set_remote_parent(request, &span);
        span
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

/// Keeps the OpenTelemetry exporter alive; flushes pending spans when dropped.
pub struct TelemetryGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown();
        }
    }
}

/// True when the standard `OTEL_*` variables ask for OTLP span export.
fn otlp_requested() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn otlp_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| e.to_string())?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("photo-gateway");
    }
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs the global subscriber (safe to call more than once: later calls are no-ops), and the
/// OTLP span exporter when the standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variables are set.
pub fn init<W>(format: LogFormat, filter: &str, writer: W) -> TelemetryGuard
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (provider, otel_error) = if otlp_requested() {
        match otlp_provider() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let otel_layer = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("photo-gateway"))
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt.json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .fmt_fields(SpanJsonFields),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt.compact()).try_init(),
    };
    if let Some(e) = otel_error {
        tracing::error!(error = %e, "OTLP span export is configured but could not start; continuing without it");
    }
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing::info!("exporting spans over OTLP");
    }
    TelemetryGuard(provider)
}

/// The JSON formatter's span fields, grown by splicing instead of re-parsing.
///
/// tracing-subscriber's `JsonFields` stores a span's fields as one JSON string and, on each
/// `Span::record`, parses it, adds the field and serializes it again. The root span is recorded
/// seven times per upload, which made this about 6 % of the gateway's CPU per 50 KB upload
/// (BENCHMARKS.md, phase 8, fourth pass). Here a record appends its members to the object; a
/// field recorded twice appears twice in the stored string, and the event formatter, which parses
/// the stored object into a map before writing a line, keeps the last value once.
struct SpanJsonFields;

impl<'w> FormatFields<'w> for SpanJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut v = JsonVisitor::new(&mut writer);
        fields.record(&mut v);
        v.finish()
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut added = String::new();
        let mut v = JsonVisitor::new(&mut added);
        fields.record(&mut v);
        v.finish()?;
        let (Some(members), Some(stored)) = (
            added.strip_prefix('{').filter(|m| *m != "}"),
            current.fields.strip_suffix('}'),
        ) else {
            // Nothing added, or nothing stored yet (then `added` is the whole object).
            if current.fields.is_empty() || current.fields == "{}" {
                current.fields = added;
            }
            return Ok(());
        };
        let separator = if stored == "{" { "" } else { "," };
        current.fields.truncate(stored.len());
        current.fields.push_str(separator);
        current.fields.push_str(members);
        Ok(())
    }
}

struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the caller's W3C trace context, when it sent one.
fn set_remote_parent(request: &ServiceRequest, span: &Span) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if request.headers().contains_key("traceparent") {
        let cx = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(cx);
    }
}

/// The `traceparent` to send upstream: the current span's when spans are exported (so Entra and
/// Graph calls are children of the gateway's span), else the caller's, passed through unchanged.
pub fn outbound_traceparent(caller: Option<&str>) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = Span::current().context();
    if cx.span().span_context().is_valid() {
        let mut carrier = std::collections::HashMap::new();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
        if let Some(tp) = carrier.remove("traceparent") {
            return Some(tp);
        }
    }
    caller.filter(|v| is_traceparent(v)).map(str::to_owned)
}

/// True for a syntactically valid W3C `traceparent` (version 00).
fn is_traceparent(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 55
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 2 | 35 | 52) || c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn span_fields_recorded_over_time_reach_the_line_once_each_with_their_last_value() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || sink.clone())
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .fmt_fields(SpanJsonFields),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "HTTP request",
                request_id = "r-1",
                http.route = "default",
                client_app = tracing::field::Empty,
                photo_bytes = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            );
            span.record("client_app", "app \"quoted\", with {braces}");
            span.record("http.route", "/v1.0/me/photo/$value");
            span.record("photo_bytes", 4096);
            span.record("http.route", "/v1.0/users/{user}/photo/$value");
            span.record("latency_ms", 1.5);
            span.in_scope(|| tracing::info!(status = 200, "request finished"));
            let empty = tracing::info_span!("nothing recorded", later = tracing::field::Empty);
            empty.record("later", true);
            empty.in_scope(|| tracing::info!("inner"));
        });
        let out = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let mut parsed = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
        let line = parsed.next().unwrap();
        let span = &line["span"];
        assert_eq!(span["request_id"], "r-1");
        assert_eq!(span["http.route"], "/v1.0/users/{user}/photo/$value");
        assert_eq!(span["client_app"], "app \"quoted\", with {braces}");
        assert_eq!(span["photo_bytes"], 4096);
        assert_eq!(span["latency_ms"], 1.5);
        assert_eq!(line["fields"]["status"], 200);
        let first = out.lines().next().unwrap();
        assert_eq!(first.matches("\"http.route\"").count(), 1, "{first}");
        assert_eq!(parsed.next().unwrap()["span"]["later"], true);
    }
}
