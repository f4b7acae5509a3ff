//! State shared by every worker, built once by `Application::build`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::KeyStore;
use crate::metrics;
use crate::service::PhotoService;

/// Shared application state.
pub struct AppState {
    /// The upload service.
    pub photos: Arc<PhotoService>,
    /// The tenant's signing keys (readiness depends on them).
    pub keys: Arc<KeyStore>,
    /// Set when shutdown begins: readiness turns false at once.
    pub draining: Arc<AtomicBool>,
    /// A connection whose request body was larger than this is closed after its answer (0:
    /// never); `http/conn.rs` `finish_body`.
    pub close_after_body_bytes: u64,
}

impl AppState {
    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Counts an upload in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        metrics::uploads_in_flight(1.0);
        InFlight
    }
}

/// An upload in flight, for the gauge.
pub struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::uploads_in_flight(-1.0);
    }
}
