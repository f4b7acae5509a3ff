//! The Microsoft Graph emulator: the profile-photo endpoints and user reads (`GET /users/{id}`),
//! with Graph's token checks, limits, error shape and headers, an in-memory photo store, counters
//! and a ring of recorded writes.

mod auth;
mod control;
mod endpoints;
mod error;
mod inspect;
mod paths;
mod recording;
mod store;
mod teams;
mod users;

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, Validation};

pub use inspect::{ReceivedImage, inspect};
pub use paths::PHOTO_SIZES;
pub use recording::{GraphCount, GraphCounters, RecordedRequest};
pub use store::StoredPhoto;

use crate::control::FaultControl;
use crate::directory::Directory;
use crate::jwt::signature_only;
use crate::keys::KeyStore;
use crate::server::ServerHandle;
use crate::util::{lock, read, write};

/// Graph's request size cap for photo uploads: a body of this many bytes or more gets 413.
pub const MAX_PHOTO_BYTES: usize = 4 * 1024 * 1024;
/// A user without an Exchange Online mailbox keeps its photo in Entra ID, which holds about
/// 100 KB: Graph answers a larger upload with a misleading 404 (microsoft-graph-docs #8236).
pub const NO_MAILBOX_MAX_PHOTO_BYTES: usize = 100 * 1024;

/// Shared state of the Graph emulator.
pub(crate) struct GraphState {
    pub url: String,
    entra_url: String,
    keys: Arc<KeyStore>,
    directory: Arc<Directory>,
    max_bytes: usize,
    validation: Validation,
    photos: RwLock<HashMap<String, StoredPhoto>>,
    counters: Mutex<HashMap<(String, String, u16), u64>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    capacity: usize,
    /// Tokens issued (`iat`) before this Unix second are revoked (0: none).
    pub(super) revoked_before: AtomicU64,
    /// Photo writes in progress per mailbox (`/users/{id}` or `/groups/{id}`): (now, most seen).
    pub(super) in_flight: Mutex<HashMap<String, (u64, u64)>>,
    /// How long storing a photo takes, milliseconds (counted as in flight).
    pub(super) write_latency_ms: AtomicU64,
    /// While set, a read of photo bytes takes its snapshot and then waits to answer.
    pub(super) reads_held: AtomicBool,
    /// Reads waiting, snapshot taken.
    pub(super) held_reads: AtomicU64,
    /// Wakes the held reads.
    pub(super) reads_released: tokio::sync::Notify,
}

impl GraphState {
    pub(crate) fn new(
        url: String,
        entra_url: String,
        keys: Arc<KeyStore>,
        directory: Arc<Directory>,
        max_bytes: usize,
        capacity: usize,
    ) -> GraphState {
        GraphState {
            url,
            entra_url,
            keys,
            directory,
            max_bytes,
            // Built once: Graph checks every request's token.
            validation: signature_only(Algorithm::RS256),
            photos: RwLock::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            requests: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
            revoked_before: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            write_latency_ms: AtomicU64::new(0),
            reads_held: AtomicBool::new(false),
            held_reads: AtomicU64::new(0),
            reads_released: tokio::sync::Notify::new(),
        }
    }

    /// Waits while reads are held (see `GraphEmulator::hold_reads`).
    pub(super) async fn wait_while_reads_held(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.reads_held.load(SeqCst) {
            return;
        }
        // Counted down when the read goes on, or is dropped because its client went away.
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        self.held_reads.fetch_add(1, SeqCst);
        let _waiting = Waiting(&self.held_reads);
        loop {
            let released = self.reads_released.notified();
            tokio::pin!(released);
            // Registered before the flag is read again: a release in between still wakes it.
            released.as_mut().enable();
            if !self.reads_held.load(SeqCst) {
                break;
            }
            released.await;
        }
    }
}

/// The Microsoft Graph emulator: a handle to a running server (cheap to clone).
#[derive(Clone)]
pub struct GraphEmulator {
    pub(crate) state: Arc<GraphState>,
    pub(crate) server: Arc<ServerHandle>,
}

