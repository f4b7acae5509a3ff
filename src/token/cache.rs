//! Graph tokens cached per (assertion, scope): keyed by a SHA-256 of both so no raw token is ever
//! a key, each entry living until its own expiry minus a margin, concurrent misses collapsed into
//! one exchange, failures never cached. With the Redis tier, an L1 miss first looks in the shared
//! cache (`l2.rs`), and what this replica exchanges is written there for the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::l2::L2Tokens;
use super::obo::{GraphToken, OboClient, OboError};
use crate::metrics;

type Key = [u8; 32];

/// Approximate bytes an entry takes besides its token: key, `Arc`, expiry and moka's bookkeeping.
const ENTRY_OVERHEAD: usize = 100;

/// Each token leaves the cache when it must no longer be used (expiry minus the margin); shared
/// by the On-Behalf-Of cache and the app-only one (`app.rs`).
pub(super) struct TokenExpiry;

impl<K> Expiry<K, Arc<GraphToken>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Arc<GraphToken>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.cache_until.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &Arc<GraphToken>,
        updated_at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.cache_until.saturating_duration_since(updated_at))
    }
}

/// The token cache in front of the On-Behalf-Of client.
pub struct TokenCache {
    cache: Cache<Key, Arc<GraphToken>>,
    obo: OboClient,
    l2: Option<L2Tokens>,
}

fn key(assertion: &str, scope: &str) -> Key {
    let mut h = Sha256::new();
    h.update(assertion.as_bytes());
    // A separator no token or scope contains, so (a, bc) and (ab, c) never collide.
    h.update([0u8]);
    h.update(scope.as_bytes());
    h.finalize().into()
}

impl TokenCache {
    /// A cache whose tokens take at most `max_bytes`.
    pub fn new(obo: OboClient, max_bytes: u64) -> TokenCache {
        Self::with_l2(obo, max_bytes, None)
    }

    /// The same, in front of the shared cache `l2` when set.
    pub fn with_l2(obo: OboClient, max_bytes: u64, l2: Option<L2Tokens>) -> TokenCache {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                // Weighed by size, so the bound is memory, whatever the tokens' length.
                .weigher(|_key: &Key, token: &Arc<GraphToken>| {
                    u32::try_from(token.access_token.expose_secret().len() + ENTRY_OVERHEAD)
                        .unwrap_or(u32::MAX)
                })
                .expire_after(TokenExpiry)
                .build(),
            obo,
            l2,
        }
    }

    /// A Graph token for `scope` on behalf of the caller whose token is `assertion`.
    pub async fn get(
        &self,
        assertion: &str,
        scope: &str,
        traceparent: Option<&str>,
    ) -> Result<Arc<GraphToken>, OboError> {
        let entry = self
            .cache
            .entry(key(assertion, scope))
            .or_try_insert_with(async {
                let exchange = || self.obo.exchange(assertion, scope, None, traceparent);
                match &self.l2 {
                    Some(l2) => l2.get_or_exchange(assertion, scope, exchange).await,
                    None => exchange().await,
                }
                .map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())?;
        metrics::token_cache(entry.is_fresh(), self.cache.entry_count());
        Ok(entry.into_value())
    }

    /// A fresh token in place of `refused` (which Graph refused), carrying Graph's claims
    /// challenge when it sent one. Single flight: refreshes of one key run one at a time, and
    /// one that finds `refused` already replaced uses the replacement instead of exchanging again,
    /// so N requests refused at once cause one exchange.
    pub async fn refresh(
        &self,
        assertion: &str,
        scope: &str,
        refused: &Arc<GraphToken>,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<Arc<GraphToken>, OboError> {
        let result = self
            .cache
            .entry(key(assertion, scope))
            .and_try_compute_with(|current| async move {
                match current {
                    Some(entry) if !Arc::ptr_eq(entry.value(), refused) => Ok(Op::Nop),
                    _ => {
                        let fresh = self
                            .obo
                            .exchange(assertion, scope, claims, traceparent)
                            .await?;
                        if let Some(l2) = &self.l2 {
                            // The refused token may be what the others hold too.
                            l2.put(assertion, scope, &fresh).await;
                        }
                        Ok(Op::Put(Arc::new(fresh)))
                    }
                }
            })
            .await?;
        match result {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e) => {
                Ok(e.into_value())
            }
            // Only `Put` and `Nop` on a present entry are returned above; should the entry have
            // vanished meanwhile, a direct exchange is still correct.
            CompResult::StillNone(_) | CompResult::Removed(_) => Ok(Arc::new(
                self.obo
                    .exchange(assertion, scope, claims, traceparent)
                    .await?,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_hash_assertion_and_scope_separately() {
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_eq!(key("a", "b"), key("a", "b"));
    }
}
