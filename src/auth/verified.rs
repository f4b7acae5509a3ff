//! Callers whose token already passed full validation, by the token's SHA-256 (issue 12): a
//! caller sends the same token for up to an hour, and re-verifying its RS256 signature and
//! re-parsing its claims on every upload was the largest single cost of a small upload after
//! TLS and hashing the photo.
//!
//! A hit is only as good as what made the entry: each use checks `exp` and `nbf` again (with
//! the same leeway), and that the very key that verified the signature is still the key its
//! `kid` names in the current key set, so an entry dies with a key that left the set or any
//! reload of the set. Failures are never stored. The cache is bounded in entries and each entry
//! lives no longer than its token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use moka::Expiry;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::caller::{AppOnly, Assertion, Caller, Principal, SignedInUser};
use super::jwks::KeyStore;

/// At most this many validated tokens are remembered (a few hundred bytes each).
pub const MAX_ENTRIES: u64 = 10_000;

/// A validated caller, without its token (the request brings that).
struct Entry {
    kid: String,
    key: Arc<DecodingKey>,
    exp: u64,
    nbf: u64,
    /// Seconds of the token's lifetime left when stored, for moka's expiry.
    ttl: Duration,
    tenant_id: String,
    client_app_id: String,
    who: Who,
}

/// The principal without its token: a signed-in user's claims, or an app's roles.
enum Who {
    User {
        object_id: String,
        username: Option<String>,
        scopes: Vec<String>,
    },
    App {
        roles: Vec<String>,
    },
}

struct UntilExp;

impl Expiry<[u8; 32], Arc<Entry>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// `exp` and `nbf` checked as full validation checks them (jsonwebtoken: expired when
/// `exp < now - leeway`, immature when `nbf > now + leeway`).
fn in_time(exp: u64, nbf: u64, now: u64, leeway: u64) -> bool {
    now.saturating_sub(leeway) <= exp && nbf <= now.saturating_add(leeway)
}

/// The cache of validated tokens.
pub struct Verified {
    cache: Cache<[u8; 32], Arc<Entry>>,
    leeway: u64,
}

/// The cache key: the token's digest, so the cache never holds a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// A cache of at most `capacity` tokens, checking `exp`/`nbf` with `leeway` seconds.
    pub fn new(capacity: u64, leeway: u64) -> Verified {
        Verified {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
            leeway,
        }
    }

    /// The caller of a token validated before, if it is still valid now and its key is still
    /// the one its `kid` names.
    pub fn get(&self, key: &[u8; 32], token: &str, keys: &KeyStore, now: u64) -> Option<Caller> {
        let e = self.cache.get(key)?;
        let key_current = keys
            .key(&e.kid)
            .is_some_and(|current| Arc::ptr_eq(&current, &e.key));
        if !key_current || !in_time(e.exp, e.nbf, now, self.leeway) {
            self.cache.invalidate(key);
            return None;
        }
        let principal = match &e.who {
            Who::User {
                object_id,
                username,
                scopes,
            } => Principal::User(SignedInUser {
                object_id: object_id.clone(),
                username: username.clone(),
                scopes: scopes.clone(),
                assertion: Assertion::new(token),
            }),
            Who::App { roles } => Principal::App(AppOnly {
                roles: roles.clone(),
            }),
        };
        Some(Caller {
            tenant_id: e.tenant_id.clone(),
            client_app_id: e.client_app_id.clone(),
            principal,
        })
    }

    /// Remembers a caller that just passed full validation with `key` (named `kid`).
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        digest: [u8; 32],
        caller: &Caller,
        kid: &str,
        key: Arc<DecodingKey>,
        exp: u64,
        nbf: u64,
        now: u64,
    ) {
        let ttl = Duration::from_secs(exp.saturating_add(self.leeway).saturating_sub(now));
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(
            digest,
            Arc::new(Entry {
                kid: kid.to_owned(),
                key,
                exp,
                nbf,
                ttl,
                tenant_id: caller.tenant_id.clone(),
                client_app_id: caller.client_app_id.clone(),
                who: match &caller.principal {
                    Principal::User(u) => Who::User {
                        object_id: u.object_id.clone(),
                        username: u.username.clone(),
                        scopes: u.scopes.clone(),
                    },
                    Principal::App(a) => Who::App {
                        roles: a.roles.clone(),
                    },
                },
            }),
        );
    }

    /// Entries held (moka's estimate, after pending maintenance).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_is_checked_against_the_clock_like_a_new_one() {
        let (exp, nbf, leeway) = (1_000, 400, 60);
        assert!(in_time(exp, nbf, 500, leeway));
        assert!(
            in_time(exp, nbf, 1_060, leeway),
            "within the leeway after exp"
        );
        assert!(!in_time(exp, nbf, 1_061, leeway), "expired past the leeway");
        assert!(
            in_time(exp, nbf, 340, leeway),
            "within the leeway before nbf"
        );
        assert!(!in_time(exp, nbf, 339, leeway), "not valid yet");
    }

    #[test]
    fn the_key_is_the_digest_not_the_token() {
        let d = digest("a.b.c");
        assert_eq!(d, digest("a.b.c"));
        assert_ne!(d, digest("a.b.d"));
    }
}
