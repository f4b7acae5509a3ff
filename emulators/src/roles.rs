//! Entra directory roles the seeded directory assigns, and the application permissions granted to
//! the seeded app registrations: what Entra writes into tokens as `wids` (delegated) and `roles`
//! (app-only), and what the Graph emulator checks.

use crate::directory::{DEMO_CLIENT_ID, DEMO_USER_ID, GATEWAY_CLIENT_ID, GUEST_USER_ID};

/// Role template id of Global Administrator.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// Role template id of User Administrator.
pub const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
/// Role template id of People Administrator ("manage profile photos of users").
pub const PEOPLE_ADMINISTRATOR: &str = "024906de-61e5-49c8-8572-40335f1e0e10";
/// The default role every member user holds; Entra lists it in `wids` too.
pub const DEFAULT_USER_ROLE: &str = "b79fbf4d-3ef9-4689-8143-76b194e85509";
/// The default role of guest users.
pub const GUEST_USER_ROLE: &str = "10dae51f-b6af-4016-8d66-8c2a99b929b3";

/// The roles Graph accepts for a delegated change of another user's photo.
pub const PHOTO_ADMIN_ROLES: [&str; 3] = [
    GLOBAL_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    PEOPLE_ADMINISTRATOR,
];

/// `photo.admin@contoso.onmicrosoft.com`: People Administrator.
pub const PHOTO_ADMIN_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000104";
/// `megan.bowen@contoso.onmicrosoft.com`: Global Administrator.
pub const GLOBAL_ADMIN_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000102";
/// `lee.gu@contoso.onmicrosoft.com`: a plain user (no admin role), for the negative cases.
pub const PLAIN_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000103";
/// `lee.gu@contoso.onmicrosoft.com`.
pub const PLAIN_USER_UPN: &str = "lee.gu@contoso.onmicrosoft.com";

/// Directory role assignments of the seed: (user object id, role template id, role name).
/// The demo user (whom the sandbox and the gateway's tests sign in as) is a User Administrator, so
/// it may set anyone's photo; everyone not listed (Lee Gu, the guest, `loaduser{i}`) holds none.
pub const ROLE_ASSIGNMENTS: [(&str, &str, &str); 3] = [
    (DEMO_USER_ID, USER_ADMINISTRATOR, "User Administrator"),
    (
        GLOBAL_ADMIN_USER_ID,
        GLOBAL_ADMINISTRATOR,
        "Global Administrator",
    ),
    (
        PHOTO_ADMIN_USER_ID,
        PEOPLE_ADMINISTRATOR,
        "People Administrator",
    ),
];

/// `wids` of a token for this user (object id): its admin roles, then the default user role
/// (guest or member), as Entra writes them.
pub fn wids_of(user_id: &str) -> Vec<String> {
    let mut wids: Vec<String> = ROLE_ASSIGNMENTS
        .iter()
        .filter(|(u, _, _)| u.eq_ignore_ascii_case(user_id))
        .map(|(_, r, _)| r.to_string())
        .collect();
    wids.push(
        if user_id.eq_ignore_ascii_case(GUEST_USER_ID) {
            GUEST_USER_ROLE
        } else {
            DEFAULT_USER_ROLE
        }
        .to_string(),
    );
    wids
}

/// Whether any of these `wids` lets a delegated caller change another user's photo.
pub fn may_change_others_photos<S: AsRef<str>>(wids: &[S]) -> bool {
    wids.iter().any(|w| {
        PHOTO_ADMIN_ROLES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(w.as_ref()))
    })
}

/// Microsoft Graph application permissions admin-consented for the gateway app: what a
/// client-credentials (`.default`) Graph token of the gateway carries as `roles`.
pub const GATEWAY_APP_PERMISSIONS: [&str; 3] = [
    "ProfilePhoto.ReadWrite.All",
    "TeamSettings.ReadWrite.All",
    "Contacts.ReadWrite",
];

/// The seeded app registrations and their granted Graph application permissions.
pub fn app_permissions(client_id: &str) -> &'static [&'static str] {
    if client_id.eq_ignore_ascii_case(GATEWAY_CLIENT_ID) {
        &GATEWAY_APP_PERMISSIONS
    } else {
        &[]
    }
}

