//! The token endpoint: On-Behalf-Of and client credentials grants, with Entra's success shape and
//! its AADSTS error answers.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::minting::Principal;
use super::{EntraState, TokenErrorKind};
use crate::jwt::{check_lifetime, unverified_claims, verify_signature};
use crate::util::{Body, b64url, entra_timestamp, guid, json, lock, now_secs, read, sha256};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const MFA_CLAIMS: &str = r#"{"access_token":{"capolids":{"essential":true,"values":["5d3f4a2b-0000-4c6e-8f00-00000000ca01"]}}}"#;

/// An error answered by the token endpoint, in Entra's shape.
pub(super) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
    suberror: Option<&'static str>,
    claims: Option<String>,
}

impl EntraError {
    pub(super) fn new(
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> EntraError {
        EntraError {
            status: if error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            error,
            code,
            description: description.into(),
            suberror: None,
            claims: None,
        }
    }

    pub(super) fn missing(param: &str) -> EntraError {
        EntraError::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }
}

impl EntraState {
    /// AADSTS65001 as Entra answers it: consent for the gateway app is missing.
    pub(super) fn consent_required(&self) -> EntraError {
        let mut e = EntraError::new(
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{}' named 'photo-gateway'. Send an interactive authorization request for this user and resource.",
                self.minter.client_id
            ),
        );
        e.suberror = Some("consent_required");
        e
    }

