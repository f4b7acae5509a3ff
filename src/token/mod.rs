//! Graph tokens for a caller: the On-Behalf-Of exchange, the gateway's own credential, and the
//! single-flight cache in front of them; for app-only callers, the gateway's own client-credentials
//! token (`app.rs`).

pub mod app;
pub mod cache;
pub mod credential;
pub mod l2;
pub mod obo;

pub use app::AppTokens;
pub use cache::TokenCache;
pub use credential::Credential;
pub use l2::L2Tokens;
pub use obo::{EntraSaid, GraphToken, OboClient, OboError};