/// App role of the gateway's registration: change (and read) photos as the application itself.
pub const PHOTOS_READWRITE_ALL: &str = "Photos.ReadWrite.All";
/// App role of the gateway's registration: read photos as the application itself.
pub const PHOTOS_READ_ALL: &str = "Photos.Read.All";
/// The app roles the gateway's registration defines (`appRoles`, allowed member type
/// Application): what app-only caller tokens for the gateway carry as `roles`.
pub const GATEWAY_APP_ROLES: [&str; 2] = [PHOTOS_READWRITE_ALL, PHOTOS_READ_ALL];

/// A seeded daemon (an HR sync service): assigned `Photos.ReadWrite.All` on the gateway.
pub const HR_SYNC_CLIENT_ID: &str = "0c5e8a3b-0000-4d7e-9f10-0000000000d1";
/// A seeded read-only daemon (a directory viewer): assigned `Photos.Read.All` on the gateway.
pub const PHOTO_READER_CLIENT_ID: &str = "0c5e8a3b-0000-4d7e-9f10-0000000000d2";

/// The client secret of every seeded daemon app, for the client-credentials grant for the
/// gateway (`scope=api://{gateway client id}/.default`).
pub const DAEMON_CLIENT_SECRET: &str = "sandbox-daemon-client-secret";

/// The seeded app registrations (client id, name) and the gateway app roles assigned to each
/// (admin-consented): what their app-only tokens for the gateway carry as `roles`. The demo
/// client is assigned `Photos.ReadWrite.All` too, so the sandbox can show a daemon call.
pub const GATEWAY_ROLE_ASSIGNMENTS: [(&str, &str, &[&str]); 3] = [
    (DEMO_CLIENT_ID, "Photo demo client", &[PHOTOS_READWRITE_ALL]),
    (HR_SYNC_CLIENT_ID, "HR sync daemon", &[PHOTOS_READWRITE_ALL]),
    (
        PHOTO_READER_CLIENT_ID,
        "Photo reader daemon",
        &[PHOTOS_READ_ALL],
    ),
];

/// The gateway app roles assigned to `client_id` (none for an app not seeded).
pub fn gateway_roles_of(client_id: &str) -> &'static [&'static str] {
    GATEWAY_ROLE_ASSIGNMENTS
        .iter()
        .find(|(id, _, _)| id.eq_ignore_ascii_case(client_id))
        .map_or(&[], |(_, _, roles)| roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_carry_their_role_and_everyone_the_default_role() {
        let adele = wids_of(DEMO_USER_ID);
        assert_eq!(adele, [USER_ADMINISTRATOR, DEFAULT_USER_ROLE]);
        assert!(may_change_others_photos(&adele));
        let lee = wids_of(PLAIN_USER_ID);
        assert_eq!(lee, [DEFAULT_USER_ROLE]);
        assert!(!may_change_others_photos(&lee));
        assert_eq!(wids_of(GUEST_USER_ID), [GUEST_USER_ROLE]);
        assert!(may_change_others_photos(&wids_of(PHOTO_ADMIN_USER_ID)));
        assert!(may_change_others_photos(&wids_of(GLOBAL_ADMIN_USER_ID)));
    }

    #[test]
    fn seeded_daemons_hold_gateway_app_roles() {
        assert_eq!(gateway_roles_of(HR_SYNC_CLIENT_ID), [PHOTOS_READWRITE_ALL]);
        assert_eq!(gateway_roles_of(PHOTO_READER_CLIENT_ID), [PHOTOS_READ_ALL]);
        assert_eq!(gateway_roles_of(DEMO_CLIENT_ID), [PHOTOS_READWRITE_ALL]);
        assert!(gateway_roles_of("unknown").is_empty());
        for (_, _, roles) in GATEWAY_ROLE_ASSIGNMENTS {
            assert!(roles.iter().all(|r| GATEWAY_APP_ROLES.contains(r)));
        }
    }
}
