//! One error type for every failure the caller can see, rendered as RFC 9457 problem+json.
//!
//! `../shared/design/errors.md` is the table this file implements: status, stable `code`, and headers.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::telemetry::current_request_id;

/// Graph's own error details, surfaced in the problem body.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphErrorInfo {
    /// HTTP status Graph answered with.
    pub status: u16,
    /// Graph's `error.code`, e.g. `ErrorItemNotFound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Graph's `error.message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Graph's `request-id` (header or `innerError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The `client-request-id` the gateway sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Graph's `innerError.date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// Every failure the gateway reports to a caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization` header.
    #[error(
        "the request carries no bearer token: send `Authorization: Bearer <access token for this gateway>`"
    )]
    MissingToken,
    /// Malformed or duplicated `Authorization`, or a token in the query string or a cookie.
    #[error("{0}")]
    InvalidRequest(String),
    /// The token failed validation.
    #[error("{0}")]
    InvalidToken(String),
    /// An app-only token on a route that needs a signed-in user.
    #[error(
        "the On-Behalf-Of flow needs a delegated (user) token; this token is app-only (it has no `scp` claim)"
    )]
    UserTokenRequired,
    /// A required delegated scope is missing.
    #[error("the token lacks the required delegated scope(s): {scope}")]
    InsufficientScope {
        /// The scopes the caller must obtain, space-separated.
        scope: String,
    },
    /// The calling app is not allowed (allowlist or per-app policy).
    #[error("{0}")]
    CallerNotAllowed(String),
    /// A path id is empty, `.`/`..`, or carries `/`, `\` or control characters.
    #[error("{0}")]
    InvalidTarget(String),
    /// The body is neither a multipart form with one `photo` file part nor raw image bytes.
    #[error("{0}")]
    InvalidBody(String),
    /// The photo is at or over the size limit.
    #[error("the photo must be smaller than {limit} bytes")]
    PhotoTooLarge {
        /// The exclusive limit in bytes.
        limit: usize,
    },
    /// The bytes are not a supported image, or the body is compressed.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body was not received within the read deadline.
    #[error("the request body was not received within {0} seconds")]
    BodyTimeout(u64),
    /// Entra says the user (or an admin) has not consented to a scope.
    #[error("{detail}")]
    ConsentRequired {
        /// Entra's description.
        detail: String,
        /// The Graph scope that needs consent.
        scope: String,
    },
    /// Entra wants the user to satisfy a claims challenge (MFA, Conditional Access).
    #[error("{detail}")]
    ClaimsChallenge {
        /// Entra's description.
        detail: String,
        /// Entra's `claims` JSON, passed to the caller base64-encoded.
        claims: String,
    },
    /// The gateway's own credential was rejected by Entra.
    #[error("{0}")]
    GatewayCredentialRejected(String),
    /// Entra refused the exchange for another reason the caller cannot fix (scope, app configuration).
    #[error("{0}")]
    IdentityRejected(String),
    /// Entra is unreachable, slow, failing, throttling or unreadable.
    #[error("{detail}")]
    IdentityUnavailable {
        /// What went wrong.
        detail: String,
        /// Seconds the caller should wait.
        retry_after: u64,
    },
    /// Graph refused the request with a client error.
    #[error("{detail}")]
    GraphRejected {
        /// What went wrong.
        detail: String,
        /// Graph's answer.
        graph: Box<GraphErrorInfo>,
    },
    /// Graph refused the gateway's token, even after a fresh exchange.
    #[error("{detail}")]
    GraphRejectedToken {
        /// What went wrong.
        detail: String,
        /// Graph's answer.
        graph: Box<GraphErrorInfo>,
    },
    /// Graph kept throttling or was unavailable after retries.
    #[error("{detail}")]
    GraphUnavailable {
        /// What went wrong.
        detail: String,
        /// Seconds the caller should wait.
        retry_after: u64,
        /// Graph's last answer.
        graph: Box<GraphErrorInfo>,
    },
    /// Graph answered with another server error after retries.
    #[error("{detail}")]
    GraphError {
        /// What went wrong.
        detail: String,
        /// Graph's last answer.
        graph: Box<GraphErrorInfo>,
    },
    /// Graph could not be reached (refused or reset).
    #[error("{0}")]
    GraphUnreachable(String),
    /// Graph did not answer within the deadline.
    #[error("{0}")]
    GraphTimeout(String),
    /// The gateway is not ready (keys not loaded) or is draining.
    #[error("{0}")]
    NotReady(String),
    /// Over the in-flight upload or byte budget.
    #[error("{0}")]
    Overloaded(String),
    /// A per-caller or per-mailbox rate limit.
    #[error("{detail}")]
    RateLimited {
        /// What went wrong.
        detail: String,
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// No such route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A bug or an unexpected state inside the gateway.
    #[error("{0}")]
    Internal(String),
}

