//! Microsoft Graph: which photo a request addresses, the client that uploads it, and which mailbox
//! a user named by userPrincipalName is.

pub mod client;
pub mod target;
pub mod users;

pub use client::{GraphCall, GraphClient, GraphErrorInfo, GraphFailure, GraphRead, GraphUpload};
pub use target::{
    Access, Identity, MailboxName, PHOTO_SIZES, PhotoTarget, PhotoView, Scopes, TargetError,
    TargetKind, Whose, encode_id, is_object_id,
};
pub use users::{LookupVia, UserIds};
