//! Graceful shutdown: readiness turns false at once, the servers keep serving for the drain delay
//! (so endpoints can update), then stop accepting and give in-flight requests until the timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;

/// Starts a graceful shutdown: readiness false at once, keep serving for the drain delay, then
/// stop accepting and give in-flight requests until the shutdown timeout.
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) drain: Duration,
    pub(crate) servers: Vec<ServerHandle>,
}

impl ShutdownHandle {
    /// Runs the shutdown sequence; returns when the servers have stopped.
    pub async fn shutdown(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(
            drain_ms = self.drain.as_millis() as u64,
            "shutdown requested: readiness is now false; still serving during the drain delay"
        );
        tokio::time::sleep(self.drain).await;
        tracing::info!(
            "drain delay over: no longer accepting connections; finishing in-flight requests"
        );
        for s in &self.servers {
            s.stop(true).await;
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT (both mean "drain, then stop").
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => tracing::info!("SIGTERM received"),
                    _ = i.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
