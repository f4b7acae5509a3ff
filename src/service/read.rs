//! Reads and deletes, the other two things done to a photo, as named steps like the upload's:
//!
//! read: authorize (policy, `read`) → admit (the caller's rate) → token (the read scope of the
//! kind; a user's own photo by object id is `me`'s) → for photo bytes: the cache key (the
//! resolved target) → fresh in the read cache? answer from it : ask Graph (with the cached ETag
//! when stale: 304 renews it) → keep → answer (304 when the caller's `If-None-Match` matches).
//! Metadata (`…/photo`, `…/photos`) is passed through as Graph answers it, never cached.
//!
//! delete: authorize (`delete`) → admit → token → audit attempt → Graph `DELETE` → the read
//! cache forgets the target → audit outcome.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::PhotoService;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::graph::{
    Access, GraphCall, GraphFailure, GraphRead, LookupVia, MailboxName, PhotoTarget, PhotoView,
    encode_id,
};
use crate::metrics;
use crate::read_cache::CachedPhoto;
use crate::shared::invalidate::Notice;
use crate::shared::limits::Lease;
use crate::telemetry::outbound_traceparent;
use crate::token::GraphToken;

/// Largest photo a read takes from Graph: Graph stores none of 4 MiB or more.
const MAX_READ_BYTES: usize = 4 * 1024 * 1024;
/// Largest metadata answer (`…/photo`, `…/photos`): a few hundred bytes in practice.
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// One read as the handler hands it over.
pub struct PhotoRead<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// Whose photo.
    pub target: &'a PhotoTarget,
    /// Which view of it.
    pub view: PhotoView,
    /// The caller's `If-None-Match`, if any.
    pub if_none_match: Option<&'a str>,
    /// The caller's W3C `traceparent`, if any.
    pub traceparent: Option<&'a str>,
    /// The request id, sent to Graph as `client-request-id`.
    pub request_id: &'a str,
}

/// One delete as the handler hands it over.
pub struct PhotoDelete<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// Whose photo.
    pub target: &'a PhotoTarget,
    /// The caller's W3C `traceparent`, if any.
    pub traceparent: Option<&'a str>,
    /// The request id, sent to Graph as `client-request-id`.
    pub request_id: &'a str,
}

/// What a read answers.
pub enum ReadAnswer {
    /// Photo bytes (`…/$value`).
    Photo {
        /// The photo.
        photo: Arc<CachedPhoto>,
        /// The caller's `If-None-Match` names it: answer 304.
        not_modified: bool,
    },
    /// Metadata JSON, as Graph answered it.
    Metadata {
        /// Graph's bytes.
        body: Bytes,
        /// Graph's content type.
        content_type: Option<String>,
    },
}

