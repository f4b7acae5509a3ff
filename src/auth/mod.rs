//! Who is calling: the bearer token, validated against the tenant's keys and the gateway's rules.

pub mod app_policy;
pub mod caller;
pub mod jwks;
pub mod policy;
pub mod validate;
pub mod verified;

pub use app_policy::AppPolicy;
pub use caller::{AppOnly, Assertion, Caller, Credentials, Principal, SignedInUser, bearer_token};
pub use jwks::KeyStore;
pub use policy::CallerPolicy;
pub use validate::TokenValidator;
