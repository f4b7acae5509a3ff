//! The read cache: photo bytes this replica read from Graph, kept in memory so that showing the
//! same avatar again costs no Graph call. Keyed by (tenant, resolved target, size): `/me` is the
//! caller's object id, a user named by UPN is that user's object id when known, a team is its
//! group; (tenant, target) is held as its [`TargetId`], the name other replicas use for it.
//! Bounded by bytes (moka with a byte weigher); an entry is served as it is for `max_age`, then
//! revalidated with Graph by its ETag (`If-None-Match`: a 304 renews it without a byte).
//! This replica's own writes and deletes of a target drop every size of it; other replicas' writes
//! reach it through [`ReadCache::invalidate_id`] (the Redis channel calls it).
//!
//! A cached answer is served without asking Graph: Graph's own check of the caller is skipped,
//! and the gateway's policy (run before the cache) is the only one that applies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::graph::PHOTO_SIZES;
use crate::metrics;

/// What an entry weighs besides its bytes: the key, the content type, the ETag, moka's own.
const ENTRY_OVERHEAD: usize = 256;

/// A stale entry is kept this many `max_age`s for revalidation, then dropped to free memory.
const KEEP_STALE_FACTOR: u32 = 12;

/// Counters of the changes heard, per slot of targets: 8 KiB, whatever the number of targets.
/// Targets sharing a slot only cost each other a cached answer now and then.
const CHANGE_SLOTS: usize = 1024;

/// What names (tenant, resolved target) beyond this process: in the invalidation messages other
/// replicas receive and in Redis's marks. A SHA-256 of the lower-cased tenant and the target
/// (each ended by a NUL), 128 bits: neither a tenant nor a target (an object id, or a UPN when it
/// could not be resolved) can be read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetId([u8; 16]);

impl TargetId {
    /// The id of (tenant, target).
    pub fn of(tenant: &str, target: &str) -> TargetId {
        let mut h = Sha256::new();
        for part in [tenant.to_ascii_lowercase().as_bytes(), target.as_bytes()] {
            h.update(part);
            h.update([0u8]);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize()[..16]);
        TargetId(id)
    }

    /// 32 lower-case hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The id of its [`TargetId::hex`] form; `None` for anything else.
    pub fn parse(text: &str) -> Option<TargetId> {
        if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut id = [0u8; 16];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(TargetId(id))
    }
}

/// A read of a target as it began: the changes of the target this replica had heard of then. The
/// read's answer is kept only if no change was heard while Graph answered ([`ReadCache::put`]):
/// a write that lands after Graph's snapshot and before the answer finds nothing to drop yet, and
/// the old photo must not go in after it.
#[derive(Debug, Clone, Copy)]
pub struct ReadStart {
    id: TargetId,
    changes: u64,
}

/// Which cached photo: the target's id, the size (`None`: the photo as stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    id: TargetId,
    size: Option<u32>,
}

/// A photo as read from Graph.
#[derive(Debug)]
pub struct CachedPhoto {
    /// The bytes.
    pub bytes: Bytes,
    /// Graph's `Content-Type`.
    pub content_type: String,
    /// Graph's ETag, else the quoted SHA-256 of the bytes.
    pub etag: String,
    /// When Graph last vouched for it (read or 304).
    pub checked: Instant,
}

impl CachedPhoto {
    /// A photo just read; `etag` is Graph's, if it sent one.
    pub fn new(bytes: Bytes, content_type: String, etag: Option<String>) -> CachedPhoto {
        let etag = etag.unwrap_or_else(|| format!("\"{}\"", hex::encode(Sha256::digest(&bytes))));
        CachedPhoto {
            bytes,
            content_type,
            etag,
            checked: Instant::now(),
        }
    }

    /// The same photo, vouched for again now (Graph answered 304).
    pub fn renewed(&self) -> CachedPhoto {
        CachedPhoto {
            bytes: self.bytes.clone(),
            content_type: self.content_type.clone(),
            etag: self.etag.clone(),
            checked: Instant::now(),
        }
    }

    /// True when the caller's `If-None-Match` names this photo (RFC 9110 §13.1.2: weak
    /// comparison, a list, or `*`).
    pub fn matches(&self, if_none_match: Option<&str>) -> bool {
        let Some(header) = if_none_match else {
            return false;
        };
        let ours = self.etag.trim_start_matches("W/");
        header
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
    }
}

