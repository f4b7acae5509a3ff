//! One error type for every failure the caller can see, rendered as RFC 9457 problem+json.
//!
//! - `table.rs`: the errors table, one row per variant (status, code, upstream, `Retry-After`,
//!   challenge); `docs/errors.md` documents it and a test keeps the two equal;
//! - `convert.rs`: how the failures of the token exchange, the path parser and the Graph client
//!   become `ApiError`s;
//! - here: the variants, and rendering a variant through its row.

mod convert;
pub mod table;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub use convert::{SUPPORTED_IMAGE_TYPES, image_error, target_error};
pub use table::{Challenge, ErrorRow, RetryAfter, RowStatus};

pub use crate::graph::GraphErrorInfo;
use crate::telemetry::current_request_id;

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
    /// An app-only token where a signed-in user is needed: a `/me` path, or an app the operator
    /// has not allowed app-only access. The detail says which.
    #[error("{0}")]
    UserTokenRequired(String),
    /// An allowed app-only caller whose token holds none of the app roles the operation needs.
    #[error("{0}")]
    InsufficientRole(String),
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
    /// The image cannot be decoded: corrupt, truncated, or an unsupported variant.
    #[error("{0}")]
    ImageUnreadable(String),
    /// The image's dimensions, read from its header, are over the limits.
    #[error(
        "the image is {width}×{height} pixels, over the limit of {max_pixels} pixels or {max_edge} on an edge: send a smaller image"
    )]
    ImageTooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The configured pixel limit.
        max_pixels: u64,
        /// The configured edge limit.
        max_edge: u32,
    },
    /// The image does not fit the byte budget even at the floor (quality 50, 96 px).
    #[error(
        "the photo cannot be made to fit {budget} bytes (the smallest encoding, quality 50 at 96 px, takes {smallest} bytes): allow a larger maxBytes"
    )]
    ImageNotFittable {
        /// The budget asked for.
        budget: usize,
        /// The smallest output reached.
        smallest: usize,
    },
    /// A query parameter of the upload has a value the gateway does not accept.
    #[error("{0}")]
    InvalidParameter(String),
    /// The request names an image mode the operator has not allowed.
    #[error("{0}")]
    ModeNotAllowed(String),
    /// Entra says the user (or an admin) has not consented to a scope.
    #[error(
        "the user or an administrator must consent to {scope} for this gateway before it can act for the user"
    )]
    ConsentRequired {
        /// The Graph scope that needs consent.
        scope: String,
        /// Entra's AADSTS number.
        aadsts: Option<u64>,
    },
    /// Entra wants the user to satisfy a claims challenge (MFA, Conditional Access).
    #[error(
        "Entra requires the user to satisfy a claims challenge (MFA or Conditional Access): acquire a new token with the claims in WWW-Authenticate and retry"
    )]
    ClaimsChallenge {
        /// Entra's `claims` JSON, passed to the caller base64-encoded.
        claims: String,
        /// Entra's AADSTS number.
        aadsts: Option<u64>,
    },
    /// Entra rejected the caller's token as an On-Behalf-Of assertion.
    #[error(
        "Entra rejected the token in the On-Behalf-Of exchange (expired, revoked, or not usable for this gateway): acquire a new token and retry"
    )]
    AssertionRejected {
        /// Entra's AADSTS number.
        aadsts: Option<u64>,
    },
    /// The gateway's own credential was rejected by Entra, or cannot be used.
    #[error(
        "the gateway's own credential was rejected or cannot be used; an operator must fix the client secret, certificate or federated identity configuration (the gateway's log has the details under this request id)"
    )]
    GatewayCredentialRejected {
        /// Entra's AADSTS number, when Entra refused it.
        aadsts: Option<u64>,
    },
    /// Entra refused the exchange for another reason the caller cannot fix (scope, app configuration).
    #[error(
        "Entra refused the On-Behalf-Of exchange for a reason of the gateway's configuration (the gateway's log has the details under this request id)"
    )]
    IdentityRejected {
        /// Entra's AADSTS number.
        aadsts: Option<u64>,
    },
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
    /// The route exists but not for this method; the methods it answers (`Allow`).
    #[error("{0}")]
    MethodNotAllowed(String, &'static str),
    /// A read of a photo that does not exist (Graph's `ImageNotFound`).
    #[error("{detail}")]
    PhotoNotFound {
        /// What went wrong.
        detail: String,
        /// Graph's answer.
        graph: Box<GraphErrorInfo>,
    },
    /// A handler panicked: a bug, caught at the handler boundary.
    #[error(
        "the gateway failed unexpectedly while handling this request; report the request id to its operators"
    )]
    Internal,
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
    /// Entra's AADSTS error number, when Entra refused (its text is in the gateway's log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aadsts: Option<u64>,
}

