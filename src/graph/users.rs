//! Which mailbox another user named by userPrincipalName is. Graph counts its per-mailbox limits
//! per mailbox however a request names it, so `/users/{upn}/…` and `/users/{object id}/…` must
//! share one key: the object id, which only Graph knows. It is asked for with the upload's own
//! Graph token (`GET /users/{upn}?$select=id`), once per UPN and TTL (so a UPN given to someone
//! else heals within it), and concurrent uploads to a new UPN wait for that one lookup.
//!
//! The lookup only sharpens a rate-limit key, so it never fails an upload: when Graph refuses,
//! does not know the user, or does not answer in time, the lowercased UPN is the key (as it was
//! before lookups existed) and the failure is remembered briefly, so Graph is not asked again per
//! request. A refusal is about the token's permission, not the user, so it is remembered for the
//! scope: a `Contacts.ReadWrite` token cannot read users while a `User.ReadWrite.All` one can.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use moka::future::Cache;
use reqwest::{Method, StatusCode, header};
use secrecy::SecretString;
use serde::Deserialize;

use super::client::{GraphClient, read_error};
use super::target::{MailboxName, encode_id, is_object_id};
use crate::metrics::{self, UserLookup};

/// UPNs whose object id is kept, and failures remembered: bounded whatever callers name.
const MAX_ENTRIES: u64 = 100_000;
/// How long a failed lookup is remembered: long enough that a refusing or struggling Graph is not
/// asked per request, short enough that a granted permission or a recovered Graph is soon used.
const FAILURE_TTL: Duration = Duration::from_secs(60);
/// A lookup gives up after this (or the Graph attempt timeout, when shorter): it only sharpens a
/// rate-limit key, so it may not hold an upload for long.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer read; `{"@odata.context", "id"}` is about 150 bytes.
const MAX_ANSWER: usize = 16 * 1024;

/// Why a lookup gave no object id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// 403: the token's permission does not cover reading users (`ProfilePhoto.ReadWrite.All`,
    /// `Contacts.ReadWrite`).
    Refused,
    /// 404: no such user; the upload will say so itself.
    NotFound,
    /// 401: Graph refused this token (expired, revoked); the upload's own refresh handles it.
    Unauthorized,
    /// 429, 5xx, another status, or the connection failed.
    Unavailable,
    /// No complete answer within the timeout.
    Timeout,
    /// 200 without an object id.
    Invalid,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::NotFound => "not_found",
            Failure::Unauthorized => "unauthorized",
            Failure::Unavailable => "unavailable",
            Failure::Timeout => "timeout",
            Failure::Invalid => "invalid",
        }
    }

    /// How far the failure is remembered: for every UPN under the scope, for this UPN only, or
    /// not at all (a 401 is about one token, and a fresh one follows).
    fn reach(self) -> Option<Reach> {
        match self {
            Failure::Refused => Some(Reach::Scope),
            Failure::NotFound | Failure::Unavailable | Failure::Timeout | Failure::Invalid => {
                Some(Reach::Upn)
            }
            Failure::Unauthorized => None,
        }
    }

    /// The state of lookups under a scope this failure reveals; `None` when it says nothing about
    /// them (an unknown user, one refused token).
    fn health(self) -> Option<Health> {
        match self {
            Failure::Refused => Some(Health::Refused),
            Failure::Unavailable | Failure::Timeout | Failure::Invalid => Some(Health::Failing),
            Failure::NotFound | Failure::Unauthorized => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Scope,
    Upn,
}

/// A failed lookup, with what Graph said, for the log.
#[derive(Debug)]
struct LookupError {
    failure: Failure,
    status: Option<u16>,
    graph_code: Option<String>,
}

impl LookupError {
    fn new(failure: Failure) -> LookupError {
        LookupError {
            failure,
            status: None,
            graph_code: None,
        }
    }
}

/// Whether lookups under a scope work, so each change is logged once rather than per UPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Working,
    Refused,
    Failing,
}

/// What a lookup is sent with: the upload's own Graph token, its scope and its ids.
pub struct LookupVia<'a> {
    /// The Graph token the upload will use.
    pub token: &'a SecretString,
    /// That token's scope (refusals are remembered per scope).
    pub scope: &'a str,
    /// The request's id, sent as `client-request-id`.
    pub client_request_id: &'a str,
    /// W3C trace context to propagate.
    pub traceparent: Option<&'a str>,
}

/// The object ids of users named by UPN, cached.
pub struct UserIds {
    /// Lowercased UPN → lowercased object id; `None` when lookups are off.
    ids: Option<Cache<String, Arc<str>>>,
    /// Recent failures: (scope, `None` for every UPN or the lowercased UPN).
    failed: Cache<(String, Option<String>), ()>,
    /// Per scope. Only configured scopes are ever keys, so it stays a handful of entries.
    health: Mutex<HashMap<String, Health>>,
}

