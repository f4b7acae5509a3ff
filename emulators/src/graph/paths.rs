//! Graph's profile-photo paths: `/me`, `/users/{id}`, `/groups/{id}` and a user's contacts (in the
//! default folder or a named one), each `/photo` or `/photo/$value`, as Graph spells and matches them.

use crate::util::decoded_segments;

/// Whose photo a path is about.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Owner {
    Me,
    User(String),
    Group(String),
}

/// A parsed photo path.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PhotoPath {
    pub(super) owner: Owner,
    pub(super) folder: Option<String>,
    pub(super) contact: Option<String>,
    /// `…/photos/{size}`: one of the sizes Exchange keeps (users and groups only).
    pub(super) size: Option<u32>,
    /// `…/photos`: the list of the sizes kept (users and groups only).
    pub(super) list: bool,
    pub(super) value: bool,
}

/// The square sizes Exchange keeps of a photo, served at `…/photos/{size}/$value`.
pub const PHOTO_SIZES: [u32; 9] = [48, 64, 96, 120, 240, 360, 432, 504, 648];

impl PhotoPath {
    pub(super) fn parse(path: &str) -> Option<PhotoPath> {
        let segs = decoded_segments(path.strip_prefix('/')?.trim_end_matches('/'));
        let is = |i: usize, name: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
        let id = |i: usize| segs.get(i).filter(|s| !s.is_empty()).cloned();
        if !(is(0, "v1.0") || is(0, "beta")) {
            return None;
        }
        let mut i = 1;
        let owner = if is(i, "me") {
            i += 1;
            Owner::Me
        } else if is(i, "users") {
            i += 2;
            Owner::User(id(i - 1)?)
        } else if is(i, "groups") {
            i += 2;
            Owner::Group(id(i - 1)?)
        } else {
            return None;
        };
        let (mut folder, mut contact) = (None, None);
        if is(i, "contacts") {
            contact = Some(id(i + 1)?);
            i += 2;
        } else if is(i, "contactfolders") && is(i + 2, "contacts") {
            folder = Some(id(i + 1)?);
            contact = Some(id(i + 3)?);
            i += 4;
        }
        if contact.is_some() && matches!(owner, Owner::Group(_)) {
            return None;
        }
        let mut size = None;
        let mut list = false;
        if is(i, "photos") && contact.is_none() && i + 1 == segs.len() {
            list = true;
            i += 1;
        } else if is(i, "photos") && contact.is_none() {
            // `{size}` is `648x648` in Graph's ids; a bare `648` is accepted too.
            let seg = segs.get(i + 1)?.to_ascii_lowercase();
            let (w, h) = seg.split_once('x').unwrap_or((&seg, &seg));
            let n: u32 = w.parse().ok()?;
            if h.parse::<u32>().ok()? != n {
                return None;
            }
            size = Some(n);
            i += 2;
        } else if !is(i, "photo") {
            return None;
        } else {
            i += 1;
        }
        let value = is(i, "$value");
        if value {
            i += 1;
        }
        (i == segs.len()).then_some(PhotoPath {
            owner,
            folder,
            contact,
            size,
            list,
            value,
        })
    }

    pub(super) fn template(&self) -> String {
        let mut t = String::from(match self.owner {
            Owner::Me => "/me",
            Owner::User(_) => "/users/{id}",
            Owner::Group(_) => "/groups/{id}",
        });
        if self.folder.is_some() {
            t.push_str("/contactFolders/{id}");
        }
        if self.contact.is_some() {
            t.push_str("/contacts/{id}");
        }
        if self.list {
            t.push_str("/photos");
            return t;
        }
        t.push_str(match (self.size.is_some(), self.value) {
            (true, true) => "/photos/{size}/$value",
            (true, false) => "/photos/{size}",
            (false, true) => "/photo/$value",
            (false, false) => "/photo",
        });
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seven_paths_and_their_spellings() {
        let p = PhotoPath::parse("/v1.0/ME/Photo/%24value").unwrap();
        assert_eq!(p.template(), "/me/photo/$value");
        let p = PhotoPath::parse(
            "/v1.0/users/alex_fabrikam.com%23EXT%23@contoso.onmicrosoft.com/photo/$value",
        )
        .unwrap();
        assert_eq!(
            p.owner,
            Owner::User("alex_fabrikam.com#EXT#@contoso.onmicrosoft.com".into())
        );
        let p = PhotoPath::parse("/v1.0/users/u/contactFolders/f/contacts/c/photo/$value").unwrap();
        assert_eq!(
            p.template(),
            "/users/{id}/contactFolders/{id}/contacts/{id}/photo/$value"
        );
        assert_eq!(p.folder.as_deref(), Some("f"));
        assert!(PhotoPath::parse("/v1.0/groups/g/contacts/c/photo/$value").is_none());
        assert!(PhotoPath::parse("/v1.0/users//photo/$value").is_none());
        assert!(PhotoPath::parse("/v1.0/me/photo/$value/extra").is_none());
        assert!(!PhotoPath::parse("/v1.0/me/photo").unwrap().value);
        let p = PhotoPath::parse("/v1.0/users/u/photos/648x648/$value").unwrap();
        assert_eq!((p.size, p.value), (Some(648), true));
        assert_eq!(p.template(), "/users/{id}/photos/{size}/$value");
        assert_eq!(
            PhotoPath::parse("/v1.0/me/photos/96").unwrap().size,
            Some(96)
        );
        assert!(PhotoPath::parse("/v1.0/me/photos/96x48/$value").is_none());
        let p = PhotoPath::parse("/v1.0/groups/g/photos").unwrap();
        assert!(p.list && !p.value && p.size.is_none());
        assert_eq!(p.template(), "/groups/{id}/photos");
        assert!(PhotoPath::parse("/v1.0/me/contacts/c/photos/96/$value").is_none());
    }
}