/// Base of the problem `type` URIs.
const PROBLEM_TYPE_BASE: &str = "https://photo-gateway.dev/problems/";
/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl ApiError {
    /// This error's row of the errors table.
    pub fn row(&self) -> &'static ErrorRow {
        use table::*;
        match self {
            ApiError::MissingToken => &MISSING_TOKEN,
            ApiError::InvalidRequest(_) => &INVALID_REQUEST,
            ApiError::InvalidToken(_) => &INVALID_TOKEN,
            ApiError::UserTokenRequired(_) => &USER_TOKEN_REQUIRED,
            ApiError::InsufficientRole(_) => &INSUFFICIENT_ROLE,
            ApiError::InsufficientScope { .. } => &INSUFFICIENT_SCOPE,
            ApiError::CallerNotAllowed(_) => &CALLER_NOT_ALLOWED,
            ApiError::InvalidTarget(_) => &INVALID_TARGET,
            ApiError::InvalidBody(_) => &INVALID_BODY,
            ApiError::PhotoTooLarge { .. } => &PHOTO_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => &UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout(_) => &BODY_TIMEOUT,
            ApiError::ImageUnreadable(_) => &IMAGE_UNREADABLE,
            ApiError::ImageTooLarge { .. } => &IMAGE_TOO_LARGE,
            ApiError::ImageNotFittable { .. } => &IMAGE_NOT_FITTABLE,
            ApiError::InvalidParameter(_) => &INVALID_PARAMETER,
            ApiError::ModeNotAllowed(_) => &MODE_NOT_ALLOWED,
            ApiError::ConsentRequired { .. } => &CONSENT_REQUIRED,
            ApiError::ClaimsChallenge { .. } => &CLAIMS_CHALLENGE,
            ApiError::AssertionRejected { .. } => &INVALID_TOKEN,
            ApiError::GatewayCredentialRejected { .. } => &GATEWAY_CREDENTIAL_REJECTED,
            ApiError::IdentityRejected { .. } => &IDENTITY_REJECTED,
            ApiError::IdentityUnavailable { .. } => &IDENTITY_UNAVAILABLE,
            ApiError::GraphRejected { .. } => &GRAPH_REJECTED,
            ApiError::GraphRejectedToken { .. } => &GRAPH_REJECTED_TOKEN,
            ApiError::GraphUnavailable { .. } => &GRAPH_UNAVAILABLE,
            ApiError::GraphError { .. } => &GRAPH_ERROR,
            ApiError::GraphUnreachable(_) => &GRAPH_UNREACHABLE,
            ApiError::GraphTimeout(_) => &GRAPH_TIMEOUT,
            ApiError::NotReady(_) => &NOT_READY,
            ApiError::Overloaded(_) => &OVERLOADED,
            ApiError::RateLimited { .. } => &RATE_LIMITED,
            ApiError::NotFound(_) => &NOT_FOUND,
            ApiError::MethodNotAllowed(..) => &METHOD_NOT_ALLOWED,
            ApiError::PhotoNotFound { .. } => &PHOTO_NOT_FOUND,
            ApiError::Internal => &INTERNAL_ERROR,
        }
    }

    /// The stable kebab-case code from the errors table.
    pub fn code(&self) -> &'static str {
        self.row().code
    }

    /// Which upstream the failure came from, if any.
    pub fn upstream(&self) -> Option<&'static str> {
        self.row().upstream
    }

    /// Graph's answer, for the failures Graph gave.
    fn graph(&self) -> Option<&GraphErrorInfo> {
        match self {
            ApiError::GraphRejected { graph, .. }
            | ApiError::GraphRejectedToken { graph, .. }
            | ApiError::GraphUnavailable { graph, .. }
            | ApiError::GraphError { graph, .. }
            | ApiError::PhotoNotFound { graph, .. } => Some(graph),
            _ => None,
        }
    }

    /// Entra's AADSTS number, when Entra refused.
    fn aadsts(&self) -> Option<u64> {
        match self {
            ApiError::ConsentRequired { aadsts, .. }
            | ApiError::ClaimsChallenge { aadsts, .. }
            | ApiError::AssertionRejected { aadsts }
            | ApiError::GatewayCredentialRejected { aadsts }
            | ApiError::IdentityRejected { aadsts } => *aadsts,
            _ => None,
        }
    }

    /// The scope the caller lacks, when that is the problem.
    fn scope(&self) -> Option<&str> {
        match self {
            ApiError::InsufficientScope { scope } | ApiError::ConsentRequired { scope, .. } => {
                Some(scope)
            }
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self.row().retry_after {
            RetryAfter::None => None,
            RetryAfter::OneSecond => Some(1),
            RetryAfter::Carried => match self {
                ApiError::IdentityUnavailable { retry_after, .. }
                | ApiError::GraphUnavailable { retry_after, .. }
                | ApiError::RateLimited { retry_after, .. } => Some((*retry_after).max(1)),
                _ => Some(1),
            },
        }
    }

    /// The RFC 6750 challenge for authentication and authorization failures.
    fn www_authenticate(&self) -> Option<String> {
        let realm = "Bearer realm=\"photo-gateway\"";
        let challenge = self.row().challenge_for(self.status_code());
        let Some(error) = challenge.error_param() else {
            return (challenge == Challenge::Realm).then(|| realm.to_owned());
        };
        Some(match challenge {
            Challenge::InvalidRequest | Challenge::InvalidToken => format!(
                "{realm}, error=\"{error}\", error_description=\"{}\"",
                quote_safe(&self.to_string())
            ),
            Challenge::InsufficientScope => match self.scope() {
                Some(scope) => format!(
                    "{realm}, error=\"{error}\", scope=\"{}\"",
                    quote_safe(scope)
                ),
                None => format!(
                    "{realm}, error=\"{error}\", error_description=\"{}\"",
                    quote_safe(&self.to_string())
                ),
            },
            Challenge::InsufficientClaims => {
                use base64::Engine as _;
                let claims = match self {
                    ApiError::ClaimsChallenge { claims, .. } => claims.as_str(),
                    _ => "",
                };
                let b64 = base64::engine::general_purpose::STANDARD.encode(claims.as_bytes());
                format!("{realm}, error=\"{error}\", claims=\"{b64}\"")
            }
            Challenge::None | Challenge::Realm => realm.to_owned(),
        })
    }

    /// Builds the problem body for this error under the given request id.
    pub fn problem(&self, request_id: String) -> Problem {
        let status = self.status_code();
        Problem {
            type_: format!("{PROBLEM_TYPE_BASE}{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            request_id,
            upstream: self.upstream(),
            graph_error: self.graph().cloned(),
            claims: match self {
                ApiError::ClaimsChallenge { claims, .. } => Some(claims.clone()),
                _ => None,
            },
            scope: self.scope().map(str::to_owned),
            aadsts: self.aadsts(),
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
        match self.row().status {
            RowStatus::Fixed(s) => s,
            RowStatus::AsGraph => self
                .graph()
                .and_then(|g| StatusCode::from_u16(g.status).ok())
                .filter(StatusCode::is_client_error)
                .unwrap_or(StatusCode::BAD_GATEWAY),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let row = self.row();
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
        if row.closes_connection {
            // The rest of the body is never read: the connection cannot be reused.
            resp.force_close();
        }
        // The path's own methods when the error knows them, else the row's.
        let allow = match self {
            ApiError::MethodNotAllowed(_, allow) => Some(*allow),
            _ => row.allow,
        };
        if let Some(allow) = allow {
            resp.insert_header((header::ALLOW, allow));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant; the match below fails to compile when a variant is added
    /// without a row.
    fn every_variant() -> Vec<ApiError> {
        let graph = || {
            Box::new(GraphErrorInfo {
                status: 404,
                ..GraphErrorInfo::default()
            })
        };
        let all = vec![
            ApiError::MissingToken,
            ApiError::InvalidRequest("x".into()),
            ApiError::InvalidToken("x".into()),
            ApiError::UserTokenRequired("x".into()),
            ApiError::InsufficientRole("x".into()),
            ApiError::InsufficientScope { scope: "s".into() },
            ApiError::CallerNotAllowed("x".into()),
            ApiError::InvalidTarget("x".into()),
            ApiError::InvalidBody("x".into()),
            ApiError::PhotoTooLarge { limit: 1 },
            ApiError::UnsupportedMediaType("x".into()),
            ApiError::BodyTimeout(1),
            ApiError::ImageUnreadable("x".into()),
            ApiError::ImageTooLarge {
                width: 1,
                height: 1,
                max_pixels: 1,
                max_edge: 1,
            },
            ApiError::ImageNotFittable {
                budget: 1,
                smallest: 2,
            },
            ApiError::InvalidParameter("x".into()),
            ApiError::ModeNotAllowed("x".into()),
            ApiError::ConsentRequired {
                scope: "s".into(),
                aadsts: Some(65001),
            },
            ApiError::ClaimsChallenge {
                claims: "{}".into(),
                aadsts: None,
            },
            ApiError::AssertionRejected {
                aadsts: Some(50013),
            },
            ApiError::GatewayCredentialRejected { aadsts: None },
            ApiError::IdentityRejected { aadsts: None },
            ApiError::IdentityUnavailable {
                detail: "x".into(),
                retry_after: 7,
            },
            ApiError::GraphRejected {
                detail: "x".into(),
                graph: graph(),
            },
            ApiError::GraphRejectedToken {
                detail: "x".into(),
                graph: graph(),
            },
            ApiError::GraphUnavailable {
                detail: "x".into(),
                retry_after: 7,
                graph: graph(),
            },
            ApiError::GraphError {
                detail: "x".into(),
                graph: graph(),
            },
            ApiError::GraphUnreachable("x".into()),
            ApiError::GraphTimeout("x".into()),
            ApiError::NotReady("x".into()),
            ApiError::Overloaded("x".into()),
            ApiError::RateLimited {
                detail: "x".into(),
                retry_after: 7,
            },
            ApiError::NotFound("x".into()),
            ApiError::MethodNotAllowed("x".into(), "GET, PUT, PATCH, DELETE"),
            ApiError::PhotoNotFound {
                detail: "x".into(),
                graph: graph(),
            },
            ApiError::Internal,
        ];
        for e in &all {
            match e {
                ApiError::MissingToken
                | ApiError::InvalidRequest(_)
                | ApiError::InvalidToken(_)
                | ApiError::UserTokenRequired(_)
                | ApiError::InsufficientRole(_)
                | ApiError::InsufficientScope { .. }
                | ApiError::CallerNotAllowed(_)
                | ApiError::InvalidTarget(_)
                | ApiError::InvalidBody(_)
                | ApiError::PhotoTooLarge { .. }
                | ApiError::UnsupportedMediaType(_)
                | ApiError::BodyTimeout(_)
                | ApiError::ImageUnreadable(_)
                | ApiError::ImageTooLarge { .. }
                | ApiError::ImageNotFittable { .. }
                | ApiError::InvalidParameter(_)
                | ApiError::ModeNotAllowed(_)
                | ApiError::ConsentRequired { .. }
                | ApiError::ClaimsChallenge { .. }
                | ApiError::AssertionRejected { .. }
                | ApiError::GatewayCredentialRejected { .. }
                | ApiError::IdentityRejected { .. }
                | ApiError::IdentityUnavailable { .. }
                | ApiError::GraphRejected { .. }
                | ApiError::GraphRejectedToken { .. }
                | ApiError::GraphUnavailable { .. }
                | ApiError::GraphError { .. }
                | ApiError::GraphUnreachable(_)
                | ApiError::GraphTimeout(_)
                | ApiError::NotReady(_)
                | ApiError::Overloaded(_)
                | ApiError::RateLimited { .. }
                | ApiError::NotFound(_)
                | ApiError::MethodNotAllowed(..)
                | ApiError::PhotoNotFound { .. }
                | ApiError::Internal => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_has_its_own_row_and_every_row_a_variant() {
        let all = every_variant();
        for e in &all {
            assert!(
                table::ROWS.iter().any(|r| std::ptr::eq(*r, e.row())),
                "{} is not in ROWS",
                e.code()
            );
        }
        for row in table::ROWS {
            assert!(
                all.iter().any(|e| std::ptr::eq(e.row(), *row)),
                "row {} has no variant",
                row.code
            );
        }
    }

    #[test]
    fn every_401_and_403_names_its_rfc_6750_error() {
        let graph_says = |status| ApiError::GraphRejected {
            detail: "Graph refused".into(),
            graph: Box::new(GraphErrorInfo {
                status,
                ..GraphErrorInfo::default()
            }),
        };
        let mut all = every_variant();
        all.extend(table::GRAPH_REJECTED_STATUSES.map(graph_says));
        let mut seen = 0;
        for e in all {
            let resp = e.error_response();
            if !matches!(resp.status().as_u16(), 401 | 403) {
                continue;
            }
            seen += 1;
            let challenge = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{} {}: no challenge", e.row().code, resp.status()));
            assert!(
                challenge.starts_with("Bearer realm=\"photo-gateway\""),
                "{challenge}"
            );
            if e.row().code != "missing-token" {
                assert!(
                    challenge.contains(", error=\""),
                    "{}: {challenge}",
                    e.row().code
                );
            }
        }
        // missing-token, invalid-token ×2, user-token-required, insufficient-role and -scope,
        // caller-not-allowed, mode-not-allowed, consent-required, claims-challenge, Graph's 403.
        assert!(seen >= 10, "only {seen} answers were 401 or 403");
    }

    #[test]
    fn rendering_follows_the_row() {
        for e in every_variant() {
            let row = e.row();
            let resp = e.error_response();
            let h = resp.headers();
            assert_eq!(
                h.contains_key(header::WWW_AUTHENTICATE),
                row.challenge_for(resp.status()) != Challenge::None,
                "{}",
                row.code
            );
            assert_eq!(
                h.contains_key(header::RETRY_AFTER),
                row.retry_after != RetryAfter::None,
                "{}",
                row.code
            );
            assert_eq!(
                h.contains_key(header::ALLOW),
                row.allow.is_some(),
                "{}",
                row.code
            );
            if let RowStatus::Fixed(s) = row.status {
                assert_eq!(resp.status(), s, "{}", row.code);
            }
            assert_eq!(e.problem("r".into()).upstream, row.upstream, "{}", row.code);
        }
        let carried = ApiError::RateLimited {
            detail: "x".into(),
            retry_after: 7,
        };
        assert_eq!(
            carried
                .error_response()
                .headers()
                .get(header::RETRY_AFTER)
                .unwrap(),
            "7"
        );
        let graph = ApiError::GraphRejected {
            detail: "x".into(),
            graph: Box::new(GraphErrorInfo {
                status: 409,
                ..GraphErrorInfo::default()
            }),
        };
        assert_eq!(graph.status_code(), StatusCode::CONFLICT);
    }
}
