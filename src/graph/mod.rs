//! Microsoft Graph: which photo a request addresses, and the client that uploads it.

pub mod client;
pub mod target;

pub use client::{GraphClient, GraphErrorInfo, GraphFailure, GraphUpload};
pub use target::{Access, Identity, PhotoTarget, Scopes, TargetError, TargetKind, Whose};