/// The read cache; with a zero byte bound it holds nothing. Clones share one cache (the Redis
/// invalidation channel's subscriber holds one).
#[derive(Clone)]
pub struct ReadCache {
    cache: Option<Cache<Key, Arc<CachedPhoto>>>,
    /// Changes heard per slot of [`TargetId`]s, counted before the entries are dropped.
    changes: Arc<[AtomicU64]>,
    max_bytes: u64,
    max_age: Duration,
}

fn weight(v: &CachedPhoto) -> u32 {
    let w = v.bytes.len() + v.etag.len() + ENTRY_OVERHEAD;
    u32::try_from(w).unwrap_or(u32::MAX)
}

impl ReadCache {
    /// A cache of at most `max_bytes` photo bytes (0: off), each fresh for `max_age`.
    pub fn new(max_bytes: u64, max_age: Duration) -> ReadCache {
        let cache = (max_bytes > 0).then(|| {
            let mut builder = Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &Key, v: &Arc<CachedPhoto>| weight(v));
            if !max_age.is_zero() {
                builder = builder.time_to_live(max_age.saturating_mul(KEEP_STALE_FACTOR));
            }
            builder.build()
        });
        ReadCache {
            cache,
            changes: (0..CHANGE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            max_bytes,
            max_age,
        }
    }

    /// How long an entry is served without asking Graph; also the answers' `max-age`.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// True when the cache holds anything at all.
    pub fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    fn changes_of(&self, id: TargetId) -> &AtomicU64 {
        let slot = usize::from(u16::from_le_bytes([id.0[0], id.0[1]])) % CHANGE_SLOTS;
        &self.changes[slot]
    }

    /// Call before asking Graph for a target's photo: what [`ReadCache::put`] needs to keep the
    /// answer.
    pub fn begin_read(&self, tenant: &str, target: &str) -> ReadStart {
        let id = TargetId::of(tenant, target);
        ReadStart {
            id,
            changes: self.changes_of(id).load(Ordering::SeqCst),
        }
    }

    /// The cached photo, fresh or stale (see [`ReadCache::is_fresh`]), of the read `read`.
    pub async fn get(&self, read: &ReadStart, size: Option<u32>) -> Option<Arc<CachedPhoto>> {
        let cache = self.cache.as_ref()?;
        cache.get(&Key { id: read.id, size }).await
    }

    /// True while `photo` may be served without asking Graph.
    pub fn is_fresh(&self, photo: &CachedPhoto) -> bool {
        photo.checked.elapsed() < self.max_age
    }

    /// Keeps a photo just read or revalidated, unless a change of its target was heard since
    /// the read began; false when it was not kept for that reason.
    pub async fn put(&self, read: &ReadStart, size: Option<u32>, photo: Arc<CachedPhoto>) -> bool {
        let Some(cache) = &self.cache else {
            return true;
        };
        // moka would admit it and evict it later: one photo over the whole bound never goes in.
        if u64::from(weight(&photo)) > self.max_bytes {
            return true;
        }
        let changes = self.changes_of(read.id);
        if changes.load(Ordering::SeqCst) != read.changes {
            return false;
        }
        let key = Key { id: read.id, size };
        cache.insert(key, photo).await;
        // A change counted after the check above drops what its count preceded, this entry
        // included, or is seen here: either way the entry does not outlive it.
        if changes.load(Ordering::SeqCst) != read.changes {
            cache.invalidate(&key).await;
            return false;
        }
        metrics::read_cache_bytes(cache.weighted_size());
        true
    }

    /// Forgets every size of a target's photo: it was changed or deleted (here, or on another
    /// replica). `target` is the resolved target, as the reads keyed it (e.g.
    /// `/users/{object id}`, `/groups/{id}`, `/users/{object id}/contacts/{id}`).
    pub async fn invalidate(&self, tenant: &str, target: &str) {
        self.invalidate_id(TargetId::of(tenant, target)).await;
    }

    /// [`ReadCache::invalidate`] by the target's id (what another replica's message names).
    pub async fn invalidate_id(&self, id: TargetId) {
        let Some(cache) = &self.cache else {
            return;
        };
        // Counted first: a read in flight that checks after this does not put its answer in.
        self.changes_of(id).fetch_add(1, Ordering::SeqCst);
        for size in PHOTO_SIZES.iter().map(|s| Some(*s)).chain([None]) {
            cache.invalidate(&Key { id, size }).await;
        }
    }

