//! Graph's side of the control API: its counters and recorded write requests, and what a reset
//! forgets.

use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::GraphState;
use crate::control::ControlApi;
use crate::util::{Body, empty, json, lock, write};

impl ControlApi for GraphState {
    fn control(&self, method: &Method, path: &str, _body: &[u8]) -> Option<Response<Body>> {
        Some(match (method, path) {
            (&Method::GET, "/_emulator/counters") => json(StatusCode::OK, &json!(self.counters())),
            (&Method::GET, "/_emulator/requests") => json(StatusCode::OK, &json!(self.requests())),
            (&Method::DELETE, "/_emulator/requests") => {
                lock(&self.requests).clear();
                empty(StatusCode::NO_CONTENT)
            }
            _ => return None,
        })
    }

    fn reset(&self) {
        lock(&self.counters).clear();
        // Writes still in progress stay counted; their peaks are forgotten.
        for e in lock(&self.in_flight).values_mut() {
            e.1 = e.0;
        }
        lock(&self.requests).clear();
        write(&self.photos).clear();
        self.revoked_before
            .store(0, std::sync::atomic::Ordering::Release);
        self.write_latency_ms
            .store(0, std::sync::atomic::Ordering::Release);
        self.reads_held
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.reads_released.notify_waiters();
    }
}
