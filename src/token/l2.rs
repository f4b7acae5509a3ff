//! The shared (L2) token cache in Redis, behind the in-process moka cache (L1), as
//! Microsoft.Identity.Web's distributed token cache: a Graph token one replica obtained serves
//! every replica until it expires.
//!
//! - **Names**: `{prefix}tok:{HMAC-SHA256(assertion, scope)}` with a key of its own, so Redis
//!   never sees a token, and a name cannot be computed without the key.
//! - **Values**: AES-256-GCM sealed: `kid.base64(nonce ‖ ciphertext)`, the plaintext being the
//!   expiry (Unix ms) and the token, the name as associated data (a value moved under another
//!   name does not open). The first key of the key file seals; every listed key opens, so a new
//!   key is rolled out in front of the old one without a flush. TTL = expiry − margin.
//! - **Single flight across replicas**: on a miss, `SET {name}:lock NX PX` (the token timeout
//!   plus a second); the replica that takes it exchanges and writes, the others poll for its
//!   result until the lock is gone, then exchange anyway.
//! - **Failure**: any Redis error or timeout makes this an L1-only cache for that request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

use super::obo::{GraphToken, OboError};
use crate::config::RedisConfig;
use crate::metrics;
use crate::shared::{Redis, Use};

/// How often a replica waiting for another's exchange looks for its result.
const POLL: Duration = Duration::from_millis(25);
/// Tokens with less than this left are not worth sharing.
const MIN_TTL: Duration = Duration::from_secs(5);

/// The sealed token cache in Redis.
pub struct L2Tokens {
    redis: Arc<Redis>,
    /// (kid, cipher); the first seals.
    keys: Vec<(String, Aes256Gcm)>,
    hmac_key: SecretSlice<u8>,
    lock_ttl: Duration,
    /// KEYS: the token, its lock; ARGV: lock owner, lock ms. `{token, 0}`, or `{false, 1}` when
    /// the lock was taken, `{false, 0}` when another holds it.
    get_or_lock: redis::Script,
    /// KEYS: the lock; ARGV: its owner. Deletes it only if still ours.
    unlock: redis::Script,
}

/// What one look into L2 found.
enum Found {
    Token(GraphToken),
    /// No token; another replica holds the lock (it is exchanging).
    Pending,
    /// No token and no lock.
    Nothing,
}