impl GraphEmulator {
    /// Revokes every token issued before now, as continuous access evaluation does after a
    /// user's sessions are revoked: Graph answers them with 401 and a claims challenge; tokens
    /// issued from the next second on are accepted. Returns the cutoff (Unix seconds).
    pub fn revoke_tokens_issued_before_now(&self) -> u64 {
        let cutoff = u64::try_from(crate::util::now_secs()).unwrap_or(0);
        self.state.revoked_before.store(cutoff, Ordering::Release);
        cutoff
    }

    /// `https://127.0.0.1:PORT` (without `/v1.0`); also the Graph resource its tokens are for.
    pub fn url(&self) -> String {
        self.state.url.clone()
    }

    /// Makes every photo write take `latency` while it counts as in flight for its mailbox (a
    /// latency fault rule delays a request before it is counted); zero to stop.
    pub fn set_write_latency(&self, latency: std::time::Duration) {
        self.state.write_latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
    }

    /// While `held`, each read of photo bytes (`…/$value`) takes its snapshot of the photo and
    /// then waits to answer until reads are released: a read that overlaps a write, in order.
    pub fn hold_reads(&self, held: bool) {
        self.state.reads_held.store(held, Ordering::SeqCst);
        if !held {
            self.state.reads_released.notify_waiters();
        }
    }

    /// Reads of photo bytes that took their snapshot and are waiting (see
    /// [`GraphEmulator::hold_reads`]).
    pub fn held_reads(&self) -> u64 {
        self.state.held_reads.load(Ordering::SeqCst)
    }

    /// The counters.
    pub fn counters(&self) -> GraphCounters {
        self.state.counters()
    }

    /// The recorded write requests, oldest first (bounded ring).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// The stored photo of a target such as `/users/{id or upn}`, `/groups/{id}`,
    /// `/users/{u}/contacts/{c}` or `/users/{u}/contactFolders/{f}/contacts/{c}` (with or without
    /// `/v1.0` and `/photo/$value`).
    pub fn photo(&self, target: &str) -> Option<StoredPhoto> {
        let key = self.state.key_of(target)?;
        read(&self.state.photos).get(&key).cloned()
    }

    /// The stored photo bytes of a user (object id or UPN).
    pub fn photo_of_user(&self, user: &str) -> Option<Bytes> {
        self.photo(&format!("/users/{user}")).map(|p| p.bytes)
    }

    /// The stored photo bytes of a group.
    pub fn photo_of_group(&self, group_id: &str) -> Option<Bytes> {
        self.photo(&format!("/groups/{group_id}")).map(|p| p.bytes)
    }

    /// The stored photo bytes of a contact of `user` (object id or UPN), in `folder` or the default folder.
    pub fn photo_of_contact(
        &self,
        user: &str,
        folder: Option<&str>,
        contact_id: &str,
    ) -> Option<Bytes> {
        let target = match folder {
            Some(f) => format!("/users/{user}/contactFolders/{f}/contacts/{contact_id}"),
            None => format!("/users/{user}/contacts/{contact_id}"),
        };
        self.photo(&target).map(|p| p.bytes)
    }

    /// Forgets the recorded write requests.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }

    /// Stores a photo for a target (see [`GraphEmulator::photo`]); false when the target does not exist.
    pub fn set_photo(&self, target: &str, bytes: &[u8], content_type: &str) -> bool {
        let Some(key) = self.state.key_of(target) else {
            return false;
        };
        let photo = StoredPhoto::of(Bytes::copy_from_slice(bytes), content_type.to_string());
        write(&self.state.photos).insert(key, photo);
        true
    }
}

/// Fault rules, refusing connections and `reset`: the same for both emulators.
impl Deref for GraphEmulator {
    type Target = FaultControl;

    fn deref(&self) -> &FaultControl {
        &self.server.control
    }
}
