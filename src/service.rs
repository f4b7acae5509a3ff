//! The flow of one upload, free of the web framework: the handler hands over plain values (the
//! caller's credentials, the target, the method, the few headers that matter, the body as a
//! stream) and gets a receipt or an `ApiError` back. The upload is a sequence of small named
//! steps, so a new stage is one new step:
//!
//! authorize (and the image options resolved: a mode not allowed is refused before the body is
//! read) → admit → receive (body and Graph token in parallel) → prepare (the image stage: what is
//! sent from here on is its output) → mailbox slot (another user named by UPN resolved to its
//! object id) → send (one fresh token if Graph refuses the cached one) → receipt → audit.
//!
//! An app-only (daemon) caller takes the same steps; only three branch on the caller: authorize
//! (`auth/app_policy.rs` instead of `auth/policy.rs`), admit (the app's own rate) and the Graph
//! token (the gateway's own client-credentials token, `token/app.rs`, instead of On-Behalf-Of).

mod read;

pub use read::{PhotoDelete, PhotoRead, ReadAnswer};

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use reqwest::Method;
use serde::Serialize;
use utoipa::ToSchema;

use crate::admission::{Admission, MailboxSlot, RateSubject, Reservation};
use crate::auth::{
    AppPolicy, Caller, CallerPolicy, Credentials, Principal, TokenValidator, bearer_token,
};
use crate::error::{ApiError, image_error};
use crate::graph::{
    Access, GraphClient, GraphFailure, GraphUpload, LookupVia, MailboxName, PhotoTarget, Scopes,
    UserIds,
};
use crate::image::{ImageOptions, ImageStage, InputInfo, OutputInfo};
use crate::image_request::{ImagePolicy, ImageRequest, mode_name};
use crate::metrics;
use crate::read_cache::ReadCache;
use crate::shared::Invalidation;
use crate::telemetry::outbound_traceparent;
use crate::token::{AppTokens, GraphToken, OboError, TokenCache};
use crate::upload::{BodyHeaders, BodyStream, Photo, UploadLimits, read_photo, sniff};

/// What the caller gets back after a successful upload.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "target": "/users/8f0c2b1e-5d4a-4c3b-9a1f-0e2d3c4b5a69/photo/$value",
    "method": "PUT",
    "bytes": 48213,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "contentType": "image/jpeg",
    "graphRequestId": "0b9d4e0e-6c1f-4b8a-9d3e-1f2a3b4c5d6e",
    "clientRequestId": "3f1b2c9e-6a4d-4c1e-9f0a-2b7d8e6c5a41",
    "input": {"contentType": "image/jpeg", "bytes": 3481922, "width": 4032, "height": 3024, "orientation": 6},
    "output": {"width": 648, "height": 648, "bytes": 48213, "quality": 85, "metadataRemoved": ["exif"]}
}))]
pub struct UploadReceipt {
    /// The Graph path that was called (below `/v1.0`).
    pub target: String,
    /// The method forwarded to Graph.
    pub method: String,
    /// Bytes sent to Graph (the image stage's output).
    pub bytes: usize,
    /// SHA-256 of the bytes sent to Graph, lowercase hex.
    pub sha256: String,
    /// Content type sent to Graph.
    pub content_type: &'static str,
    /// Graph's `request-id`, if it sent one.
    pub graph_request_id: Option<String>,
    /// The `client-request-id` sent to Graph (also this request's id).
    pub client_request_id: String,
    /// What was received, as far as the mode read it.
    pub input: InputInfo,
    /// What was sent to Graph.
    pub output: OutputInfo,
}

/// One upload as the handler hands it over.
pub struct PhotoUpdate<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// Which photo.
    pub target: &'a PhotoTarget,
    /// PUT or PATCH, forwarded as received.
    pub method: Method,
    /// How to read the body.
    pub body: BodyHeaders<'a>,
    /// The caller's W3C `traceparent`, if any.
    pub traceparent: Option<&'a str>,
    /// The request id, sent to Graph as `client-request-id`.
    pub request_id: &'a str,
    /// What the request asks of the image stage (query parameters).
    pub image: ImageRequest,
}