impl PhotoService {
    /// Reads a photo, its metadata or one of its sizes.
    pub async fn read(&self, r: PhotoRead<'_>) -> Result<ReadAnswer, ApiError> {
        self.authorize_access(r.caller, r.target, Access::Read)?;
        self.check_rate(r.caller).await?;
        let scope = self
            .scope_for(r.caller, r.target, Access::Read)
            .ok_or_else(|| {
                ApiError::MethodNotAllowed(
                    "this photo cannot be read".into(),
                    r.view.allow(r.target.kind()),
                )
            })?;
        let token = self.graph_token(r.caller, scope, r.traceparent).await?;
        let traceparent = outbound_traceparent(r.traceparent);
        let path = r.target.view_path(r.view);
        let call = GraphCall {
            path: &path,
            client_request_id: r.request_id,
            traceparent: traceparent.as_deref(),
        };
        let size = match r.view {
            PhotoView::Value => None,
            PhotoView::Sized(n) => Some(n),
            PhotoView::Metadata | PhotoView::Sizes => {
                let read = self
                    .with_fresh_token(r.caller, scope, r.traceparent, token, |t| {
                        let call = &call;
                        async move {
                            self.graph
                                .read(call, &t.access_token, None, MAX_METADATA_BYTES)
                                .await
                        }
                    })
                    .await?;
                return Ok(ReadAnswer::Metadata {
                    body: read.body,
                    content_type: read.content_type,
                });
            }
        };
        let key = self
            .cache_target(
                r.caller,
                r.target,
                &token,
                scope,
                r.request_id,
                traceparent.as_deref(),
            )
            .await;
        let tenant = r.caller.tenant_id.as_str();
        let read_start = self.read_cache.begin_read(tenant, &key);
        let cached = self.read_cache.get(&read_start, size).await;
        if let Some(c) = cached.as_ref().filter(|c| self.read_cache.is_fresh(c)) {
            metrics::read_cache("hit");
            return Ok(answer(c.clone(), r.if_none_match));
        }
        let etag = cached.as_ref().map(|c| c.etag.clone());
        let cacheable = self.mark(tenant, &key).await;
        let read = self
            .with_fresh_token(r.caller, scope, r.traceparent, token, |t| {
                let (call, etag) = (&call, etag.as_deref());
                async move {
                    self.graph
                        .read(call, &t.access_token, etag, MAX_READ_BYTES)
                        .await
                }
            })
            .await;
        let photo = match (read, cached) {
            (
                Ok(GraphRead {
                    not_modified: true, ..
                }),
                Some(c),
            ) => {
                metrics::read_cache("revalidated");
                Arc::new(c.renewed())
            }
            (
                Ok(GraphRead {
                    not_modified: true, ..
                }),
                None,
            ) => {
                // Graph answered 304 to a request that named no copy: nothing to serve.
                return Err(ApiError::GraphError {
                    detail: "Microsoft Graph answered 304 Not Modified to an unconditional read"
                        .into(),
                    graph: Box::default(),
                });
            }
            (Ok(read), _) => {
                metrics::read_cache("miss");
                let content_type = read
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into());
                Arc::new(CachedPhoto::new(read.body, content_type, read.etag))
            }
            (Err(e), _) => {
                if let ApiError::PhotoNotFound { .. } = e {
                    metrics::read_cache("not_found");
                    self.read_cache.invalidate(tenant, &key).await;
                }
                return Err(e);
            }
        };
        if cacheable && !self.read_cache.put(&read_start, size, photo.clone()).await {
            metrics::read_cache_overtaken();
        }
        Ok(answer(photo, r.if_none_match))
    }

    /// Deletes a photo (`me`, users, groups: Graph deletes no other). Every outcome of an
    /// authorized attempt leaves an audit line.
    pub async fn delete(&self, d: PhotoDelete<'_>) -> Result<Option<String>, ApiError> {
        let outcome = self.run_delete(&d).await;
        audit_delete(&d, &outcome);
        outcome
    }

    async fn run_delete(&self, d: &PhotoDelete<'_>) -> Result<Option<String>, ApiError> {
        self.authorize_access(d.caller, d.target, Access::Delete)?;
        self.check_rate(d.caller).await?;
        let scope = self
            .scope_for(d.caller, d.target, Access::Delete)
            .ok_or_else(|| {
                ApiError::MethodNotAllowed(
                    "Graph has no delete of this photo".into(),
                    PhotoView::Value.allow(d.target.kind()),
                )
            })?;
        let token = self.graph_token(d.caller, scope, d.traceparent).await?;
        let traceparent = outbound_traceparent(d.traceparent);
        let path = d.target.graph_path();
        let call = GraphCall {
            path: &path,
            client_request_id: d.request_id,
            traceparent: traceparent.as_deref(),
        };
        tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %d.caller.tenant_id,
            user_oid = d.caller.user().map(|u| u.object_id.as_str()),
            client_app = %d.caller.client_app_id,
            app_only = d.caller.is_app_only(),
            target_path = %path,
            method = "DELETE",
            outcome = "attempt",
            "photo delete attempted"
        );
        let result = self
            .with_fresh_token(d.caller, scope, d.traceparent, token.clone(), |t| {
                let call = &call;
                async move { self.graph.delete(call, &t.access_token).await }
            })
            .await;
        // Whatever Graph answered, the photo may have changed: the cached copy is not trusted.
        self.forget(
            d.caller,
            d.target,
            &token,
            scope,
            d.request_id,
            traceparent.as_deref(),
            None,
        )
        .await;
        result
    }

    /// Runs a Graph call; if Graph refuses the cached token, exchanges a fresh one (with Graph's
    /// claims challenge, if any) and runs it once more. `ImageNotFound` is `photo-not-found`.
    async fn with_fresh_token<T, F, Fut>(
        &self,
        caller: &Caller,
        scope: &str,
        traceparent: Option<&str>,
        token: Arc<GraphToken>,
        call: F,
    ) -> Result<T, ApiError>
    where
        F: Fn(Arc<GraphToken>) -> Fut,
        Fut: Future<Output = Result<T, GraphFailure>>,
    {
        let result = match call(token.clone()).await {
            Err(GraphFailure::Unauthorized { claims, .. }) => {
                tracing::info!("Graph refused the cached token; exchanging a fresh one");
                let fresh = self
                    .fresh_token(caller, scope, &token, claims.as_deref(), traceparent)
                    .await?;
                call(fresh).await
            }
            other => other,
        };
        result.map_err(|f| match f {
            GraphFailure::Rejected(info)
                if info.status == 404 && info.code.as_deref() == Some("ImageNotFound") =>
            {
                ApiError::PhotoNotFound {
                    detail: "the target has no photo (Microsoft Graph: ImageNotFound)".into(),
                    graph: Box::new(info),
                }
            }
            other => other.into(),
        })
    }

    /// The read cache's name of a target: `/me` and the caller's own UPN are the caller's
    /// object id, another user named by UPN that user's object id (looked up and cached by
    /// `graph/users.rs`; the lowercased UPN when Graph does not tell), a team its group, a
    /// contact its mailbox's user and its id (the folder does not matter).
    pub(super) async fn cache_target(
        &self,
        caller: &Caller,
        target: &PhotoTarget,
        token: &GraphToken,
        scope: &str,
        request_id: &str,
        traceparent: Option<&str>,
    ) -> String {
        let via = || LookupVia {
            token: &token.access_token,
            scope,
            client_request_id: request_id,
            traceparent,
        };
        let mailbox = match Self::mailbox_name(caller, target) {
            Ok(name) => name,
            // Refused at authorize: a daemon has no `/me`. A key no read can ask for.
            Err(_) => return String::new(),
        };
        match target {
            PhotoTarget::Me | PhotoTarget::User { .. } => self.user_key(mailbox, via()).await,
            PhotoTarget::Group { group: id } | PhotoTarget::Team { team: id } => {
                format!("/groups/{}", encode_id(&id.to_lowercase()))
            }
            PhotoTarget::MyContact { contact, .. } | PhotoTarget::UserContact { contact, .. } => {
                format!(
                    "{}/contacts/{}",
                    self.user_key(mailbox, via()).await,
                    encode_id(contact)
                )
            }
        }
    }

    /// `/users/{object id}`, or `/users/{lowercased UPN}` when Graph does not tell the id.
    async fn user_key(&self, name: MailboxName<'_>, via: LookupVia<'_>) -> String {
        let id = match name {
            MailboxName::Id(id) => id.to_owned(),
            upn => self
                .user_ids
                .mailbox(&self.graph, upn, via)
                .await
                .into_owned(),
        };
        format!("/users/{}", encode_id(&id.to_lowercase()))
    }

    /// The read cache forgets a target this replica changed or deleted (every size; and the
    /// lowercased UPN too, which reads key by when Graph would not tell the object id), and with
    /// Redis the other replicas that may cache it are told, in one round trip that also releases
    /// the upload's mailbox `lease` (if any; without Redis to tell, dropping it releases it).
    /// Announced before the write's answer, so a read that follows it on another replica does
    /// not find the old photo. A failure is counted, never the request's error: the other
    /// replicas' copies then live at most `READ_CACHE_MAX_AGE_SECS`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn forget(
        &self,
        caller: &Caller,
        target: &PhotoTarget,
        token: &GraphToken,
        scope: &str,
        request_id: &str,
        traceparent: Option<&str>,
        lease: Option<Lease>,
    ) {
        if !self.read_cache.enabled() {
            return;
        }
        let tenant = caller.tenant_id.as_str();
        let mut keys = vec![
            self.cache_target(caller, target, token, scope, request_id, traceparent)
                .await,
        ];
        if let Ok(MailboxName::Upn(upn)) = Self::mailbox_name(caller, target) {
            let by_upn = format!("/users/{}", encode_id(&upn.to_lowercase()));
            keys.push(match target {
                PhotoTarget::UserContact { contact, .. } => {
                    format!("{by_upn}/contacts/{}", encode_id(contact))
                }
                _ => by_upn,
            });
        }
        for key in &keys {
            self.read_cache.invalidate(tenant, key).await;
        }
        if let Some(invalidation) = &self.invalidation {
            let notices: Vec<Notice> = keys
                .iter()
                .map(|k| invalidation.notice(tenant, k))
                .collect();
            invalidation.announce(&notices, lease).await;
        }
    }

    /// With Redis, records that this replica is about to cache (tenant, key), before the Graph
    /// read whose answer it caches; false when that failed (the answer must not be cached, since
    /// no replica's change of it would be announced).
    async fn mark(&self, tenant: &str, key: &str) -> bool {
        match &self.invalidation {
            Some(invalidation) => invalidation.mark(tenant, key).await,
            None => true,
        }
    }
}

