//! The errors table: one row per kind of failure, the only place a status, a stable code, the
//! upstream, `Retry-After` and the RFC 6750 challenge are decided. Rendering (`mod.rs`), the
//! OpenAPI responses (`http::openapi_errors`) and `docs/errors.md` (checked by a test) all follow it.

use actix_web::http::StatusCode;

/// The HTTP status of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// Always this status.
    Fixed(StatusCode),
    /// The status Graph answered with (one of [`GRAPH_REJECTED_STATUSES`], or any other 4xx
    /// except 401 and 429).
    AsGraph,
}

/// Graph's refusals passed through with their own status.
pub const GRAPH_REJECTED_STATUSES: [u16; 6] = [400, 403, 404, 409, 413, 415];

/// The RFC 6750 challenge a row carries in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// No challenge.
    None,
    /// `Bearer realm="photo-gateway"`: no credentials were sent (RFC 6750 §3.1: no `error`).
    Realm,
    /// `error="invalid_request"` with a description.
    InvalidRequest,
    /// `error="invalid_token"` with a description.
    InvalidToken,
    /// `error="insufficient_scope"`, with `scope="…"` when the row knows the scope.
    InsufficientScope,
    /// `error="insufficient_claims"` with Entra's claims, base64.
    InsufficientClaims,
}

impl Challenge {
    /// The `error` parameter of the challenge.
    pub fn error_param(self) -> Option<&'static str> {
        match self {
            Challenge::None | Challenge::Realm => None,
            Challenge::InvalidRequest => Some("invalid_request"),
            Challenge::InvalidToken => Some("invalid_token"),
            Challenge::InsufficientScope => Some("insufficient_scope"),
            Challenge::InsufficientClaims => Some("insufficient_claims"),
        }
    }
}

/// Whether and how a row sets `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// No header.
    None,
    /// Always one second: a short local condition.
    OneSecond,
    /// The seconds the error carries (an upstream's `Retry-After`, a limiter's wait).
    Carried,
}

/// One row of the errors table.
#[derive(Debug)]
pub struct ErrorRow {
    /// Stable kebab-case code; the problem `type` ends with it.
    pub code: &'static str,
    /// HTTP status.
    pub status: RowStatus,
    /// Which upstream failed: `entra` or `graph`.
    pub upstream: Option<&'static str>,
    /// `Retry-After`.
    pub retry_after: RetryAfter,
    /// `WWW-Authenticate`.
    pub challenge: Challenge,
    /// The connection is closed after the answer (the rest of the body is never read).
    pub closes_connection: bool,
    /// The `Allow` header, when the method is the problem.
    pub allow: Option<&'static str>,
    /// When it happens, in a few words (OpenAPI descriptions).
    pub situation: &'static str,
}

impl ErrorRow {
    /// The challenge an answer with this status carries. A 403 that Graph gave is passed on as an
    /// authorization failure like the gateway's own: every 401 and 403 names its RFC 6750 error.
    pub fn challenge_for(&self, status: StatusCode) -> Challenge {
        match self.status {
            RowStatus::AsGraph if status == StatusCode::FORBIDDEN => Challenge::InsufficientScope,
            _ => self.challenge,
        }
    }
}

const fn row(code: &'static str, status: StatusCode, situation: &'static str) -> ErrorRow {
    ErrorRow {
        code,
        status: RowStatus::Fixed(status),
        upstream: None,
        retry_after: RetryAfter::None,
        challenge: Challenge::None,
        closes_connection: false,
        allow: None,
        situation,
    }
}

const fn challenged(
    code: &'static str,
    status: StatusCode,
    challenge: Challenge,
    situation: &'static str,
) -> ErrorRow {
    ErrorRow {
        challenge,
        ..row(code, status, situation)
    }
}

