//! Graph's checks of the bearer token (signature, audience, issuer, lifetime) and of the permission
//! an operation needs.

use hyper::StatusCode;
use hyper::http::request::Parts;
use serde_json::Value;
use std::sync::atomic::Ordering;

use super::GraphState;
use super::error::GraphError;
use super::paths::{Owner, PhotoPath};
use crate::entra::{GRAPH_APP_ID, PUBLIC_GRAPH_RESOURCE};
use crate::jwt::check_lifetime;
use crate::roles::may_change_others_photos;

/// The validated bearer token.
pub(super) struct Caller {
    pub(super) oid: String,
    pub(super) upn: String,
    pub(super) scp: Option<String>,
    pub(super) roles: Option<String>,
    pub(super) app_id: Option<String>,
    /// `wids`: the signed-in user's directory role template ids (delegated tokens).
    pub(super) wids: Vec<String>,
}

impl Caller {
    fn app_only(&self) -> bool {
        self.scp.is_none()
    }

    /// True when a delegated token's signed-in user is `id` (object id or UPN).
    pub(super) fn is(&self, id: &str) -> bool {
        !self.app_only()
            && (id.eq_ignore_ascii_case(&self.oid) || id.eq_ignore_ascii_case(&self.upn))
    }

    pub(super) fn has_any(&self, wanted: &[&str]) -> bool {
        let granted = self
            .scp
            .as_deref()
            .or(self.roles.as_deref())
            .unwrap_or_default();
        granted
            .split_whitespace()
            .any(|g| wanted.iter().any(|w| w.eq_ignore_ascii_case(g)))
    }
}

impl GraphState {
    pub(super) fn authenticate(&self, parts: &Parts) -> Result<Caller, GraphError> {
        let header = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if token.is_empty() {
            return Err(GraphError::unauthorized("Access token is empty."));
        }
        let jwt_header = jsonwebtoken::decode_header(token).map_err(|_| {
            GraphError::unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
        })?;
        let key = jwt_header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or_else(|| {
                GraphError::unauthorized("Access token validation failure. Invalid signing key.")
            })?;
        let claims = jsonwebtoken::decode::<Value>(token, &key.decoding, &self.validation)
            .map_err(|_| {
                GraphError::unauthorized("Access token validation failure. Invalid signature.")
            })?
            .claims;
        let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let aud = s("aud").unwrap_or_default();
        let aud_trimmed = aud.trim_end_matches('/');
        let aud_ok = aud_trimmed.eq_ignore_ascii_case(&self.url)
            || aud_trimmed.eq_ignore_ascii_case(PUBLIC_GRAPH_RESOURCE)
            || aud.eq_ignore_ascii_case(GRAPH_APP_ID);
        if !aud_ok {
            return Err(GraphError::unauthorized(
                "Access token validation failure. Invalid audience.",
            ));
        }
        let iss = s("iss").unwrap_or_default();
        let tenant = &self.directory.tenant_id;
        if iss != format!("{}/{tenant}/", self.entra_url)
            && iss != format!("{}/{tenant}/v2.0", self.entra_url)
        {
            return Err(GraphError::unauthorized(
                "Access token validation failure. Invalid issuer.",
            ));
        }
        if check_lifetime(&claims).is_err() {
            return Err(GraphError::unauthorized(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        let revoked_before = self.revoked_before.load(Ordering::Acquire);
        let iat = claims.get("iat").and_then(Value::as_u64).unwrap_or(0);
        if iat < revoked_before {
            return Err(GraphError::revoked(revoked_before));
        }
        let roles = claims.get("roles").and_then(Value::as_array).map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        });
        let scp = s("scp");
        if scp.is_none() && roles.is_none() {
            return Err(GraphError::unauthorized(
                "Access token validation failure. The token has neither scp nor roles.",
            ));
        }
        Ok(Caller {
            oid: s("oid").unwrap_or_default(),
            upn: s("upn")
                .or_else(|| s("preferred_username"))
                .unwrap_or_default(),
            scp,
            roles,
            app_id: s("appid").or_else(|| s("azp")),
            wids: claims
                .get("wids")
                .and_then(Value::as_array)
                .map(|w| {
                    w.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    pub(super) fn authorize(
        &self,
        path: &PhotoPath,
        caller: &Caller,
        write: bool,
    ) -> Result<(), GraphError> {
        if path.owner == Owner::Me && caller.app_only() {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            ));
        }
        let own = match &path.owner {
            Owner::Me => true,
            Owner::User(id) => caller.is(id),
            Owner::Group(_) => false,
        };
        let mut allowed: Vec<&str> = Vec::new();
        if path.contact.is_some() {
            allowed.push("Contacts.ReadWrite");
            if !write {
                allowed.push("Contacts.Read");
            }
        } else if matches!(path.owner, Owner::Group(_)) {
            allowed.extend(["Group.ReadWrite.All", "ProfilePhoto.ReadWrite.All"]);
            if !write {
                allowed.extend(["Group.Read.All", "ProfilePhoto.Read.All"]);
            }
        } else {
            allowed.extend(["User.ReadWrite.All", "ProfilePhoto.ReadWrite.All"]);
            if own {
                allowed.push("User.ReadWrite");
            }
            if !write {
                allowed.extend([
                    "User.Read.All",
                    "User.ReadBasic.All",
                    "ProfilePhoto.Read.All",
                ]);
                if own {
                    allowed.push("User.Read");
                }
            }
        }
        if !caller.has_any(&allowed) {
            return Err(GraphError::insufficient_privileges());
        }
        // A delegated change of another user's photo also needs an admin role of the signed-in user.
        let others_photo = matches!(path.owner, Owner::User(_)) && path.contact.is_none() && !own;
        if write && others_photo && !caller.app_only() && !may_change_others_photos(&caller.wids) {
            return Err(GraphError::insufficient_privileges());
        }
        Ok(())
    }
}
