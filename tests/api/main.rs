//! End-to-end tests: the real server on 127.0.0.1:0 against the Entra and Graph emulators.

mod attacks_requests;
mod attacks_tokens;
mod audit;
mod auth;
mod cli;
mod connections;
mod credentials;
mod entra_errors;
mod graph_errors;
mod jwks;
mod mailboxes;
mod metrics;
mod openapi;
mod overload;
mod paths;
mod proptests;
mod redis;
mod sandbox;
mod secrets;
mod shutdown;
mod support;
mod token_cache;
mod tracing;
mod upload;
mod upstream_faults;
