//! Admission control: in-flight budgets (uploads and photo bytes), per-caller rate limits, and
//! Graph's per-mailbox limits (concurrency and bytes per 30 s, per app and mailbox). Each limit is
//! optional (0 switches it off). No lock is held across an await.
//!
//! With the Redis tier (`shared/limits.rs`) the per-caller rate and the mailbox limits are counted
//! once for all replicas; whenever Redis fails, this replica falls back to its own share of each
//! (the limit divided by the expected replica count, at least 1). The in-flight budgets are this
//! replica's own either way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::AdmissionConfig;
use crate::error::{ApiError, retry_after_secs};
use crate::shared::GlobalLimits;
use crate::shared::limits::{CallerRate, Lease, Take, Window};

const MAILBOX_WINDOW: Duration = Duration::from_secs(30);

struct Bucket {
    tokens: f64,
    updated: Instant,
}

struct Mailbox {
    slots: Option<Arc<Semaphore>>,
    /// (when, bytes) of uploads in the last window.
    sent: Mutex<VecDeque<(Instant, usize)>>,
}

/// How often a request waiting for a mailbox slot held by other replicas asks again (plus up to
/// as much jitter).
const SLOT_POLL: Duration = Duration::from_millis(25);

/// Shared admission state.
pub struct Admission {
    /// The limits as configured (global ones when `global` is set).
    config: AdmissionConfig,
    /// What this replica enforces on its own: `config`, or its share of it with Redis.
    local: AdmissionConfig,
    global: Option<Arc<GlobalLimits>>,
    uploads: Option<Arc<Semaphore>>,
    bytes: Option<Arc<Semaphore>>,
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    /// App-only callers' rate, keyed by app alone: (configured, this replica's share).
    app_rate: (Rate, Rate),
    /// Among how many replicas the global limits are shared (1 without Redis).
    replicas: u32,
    mailboxes: moka::sync::Cache<String, Arc<Mailbox>>,
}

/// A sustained rate per minute and its burst (0 rate = off).
#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    per_min: u32,
    burst: u32,
}

/// The `user` part of an app-only caller's rate key: no object id is empty or holds a NUL, so
/// an app's own bucket is never one of its users'.
const APP_ONLY_KEY: &str = "\u{0}app-only";

/// Whose allowance a request takes: a signed-in user's (per app and user) or a daemon's (per
/// app), with its rate as configured and this replica's share of it.
#[derive(Debug, Clone, Copy)]
pub struct RateSubject<'a> {
    app: &'a str,
    /// The user's object id, or [`APP_ONLY_KEY`].
    user: &'a str,
    configured: Rate,
    local: Rate,
}

impl RateSubject<'_> {
    fn app_only(&self) -> bool {
        self.user == APP_ONLY_KEY
    }

    /// 429 `rate-limited`, retry after `wait`.
    fn over(&self, wait: Duration) -> ApiError {
        let detail = if self.app_only() {
            format!(
                "this app-only caller (application {}) is over {} requests per minute",
                self.app, self.configured.per_min
            )
        } else {
            format!(
                "this caller (app and user) is over {} requests per minute",
                self.configured.per_min
            )
        };
        ApiError::RateLimited {
            detail,
            retry_after: retry_after_secs(wait),
        }
    }

    /// The configured rate, as Redis counts it for every replica.
    fn global(&self) -> CallerRate<'_> {
        CallerRate {
            app: self.app,
            user: self.user,
            per_min: self.configured.per_min,
            burst: self.configured.burst,
        }
    }
}

/// Which of a caller's buckets in this replica: its share of the global rate (or the whole rate
/// without Redis), or the pre-check of an upload whose global count is deferred.
#[derive(Clone, Copy)]
enum BucketUse {
    Share,
    PreCheck,
}

