//! The seeded directory both emulators share: fixed ids for named objects, so docs and scripts can name them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::util::stable_guid;

/// The sandbox tenant id.
pub const TENANT_ID: &str = "8f3c2a10-5b7e-4d21-9c3a-000000000001";
/// The sandbox tenant's initial domain (UPN suffix).
pub const TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The gateway's app registration (client id); its App ID URI is `api://{GATEWAY_CLIENT_ID}`.
pub const GATEWAY_CLIENT_ID: &str = "4a7d1c2e-0000-4b5f-8e6a-0000000000a1";
/// The gateway app's client secret (sandbox only).
pub const GATEWAY_CLIENT_SECRET: &str = "sandbox-gateway-client-secret";
/// The default calling client (`azp`/`appid` of minted caller tokens): a demo SPA.
pub const DEMO_CLIENT_ID: &str = "0c5e8a3b-0000-4d7e-9f10-0000000000c1";
/// The demo user's object id.
pub const DEMO_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000101";
/// The demo user's UPN.
pub const DEMO_USER_UPN: &str = "adele.vance@contoso.onmicrosoft.com";
/// The guest user's object id.
pub const GUEST_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000105";
/// The guest user's UPN (with `#EXT#`, as Entra writes guests).
pub const GUEST_USER_UPN: &str = "alex_fabrikam.com#EXT#@contoso.onmicrosoft.com";
/// A user without an Exchange Online mailbox (Entra ID only): Graph keeps photos of about
/// 100 KB at most for it and answers a larger upload with 404.
pub const NO_MAILBOX_USER_ID: &str = "5b0f9a8e-0000-4c11-8a01-000000000106";
/// That user's UPN.
pub const NO_MAILBOX_USER_UPN: &str = "nestor.wilke@contoso.onmicrosoft.com";

/// The seeded group's id.
pub const GROUP_ID: &str = "2e4c6a80-0000-4b3d-9e21-000000000201";
/// The demo user's named contact folder ("Suppliers").
pub const CONTACT_FOLDER_ID: &str = "AAMkADSandboxFolderSuppliers0001AAA=";
/// A contact of the demo user in the default folder.
pub const CONTACT_ID: &str = "AAMkADSandboxContact0001AAA=";
/// A contact of the demo user in the named folder [`CONTACT_FOLDER_ID`].
pub const FOLDER_CONTACT_ID: &str = "AAMkADSandboxContact0003AAA=";

/// A directory user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Object id (GUID).
    pub id: String,
    /// User principal name.
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: String,
    /// Display name.
    #[serde(rename = "displayName")]
    pub display_name: String,
}

/// A directory group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Object id (GUID).
    pub id: String,
    /// Display name.
    #[serde(rename = "displayName")]
    pub display_name: String,
}

/// A contact in a user's mailbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The owner's UPN.
    pub user: String,
    /// The contact folder id; `None` = the default Contacts folder.
    pub folder: Option<String>,
    /// The contact id.
    pub id: String,
    /// The owner's object id.
    #[serde(skip)]
    pub user_id: String,
    /// Display name.
    #[serde(skip)]
    pub display_name: String,
}

/// The seeded directory: users, groups, contact folders and contacts.
#[derive(Clone, Debug)]
pub struct Directory {
    /// Tenant id.
    pub tenant_id: String,
    /// UPN domain.
    pub domain: String,
    /// All users, named ones first, then `loaduser{i}`.
    pub users: Vec<User>,
    /// All groups.
    pub groups: Vec<Group>,
    /// All contacts.
    pub contacts: Vec<Contact>,
    /// Named contact folders: (owner object id, folder id, display name).
    pub contact_folders: Vec<(String, String, String)>,
    /// Object ids of the users without an Exchange Online mailbox.
    pub without_mailbox: Vec<String>,
    user_index: HashMap<String, usize>,
}