/// The upload service shared by all workers, assembled by `Application::build`.
pub struct PhotoService {
    pub(crate) validator: TokenValidator,
    pub(crate) tokens: TokenCache,
    pub(crate) graph: GraphClient,
    pub(crate) scopes: Scopes,
    pub(crate) read_cache: ReadCache,
    /// With Redis: tells the other replicas what this one changed, so their read caches drop it.
    pub(crate) invalidation: Option<Invalidation>,
    pub(crate) upload: UploadLimits,
    pub(crate) policy: CallerPolicy,
    pub(crate) app_policy: AppPolicy,
    pub(crate) app_tokens: AppTokens,
    pub(crate) admission: Admission,
    pub(crate) user_ids: UserIds,
    pub(crate) images: ImageStage,
    pub(crate) image_policy: ImagePolicy,
}

/// How far an upload got, for its audit line.
#[derive(Default)]
struct Progress {
    /// The photo as received.
    received: Option<Photo>,
    /// The photo as the image stage made it.
    prepared: Option<Photo>,
}

impl PhotoService {
    /// The read cache: `invalidate(tenant, target)` is what other replicas' writes call.
    pub fn read_cache(&self) -> &ReadCache {
        &self.read_cache
    }

    /// Validates the request's bearer token.
    pub async fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Caller, ApiError> {
        self.validator.validate(bearer_token(credentials)?).await
    }

    /// Performs the upload and returns the receipt. Every outcome of an authenticated attempt,
    /// refusals included, leaves one audit line.
    pub async fn update(
        self: &Arc<Self>,
        up: PhotoUpdate<'_>,
        body: BodyStream,
    ) -> Result<UploadReceipt, ApiError> {
        let mut progress = Progress::default();
        let outcome = self.run(&up, body, &mut progress).await;
        audit::outcome(&up, &outcome, &progress);
        outcome
    }

    /// An authenticated request refused before its upload began (a bad or unknown path, a bad
    /// query parameter): still an attempted change an auditor must see.
    pub fn refused_before_target(
        &self,
        caller: &Caller,
        method: &str,
        path: &str,
        error: &ApiError,
    ) {
        audit::refused_before_target(caller, method, path, error);
    }

    async fn run(
        &self,
        up: &PhotoUpdate<'_>,
        body: BodyStream,
        progress: &mut Progress,
    ) -> Result<UploadReceipt, ApiError> {
        self.authorize(up)?;
        let options = self.image_policy.resolve(&up.image)?;
        // The caller's rate comes first whatever else refuses the request; with the Redis tier
        // it is a round trip, so it runs while the body arrives (see `receive`), or it is left
        // to the mailbox slot's round trip (`Admission::check_upload_rate`).
        let caller = std::pin::pin!(
            self.admission
                .check_upload_rate(self.rate_subject(up.caller))
        );
        let _reservation = match self.admit(up) {
            Ok(r) => r,
            Err(e) => return Err(caller.await.err().unwrap_or(e)),
        };
        let Some(scope) = self.scope_for(up.caller, up.target, Access::Write) else {
            let e = ApiError::MethodNotAllowed("this target cannot be written".into(), "GET");
            return Err(caller.await.err().unwrap_or(e));
        };
        let (received, token, rate) = self
            .receive(up, body, scope, caller, &mut progress.received)
            .await?;
        metrics::photo_bytes(received.len());
        let (photo, input, output) = self.prepare(&received, &options).await?;
        drop(received);
        progress.prepared = Some(photo.clone());
        let mut slot = self.mailbox_slot(up, &photo, &token, scope, rate).await?;
        let graph_path = up.target.graph_path();
        // Written before Graph is called: a caller that disconnects mid-call still leaves a
        // trace of a change that may have happened.
        audit::attempt(up, &graph_path, &photo, &input);
        let sent = self
            .send(up, &graph_path, &photo, token.clone(), scope)
            .await;
        // Whatever Graph answered, the photo may have changed: the cached copy is not trusted.
        let traceparent = outbound_traceparent(up.traceparent);
        self.forget(
            up.caller,
            up.target,
            &token,
            scope,
            up.request_id,
            traceparent.as_deref(),
            slot.take_lease(),
        )
        .await;
        drop(slot);
        let graph_request_id = sent?;
        Ok(receipt(
            up,
            graph_path,
            &photo,
            graph_request_id,
            input,
            output,
        ))
    }

