//! The bounded decode/encode pool: at most `workers` images are decoded or encoded at once, each
//! on tokio's blocking threads (never on the async workers). An upload is admitted after its
//! header was read; if no worker frees up within the queue timeout it gets `Busy` (503
//! `overloaded` + Retry-After) instead of queueing without bound.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ImageError;

pub struct Pool {
    workers: Arc<Semaphore>,
    queue_timeout: Duration,
}

impl Pool {
    pub fn new(workers: usize, queue_timeout: Duration) -> Pool {
        Pool {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            queue_timeout,
        }
    }

    /// Waits for a free worker, at most the queue timeout.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, ImageError> {
        match tokio::time::timeout(self.queue_timeout, self.workers.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ImageError::Busy),
        }
    }

    /// Runs `job` on a worker (a blocking thread holding one permit until the job ends, even if
    /// the caller stops waiting). A panic in a decoder becomes `Unreadable`.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ImageError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ImageError> + Send + 'static,
    {
        let permit = self.admit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| ImageError::Unreadable(format!("image worker failed: {e}")))?
    }

    /// Workers free now.
    pub fn idle(&self) -> usize {
        self.workers.available_permits()
    }
}
