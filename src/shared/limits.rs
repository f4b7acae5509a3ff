//! Graph's per-mailbox limits and the per-caller rate, counted once for every replica in Redis.
//! Each check is one Lua script (atomic on the server, timed by the server's clock, so replicas'
//! clocks do not matter):
//!
//! - **per-caller rate**: GCRA (the token bucket of `admission.rs` as one "theoretical arrival
//!   time" per caller): `rate` per minute with a burst of `burst`;
//! - **mailbox concurrency**: a sorted set of leases scored by their expiry; a slot is taken when
//!   fewer than `limit` unexpired leases remain, renewed while the upload runs, released when it
//!   ends, and a lease left by a replica that died ends by itself;
//! - **mailbox bytes**: a sorted set of (upload, bytes) scored by time, summed over the last 30 s.
//!
//! Keys hold a SHA-256 of the app and the caller or mailbox (no user name or id in Redis) and
//! expire when idle. `None` from any method means Redis failed: the caller falls back to its own
//! share of the limit.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::{Redis, Use, hashed};

const NOW: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) ";

/// Window of Graph's per-mailbox byte limit, milliseconds.
pub const WINDOW_MS: u64 = 30_000;

/// The byte window as a Lua function shared by the scripts that count bytes (after `local span =
/// {WINDOW_MS}`): `window(key, limit, bytes, id, now)` counts the bytes and returns 0 if they fit (or the window is empty: one
/// upload larger than the limit still goes alone), else the milliseconds until enough of the
/// window has passed.
const WINDOW_FN: &str = "
local function window(key, limit, bytes, id, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local e = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #e, 2 do used = used + tonumber(string.match(e[i], ':(%d+)$')) end
  if used + bytes <= limit or #e == 0 then
    redis.call('ZADD', key, now, id .. ':' .. bytes)
    redis.call('PEXPIRE', key, span + 1000)
    return 0
  end
  local freed = 0
  local until_ms = now
  for i = 1, #e, 2 do
    freed = freed + tonumber(string.match(e[i], ':(%d+)$'))
    until_ms = tonumber(e[i + 1]) + span
    if used - freed + bytes <= limit then break end
  end
  return math.max(1, until_ms - now)
end
";

/// GCRA as a Lua function: `gcra(key, interval, burst, now)` takes one request from the
/// allowance kept in `key` and returns 0, or (taking nothing) the milliseconds until it would.
const GCRA_FN: &str = "
local function gcra(key, interval, burst, now)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then return math.ceil(allow_at - now) end
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
  return 0
end
";

/// A caller's rate: `per_min` sustained, bursts of `burst`.
#[derive(Debug, Clone, Copy)]
pub struct CallerRate<'a> {
    /// The calling app.
    pub app: &'a str,
    /// The user (or the app-only key).
    pub user: &'a str,
    /// Requests per minute.
    pub per_min: u32,
    /// Burst.
    pub burst: u32,
}

/// What [`GlobalLimits::try_take`] got.
pub enum Take {
    /// A slot (renewed until dropped), and what the byte window said (`Fits` when it is off).
    Slot(Lease, Window),
    /// Every slot is leased (the caller's rate, if asked for, was taken).
    Busy,
    /// The caller is over its rate by this long; nothing was taken.
    OverRate(Duration),
}

/// The scripts and the connection.
pub struct GlobalLimits {
    redis: Arc<Redis>,
    lease: Duration,
    gcra: Script,
    take: Script,
    renew: Script,
    bytes: Script,
}

/// What the byte window said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Counted: the upload may go.
    Fits,
    /// Full: room in this long.
    Full(Duration),
}

