//! End-to-end tests: the real server on 127.0.0.1:0 against the Entra and Graph emulators.

mod auth;
mod credentials;
mod emulator;
mod entra_errors;
mod graph_errors;
mod helpers;
mod jwks;
mod metrics;
mod openapi;
mod paths;
mod sandbox;
mod secrets;
mod shutdown;
mod token_cache;
mod tracing;
mod upload;
