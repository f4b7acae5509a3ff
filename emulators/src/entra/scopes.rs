//! Which resource and Graph permissions a `scope` parameter asks for, and which of them the gateway
//! app has consent for.

use super::EntraState;
use super::token_endpoint::EntraError;

/// Graph's well-known application id, accepted as a resource like Graph's URL.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The public Graph resource, accepted in scopes next to the emulator's own URL.
pub const PUBLIC_GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Graph delegated permissions admin-consented for the gateway app (`.default` grants all of them).
pub const CONSENTED_SCOPES: [&str; 5] = [
    "User.ReadWrite",
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Contacts.ReadWrite",
    "ProfilePhoto.ReadWrite.All",
];
/// Graph delegated permissions for team photos, admin-consented for the gateway app too (kept apart
/// from [`CONSENTED_SCOPES`], the update paths' scopes); `.default` grants them as well.
pub const CONSENTED_TEAM_SCOPES: [&str; 2] = ["TeamSettings.ReadWrite.All", "Team.ReadBasic.All"];
/// Graph delegated permissions for the gateway's reads (its default read scopes), admin-consented
/// for the gateway app too, so reads On-Behalf-Of succeed; `.default` grants them as well.
pub const CONSENTED_READ_SCOPES: [&str; 3] =
    ["User.Read", "ProfilePhoto.Read.All", "Contacts.Read"];
/// Graph permissions the emulator knows but the gateway app has no consent for (→ AADSTS65001).
const KNOWN_UNCONSENTED: [&str; 9] = [
    "User.ReadBasic.All",
    "User.Read.All",
    "Group.Read.All",
    "Mail.Read",
    "Mail.Send",
    "Calendars.Read",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Files.ReadWrite.All",
];
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

impl EntraState {
    pub(super) fn resource_of(&self, resource: &str) -> Option<String> {
        let r = resource.trim_end_matches('/');
        if r.eq_ignore_ascii_case(&self.graph_url) {
            Some(self.graph_url.clone())
        } else if r.eq_ignore_ascii_case(PUBLIC_GRAPH_RESOURCE)
            || r.eq_ignore_ascii_case(GRAPH_APP_ID)
        {
            Some(PUBLIC_GRAPH_RESOURCE.to_string())
        } else {
            None
        }
    }

    pub(super) fn client_credentials_resource(&self, scope: &str) -> Result<String, EntraError> {
        let invalid = || {
            EntraError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        };
        let mut parts = scope.split_whitespace();
        let (Some(only), None) = (parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let resource = only.strip_suffix("/.default").ok_or_else(invalid)?;
        self.resource_of(resource).ok_or_else(invalid)
    }

    pub(super) fn parse_scopes(&self, scope: &str) -> Result<Granted, EntraError> {
        let invalid = |s: &str| {
            EntraError::new(
                "invalid_scope",
                70011,
                format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."
                ),
            )
        };
        let mut granted = Granted::default();
        for s in scope.split_whitespace() {
            if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                continue;
            }
            let (resource, name) = match s.rfind('/') {
                Some(i) => (
                    self.resource_of(&s[..i]).ok_or_else(|| invalid(s))?,
                    &s[i + 1..],
                ),
                // Entra treats an unqualified scope as a Graph scope.
                None => (PUBLIC_GRAPH_RESOURCE.to_string(), s),
            };
            if !granted.resource.is_empty() && granted.resource != resource {
                return Err(EntraError::new(
                    "invalid_request",
                    28000,
                    "Provided value for the input parameter scope is not valid because it contains more than one resource.",
                ));
            }
            granted.resource = resource.clone();
            if name == ".default" {
                for c in CONSENTED_SCOPES
                    .iter()
                    .chain(&CONSENTED_TEAM_SCOPES)
                    .chain(&CONSENTED_READ_SCOPES)
                {
                    granted.add(&resource, c);
                }
                continue;
            }
            if let Some(c) = CONSENTED_SCOPES
                .iter()
                .chain(&CONSENTED_TEAM_SCOPES)
                .chain(&CONSENTED_READ_SCOPES)
                .find(|c| c.eq_ignore_ascii_case(name))
            {
                granted.add(&resource, c);
            } else if KNOWN_UNCONSENTED
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
            {
                return Err(self.consent_required());
            } else {
                return Err(invalid(s));
            }
        }
        if granted.names.is_empty() {
            return Err(invalid(scope));
        }
        Ok(granted)
    }
}

/// What a delegated `scope` parameter grants: one resource, its permission names, and the same
/// qualified with the resource (as the token answer's `scope` lists them).
#[derive(Default)]
pub(super) struct Granted {
    pub resource: String,
    pub names: Vec<String>,
    pub qualified: Vec<String>,
}

impl Granted {
    fn add(&mut self, resource: &str, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
            self.qualified.push(format!("{resource}/{name}"));
        }
    }
}
