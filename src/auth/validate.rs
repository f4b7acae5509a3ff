//! Access-token validation: RS256 pinned, key chosen only by `kid` from the tenant's JWKS, exact
//! issuer and single-string audience, required `exp`/`nbf`, bounded lifetime, delegated scopes,
//! allowed callers. A token with `scp` is a user's (delegated); one with `roles` and no `scp` is
//! an application's own (app-only: `idtyp`, when present, must say `app`); one with neither is
//! refused.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::caller::{AppOnly, Assertion, Caller, MAX_TOKEN_LEN, Principal, SignedInUser};
use super::jwks::KeyStore;
use super::verified::{self, Verified};
use crate::config::CallerConfig;
use crate::error::ApiError;

#[derive(Deserialize)]
struct Claims {
    aud: serde_json::Value,
    // A string, not the array jsonwebtoken would also accept for `iss`.
    #[serde(rename = "iss")]
    _iss: String,
    exp: u64,
    nbf: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    scp: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    idtyp: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    upn: Option<String>,
}

/// Validates caller tokens.
pub struct TokenValidator {
    keys: Arc<KeyStore>,
    audiences: Vec<String>,
    graph_audiences: Vec<String>,
    leeway: u64,
    max_lifetime: u64,
    required_scopes: Vec<String>,
    allowed_clients: Option<HashSet<String>>,
    verified: Verified,
}

/// More app roles than any sensible registration defines are not kept (the token is bounded by
/// its length already; this bounds what each request carries along).
const MAX_ROLES: usize = 64;

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidToken(msg.into())
}

impl TokenValidator {
    /// Builds a validator over the shared key store: `audiences` name this gateway (client id
    /// and App ID URI), `graph_audiences` name Graph (to explain a token sent to the wrong place).
    pub fn new(
        config: &CallerConfig,
        audiences: Vec<String>,
        graph_audiences: Vec<String>,
        keys: Arc<KeyStore>,
    ) -> TokenValidator {
        TokenValidator {
            keys,
            audiences,
            graph_audiences,
            leeway: config.clock_skew_secs,
            max_lifetime: config.max_token_lifetime_secs,
            required_scopes: config.required_scopes.clone(),
            allowed_clients: config.allowed_client_ids.clone(),
            verified: Verified::new(verified::MAX_ENTRIES, config.clock_skew_secs),
        }
    }