/// Budget held by one upload until it is dropped.
pub struct Reservation {
    _upload: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// A mailbox slot held during the Graph call.
pub struct MailboxSlot {
    _permit: Option<OwnedSemaphorePermit>,
    lease: Option<Lease>,
}

impl MailboxSlot {
    /// The slot's Redis lease, for a release made together with another call; the slot itself
    /// (this replica's permit, if any) stays held until dropped.
    pub fn take_lease(&mut self) -> Option<Lease> {
        self.lease.take()
    }
}

/// One replica's share of a limit among `n` (0 stays off; never below 1).
fn share(limit: usize, n: u32) -> usize {
    if limit == 0 {
        0
    } else {
        (limit / n.max(1) as usize).max(1)
    }
}

/// How a refusal names the limit it applied: Graph's, or this replica's share of it while the
/// shared limits are unavailable.
fn whose(share: bool) -> &'static str {
    if share {
        "through this replica (its share of Graph's per-mailbox limit while the replicas' shared limits are unavailable)"
    } else {
        "(Graph's per-mailbox limit)"
    }
}

fn mailbox_busy(conc: usize, share: bool) -> ApiError {
    ApiError::RateLimited {
        detail: format!(
            "this mailbox already has {conc} uploads in progress from this app {}",
            whose(share)
        ),
        retry_after: 1,
    }
}

fn mailbox_full(window_bytes: usize, wait: Duration, share: bool) -> ApiError {
    ApiError::RateLimited {
        detail: format!(
            "this app has sent {window_bytes} bytes to this mailbox in the last 30 seconds {}",
            whose(share)
        ),
        retry_after: retry_after_secs(wait),
    }
}

fn overloaded(what: &str) -> ApiError {
    ApiError::Overloaded(format!(
        "the gateway is at its {what} budget; retry shortly"
    ))
}

impl Admission {
    /// Builds the limiters, every one this replica's own.
    pub fn new(config: AdmissionConfig) -> Admission {
        Self::with_global(config, None, 1)
    }

    /// Builds the limiters with the per-caller rate and mailbox limits counted in Redis by
    /// `global` when set; `replicas` is the expected replica count, whose share of each limit
    /// this replica keeps when Redis fails.
    pub fn with_global(
        config: AdmissionConfig,
        global: Option<Arc<GlobalLimits>>,
        replicas: u32,
    ) -> Admission {
        let sem =
            |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        let n = if global.is_some() { replicas.max(1) } else { 1 };
        let local = AdmissionConfig {
            caller_rate_per_min: u32::try_from(share(config.caller_rate_per_min as usize, n))
                .unwrap_or(u32::MAX),
            caller_burst: u32::try_from(share(config.caller_burst as usize, n)).unwrap_or(1),
            mailbox_concurrency: share(config.mailbox_concurrency, n),
            mailbox_bytes_per_30s: share(config.mailbox_bytes_per_30s, n),
            ..config
        };
        Admission {
            config,
            local,
            app_rate: (Rate::default(), Rate::default()),
            replicas: n,
            global,
            uploads: sem(config.max_inflight_uploads),
            bytes: sem(config.max_inflight_bytes),
            // Idle entries vanish: a full bucket or an empty window carries no state worth keeping.
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            mailboxes: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(MAILBOX_WINDOW * 2)
                .build(),
        }
    }

    /// Reserves the in-flight budgets for an upload of at most `bytes`, or refuses at once.
    pub fn admit(&self, bytes: usize) -> Result<Reservation, ApiError> {
        let upload = match &self.uploads {
            Some(s) => Some(
                s.clone()
                    .try_acquire_owned()
                    .map_err(|_| overloaded("in-flight upload"))?,
            ),
            None => None,
        };
        let bytes = match &self.bytes {
            Some(s) => {
                let want = u32::try_from(bytes.clamp(1, self.config.max_inflight_bytes))
                    .unwrap_or(u32::MAX);
                Some(
                    s.clone()
                        .try_acquire_many_owned(want)
                        .map_err(|_| overloaded("in-flight byte"))?,
                )
            }
            None => None,
        };
        Ok(Reservation {
            _upload: upload,
            _bytes: bytes,
        })
    }

