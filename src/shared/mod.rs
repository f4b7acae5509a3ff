//! The optional Redis tier: what replicas share (the sealed token cache in `token/l2.rs`, the
//! global Graph limits in `limits.rs`, the read cache's invalidations in `invalidate.rs`) goes
//! through one [`Redis`] handle, which owns the
//! connection (redis-rs's reconnecting `ConnectionManager`), bounds every call by the configured
//! timeout, and keeps the tier's health: a failed or slow call marks Redis down, and while it is
//! down callers fall back at once (L1 only, per-pod limits) except for one probe a second, whose
//! success marks it up again. Each change of state is logged once; `photo_gateway_redis_up` and
//! `photo_gateway_redis_fallbacks_total` show it. Readiness never depends on Redis.

pub mod invalidate;
pub mod limits;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisResult};
use secrecy::ExposeSecret;

use crate::config::RedisConfig;
use crate::metrics;

pub use invalidate::Invalidation;
pub use limits::GlobalLimits;

/// What keys are named by: a SHA-256 of the parts (each ended by a NUL, so that the parts' own
/// boundaries count), 128 bits in hex. No user name, id or tenant appears in Redis.
fn hashed(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// While Redis is down, one call in this interval is let through as a probe.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the tier could not be set up (bad URL or CA bundle: configuration mistakes found at start;
/// an unreachable Redis is not one of them).
#[derive(Debug, thiserror::Error)]
#[error("PHOTO_GATEWAY_REDIS_URL: {0}")]
pub struct RedisSetupError(String);

/// What a Redis call was for; names the fallback counted when it fails.
#[derive(Debug, Clone, Copy)]
pub enum Use {
    /// The L2 token cache (fallback: L1 and an exchange of this replica's own).
    TokenCache,
    /// The per-caller rate (fallback: this replica's share).
    CallerRate,
    /// A mailbox's concurrency and byte window (fallback: this replica's share).
    Mailbox,
    /// Telling the other replicas a photo changed (fallback: their read caches' TTL).
    Invalidation,
}

/// An error Redis answered for this command only: the server is there and serving.
fn refused(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::NoPerm
                | ServerErrorKind::ResponseError
                | ServerErrorKind::NoScript
                | ServerErrorKind::ExecAbort
        ) | ErrorKind::UnexpectedReturnType
    )
}

impl Use {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn label(self) -> &'static str {
        match self {
            Use::TokenCache => "token_cache",
            Use::CallerRate => "caller_rate",
            Use::Mailbox => "mailbox",
            Use::Invalidation => "invalidation",
        }
    }
}

/// The shared Redis: one multiplexed, reconnecting connection per thread that uses it (each HTTP
/// worker runs its own runtime: a connection of its own keeps every round trip on that thread,
/// where one shared connection's driver task would wake another thread twice per call), and the
/// tier's health.
pub struct Redis {
    client: redis::Client,
    manager: ConnectionManagerConfig,
    /// Bounded by the threads that run requests (the HTTP workers and the main runtime).
    conns: Mutex<HashMap<ThreadId, ConnectionManager>>,
    timeout: Duration,
    prefix: String,
    up: AtomicBool,
    /// A bit per [`Use`] whose last call Redis refused (logged once until one succeeds).
    refusing: AtomicU8,
    /// Milliseconds since `epoch` before which a down Redis is not tried again.
    retry_at_ms: AtomicU64,
    epoch: Instant,
}