#[derive(Deserialize)]
struct UserId {
    id: String,
}

impl UserIds {
    /// Object ids are kept for `ttl`; zero turns lookups off (every UPN is its own mailbox).
    pub fn new(ttl: Duration) -> UserIds {
        let ids = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build()
        });
        UserIds {
            ids,
            failed: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(FAILURE_TTL.min(ttl))
                .build(),
            health: Mutex::new(HashMap::new()),
        }
    }

    /// The key of the mailbox `name` names: an object id as it is; another user's UPN as that
    /// user's object id when Graph tells it (now or within the TTL), else the lowercased UPN.
    pub async fn mailbox<'a>(
        &self,
        graph: &GraphClient,
        name: MailboxName<'a>,
        via: LookupVia<'_>,
    ) -> Cow<'a, str> {
        let upn = match name {
            MailboxName::Id(id) => return Cow::Borrowed(id),
            MailboxName::Upn(upn) => upn,
        };
        let key = upn.to_lowercase();
        let Some(ids) = &self.ids else {
            return Cow::Owned(key);
        };
        if let Some(id) = ids.get(&key).await {
            metrics::user_lookup(UserLookup::Hit);
            return Cow::Owned(id.to_string());
        }
        let scope = via.scope.to_owned();
        if self.failed.contains_key(&(scope.clone(), None))
            || self
                .failed
                .contains_key(&(scope.clone(), Some(key.clone())))
        {
            metrics::user_lookup(UserLookup::Fallback);
            return Cow::Owned(key);
        }
        // Set only in the call whose lookup ran: the others waited for it and must neither count
        // a miss nor remember a failure that may belong to another scope's token.
        let mut looked_up = false;
        let result = ids
            .entry(key.clone())
            .or_try_insert_with(async {
                looked_up = true;
                graph.user_id(upn, &via).await
            })
            .await;
        match result {
            Ok(entry) => {
                metrics::user_lookup(if looked_up {
                    UserLookup::Miss
                } else {
                    UserLookup::Hit
                });
                if looked_up {
                    self.note(via.scope, Health::Working, None);
                }
                Cow::Owned(entry.into_value().to_string())
            }
            Err(e) => {
                metrics::user_lookup(UserLookup::Fallback);
                if looked_up {
                    match e.failure.reach() {
                        Some(Reach::Scope) => self.failed.insert((scope, None), ()).await,
                        Some(Reach::Upn) => {
                            self.failed.insert((scope, Some(key.clone())), ()).await
                        }
                        None => {}
                    }
                    match e.failure.health() {
                        Some(h) => {
                            self.note(via.scope, h, Some(&e));
                        }
                        None => tracing::debug!(
                            reason = e.failure.label(),
                            status = e.status,
                            "no object id for a user named by userPrincipalName; the UPN is its mailbox key"
                        ),
                    }
                }
                Cow::Owned(key)
            }
        }
    }

    /// Records the state of lookups under `scope` and logs when it changes; true when it did.
    fn note(&self, scope: &str, now: Health, error: Option<&LookupError>) -> bool {
        let before = {
            let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            health.insert(scope.to_owned(), now)
        };
        if before.unwrap_or(Health::Working) == now {
            return false;
        }
        let (status, graph_code) = error
            .map(|e| (e.status, e.graph_code.as_deref()))
            .unwrap_or((None, None));
        match now {
            Health::Working => tracing::info!(scope, "Graph answers user lookups again"),
            Health::Refused => tracing::warn!(
                scope,
                status,
                graph_code,
                "Graph refuses to look up users with this scope (it needs User.ReadBasic.All or more): \
                 a user named by userPrincipalName is rate-limited under that name, apart from its object id"
            ),
            Health::Failing => tracing::warn!(
                scope,
                reason = error.map(|e| e.failure.label()),
                status,
                graph_code,
                "user lookups in Graph fail: a user named by userPrincipalName is rate-limited under that name until they work again"
            ),
        }
        true
    }
}

impl GraphClient {
    /// `GET /users/{upn}?$select=id`: the user's object id, lowercased.
    async fn user_id(&self, upn: &str, via: &LookupVia<'_>) -> Result<Arc<str>, LookupError> {
        let started = Instant::now();
        let result = self.fetch_user_id(upn, via).await;
        let outcome = match &result {
            Ok(_) => "found",
            Err(e) => e.failure.label(),
        };
        metrics::user_lookup_call(outcome, started.elapsed());
        result
    }