impl L2Tokens {
    /// The cache on `redis` with the keys of `config`; its lock covers one token request of
    /// `token_timeout`.
    pub fn new(redis: Arc<Redis>, config: &RedisConfig, token_timeout: Duration) -> L2Tokens {
        let keys = config
            .token_keys
            .iter()
            .filter_map(|k| {
                Aes256Gcm::new_from_slice(k.key.expose_secret())
                    .ok()
                    .map(|c| (k.kid.clone(), c))
            })
            .collect();
        L2Tokens {
            redis,
            keys,
            hmac_key: config.hmac_key.clone(),
            lock_ttl: token_timeout + Duration::from_secs(1),
            get_or_lock: redis::Script::new(
                "local v = redis.call('GET', KEYS[1])
                 if v then return {v, 0} end
                 if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, 1} end
                 return {false, 0}",
            ),
            unlock: redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            ),
        }
    }

    /// The Redis name of (assertion, scope).
    fn name(&self, assertion: &str, scope: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.hmac_key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(assertion.as_bytes());
        mac.update(&[0]);
        mac.update(scope.as_bytes());
        format!(
            "{}tok:{}",
            self.redis.prefix(),
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The token from L2 or, failing that, from `exchange` (then written to L2), with at most one
    /// exchange at a time across replicas for one name.
    pub async fn get_or_exchange<F, Fut>(
        &self,
        assertion: &str,
        scope: &str,
        exchange: F,
    ) -> Result<GraphToken, OboError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<GraphToken, OboError>>,
    {
        let name = self.name(assertion, scope);
        let lock_name = format!("{name}:lock");
        let me = uuid::Uuid::new_v4().simple().to_string();
        let lock_ms = u64::try_from(self.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        // One round trip: the token, else take the lock (or learn someone holds it).
        let first: Option<(Option<String>, bool)> = self
            .redis
            .call(Use::TokenCache, |mut c| {
                let (name, lock_name, me) = (name.clone(), lock_name.clone(), me.clone());
                async move {
                    self.get_or_lock
                        .key(&name)
                        .key(&lock_name)
                        .arg(&me)
                        .arg(lock_ms)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await;
        let holds_lock = match first {
            None => {
                metrics::token_cache_l2("unavailable");
                return exchange().await;
            }
            Some((Some(sealed), _)) => match self.open(&name, &sealed) {
                Some(t) => {
                    metrics::token_cache_l2("hit");
                    return Ok(t);
                }
                // A value no key of ours opens: exchange and overwrite it.
                None => false,
            },
            Some((None, locked)) => locked,
        };
        if !holds_lock && let Some(t) = self.await_other(&name, &lock_name).await {
            metrics::token_cache_l2("waited");
            return Ok(t);
        }
        metrics::token_cache_l2("miss");
        let result = exchange().await;
        if let Ok(t) = &result {
            self.put_named(&name, t).await;
        }
        if holds_lock {
            self.unlock(&lock_name, &me).await;
        }
        result
    }

    /// Writes a token (after a refresh, say) for every replica.
    pub async fn put(&self, assertion: &str, scope: &str, token: &GraphToken) {
        self.put_named(&self.name(assertion, scope), token).await;
    }

    async fn put_named(&self, name: &str, token: &GraphToken) {
        let left = token.cache_until.saturating_duration_since(Instant::now());
        if left < MIN_TTL {
            return;
        }
        let Some(sealed) = self.seal(name, token, left) else {
            return;
        };
        let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        self.redis
            .call(Use::TokenCache, |mut c| async move {
                redis::cmd("SET")
                    .arg(name)
                    .arg(&sealed)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    /// Waits for the replica holding the lock: its token, or `None` once the lock is gone (its
    /// exchange failed), has outlived its TTL, or Redis fails.
    async fn await_other(&self, name: &str, lock_name: &str) -> Option<GraphToken> {
        let until = Instant::now() + self.lock_ttl;
        while Instant::now() < until {
            tokio::time::sleep(POLL).await;
            match self.look(name, lock_name).await? {
                Found::Token(t) => return Some(t),
                Found::Pending => {}
                Found::Nothing => return None,
            }
        }
        None
    }

    async fn look(&self, name: &str, lock_name: &str) -> Option<Found> {
        let (value, locked): (Option<String>, bool) = self
            .redis
            .call(Use::TokenCache, |mut c| async move {
                redis::pipe()
                    .get(name)
                    .exists(lock_name)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Some(match value.and_then(|v| self.open(name, &v)) {
            Some(t) => Found::Token(t),
            None if locked => Found::Pending,
            None => Found::Nothing,
        })
    }

    async fn unlock(&self, lock_name: &str, me: &str) {
        self.redis
            .call(Use::TokenCache, |mut c| async move {
                self.unlock
                    .key(lock_name)
                    .arg(me)
                    .invoke_async::<u8>(&mut c)
                    .await
            })
            .await;
    }

    /// `kid.base64(nonce ‖ AES-256-GCM(expiry ms ‖ token))`, bound to `name`.
    fn seal(&self, name: &str, token: &GraphToken, left: Duration) -> Option<String> {
        let (kid, cipher) = self.keys.first()?;
        let until = SystemTime::now()
            .checked_add(left)?
            .duration_since(UNIX_EPOCH)
            .ok()?;
        let mut plain = Vec::with_capacity(8 + token.access_token.expose_secret().len());
        plain.extend_from_slice(&u64::try_from(until.as_millis()).ok()?.to_be_bytes());
        plain.extend_from_slice(token.access_token.expose_secret().as_bytes());
        let nonce: [u8; 12] = rand::random();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: name.as_bytes(),
                },
            )
            .ok();
        // The plaintext held the token: wipe it.
        plain.iter_mut().for_each(|b| *b = 0);
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed?);
        Some(format!("{kid}.{}", STANDARD_NO_PAD.encode(out)))
    }

    /// The token sealed under `name`, if a key of ours opens it and it has not expired.
    fn open(&self, name: &str, sealed: &str) -> Option<GraphToken> {
        // From the right: base64 has no `.`, a kid may (`2026.12`).
        let (kid, b64) = sealed.rsplit_once('.')?;
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == kid)?;
        let raw = STANDARD_NO_PAD.decode(b64).ok()?;
        if raw.len() < 12 + 16 + 8 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let mut plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        let until_ms = u64::from_be_bytes(plain.get(..8)?.try_into().ok()?);
        let token = String::from_utf8(plain.get(8..)?.to_vec()).ok();
        plain.iter_mut().for_each(|b| *b = 0);
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()?
                .as_millis(),
        )
        .ok()?;
        let left = Duration::from_millis(until_ms.checked_sub(now_ms)?);
        Some(GraphToken {
            access_token: SecretString::from(token?),
            cache_until: Instant::now() + left,
        })
    }
}