    /// Forgets everything: the Redis invalidation channel was lost for a while, so other
    /// replicas' writes may have been missed.
    pub fn flush(&self) {
        if let Some(cache) = &self.cache {
            for changes in self.changes.iter() {
                changes.fetch_add(1, Ordering::SeqCst);
            }
            cache.invalidate_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(n: usize) -> Arc<CachedPhoto> {
        Arc::new(CachedPhoto::new(
            Bytes::from(vec![7u8; n]),
            "image/jpeg".into(),
            None,
        ))
    }

    #[tokio::test]
    async fn invalidation_drops_every_size_of_a_target_only() {
        let c = ReadCache::new(1 << 20, Duration::from_secs(60));
        c.put(&c.begin_read("t", "/users/a"), None, photo(10)).await;
        c.put(&c.begin_read("t", "/users/a"), Some(96), photo(10))
            .await;
        c.put(&c.begin_read("t", "/users/b"), None, photo(10)).await;
        c.put(&c.begin_read("u", "/users/a"), None, photo(10)).await;
        c.invalidate("T", "/users/a").await;
        assert!(c.get(&c.begin_read("t", "/users/a"), None).await.is_none());
        assert!(
            c.get(&c.begin_read("t", "/users/a"), Some(96))
                .await
                .is_none()
        );
        assert!(c.get(&c.begin_read("t", "/users/b"), None).await.is_some());
        assert!(
            c.get(&c.begin_read("u", "/users/a"), None).await.is_some(),
            "another tenant"
        );
    }

    #[tokio::test]
    async fn an_answer_read_before_a_change_is_not_kept() {
        let c = ReadCache::new(1 << 20, Duration::from_secs(60));
        let before = c.begin_read("t", "/users/a");
        let other = c.begin_read("t", "/users/b");
        // The write's invalidation lands while Graph's answer (the old photo) is on its way.
        c.invalidate("t", "/users/a").await;
        assert!(!c.put(&before, None, photo(10)).await);
        assert!(c.get(&c.begin_read("t", "/users/a"), None).await.is_none());
        // Another target's read is not disturbed, nor is a read that began after the change.
        assert!(c.put(&other, None, photo(10)).await);
        assert!(c.put(&c.begin_read("t", "/users/a"), None, photo(10)).await);
        assert!(c.get(&c.begin_read("t", "/users/a"), None).await.is_some());
        // Losing the channel forgets everything, reads in flight included.
        let in_flight = c.begin_read("t", "/users/c");
        c.flush();
        assert!(!c.put(&in_flight, None, photo(10)).await);
    }

    #[test]
    fn target_ids_ignore_the_tenants_case_and_keep_the_targets() {
        let id = TargetId::of("Tenant-1", "/users/a@b.example");
        assert_eq!(id, TargetId::of("tenant-1", "/users/a@b.example"));
        assert_ne!(id, TargetId::of("tenant-1", "/users/A@b.example"));
        // The parts' boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(TargetId::of("ab", "c"), TargetId::of("a", "bc"));
        let hex = id.hex();
        assert_eq!(hex.len(), 32);
        assert!(!hex.contains("users") && !hex.contains("tenant"));
        assert_eq!(TargetId::parse(&hex), Some(id));
        for bad in [
            "",
            "x",
            &hex[..31],
            &hex.to_uppercase(),
            &format!("{hex}0"),
            &"g".repeat(32),
        ] {
            assert_eq!(TargetId::parse(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn bytes_are_bounded() {
        let c = ReadCache::new(100_000, Duration::from_secs(60));
        for i in 0..50 {
            let read = c.begin_read("t", &format!("/users/{i}"));
            c.put(&read, None, photo(10_000)).await;
        }
        let cache = c.cache.as_ref().unwrap();
        cache.run_pending_tasks().await;
        assert!(
            cache.weighted_size() <= 100_000,
            "{}",
            cache.weighted_size()
        );
        assert!(cache.entry_count() < 50);
    }

    #[tokio::test]
    async fn off_holds_nothing_and_etags_match_weakly_in_lists() {
        let c = ReadCache::new(0, Duration::from_secs(60));
        c.put(&c.begin_read("t", "/users/a"), None, photo(10)).await;
        assert!(c.get(&c.begin_read("t", "/users/a"), None).await.is_none());
        let p = CachedPhoto::new(
            Bytes::from_static(b"x"),
            "image/jpeg".into(),
            Some("\"abc\"".into()),
        );
        assert!(p.matches(Some("\"zzz\", W/\"abc\"")));
        assert!(p.matches(Some("*")));
        assert!(!p.matches(Some("\"abd\"")));
        assert!(!p.matches(None));
        let own = CachedPhoto::new(Bytes::from_static(b"x"), "image/jpeg".into(), None);
        assert_eq!(
            own.etag.len(),
            66,
            "the quoted SHA-256 when Graph sends none"
        );
    }
}
