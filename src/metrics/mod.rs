//! Prometheus metrics: the recorder (process-global, installed once) and one function per event,
//! so label sets stay bounded and names are defined in one place.

pub mod server;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the recorder on first call and returns its handle (None if another recorder won).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
        .unwrap_or_default()
}

/// One HTTP request finished.
pub fn http_request(route: String, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    ::metrics::counter!("photo_gateway_http_requests_total", &labels).increment(1);
    ::metrics::histogram!("photo_gateway_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
}

/// Photo bytes received and accepted.
pub fn photo_bytes(n: usize) {
    ::metrics::counter!("photo_gateway_photo_bytes_received_total").increment(n as u64);
}

/// A token-cache lookup.
pub fn token_cache(miss: bool, entries: u64) {
    let result = if miss { "miss" } else { "hit" };
    ::metrics::counter!("photo_gateway_token_cache_requests_total", "result" => result)
        .increment(1);
    ::metrics::gauge!("photo_gateway_token_cache_entries").set(entries as f64);
}

/// A token-endpoint call finished with `outcome`.
pub fn token_request(outcome: &'static str, elapsed: Duration) {
    ::metrics::counter!("photo_gateway_token_requests_total", "outcome" => outcome).increment(1);
    ::metrics::histogram!("photo_gateway_token_request_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// A Graph call finished with `status` (an HTTP status or a transport outcome).
pub fn graph_call(status: &str, elapsed: Duration) {
    let status = status.to_owned();
    ::metrics::counter!("photo_gateway_graph_requests_total", "status" => status.clone())
        .increment(1);
    ::metrics::histogram!("photo_gateway_graph_request_duration_seconds", "status" => status)
        .record(elapsed.as_secs_f64());
}

/// A Graph call is being retried.
pub fn graph_retry() {
    ::metrics::counter!("photo_gateway_graph_retries_total").increment(1);
}

/// A JWKS load or refresh finished.
pub fn jwks_refresh(ok: bool) {
    let result = if ok { "success" } else { "failure" };
    ::metrics::counter!("photo_gateway_jwks_refreshes_total", "result" => result).increment(1);
}

/// Uploads in flight changed by `delta`.
pub fn uploads_in_flight(delta: f64) {
    ::metrics::gauge!("photo_gateway_uploads_in_flight").increment(delta);
}