    /// A signed-in user's rate through `app` (`None`: the per-caller rate is off).
    pub fn user_rate<'a>(&self, app: &'a str, user: &'a str) -> Option<RateSubject<'a>> {
        (self.config.caller_rate_per_min > 0).then_some(RateSubject {
            app,
            user,
            configured: Rate {
                per_min: self.config.caller_rate_per_min,
                burst: self.config.caller_burst,
            },
            local: Rate {
                per_min: self.local.caller_rate_per_min,
                burst: self.local.caller_burst,
            },
        })
    }

    /// An app-only caller's own rate, one bucket per calling app whichever users' photos it
    /// changes (`None`: off).
    pub fn app_rate<'a>(&self, app: &'a str) -> Option<RateSubject<'a>> {
        let (configured, local) = self.app_rate;
        (configured.per_min > 0).then_some(RateSubject {
            app,
            user: APP_ONLY_KEY,
            configured,
            local,
        })
    }

    /// Takes one request from the subject's allowance (in Redis when shared), or says when to
    /// come back.
    pub async fn check_rate(&self, subject: Option<RateSubject<'_>>) -> Result<(), ApiError> {
        let Some(s) = subject else {
            return Ok(());
        };
        if let Some(g) = &self.global {
            match g.caller(s.global()).await {
                Some(None) => return Ok(()),
                Some(Some(wait)) => return Err(s.over(wait)),
                None => {} // Redis failed: this replica's share.
            }
        }
        self.check_here(&s)
    }

    /// An upload's rate: with Redis counting both it and the mailbox slot, it is counted in the
    /// slot's round trip (`Ok(Some(subject))`: pass it to [`Admission::mailbox`]), which saves a
    /// Redis round trip per upload; meanwhile a pre-check in this replica refuses at once a
    /// caller that this replica alone has seen over the whole rate. Otherwise it is checked now
    /// (`Ok(None)`).
    pub async fn check_upload_rate<'a>(
        &self,
        subject: Option<RateSubject<'a>>,
    ) -> Result<Option<RateSubject<'a>>, ApiError> {
        match subject {
            Some(s) if self.global.is_some() && self.config.mailbox_concurrency > 0 => {
                match self.take(&s, BucketUse::PreCheck) {
                    None => Ok(Some(s)),
                    Some(wait) => Err(s.over(wait)),
                }
            }
            s => self.check_rate(s).await.map(|()| None),
        }
    }

    /// Takes one request from a signed-in caller's allowance (the service goes through
    /// [`Admission::check_rate`] with its [`RateSubject`]; this names the unit tests' cases).
    #[cfg(test)]
    async fn check_caller(&self, app: &str, user: &str) -> Result<(), ApiError> {
        self.check_rate(self.user_rate(app, user)).await
    }

    /// Sets app-only callers' own rate (per calling app; 0 = off), shared among the replicas like
    /// the per-caller rate.
    pub fn with_app_rate(mut self, per_min: u32, burst: u32) -> Admission {
        let n = self.replicas;
        let configured = Rate { per_min, burst };
        let local = Rate {
            per_min: u32::try_from(share(per_min as usize, n)).unwrap_or(u32::MAX),
            burst: u32::try_from(share(burst as usize, n)).unwrap_or(1),
        };
        self.app_rate = (configured, local);
        self
    }

    /// Within the app-only caller `app`'s own rate, or 429 `rate-limited` with when to retry
    /// (as [`Admission::check_caller`], for the unit tests).
    #[cfg(test)]
    async fn check_app(&self, app: &str) -> Result<(), ApiError> {
        self.check_rate(self.app_rate(app)).await
    }

    /// The subject's share of its rate in this replica.
    fn check_here(&self, s: &RateSubject<'_>) -> Result<(), ApiError> {
        match self.take(s, BucketUse::Share) {
            None => Ok(()),
            Some(wait) => Err(s.over(wait)),
        }
    }

    /// Takes one request from one of the subject's buckets in this replica: `None` when allowed,
    /// else how long until it would be.
    fn take(&self, s: &RateSubject<'_>, which: BucketUse) -> Option<Duration> {
        let (rate, tag) = match which {
            BucketUse::Share => (s.local, ""),
            BucketUse::PreCheck => (s.configured, "\u{0}pre"),
        };
        let burst = f64::from(rate.burst.max(1));
        let per_sec = f64::from(rate.per_min) / 60.0;
        let bucket = self
            .buckets
            .get_with(format!("{}\u{0}{}{tag}", s.app, s.user), || {
                Arc::new(Mutex::new(Bucket {
                    tokens: burst,
                    updated: Instant::now(),
                }))
            });
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.updated).as_secs_f64() * per_sec).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
    }

    /// True when a per-mailbox limit is on, so that knowing the mailbox is worth a lookup.
    pub fn limits_mailboxes(&self) -> bool {
        self.config.mailbox_concurrency > 0 || self.config.mailbox_bytes_per_30s > 0
    }

    /// Waits briefly for a slot of the app's mailbox and room in its 30-second byte window, as
    /// Graph's per-mailbox limits require, or refuses with 429 rather than provoking Graph's own.
    /// `rate` is a caller's rate left by [`Admission::check_upload_rate`] to be counted here.
    pub async fn mailbox(
        &self,
        app: &str,
        mailbox: &str,
        bytes: usize,
        mut rate: Option<RateSubject<'_>>,
    ) -> Result<MailboxSlot, ApiError> {
        let (conc, window_bytes) = (
            self.config.mailbox_concurrency,
            self.config.mailbox_bytes_per_30s,
        );
        if conc == 0 {
            // No slot to count it with (`check_upload_rate` defers only when there is one).
            self.check_rate(rate.take()).await?;
        }
        if conc == 0 && window_bytes == 0 {
            return Ok(MailboxSlot {
                _permit: None,
                lease: None,
            });
        }
        let deadline = Instant::now() + self.config.mailbox_queue;
        if let Some(g) = &self.global
            && let Some(answer) = Self::mailbox_shared(
                g,
                Want {
                    app,
                    mailbox,
                    bytes,
                    conc,
                    window_bytes,
                },
                &mut rate,
                deadline,
            )
            .await
        {
            return answer;
        }
        if let Some(s) = rate {
            // Redis failed before counting it: this replica's share.
            self.check_here(&s)?;
        }
        // Redis failed (or is off): this replica's share.
        let (conc, window_bytes) = (
            self.local.mailbox_concurrency,
            self.local.mailbox_bytes_per_30s,
        );
        let mb = self.mailboxes.get_with(
            format!("{app}\u{0}{}", mailbox.to_ascii_lowercase()),
            || {
                Arc::new(Mailbox {
                    slots: (conc > 0).then(|| Arc::new(Semaphore::new(conc))),
                    sent: Mutex::new(VecDeque::new()),
                })
            },
        );
        let slot = match &mb.slots {
            Some(s) => {
                match tokio::time::timeout_at(deadline.into(), s.clone().acquire_owned()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        return Err(mailbox_busy(conc, conc < self.config.mailbox_concurrency));
                    }
                }
            }
            None => None,
        };
        if window_bytes > 0 {
            loop {
                let wait = {
                    let mut sent = mb.sent.lock().unwrap_or_else(|p| p.into_inner());
                    let now = Instant::now();
                    while sent
                        .front()
                        .is_some_and(|(t, _)| now.duration_since(*t) >= MAILBOX_WINDOW)
                    {
                        sent.pop_front();
                    }
                    let used: usize = sent.iter().map(|(_, b)| b).sum();
                    if used + bytes <= window_bytes || sent.is_empty() {
                        sent.push_back((now, bytes));
                        None
                    } else {
                        // Wait until enough of the window has expired to fit this upload.
                        let mut freed = 0usize;
                        let mut until = now;
                        for (t, b) in sent.iter() {
                            freed += b;
                            until = *t + MAILBOX_WINDOW;
                            if used - freed + bytes <= window_bytes {
                                break;
                            }
                        }
                        Some(until.saturating_duration_since(now))
                    }
                };
                match wait {
                    None => break,
                    Some(w) if Instant::now() + w <= deadline => tokio::time::sleep(w).await,
                    Some(w) => {
                        return Err(mailbox_full(
                            window_bytes,
                            w,
                            window_bytes < self.config.mailbox_bytes_per_30s,
                        ));
                    }
                }
            }
        }
        Ok(MailboxSlot {
            _permit: slot,
            lease: None,
        })
    }

    /// The mailbox limits (and a deferred caller's rate: taken out of `rate` once counted)
    /// counted in Redis for every replica; `None` when Redis failed (a lease already taken is
    /// then given back).
    async fn mailbox_shared(
        g: &Arc<GlobalLimits>,
        w: Want<'_>,
        rate: &mut Option<RateSubject<'_>>,
        deadline: Instant,
    ) -> Option<Result<MailboxSlot, ApiError>> {
        // With both limits on, the slot and the bytes are asked for in one round trip (with the
        // caller's rate, if deferred); the window is asked again alone only if it was full.
        let mut counted = w.window_bytes == 0;
        let lease = if w.conc > 0 {
            loop {
                let window = (!counted).then_some((w.window_bytes, w.bytes));
                let global = rate.as_ref().map(RateSubject::global);
                match g.try_take(w.app, w.mailbox, w.conc, window, global).await? {
                    // Only asked with a rate (else: a confused answer, so fall back).
                    Take::OverRate(wait) => return Some(Err(rate.take()?.over(wait))),
                    Take::Slot(lease, window) => {
                        *rate = None;
                        match window {
                            Window::Fits => counted = true,
                            Window::Full(wait) if Instant::now() + wait > deadline => {
                                return Some(Err(mailbox_full(w.window_bytes, wait, false)));
                            }
                            Window::Full(wait) => tokio::time::sleep(wait).await,
                        }
                        break Some(lease);
                    }
                    Take::Busy => {
                        *rate = None;
                        let pause = SLOT_POLL + SLOT_POLL.mul_f64(rand::random::<f64>());
                        if Instant::now() + pause > deadline {
                            return Some(Err(mailbox_busy(w.conc, false)));
                        }
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        } else {
            None
        };
        if !counted {
            loop {
                match g.window(w.app, w.mailbox, w.window_bytes, w.bytes).await? {
                    Window::Fits => break,
                    Window::Full(wait) if Instant::now() + wait <= deadline => {
                        tokio::time::sleep(wait).await
                    }
                    Window::Full(wait) => {
                        return Some(Err(mailbox_full(w.window_bytes, wait, false)));
                    }
                }
            }
        }
        Some(Ok(MailboxSlot {
            _permit: None,
            lease,
        }))
    }
}

/// What an upload asks of a mailbox: a slot of `conc` (0: none) and `bytes` in its window of
/// `window_bytes` (0: none), for `app`.
#[derive(Clone, Copy)]
struct Want<'a> {
    app: &'a str,
    mailbox: &'a str,
    bytes: usize,
    conc: usize,
    window_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AdmissionConfig {
        AdmissionConfig {
            max_inflight_uploads: 2,
            max_inflight_bytes: 1000,
            caller_rate_per_min: 60,
            caller_burst: 2,
            mailbox_concurrency: 1,
            mailbox_bytes_per_30s: 100,
            mailbox_queue: Duration::from_millis(50),
            mailbox_lookup_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn budgets_refuse_at_once_and_free_on_drop() {
        let l = Admission::new(cfg());
        let a = l.admit(600).unwrap();
        let b = l.admit(300).unwrap();
        assert!(
            matches!(l.admit(1), Err(ApiError::Overloaded(_))),
            "upload budget"
        );
        drop(a);
        assert!(
            matches!(l.admit(800), Err(ApiError::Overloaded(_))),
            "byte budget: 300 + 800 > 1000"
        );
        drop(b);
        assert!(l.admit(1000).is_ok());
    }

    #[tokio::test]
    async fn caller_bucket_allows_the_burst_then_says_when() {
        let l = Admission::new(cfg());
        assert!(l.check_caller("app", "u").await.is_ok());
        assert!(l.check_caller("app", "u").await.is_ok());
        match l.check_caller("app", "u").await {
            Err(ApiError::RateLimited { retry_after, .. }) => {
                assert!((1..=2).contains(&retry_after))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            l.check_caller("app", "other-user").await.is_ok(),
            "per caller"
        );
    }

    #[tokio::test]
    async fn app_only_callers_have_their_own_bucket_per_app() {
        let l = Admission::new(cfg()).with_app_rate(60, 1);
        assert!(l.check_app("daemon").await.is_ok());
        assert!(matches!(
            l.check_app("daemon").await,
            Err(ApiError::RateLimited { .. })
        ));
        assert!(l.check_app("other-daemon").await.is_ok(), "per app");
        assert!(
            l.check_caller("daemon", "u").await.is_ok(),
            "the app's delegated callers keep their own buckets"
        );
        let off = Admission::new(cfg()).with_app_rate(0, 1);
        for _ in 0..5 {
            assert!(off.check_app("daemon").await.is_ok());
        }
    }

    #[tokio::test]
    async fn mailbox_concurrency_and_bytes() {
        let l = Admission::new(cfg());
        let slot = l.mailbox("app", "M", 10, None).await.unwrap();
        assert!(
            matches!(
                l.mailbox("app", "m", 10, None).await,
                Err(ApiError::RateLimited { .. })
            ),
            "same mailbox, case-insensitive"
        );
        assert!(
            l.mailbox("other-app", "m", 10, None).await.is_ok(),
            "per app"
        );
        drop(slot);
        assert!(l.mailbox("app", "m", 80, None).await.is_ok());
        assert!(
            matches!(
                l.mailbox("app", "m", 20, None).await,
                Err(ApiError::RateLimited {
                    retry_after: 30,
                    ..
                })
            ),
            "10 + 80 + 20 > 100 in 30 s"
        );
    }
}

#[cfg(test)]
mod fallback_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use secrecy::SecretSlice;

    use super::*;
    use crate::config::RedisConfig;
    use crate::shared::Redis;

    #[tokio::test]
    async fn with_redis_unreachable_a_refusal_names_this_replicas_share() {
        // Nothing listens on port 1: every call fails at once and the replica's share applies.
        let redis = Redis::new(&RedisConfig {
            url: url::Url::parse("redis://127.0.0.1:1").unwrap(),
            ca_bundle_file: None,
            username: None,
            password: None,
            timeout: Duration::from_millis(200),
            expected_replicas: 4,
            key_prefix: "t:".into(),
            token_keys: Vec::new(),
            hmac_key: SecretSlice::from(vec![1u8; 32]),
            lease: Duration::from_secs(3),
        })
        .unwrap();
        let global = Arc::new(GlobalLimits::new(Arc::new(redis), Duration::from_secs(3)));
        let config = AdmissionConfig {
            mailbox_concurrency: 4,
            mailbox_bytes_per_30s: 0,
            ..tests_cfg()
        };
        let l = Admission::with_global(config, Some(global), 4);
        let _slot = l.mailbox("app", "m", 10, None).await.unwrap();
        match l.mailbox("app", "m", 10, None).await {
            Err(ApiError::RateLimited { detail, .. }) => {
                assert!(detail.contains("already has 1 uploads"), "{detail}");
                assert!(detail.contains("this replica"), "{detail}");
            }
            Err(other) => panic!("expected a 429, got {other:?}"),
            Ok(_) => panic!("a second upload got through this replica's share of 1"),
        }
    }

    fn tests_cfg() -> AdmissionConfig {
        AdmissionConfig {
            max_inflight_uploads: 2,
            max_inflight_bytes: 1000,
            caller_rate_per_min: 0,
            caller_burst: 1,
            mailbox_concurrency: 1,
            mailbox_bytes_per_30s: 100,
            mailbox_queue: Duration::from_millis(50),
            mailbox_lookup_ttl: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod share_tests {
    use super::share;

    #[test]
    fn a_replica_keeps_its_share_never_less_than_one() {
        assert_eq!(share(4, 3), 1);
        assert_eq!(share(12, 3), 4);
        assert_eq!(share(15_000_000, 3), 5_000_000);
        assert_eq!(share(0, 3), 0, "off stays off");
        assert_eq!(share(2, 1), 2);
    }
}
