//! App-only (daemon) callers (`APP_POLICY`, `APP_RATE_PER_MIN`, `APP_BURST`): which calling app,
//! holding which app role of the gateway's registration, may do what to which kind of target.
//! Its own file so the section, its syntax and its checks stay together; plain data like the
//! other sections (the gateway's vocabulary of kinds is `graph::TargetKind`, matched in
//! `auth/app_policy.rs`).
//!
//! Syntax: entries separated by `;`, each `<app-id>/<role>=<kind>:<access>[,<kind>:<access>…]`,
//! kinds `users`, `groups`, `contacts`, `teams` or `*`, accesses `read`, `write`, `delete` or
//! `*`. An app absent from the policy is refused app-only access (the default: nobody).

use std::collections::HashMap;

use super::ConfigError;
use super::defaults as d;
use super::source::{Vars, err};

/// The app role that, by its name, only reads: it may never be configured to write or delete.
pub const READ_ONLY_ROLE: &str = "Photos.Read.All";

/// Which accesses a role grants on one kind of target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessSet {
    /// GET.
    pub read: bool,
    /// PUT and PATCH.
    pub write: bool,
    /// DELETE.
    pub delete: bool,
}

/// What one app role grants, per kind of target. `/me` has no entry: an app has no "me".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleGrants {
    /// `/users/{id}` photos.
    pub users: AccessSet,
    /// `/groups/{id}` photos.
    pub groups: AccessSet,
    /// A user's contacts' photos.
    pub contacts: AccessSet,
    /// `/teams/{id}` photos.
    pub teams: AccessSet,
}

/// App-only callers: off unless `APP_POLICY` names an app.
#[derive(Debug, Clone, Default)]
pub struct AppOnlyConfig {
    /// Per calling app id (lowercase): per app role (as the token's `roles` spell it), its grants.
    pub policy: HashMap<String, HashMap<String, RoleGrants>>,
    /// Sustained requests per minute per calling app (its own bucket; `0` = off).
    pub rate_per_min: u32,
    /// Burst per calling app.
    pub burst: u32,
}

impl AppOnlyConfig {
    pub(super) fn read(v: &Vars) -> Result<AppOnlyConfig, ConfigError> {
        Ok(AppOnlyConfig {
            policy: parse_app_policy(v.get("APP_POLICY").unwrap_or(""))
                .map_err(|e| err("APP_POLICY", e))?,
            rate_per_min: v.parse("APP_RATE_PER_MIN", d::APP_RATE_PER_MIN)?,
            burst: v.parse("APP_BURST", d::APP_BURST)?,
        })
    }
}

/// Parses `app-id/Role=users:write,groups:*;other-app/Photos.Read.All=*:read`.
fn parse_app_policy(text: &str) -> Result<HashMap<String, HashMap<String, RoleGrants>>, String> {
    let mut policy: HashMap<String, HashMap<String, RoleGrants>> = HashMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let shape = || format!("{entry:?} is not `app-id/Role=kind:access[,kind:access…]`");
        let (who, grants) = entry.split_once('=').ok_or_else(shape)?;
        let (app, role) = who.split_once('/').ok_or_else(shape)?;
        let (app, role) = (app.trim(), role.trim());
        if app.is_empty() || role.is_empty() || app == "*" {
            return Err(format!(
                "{entry:?}: name one calling app id and one app role (no `*` app: every daemon of the tenant is never a sensible grant)"
            ));
        }
        if app.chars().chain(role.chars()).any(char::is_whitespace) {
            return Err(format!("{entry:?}: app ids and roles contain no spaces"));
        }
        let g = policy
            .entry(app.to_ascii_lowercase())
            .or_default()
            .entry(role.to_owned())
            .or_default();
        let mut any = false;
        for grant in grants.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let (kind, access) = grant
                .split_once(':')
                .ok_or_else(|| format!("{grant:?} is not `kind:access`"))?;
            let kinds: Vec<&mut AccessSet> = match kind.trim().to_ascii_lowercase().as_str() {
                "users" => vec![&mut g.users],
                "groups" => vec![&mut g.groups],
                "contacts" => vec![&mut g.contacts],
                "teams" => vec![&mut g.teams],
                "*" => vec![&mut g.users, &mut g.groups, &mut g.contacts, &mut g.teams],
                other => {
                    return Err(format!(
                        "unknown kind {other:?} (users, groups, contacts, teams, *)"
                    ));
                }
            };
            let access = access.trim().to_ascii_lowercase();
            let (read, write, delete) = match access.as_str() {
                "read" => (true, false, false),
                "write" => (false, true, false),
                "delete" => (false, false, true),
                "*" => (true, true, true),
                other => return Err(format!("unknown access {other:?} (read, write, delete, *)")),
            };
            if role == READ_ONLY_ROLE && (write || delete) {
                return Err(format!(
                    "{entry:?}: {READ_ONLY_ROLE} is the read-only app role; it cannot grant {access}"
                ));
            }
            for set in kinds {
                set.read |= read;
                set.write |= write;
                set.delete |= delete;
            }
            any = true;
        }
        if !any {
            return Err(format!("{entry:?} grants nothing"));
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_syntax_is_parsed_and_merged_per_app_and_role() {
        let p = parse_app_policy(
            " AAA/Photos.ReadWrite.All=users:write,groups:* ; aaa/Photos.Read.All=*:read;aaa/Photos.ReadWrite.All=teams:write",
        )
        .unwrap();
        let rw = p["aaa"]["Photos.ReadWrite.All"];
        assert_eq!(
            rw.users,
            AccessSet {
                read: false,
                write: true,
                delete: false
            }
        );
        assert!(rw.groups.read && rw.groups.write && rw.groups.delete);
        assert!(rw.teams.write && !rw.contacts.write);
        let r = p["aaa"]["Photos.Read.All"];
        assert!(r.users.read && r.teams.read && !r.users.write);
        assert!(parse_app_policy("").unwrap().is_empty());
    }

    #[test]
    fn mistakes_are_refused_with_what_to_write() {
        for bad in [
            "aaa=users:write",
            "aaa/Photos.ReadWrite.All",
            "aaa/Photos.ReadWrite.All=users",
            "aaa/Photos.ReadWrite.All=me:write",
            "aaa/Photos.ReadWrite.All=users:upload",
            "*/Photos.ReadWrite.All=users:write",
            "aaa/=users:write",
            "aaa/Photos.ReadWrite.All=",
            "aaa/Photos.Read.All=users:write",
        ] {
            assert!(parse_app_policy(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