/// The problem+json body (RFC 9457) every failure is rendered as.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "https://photo-gateway.dev/problems/photo-too-large",
    "title": "Payload Too Large",
    "status": 413,
    "detail": "the photo must be smaller than 4194304 bytes",
    "code": "photo-too-large",
    "requestId": "3f1b2c9e-6a4d-4c1e-9f0a-2b7d8e6c5a41"
}))]
pub struct Problem {
    /// A URI naming the problem type; ends with the `code`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
    /// Stable, machine-readable kebab-case code.
    pub code: &'static str,
    /// The request id (also in `X-Request-Id`, and sent to Graph as `client-request-id`).
    pub request_id: String,
    /// Which upstream failed: `entra` or `graph`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'static str>,
    /// Graph's error, when Graph answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_error: Option<GraphErrorInfo>,
    /// Entra's claims challenge (JSON), when the caller must acquire a new token with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
    /// The scope the caller needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Base of the problem `type` URIs.
pub const PROBLEM_TYPE_BASE: &str = "https://photo-gateway.dev/problems/";
/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl ApiError {
    /// The stable kebab-case code from the errors table.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing-token",
            ApiError::InvalidRequest(_) => "invalid-request",
            ApiError::InvalidToken(_) => "invalid-token",
            ApiError::UserTokenRequired => "user-token-required",
            ApiError::InsufficientScope { .. } => "insufficient-scope",
            ApiError::CallerNotAllowed(_) => "caller-not-allowed",
            ApiError::InvalidTarget(_) => "invalid-target",
            ApiError::InvalidBody(_) => "invalid-body",
            ApiError::PhotoTooLarge { .. } => "photo-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::BodyTimeout(_) => "body-timeout",
            ApiError::ConsentRequired { .. } => "consent-required",
            ApiError::ClaimsChallenge { .. } => "claims-challenge",
            ApiError::GatewayCredentialRejected(_) => "gateway-credential-rejected",
            ApiError::IdentityRejected(_) => "identity-rejected",
            ApiError::IdentityUnavailable { .. } => "identity-unavailable",
            ApiError::GraphRejected { .. } => "graph-rejected",
            ApiError::GraphRejectedToken { .. } => "graph-rejected-token",
            ApiError::GraphUnavailable { .. } => "graph-unavailable",
            ApiError::GraphError { .. } => "graph-error",
            ApiError::GraphUnreachable(_) => "graph-unreachable",
            ApiError::GraphTimeout(_) => "graph-timeout",
            ApiError::NotReady(_) => "not-ready",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::Internal(_) => "internal-error",
        }
    }

    /// Which upstream the failure came from, if any.
    pub fn upstream(&self) -> Option<&'static str> {
        match self {
            ApiError::ConsentRequired { .. }
            | ApiError::ClaimsChallenge { .. }
            | ApiError::GatewayCredentialRejected(_)
            | ApiError::IdentityRejected(_)
            | ApiError::IdentityUnavailable { .. } => Some("entra"),
            ApiError::GraphRejected { .. }
            | ApiError::GraphRejectedToken { .. }
            | ApiError::GraphUnavailable { .. }
            | ApiError::GraphError { .. }
            | ApiError::GraphUnreachable(_)
            | ApiError::GraphTimeout(_) => Some("graph"),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::IdentityUnavailable { retry_after, .. }
            | ApiError::GraphUnavailable { retry_after, .. }
            | ApiError::RateLimited { retry_after, .. } => Some((*retry_after).max(1)),
            ApiError::NotReady(_) | ApiError::Overloaded(_) => Some(1),
            _ => None,
        }
    }

    /// The RFC 6750 challenge for authentication and authorization failures.
    fn www_authenticate(&self) -> Option<String> {
        let realm = "Bearer realm=\"photo-gateway\"";
        match self {
            ApiError::MissingToken => Some(realm.to_owned()),
            ApiError::InvalidRequest(d) => Some(format!(
                "{realm}, error=\"invalid_request\", error_description=\"{}\"",
                quote_safe(d)
            )),
            ApiError::InvalidToken(d) => Some(format!(
                "{realm}, error=\"invalid_token\", error_description=\"{}\"",
                quote_safe(d)
            )),
            ApiError::UserTokenRequired => Some(format!(
                "{realm}, error=\"insufficient_scope\", error_description=\"a delegated user token is required\""
            )),
            ApiError::InsufficientScope { scope } | ApiError::ConsentRequired { scope, .. } => {
                Some(format!(
                    "{realm}, error=\"insufficient_scope\", scope=\"{}\"",
                    quote_safe(scope)
                ))
            }
            ApiError::ClaimsChallenge { claims, .. } => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(claims.as_bytes());
                Some(format!(
                    "{realm}, error=\"insufficient_claims\", claims=\"{b64}\""
                ))
            }
            _ => None,
        }
    }

    /// Builds the problem body for this error under the given request id.
    pub fn problem(&self, request_id: String) -> Problem {
        let status = self.status_code();
        let (graph_error, claims, scope) = match self {
            ApiError::GraphRejected { graph, .. }
            | ApiError::GraphRejectedToken { graph, .. }
            | ApiError::GraphUnavailable { graph, .. }
            | ApiError::GraphError { graph, .. } => (Some((**graph).clone()), None, None),
            ApiError::ClaimsChallenge { claims, .. } => (None, Some(claims.clone()), None),
            ApiError::ConsentRequired { scope, .. } | ApiError::InsufficientScope { scope } => {
                (None, None, Some(scope.clone()))
            }
            _ => (None, None, None),
        };
        Problem {
            type_: format!("{PROBLEM_TYPE_BASE}{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            request_id,
            upstream: self.upstream(),
            graph_error,
            claims,
            scope,
        }
    }
}

