//! Cross-replica invalidation: when one replica writes or deletes a photo, every other replica
//! drops what its in-process read cache holds for that target. Redis pub/sub carries it: one
//! `PUBLISH` per change on `{prefix}invalidate`, and one subscriber task per process on a
//! connection of its own (a subscribed connection can do nothing else).
//!
//! - **Messages** are small JSON objects `{"o": origin, "h": target id}`; the target id is the
//!   read cache's [`TargetId`] (a hash: no tenant, object id or UPN crosses Redis in the clear);
//!   `origin` is a random id per process, so a replica skips what it published itself (its own
//!   cache was already invalidated where the write happened). The older form `{"o", "t": tenant,
//!   "k": target}` is still understood, so that replicas of both versions hear each other during
//!   a rolling upgrade. Anything malformed or over [`MAX_MESSAGE_BYTES`] is counted and ignored:
//!   the channel is not trusted to be well-formed.
//! - **Marks**: a replica about to cache a target sets `{prefix}cached:{hash}` first
//!   ([`Invalidation::mark`], before its Graph read); a change is published only while that mark
//!   exists, and the publish drops it. Uploads to targets that no replica caches (most of them)
//!   thus cost no message, and no wake-up of every replica's subscriber. The mark is set before
//!   the read it covers, so a change either happened before that read (and the read saw it) or
//!   finds the mark, and its message reaches the replica: before the read's answer is cached
//!   (the read cache then keeps no answer read before the change, see
//!   [`crate::read_cache::ReadStart`]) or after it (and drops it). A replica that could not set
//!   the mark, or is not subscribed, does not cache.
//! - **Announcing** is one Lua script per change (marks checked and dropped, messages published,
//!   and the upload's mailbox lease released in the same round trip), through [`Redis::call`], so
//!   it has the per-call deadline and the tier's health like every other call; a failure is
//!   counted and logged (once per state change by the tier), never the caller's error: the write
//!   itself succeeded.
//! - **Pub/sub is fire-and-forget**: a message sent while a subscriber was disconnected is lost.
//!   So whenever the subscription is established again after being lost (or after failing to be
//!   established), the `on_flush` callback runs: the replica empties its read cache rather than
//!   serve what it may have missed an invalidation for. A dead connection that no RST announces
//!   is found by a PING every [`PING_EVERY`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;
use serde::Deserialize;

use super::limits::Lease;
use super::{Redis, Use};
use crate::metrics;
use crate::read_cache::TargetId;

/// Largest message accepted: ours are under 100 bytes; an older replica's (tenant and target in
/// the clear) fit many times over.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// How often an idle subscription is checked with a PING.
pub const PING_EVERY: Duration = Duration::from_secs(5);
/// First pause before subscribing again; doubled up to [`BACKOFF_MAX`], with up to as much
/// jitter, so that replicas do not reconnect in step after Redis returns.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a mark lasts unless set again, when [`Invalidation::with_mark_ttl`] is not called.
const DEFAULT_MARK_TTL: Duration = Duration::from_secs(600);

/// KEYS: the marks, then the lease set when ARGV[2] is not empty; ARGV: the channel, the lease id
/// or '', a message per mark. Publishes the messages whose marks existed (dropping the marks) and
/// releases the lease; returns how many were published.
const ANNOUNCE: &str = "
local n = #ARGV - 2
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[n + 1], ARGV[2]) end
local sent = 0
for i = 1, n do
  if redis.call('DEL', KEYS[i]) == 1 then
    redis.call('PUBLISH', ARGV[1], ARGV[i + 2])
    sent = sent + 1
  end
end
return sent";

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "o")]
    origin: String,
    #[serde(rename = "h")]
    id: Option<String>,
    /// The older form's tenant and target.
    #[serde(rename = "t")]
    tenant: Option<String>,
    #[serde(rename = "k")]
    target: Option<String>,
}