    /// The calling app may change this kind of target: for a signed-in user, by the delegated
    /// policy; for an app-only caller, by its app roles and the app-only policy.
    fn authorize(&self, up: &PhotoUpdate<'_>) -> Result<(), ApiError> {
        self.authorize_access(up.caller, up.target, Access::Write)
    }

    /// Whether this caller may do `access` to `target`: the delegated policy for a signed-in
    /// user, the app roles and app-only policy for a daemon.
    pub(crate) fn authorize_access(
        &self,
        caller: &Caller,
        target: &PhotoTarget,
        access: Access,
    ) -> Result<(), ApiError> {
        match &caller.principal {
            Principal::User(_) => self.policy.authorize(caller, target, access),
            Principal::App(app) => {
                self.app_policy
                    .authorize(&caller.client_app_id, &app.roles, target, access)
            }
        }
    }

    /// Within the caller's own rate: per (app, user) for a signed-in user, per app for a daemon.
    pub(crate) async fn check_rate(&self, caller: &Caller) -> Result<(), ApiError> {
        self.admission.check_rate(self.rate_subject(caller)).await
    }

    /// Whose allowance the caller's requests take, `None` when its rate is off.
    fn rate_subject<'a>(&self, caller: &'a Caller) -> Option<RateSubject<'a>> {
        match &caller.principal {
            Principal::User(user) => self
                .admission
                .user_rate(&caller.client_app_id, &user.object_id),
            Principal::App(_) => self.admission.app_rate(&caller.client_app_id),
        }
    }

    /// The Graph scope an access needs, `None` when the gateway offers no such access to this
    /// kind: the least delegated scope of (kind, access) for a user (a user's own object id is
    /// `me`), the gateway's own `.default` for a daemon, whose application permissions are
    /// admin-consented to it.
    pub(crate) fn scope_for(
        &self,
        caller: &Caller,
        target: &PhotoTarget,
        access: Access,
    ) -> Option<&str> {
        match caller.user() {
            Some(user) => self.scopes.get(target.scope_kind(user.identity()), access),
            None => self
                .scopes
                .get(target.kind(), access)
                .map(|_| self.app_tokens.scope()),
        }
    }

    /// The mailbox a target is in: the signed-in user's for `/me`; a daemon has none, so a `/me`
    /// path (refused at authorize already) cannot reach Graph without a user.
    pub(crate) fn mailbox_name<'a>(
        caller: &'a Caller,
        target: &'a PhotoTarget,
    ) -> Result<MailboxName<'a>, ApiError> {
        match caller.user() {
            Some(user) => Ok(target.mailbox(user.identity())),
            None => target
                .named_mailbox()
                .ok_or_else(|| ApiError::UserTokenRequired("`/me` needs a signed-in user".into())),
        }
    }

    /// The Graph token for this caller: On-Behalf-Of the signed-in user, or the gateway's own
    /// for an app-only caller (one per tenant, shared by every daemon).
    async fn graph_token(
        &self,
        caller: &Caller,
        scope: &str,
        traceparent: Option<&str>,
    ) -> Result<Arc<GraphToken>, OboError> {
        match &caller.principal {
            Principal::User(user) => {
                self.tokens
                    .get(user.assertion.expose(), scope, traceparent)
                    .await
            }
            Principal::App(_) => self.app_tokens.get(&caller.tenant_id, traceparent).await,
        }
    }

    /// A fresh Graph token in place of `refused`, which Graph refused.
    async fn fresh_token(
        &self,
        caller: &Caller,
        scope: &str,
        refused: &Arc<GraphToken>,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<Arc<GraphToken>, OboError> {
        match &caller.principal {
            Principal::User(user) => {
                self.tokens
                    .refresh(user.assertion.expose(), scope, refused, claims, traceparent)
                    .await
            }
            Principal::App(_) => {
                self.app_tokens
                    .refresh(&caller.tenant_id, refused, claims, traceparent)
                    .await
            }
        }
    }

    /// Room in the in-flight budgets, reserved before a byte is read so that overload is
    /// refused at once instead of buffered.
    fn admit(&self, up: &PhotoUpdate<'_>) -> Result<Reservation, ApiError> {
        self.admission
            .admit(self.upload.reservation(up.body.content_length))
    }

    /// Reads the photo while the caller's rate is checked and then the Graph token obtained: on
    /// a cache miss the caller waits for the slower of the two, not their sum, and the rate's
    /// Redis round trip hides behind the body. The token step waits for the rate, so a caller
    /// found over it never causes a token exchange; its 429 is answered as soon as it is known
    /// (what is left of the body is drained or the connection closed, `http/conn.rs`), and wins
    /// over whatever the body would have caused, as when it was checked first. (With Redis and a
    /// mailbox limit, only this replica's pre-check is known here: the global count comes with
    /// the mailbox slot, and the rate's outcome, `R`, is handed on for it.)
    async fn receive<R>(
        &self,
        up: &PhotoUpdate<'_>,
        body: BodyStream,
        scope: &str,
        caller: impl Future<Output = Result<R, ApiError>>,
        received: &mut Option<Photo>,
    ) -> Result<(Photo, Arc<GraphToken>, R), ApiError> {
        enum Refused {
            Caller(ApiError),
            Token(OboError),
        }
        let photo = read_photo(up.body, body, self.upload);
        let token = async {
            let rate = caller.await.map_err(Refused::Caller)?;
            self.graph_token(up.caller, scope, up.traceparent)
                .await
                .map(|t| (t, rate))
                .map_err(Refused::Token)
        };
        let (mut photo, mut token) = (std::pin::pin!(photo), std::pin::pin!(token));
        let (photo, token) = tokio::select! {
            t = &mut token => match t {
                Err(Refused::Caller(e)) => return Err(e),
                t => (photo.await, t),
            },
            p = &mut photo => (p, token.await),
        };
        let token = match token {
            Err(Refused::Caller(e)) => return Err(e),
            Err(Refused::Token(e)) => Err(ApiError::from(e)),
            Ok(t) => Ok(t),
        };
        let photo = photo?;
        // Known from here on, for the audit line, even if the token exchange failed.
        *received = Some(photo.clone());
        let (token, rate) = token?;
        Ok((photo, token, rate))
    }

    /// The image stage: the received photo becomes the one to send (oriented, cropped, scaled,
    /// re-encoded or only stripped of metadata, as the mode and the photo need; in `passthrough`
    /// the same bytes). Decoding runs on the stage's bounded pool, never on this worker.
    async fn prepare(
        &self,
        received: &Photo,
        options: &ImageOptions,
    ) -> Result<(Photo, InputInfo, OutputInfo), ApiError> {
        let map_err = |e| {
            let e = match e {
                crate::image::ImageError::Unsupported { detected: None } => {
                    crate::image::ImageError::Unsupported {
                        detected: Some(received.content_type),
                    }
                }
                other => other,
            };
            image_error(e, self.images.limits(), mode_name(options.mode))
        };
        if options.mode == crate::image::Mode::Passthrough {
            // Nothing past the first bytes is read: the photo stays in the chunks it arrived in
            // (one contiguous copy of every byte was 14 % of the gateway's CPU at 1 MB, issue 12).
            let head = received.head(crate::image::PASSTHROUGH_HEAD);
            let (input, output) = self
                .images
                .passthrough(&head, received.len())
                .map_err(map_err)?;
            return Ok((received.clone(), input, output));
        }
        let input = received.contiguous();
        let prepared = self
            .images
            .prepare(input.clone(), options)
            .await
            .map_err(map_err)?;
        // Passthrough (and a photo that needed nothing) hands the received bytes back: keep their
        // digest instead of hashing them again.
        let unchanged = prepared.bytes.len() == input.len()
            && (prepared.bytes.as_ptr() == input.as_ptr() || prepared.bytes == input);
        let photo = if unchanged {
            received.clone()
        } else {
            Photo::from_bytes(prepared.bytes)
        };
        Ok((photo, prepared.input, prepared.output))
    }

    /// Waits briefly for room under Graph's per-mailbox limits. Another user named by UPN is
    /// first resolved to its object id (cached; with the upload's own token), so both of its
    /// names share one mailbox; a failed lookup leaves the UPN as the key and the upload goes on.
    async fn mailbox_slot(
        &self,
        up: &PhotoUpdate<'_>,
        photo: &Photo,
        token: &GraphToken,
        scope: &str,
        rate: Option<RateSubject<'_>>,
    ) -> Result<MailboxSlot, ApiError> {
        let name = Self::mailbox_name(up.caller, up.target)?;
        let mailbox = if self.admission.limits_mailboxes() {
            let traceparent = outbound_traceparent(up.traceparent);
            let via = LookupVia {
                token: &token.access_token,
                scope,
                client_request_id: up.request_id,
                traceparent: traceparent.as_deref(),
            };
            self.user_ids.mailbox(&self.graph, name, via).await
        } else {
            // No mailbox limit is on, so the key is never counted: a lookup would buy nothing.
            Cow::Borrowed(name.as_str())
        };
        self.admission
            .mailbox(&up.caller.client_app_id, &mailbox, photo.len(), rate)
            .await
    }

    /// Uploads to Graph; if Graph refuses the cached token, exchanges a fresh one (with Graph's
    /// claims challenge, if any) and tries once more. Returns Graph's request id.
    async fn send(
        &self,
        up: &PhotoUpdate<'_>,
        graph_path: &str,
        photo: &Photo,
        token: Arc<GraphToken>,
        scope: &str,
    ) -> Result<Option<String>, ApiError> {
        let traceparent = outbound_traceparent(up.traceparent);
        let upload = GraphUpload {
            method: up.method.clone(),
            path: graph_path,
            body: photo,
            client_request_id: up.request_id,
            traceparent: traceparent.as_deref(),
        };
        match self.graph.upload(&upload, &token.access_token).await {
            Err(GraphFailure::Unauthorized { claims, .. }) => {
                tracing::info!("Graph refused the cached token; exchanging a fresh one");
                let fresh = self
                    .fresh_token(up.caller, scope, &token, claims.as_deref(), up.traceparent)
                    .await?;
                Ok(self.graph.upload(&upload, &fresh.access_token).await?)
            }
            other => Ok(other?),
        }
    }
}

