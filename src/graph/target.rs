//! The one vocabulary for what a request addresses: the photo targets (Graph's seven update paths
//! and teams), parsed from the request path exactly as Graph parses it and turned back into a
//! safely encoded Graph path; which view of the photo (`photo/$value`, `photo`, `photos`,
//! `photos/{size}/$value`); the kind of target, whose it is, and the access asked for. Policy,
//! scopes, limits and metric labels all speak it.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::config::{KindScopes, ScopeConfig};

/// The kind of target, as the path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// `/me`: the signed-in user's own photo.
    Me,
    /// `/users/{user}`: a user's photo (the caller's own when it names the caller).
    User,
    /// `/groups/{group}`.
    Group,
    /// A contact in a mailbox (`/me/…` or `/users/{user}/…`).
    Contact,
    /// `/teams/{team}`: a team's photo (its group's).
    Team,
}

impl TargetKind {
    /// The label used in logs and metrics (bounded: five values).
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Me => "me",
            TargetKind::User => "user",
            TargetKind::Group => "group",
            TargetKind::Contact => "contact",
            TargetKind::Team => "team",
        }
    }
}

/// Whose photo a target is, seen from the signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The caller's own photo or one of the caller's own contacts.
    Own,
    /// Another user's, another user's contact's, or a group's.
    Others,
}

/// What is done to a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// GET.
    Read,
    /// PUT or PATCH.
    Write,
    /// DELETE.
    Delete,
}

/// The signed-in user a target is compared with.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The user's object id.
    pub object_id: &'a str,
    /// The user's sign-in name, when known.
    pub username: Option<&'a str>,
}

impl Identity<'_> {
    /// True when `user` (an id from a path) is this user's object id. The sign-in name is not
    /// compared: Microsoft documents it as mutable and unfit for authorization.
    pub fn is(&self, user: &str) -> bool {
        user.eq_ignore_ascii_case(self.object_id)
    }
}

/// Delegated Graph scopes by (kind, access), from the configuration.
#[derive(Debug, Clone)]
pub struct Scopes(ScopeConfig);

impl Scopes {
    /// Wraps the configured scopes.
    pub fn new(config: ScopeConfig) -> Scopes {
        Scopes(config)
    }

    /// The scope an access to a kind of target needs; `None` when Graph offers no such access
    /// (deleting a contact's or a team's photo). Ask with [`PhotoTarget::scope_kind`]: a
    /// `/users/{id}` path naming the caller is `Me`.
    pub fn get(&self, kind: TargetKind, access: Access) -> Option<&str> {
        let table: &KindScopes = match access {
            Access::Read => &self.0.read,
            Access::Write => &self.0.write,
            Access::Delete => {
                let d = &self.0.delete;
                return match kind {
                    TargetKind::Me => Some(&d.me),
                    TargetKind::User => Some(&d.users),
                    TargetKind::Group => Some(&d.groups),
                    TargetKind::Contact | TargetKind::Team => None,
                };
            }
        };
        Some(match kind {
            TargetKind::Me => &table.me,
            TargetKind::User => &table.users,
            TargetKind::Group => &table.groups,
            TargetKind::Contact => &table.contacts,
            TargetKind::Team => &table.teams,
        })
    }
}

/// Characters that cannot stand literally in a path segment (RFC 3986 `pchar`), plus `%` itself:
/// `#`, `?`, `/` and friends can never change the meaning of the Graph URL, while ids keep the
/// `=`, `+`, `@` and `:` that Graph ids and UPNs contain.
const ID_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Whose photo a request addresses: one of Graph's seven update paths, or a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoTarget {
    /// `/me/photo/$value`
    Me,
    /// `/users/{user}/photo/$value`
    User {
        /// Object id or userPrincipalName.
        user: String,
    },
    /// `/groups/{group}/photo/$value`
    Group {
        /// Group object id.
        group: String,
    },
    /// `/me/contacts/{contact}/photo/$value` and `/me/contactfolders/{folder}/contacts/{contact}/photo/$value`
    MyContact {
        /// Contact folder id, if addressed through a folder.
        folder: Option<String>,
        /// Contact id.
        contact: String,
    },
    /// `/users/{user}/contacts/{contact}/photo/$value` and the contact-folder form.
    UserContact {
        /// Object id or userPrincipalName of the mailbox owner.
        user: String,
        /// Contact folder id, if addressed through a folder.
        folder: Option<String>,
        /// Contact id.
        contact: String,
    },
    /// `/teams/{team}/photo/$value`
    Team {
        /// Team id (its group's object id).
        team: String,
    },
}