impl Redis {
    /// Sets up the client without connecting: the connection is made on first use, and made again
    /// whenever it breaks, so a Redis that is down at start is no reason not to start.
    pub fn new(config: &RedisConfig) -> Result<Redis, RedisSetupError> {
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| RedisSetupError(format!("not usable: {e}")))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &config.username {
            settings = settings.set_username(user);
        }
        if let Some(pw) = &config.password {
            settings = settings.set_password(pw.expose_secret());
        }
        info = info.set_redis_settings(settings);
        // Nagle off: calls are small and latency-bound, and on a multiplexed connection a call
        // written while another's answer is outstanding would otherwise wait for that answer's
        // ACK before leaving (one more round trip on the request's path).
        info = info.set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = match (info.addr(), &config.ca_bundle_file) {
            (ConnectionAddr::TcpTls { .. }, ca) => {
                // rustls needs one process-wide provider when several are compiled in; the same
                // one the HTTP clients use. Installing twice is harmless (the first one stays).
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let root_cert = match ca {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        RedisSetupError(format!("cannot read the CA bundle {path:?}: {e}"))
                    })?),
                    None => None,
                };
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert,
                    },
                )
            }
            _ => redis::Client::open(info),
        }
        .map_err(|e| RedisSetupError(format!("not usable: {e}")))?;
        let manager = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.timeout))
            // A connection attempt may take longer than one call (TLS); calls wait at most their
            // own deadline for it, the attempt goes on for the next call.
            .set_connection_timeout(Some(config.timeout.max(Duration::from_secs(1))))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        // Checked here, so that a configuration it refuses stops the start.
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager.clone())
            .map_err(|e| RedisSetupError(format!("not usable: {e}")))?;
        metrics::redis_up(true);
        Ok(Redis {
            client,
            manager,
            conns: Mutex::new(HashMap::from([(std::thread::current().id(), conn)])),
            timeout: config.timeout,
            prefix: config.key_prefix.clone(),
            up: AtomicBool::new(true),
            refusing: AtomicU8::new(0),
            retry_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// The client (for connections of their own, such as the invalidation channel's subscriber).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// How long connecting may take (longer than one call: TLS).
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.timeout.max(Duration::from_secs(1))
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// True while the last call succeeded (or none failed yet).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Checks the connection once (PING), logging the outcome: for startup.
    pub async fn probe(&self) -> bool {
        self.call(Use::TokenCache, |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .is_some()
    }

    /// Runs one call within the deadline. `None` means "fall back": Redis failed, was too slow,
    /// or is known to be down (then no call is made, except one probe a second).
    pub async fn call<T, F, Fut>(&self, what: Use, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.is_up() && !self.claim_probe() {
            metrics::redis_fallback(what.label());
            return None;
        }
        let Some(conn) = self.conn() else {
            self.down(what, "no connection");
            return None;
        };
        let outcome = tokio::time::timeout(self.timeout, f(conn)).await;
        match outcome {
            Ok(Ok(v)) => {
                if self.refusing.load(Ordering::Relaxed) & what.bit() != 0 {
                    self.refusing.fetch_and(!what.bit(), Ordering::AcqRel);
                }
                if !self.up.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        "Redis is reachable again: shared token cache and global limits resume"
                    );
                    metrics::redis_up(true);
                }
                Some(v)
            }
            Ok(Err(e)) if refused(&e) => {
                // Redis answered: it refuses this command (an ACL without it, a script's error),
                // which says nothing of the tier's health. Only this call falls back.
                metrics::redis_fallback(what.label());
                if self.refusing.fetch_or(what.bit(), Ordering::AcqRel) & what.bit() == 0 {
                    tracing::warn!(
                        reason = ?e.kind(),
                        r#use = what.label(),
                        "Redis refused a command: this use falls back to the replica alone until it is allowed"
                    );
                }
                None
            }
            Ok(Err(e)) => {
                self.down(what, &format!("error ({:?})", e.kind()));
                None
            }
            Err(_) => {
                self.down(
                    what,
                    &format!("no answer within {} ms", self.timeout.as_millis()),
                );
                None
            }
        }
    }

    /// This thread's connection, made on its first call (it connects lazily).
    fn conn(&self) -> Option<ConnectionManager> {
        let id = std::thread::current().id();
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conns.get(&id) {
            return Some(c.clone());
        }
        let c = ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager.clone())
            .ok()?;
        conns.insert(id, c.clone());
        Some(c)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// True for the one caller that may probe a down Redis now.
    fn claim_probe(&self) -> bool {
        let now = self.now_ms();
        let at = self.retry_at_ms.load(Ordering::Acquire);
        now >= at
            && self
                .retry_at_ms
                .compare_exchange(
                    at,
                    now + PROBE_INTERVAL.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn down(&self, what: Use, why: &str) {
        metrics::redis_fallback(what.label());
        self.retry_at_ms.store(
            self.now_ms() + PROBE_INTERVAL.as_millis() as u64,
            Ordering::Release,
        );
        if self.up.swap(false, Ordering::AcqRel) {
            // The error's kind only: its text could quote a command's arguments.
            tracing::warn!(
                reason = why,
                "Redis is unreachable: serving with this replica's token cache and its share of the limits"
            );
            metrics::redis_up(false);
        }
    }
}