/// The answer for a photo, 304 when the caller already holds it.
fn answer(photo: Arc<CachedPhoto>, if_none_match: Option<&str>) -> ReadAnswer {
    let not_modified = photo.matches(if_none_match);
    ReadAnswer::Photo {
        photo,
        not_modified,
    }
}

/// The audit line of a delete's outcome (`photo_gateway::audit`, like the upload's).
fn audit_delete(d: &PhotoDelete<'_>, outcome: &Result<Option<String>, ApiError>) {
    match outcome {
        Ok(graph_request_id) => tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %d.caller.tenant_id,
            user_oid = d.caller.user().map(|u| u.object_id.as_str()),
            client_app = %d.caller.client_app_id,
            app_only = d.caller.is_app_only(),
            target_path = %d.target.graph_path(),
            method = "DELETE",
            outcome = "success",
            graph_request_id = graph_request_id.as_deref().unwrap_or(""),
            "photo deleted"
        ),
        Err(e) => tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %d.caller.tenant_id,
            user_oid = d.caller.user().map(|u| u.object_id.as_str()),
            client_app = %d.caller.client_app_id,
            app_only = d.caller.is_app_only(),
            target_path = %d.target.graph_path(),
            method = "DELETE",
            outcome = e.code(),
            "photo delete failed"
        ),
    }
}
