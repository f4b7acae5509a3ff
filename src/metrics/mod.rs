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

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Name of the thread that runs the upkeep (seen in `top -H`, and by the test below).
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// Installs the recorder on first call and returns its handle (None if another recorder won).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            spawn_upkeep(handle.clone());
            Some(handle)
        })
        .clone()
}

/// The recorder keeps every histogram sample until a scrape or an upkeep folds it into the
/// buckets, and `install_recorder` starts no upkeep of its own: without this, a gateway whose
/// metrics port nobody scrapes grows by about 16 bytes per request, without bound.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started: histogram samples are folded only when scraped");
    }
}

/// The Prometheus text exposition of every metric (the allocator's figures read at that moment).
pub fn render() -> String {
    allocator_gauges();
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(|h| h.render())
        .unwrap_or_default()
}

/// Methods a label may name; any other is `other`, so invented methods cannot add series.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Statuses a label may name: the ones the gateway and Graph are known to answer with; any other
/// is its class (`2xx` … `5xx`, or `other`), so an upstream's odd status cannot add series.
fn status_label(status: u16) -> &'static str {
    const KNOWN: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (301, "301"),
        (304, "304"),
        (308, "308"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(s, _)| *s == status) {
        return label;
    }
    match status / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

/// One HTTP request finished. `route` is a route template (never a raw path).
pub fn http_request(route: &'static str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route),
        ("method", method_label(method)),
        ("status", status_label(status)),
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

/// A lookup of the gateway's own app-only Graph token (daemon callers): its own counter, so the
/// On-Behalf-Of cache's hit rate and entry gauge stay about users' tokens.
pub fn app_token_cache(miss: bool) {
    let result = if miss { "miss" } else { "hit" };
    ::metrics::counter!("photo_gateway_app_token_cache_requests_total", "result" => result)
        .increment(1);
}

/// A token-endpoint call finished with `outcome`.
pub fn token_request(outcome: &'static str, elapsed: Duration) {
    ::metrics::counter!("photo_gateway_token_requests_total", "outcome" => outcome).increment(1);
    ::metrics::histogram!("photo_gateway_token_request_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// How a Graph call ended.
#[derive(Debug, Clone, Copy)]
pub enum GraphOutcome {
    /// Graph answered with this status.
    Status(u16),
    /// No answer in time.
    Timeout,
    /// The connection could not be made.
    ConnectError,
    /// The connection was reset before an answer.
    Reset,
}

/// A Graph call finished.
pub fn graph_call(outcome: GraphOutcome, elapsed: Duration) {
    let status = match outcome {
        GraphOutcome::Status(s) => status_label(s),
        GraphOutcome::Timeout => "timeout",
        GraphOutcome::ConnectError => "connect_error",
        GraphOutcome::Reset => "reset",
    };
    ::metrics::counter!("photo_gateway_graph_requests_total", "status" => status).increment(1);
    ::metrics::histogram!("photo_gateway_graph_request_duration_seconds", "status" => status)
        .record(elapsed.as_secs_f64());
}

/// A Graph call is being retried.
pub fn graph_retry() {
    ::metrics::counter!("photo_gateway_graph_retries_total").increment(1);
}

/// How the mailbox of a user named by userPrincipalName was found.
#[derive(Debug, Clone, Copy)]
pub enum UserLookup {
    /// Its object id was cached.
    Hit,
    /// Graph was asked and answered its object id.
    Miss,
    /// No object id (Graph refused or failed, now or recently): the UPN is the mailbox's key.
    Fallback,
}

/// A target's user was resolved to its mailbox.
pub fn user_lookup(result: UserLookup) {
    let result = match result {
        UserLookup::Hit => "hit",
        UserLookup::Miss => "miss",
        UserLookup::Fallback => "fallback",
    };
    ::metrics::counter!("photo_gateway_user_lookups_total", "result" => result).increment(1);
}

/// A user lookup in Graph finished with `outcome` (one of a fixed set: `found`, `refused`,
/// `not_found`, `unauthorized`, `unavailable`, `timeout`, `invalid`).
pub fn user_lookup_call(outcome: &'static str, elapsed: Duration) {
    ::metrics::histogram!("photo_gateway_user_lookup_duration_seconds", "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// How a photo read was answered: `hit` (from the read cache), `revalidated` (Graph answered
/// 304 to the cached ETag), `miss` (read from Graph), `not_found`.
pub fn read_cache(result: &'static str) {
    ::metrics::counter!("photo_gateway_read_cache_requests_total", "result" => result).increment(1);
}

/// A read's answer was not cached: the target changed while Graph answered it.
pub fn read_cache_overtaken() {
    ::metrics::counter!("photo_gateway_read_cache_overtaken_total").increment(1);
}

/// Bytes the read cache holds (weighed as it bounds them).
pub fn read_cache_bytes(bytes: u64) {
    ::metrics::gauge!("photo_gateway_read_cache_bytes").set(bytes as f64);
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

/// Whether the shared Redis answers (1) or the replica is on its own (0).
pub fn redis_up(up: bool) {
    ::metrics::gauge!("photo_gateway_redis_up").set(if up { 1.0 } else { 0.0 });
}

/// A use of Redis fell back to this replica alone; `what` is one of a fixed set (`token_cache`,
/// `caller_rate`, `mailbox`, `invalidation`).
pub fn redis_fallback(what: &'static str) {
    ::metrics::counter!("photo_gateway_redis_fallbacks_total", "use" => what).increment(1);
}

/// `n` invalidations were offered to the other replicas: `sent`, `unneeded` (no replica had
/// marked the target as cached) or `failed` (Redis).
pub fn invalidation_published(result: &'static str, n: usize) {
    if n > 0 {
        ::metrics::counter!("photo_gateway_redis_invalidations_published_total", "result" => result)
            .increment(n as u64);
    }
}

/// A message arrived on the invalidation channel: `applied` (another replica's), `own` or
/// `malformed` (ignored).
pub fn invalidation_received(result: &'static str) {
    ::metrics::counter!("photo_gateway_redis_invalidations_received_total", "result" => result)
        .increment(1);
}

/// Whether this replica hears the other replicas' changes (1); while it does not (0), its read
/// cache takes no new entries.
pub fn invalidation_subscribed(subscribed: bool) {
    ::metrics::gauge!("photo_gateway_redis_invalidation_subscribed").set(if subscribed {
        1.0
    } else {
        0.0
    });
}

/// The invalidation channel was subscribed again after being lost (the read cache was flushed).
pub fn invalidation_resubscribed() {
    ::metrics::counter!("photo_gateway_redis_invalidation_resubscriptions_total").increment(1);
}

/// An L1 miss looked in the shared (L2) token cache: `hit`, `miss`, `waited` (another replica's
/// exchange was awaited and used) or `unavailable`.
pub fn token_cache_l2(result: &'static str) {
    ::metrics::counter!("photo_gateway_token_cache_l2_requests_total", "result" => result)
        .increment(1);
}

/// The allocator's own figures (jemalloc, the process allocator: `main.rs`), so that resident
/// memory can be told apart: `allocated` (live allocations), `active` (the pages they occupy),
/// `resident` (what the allocator holds in RAM: active plus dirty pages not yet returned) and
/// `retained` (address space kept but returned to the OS). RSS well above `resident` is not the
/// allocator's; `resident` well above `allocated` is fragmentation or pages awaiting decay.
fn allocator_gauges() {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot refreshed by advancing the epoch.
    if epoch::advance().is_err() {
        return;
    }
    let figures = [
        ("allocated", stats::allocated::read()),
        ("active", stats::active::read()),
        ("resident", stats::resident::read()),
        ("retained", stats::retained::read()),
    ];
    for (kind, value) in figures {
        if let Ok(v) = value {
            ::metrics::gauge!("photo_gateway_allocator_bytes", "kind" => kind).set(v as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{method_label, status_label};

    /// The recorder's histograms are drained by an upkeep thread, not only by scrapes.
    #[cfg(target_os = "linux")]
    #[test]
    fn installing_the_recorder_starts_its_upkeep() {
        assert!(super::install().is_some(), "the recorder was not installed");
        let names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("/proc/self/task")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        };
        // A new thread carries its parent's name until it has started and named itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !names().iter().any(|n| n == super::UPKEEP_THREAD)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let seen = names();
        assert!(
            seen.iter().any(|n| n == super::UPKEEP_THREAD),
            "no {} thread among {seen:?}",
            super::UPKEEP_THREAD
        );
    }

    #[test]
    fn labels_come_from_a_fixed_set() {
        assert_eq!(method_label("PUT"), "PUT");
        assert_eq!(method_label("X1"), "other");
        assert_eq!(method_label("put"), "other");
        assert_eq!(status_label(413), "413");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(999), "other");
        assert_eq!(status_label(42), "other");
    }
}
