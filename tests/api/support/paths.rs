//! Users and gateway paths the tests name again and again.

use photo_gateway_emulators::directory::DEMO_USER_UPN;

/// The demo user every test uploads as, unless it says otherwise.
pub const DEMO: &str = DEMO_USER_UPN;

/// A second seeded user: another mailbox, another token cache entry, another person's photo.
pub const MEGAN: &str = "megan.bowen@contoso.onmicrosoft.com";

/// The caller's own photo.
pub const ME: &str = "/v1.0/me/photo/$value";

/// The seeded guest's photo, its `#` percent-encoded as a client must send it.
pub const GUEST_PHOTO: &str =
    "/v1.0/users/alex_fabrikam.com%23EXT%23@contoso.onmicrosoft.com/photo/$value";

/// The photo of user `upn` (or object id).
pub fn user_photo(upn: &str) -> String {
    format!("/v1.0/users/{upn}/photo/$value")
}

/// The photo of group `id`.
pub fn group_photo(id: &str) -> String {
    format!("/v1.0/groups/{id}/photo/$value")
}