const fn upstream(
    code: &'static str,
    status: StatusCode,
    upstream: &'static str,
    situation: &'static str,
) -> ErrorRow {
    ErrorRow {
        upstream: Some(upstream),
        ..row(code, status, situation)
    }
}

const fn retry(
    code: &'static str,
    status: StatusCode,
    retry_after: RetryAfter,
    situation: &'static str,
) -> ErrorRow {
    ErrorRow {
        retry_after,
        ..row(code, status, situation)
    }
}

pub(super) static MISSING_TOKEN: ErrorRow = challenged(
    "missing-token",
    StatusCode::UNAUTHORIZED,
    Challenge::Realm,
    "no `Authorization` header",
);
pub(super) static INVALID_REQUEST: ErrorRow = challenged(
    "invalid-request",
    StatusCode::BAD_REQUEST,
    Challenge::InvalidRequest,
    "malformed or several `Authorization` headers, or a token in the query string or a cookie",
);
pub(super) static INVALID_TOKEN: ErrorRow = challenged(
    "invalid-token",
    StatusCode::UNAUTHORIZED,
    Challenge::InvalidToken,
    "the token is invalid (signature, alg, kid, exp/nbf, lifetime, iss, aud), or Entra rejected it as an On-Behalf-Of assertion",
);
pub(super) static USER_TOKEN_REQUIRED: ErrorRow = challenged(
    "user-token-required",
    StatusCode::FORBIDDEN,
    Challenge::InsufficientScope,
    "an app-only token (no `scp`) on a `/me` path, or from an app not allowed app-only access",
);
pub(super) static INSUFFICIENT_SCOPE: ErrorRow = challenged(
    "insufficient-scope",
    StatusCode::FORBIDDEN,
    Challenge::InsufficientScope,
    "a required delegated scope is missing",
);
pub(super) static INSUFFICIENT_ROLE: ErrorRow = challenged(
    "insufficient-role",
    StatusCode::FORBIDDEN,
    Challenge::InsufficientScope,
    "an allowed app-only caller whose token holds none of the app roles the operation needs",
);
pub(super) static CALLER_NOT_ALLOWED: ErrorRow = challenged(
    "caller-not-allowed",
    StatusCode::FORBIDDEN,
    Challenge::InsufficientScope,
    "the calling app is not allowed (allowlist or per-app policy)",
);
pub(super) static INVALID_TARGET: ErrorRow = row(
    "invalid-target",
    StatusCode::BAD_REQUEST,
    "a path id is empty, `.`/`..`, or contains `/`, `\\` or a control character",
);
pub(super) static INVALID_BODY: ErrorRow = row(
    "invalid-body",
    StatusCode::BAD_REQUEST,
    "the body is neither a multipart form with one `photo` file part nor raw image bytes",
);
pub(super) static PHOTO_TOO_LARGE: ErrorRow = row(
    "photo-too-large",
    StatusCode::PAYLOAD_TOO_LARGE,
    "the photo is at or over the size limit",
);
pub(super) static UNSUPPORTED_MEDIA_TYPE: ErrorRow = row(
    "unsupported-media-type",
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "the bytes are not a supported image, or the body has a `Content-Encoding`",
);
pub(super) static BODY_TIMEOUT: ErrorRow = ErrorRow {
    closes_connection: true,
    ..row(
        "body-timeout",
        StatusCode::REQUEST_TIMEOUT,
        "the body was not received within the read deadline",
    )
};
pub(super) static IMAGE_UNREADABLE: ErrorRow = row(
    "image-unreadable",
    StatusCode::UNPROCESSABLE_ENTITY,
    "the image cannot be decoded: corrupt, truncated, or an unsupported variant",
);
pub(super) static IMAGE_TOO_LARGE: ErrorRow = row(
    "image-too-large",
    StatusCode::PAYLOAD_TOO_LARGE,
    "the image's dimensions, read from its header before any decode, are over the limits",
);
pub(super) static IMAGE_NOT_FITTABLE: ErrorRow = row(
    "image-not-fittable",
    StatusCode::UNPROCESSABLE_ENTITY,
    "the image cannot fit the byte budget at the floor (quality 50, 96 px)",
);
pub(super) static INVALID_PARAMETER: ErrorRow = row(
    "invalid-parameter",
    StatusCode::BAD_REQUEST,
    "a query parameter (`mode`, `crop`, `maxBytes`) or a photo size has a value the gateway does not accept, or is repeated",
);
pub(super) static MODE_NOT_ALLOWED: ErrorRow = challenged(
    "mode-not-allowed",
    StatusCode::FORBIDDEN,
    Challenge::InsufficientScope,
    "the request names an image mode the operator has not allowed",
);
pub(super) static CONSENT_REQUIRED: ErrorRow = ErrorRow {
    upstream: Some("entra"),
    ..challenged(
        "consent-required",
        StatusCode::FORBIDDEN,
        Challenge::InsufficientScope,
        "Entra: the user or an admin has not consented to the Graph scope",
    )
};
pub(super) static CLAIMS_CHALLENGE: ErrorRow = ErrorRow {
    upstream: Some("entra"),
    ..challenged(
        "claims-challenge",
        StatusCode::UNAUTHORIZED,
        Challenge::InsufficientClaims,
        "Entra: MFA or Conditional Access needs the user; acquire a new token with the claims",
    )
};
pub(super) static GATEWAY_CREDENTIAL_REJECTED: ErrorRow = upstream(
    "gateway-credential-rejected",
    StatusCode::INTERNAL_SERVER_ERROR,
    "entra",
    "Entra rejected the gateway's own credential: an operator must fix it",
);
pub(super) static IDENTITY_REJECTED: ErrorRow = upstream(
    "identity-rejected",
    StatusCode::BAD_GATEWAY,
    "entra",
    "Entra refused the On-Behalf-Of exchange for a reason the caller cannot fix",
);
pub(super) static IDENTITY_UNAVAILABLE: ErrorRow = ErrorRow {
    upstream: Some("entra"),
    ..retry(
        "identity-unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        RetryAfter::Carried,
        "Entra is unreachable, slow, failing, throttling or unreadable",
    )
};
pub(super) static GRAPH_REJECTED: ErrorRow = ErrorRow {
    status: RowStatus::AsGraph,
    ..upstream(
        "graph-rejected",
        StatusCode::BAD_REQUEST,
        "graph",
        "Graph refused the request (its status, error code and request ids are passed on)",
    )
};
pub(super) static GRAPH_REJECTED_TOKEN: ErrorRow = upstream(
    "graph-rejected-token",
    StatusCode::BAD_GATEWAY,
    "graph",
    "Graph refused the gateway's token even after a fresh exchange",
);
pub(super) static GRAPH_UNAVAILABLE: ErrorRow = ErrorRow {
    upstream: Some("graph"),
    ..retry(
        "graph-unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        RetryAfter::Carried,
        "Graph kept throttling or was unavailable (429, 503, 504) after retries",
    )
};
pub(super) static GRAPH_ERROR: ErrorRow = upstream(
    "graph-error",
    StatusCode::BAD_GATEWAY,
    "graph",
    "Graph answered with another server error after retries",
);
pub(super) static GRAPH_UNREACHABLE: ErrorRow = upstream(
    "graph-unreachable",
    StatusCode::BAD_GATEWAY,
    "graph",
    "Graph refused or reset the connection",
);
pub(super) static GRAPH_TIMEOUT: ErrorRow = upstream(
    "graph-timeout",
    StatusCode::GATEWAY_TIMEOUT,
    "graph",
    "Graph did not answer within the deadline",
);
pub(super) static NOT_READY: ErrorRow = retry(
    "not-ready",
    StatusCode::SERVICE_UNAVAILABLE,
    RetryAfter::OneSecond,
    "the gateway is not ready (signing keys not loaded) or is draining",
);
pub(super) static OVERLOADED: ErrorRow = retry(
    "overloaded",
    StatusCode::SERVICE_UNAVAILABLE,
    RetryAfter::OneSecond,
    "over the in-flight upload or byte budget",
);
pub(super) static RATE_LIMITED: ErrorRow = retry(
    "rate-limited",
    StatusCode::TOO_MANY_REQUESTS,
    RetryAfter::Carried,
    "a per-caller or per-mailbox rate limit",
);
pub(super) static NOT_FOUND: ErrorRow = row("not-found", StatusCode::NOT_FOUND, "no such route");
pub(super) static PHOTO_NOT_FOUND: ErrorRow = upstream(
    "photo-not-found",
    StatusCode::NOT_FOUND,
    "graph",
    "a read of a photo that does not exist (Graph's `ImageNotFound`)",
);
pub(super) static METHOD_NOT_ALLOWED: ErrorRow = ErrorRow {
    // The most a photo path answers; each answer names its own path's methods.
    allow: Some("GET, PUT, PATCH, DELETE"),
    ..row(
        "method-not-allowed",
        StatusCode::METHOD_NOT_ALLOWED,
        "a method the photo path does not answer (DELETE of a contact's or a team's photo, a write of metadata or a size)",
    )
};
pub(super) static INTERNAL_ERROR: ErrorRow = row(
    "internal-error",
    StatusCode::INTERNAL_SERVER_ERROR,
    "a bug caught at the handler boundary (never expected)",
);

