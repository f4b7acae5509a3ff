//! Which calling app may change which kind of target. Secure default: any allowed caller may
//! change the signed-in user's own photo and own contacts' photos; other users', their contacts'
//! and groups' photos need the calling app to be granted that kind explicitly.

use std::collections::{HashMap, HashSet};

use super::caller::Caller;
use crate::error::ApiError;
use crate::graph::PhotoTarget;

/// A kind of target beyond the caller's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// Other users' photos.
    Users,
    /// Groups' photos.
    Groups,
    /// Other users' contacts' photos.
    Contacts,
}

/// Grants per calling client id (`*` for every caller).
#[derive(Debug, Clone, Default)]
pub struct CallerPolicy {
    grants: HashMap<String, HashSet<Grant>>,
}

impl CallerPolicy {
    /// Parses `client-id=users,groups;other-id=contacts;*=groups`.
    pub fn parse(text: &str) -> Result<CallerPolicy, String> {
        let mut grants: HashMap<String, HashSet<Grant>> = HashMap::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (client, kinds) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not `client-id=kind,kind`"))?;
            let set = grants
                .entry(client.trim().to_ascii_lowercase())
                .or_default();
            for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                set.insert(match kind.to_ascii_lowercase().as_str() {
                    "users" => Grant::Users,
                    "groups" => Grant::Groups,
                    "contacts" => Grant::Contacts,
                    other => {
                        return Err(format!("unknown kind {other:?} (users, groups, contacts)"));
                    }
                });
            }
        }
        Ok(CallerPolicy { grants })
    }

    fn granted(&self, client: &str, grant: Grant) -> bool {
        let has = |k: &str| self.grants.get(k).is_some_and(|g| g.contains(&grant));
        has(&client.to_ascii_lowercase()) || has("*")
    }

    /// Allows the call, or refuses it with 403 `caller-not-allowed`.
    pub fn authorize(&self, caller: &Caller, target: &PhotoTarget) -> Result<(), ApiError> {
        let is_self = |user: &str| {
            user.eq_ignore_ascii_case(&caller.object_id)
                || caller
                    .username
                    .as_deref()
                    .is_some_and(|u| user.eq_ignore_ascii_case(u))
        };
        let needed = match target {
            PhotoTarget::Me | PhotoTarget::MyContact { .. } => None,
            PhotoTarget::User { user } if is_self(user) => None,
            PhotoTarget::UserContact { user, .. } if is_self(user) => None,
            PhotoTarget::User { .. } => Some((Grant::Users, "other users' photos")),
            PhotoTarget::UserContact { .. } => {
                Some((Grant::Contacts, "other users' contacts' photos"))
            }
            PhotoTarget::Group { .. } => Some((Grant::Groups, "groups' photos")),
        };
        match needed {
            Some((grant, what)) if !self.granted(&caller.client_app_id, grant) => {
                Err(ApiError::CallerNotAllowed(format!(
                    "the calling application {} may not change {what}; an operator can grant it in PHOTO_GATEWAY_CALLER_POLICY",
                    caller.client_app_id
                )))
            }
            _ => Ok(()),
        }
    }

    /// The mailbox a target belongs to, for Graph's per-mailbox limits.
    pub fn mailbox<'a>(caller: &'a Caller, target: &'a PhotoTarget) -> &'a str {
        match target {
            PhotoTarget::Me | PhotoTarget::MyContact { .. } => &caller.object_id,
            PhotoTarget::User { user } | PhotoTarget::UserContact { user, .. } => {
                if caller
                    .username
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(user))
                {
                    &caller.object_id
                } else {
                    user
                }
            }
            PhotoTarget::Group { group } => group,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Assertion;

    fn caller(app: &str) -> Caller {
        Caller {
            tenant_id: "t".into(),
            object_id: "oid-1".into(),
            username: Some("adele@contoso.com".into()),
            client_app_id: app.into(),
            scopes: vec![],
            assertion: Assertion::new("x"),
        }
    }

    #[test]
    fn own_targets_are_always_allowed_others_need_grants() {
        let p = CallerPolicy::parse("APP-A=users,groups; *=contacts").unwrap();
        let other = PhotoTarget::User {
            user: "megan@contoso.com".into(),
        };
        let own = PhotoTarget::User {
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
        assert!(CallerPolicy::parse("x=everything").is_err());
        assert_eq!(CallerPolicy::mailbox(&caller("a"), &own), "oid-1");
    }
}