/// Which view of a target's photo a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhotoView {
    /// `…/photo/$value`: the photo's bytes (every method).
    Value,
    /// `…/photo`: its metadata (GET).
    Metadata,
    /// `…/photos`: the sizes Exchange keeps (GET; me, users, groups).
    Sizes,
    /// `…/photos/{size}/$value`: one of Exchange's square sizes (GET; me, users, groups).
    Sized(u32),
}

/// The square sizes Exchange keeps of a photo, as Graph lists them under `…/photos`.
pub const PHOTO_SIZES: [u32; 9] = [48, 64, 96, 120, 240, 360, 432, 504, 648];

impl PhotoView {
    /// The methods a view answers, for `Allow`.
    pub fn allow(self, kind: TargetKind) -> &'static str {
        match (self, kind) {
            (PhotoView::Value, TargetKind::Contact | TargetKind::Team) => "GET, PUT, PATCH",
            (PhotoView::Value, _) => "GET, PUT, PATCH, DELETE",
            _ => "GET",
        }
    }

    /// The label of the view in metrics (bounded).
    pub const fn as_str(self) -> &'static str {
        match self {
            PhotoView::Value => "value",
            PhotoView::Metadata => "metadata",
            PhotoView::Sizes => "sizes",
            PhotoView::Sized(_) => "sized",
        }
    }
}

/// Why a path could not be turned into a target.
#[derive(Debug, PartialEq, Eq)]
pub enum TargetError {
    /// Not one of the seven paths.
    NoSuchRoute,
    /// One of the shapes, but an id is unacceptable.
    InvalidId(String),
    /// `…/photos/{size}/$value` with a size Exchange does not keep.
    InvalidSize(String),
}

/// Decodes one segment; `None` when it is not UTF-8.
fn decode(seg: &str) -> Option<std::borrow::Cow<'_, str>> {
    percent_decode_str(seg).decode_utf8().ok()
}

fn literal(seg: &str, want: &str) -> bool {
    decode(seg).is_some_and(|s| s.eq_ignore_ascii_case(want))
}

/// A `{size}` segment: `648x648` as Graph names them, or a bare `648`; one of [`PHOTO_SIZES`].
fn parse_size(seg: &str) -> Result<u32, TargetError> {
    let bad = || {
        TargetError::InvalidSize(format!(
            "the size must be one Exchange keeps, written like `96x96`: {}",
            PHOTO_SIZES.map(|s| format!("{s}x{s}")).join(", ")
        ))
    };
    let s = decode(seg).ok_or_else(bad)?.to_ascii_lowercase();
    let (w, h) = s.split_once('x').unwrap_or((&s, &s));
    let n: u32 = w.parse().map_err(|_| bad())?;
    if h.parse::<u32>().ok() != Some(n) || !PHOTO_SIZES.contains(&n) {
        return Err(bad());
    }
    Ok(n)
}

