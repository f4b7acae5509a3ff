//! The tenant's signing keys: loaded from OIDC discovery at start, refreshed periodically and on
//! unknown `kid`s (at most once per cooldown), last-known-good kept when a refresh fails. No lock
//! is held across a fetch: readers clone an `Arc` of the current key set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use crate::metrics;

/// One immutable generation of keys and issuers.
pub struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// The tenant id as the v2 discovery document's issuer names it
    /// (`https://login.microsoftonline.com/{tenant id}/v2.0`): tokens must carry it as `tid`.
    pub tenant_id: Option<String>,
    jwks_uri: String,
}

/// The tenant id in an Entra issuer: its first path segment.
fn tenant_of_issuer(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    let first = url.path_segments()?.next()?;
    (!first.is_empty()).then(|| first.to_ascii_lowercase())
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Network or HTTP failure.
    #[error("{url}: {message}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The key set holds no usable RSA signing key.
    #[error("{0}: no usable RSA signing key")]
    NoKeys(String),
}

struct RefreshState {
    last_attempt: Option<Instant>,
    inflight: Option<Shared<BoxFuture<'static, ()>>>,
}

/// The key store shared by every request.
pub struct KeyStore {
    http: reqwest::Client,
    discovery_v2: String,
    discovery_v1: String,
    issuers_override: Option<Vec<String>>,
    current: RwLock<Option<Arc<KeySet>>>,
    refresh: Mutex<RefreshState>,
    cooldown: Duration,
    loaded: AtomicBool,
}

impl KeyStore {
    /// A store that has not loaded anything yet.
    pub fn new(
        http: reqwest::Client,
        discovery_v2: String,
        discovery_v1: String,
        issuers_override: Option<Vec<String>>,
        cooldown: Duration,
    ) -> KeyStore {
        KeyStore {
            http,
            discovery_v2,
            discovery_v1,
            issuers_override,
            current: RwLock::new(None),
            refresh: Mutex::new(RefreshState {
                last_attempt: None,
                inflight: None,
            }),
            cooldown,
            loaded: AtomicBool::new(false),
        }
    }

    /// True once a key set has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The current key set, if loaded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The key for `kid` in the current set.
    pub fn key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.current().and_then(|s| s.keys.get(kid).cloned())
    }

    /// The key for `kid`, refreshing the set first if `kid` is unknown and the cooldown allows.
    /// Concurrent callers share one fetch; callers inside the cooldown do not fetch at all.
    pub async fn key_or_refresh(self: &Arc<Self>, kid: &str) -> Option<Arc<DecodingKey>> {
        if let Some(k) = self.key(kid) {
            return Some(k);
        }
        let pending = {
            let mut st = self.refresh.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = &st.inflight {
                Some(f.clone())
            } else if st.last_attempt.is_some_and(|t| t.elapsed() < self.cooldown) {
                None
            } else {
                st.last_attempt = Some(Instant::now());
                let me = Arc::clone(self);
                let task = tokio::spawn(async move {
                    if let Err(e) = me.reload(false).await {
                        tracing::warn!(error = %e, "JWKS refresh for an unknown kid failed; keeping the last-known-good keys");
                    }
                    let mut st = me.refresh.lock().unwrap_or_else(|p| p.into_inner());
                    st.inflight = None;
                });
                let fut = async move {
                    let _ = task.await;
                }
                .boxed()
                .shared();
                st.inflight = Some(fut.clone());
                Some(fut)
            }
        };
        if let Some(f) = pending {
            f.await;
        }
        self.key(kid)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, JwksError> {
        let err = |message: String| JwksError::Fetch {
            url: url.to_owned(),
            message,
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        resp.json::<T>()
            .await
            .map_err(|e| err(format!("unreadable answer: {e}")))
    }

    /// Fetches discovery (when `with_discovery` or never done) and the JWKS, then swaps them in.
    pub async fn reload(&self, with_discovery: bool) -> Result<(), JwksError> {
        let result = self.reload_inner(with_discovery).await;
        metrics::jwks_refresh(result.is_ok());
        result
    }

    async fn reload_inner(&self, with_discovery: bool) -> Result<(), JwksError> {
        let previous = self.current();
        let (jwks_uri, issuers, tenant_id) = match (&previous, with_discovery) {
            (Some(p), false) => (p.jwks_uri.clone(), p.issuers.clone(), p.tenant_id.clone()),
            _ => {
                let v2: Discovery = self.get_json(&self.discovery_v2).await?;
                let tenant_id = tenant_of_issuer(&v2.issuer);
                let mut issuers = vec![v2.issuer.clone()];
                match self.get_json::<Discovery>(&self.discovery_v1).await {
                    Ok(v1) if v1.issuer != v2.issuer => issuers.push(v1.issuer),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "v1 discovery failed; accepting v2 tokens only until the next refresh")
                    }
                }
                if let Some(o) = &self.issuers_override {
                    issuers = o.clone();
                }
                (v2.jwks_uri, issuers, tenant_id)
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        let keys: HashMap<String, Arc<DecodingKey>> = set
            .keys
            .iter()
            .filter(|k| {
                k.common
                    .public_key_use
                    .as_ref()
                    .is_none_or(|u| matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
            })
            .filter(|k| matches!(k.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)))
            .filter_map(|k| {
                let kid = k.common.key_id.clone()?;
                DecodingKey::from_jwk(k).ok().map(|d| (kid, Arc::new(d)))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoKeys(jwks_uri));
        }
        tracing::info!(keys = keys.len(), "signing keys loaded");
        let next = Arc::new(KeySet {
            keys,
            issuers,
            tenant_id,
            jwks_uri,
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(next);
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Loads the keys (retrying with capped exponential backoff until it works), then refreshes
    /// them every `interval`, keeping the last-known-good set when a refresh fails.
    pub fn spawn_maintenance(
        self: Arc<Self>,
        interval: Duration,
        max_backoff: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let retry_until_ok = |store: Arc<KeyStore>| async move {
                let mut delay = Duration::from_millis(250);
                loop {
                    match store.reload(true).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "loading signing keys failed");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(max_backoff);
                        }
                    }
                }
            };
            retry_until_ok(Arc::clone(&self)).await;
            loop {
                tokio::time::sleep(interval).await;
                retry_until_ok(Arc::clone(&self)).await;
            }
        })
    }
}
