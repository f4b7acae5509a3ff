//! The gateway's own Graph token for app-only callers: client credentials for
//! `https://graph.microsoft.com/.default` (the application permissions admin-consented to the
//! gateway), with the gateway's secret, certificate or workload identity (`credential.rs`).
//!
//! One token serves every daemon of a tenant, so it is cached per tenant: in L1 (moka) until its
//! expiry minus the margin, concurrent misses collapsed into one token request (50 concurrent
//! daemon calls → 1 request), failures never cached; with the Redis tier, in L2 (`l2.rs`: the same
//! sealing, keyed hash, cross-replica lock and TTL) under the tenant, `.default` and "app", so a
//! new replica finds it there. On Graph 401 one single-flight refresh, as for On-Behalf-Of.

use std::sync::Arc;

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use super::cache::TokenExpiry;
use super::l2::L2Tokens;
use super::obo::{GraphToken, OboClient, OboError};
use crate::metrics;

/// App-only Graph tokens per tenant.
pub struct AppTokens {
    cache: Cache<String, Arc<GraphToken>>,
    client: OboClient,
    l2: Option<L2Tokens>,
    scope: String,
}

/// What L2 keys the tenant's app token by, in place of a caller's assertion. A caller's assertion
/// is a JWT, which never holds a NUL: the two can never share a name.
fn l2_subject(tenant: &str) -> String {
    format!("{}\u{0}.default\u{0}app", tenant.to_ascii_lowercase())
}

impl AppTokens {
    /// Tokens for `scope` (`{graph}/.default`) from the gateway's credential in `client`, in
    /// front of the shared cache `l2` when set.
    pub fn new(client: OboClient, scope: String, l2: Option<L2Tokens>) -> AppTokens {
        AppTokens {
            cache: Cache::builder()
                // One gateway serves one tenant; a few entries bound a misconfiguration.
                .max_capacity(16)
                .expire_after(TokenExpiry)
                .build(),
            client,
            l2,
            scope,
        }
    }

    /// The scope the tokens are for (what the audit and the mailbox lookup name).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The gateway's app-only Graph token for `tenant`.
    pub async fn get(
        &self,
        tenant: &str,
        traceparent: Option<&str>,
    ) -> Result<Arc<GraphToken>, OboError> {
        let entry = self
            .cache
            .entry(tenant.to_ascii_lowercase())
            .or_try_insert_with(async {
                let request = || {
                    self.client
                        .client_credentials(&self.scope, None, traceparent)
                };
                match &self.l2 {
                    Some(l2) => {
                        l2.get_or_exchange(&l2_subject(tenant), &self.scope, request)
                            .await
                    }
                    None => request().await,
                }
                .map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())?;
        metrics::app_token_cache(entry.is_fresh());
        Ok(entry.into_value())
    }

    /// A fresh token in place of `refused` (which Graph refused), carrying Graph's claims
    /// challenge when it sent one. Single flight: concurrent refreshes of the tenant's token
    /// cause one request, the others use its result.
    pub async fn refresh(
        &self,
        tenant: &str,
        refused: &Arc<GraphToken>,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<Arc<GraphToken>, OboError> {
        let request = || async {
            let fresh = self
                .client
                .client_credentials(&self.scope, claims, traceparent)
                .await?;
            if let Some(l2) = &self.l2 {
                // The refused token may be what the other replicas hold too.
                l2.put(&l2_subject(tenant), &self.scope, &fresh).await;
            }
            Ok::<_, OboError>(fresh)
        };
        let result = self
            .cache
            .entry(tenant.to_ascii_lowercase())
            .and_try_compute_with(|current| async move {
                match current {
                    Some(entry) if !Arc::ptr_eq(entry.value(), refused) => Ok(Op::Nop),
                    _ => Ok(Op::Put(Arc::new(request().await?))),
                }
            })
            .await?;
        match result {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e) => {
                Ok(e.into_value())
            }
            // Only `Put` and `Nop` on a present entry are returned above; should the entry have
            // vanished meanwhile, a direct request is still correct.
            CompResult::StillNone(_) | CompResult::Removed(_) => Ok(Arc::new(request().await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::l2_subject;

    #[test]
    fn the_l2_subject_is_per_tenant_and_never_a_jwt() {
        assert_eq!(l2_subject("T1"), l2_subject("t1"));
        assert_ne!(l2_subject("t1"), l2_subject("t2"));
        assert!(l2_subject("t1").contains('\u{0}'));
    }
}