/// Checks a decoded id: not empty, not `.`/`..`, no `/`, `\` or control characters.
fn validate_id(what: &str, raw: &str) -> Result<String, TargetError> {
    let id = decode(raw).ok_or_else(|| {
        TargetError::InvalidId(format!(
            "the {what} id is not valid UTF-8 after percent-decoding"
        ))
    })?;
    if id.is_empty() {
        return Err(TargetError::InvalidId(format!("the {what} id is empty")));
    }
    if id == "." || id == ".." {
        return Err(TargetError::InvalidId(format!(
            "the {what} id may not be `.` or `..`"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| *c == '/' || *c == '\\' || c.is_control())
    {
        let shown = if c.is_control() {
            format!("U+{:04X}", c as u32)
        } else {
            c.to_string()
        };
        return Err(TargetError::InvalidId(format!(
            "the {what} id may not contain {shown} (after percent-decoding)"
        )));
    }
    Ok(id.into_owned())
}

impl PhotoTarget {
    /// Parses a raw (still percent-encoded) `…/photo/$value` request path such as
    /// `/v1.0/users/x/photo/%24value`.
    pub fn parse(path: &str) -> Result<PhotoTarget, TargetError> {
        match PhotoTarget::parse_view(path)? {
            (t, PhotoView::Value) => Ok(t),
            _ => Err(TargetError::NoSuchRoute),
        }
    }

    /// Parses a raw request path into the target and the view of its photo it names.
    pub fn parse_view(path: &str) -> Result<(PhotoTarget, PhotoView), TargetError> {
        let rest = path.strip_prefix('/').ok_or(TargetError::NoSuchRoute)?;
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        if n < 3 || !literal(segs[0], "v1.0") {
            return Err(TargetError::NoSuchRoute);
        }
        // The view is read from the end: `photo/$value`, `photo`, `photos`, `photos/{size}/$value`.
        let (view, tail) =
            if n >= 4 && literal(segs[n - 2], "photo") && literal(segs[n - 1], "$value") {
                (PhotoView::Value, 2)
            } else if literal(segs[n - 1], "photo") {
                (PhotoView::Metadata, 1)
            } else if literal(segs[n - 1], "photos") {
                (PhotoView::Sizes, 1)
            } else if n >= 5 && literal(segs[n - 3], "photos") && literal(segs[n - 1], "$value") {
                (PhotoView::Sized(parse_size(segs[n - 2])?), 3)
            } else {
                return Err(TargetError::NoSuchRoute);
            };
        let mid = &segs[1..n - tail];
        let is = |i: usize, w: &str| literal(mid[i], w);
        // Shapes are matched on the literal segments first, so an id that happens to be named
        // like a keyword (a user called `contacts`) still lands in the right place.
        let target = match mid.len() {
            1 if is(0, "me") => PhotoTarget::Me,
            2 if is(0, "users") => PhotoTarget::User {
                user: validate_id("user", mid[1])?,
            },
            2 if is(0, "groups") => PhotoTarget::Group {
                group: validate_id("group", mid[1])?,
            },
            2 if is(0, "teams") => PhotoTarget::Team {
                team: validate_id("team", mid[1])?,
            },
            3 if is(0, "me") && is(1, "contacts") => PhotoTarget::MyContact {
                folder: None,
                contact: validate_id("contact", mid[2])?,
            },
            4 if is(0, "users") && is(2, "contacts") => PhotoTarget::UserContact {
                user: validate_id("user", mid[1])?,
                folder: None,
                contact: validate_id("contact", mid[3])?,
            },
            5 if is(0, "me") && is(1, "contactfolders") && is(3, "contacts") => {
                PhotoTarget::MyContact {
                    folder: Some(validate_id("contact folder", mid[2])?),
                    contact: validate_id("contact", mid[4])?,
                }
            }
            6 if is(0, "users") && is(2, "contactfolders") && is(4, "contacts") => {
                PhotoTarget::UserContact {
                    user: validate_id("user", mid[1])?,
                    folder: Some(validate_id("contact folder", mid[3])?),
                    contact: validate_id("contact", mid[5])?,
                }
            }
            _ => return Err(TargetError::NoSuchRoute),
        };
        // Exchange keeps sizes of users' and groups' photos only; contacts and teams have one.
        let sized = matches!(view, PhotoView::Sizes | PhotoView::Sized(_));
        if sized
            && !matches!(
                target.kind(),
                TargetKind::Me | TargetKind::User | TargetKind::Group
            )
        {
            return Err(TargetError::NoSuchRoute);
        }
        Ok((target, view))
    }

    /// The Graph path below `/v1.0`, ids percent-encoded, e.g. `/users/a%23EXT%23@b/photo/$value`.
    pub fn graph_path(&self) -> String {
        self.view_path(PhotoView::Value)
    }

    /// The Graph path of one view of the photo, below `/v1.0`.
    pub fn view_path(&self, view: PhotoView) -> String {
        let tail = match view {
            PhotoView::Value => "/photo/$value".to_owned(),
            PhotoView::Metadata => "/photo".to_owned(),
            PhotoView::Sizes => "/photos".to_owned(),
            PhotoView::Sized(n) => format!("/photos/{n}x{n}/$value"),
        };
        format!("{}{tail}", self.base_path())
    }

    /// The Graph path of the target itself, e.g. `/users/{id}` or `/me/contacts/{id}`.
    pub fn base_path(&self) -> String {
        let enc = encode_id;
        let contact_part = |folder: &Option<String>, contact: &str| match folder {
            Some(f) => format!("/contactFolders/{}/contacts/{}", enc(f), enc(contact)),
            None => format!("/contacts/{}", enc(contact)),
        };
        match self {
            PhotoTarget::Me => "/me".to_owned(),
            PhotoTarget::User { user } => format!("/users/{}", enc(user)),
            PhotoTarget::Group { group } => format!("/groups/{}", enc(group)),
            PhotoTarget::Team { team } => format!("/teams/{}", enc(team)),
            PhotoTarget::MyContact { folder, contact } => {
                format!("/me{}", contact_part(folder, contact))
            }
            PhotoTarget::UserContact {
                user,
                folder,
                contact,
            } => {
                format!("/users/{}{}", enc(user), contact_part(folder, contact))
            }
        }
    }

    /// The route template, for logs and metrics (bounded cardinality: never ids).
    pub fn template(&self) -> &'static str {
        match self {
            PhotoTarget::Me => "/v1.0/me/photo/$value",
            PhotoTarget::User { .. } => "/v1.0/users/{user}/photo/$value",
            PhotoTarget::Group { .. } => "/v1.0/groups/{group}/photo/$value",
            PhotoTarget::Team { .. } => "/v1.0/teams/{team}/photo/$value",
            PhotoTarget::MyContact { folder: None, .. } => {
                "/v1.0/me/contacts/{contact}/photo/$value"
            }
            PhotoTarget::MyContact {
                folder: Some(_), ..
            } => "/v1.0/me/contactFolders/{folder}/contacts/{contact}/photo/$value",
            PhotoTarget::UserContact { folder: None, .. } => {
                "/v1.0/users/{user}/contacts/{contact}/photo/$value"
            }
            PhotoTarget::UserContact {
                folder: Some(_), ..
            } => "/v1.0/users/{user}/contactFolders/{folder}/contacts/{contact}/photo/$value",
        }
    }

    /// The route template of one view, for logs and metrics (bounded: never ids).
    pub fn view_template(&self, view: PhotoView) -> &'static str {
        use PhotoTarget as T;
        match view {
            PhotoView::Value => self.template(),
            PhotoView::Metadata => match self {
                T::Me => "/v1.0/me/photo",
                T::User { .. } => "/v1.0/users/{user}/photo",
                T::Group { .. } => "/v1.0/groups/{group}/photo",
                T::Team { .. } => "/v1.0/teams/{team}/photo",
                T::MyContact { folder: None, .. } => "/v1.0/me/contacts/{contact}/photo",
                T::MyContact { .. } => "/v1.0/me/contactFolders/{folder}/contacts/{contact}/photo",
                T::UserContact { folder: None, .. } => {
                    "/v1.0/users/{user}/contacts/{contact}/photo"
                }
                T::UserContact { .. } => {
                    "/v1.0/users/{user}/contactFolders/{folder}/contacts/{contact}/photo"
                }
            },
            PhotoView::Sizes => match self {
                T::Me => "/v1.0/me/photos",
                T::User { .. } => "/v1.0/users/{user}/photos",
                _ => "/v1.0/groups/{group}/photos",
            },
            PhotoView::Sized(_) => match self {
                T::Me => "/v1.0/me/photos/{size}/$value",
                T::User { .. } => "/v1.0/users/{user}/photos/{size}/$value",
                _ => "/v1.0/groups/{group}/photos/{size}/$value",
            },
        }
    }

    /// The kind of target.
    pub fn kind(&self) -> TargetKind {
        match self {
            PhotoTarget::Me => TargetKind::Me,
            PhotoTarget::User { .. } => TargetKind::User,
            PhotoTarget::Group { .. } => TargetKind::Group,
            PhotoTarget::MyContact { .. } | PhotoTarget::UserContact { .. } => TargetKind::Contact,
            PhotoTarget::Team { .. } => TargetKind::Team,
        }
    }

    /// The kind whose scope an access needs: a user's own photo named by object id is `Me` (the
    /// self scope, e.g. `User.ReadWrite`, not `User.ReadWrite.All`), every other target its kind.
    pub fn scope_kind(&self, caller: Identity<'_>) -> TargetKind {
        match self {
            PhotoTarget::User { user } if caller.is(user) => TargetKind::Me,
            other => other.kind(),
        }
    }

    /// Whose photo this is: `/me`, or a path naming the caller's object id, is the caller's own
    /// (by the immutable `oid` only; the UPN may name the caller's mailbox but grants nothing).
    pub fn whose(&self, caller: Identity<'_>) -> Whose {
        match self {
            PhotoTarget::Me | PhotoTarget::MyContact { .. } => Whose::Own,
            PhotoTarget::User { user } | PhotoTarget::UserContact { user, .. }
                if caller.is(user) =>
            {
                Whose::Own
            }
            PhotoTarget::User { .. }
            | PhotoTarget::UserContact { .. }
            | PhotoTarget::Group { .. }
            | PhotoTarget::Team { .. } => Whose::Others,
        }
    }

    /// The mailbox (or group) a target names in its path, with no signed-in user to compare it
    /// with (an app-only caller's); `None` for `/me` paths, which name only the signed-in user.
    pub fn named_mailbox(&self) -> Option<MailboxName<'_>> {
        match self {
            PhotoTarget::Me | PhotoTarget::MyContact { .. } => None,
            PhotoTarget::User { user } | PhotoTarget::UserContact { user, .. } => {
                Some(if is_object_id(user) {
                    MailboxName::Id(user)
                } else {
                    MailboxName::Upn(user)
                })
            }
            PhotoTarget::Group { group } => Some(MailboxName::Id(group)),
            PhotoTarget::Team { team } => Some(MailboxName::Id(team)),
        }
    }

    /// The mailbox (or group) the photo lives in, for Graph's per-mailbox limits: the caller's
    /// own UPN counts as the caller's object id; another user's UPN names a mailbox whose key is
    /// its object id, which only Graph knows (`graph/users.rs`).
    pub fn mailbox<'a>(&'a self, caller: Identity<'a>) -> MailboxName<'a> {
        match self {
            PhotoTarget::Me | PhotoTarget::MyContact { .. } => MailboxName::Id(caller.object_id),
            PhotoTarget::User { user } | PhotoTarget::UserContact { user, .. } => {
                if caller
                    .username
                    .is_some_and(|u| u.eq_ignore_ascii_case(user))
                {
                    MailboxName::Id(caller.object_id)
                } else if is_object_id(user) {
                    MailboxName::Id(user)
                } else {
                    MailboxName::Upn(user)
                }
            }
            // A team's photo is its group's: the team id is the group's object id.
            PhotoTarget::Group { group } => MailboxName::Id(group),
            PhotoTarget::Team { team } => MailboxName::Id(team),
        }
    }
}