    pub(super) fn error_response(&self, err: EntraError, correlation: &str) -> Response<Body> {
        let now = now_secs();
        let ts = entra_timestamp(now);
        let trace = guid();
        let mut body = json!({
            "error": err.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}",
                err.code, err.description
            ),
            "error_codes": [err.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{}/error?code={}", self.url(), err.code),
        });
        if let Some(s) = err.suberror {
            body["suberror"] = json!(s);
        }
        if let Some(c) = err.claims {
            body["claims"] = json!(c);
        }
        let mut resp = json(err.status, &body);
        no_store(&mut resp);
        resp
    }

    pub(super) fn count_token(
        &self,
        form: &HashMap<String, String>,
        user: Option<String>,
        status: u16,
    ) {
        let mut c = lock(&self.counters);
        c.token_requests += 1;
        let grant = match form.get("grant_type").map(String::as_str) {
            Some(JWT_BEARER) => "on_behalf_of".to_string(),
            Some(g) => g.to_string(),
            None => "-".to_string(),
        };
        *c.by_grant_type.entry(grant).or_default() += 1;
        if let Some(scope) = form.get("scope") {
            *c.by_scope.entry(scope.clone()).or_default() += 1;
        }
        if let Some(u) = user {
            *c.by_user.entry(u).or_default() += 1;
        }
        *c.by_status.entry(status).or_default() += 1;
    }

    /// Who a token request is for, for counting only (the assertion is decoded without verification).
    pub(super) fn request_user(&self, form: &HashMap<String, String>) -> Option<String> {
        match form.get("grant_type").map(String::as_str) {
            Some(JWT_BEARER) => {
                let claims = unverified_claims(form.get("assertion")?)?;
                ["preferred_username", "upn", "oid"]
                    .iter()
                    .find_map(|k| claims.get(*k).and_then(Value::as_str))
                    .map(str::to_string)
            }
            Some("client_credentials") => form.get("client_id").map(|c| format!("app:{c}")),
            _ => None,
        }
    }

    pub(super) fn token(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<Value, EntraError> {
        let grant = form
            .get("grant_type")
            .ok_or_else(|| EntraError::missing("grant_type"))?;
        if grant != JWT_BEARER && grant != "client_credentials" {
            return Err(EntraError::new(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let client_id = form
            .get("client_id")
            .cloned()
            .or_else(|| basic.as_ref().map(|b| b.0.clone()))
            .ok_or_else(|| EntraError::missing("client_id"))?;
        let is_gateway = client_id.eq_ignore_ascii_case(&self.minter.client_id);
        if grant == "client_credentials"
            && !is_gateway
            && !crate::roles::gateway_roles_of(&client_id).is_empty()
        {
            return self.daemon_token(form, basic.as_ref().map(|b| b.1.as_str()), &client_id);
        }
        if !is_gateway {
            return Err(EntraError::new(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                    self.minter.tenant_id
                ),
            ));
        }
        let appidacr = self.authenticate_client(form, basic.as_ref().map(|b| b.1.as_str()))?;
        let scope = form
            .get("scope")
            .ok_or_else(|| EntraError::missing("scope"))?;
        let lifetime = self.token_lifetime.load(Ordering::Relaxed) as i64;
        if grant == "client_credentials" {
            let resource = self.client_credentials_resource(scope)?;
            // The application permissions admin-consented for this app registration.
            let roles = self.app_permissions(&client_id);
            let claims = self
                .minter
                .graph_claims(None, &roles, &resource, lifetime, appidacr);
            return Ok(success(
                scope,
                lifetime,
                self.keys.get().current.sign(&claims),
            ));
        }
        if form.get("requested_token_use").map(String::as_str) != Some("on_behalf_of") {
            return Err(EntraError::missing("requested_token_use"));
        }
        let assertion = form
            .get("assertion")
            .ok_or_else(|| EntraError::missing("assertion"))?;
        let who = self.check_assertion(assertion)?;
        let granted = self.parse_scopes(scope)?;
        let injected = {
            let errors = read(&self.user_errors);
            errors
                .get(&who.oid.to_ascii_lowercase())
                .or_else(|| errors.get(&who.upn.to_lowercase()))
                .copied()
        };
        match injected {
            Some(TokenErrorKind::ConsentRequired) => {
                return Err(self.consent_required());
            }
            Some(TokenErrorKind::MfaRequired) => {
                let mut e = EntraError::new(
                    "interaction_required",
                    50076,
                    format!(
                        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{}'.",
                        granted.resource
                    ),
                );
                e.claims = Some(MFA_CLAIMS.to_string());
                return Err(e);
            }
            None => {}
        }
        let claims = self.minter.graph_claims(
            Some(&who),
            &granted.names,
            &granted.resource,
            lifetime,
            appidacr,
        );
        let mut body = success(
            &granted.qualified.join(" "),
            lifetime,
            self.keys.get().current.sign(&claims),
        );
        self.add_user_extras(&mut body, form, scope, &who, &client_id, lifetime);
        Ok(body)
    }

    /// A seeded daemon's client-credentials token for the gateway's API: an app-only caller
    /// token (`roles` = the gateway app roles assigned to it, `idtyp` `app`, no `scp`), as Entra
    /// issues for `api://{gateway}/.default`.
    fn daemon_token(
        &self,
        form: &HashMap<String, String>,
        basic_secret: Option<&str>,
        client_id: &str,
    ) -> Result<Value, EntraError> {
        let secret = form
            .get("client_secret")
            .map(String::as_str)
            .or(basic_secret);
        if secret != Some(crate::roles::DAEMON_CLIENT_SECRET) {
            return Err(EntraError::new(
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
        let scope = form
            .get("scope")
            .ok_or_else(|| EntraError::missing("scope"))?;
        let gateway = &self.minter.client_id;
        let for_gateway = scope
            .strip_suffix("/.default")
            .filter(|_| scope.split_whitespace().count() == 1)
            .is_some_and(|r| {
                r.eq_ignore_ascii_case(gateway)
                    || r.eq_ignore_ascii_case(&format!("api://{gateway}"))
            });
        if !for_gateway {
            return Err(EntraError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        let lifetime = self.token_lifetime.load(Ordering::Relaxed) as i64;
        let spec = super::CallerTokenSpec {
            ttl_secs: lifetime,
            ..super::CallerTokenSpec::daemon(client_id)
        };
        Ok(success(scope, lifetime, self.caller_token(&spec)))
    }

    /// What Entra adds to a token answer for a user, which MSAL clients rely on: `client_info`
    /// (the account key of their token cache) when asked with `client_info=1`, a `refresh_token`,
    /// and an `id_token` when `openid` is in the scope.
    fn add_user_extras(
        &self,
        body: &mut Value,
        form: &HashMap<String, String>,
        scope: &str,
        who: &Principal,
        client_id: &str,
        lifetime: i64,
    ) {
        if form.get("client_info").map(String::as_str) == Some("1") {
            body["client_info"] = json!(client_info(&who.oid, &self.minter.tenant_id));
        }
        // Opaque, as Entra's are; the emulator does not redeem refresh tokens.
        body["refresh_token"] = json!(format!(
            "0.emu.{}",
            b64url(&sha256(format!("rt:{}:{}", who.oid, guid()).as_bytes()))
        ));
        body["refresh_token_expires_in"] = json!(REFRESH_TOKEN_LIFETIME);
        if scope
            .split_whitespace()
            .any(|s| s.eq_ignore_ascii_case("openid"))
        {
            let claims = self.minter.id_token_claims(
                who,
                client_id,
                form.get("nonce").map(String::as_str),
                lifetime,
            );
            body["id_token"] = json!(self.keys.get().current.sign(&claims));
        }
    }

    /// Validates the OBO assertion as Entra does; returns the user it is for.
    pub(super) fn check_assertion(&self, assertion: &str) -> Result<Principal, EntraError> {
        let bad_sig = |reason: &str| {
            EntraError::new(
                "invalid_grant",
                50013,
                format!("Assertion failed signature validation. [Reason - {reason}]"),
            )
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
            EntraError::new("invalid_grant", 50027, "JWT token is invalid or malformed.")
        })?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| bad_sig("The key was not found."))?;
        let key = self
            .keys
            .find(kid)
            .ok_or_else(|| bad_sig("The key was not found."))?;
        let claims =
            verify_signature(assertion, &key.decoding, Algorithm::RS256).map_err(|_| {
                bad_sig("The provided signature value did not match the expected signature value.")
            })?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if iss != self.minter.issuer_v2() && iss != self.minter.issuer_v1() {
            return Err(bad_sig(
                "The assertion issuer is not valid for this tenant.",
            ));
        }
        let aud = claims
            .get("aud")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let client = &self.minter.client_id;
        if !aud.eq_ignore_ascii_case(client) && aud != format!("api://{client}") {
            return Err(EntraError::new(
                "invalid_grant",
                500131,
                format!(
                    "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '{aud}' and the expected audience is '{client}' or one of the Application Uris of this application with App ID '{client}'."
                ),
            ));
        }
        check_lifetime(&claims).map_err(|_| {
            EntraError::new("invalid_grant", 500133, "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token.")
        })?;
        if claims.get("scp").and_then(Value::as_str).is_none() {
            return Err(EntraError::new(
                "invalid_grant",
                50013,
                "Assertion failed validation. [Reason - The assertion is not a user token: it has no 'scp' claim. On-Behalf-Of needs a delegated user token.]",
            ));
        }
        let oid = claims
            .get("oid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut who = self.minter.principal(oid);
        if let Some(upn) = ["preferred_username", "upn"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
        {
            who.upn = upn.to_string();
        }
        Ok(who)
    }
}

/// Entra's refresh tokens for confidential clients live 90 days.
const REFRESH_TOKEN_LIFETIME: i64 = 90 * 24 * 3600;

/// `client_info` as Entra returns it: base64url (no padding) of `{"uid":…,"utid":…}`, the user's
/// object id and home tenant; MSAL's account key is `uid.utid`.
pub(super) fn client_info(uid: &str, utid: &str) -> String {
    b64url(json!({"uid": uid, "utid": utid}).to_string().as_bytes())
}

fn success(scope: &str, lifetime: i64, access_token: String) -> Value {
    json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    })
}

pub(super) fn no_store(resp: &mut Response<Body>) {
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp.headers_mut()
        .insert("pragma", HeaderValue::from_static("no-cache"));
}

pub(super) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn basic_auth(parts: &Parts) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((unescape(id), unescape(secret)))
}
