//! photo-gateway: sets Microsoft 365 profile photos on behalf of signed-in users.
//!
//! `Application::build` (in `startup`) assembles the whole service from a `Config` so that `main`
//! and the tests run exactly the same thing. `ARCHITECTURE.md` maps the modules.

pub mod admission;
pub mod auth;
pub mod config;
pub mod error;
pub mod graph;
pub mod http;
pub mod image;
pub mod image_request;
pub mod metrics;
pub mod outbound;
pub mod read_cache;
pub mod service;
pub mod shared;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod token;
pub mod upload;

#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use shutdown::ShutdownHandle;
pub use startup::{Application, StartupError};