/// What a received message turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    /// Another replica's change: invalidate this target.
    Other(TargetId),
    /// This process's own message.
    Own,
    /// Not a message of ours (not JSON of the expected shape, or too large).
    Malformed,
}

/// The invalidation channel of one process: publish changes, and subscribe to the others'.
pub struct Invalidation {
    redis: Arc<Redis>,
    channel: String,
    origin: String,
    mark_ttl: Duration,
    announce: Script,
    /// Set while the subscriber is subscribed: a replica that cannot hear the others' changes
    /// (the channel lost, or an ACL without it) must not cache what they may change.
    subscribed: Arc<AtomicBool>,
}

/// A change of one target, to announce to the replicas that may cache it.
#[derive(Debug)]
pub struct Notice {
    mark: String,
    message: String,
}

impl Invalidation {
    /// The channel on `redis` (`{prefix}invalidate`), with a fresh random origin id for this
    /// process.
    pub fn new(redis: Arc<Redis>) -> Invalidation {
        let channel = format!("{}invalidate", redis.prefix());
        Invalidation {
            redis,
            channel,
            origin: uuid::Uuid::new_v4().simple().to_string(),
            mark_ttl: DEFAULT_MARK_TTL,
            announce: Script::new(ANNOUNCE),
            subscribed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks last `ttl`: at least as long as a cached entry is served without asking Graph, plus
    /// the longest Graph read (the entry's age counts from the read's answer, the mark's from
    /// before the read).
    pub fn with_mark_ttl(mut self, ttl: Duration) -> Invalidation {
        self.mark_ttl = ttl;
        self
    }

    fn mark_key(&self, id: TargetId) -> String {
        format!("{}cached:{}", self.redis.prefix(), id.hex())
    }

    /// Records that this replica is about to cache (tenant, target), so that changes of it are
    /// announced. Must complete before the Graph read whose answer is cached; false when Redis
    /// failed, or while this process is not subscribed to the channel: the answer must then not
    /// be cached (no change would be announced to it, or heard).
    pub async fn mark(&self, tenant: &str, target: &str) -> bool {
        if !self.subscribed.load(Ordering::Acquire) {
            return false;
        }
        let key = self.mark_key(TargetId::of(tenant, target));
        let ttl_ms = u64::try_from(self.mark_ttl.as_millis()).unwrap_or(u64::MAX);
        self.redis
            .call(Use::Invalidation, |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1u8)
                    .arg("PX")
                    .arg(ttl_ms.max(1))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .is_some()
    }

    /// The notice of a change of (tenant, target).
    pub fn notice(&self, tenant: &str, target: &str) -> Notice {
        let id = TargetId::of(tenant, target);
        Notice {
            mark: self.mark_key(id),
            message: encode(&self.origin, id),
        }
    }

    /// Tells the replicas that may cache them about `notices` (those whose marks exist), and
    /// releases `lease` in the same round trip. A failure is counted, never returned: the change
    /// itself happened; the lease then ends by itself.
    pub async fn announce(&self, notices: &[Notice], lease: Option<Lease>) {
        if notices.is_empty() && lease.is_none() {
            return;
        }
        let lease = lease.map(Lease::into_release);
        let sent: Option<usize> = self
            .redis
            .call(Use::Invalidation, |mut c| {
                let lease = lease.as_ref();
                async move {
                    let mut call = self.announce.prepare_invoke();
                    for n in notices {
                        call.key(&n.mark);
                    }
                    call.arg(&self.channel);
                    match lease {
                        Some((key, id)) => {
                            call.key(key).arg(id);
                        }
                        None => {
                            call.arg("");
                        }
                    }
                    for n in notices {
                        call.arg(&n.message);
                    }
                    call.invoke_async(&mut c).await
                }
            })
            .await;
        match sent {
            Some(sent) => {
                metrics::invalidation_published("sent", sent);
                metrics::invalidation_published("unneeded", notices.len().saturating_sub(sent));
            }
            None => metrics::invalidation_published("failed", notices.len()),
        }
    }

    /// This process's origin id (what its messages carry).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Tells the other replicas that (tenant, target) changed, whether or not it is marked. True
    /// when Redis took the message (how many subscribers got it does not matter); false when Redis
    /// failed, which is counted and otherwise ignored: the other replicas' entries then live out
    /// their TTL.
    pub async fn publish(&self, tenant: &str, target: &str) -> bool {
        let payload = encode(&self.origin, TargetId::of(tenant, target));
        let sent = self
            .redis
            .call(Use::Invalidation, |mut c| {
                let payload = payload.clone();
                async move {
                    redis::cmd("PUBLISH")
                        .arg(&self.channel)
                        .arg(payload)
                        .query_async::<u64>(&mut c)
                        .await
                }
            })
            .await
            .is_some();
        metrics::invalidation_published(if sent { "sent" } else { "failed" }, 1);
        sent
    }

    /// Starts the process's subscriber: `on_invalidate(id)` for every change another
    /// replica publishes, `on_flush()` whenever the subscription comes back after being lost
    /// (messages may have been missed meanwhile). Runs until the handle is aborted or the runtime
    /// ends; the callbacks run on the subscriber task, so they must be quick and not block.
    pub fn spawn_subscriber<I, F>(
        &self,
        on_invalidate: I,
        on_flush: F,
    ) -> tokio::task::JoinHandle<()>
    where
        I: Fn(TargetId) + Send + Sync + 'static,
        F: Fn() + Send + Sync + 'static,
    {
        let client = self.redis.client().clone();
        let (channel, origin) = (self.channel.clone(), self.origin.clone());
        let connect_timeout = self.redis.connect_timeout();
        let subscribed = self.subscribed.clone();
        tokio::spawn(async move {
            subscribe_forever(
                client,
                &channel,
                &origin,
                connect_timeout,
                &subscribed,
                &on_invalidate,
                &on_flush,
            )
            .await
        })
    }
}

/// The message for the target `id` from `origin`.
fn encode(origin: &str, id: TargetId) -> String {
    serde_json::json!({"o": origin, "h": id.hex()}).to_string()
}

fn decode(payload: &[u8], me: &str) -> Received {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Received::Malformed;
    }
    let Ok(m) = serde_json::from_slice::<Incoming>(payload) else {
        return Received::Malformed;
    };
    if m.origin == me {
        return Received::Own;
    }
    let id = match (m.id, m.tenant, m.target) {
        (Some(id), _, _) => TargetId::parse(&id),
        // An older replica's message names the target in the clear.
        (None, Some(tenant), Some(target)) if !tenant.is_empty() && !target.is_empty() => {
            Some(TargetId::of(&tenant, &target))
        }
        _ => None,
    };
    id.map_or(Received::Malformed, Received::Other)
}

/// The pause before attempt `n` (0-based) to subscribe again.
fn backoff(n: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(2u32.saturating_pow(n.min(16)))
        .min(BACKOFF_MAX);
    base + base.mul_f64(rand::random::<f64>())
}

async fn subscribe_forever(
    client: redis::Client,
    channel: &str,
    origin: &str,
    connect_timeout: Duration,
    subscribed: &AtomicBool,
    on_invalidate: &(dyn Fn(TargetId) + Send + Sync),
    on_flush: &(dyn Fn() + Send + Sync),
) {
    metrics::invalidation_subscribed(false);
    // Set when the subscription was lost or could not be made: the next one flushes first.
    let mut missed = false;
    let mut failures: u32 = 0;
    loop {
        let attempt = tokio::time::timeout(connect_timeout, async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(ps)
        })
        .await;
        match attempt {
            Ok(Ok(ps)) => {
                if missed {
                    tracing::warn!(
                        "invalidation channel subscribed again: flushing the read cache (changes made meanwhile were not heard)"
                    );
                    metrics::invalidation_resubscribed();
                    on_flush();
                }
                failures = 0;
                subscribed.store(true, Ordering::Release);
                metrics::invalidation_subscribed(true);
                listen(ps, origin, on_invalidate).await;
                subscribed.store(false, Ordering::Release);
                metrics::invalidation_subscribed(false);
                tracing::warn!(
                    "invalidation channel lost: other replicas' changes are not heard until it is back"
                );
                missed = true;
            }
            Ok(Err(e)) => {
                if !missed {
                    // The error's kind only: its text could quote a command's arguments.
                    tracing::warn!(reason = ?e.kind(), "cannot subscribe to the invalidation channel");
                }
                missed = true;
            }
            Err(_) => {
                if !missed {
                    tracing::warn!(
                        "cannot subscribe to the invalidation channel: no answer in time"
                    );
                }
                missed = true;
            }
        }
        tokio::time::sleep(backoff(failures)).await;
        failures = failures.saturating_add(1);
    }
}

