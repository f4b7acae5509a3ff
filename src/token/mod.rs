//! Graph tokens for a caller: the On-Behalf-Of exchange, the gateway's own credential, and the
//! single-flight cache in front of them.

pub mod cache;
pub mod credential;
pub mod obo;

pub use cache::TokenCache;
pub use credential::Credential;
pub use obo::{EntraSaid, GraphToken, OboClient, OboError};
