//! Which calling app may change which kind of target. Secure default: any allowed caller may
//! change the signed-in user's own photo and own contacts' photos; other users', their contacts'
//! and groups' photos need the calling app to be granted that kind explicitly
//! (`PHOTO_GATEWAY_CALLER_POLICY`, parsed by the configuration into plain grants).

use std::collections::HashMap;

use super::caller::Caller;
use crate::config::Grants;
use crate::error::ApiError;
use crate::graph::{PhotoTarget, TargetKind, Whose};

/// Grants per calling client id (`*` for every caller).
#[derive(Debug, Clone, Default)]
pub struct CallerPolicy {
    grants: HashMap<String, Grants>,
}

/// Whether `grants` cover another's target of this kind, and how to name it in a refusal.
fn covers(grants: &Grants, kind: TargetKind) -> bool {
    match kind {
        TargetKind::User => grants.users,
        TargetKind::Group => grants.groups,
        TargetKind::Contact => grants.contacts,
        // `/me` is always the caller's own.
        TargetKind::Me => true,
    }
}

fn others(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::User | TargetKind::Me => "other users' photos",
        TargetKind::Group => "groups' photos",
        TargetKind::Contact => "other users' contacts' photos",
    }
}

impl CallerPolicy {
    /// The policy of the configured grants (client ids already lowercase).
    pub fn new(grants: HashMap<String, Grants>) -> CallerPolicy {
        CallerPolicy { grants }
    }

    fn granted(&self, client: &str, kind: TargetKind) -> bool {
        let has = |k: &str| self.grants.get(k).is_some_and(|g| covers(g, kind));
        has(&client.to_ascii_lowercase()) || has("*")
    }

    /// Allows a delegated caller's call, or refuses it with 403 `caller-not-allowed`. App-only
    /// callers are `app_policy.rs`'s: one that reaches here is refused (`user-token-required`).
    pub fn authorize(&self, caller: &Caller, target: &PhotoTarget) -> Result<(), ApiError> {
        let kind = target.kind();
        let user = caller.require_user("the delegated policy needs a signed-in user")?;
        match target.whose(user.identity()) {
            Whose::Others if !self.granted(&caller.client_app_id, kind) => {
                Err(ApiError::CallerNotAllowed(format!(
                    "the calling application {} may not change {}; an operator can grant it in PHOTO_GATEWAY_CALLER_POLICY",
                    caller.client_app_id,
                    others(kind)
                )))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AppOnly, Assertion, Principal, SignedInUser};

    fn caller(app: &str) -> Caller {
        Caller {
            tenant_id: "t".into(),
            client_app_id: app.into(),
            principal: Principal::User(SignedInUser {
                object_id: "oid-1".into(),
                username: Some("adele@contoso.com".into()),
                scopes: vec![],
                assertion: Assertion::new("x"),
            }),
        }
    }

    #[test]
    fn own_targets_are_always_allowed_others_need_grants() {
        let p = CallerPolicy::new(HashMap::from([
            (
                "app-a".to_owned(),
                Grants {
                    users: true,
                    groups: true,
                    contacts: false,
                },
            ),
            (
                "*".to_owned(),
                Grants {
                    contacts: true,
                    ..Grants::default()
                },
            ),
        ]));
        let other = PhotoTarget::User {
            user: "megan@contoso.com".into(),
        };
        let own = PhotoTarget::User {
            user: "OID-1".into(),
        };
        // The caller's UPN is a mutable claim: it names the caller's mailbox, but grants nothing.
        let own_upn = PhotoTarget::User {
            user: "ADELE@contoso.com".into(),
        };
        let group = PhotoTarget::Group { group: "g".into() };
        let their_contact = PhotoTarget::UserContact {
            user: "megan@contoso.com".into(),
            folder: None,
            contact: "c".into(),
        };
        assert!(p.authorize(&caller("app-b"), &PhotoTarget::Me).is_ok());
        assert!(p.authorize(&caller("app-b"), &own).is_ok());
        assert!(matches!(
            p.authorize(&caller("app-b"), &other),
            Err(ApiError::CallerNotAllowed(_))
        ));
        assert!(matches!(
            p.authorize(&caller("app-b"), &group),
            Err(ApiError::CallerNotAllowed(_))
        ));
        assert!(p.authorize(&caller("app-a"), &other).is_ok());
        assert!(p.authorize(&caller("app-a"), &group).is_ok());
        assert!(
            p.authorize(&caller("app-b"), &their_contact).is_ok(),
            "wildcard grant"
        );
        assert!(matches!(
            p.authorize(&caller("app-b"), &own_upn),
            Err(ApiError::CallerNotAllowed(_))
        ));
        assert!(p.authorize(&caller("app-a"), &own_upn).is_ok());
        let daemon = Caller {
            principal: Principal::App(AppOnly { roles: vec![] }),
            ..caller("app-a")
        };
        assert!(matches!(
            p.authorize(&daemon, &PhotoTarget::Me),
            Err(ApiError::UserTokenRequired(_))
        ));
        assert_eq!(
            own_upn.mailbox(caller("a").user().unwrap().identity()),
            crate::graph::MailboxName::Id("oid-1")
        );
    }
}