/// Hands every message to `on_invalidate` until the connection ends or stops answering PINGs.
async fn listen(
    ps: redis::aio::PubSub,
    origin: &str,
    on_invalidate: &(dyn Fn(TargetId) + Send + Sync),
) {
    let (mut sink, mut stream) = ps.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return };
                match decode(msg.get_payload_bytes(), origin) {
                    Received::Other(id) => {
                        metrics::invalidation_received("applied");
                        on_invalidate(id);
                    }
                    Received::Own => metrics::invalidation_received("own"),
                    Received::Malformed => metrics::invalidation_received("malformed"),
                }
            }
            _ = ping.tick() => {
                let answered = tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await;
                if !matches!(answered, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_own_ones_are_recognised() {
        let id = TargetId::of("tenant-1", "users/a@b.example");
        let m = encode("me", id);
        assert_eq!(decode(m.as_bytes(), "other"), Received::Other(id));
        assert_eq!(decode(m.as_bytes(), "me"), Received::Own);
    }

    #[test]
    fn messages_carry_neither_the_tenant_nor_the_target() {
        let m = encode(
            "me",
            TargetId::of("tenant-1", "/users/alice@contoso.example"),
        );
        assert!(!m.contains("tenant") && !m.contains("alice"), "{m}");
        assert!(m.len() < 100, "{m}");
    }

    #[test]
    fn an_older_replicas_message_in_the_clear_is_still_understood() {
        let old = br#"{"o":"x","t":"Tenant-1","k":"a\nb\"c"}"#;
        assert_eq!(
            decode(old, "me"),
            Received::Other(TargetId::of("tenant-1", "a\nb\"c"))
        );
    }

    #[test]
    fn oversized_messages_are_not_accepted() {
        let long = "x".repeat(MAX_MESSAGE_BYTES);
        let forged = format!(r#"{{"o":"x","t":"t","k":"{long}"}}"#);
        assert_eq!(decode(forged.as_bytes(), "me"), Received::Malformed);
    }

    #[test]
    fn anything_else_is_malformed() {
        let upper = TargetId::of("t", "k").hex().to_uppercase();
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            br#"{"o":"x","t":"t"}"#,
            br#"{"o":"x","t":"","k":"k"}"#,
            br#"{"o":1,"t":"t","k":"k"}"#,
            br#"{"o":"x","h":"users/u1"}"#,
            br#"{"o":"x","h":""}"#,
            br#"{"o":"x","h":7}"#,
            format!(r#"{{"o":"x","h":"{upper}"}}"#).as_bytes(),
            b"\xff\xfe",
        ] {
            assert_eq!(decode(bad, "me"), Received::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn backoff_grows_to_its_bound_with_jitter() {
        assert!(backoff(0) >= BACKOFF_MIN && backoff(0) <= BACKOFF_MIN * 2);
        assert!(backoff(3) >= BACKOFF_MIN * 8);
        for n in [10, 100, u32::MAX] {
            let b = backoff(n);
            assert!(b >= BACKOFF_MAX && b <= BACKOFF_MAX * 2, "{n}: {b:?}");
        }
    }
}