impl GlobalLimits {
    /// The limits on `redis`; mailbox slots are leased for `lease` at a time.
    pub fn new(redis: Arc<Redis>, lease: Duration) -> GlobalLimits {
        GlobalLimits {
            redis,
            lease,
            // KEYS[1] the caller's arrival time; ARGV: ms between requests, burst.
            gcra: Script::new(&format!(
                "{NOW} {GCRA_FN}
                return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)"
            )),
            // KEYS[1] the leases; ARGV: lease ms, lease id. 1: renewed; 0: it had ended.
            renew: Script::new(&format!(
                "{NOW}
                local s = redis.call('ZSCORE', KEYS[1], ARGV[2])
                if not s or tonumber(s) <= now then return 0 end
                redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
                redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
                return 1"
            )),
            // KEYS[1] the window; ARGV: limit bytes, these bytes, upload id. 0: counted; else the
            // milliseconds until enough of the window has passed.
            bytes: Script::new(&format!(
                "{NOW} local span = {WINDOW_MS} {WINDOW_FN}
                return window(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], now)"
            )),
            // A mailbox slot, its bytes and the caller's rate in one round trip. KEYS[1] the
            // leases, KEYS[2] the window, KEYS[3] (optional) the caller's arrival time; ARGV:
            // limit, lease ms, lease id, limit bytes (0: no window), these bytes, upload id, and
            // with KEYS[3] ms between requests and burst. {2, ms}: the caller is over its rate
            // (nothing taken); {0, 0}: all slots leased (the window untouched, the rate taken);
            // {1, 0}: slot taken and bytes counted; {1, ms}: slot taken, the window full for ms
            // more (the caller waits holding the slot).
            take: Script::new(&format!(
                "{NOW} local span = {WINDOW_MS} {WINDOW_FN} {GCRA_FN}
                if KEYS[3] then
                  local w = gcra(KEYS[3], tonumber(ARGV[7]), tonumber(ARGV[8]), now)
                  if w > 0 then return {{2, w}} end
                end
                redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
                if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return {{0, 0}} end
                redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
                redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
                if tonumber(ARGV[4]) == 0 then return {{1, 0}} end
                return {{1, window(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], now)}}"
            )),
        }
    }

    /// The lease of a mailbox slot.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes one request from the caller's allowance: `Some(None)` allowed, `Some(Some(wait))`
    /// over the rate, `None` Redis failed.
    pub async fn caller(&self, rate: CallerRate<'_>) -> Option<Option<Duration>> {
        let (key, interval) = self.rate_key(&rate);
        let wait: u64 = self
            .redis
            .call(Use::CallerRate, |mut c| async move {
                self.gcra
                    .key(&key)
                    .arg(interval)
                    .arg(rate.burst.max(1))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some((wait > 0).then(|| Duration::from_millis(wait)))
    }

    /// The caller's key and the milliseconds between its requests.
    fn rate_key(&self, rate: &CallerRate<'_>) -> (String, f64) {
        (
            format!(
                "{}rate:{}",
                self.redis.prefix(),
                hashed(&[rate.app, rate.user])
            ),
            60_000.0 / f64::from(rate.per_min.max(1)),
        )
    }

    fn mailbox_key(&self, app: &str, mailbox: &str, what: &str) -> String {
        format!(
            // The hash in braces: both keys of a mailbox (one script uses them together) hash to
            // one Redis Cluster slot.
            "{}mbx:{{{}}}:{what}",
            self.redis.prefix(),
            hashed(&[app, &mailbox.to_ascii_lowercase()])
        )
    }

    /// Tries once to take a slot of the mailbox, with `window` = (limit, bytes) count the bytes
    /// in its 30-second window, and with `rate` take one request from the caller's allowance: all
    /// in one round trip. `None`: Redis failed (nothing is held).
    pub async fn try_take(
        self: &Arc<Self>,
        app: &str,
        mailbox: &str,
        limit: usize,
        window: Option<(usize, usize)>,
        rate: Option<CallerRate<'_>>,
    ) -> Option<Take> {
        let key = self.mailbox_key(app, mailbox, "slots");
        let window_key = self.mailbox_key(app, mailbox, "bytes");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let upload = uuid::Uuid::new_v4().simple().to_string();
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let (window_limit, bytes) = window.unwrap_or((0, 0));
        let rate = rate.map(|r| (self.rate_key(&r), r.burst.max(1)));
        let (outcome, ms): (u8, u64) = self
            .redis
            .call(Use::Mailbox, |mut c| {
                let (key, id, rate) = (key.clone(), id.clone(), rate.as_ref());
                async move {
                    let mut call = self.take.prepare_invoke();
                    call.key(&key)
                        .key(&window_key)
                        .arg(limit)
                        .arg(lease_ms)
                        .arg(&id)
                        .arg(window_limit)
                        .arg(bytes)
                        .arg(&upload);
                    if let Some(((rate_key, interval), burst)) = rate {
                        call.key(rate_key).arg(*interval).arg(*burst);
                    }
                    call.invoke_async(&mut c).await
                }
            })
            .await?;
        Some(match (outcome, ms) {
            (2, ms) => Take::OverRate(Duration::from_millis(ms)),
            (0, _) => Take::Busy,
            (_, 0) => Take::Slot(self.leased(key, id), Window::Fits),
            (_, ms) => Take::Slot(
                self.leased(key, id),
                Window::Full(Duration::from_millis(ms)),
            ),
        })
    }

    /// The lease just taken as `id` in `key`, renewed in the background from now on.
    fn leased(self: &Arc<Self>, key: String, id: String) -> Lease {
        let renewer = {
            let (limits, key, id) = (self.clone(), key.clone(), id.clone());
            tokio::spawn(async move { limits.keep_renewed(&key, &id).await })
        };
        Lease {
            limits: self.clone(),
            key,
            id,
            renewer,
        }
    }

    /// Renews the lease a third of the way through each term until it is released (the task is
    /// aborted) or lost.
    async fn keep_renewed(&self, key: &str, id: &str) {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::time::sleep(self.lease / 3).await;
            let renewed: Option<u8> = self
                .redis
                .call(Use::Mailbox, |mut c| async move {
                    self.renew
                        .key(key)
                        .arg(lease_ms)
                        .arg(id)
                        .invoke_async(&mut c)
                        .await
                })
                .await;
            if renewed == Some(0) {
                tracing::warn!(
                    "a mailbox slot's lease ended before its upload did (Redis unreachable longer than the lease)"
                );
                return;
            }
        }
    }

    /// Counts `bytes` in the mailbox's 30-second window if they fit: `None` Redis failed.
    pub async fn window(
        &self,
        app: &str,
        mailbox: &str,
        limit: usize,
        bytes: usize,
    ) -> Option<Window> {
        let key = self.mailbox_key(app, mailbox, "bytes");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let wait: u64 = self
            .redis
            .call(Use::Mailbox, |mut c| async move {
                self.bytes
                    .key(&key)
                    .arg(limit)
                    .arg(bytes)
                    .arg(&id)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(match wait {
            0 => Window::Fits,
            ms => Window::Full(Duration::from_millis(ms)),
        })
    }
}

/// A leased mailbox slot: renewed in the background, released when dropped.
pub struct Lease {
    limits: Arc<GlobalLimits>,
    key: String,
    id: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Stops renewing and hands over (key, id) for a release that the caller makes itself (in
    /// the same round trip as something else): dropping the lease then releases nothing.
    pub(super) fn into_release(mut self) -> (String, String) {
        self.renewer.abort();
        (std::mem::take(&mut self.key), std::mem::take(&mut self.id))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.id.is_empty() {
            return; // released by its owner (`into_release`)
        }
        let (limits, key, id) = (
            self.limits.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.id),
        );
        // Released in the background: a drop cannot wait. Should it fail, the lease ends anyway.
        tokio::spawn(async move {
            limits
                .redis
                .call(Use::Mailbox, |mut c| async move {
                    redis::cmd("ZREM")
                        .arg(&key)
                        .arg(&id)
                        .query_async::<u8>(&mut c)
                        .await
                })
                .await;
        });
    }
}
