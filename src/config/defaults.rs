//! Every default of the configuration, named, in one place. README's configuration table lists
//! the same values; change both together.

use std::net::SocketAddr;

/// Prefix of every variable the gateway reads.
pub const PREFIX: &str = "PHOTO_GATEWAY_";

/// Longest duration any setting may have.
pub const MAX_SECS: u64 = 7 * 24 * 3600;

// --- server
/// API listener.
pub const LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);
/// `/metrics` listener.
pub const METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9090);
/// Idle keep-alive. Longer than the reverse proxy in front keeps its idle upstream connections
/// (ingress-nginx: 60 s), so that the proxy, not the gateway, ends an idle connection: a gateway
/// that closed first could do so just as the proxy reuses it, and the proxy would answer 502 (it
/// does not retry a PATCH). 75 s is nginx's own client-side default.
pub const KEEP_ALIVE_SECS: u64 = 75;
/// Deadline for a new connection's request head.
pub const REQUEST_HEAD_TIMEOUT_SECS: u64 = 5;
/// A connection whose request body was larger than this is closed after its answer (0: never).
/// The HTTP server keeps a connection's read buffer at its high-water mark for the connection's
/// life (up to about 256 KiB after a large body: actix-web#2075); photos under 1 MiB (most) keep
/// their connection. BENCHMARKS.md phase 8, third pass: the trade-off measured.
pub const CLOSE_AFTER_BODY_BYTES: u64 = 1024 * 1024;

// --- entra
/// Entra authority host of the public cloud.
pub const AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Memory the cached Graph tokens may take.
pub const TOKEN_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Cached tokens are dropped this long before they expire.
pub const TOKEN_EXPIRY_MARGIN_SECS: u64 = 300;
/// Total timeout of one discovery, JWKS or token request.
pub const TOKEN_TIMEOUT_SECS: u64 = 10;

// --- outbound HTTP
/// TCP+TLS connect timeout for every upstream.
pub const CONNECT_TIMEOUT_SECS: u64 = 5;

// --- caller tokens
/// Delegated scope every caller token must carry.
pub const REQUIRED_SCOPE: &str = "access_as_user";
/// Leeway for `exp`/`nbf`.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// Largest accepted leeway.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Longest accepted caller-token lifetime.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 86_400;

// --- jwks
/// Periodic refresh of the signing keys.
pub const JWKS_REFRESH_INTERVAL_SECS: u64 = 43_200;
/// At most one unknown-`kid` refresh per this period.
pub const JWKS_UNKNOWN_KID_COOLDOWN_SECS: u64 = 60;
/// Cap of the backoff while keys cannot be loaded.
pub const JWKS_RETRY_MAX_BACKOFF_SECS: u64 = 30;
/// Largest accepted cap of that backoff.
pub const MAX_JWKS_RETRY_MAX_BACKOFF_SECS: u64 = 300;

// --- graph
/// Graph's base URL (without `/v1.0`).
pub const GRAPH_BASE_URL: &str = "https://graph.microsoft.com";
/// Timeout of one Graph attempt.
pub const GRAPH_TIMEOUT_SECS: u64 = 30;
/// Deadline of a Graph call including retries.
pub const GRAPH_DEADLINE_SECS: u64 = 60;
/// Retries on Graph 429/503/504.
pub const GRAPH_MAX_RETRIES: u32 = 3;
/// Most retries an operator may configure.
pub const MAX_GRAPH_MAX_RETRIES: u32 = 10;
/// Least-privilege delegated scopes for writes, per kind of target.
pub const SCOPE_WRITE_ME: &str = "User.ReadWrite";
/// Other users' photos.
pub const SCOPE_WRITE_USERS: &str = "User.ReadWrite.All";
/// Groups' photos.
pub const SCOPE_WRITE_GROUPS: &str = "Group.ReadWrite.All";
/// Contacts' photos (own mailbox or another's).
pub const SCOPE_WRITE_CONTACTS: &str = "Contacts.ReadWrite";
/// Teams' photos.
pub const SCOPE_WRITE_TEAMS: &str = "TeamSettings.ReadWrite.All";
/// Least-privilege delegated scopes for reads: the signed-in user's own photo.
pub const SCOPE_READ_ME: &str = "User.Read";
/// Other users' photos.
pub const SCOPE_READ_USERS: &str = "ProfilePhoto.Read.All";
/// Groups' photos.
pub const SCOPE_READ_GROUPS: &str = "ProfilePhoto.Read.All";
/// Contacts' photos.
pub const SCOPE_READ_CONTACTS: &str = "Contacts.Read";
/// Teams' photos.
pub const SCOPE_READ_TEAMS: &str = "Team.ReadBasic.All";
/// Least-privilege delegated scopes for deletes: the signed-in user's own photo.
pub const SCOPE_DELETE_ME: &str = "User.ReadWrite";
/// Other users' photos.
pub const SCOPE_DELETE_USERS: &str = "ProfilePhoto.ReadWrite.All";
/// Groups' photos.
pub const SCOPE_DELETE_GROUPS: &str = "ProfilePhoto.ReadWrite.All";