/// Every row, in the order of `docs/errors.md`.
pub static ROWS: &[&ErrorRow] = &[
    &MISSING_TOKEN,
    &INVALID_REQUEST,
    &INVALID_TOKEN,
    &USER_TOKEN_REQUIRED,
    &INSUFFICIENT_SCOPE,
    &INSUFFICIENT_ROLE,
    &CALLER_NOT_ALLOWED,
    &INVALID_TARGET,
    &INVALID_BODY,
    &PHOTO_TOO_LARGE,
    &UNSUPPORTED_MEDIA_TYPE,
    &BODY_TIMEOUT,
    &IMAGE_UNREADABLE,
    &IMAGE_TOO_LARGE,
    &IMAGE_NOT_FITTABLE,
    &INVALID_PARAMETER,
    &MODE_NOT_ALLOWED,
    &CONSENT_REQUIRED,
    &CLAIMS_CHALLENGE,
    &GATEWAY_CREDENTIAL_REJECTED,
    &IDENTITY_REJECTED,
    &IDENTITY_UNAVAILABLE,
    &GRAPH_REJECTED,
    &GRAPH_REJECTED_TOKEN,
    &GRAPH_UNAVAILABLE,
    &GRAPH_ERROR,
    &GRAPH_UNREACHABLE,
    &GRAPH_TIMEOUT,
    &NOT_READY,
    &OVERLOADED,
    &RATE_LIMITED,
    &PHOTO_NOT_FOUND,
    &NOT_FOUND,
    &METHOD_NOT_ALLOWED,
    &INTERNAL_ERROR,
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// One documented row: (status cell, code, headers cell).
    struct DocRow {
        status: String,
        code: String,
        headers: String,
    }

    /// The rows of the markdown table that follows `heading`, with a code in backticks.
    fn table_after(doc: &str, heading: &str) -> Vec<DocRow> {
        let Some(start) = doc.find(heading) else {
            return Vec::new();
        };
        doc[start..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .filter_map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
                let code_cell = cells.get(2)?;
                let code = code_cell.split('`').nth(1)?.to_owned();
                Some(DocRow {
                    status: cells.get(1)?.trim().to_owned(),
                    code,
                    headers: cells.get(3).map(|h| h.trim()).unwrap_or("").to_owned(),
                })
            })
            .collect()
    }

    fn row_of(code: &str) -> Option<&'static ErrorRow> {
        ROWS.iter().copied().find(|r| r.code == code)
    }

    fn check(doc: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let main = table_after(doc, "## The table");
        if main.is_empty() {
            problems.push("no table under `## The table`".to_owned());
        }
        for d in &main {
            let Some(row) = row_of(&d.code) else {
                problems.push(format!(
                    "documented code `{}` is not in the code's table",
                    d.code
                ));
                continue;
            };
            let status_ok = match row.status {
                RowStatus::Fixed(s) => d.status == s.as_u16().to_string(),
                RowStatus::AsGraph => d.status.starts_with("same"),
            };
            if !status_ok {
                problems.push(format!(
                    "`{}`: documented status {:?} differs from {:?}",
                    d.code, d.status, row.status
                ));
            }
            let has = |s: &str| d.headers.contains(s);
            // Graph's 403 is challenged: the row documents it for that status.
            let challenge = row.challenge_for(StatusCode::FORBIDDEN);
            if has("WWW-Authenticate") != (challenge != Challenge::None) {
                problems.push(format!(
                    "`{}`: WWW-Authenticate documented {} but challenge is {:?}",
                    d.code,
                    has("WWW-Authenticate"),
                    challenge
                ));
            }
            match challenge.error_param() {
                Some(e) if !has(&format!("error=\"{e}\"")) => {
                    problems.push(format!("`{}`: challenge should say error=\"{e}\"", d.code))
                }
                None if has("error=") => {
                    problems.push(format!("`{}`: challenge has no error parameter", d.code))
                }
                _ => {}
            }
            if has("Retry-After") != (row.retry_after != RetryAfter::None) {
                problems.push(format!(
                    "`{}`: Retry-After documented {} but the row says {:?}",
                    d.code,
                    has("Retry-After"),
                    row.retry_after
                ));
            }
            if has("Connection: close") != row.closes_connection {
                problems.push(format!("`{}`: Connection: close differs", d.code));
            }
            match row.allow {
                Some(a) if !has(&format!("Allow: {a}")) => {
                    problems.push(format!("`{}`: should document Allow: {a}", d.code))
                }
                None if has("Allow:") => problems.push(format!(
                    "`{}`: documents an Allow header it does not send",
                    d.code
                )),
                _ => {}
            }
        }
        let documented: BTreeSet<&str> = main.iter().map(|d| d.code.as_str()).collect();
        for row in ROWS {
            if !documented.contains(row.code) {
                problems.push(format!("code `{}` is not documented", row.code));
            }
        }
        for d in table_after(doc, "## Reserved") {
            if !documented.contains(d.code.as_str()) && row_of(&d.code).is_some() {
                problems.push(format!(
                    "reserved code `{}` is produced: move its row into the table",
                    d.code
                ));
            }
        }
        problems
    }

    #[test]
    fn docs_errors_md_matches_the_table() {
        let doc = include_str!("../../docs/errors.md");
        let problems = check(doc);
        assert!(
            problems.is_empty(),
            "docs/errors.md and src/error/table.rs differ:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn the_check_notices_a_missing_and_a_wrong_row() {
        let doc = include_str!("../../docs/errors.md");
        let without = doc.replace("| `rate-limited` |", "| `rate-limitted` |");
        let problems = check(&without);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`rate-limited` is not documented")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`rate-limitted` is not in the code")),
            "{problems:?}"
        );
        let wrong = doc.replace(
            "| 503 | `overloaded` | `Retry-After` |",
            "| 503 | `overloaded` | |",
        );
        assert!(
            check(&wrong)
                .iter()
                .any(|p| p.contains("`overloaded`: Retry-After"))
        );
    }

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = BTreeSet::new();
        for row in ROWS {
            assert!(seen.insert(row.code), "duplicate code {}", row.code);
            assert!(
                row.code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                row.code
            );
        }
    }
}