/// Keeps a value safe inside an RFC 7230 quoted-string.
fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingToken
            | ApiError::InvalidToken(_)
            | ApiError::ClaimsChallenge { .. } => StatusCode::UNAUTHORIZED,
            ApiError::InvalidRequest(_) | ApiError::InvalidTarget(_) | ApiError::InvalidBody(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::UserTokenRequired
            | ApiError::InsufficientScope { .. }
            | ApiError::CallerNotAllowed(_)
            | ApiError::ConsentRequired { .. } => StatusCode::FORBIDDEN,
            ApiError::PhotoTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::GatewayCredentialRejected(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::IdentityRejected(_)
            | ApiError::GraphRejectedToken { .. }
            | ApiError::GraphError { .. }
            | ApiError::GraphUnreachable(_) => StatusCode::BAD_GATEWAY,
            ApiError::IdentityUnavailable { .. }
            | ApiError::GraphUnavailable { .. }
            | ApiError::NotReady(_)
            | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::GraphRejected { graph, .. } => {
                StatusCode::from_u16(graph.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::GraphTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem(current_request_id());
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(challenge) = self.www_authenticate()
            && let Ok(v) = HeaderValue::from_str(&challenge)
        {
            resp.insert_header((header::WWW_AUTHENTICATE, v));
        }
        if let Some(secs) = self.retry_after() {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if matches!(self, ApiError::BodyTimeout(_)) {
            // The rest of a slow body is never read: the connection cannot be reused.
            resp.force_close();
        }
        if matches!(self, ApiError::MethodNotAllowed(_)) {
            resp.insert_header((header::ALLOW, "PUT, PATCH"));
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        resp.body(body)
    }
}

/// Seconds, rounded up, for a `Retry-After` header.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 { secs + 1 } else { secs }.max(1)
}