    async fn fetch_user_id(&self, upn: &str, via: &LookupVia<'_>) -> Result<Arc<str>, LookupError> {
        let url = self.url(&format!("/users/{}?$select=id", encode_id(upn)));
        let sent = self
            .request(
                Method::GET,
                &url,
                via.token,
                via.client_request_id,
                via.traceparent,
            )
            .header(header::ACCEPT, "application/json")
            .timeout(LOOKUP_TIMEOUT.min(self.attempt_timeout()))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(LookupError::new(Failure::Timeout)),
            Err(_) => return Err(LookupError::new(Failure::Unavailable)),
        };
        let status = resp.status();
        if status != StatusCode::OK {
            let failure = match status {
                StatusCode::UNAUTHORIZED => Failure::Unauthorized,
                StatusCode::FORBIDDEN => Failure::Refused,
                StatusCode::NOT_FOUND => Failure::NotFound,
                _ => Failure::Unavailable,
            };
            let info = read_error(resp, via.client_request_id).await;
            return Err(LookupError {
                failure,
                status: Some(info.status),
                graph_code: info.code,
            });
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) if body.len() + c.len() <= MAX_ANSWER => body.extend_from_slice(&c),
                Ok(_) => return Err(LookupError::new(Failure::Invalid)),
                Err(e) if e.is_timeout() => return Err(LookupError::new(Failure::Timeout)),
                Err(_) => return Err(LookupError::new(Failure::Unavailable)),
            }
        }
        match serde_json::from_slice::<UserId>(&body) {
            Ok(u) if is_object_id(&u.id) => Ok(u.id.to_ascii_lowercase().into()),
            _ => Err(LookupError {
                status: Some(status.as_u16()),
                ..LookupError::new(Failure::Invalid)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> GraphClient {
        GraphClient::new(
            crate::outbound::PerThreadClient::new(
                &crate::config::UpstreamConfig {
                    ca_bundle_file: None,
                    connect_timeout: Duration::from_secs(5),
                },
                &[],
                Duration::from_secs(30),
            )
            .expect("a client"),
            base,
            Duration::from_secs(30),
            Duration::from_secs(60),
            0,
        )
    }

    fn via(token: &SecretString) -> LookupVia<'_> {
        LookupVia {
            token,
            scope: "s",
            client_request_id: "r",
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn ids_need_no_lookup_and_lookups_can_be_off() {
        // Nothing listens on port 9: any request would fail, and a fallback would show it.
        let graph = client("http://127.0.0.1:9");
        let token = SecretString::from("t");
        let on = UserIds::new(Duration::from_secs(3600));
        assert_eq!(
            on.mailbox(&graph, MailboxName::Id("G-1"), via(&token))
                .await,
            "G-1"
        );
        let off = UserIds::new(Duration::ZERO);
        assert_eq!(
            off.mailbox(&graph, MailboxName::Upn("Megan@Contoso.com"), via(&token))
                .await,
            "megan@contoso.com"
        );
    }

    #[tokio::test]
    async fn an_unreachable_graph_falls_back_to_the_upn_and_is_remembered_for_it() {
        let graph = client("http://127.0.0.1:9");
        let token = SecretString::from("t");
        let users = UserIds::new(Duration::from_secs(3600));
        let key = users
            .mailbox(&graph, MailboxName::Upn("Megan@Contoso.com"), via(&token))
            .await;
        assert_eq!(key, "megan@contoso.com");
        assert!(
            users
                .failed
                .contains_key(&("s".to_owned(), Some("megan@contoso.com".to_owned())))
        );
        assert!(!users.failed.contains_key(&("s".to_owned(), None)));
        assert_eq!(users.health.lock().unwrap()["s"], Health::Failing);
    }

    #[test]
    fn each_change_of_a_scopes_state_is_logged_once() {
        let users = UserIds::new(Duration::from_secs(3600));
        let refused = LookupError::new(Failure::Refused);
        assert!(
            !users.note("a", Health::Working, None),
            "working is the start"
        );
        assert!(users.note("a", Health::Refused, Some(&refused)));
        assert!(!users.note("a", Health::Refused, Some(&refused)), "once");
        assert!(
            users.note("b", Health::Refused, Some(&refused)),
            "per scope"
        );
        assert!(users.note("a", Health::Failing, None));
        assert!(users.note("a", Health::Working, None), "and when it heals");
        assert!(!users.note("a", Health::Working, None));
    }

    #[test]
    fn refusals_reach_the_scope_and_401s_are_not_remembered() {
        assert_eq!(Failure::Refused.reach(), Some(Reach::Scope));
        assert_eq!(Failure::NotFound.reach(), Some(Reach::Upn));
        assert_eq!(Failure::Timeout.reach(), Some(Reach::Upn));
        assert_eq!(Failure::Unauthorized.reach(), None);
        assert_eq!(Failure::NotFound.health(), None);
    }
}
