//! The flow of one upload, after the handler has parsed the request: authenticate, read the photo
//! while the Graph token is obtained, upload, and on a refused Graph token retry once with a
//! fresh one.

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;
use actix_web::web;
use reqwest::Method;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, CallerPolicy, TokenValidator, bearer_token};
use crate::config::TargetScopes;
use crate::error::ApiError;
use crate::graph::{GraphClient, GraphFailure, GraphUpload, PhotoTarget};
use crate::limits::Limits;
use crate::metrics;
use crate::telemetry::outbound_traceparent;
use crate::token::TokenCache;
use crate::upload::{UploadLimits, read_photo, sniff};

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
    "clientRequestId": "3f1b2c9e-6a4d-4c1e-9f0a-2b7d8e6c5a41"
}))]
pub struct UploadReceipt {
    /// The Graph path that was called (below `/v1.0`).
    pub target: String,
    /// The method forwarded to Graph.
    pub method: String,
    /// Bytes forwarded.
    pub bytes: usize,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Content type sent to Graph.
    pub content_type: &'static str,
    /// Graph's `request-id`, if it sent one.
    pub graph_request_id: Option<String>,
    /// The `client-request-id` sent to Graph (also this request's id).
    pub client_request_id: String,
}

/// One upload as the handler hands it over.
pub struct PhotoUpdate<'a> {
    /// Who is calling.
    pub caller: &'a Caller,
    /// Which photo.
    pub target: &'a PhotoTarget,
    /// PUT or PATCH.
    pub method: Method,
    /// Request headers (content type, length, encoding, traceparent).
    pub headers: &'a HeaderMap,
    /// The request id, sent to Graph as `client-request-id`.
    pub request_id: &'a str,
}

/// The upload service shared by all workers, assembled by `Application::build`.
pub struct PhotoService {
    pub(crate) validator: TokenValidator,
    pub(crate) tokens: TokenCache,
    pub(crate) graph: GraphClient,
    pub(crate) scopes: TargetScopes,
    pub(crate) upload: UploadLimits,
    pub(crate) policy: CallerPolicy,
    pub(crate) limits: Limits,
}

/// Bytes of multipart envelope reserved on top of the photo limit for a body of unknown length.
const ENVELOPE_RESERVE: usize = 64 * 1024;

impl PhotoService {
    /// Validates the request's bearer token.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        self.validator.validate(bearer_token(req)?).await
    }

    /// Performs the upload and returns the receipt.
    pub async fn update(
        self: &Arc<Self>,
        up: PhotoUpdate<'_>,
        payload: web::Payload,
    ) -> Result<UploadReceipt, ApiError> {
        self.policy.authorize(up.caller, up.target)?;
        self.limits
            .check_caller(&up.caller.client_app_id, &up.caller.object_id)?;
        // Reserved before a byte is read, so overload is refused at once instead of buffered.
        let declared = up
            .headers
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let ceiling = self.upload.max_bytes + ENVELOPE_RESERVE;
        let _admission = self
            .limits
            .admit(declared.unwrap_or(ceiling).min(ceiling))?;
        let scope = up.target.scope(&self.scopes);
        let assertion = up.caller.assertion.expose();
        let caller_traceparent = up.headers.get("traceparent").and_then(|v| v.to_str().ok());
        // The token exchange runs while the body arrives: on a cache miss the caller waits for
        // the slower of the two, not their sum.
        let (photo, token) = tokio::join!(
            read_photo(up.headers, payload, self.upload),
            self.tokens.get(assertion, scope, caller_traceparent)
        );
        let photo = photo?;
        let token = token.map_err(|e| ApiError::from(&e))?;
        metrics::photo_bytes(photo.len());
        let mailbox = CallerPolicy::mailbox(up.caller, up.target);
        let _slot = self
            .limits
            .mailbox(&up.caller.client_app_id, mailbox, photo.len())
            .await?;

        let graph_path = up.target.graph_path();
        let traceparent = outbound_traceparent(caller_traceparent);
        let upload = GraphUpload {
            method: up.method.clone(),
            path: &graph_path,
            body: &photo,
            client_request_id: up.request_id,
            traceparent: traceparent.as_deref(),
        };
        let result = match self.graph.upload(&upload, &token.access_token).await {
            Err(GraphFailure::Unauthorized { claims, .. }) => {
                tracing::info!("Graph refused the cached token; exchanging a fresh one");
                let fresh = self
                    .tokens
                    .refresh(assertion, scope, claims.as_deref(), caller_traceparent)
                    .await
                    .map_err(|e| ApiError::from(&e))?;
                self.graph.upload(&upload, &fresh.access_token).await
            }
            other => other,
        };
        let outcome = match result {
            Ok(request_id) => Ok(UploadReceipt {
                target: graph_path,
                method: up.method.to_string(),
                bytes: photo.len(),
                sha256: photo.sha256.clone(),
                content_type: sniff::JPEG,
                graph_request_id: request_id,
                client_request_id: up.request_id.to_owned(),
            }),
            Err(GraphFailure::Unauthorized { info, .. }) => Err(ApiError::GraphRejectedToken {
                detail: "Microsoft Graph refused the gateway's token even after a fresh exchange"
                    .into(),
                graph: Box::new(info),
            }),
            Err(GraphFailure::Failed(e)) => Err(e),
        };
        audit(&up, &outcome, photo.len());
        outcome
    }
}

/// One line per photo change, on its own target so it can be routed separately.
fn audit(up: &PhotoUpdate<'_>, outcome: &Result<UploadReceipt, ApiError>, bytes: usize) {
    match outcome {
        Ok(r) => tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %up.caller.tenant_id,
            user_oid = %up.caller.object_id,
            client_app = %up.caller.client_app_id,
            target_path = %r.target,
            method = %r.method,
            bytes = r.bytes,
            sha256 = %r.sha256,
            outcome = "success",
            graph_request_id = r.graph_request_id.as_deref().unwrap_or(""),
            "photo changed"
        ),
        Err(e) => tracing::info!(
            target: "photo_gateway::audit",
            tenant_id = %up.caller.tenant_id,
            user_oid = %up.caller.object_id,
            client_app = %up.caller.client_app_id,
            target_path = %up.target.graph_path(),
            method = %up.method,
            bytes,
            outcome = e.code(),
            "photo change failed"
        ),
    }
}