    /// Validates `token` and returns the caller it names.
    pub async fn validate(&self, token: &str) -> Result<Caller, ApiError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("the token is too long"));
        }
        // A token validated before skips the signature and claim checks, not the clock or the key.
        let digest = verified::digest(token);
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(caller) = self.verified.get(&digest, token, &self.keys, now) {
            return Ok(caller);
        }
        let caller = self.validate_fully(token).await?;
        if let Some((kid, key, exp, nbf)) = caller.1 {
            self.verified
                .insert(digest, &caller.0, &kid, key, exp, nbf, now);
        }
        Ok(caller.0)
    }

    /// Every check, signature included; with the key, `exp` and `nbf` the cache needs.
    #[allow(clippy::type_complexity)]
    async fn validate_fully(
        &self,
        token: &str,
    ) -> Result<
        (
            Caller,
            Option<(String, Arc<jsonwebtoken::DecodingKey>, u64, u64)>,
        ),
        ApiError,
    > {
        match token.bytes().filter(|b| *b == b'.').count() {
            2 => {}
            4 => return Err(invalid("encrypted tokens (JWE) are not accepted")),
            _ => {
                return Err(invalid(
                    "the token is not a signed JWT (header.payload.signature)",
                ));
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            invalid("the token header is malformed or names an unsupported algorithm")
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid(format!(
                "algorithm {:?} is not accepted: tokens must be RS256",
                header.alg
            )));
        }
        if header.crit.is_some() {
            return Err(invalid("tokens with a `crit` header are not accepted"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("the token names no signing key (kid)"))?;
        if kid.is_empty() || kid.len() > 256 {
            return Err(invalid(
                "the token's signing key (kid) is not one of the tenant's keys",
            ));
        }
        if !self.keys.is_loaded() {
            return Err(ApiError::NotReady(
                "the tenant's signing keys are not loaded yet".into(),
            ));
        }
        let key = self.keys.key_or_refresh(kid).await.ok_or_else(|| {
            invalid("the token's signing key (kid) is not one of the tenant's keys")
        })?;
        let (issuers, tenant) = self
            .keys
            .current()
            .map(|s| (s.issuers.clone(), s.tenant_id.clone()))
            .unwrap_or_default();

        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        v.set_audience(&self.audiences);
        v.set_issuer(&issuers);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map_err(|e| self.explain(token, e.kind()))?;
        let c = data.claims;

        if !c.aud.is_string() {
            return Err(invalid(
                "the token's `aud` must be a single string naming this gateway",
            ));
        }
        let now = jsonwebtoken::get_current_timestamp();
        let longest = self.max_lifetime.saturating_add(self.leeway);
        let over_max = c.exp.saturating_sub(now) > longest
            || c.iat
                .is_some_and(|iat| c.exp.saturating_sub(iat) > self.max_lifetime)
            || c.exp.saturating_sub(c.nbf) > longest;
        if over_max {
            return Err(invalid(format!(
                "the token's lifetime exceeds the maximum of {} seconds",
                self.max_lifetime
            )));
        }

        let scopes: Vec<String> = c
            .scp
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let roles: Vec<String> = c
            .roles
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !r.trim().is_empty())
            .take(MAX_ROLES)
            .collect();
        // Entra's `idtyp` is an optional claim: when present it must agree with the rest, but
        // its absence proves nothing. `scp` is what makes a token a user's; `roles` without it
        // is the application acting as itself.
        let idtyp_app = c.idtyp.as_deref().map(|t| t.eq_ignore_ascii_case("app"));
        let app_only = match (scopes.is_empty(), roles.is_empty()) {
            (false, _) if idtyp_app == Some(true) => {
                return Err(invalid(
                    "the token says it is app-only (idtyp=app) but carries delegated scopes (scp)",
                ));
            }
            (false, _) => false,
            (true, false) if idtyp_app == Some(false) => {
                return Err(invalid(
                    "the token carries app roles and no delegated scopes, but its idtyp is not `app`",
                ));
            }
            (true, false) => true,
            (true, true) => {
                return Err(ApiError::UserTokenRequired(
                    "the token carries neither delegated scopes (scp) nor app roles (roles): send a delegated user token".into(),
                ));
            }
        };
        if !app_only {
            let missing: Vec<&str> = self
                .required_scopes
                .iter()
                .filter(|r| !scopes.iter().any(|s| s == *r))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(ApiError::InsufficientScope {
                    scope: missing.join(" "),
                });
            }
        }
        let client = c
            .azp
            .or(c.appid)
            .ok_or_else(|| invalid("the token names no calling application (azp/appid)"))?;
        if let Some(allowed) = &self.allowed_clients
            && !allowed.contains(&client.to_ascii_lowercase())
        {
            return Err(ApiError::CallerNotAllowed(format!(
                "the calling application {client} is not allowed to use this gateway"
            )));
        }
        let tenant_id = c
            .tid
            .ok_or_else(|| invalid("the token names no tenant (tid)"))?;
        // `iss` alone is not enough when several issuers are accepted: the token must be for
        // this gateway's own tenant.
        if tenant
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(&tenant_id))
        {
            return Err(invalid("the token was issued for another tenant (tid)"));
        }
        let principal = if app_only {
            // An app-only token's `oid` is the app's service principal, never a user: it is not
            // kept, so nothing can take it for one.
            Principal::App(AppOnly { roles })
        } else {
            Principal::User(SignedInUser {
                object_id: c
                    .oid
                    .ok_or_else(|| invalid("the token names no user object id (oid)"))?,
                username: c.preferred_username.or(c.upn),
                scopes,
                assertion: Assertion::new(token),
            })
        };
        let caller = Caller {
            tenant_id,
            client_app_id: client,
            principal,
        };
        Ok((caller, Some((kid.to_owned(), key, c.exp, c.nbf))))
    }

    /// Turns a jsonwebtoken failure into a message that says what to fix.
    fn explain(&self, token: &str, kind: &ErrorKind) -> ApiError {
        match kind {
            ErrorKind::ExpiredSignature => invalid("the token has expired"),
            ErrorKind::ImmatureSignature => invalid("the token is not valid yet (nbf)"),
            ErrorKind::InvalidSignature => invalid("the token's signature is invalid"),
            ErrorKind::InvalidIssuer => {
                invalid("the token was not issued by this gateway's tenant")
            }
            ErrorKind::MissingRequiredClaim(c) => invalid(format!("the token has no `{c}` claim")),
            ErrorKind::InvalidAudience => {
                let aud = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
                    .ok()
                    .and_then(|d| d.claims.get("aud").cloned());
                let is_graph = aud.as_ref().and_then(|a| a.as_str()).is_some_and(|a| {
                    self.graph_audiences
                        .iter()
                        .any(|g| g.eq_ignore_ascii_case(a))
                });
                if is_graph {
                    invalid(
                        "the token's audience is Microsoft Graph: request a token for this gateway's App ID URI instead",
                    )
                } else {
                    invalid("the token's audience is not this gateway")
                }
            }
            ErrorKind::InvalidAlgorithm => invalid("algorithm not accepted: tokens must be RS256"),
            _ => invalid("the token is malformed"),
        }
    }
}
