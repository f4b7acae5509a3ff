//! Microsoft Graph: which photo a request addresses, the client that uploads it, and which mailbox
//! a user named by userPrincipalName is.

pub mod client;
pub mod target;
pub mod users;

pub use client::{GraphClient, GraphErrorInfo, GraphFailure, GraphUpload};
pub use target::{
    Access, Identity, MailboxName, PhotoTarget, Scopes, TargetError, TargetKind, Whose,
    is_object_id,
};
pub use users::{LookupVia, UserIds};