impl Directory {
    /// The documented seed plus `extra_users` generated users `loaduser{i}@contoso.onmicrosoft.com`.
    pub fn seeded(extra_users: usize) -> Directory {
        let named = [
            (DEMO_USER_ID, DEMO_USER_UPN.to_string(), "Adele Vance"),
            (
                "5b0f9a8e-0000-4c11-8a01-000000000102",
                format!("megan.bowen@{TENANT_DOMAIN}"),
                "Megan Bowen",
            ),
            (
                "5b0f9a8e-0000-4c11-8a01-000000000103",
                format!("lee.gu@{TENANT_DOMAIN}"),
                "Lee Gu",
            ),
            (
                "5b0f9a8e-0000-4c11-8a01-000000000104",
                format!("photo.admin@{TENANT_DOMAIN}"),
                "Photo Admin",
            ),
            (
                GUEST_USER_ID,
                GUEST_USER_UPN.to_string(),
                "Alex Wilber (Fabrikam)",
            ),
            (
                NO_MAILBOX_USER_ID,
                NO_MAILBOX_USER_UPN.to_string(),
                "Nestor Wilke (no mailbox)",
            ),
        ];
        let mut users: Vec<User> = named
            .iter()
            .map(|(id, upn, name)| User {
                id: id.to_string(),
                user_principal_name: upn.clone(),
                display_name: name.to_string(),
            })
            .collect();
        users.extend((1..=extra_users).map(|i| User {
            id: stable_guid(&format!("loaduser{i}")),
            user_principal_name: format!("loaduser{i}@{TENANT_DOMAIN}"),
            display_name: format!("Load User {i}"),
        }));
        let groups = vec![
            Group {
                id: GROUP_ID.to_string(),
                display_name: "Sales and Marketing".to_string(),
            },
            Group {
                id: "2e4c6a80-0000-4b3d-9e21-000000000202".to_string(),
                display_name: "Photo Admins".to_string(),
            },
        ];
        let megan = &users[1];
        let contacts = vec![
            contact(
                DEMO_USER_UPN,
                DEMO_USER_ID,
                None,
                CONTACT_ID,
                "Patti Fernandez",
            ),
            contact(
                DEMO_USER_UPN,
                DEMO_USER_ID,
                None,
                "AAMkADSandboxContact0002AAA=",
                "Diego Siciliani",
            ),
            contact(
                DEMO_USER_UPN,
                DEMO_USER_ID,
                Some(CONTACT_FOLDER_ID),
                FOLDER_CONTACT_ID,
                "Contoso Supplies Ltd",
            ),
            contact(
                &megan.user_principal_name,
                &megan.id,
                None,
                "AAMkADSandboxContact0004AAA=",
                "Johanna Lorenz",
            ),
        ];
        let contact_folders = vec![(
            DEMO_USER_ID.to_string(),
            CONTACT_FOLDER_ID.to_string(),
            "Suppliers".to_string(),
        )];
        let user_index = users
            .iter()
            .enumerate()
            .flat_map(|(i, u)| {
                [
                    (u.id.to_ascii_lowercase(), i),
                    (u.user_principal_name.to_lowercase(), i),
                ]
            })
            .collect();
        Directory {
            tenant_id: TENANT_ID.to_string(),
            domain: TENANT_DOMAIN.to_string(),
            users,
            groups,
            contacts,
            contact_folders,
            without_mailbox: vec![NO_MAILBOX_USER_ID.to_string()],
            user_index,
        }
    }

    /// Whether the user (object id) has an Exchange Online mailbox.
    pub fn has_mailbox(&self, user_id: &str) -> bool {
        !self
            .without_mailbox
            .iter()
            .any(|u| u.eq_ignore_ascii_case(user_id))
    }

    /// The demo user.
    pub fn demo_user(&self) -> &User {
        &self.users[0]
    }

    /// A user by object id or UPN (both case-insensitive, as Graph matches them).
    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        self.user_index
            .get(&id_or_upn.to_lowercase())
            .map(|&i| &self.users[i])
    }

    /// A group by id (case-insensitive).
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    /// Whether the user (object id) has a named contact folder with this id.
    pub fn has_folder(&self, user_id: &str, folder: &str) -> bool {
        self.contact_folders
            .iter()
            .any(|(u, f, _)| u == user_id && f == folder)
    }

    /// A contact of the user (object id); with `folder`, only in that folder, without, in any folder
    /// (Exchange item ids are unique in the mailbox, so `/contacts/{id}` finds it anywhere).
    pub fn contact(&self, user_id: &str, folder: Option<&str>, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| {
            c.user_id == user_id
                && c.id == id
                && folder.is_none_or(|f| c.folder.as_deref() == Some(f))
        })
    }
}

fn contact(upn: &str, user_id: &str, folder: Option<&str>, id: &str, name: &str) -> Contact {
    Contact {
        user: upn.to_string(),
        folder: folder.map(str::to_string),
        id: id.to_string(),
        user_id: user_id.to_string(),
        display_name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_by_id_or_upn_case_insensitively() {
        let d = Directory::seeded(3);
        assert_eq!(d.users.len(), 9);
        assert!(!d.has_mailbox(NO_MAILBOX_USER_ID));
        assert!(d.has_mailbox(DEMO_USER_ID));
        assert_eq!(
            d.user("ADELE.VANCE@contoso.onmicrosoft.com").unwrap().id,
            DEMO_USER_ID
        );
        assert_eq!(
            d.user(&GUEST_USER_ID.to_uppercase())
                .unwrap()
                .user_principal_name,
            GUEST_USER_UPN
        );
        assert!(d.user("loaduser3@contoso.onmicrosoft.com").is_some());
        assert!(d.user("loaduser4@contoso.onmicrosoft.com").is_none());
        assert!(
            d.contact(DEMO_USER_ID, Some(CONTACT_FOLDER_ID), FOLDER_CONTACT_ID)
                .is_some()
        );
        assert!(d.contact(DEMO_USER_ID, None, FOLDER_CONTACT_ID).is_some());
        assert!(
            d.contact(DEMO_USER_ID, Some(CONTACT_FOLDER_ID), CONTACT_ID)
                .is_none()
        );
    }
}
