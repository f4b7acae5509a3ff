//! The one way outbound HTTP clients are built: TLS roots (system plus an optional extra bundle),
//! no redirects, connect and total timeouts.

use std::time::{Duration, SystemTime};

use crate::config::UpstreamConfig;

/// Errors building an upstream client.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The extra CA bundle could not be read or parsed.
    #[error("PHOTO_GATEWAY_CA_BUNDLE_FILE: {0}")]
    CaBundle(String),
    /// reqwest refused the configuration.
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Reads the extra CA bundle once, so all clients share the parsed certificates.
pub fn extra_roots(config: &UpstreamConfig) -> Result<Vec<reqwest::Certificate>, ClientBuildError> {
    let Some(path) = &config.ca_bundle_file else {
        return Ok(Vec::new());
    };
    let pem =
        std::fs::read(path).map_err(|e| ClientBuildError::CaBundle(format!("{path:?}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ClientBuildError::CaBundle(format!("{path:?}: {e}")))?;
    if certs.is_empty() {
        return Err(ClientBuildError::CaBundle(format!(
            "{path:?} holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// Builds a client for one upstream with the given total timeout per request.
pub fn client(
    config: &UpstreamConfig,
    roots: &[reqwest::Certificate],
    timeout: Duration,
) -> Result<reqwest::Client, ClientBuildError> {
    Ok(builder(config, roots, timeout).build()?)
}

fn builder(
    config: &UpstreamConfig,
    roots: &[reqwest::Certificate],
    timeout: Duration,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("photo-gateway/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tls_certs_merge(roots.iter().cloned())
}

/// A client of the hot path, one per thread that uses it.
///
/// Each HTTP worker runs its own single-threaded runtime, and a pooled connection's task runs on
/// the runtime that opened it. With one shared pool, a request on one worker often goes out on a
/// connection another worker opened: its send and its answer then each wake that other thread.
/// A pool per thread keeps every call on the thread that makes it (2–5 % less CPU per 50 KB
/// upload; BENCHMARKS.md, phase 8, fourth pass), for the price of one pool (idle connections, TLS
/// sessions) per worker.
pub struct PerThreadClient {
    config: UpstreamConfig,
    roots: Vec<reqwest::Certificate>,
    timeout: Duration,
    /// Built at start-up, so that a configuration reqwest refuses stops the start; also the
    /// fallback should a later build fail.
    first: reqwest::Client,
    /// Bounded by the threads that make calls (the HTTP workers and the main runtime).
    clients: thread_local::ThreadLocal<reqwest::Client>,
}

impl PerThreadClient {
    /// Builds the first client (checking the configuration); the others are built on first use.
    pub fn new(
        config: &UpstreamConfig,
        roots: &[reqwest::Certificate],
        timeout: Duration,
    ) -> Result<PerThreadClient, ClientBuildError> {
        Ok(PerThreadClient {
            config: config.clone(),
            roots: roots.to_vec(),
            timeout,
            first: client(config, roots, timeout)?,
            clients: thread_local::ThreadLocal::new(),
        })
    }

    /// This thread's client.
    pub fn get(&self) -> &reqwest::Client {
        self.clients
            .get_or_try(|| builder(&self.config, &self.roots, self.timeout).build())
            .unwrap_or(&self.first)
    }
}

/// Parses `Retry-After` as seconds (possibly fractional) or an HTTP date; capped at an hour.
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let v = value?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::from_secs_f64(secs.min(3600.0))
    } else {
        let when = httpdate::parse_http_date(v).ok()?;
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn each_thread_gets_a_pool_of_its_own_and_keeps_it() {
        let config = UpstreamConfig {
            ca_bundle_file: None,
            connect_timeout: Duration::from_secs(1),
        };
        let clients = PerThreadClient::new(&config, &[], Duration::from_secs(1)).unwrap();
        let here = std::ptr::from_ref(clients.get()) as usize;
        assert_eq!(here, std::ptr::from_ref(clients.get()) as usize);
        std::thread::scope(|s| {
            let there = s
                .spawn(|| std::ptr::from_ref(clients.get()) as usize)
                .join()
                .unwrap();
            assert_ne!(here, there, "another thread shares this thread's pool");
        });
    }

    #[test]
    fn retry_after_accepts_fractions_and_dates() {
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("2.128"))),
            Some(Duration::from_secs_f64(2.128))
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("0"))),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(Some(&HeaderValue::from_str(&later).unwrap())).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("soon"))),
            None
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("-1"))),
            None
        );
    }
}