/// What the caller is told was done.
fn receipt(
    up: &PhotoUpdate<'_>,
    target: String,
    photo: &Photo,
    graph_request_id: Option<String>,
    input: InputInfo,
    output: OutputInfo,
) -> UploadReceipt {
    UploadReceipt {
        target,
        method: up.method.to_string(),
        bytes: photo.len(),
        sha256: photo.sha256.clone(),
        content_type: sniff::JPEG,
        graph_request_id,
        client_request_id: up.request_id.to_owned(),
        input,
        output,
    }
}

/// The audit trail: one line per authenticated attempt to change a photo, on its own target
/// (`photo_gateway::audit`) so it can be routed separately. Never the photo or a token: who, what,
/// how many bytes and their SHA-256 (of what is sent to Graph: the image stage's output; before
/// the stage ran, of what was received), the input's type and size, and the outcome code. An
/// app-only caller's line has `app_only=true`, the app in `client_app` and no `user_oid`.
mod audit {
    use super::{PhotoUpdate, Progress, UploadReceipt};
    use crate::auth::Caller;
    use crate::error::ApiError;
    use crate::image::InputInfo;
    use crate::upload::Photo;

    /// About to call Graph.
    pub(super) fn attempt(
        up: &PhotoUpdate<'_>,
        graph_path: &str,
        photo: &Photo,
        input: &InputInfo,
    ) {
        tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %up.caller.tenant_id,
            user_oid = user_oid(up.caller),
            client_app = %up.caller.client_app_id,
            app_only = up.caller.is_app_only(),
            target_path = %graph_path,
            method = %up.method,
            bytes = photo.len(),
            sha256 = %photo.sha256,
            input_type = input.content_type,
            input_bytes = input.bytes,
            output_bytes = photo.len(),
            outcome = "attempt",
            "photo change attempted"
        );
    }

    /// How the attempt ended.
    pub(super) fn outcome(
        up: &PhotoUpdate<'_>,
        outcome: &Result<UploadReceipt, ApiError>,
        progress: &Progress,
    ) {
        match outcome {
            Ok(r) => tracing::info!(
                target: "photo_gateway::audit",
                tenant_id = %up.caller.tenant_id,
                user_oid = user_oid(up.caller),
                client_app = %up.caller.client_app_id,
                app_only = up.caller.is_app_only(),
                target_path = %r.target,
                method = %r.method,
                bytes = r.bytes,
                sha256 = %r.sha256,
                input_type = r.input.content_type,
                input_bytes = r.input.bytes,
                output_bytes = r.output.bytes,
                outcome = "success",
                graph_request_id = r.graph_request_id.as_deref().unwrap_or(""),
                "photo changed"
            ),
            Err(e) => {
                let received = progress.received.as_ref();
                let prepared = progress.prepared.as_ref();
                let sent = prepared.or(received);
                tracing::info!(
                    target: "photo_gateway::audit",
                    tenant_id = %up.caller.tenant_id,
                    user_oid = user_oid(up.caller),
                    client_app = %up.caller.client_app_id,
                    app_only = up.caller.is_app_only(),
                    target_path = %up.target.graph_path(),
                    method = %up.method,
                    bytes = sent.map(Photo::len),
                    sha256 = sent.map(|p| p.sha256.as_str()),
                    input_type = received.map(|p| p.content_type),
                    input_bytes = received.map(Photo::len),
                    output_bytes = prepared.map(Photo::len),
                    outcome = e.code(),
                    graph_request_id = graph_request_id(e),
                    "photo change failed"
                )
            }
        }
    }

    /// The signed-in user's object id; none for an app-only caller, whose line says
    /// `app_only=true` and names the app in `client_app`.
    fn user_oid(caller: &Caller) -> Option<&str> {
        caller.user().map(|u| u.object_id.as_str())
    }

    /// Graph's request id, when Graph answered.
    fn graph_request_id(e: &ApiError) -> Option<&str> {
        match e {
            ApiError::GraphRejected { graph, .. }
            | ApiError::GraphRejectedToken { graph, .. }
            | ApiError::GraphUnavailable { graph, .. }
            | ApiError::GraphError { graph, .. } => graph.request_id.as_deref(),
            _ => None,
        }
    }

    pub(super) fn refused_before_target(caller: &Caller, method: &str, path: &str, e: &ApiError) {
        tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %caller.tenant_id,
            user_oid = user_oid(caller),
            client_app = %caller.client_app_id,
            app_only = caller.is_app_only(),
            request_path = %path,
            method = %method,
            outcome = e.code(),
            "photo change refused"
        );
    }
}
