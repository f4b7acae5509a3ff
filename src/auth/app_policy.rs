//! What an app-only (daemon) caller may do: per calling app, which of its app roles grant which
//! access to which kind of target (`PHOTO_GATEWAY_APP_POLICY`, parsed by the configuration).
//! Secure default: an app the policy does not name is refused app-only access altogether
//! (403 `user-token-required`, as before app-only callers existed); a named app whose token
//! holds none of the roles the policy makes grant the operation gets 403 `insufficient-role`;
//! `/me` paths name a signed-in user an app does not have.

use std::collections::HashMap;

use crate::config::{AccessSet, RoleGrants};
use crate::error::ApiError;
use crate::graph::{Access, PhotoTarget, TargetKind};

/// The app-only policy: per calling app id (lowercase), per app role, its grants.
#[derive(Debug, Clone, Default)]
pub struct AppPolicy {
    apps: HashMap<String, HashMap<String, RoleGrants>>,
}

/// The accesses `grants` give on `kind`; `None` for a kind an app can never address (`/me`).
fn on_kind(grants: &RoleGrants, kind: TargetKind) -> Option<&AccessSet> {
    match kind {
        TargetKind::Me => None,
        TargetKind::User => Some(&grants.users),
        TargetKind::Group => Some(&grants.groups),
        TargetKind::Contact => Some(&grants.contacts),
    }
}

fn allows(set: &AccessSet, access: Access) -> bool {
    match access {
        Access::Read => set.read,
        Access::Write => set.write,
        Access::Delete => set.delete,
    }
}

fn verb(access: Access) -> &'static str {
    match access {
        Access::Read => "read",
        Access::Write => "change",
        Access::Delete => "delete",
    }
}

fn kind_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Me => "the signed-in user's",
        TargetKind::User => "users'",
        TargetKind::Group => "groups'",
        TargetKind::Contact => "contacts'",
    }
}

impl AppPolicy {
    /// The policy of the configured grants (app ids already lowercase).
    pub fn new(apps: HashMap<String, HashMap<String, RoleGrants>>) -> AppPolicy {
        AppPolicy { apps }
    }

    /// Allows `access` to `target` for the app-only caller `app` holding `roles`, or refuses it
    /// (403 `user-token-required` or `insufficient-role`) saying what would allow it.
    pub fn authorize(
        &self,
        app: &str,
        roles: &[String],
        target: &PhotoTarget,
        access: Access,
    ) -> Result<(), ApiError> {
        // The contacts of `/me` are the signed-in user's too.
        if matches!(target, PhotoTarget::Me | PhotoTarget::MyContact { .. }) {
            return Err(ApiError::UserTokenRequired(format!(
                "`/me` names the signed-in user, and this token is app-only (application {app}): address the user as /users/{{id}}, or use a delegated token"
            )));
        }
        let Some(granted) = self.apps.get(&app.to_ascii_lowercase()) else {
            return Err(ApiError::UserTokenRequired(format!(
                "application {app} is not allowed app-only access (an operator can allow it in PHOTO_GATEWAY_APP_POLICY); send a delegated user token"
            )));
        };
        let kind = target.kind();
        let mut enough: Vec<&str> = granted
            .iter()
            .filter(|(_, g)| on_kind(g, kind).is_some_and(|set| allows(set, access)))
            .map(|(role, _)| role.as_str())
            .collect();
        if enough.iter().any(|r| roles.iter().any(|held| held == r)) {
            return Ok(());
        }
        enough.sort_unstable();
        let what = format!("{} {} photos", verb(access), kind_name(kind));
        Err(ApiError::InsufficientRole(if enough.is_empty() {
            format!(
                "application {app} may not {what} app-only: no app role of it is granted that in PHOTO_GATEWAY_APP_POLICY"
            )
        } else {
            format!(
                "application {app} needs the app role {} to {what}; an administrator assigns it to the application on the gateway's registration",
                enough.join(" or ")
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> AccessSet {
        AccessSet {
            read: true,
            write: true,
            delete: false,
        }
    }

    fn policy() -> AppPolicy {
        AppPolicy::new(HashMap::from([(
            "daemon".to_owned(),
            HashMap::from([
                (
                    "Photos.ReadWrite.All".to_owned(),
                    RoleGrants {
                        users: rw(),
                        groups: rw(),
                        ..RoleGrants::default()
                    },
                ),
                (
                    "Photos.Read.All".to_owned(),
                    RoleGrants {
                        users: AccessSet {
                            read: true,
                            ..AccessSet::default()
                        },
                        ..RoleGrants::default()
                    },
                ),
            ]),
        )]))
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn roles_grant_kinds_and_accesses_per_app() {
        let p = policy();
        let user = PhotoTarget::User { user: "u".into() };
        let group = PhotoTarget::Group { group: "g".into() };
        let contact = PhotoTarget::UserContact {
            user: "u".into(),
            folder: None,
            contact: "c".into(),
        };
        let writer = roles(&["Photos.ReadWrite.All"]);
        let reader = roles(&["Photos.Read.All"]);
        assert!(p.authorize("DAEMON", &writer, &user, Access::Write).is_ok());
        assert!(
            p.authorize("daemon", &writer, &group, Access::Write)
                .is_ok()
        );
        assert!(p.authorize("daemon", &reader, &user, Access::Read).is_ok());
        let refused = |r: Result<(), ApiError>| match r {
            Err(e) => e.code(),
            Ok(()) => "allowed",
        };
        assert_eq!(
            refused(p.authorize("daemon", &reader, &user, Access::Write)),
            "insufficient-role"
        );
        assert_eq!(
            refused(p.authorize("daemon", &writer, &contact, Access::Write)),
            "insufficient-role"
        );
        assert_eq!(
            refused(p.authorize("daemon", &writer, &user, Access::Delete)),
            "insufficient-role"
        );
        assert_eq!(
            refused(p.authorize("daemon", &roles(&[]), &user, Access::Write)),
            "insufficient-role"
        );
        assert_eq!(
            refused(p.authorize("other", &writer, &user, Access::Write)),
            "user-token-required"
        );
        assert_eq!(
            refused(p.authorize("daemon", &writer, &PhotoTarget::Me, Access::Write)),
            "user-token-required"
        );
        let my_contact = PhotoTarget::MyContact {
            folder: None,
            contact: "c".into(),
        };
        assert_eq!(
            refused(p.authorize("daemon", &writer, &my_contact, Access::Write)),
            "user-token-required"
        );
        assert_eq!(
            refused(AppPolicy::default().authorize("daemon", &writer, &user, Access::Write)),
            "user-token-required",
            "by default no app is allowed"
        );
    }

    #[test]
    fn a_refusal_names_the_role_that_would_do() {
        let e = policy()
            .authorize(
                "daemon",
                &roles(&["Photos.Read.All"]),
                &PhotoTarget::Group { group: "g".into() },
                Access::Write,
            )
            .unwrap_err();
        assert!(e.to_string().contains("Photos.ReadWrite.All"), "{e}");
    }
}