// --- read cache
/// Photo bytes the read cache keeps: 64 MiB holds about 1,300 photos of 48 KB (a 648 px JPEG).
pub const READ_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Most an operator may give the read cache (it lives in the gateway's memory).
pub const MAX_READ_CACHE_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// How long a cached photo is served before Graph is asked again (with its ETag).
pub const READ_CACHE_MAX_AGE_SECS: u64 = 300;
/// Longest max-age: a day (a deleted or changed photo elsewhere shows this long at most).
pub const MAX_READ_CACHE_MAX_AGE_SECS: u64 = 86_400;

// --- body
/// Graph refuses requests of 4 MiB and more: the photo limit is exclusive and can only be lowered.
pub const MAX_PHOTO_BYTES: usize = 4_194_304;
/// Deadline for receiving the whole body.
pub const BODY_READ_TIMEOUT_SECS: u64 = 30;

// --- image stage
/// What the stage does when the request does not say: `normalize`.
pub const IMAGE_MODE: &str = "normalize";
/// Modes a caller may ask for (`passthrough` is left out: it would let GPS through).
pub const IMAGE_ALLOWED_MODES: &str = "normalize,strip";
/// How a non-square photo becomes square: `center`.
pub const IMAGE_CROP: &str = "center";
/// Long edge of the output: Exchange keeps at most 648×648.
pub const IMAGE_MAX_EDGE: u32 = 648;
/// Smallest long edge an operator may configure (the byte budget's floor is 96 px).
pub const MIN_IMAGE_MAX_EDGE: u32 = 96;
/// Largest long edge an operator may configure.
pub const MAX_IMAGE_MAX_EDGE: u32 = 4096;
/// JPEG quality of a re-encode.
pub const IMAGE_QUALITY: u8 = 85;
/// Lowest quality an operator may configure (the byte budget's floor is quality 50).
pub const MIN_IMAGE_QUALITY: u8 = 50;
/// Alpha is flattened on this colour.
pub const IMAGE_BACKGROUND: &str = "#ffffff";
/// Smallest byte budget, configured or per request (`maxBytes`): below it not even the floor
/// (96 px, quality 50) fits reliably.
pub const IMAGE_MIN_BUDGET_BYTES: usize = 4096;
/// Decoded pixels of an input, at most (one decode takes about 4 bytes per pixel).
pub const IMAGE_MAX_PIXELS: u64 = 40_000_000;
/// Largest pixel limit an operator may configure (≈ 1 GiB for one decode).
pub const MAX_IMAGE_MAX_PIXELS: u64 = 268_435_456;
/// Either edge of an input, at most.
pub const IMAGE_MAX_INPUT_EDGE: u32 = 12_000;
/// Largest edge limit an operator may configure (JPEG's own limit).
pub const MAX_IMAGE_MAX_INPUT_EDGE: u32 = 65_535;
/// Most pool workers an operator may configure.
pub const MAX_IMAGE_WORKERS: usize = 256;
/// How long an upload waits for a pool worker before 503 `overloaded`.
pub const IMAGE_QUEUE_TIMEOUT_MS: u64 = 2000;
/// Longest wait for a pool worker an operator may configure.
pub const MAX_IMAGE_QUEUE_TIMEOUT_MS: u64 = 60_000;

// --- admission
/// Uploads in flight at once.
pub const MAX_INFLIGHT_UPLOADS: usize = 128;
/// Photo bytes in flight at once.
pub const MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;
/// Sustained requests per minute per caller (app + user).
pub const CALLER_RATE_PER_MIN: u32 = 600;
/// Burst per caller.
pub const CALLER_BURST: u32 = 60;
/// Sustained requests per minute per app-only caller (a daemon: one bucket per calling app).
pub const APP_RATE_PER_MIN: u32 = 600;
/// Burst per app-only caller.
pub const APP_BURST: u32 = 60;
/// Graph's per-mailbox concurrency.
pub const MAILBOX_CONCURRENCY: usize = 4;
/// Graph's per-mailbox byte window (bytes per 30 s).
pub const MAILBOX_BYTES_PER_30S: usize = 15_000_000;
/// How long a request may wait for its mailbox.
pub const MAILBOX_QUEUE_SECS: u64 = 2;
/// Longest wait for a mailbox: Graph's own deadline is about a minute.
pub const MAX_MAILBOX_QUEUE_SECS: u64 = 60;
/// How long the object id of a user named by UPN is kept (the mailbox's key): a UPN given to
/// someone else is followed within this.
pub const MAILBOX_LOOKUP_TTL_SECS: u64 = 3600;
/// Most concurrent uploads per mailbox an operator may allow (Graph allows 4).
pub const MAX_MAILBOX_CONCURRENCY: usize = 1000;

// --- telemetry
/// Log filter.
pub const LOG_LEVEL: &str = "info";

// --- shutdown
/// After SIGTERM: keep serving this long while endpoints update.
pub const SHUTDOWN_DRAIN_SECS: u64 = 5;
/// After the drain: deadline for in-flight requests.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 20;

// --- the optional Redis tier (config/redis.rs)
/// Deadline of one Redis call, milliseconds.
pub const REDIS_TIMEOUT_MS: u64 = 50;
/// Longest Redis call deadline accepted, milliseconds.
pub const MAX_REDIS_TIMEOUT_MS: u64 = 10_000;
/// Replicas the global limits are divided among when Redis is unreachable.
pub const REDIS_EXPECTED_REPLICAS: u32 = 1;
/// Most replicas accepted.
pub const MAX_REDIS_EXPECTED_REPLICAS: u32 = 10_000;
/// Prefix of the gateway's Redis keys.
pub const REDIS_KEY_PREFIX: &str = "pgw:";
/// Lease of a mailbox slot, seconds (renewed while the upload runs).
pub const REDIS_LEASE_SECS: u64 = 10;
/// Longest lease accepted, seconds.
pub const MAX_REDIS_LEASE_SECS: u64 = 300;
