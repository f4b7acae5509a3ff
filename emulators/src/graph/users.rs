//! `GET /v1.0/users/{id or userPrincipalName}`: a directory user, with `$select`, as Graph answers
//! it, behind the same token checks as the photo endpoints and with Graph's read permissions.

use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::GraphState;
use super::auth::Caller;
use super::error::GraphError;
use super::recording::Trace;
use crate::directory::User;
use crate::util::{Body, decoded_segments, json};

/// The route template counted for user requests.
pub(super) const USER_TEMPLATE: &str = "/users/{id}";

/// Properties Graph answers when `$select` is absent, in its order. The emulator stores only the
/// id, sign-in name and display name; the rest are answered as Graph answers unset ones.
const DEFAULT_PROPERTIES: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Delegated or application permissions that read any user.
const READ_ANY_USER: [&str; 5] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "User.ReadBasic.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// The version and user id of a `/{version}/users/{id}` path (no further segment).
pub(super) fn user_path(path: &str) -> Option<(String, String)> {
    let segs = decoded_segments(path.strip_prefix('/')?.trim_end_matches('/'));
    match segs.as_slice() {
        [version, users, id]
            if (version.eq_ignore_ascii_case("v1.0") || version.eq_ignore_ascii_case("beta"))
                && users.eq_ignore_ascii_case("users")
                && !id.is_empty() =>
        {
            Some((version.to_ascii_lowercase(), id.clone()))
        }
        _ => None,
    }
}

fn property(user: &User, name: &str) -> Value {
    match name {
        "id" => json!(user.id),
        "userPrincipalName" => json!(user.user_principal_name),
        "displayName" => json!(user.display_name),
        "businessPhones" => json!([]),
        _ => Value::Null,
    }
}

/// The `$select`ed property names in Graph's spelling, or 400 for one Graph does not know.
fn selected(parts: &Parts) -> Result<Option<Vec<&'static str>>, GraphError> {
    let query = parts.uri.query().unwrap_or_default();
    let Some((_, list)) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
    else {
        return Ok(None);
    };
    let mut names = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = DEFAULT_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(raw))
            .ok_or_else(|| {
                GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    format!(
                        "Could not find a property named '{raw}' on type 'Microsoft.DirectoryServices.User'."
                    ),
                )
            })?;
        if !names.contains(name) {
            names.push(*name);
        }
    }
    Ok(Some(names))
}

impl GraphState {
    /// Serves `GET /{version}/users/{id}`.
    pub(super) fn user_request(
        &self,
        parts: &Parts,
        version: &str,
        id: &str,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GraphError> {
        trace.template = Some(USER_TEMPLATE.to_string());
        if parts.method != Method::GET {
            return Err(GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                format!(
                    "The HTTP method '{}' is not allowed for the requested resource.",
                    parts.method
                ),
            ));
        }
        let caller = self.authenticate(parts)?;
        trace.scp = caller.scp.clone();
        trace.roles = caller.roles.clone();
        trace.oid = Some(caller.oid.clone());
        trace.app_id = caller.app_id.clone();
        authorize_read(id, &caller)?;
        let select = selected(parts)?;
        let user = self.directory.user(id).ok_or_else(|| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                ),
            )
        })?;
        trace.target = Some(format!("/users/{}", user.id));
        let context = match &select {
            Some(names) => format!(
                "{}/{version}/$metadata#users({})/$entity",
                self.url,
                names.join(",")
            ),
            None => format!("{}/{version}/$metadata#users/$entity", self.url),
        };
        let mut body = Map::new();
        body.insert("@odata.context".into(), json!(context));
        let names = select.unwrap_or_else(|| DEFAULT_PROPERTIES.to_vec());
        for name in names {
            body.insert(name.into(), property(user, name));
        }
        Ok(json(StatusCode::OK, &Value::Object(body)))
    }
}

/// Any user with a directory-wide read permission; the signed-in user's own record also with
/// `User.Read` or `User.ReadWrite`. Graph checks this before it looks the user up, so an unknown
/// user is 403 too without the permission.
fn authorize_read(id: &str, caller: &Caller) -> Result<(), GraphError> {
    let mut allowed: Vec<&str> = READ_ANY_USER.to_vec();
    if caller.is(id) {
        allowed.extend(["User.Read", "User.ReadWrite"]);
    }
    if caller.has_any(&allowed) {
        Ok(())
    } else {
        Err(GraphError::insufficient_privileges())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths_are_exactly_version_users_id() {
        assert_eq!(
            user_path("/v1.0/Users/alex_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"),
            Some((
                "v1.0".into(),
                "alex_fabrikam.com#EXT#@contoso.onmicrosoft.com".into()
            ))
        );
        assert_eq!(
            user_path("/beta/users/x/"),
            Some(("beta".into(), "x".into()))
        );
        assert_eq!(user_path("/v1.0/users/x/photo"), None);
        assert_eq!(user_path("/v1.0/users/"), None);
        assert_eq!(user_path("/v1.0/groups/x"), None);
        assert_eq!(user_path("/v2.0/users/x"), None);
    }
}
