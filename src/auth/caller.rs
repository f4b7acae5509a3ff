//! The validated caller and how its token is taken from the request.

use std::sync::Arc;

use crate::error::ApiError;
use crate::graph::Identity;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The caller's raw access token, kept opaque: it is only ever sent to Entra as the OBO assertion.
#[derive(Clone)]
pub struct Assertion(Arc<str>);

impl Assertion {
    /// Wraps a raw token.
    pub fn new(token: &str) -> Assertion {
        Assertion(token.into())
    }

    /// The raw token, for the token request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assertion([redacted])")
    }
}

/// A caller whose token passed validation: a signed-in user (delegated token) or an application
/// acting as itself (app-only token). What needs a user reaches it only through [`Caller::user`],
/// so "no user" cannot be mistaken for an empty one.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Tenant id (`tid`).
    pub tenant_id: String,
    /// The calling application's client id (`azp` or `appid`).
    pub client_app_id: String,
    /// Who the token speaks for.
    pub principal: Principal,
}

/// Who a caller's token speaks for.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A signed-in user, through a delegated token (`scp`).
    User(SignedInUser),
    /// The calling application itself, through an app-only token (`roles`, no `scp`).
    App(AppOnly),
}

/// The signed-in user of a delegated token.
#[derive(Debug, Clone)]
pub struct SignedInUser {
    /// The user's object id (`oid`).
    pub object_id: String,
    /// The user's sign-in name, when the token carries one.
    pub username: Option<String>,
    /// Delegated scopes granted to the calling app (`scp`).
    pub scopes: Vec<String>,
    /// The raw token, for the On-Behalf-Of exchange.
    pub assertion: Assertion,
}

/// An app-only caller: its app roles on the gateway's registration. It has no assertion: the
/// gateway calls Graph with its own client-credentials token for it.
#[derive(Debug, Clone)]
pub struct AppOnly {
    /// App roles of the gateway's registration granted to the calling app (`roles`).
    pub roles: Vec<String>,
}

impl Caller {
    /// The signed-in user, or `None` for an app-only caller.
    pub fn user(&self) -> Option<&SignedInUser> {
        match &self.principal {
            Principal::User(u) => Some(u),
            Principal::App(_) => None,
        }
    }

    /// The signed-in user, or 403 `user-token-required` saying `why` a user is needed.
    pub fn require_user(&self, why: &str) -> Result<&SignedInUser, ApiError> {
        self.user().ok_or_else(|| {
            ApiError::UserTokenRequired(format!(
                "{why}: this token is app-only (application {}, no signed-in user); use a delegated token",
                self.client_app_id
            ))
        })
    }

    /// True for an app-only caller.
    pub fn is_app_only(&self) -> bool {
        matches!(self.principal, Principal::App(_))
    }
}

impl SignedInUser {
    /// The signed-in user, as targets are compared with it.
    pub fn identity(&self) -> Identity<'_> {
        Identity {
            object_id: &self.object_id,
            username: self.username.as_deref(),
        }
    }
}

/// A cookie named like an OAuth token, or whose value is a JWT. Other cookies (a session id, a
/// CSRF token) are none of the gateway's business and pass.
fn cookie_carries_token(cookie: &str) -> bool {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim().trim_matches('"');
    let jwt_like = value.starts_with("eyJ") && value.bytes().filter(|b| *b == b'.').count() >= 2;
    matches!(
        name.as_str(),
        "access_token" | "id_token" | "token" | "bearer" | "authorization"
    ) || jwt_like
}

/// Where a request could carry a token, as received.
#[derive(Debug, Clone, Default)]
pub struct Credentials<'a> {
    /// The raw query string.
    pub query: &'a str,
    /// Every `Authorization` header value.
    pub authorization: Vec<&'a [u8]>,
    /// Every `Cookie` header value.
    pub cookies: Vec<&'a [u8]>,
}

/// Takes the bearer token from the request, refusing every other place a token could hide.
pub fn bearer_token<'a>(req: &Credentials<'a>) -> Result<&'a str, ApiError> {
    let query = req.query;
    if query.split('&').any(|kv| {
        let k = kv.split('=').next().unwrap_or("");
        k.eq_ignore_ascii_case("access_token") || k.eq_ignore_ascii_case("access%5Ftoken")
    }) {
        return Err(ApiError::InvalidRequest(
            "tokens in the query string are not accepted: send `Authorization: Bearer <token>`"
                .into(),
        ));
    }
    for cookie in &req.cookies {
        let text = String::from_utf8_lossy(cookie);
        if text.split(';').any(|c| cookie_carries_token(c.trim())) {
            return Err(ApiError::InvalidRequest(
                "tokens in cookies are not accepted: send `Authorization: Bearer <token>`".into(),
            ));
        }
    }
    let value = match req.authorization.as_slice() {
        [] => return Err(ApiError::MissingToken),
        [one] => *one,
        _ => {
            return Err(ApiError::InvalidRequest(
                "send exactly one Authorization header".into(),
            ));
        }
    };
    let value = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .ok_or_else(|| ApiError::InvalidRequest("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidRequest(
            "the Authorization header must use the Bearer scheme".into(),
        ));
    }
    let token = token.trim();
    if token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::InvalidToken(format!(
            "the token is longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let token68 = |b: u8| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
    };
    if token.is_empty() || !token.bytes().all(token68) {
        return Err(ApiError::InvalidRequest(
            "the Authorization header must be `Bearer <token>` with a single token".into(),
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::cookie_carries_token;

    #[test]
    fn only_token_cookies_are_refused() {
        assert!(cookie_carries_token("access_token=abc"));
        assert!(cookie_carries_token("ID_TOKEN=abc"));
        assert!(cookie_carries_token("session=eyJhbGciOi.eyJzdWIi.sig"));
        assert!(!cookie_carries_token("XSRF-TOKEN=5f1c9e"));
        assert!(!cookie_carries_token("csrftoken=abc"));
        assert!(!cookie_carries_token("session=1"));
    }
}