/// How a target names its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxName<'a> {
    /// An object id (the caller's, a user's or a group's): the mailbox's key as it is.
    Id(&'a str),
    /// Another user's userPrincipalName: the same mailbox as that user's object id.
    Upn(&'a str),
}

impl<'a> MailboxName<'a> {
    /// The name as the path gave it.
    pub fn as_str(self) -> &'a str {
        match self {
            MailboxName::Id(n) | MailboxName::Upn(n) => n,
        }
    }
}

/// True for an object id as Graph writes them (a hyphenated GUID). A UPN always has an `@`, so it
/// is never one.
pub fn is_object_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// An id percent-encoded as one Graph path segment.
pub fn encode_id(id: &str) -> String {
    utf8_percent_encode(id, ID_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_seven_shapes_case_insensitively() {
        let cases = [
            ("/v1.0/me/photo/$value", "/me/photo/$value"),
            ("/v1.0/USERS/u1/Photo/%24value", "/users/u1/photo/$value"),
            ("/v1.0/groups/g1/photo/$value", "/groups/g1/photo/$value"),
            (
                "/v1.0/me/contacts/c1/photo/$value",
                "/me/contacts/c1/photo/$value",
            ),
            (
                "/v1.0/users/u1/contacts/c1/photo/$value",
                "/users/u1/contacts/c1/photo/$value",
            ),
            (
                "/v1.0/me/contactFolders/f1/contacts/c1/photo/$value",
                "/me/contactFolders/f1/contacts/c1/photo/$value",
            ),
            (
                "/v1.0/users/u1/contactfolders/f1/contacts/c1/photo/%24VALUE",
                "/users/u1/contactFolders/f1/contacts/c1/photo/$value",
            ),
        ];
        for (input, graph) in cases {
            assert_eq!(
                PhotoTarget::parse(input).unwrap().graph_path(),
                graph,
                "{input}"
            );
        }
    }

    #[test]
    fn guest_upn_is_decoded_then_re_encoded() {
        let t = PhotoTarget::parse(
            "/v1.0/users/alex_fabrikam.com%23EXT%23@contoso.onmicrosoft.com/photo/$value",
        )
        .unwrap();
        assert_eq!(
            t,
            PhotoTarget::User {
                user: "alex_fabrikam.com#EXT#@contoso.onmicrosoft.com".into()
            }
        );
        assert_eq!(
            t.graph_path(),
            "/users/alex_fabrikam.com%23EXT%23@contoso.onmicrosoft.com/photo/$value"
        );
    }

    #[test]
    fn ids_keep_pchar_and_lose_everything_else() {
        let t = PhotoTarget::MyContact {
            folder: None,
            contact: "AAMk+x=:@'$!(y)".into(),
        };
        assert_eq!(t.graph_path(), "/me/contacts/AAMk+x=:@'$!(y)/photo/$value");
        let t = PhotoTarget::User {
            user: "a b?c%d\u{e9}[x]".into(),
        };
        assert_eq!(
            t.graph_path(),
            "/users/a%20b%3Fc%25d%C3%A9%5Bx%5D/photo/$value"
        );
    }

    #[test]
    fn dangerous_ids_are_refused() {
        for bad in [
            "%2e%2e", ".", "..", "a%2Fb", "a%5Cb", "a%00b", "a%0Ab", "%FF", "a%7F",
        ] {
            let p = format!("/v1.0/users/{bad}/photo/$value");
            assert!(
                matches!(PhotoTarget::parse(&p), Err(TargetError::InvalidId(_))),
                "{p}"
            );
        }
        assert!(matches!(
            PhotoTarget::parse("/v1.0/users//photo/$value"),
            Err(TargetError::InvalidId(_))
        ));
    }

    #[test]
    fn mailboxes_are_object_ids_unless_another_users_upn_names_them() {
        let me = Identity {
            object_id: "5b0f9a8e-0000-4c11-8a01-000000000101",
            username: Some("adele@contoso.com"),
        };
        let user = |u: &str| PhotoTarget::User { user: u.into() };
        assert_eq!(
            user("ADELE@contoso.com").mailbox(me),
            MailboxName::Id(me.object_id),
            "the caller's own UPN needs no lookup"
        );
        assert_eq!(
            user("5B0F9A8E-0000-4C11-8A01-000000000102").mailbox(me),
            MailboxName::Id("5B0F9A8E-0000-4C11-8A01-000000000102")
        );
        assert_eq!(
            user("megan@contoso.com").mailbox(me),
            MailboxName::Upn("megan@contoso.com")
        );
        let contact = PhotoTarget::UserContact {
            user: "megan@contoso.com".into(),
            folder: None,
            contact: "c".into(),
        };
        assert_eq!(contact.mailbox(me), MailboxName::Upn("megan@contoso.com"));
        assert_eq!(
            PhotoTarget::Group { group: "g".into() }.mailbox(me),
            MailboxName::Id("g")
        );
        for not_id in [
            "5b0f9a8e00004c118a01000000000102",
            "{5b0f9a8e-0000-4c11-8a01-000000000102}",
            "5b0f9a8e-0000-4c11-8a01-00000000010z",
            "megan@contoso.com",
        ] {
            assert!(!is_object_id(not_id), "{not_id}");
        }
    }

    #[test]
    fn views_teams_and_sizes_parse_and_a_size_exchange_lacks_is_refused() {
        let v = |p: &str| PhotoTarget::parse_view(p);
        let team = PhotoTarget::Team { team: "t1".into() };
        assert_eq!(
            v("/v1.0/TEAMS/t1/photo/%24value"),
            Ok((team.clone(), PhotoView::Value))
        );
        assert_eq!(
            v("/v1.0/teams/t1/photo"),
            Ok((team.clone(), PhotoView::Metadata))
        );
        assert_eq!(team.graph_path(), "/teams/t1/photo/$value");
        assert_eq!(
            v("/v1.0/me/photos"),
            Ok((PhotoTarget::Me, PhotoView::Sizes))
        );
        for size in ["96x96", "96", "648X648"] {
            let (t, view) = v(&format!("/v1.0/users/u/photos/{size}/$value")).unwrap();
            assert_eq!(
                view,
                PhotoView::Sized(if size == "648X648" { 648 } else { 96 })
            );
            assert!(
                t.view_path(view).ends_with("x96/$value")
                    || t.view_path(view).ends_with("648x648/$value")
            );
        }
        for bad in ["100x100", "96x48", "x", "0"] {
            assert!(
                matches!(
                    v(&format!("/v1.0/groups/g/photos/{bad}/$value")),
                    Err(TargetError::InvalidSize(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            v("/v1.0/me/contacts/c/photos"),
            Err(TargetError::NoSuchRoute)
        );
        assert_eq!(
            PhotoTarget::parse("/v1.0/me/photo"),
            Err(TargetError::NoSuchRoute),
            "an upload needs $value"
        );
        assert_eq!(PhotoView::Value.allow(TargetKind::Team), "GET, PUT, PATCH");
        assert_eq!(
            PhotoView::Value.allow(TargetKind::User),
            "GET, PUT, PATCH, DELETE"
        );
        assert_eq!(PhotoView::Sizes.allow(TargetKind::Me), "GET");
    }

    #[test]
    fn ones_own_object_id_takes_the_self_scope() {
        let me = Identity {
            object_id: "5b0f9a8e-0000-4c11-8a01-000000000101",
            username: Some("adele@contoso.com"),
        };
        let user = |u: &str| PhotoTarget::User { user: u.into() };
        assert_eq!(
            user("5B0F9A8E-0000-4C11-8A01-000000000101").scope_kind(me),
            TargetKind::Me
        );
        assert_eq!(user("adele@contoso.com").scope_kind(me), TargetKind::User);
        assert_eq!(user("megan@contoso.com").scope_kind(me), TargetKind::User);
        assert_eq!(
            PhotoTarget::Team { team: "t".into() }.scope_kind(me),
            TargetKind::Team
        );
    }

    #[test]
    fn other_paths_are_not_routes() {
        for p in [
            "/v1.0/me/photo",
            "/v1.0/me/photos/$value",
            "/beta/me/photo/$value",
            "/v1.0/teams/t/photos/48x48/$value",
            "/v1.0/me/contacts/c/photos",
            "/v1.0/me/photo/$value/",
        ] {
            assert_eq!(PhotoTarget::parse(p), Err(TargetError::NoSuchRoute), "{p}");
        }
    }
}
