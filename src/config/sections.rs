//! The sections of the configuration, each read from its own variables. Plain data: the
//! components that use a section interpret it; nothing here knows about them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::ConfigError;
use super::defaults as d;
use super::source::{Vars, err, upstream_url};

/// Where the gateway listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The API listener.
    pub listen_addr: SocketAddr,
    /// The `/metrics` listener; off when `None`.
    pub metrics_addr: Option<SocketAddr>,
    /// HTTP worker threads; the number of CPUs when `None`.
    pub workers: Option<usize>,
    /// How long an idle connection is kept open for its next request; zero closes every
    /// connection after its answer.
    pub keep_alive: Duration,
    /// Deadline for receiving a new connection's request head (then the server's bare 408).
    pub request_head_timeout: Duration,
    /// A connection whose request body was larger than this is closed after its answer, which
    /// frees the read buffer the HTTP server keeps at its high-water mark; 0: never.
    pub close_after_body_bytes: u64,
}

impl ServerConfig {
    pub(super) fn read(v: &Vars) -> Result<ServerConfig, ConfigError> {
        let metrics_addr = match v.get("METRICS_ADDR") {
            None => Some(d::METRICS_ADDR),
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(a) => Some(
                a.parse()
                    .map_err(|e| err("METRICS_ADDR", format!("cannot parse {a:?}: {e}")))?,
            ),
        };
        let workers: usize = v.parse("WORKERS", 0)?;
        let request_head_timeout =
            v.secs("REQUEST_HEAD_TIMEOUT_SECS", d::REQUEST_HEAD_TIMEOUT_SECS)?;
        if request_head_timeout.is_zero() {
            // The HTTP server takes zero as "no deadline": a connection could then wait forever
            // for a head that never comes.
            return Err(err("REQUEST_HEAD_TIMEOUT_SECS", "must be positive"));
        }
        Ok(ServerConfig {
            listen_addr: v.parse("LISTEN_ADDR", d::LISTEN_ADDR)?,
            metrics_addr,
            workers: (workers > 0).then_some(workers),
            keep_alive: v.secs("KEEP_ALIVE_SECS", d::KEEP_ALIVE_SECS)?,
            request_head_timeout,
            close_after_body_bytes: v.parse("CLOSE_AFTER_BODY_BYTES", d::CLOSE_AFTER_BODY_BYTES)?,
        })
    }
}

/// How outbound HTTP clients reach Entra and Graph.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Extra CA certificates (PEM) trusted for upstream TLS.
    pub ca_bundle_file: Option<PathBuf>,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
}

impl UpstreamConfig {
    pub(super) fn read(v: &Vars) -> Result<UpstreamConfig, ConfigError> {
        let ca_bundle_file = v.get("CA_BUNDLE_FILE").map(PathBuf::from);
        if let Some(p) = &ca_bundle_file
            && !p.is_file()
        {
            return Err(err(
                "CA_BUNDLE_FILE",
                format!("{p:?} is not a readable file"),
            ));
        }
        Ok(UpstreamConfig {
            ca_bundle_file,
            connect_timeout: v.secs("CONNECT_TIMEOUT_SECS", d::CONNECT_TIMEOUT_SECS)?,
        })
    }
}

/// How the gateway proves its own identity to Entra.
#[derive(Debug, Clone)]
pub enum CredentialConfig {
    /// A client secret given directly.
    Secret(SecretString),
    /// A client secret read from a file (re-read when it changes).
    SecretFile(PathBuf),
    /// A certificate and its private key (PEM), for a PS256 client assertion.
    Certificate {
        /// PEM certificate (may also hold the key).
        cert_file: PathBuf,
        /// PEM private key.
        key_file: PathBuf,
    },
    /// Workload identity federation: a token file used as the client assertion.
    FederatedTokenFile(PathBuf),
}

/// The tenant, the gateway's app registration and its token exchange.
#[derive(Debug, Clone)]
pub struct EntraConfig {
    /// Entra tenant id (GUID) or domain.
    pub tenant_id: String,
    /// The gateway app registration's client id.
    pub client_id: String,
    /// The gateway's App ID URI (v1 tokens carry it as `aud`).
    pub app_id_uri: String,
    /// Entra authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: Url,
    /// The gateway's credential.
    pub credential: CredentialConfig,
    /// Total timeout of one discovery, JWKS or token request.
    pub request_timeout: Duration,
    /// Memory the cached Graph tokens may take, in bytes.
    pub token_cache_max_bytes: u64,
    /// Cached tokens are dropped this long before they expire.
    pub token_expiry_margin: Duration,
}

impl EntraConfig {
    pub(super) fn read(v: &Vars) -> Result<EntraConfig, ConfigError> {
        let (tenant_var, tenant_id) = v
            .get_or_azure("TENANT_ID", "AZURE_TENANT_ID")
            .ok_or_else(|| err("TENANT_ID", "required: the Entra tenant id (GUID)"))?;
        if !tenant_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            || matches!(
                tenant_id.to_ascii_lowercase().as_str(),
                "common" | "organizations" | "consumers"
            )
        {
            return Err(err(
                &tenant_var,
                "must be a tenant id or domain; not common/organizations/consumers (On-Behalf-Of needs the tenant)",
            ));
        }
        let (_, client_id) = v
            .get_or_azure("CLIENT_ID", "AZURE_CLIENT_ID")
            .ok_or_else(|| {
                err(
                    "CLIENT_ID",
                    "required: the gateway app registration's client id",
                )
            })?;
        let app_id_uri = v
            .get("APP_ID_URI")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("api://{client_id}"));
        let authority_host = match v.get_or_azure("AUTHORITY_HOST", "AZURE_AUTHORITY_HOST") {
            Some((name, val)) => upstream_url(&name, val)?,
            None => upstream_url("AUTHORITY_HOST", d::AUTHORITY_HOST)?,
        };
        Ok(EntraConfig {
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            app_id_uri,
            authority_host,
            credential: credential(v)?,
            request_timeout: v.secs("TOKEN_TIMEOUT_SECS", d::TOKEN_TIMEOUT_SECS)?,
            token_cache_max_bytes: v.parse("TOKEN_CACHE_MAX_BYTES", d::TOKEN_CACHE_MAX_BYTES)?,
            token_expiry_margin: v.secs("TOKEN_EXPIRY_MARGIN_SECS", d::TOKEN_EXPIRY_MARGIN_SECS)?,
        })
    }

    fn base(&self) -> String {
        format!(
            "{}/{}",
            self.authority_host.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// The v2 OIDC discovery document of the tenant.
    pub fn discovery_url_v2(&self) -> String {
        format!("{}/v2.0/.well-known/openid-configuration", self.base())
    }

    /// The v1 OIDC discovery document of the tenant.
    pub fn discovery_url_v1(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base())
    }

    /// The tenant's v2 token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/v2.0/token", self.base())
    }
}

fn credential(v: &Vars) -> Result<CredentialConfig, ConfigError> {
    let mut found: Vec<(&str, CredentialConfig)> = Vec::new();
    if let Some(s) = v.get("CLIENT_SECRET") {
        found.push((
            "CLIENT_SECRET",
            CredentialConfig::Secret(SecretString::from(s.to_owned())),
        ));
    }
    if let Some(p) = v.get("CLIENT_SECRET_FILE") {
        found.push((
            "CLIENT_SECRET_FILE",
            CredentialConfig::SecretFile(PathBuf::from(p)),
        ));
    }
    if let Some(cert) = v.get("CLIENT_CERTIFICATE_FILE") {
        let key = v.get("CLIENT_CERTIFICATE_KEY_FILE").unwrap_or(cert);
        found.push((
            "CLIENT_CERTIFICATE_FILE",
            CredentialConfig::Certificate {
                cert_file: PathBuf::from(cert),
                key_file: PathBuf::from(key),
            },
        ));
    }
    if let Some(p) = v.get("FEDERATED_TOKEN_FILE") {
        found.push((
            "FEDERATED_TOKEN_FILE",
            CredentialConfig::FederatedTokenFile(PathBuf::from(p)),
        ));
    }
    match found.len() {
        0 => match v.raw("AZURE_FEDERATED_TOKEN_FILE") {
            Some(p) => Ok(CredentialConfig::FederatedTokenFile(PathBuf::from(p))),
            None => Err(err(
                "CLIENT_SECRET",
                "no credential: set one of PHOTO_GATEWAY_CLIENT_SECRET, PHOTO_GATEWAY_CLIENT_SECRET_FILE, PHOTO_GATEWAY_CLIENT_CERTIFICATE_FILE or PHOTO_GATEWAY_FEDERATED_TOKEN_FILE (or AZURE_FEDERATED_TOKEN_FILE)",
            )),
        },
        1 => {
            let (name, cred) = found.remove(0);
            let path = match &cred {
                CredentialConfig::SecretFile(p) | CredentialConfig::FederatedTokenFile(p) => {
                    Some(p.clone())
                }
                CredentialConfig::Certificate { cert_file, .. } => Some(cert_file.clone()),
                CredentialConfig::Secret(_) => None,
            };
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(err(name, format!("{p:?} is not a readable file")));
            }
            if let CredentialConfig::Certificate { key_file, .. } = &cred
                && !key_file.is_file()
            {
                return Err(err(
                    "CLIENT_CERTIFICATE_KEY_FILE",
                    format!("{key_file:?} is not a readable file"),
                ));
            }
            Ok(cred)
        }
        _ => Err(err(
            found[1].0,
            format!(
                "several credentials are set ({}); set exactly one",
                found
                    .iter()
                    .map(|(n, _)| format!("{}{n}", d::PREFIX))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The tenant's signing keys.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// Periodic refresh.
    pub refresh_interval: Duration,
    /// Minimum time between refreshes caused by unknown `kid`s.
    pub unknown_kid_cooldown: Duration,
    /// Cap of the backoff between failed loads.
    pub retry_max_backoff: Duration,
    /// Accepted issuers; read from discovery when `None`.
    pub issuers_override: Option<Vec<String>>,
}

impl JwksConfig {
    pub(super) fn read(v: &Vars) -> Result<JwksConfig, ConfigError> {
        let retry_max_backoff = v.secs(
            "JWKS_RETRY_MAX_BACKOFF_SECS",
            d::JWKS_RETRY_MAX_BACKOFF_SECS,
        )?;
        if retry_max_backoff.is_zero()
            || retry_max_backoff > Duration::from_secs(d::MAX_JWKS_RETRY_MAX_BACKOFF_SECS)
        {
            return Err(err(
                "JWKS_RETRY_MAX_BACKOFF_SECS",
                format!(
                    "must be between 1 and {}",
                    d::MAX_JWKS_RETRY_MAX_BACKOFF_SECS
                ),
            ));
        }
        Ok(JwksConfig {
            refresh_interval: v
                .secs("JWKS_REFRESH_INTERVAL_SECS", d::JWKS_REFRESH_INTERVAL_SECS)?,
            unknown_kid_cooldown: v.secs(
                "JWKS_UNKNOWN_KID_COOLDOWN_SECS",
                d::JWKS_UNKNOWN_KID_COOLDOWN_SECS,
            )?,
            retry_max_backoff,
            issuers_override: v.list("ISSUERS"),
        })
    }
}

/// Which kinds of other people's targets one access covers (`users`, `groups`, `contacts`, `teams`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindGrants {
    /// Other users' photos (`users`).
    pub users: bool,
    /// Groups' photos (`groups`).
    pub groups: bool,
    /// Other users' contacts' photos (`contacts`).
    pub contacts: bool,
    /// Teams' photos (`teams`; a team is never the caller's own).
    pub teams: bool,
}

/// What one calling app may do to other people's targets, beyond the signed-in user's own photo
/// and own contacts (which every allowed caller may read, change and delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// GET (`kind:read`; every write or delete grant of a kind also grants reading it).
    pub read: KindGrants,
    /// PUT and PATCH (a bare `kind`, as before reads and deletes existed, or `kind:write`).
    pub write: KindGrants,
    /// DELETE (`kind:delete`).
    pub delete: KindGrants,
}

/// Who may call, with which token, and what each calling app may change.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// Delegated scopes every caller token must carry.
    pub required_scopes: Vec<String>,
    /// Calling client ids (`azp`/`appid`, lowercase) allowed; all when `None`.
    pub allowed_client_ids: Option<HashSet<String>>,
    /// Leeway for `exp`/`nbf`, seconds.
    pub clock_skew_secs: u64,
    /// Longest accepted token lifetime, seconds.
    pub max_token_lifetime_secs: u64,
    /// Grants per calling client id (lowercase; `*` for every caller).
    pub policy: HashMap<String, Grants>,
}

impl CallerConfig {
    pub(super) fn read(v: &Vars) -> Result<CallerConfig, ConfigError> {
        let clock_skew_secs = v.parse("CLOCK_SKEW_SECS", d::CLOCK_SKEW_SECS)?;
        if clock_skew_secs > d::MAX_CLOCK_SKEW_SECS {
            return Err(err(
                "CLOCK_SKEW_SECS",
                format!("at most {}", d::MAX_CLOCK_SKEW_SECS),
            ));
        }
        // The validator adds the clock skew to it: bounded here, a week at most, so that sum
        // cannot overflow; zero would refuse every token.
        let max_token_lifetime_secs =
            v.parse("MAX_TOKEN_LIFETIME_SECS", d::MAX_TOKEN_LIFETIME_SECS)?;
        if !(1..=d::MAX_SECS).contains(&max_token_lifetime_secs) {
            return Err(err(
                "MAX_TOKEN_LIFETIME_SECS",
                format!("between 1 and {} seconds (7 days)", d::MAX_SECS),
            ));
        }
        Ok(CallerConfig {
            required_scopes: v
                .list("REQUIRED_SCOPES")
                .unwrap_or_else(|| vec![d::REQUIRED_SCOPE.to_owned()]),
            allowed_client_ids: v
                .list("ALLOWED_CLIENT_IDS")
                .map(|l| l.into_iter().map(|s| s.to_ascii_lowercase()).collect()),
            clock_skew_secs,
            max_token_lifetime_secs,
            policy: parse_policy(v.get("CALLER_POLICY").unwrap_or(""))
                .map_err(|e| err("CALLER_POLICY", e))?,
        })
    }
}

/// Parses `client-id=users,groups:read;other-id=contacts,users:delete;*=groups`: a bare kind is a
/// write grant (what the policy meant before reads and deletes existed); `kind:read`,
/// `kind:write`, `kind:delete` name the access; writing or deleting a kind implies reading it.
fn parse_policy(text: &str) -> Result<HashMap<String, Grants>, String> {
    let mut policy: HashMap<String, Grants> = HashMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (client, kinds) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not `client-id=kind,kind`"))?;
        let grants = policy
            .entry(client.trim().to_ascii_lowercase())
            .or_default();
        for item in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let lower = item.to_ascii_lowercase();
            let (kind, access) = lower.split_once(':').unwrap_or((&lower, "write"));
            let mut sets: Vec<&mut KindGrants> = match access.trim() {
                "read" => vec![&mut grants.read],
                "write" => vec![&mut grants.write, &mut grants.read],
                "delete" => vec![&mut grants.delete, &mut grants.read],
                other => {
                    return Err(format!(
                        "unknown access {other:?} in {item:?} (read, write, delete)"
                    ));
                }
            };
            for set in sets.iter_mut() {
                match kind.trim() {
                    "users" => set.users = true,
                    "groups" => set.groups = true,
                    "contacts" => set.contacts = true,
                    "teams" => set.teams = true,
                    other => {
                        return Err(format!(
                            "unknown kind {other:?} (users, groups, contacts, teams)"
                        ));
                    }
                }
            }
        }
    }
    Ok(policy)
}

/// Delegated Graph scopes for one kind of access, per kind of target, fully qualified.
#[derive(Debug, Clone)]
pub struct KindScopes {
    /// The signed-in user's own photo (`/me`, and `/users/{own object id}`).
    pub me: String,
    /// A user's photo (`/users/{id}`).
    pub users: String,
    /// A group's photo.
    pub groups: String,
    /// A contact's photo (every contact path).
    pub contacts: String,
    /// A team's photo.
    pub teams: String,
}

/// Delegated Graph scopes for deletes: Graph deletes only users' and groups' photos.
#[derive(Debug, Clone)]
pub struct DeleteScopes {
    /// The signed-in user's own photo.
    pub me: String,
    /// A user's photo.
    pub users: String,
    /// A group's photo.
    pub groups: String,
}

/// Delegated Graph scopes per access.
#[derive(Debug, Clone)]
pub struct ScopeConfig {
    /// GET.
    pub read: KindScopes,
    /// PUT and PATCH.
    pub write: KindScopes,
    /// DELETE.
    pub delete: DeleteScopes,
}

/// The in-memory cache of photos read (`read_cache.rs`).
#[derive(Debug, Clone)]
pub struct ReadCacheConfig {
    /// Photo bytes kept, at most; 0 disables the cache.
    pub max_bytes: u64,
    /// How long a cached photo is served without asking Graph; also the answers' `max-age`.
    pub max_age: Duration,
}

impl ReadCacheConfig {
    pub(super) fn read(v: &Vars) -> Result<ReadCacheConfig, ConfigError> {
        let max_bytes = v.parse("READ_CACHE_MAX_BYTES", d::READ_CACHE_MAX_BYTES)?;
        if max_bytes > d::MAX_READ_CACHE_MAX_BYTES {
            return Err(err(
                "READ_CACHE_MAX_BYTES",
                format!("at most {}", d::MAX_READ_CACHE_MAX_BYTES),
            ));
        }
        let max_age = v.secs("READ_CACHE_MAX_AGE_SECS", d::READ_CACHE_MAX_AGE_SECS)?;
        if max_age.as_secs() > d::MAX_READ_CACHE_MAX_AGE_SECS {
            return Err(err(
                "READ_CACHE_MAX_AGE_SECS",
                format!("at most {}", d::MAX_READ_CACHE_MAX_AGE_SECS),
            ));
        }
        Ok(ReadCacheConfig { max_bytes, max_age })
    }
}

/// Microsoft Graph and how it is called.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Graph base URL, e.g. `https://graph.microsoft.com`.
    pub base_url: Url,
    /// The resource Graph scopes are qualified with.
    pub scope_resource: String,
    /// Total timeout of one Graph attempt.
    pub attempt_timeout: Duration,
    /// Deadline for a Graph call including retries.
    pub deadline: Duration,
    /// Retries on Graph 429/503/504.
    pub max_retries: u32,
    /// Scopes per access and kind of target.
    pub scopes: ScopeConfig,
}

impl GraphConfig {
    pub(super) fn read(v: &Vars) -> Result<GraphConfig, ConfigError> {
        let base_url = upstream_url(
            &format!("{}GRAPH_BASE_URL", d::PREFIX),
            v.get("GRAPH_BASE_URL").unwrap_or(d::GRAPH_BASE_URL),
        )?;
        let scope_resource = v
            .get("GRAPH_SCOPE_RESOURCE")
            .map(|s| s.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| base_url.origin().ascii_serialization());
        let scope =
            |key: &str, default: &str| qualify(&scope_resource, v.get(key).unwrap_or(default));
        // Writes keep their first names (`SCOPE_ME`…): existing deployments change nothing.
        let scopes = ScopeConfig {
            read: KindScopes {
                me: scope("SCOPE_READ_ME", d::SCOPE_READ_ME),
                users: scope("SCOPE_READ_USERS", d::SCOPE_READ_USERS),
                groups: scope("SCOPE_READ_GROUPS", d::SCOPE_READ_GROUPS),
                contacts: scope("SCOPE_READ_CONTACTS", d::SCOPE_READ_CONTACTS),
                teams: scope("SCOPE_READ_TEAMS", d::SCOPE_READ_TEAMS),
            },
            write: KindScopes {
                me: scope("SCOPE_ME", d::SCOPE_WRITE_ME),
                users: scope("SCOPE_USERS", d::SCOPE_WRITE_USERS),
                groups: scope("SCOPE_GROUPS", d::SCOPE_WRITE_GROUPS),
                contacts: scope("SCOPE_CONTACTS", d::SCOPE_WRITE_CONTACTS),
                teams: scope("SCOPE_TEAMS", d::SCOPE_WRITE_TEAMS),
            },
            delete: DeleteScopes {
                me: scope("SCOPE_DELETE_ME", d::SCOPE_DELETE_ME),
                users: scope("SCOPE_DELETE_USERS", d::SCOPE_DELETE_USERS),
                groups: scope("SCOPE_DELETE_GROUPS", d::SCOPE_DELETE_GROUPS),
            },
        };
        let max_retries: u32 = v.parse("GRAPH_MAX_RETRIES", d::GRAPH_MAX_RETRIES)?;
        if max_retries > d::MAX_GRAPH_MAX_RETRIES {
            return Err(err(
                "GRAPH_MAX_RETRIES",
                format!("at most {}", d::MAX_GRAPH_MAX_RETRIES),
            ));
        }
        Ok(GraphConfig {
            attempt_timeout: v.secs("GRAPH_TIMEOUT_SECS", d::GRAPH_TIMEOUT_SECS)?,
            deadline: v.secs("GRAPH_DEADLINE_SECS", d::GRAPH_DEADLINE_SECS)?,
            max_retries,
            scopes,
            base_url,
            scope_resource,
        })
    }

    /// Audiences that identify Microsoft Graph: a caller token for Graph is refused.
    pub fn audiences(&self) -> Vec<String> {
        vec![
            "https://graph.microsoft.com".into(),
            "https://graph.microsoft.com/".into(),
            "00000003-0000-0000-c000-000000000000".into(),
            self.scope_resource.clone(),
            format!("{}/", self.scope_resource),
        ]
    }
}

fn qualify(resource: &str, scope: &str) -> String {
    if scope.contains("://") || scope.starts_with("api://") {
        scope.to_owned()
    } else {
        format!("{}/{}", resource.trim_end_matches('/'), scope)
    }
}

/// What a caller may send.
#[derive(Debug, Clone, Copy)]
pub struct BodyConfig {
    /// Exclusive photo size limit in bytes.
    pub max_photo_bytes: usize,
    /// Deadline for receiving the whole body.
    pub read_timeout: Duration,
}

impl BodyConfig {
    pub(super) fn read(v: &Vars) -> Result<BodyConfig, ConfigError> {
        let max_photo_bytes: usize = v.parse("MAX_PHOTO_BYTES", d::MAX_PHOTO_BYTES)?;
        if max_photo_bytes == 0 || max_photo_bytes > d::MAX_PHOTO_BYTES {
            return Err(err(
                "MAX_PHOTO_BYTES",
                format!(
                    "must be between 1 and {} (Graph refuses requests of 4 MiB and more)",
                    d::MAX_PHOTO_BYTES
                ),
            ));
        }
        let read_timeout = v.secs("BODY_READ_TIMEOUT_SECS", d::BODY_READ_TIMEOUT_SECS)?;
        if read_timeout.is_zero() {
            return Err(err("BODY_READ_TIMEOUT_SECS", "must be positive"));
        }
        Ok(BodyConfig {
            max_photo_bytes,
            read_timeout,
        })
    }
}

/// What the image stage does to a photo (the gateway's `image::Mode`, named here so that the
/// configuration stays a leaf).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageMode {
    /// Orient, crop, downscale and re-encode as needed; a compliant JPEG only loses metadata.
    Normalize,
    /// JPEG only: metadata removed, re-encoded only when EXIF orientation is not 1.
    Strip,
    /// JPEG only: bytes untouched.
    Passthrough,
}

impl ImageMode {
    /// The name used in configuration and the `mode` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageMode::Normalize => "normalize",
            ImageMode::Strip => "strip",
            ImageMode::Passthrough => "passthrough",
        }
    }

    /// Every mode, in documentation order.
    pub const ALL: [ImageMode; 3] = [
        ImageMode::Normalize,
        ImageMode::Strip,
        ImageMode::Passthrough,
    ];
}

impl std::str::FromStr for ImageMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ImageMode, String> {
        ImageMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?}: expected normalize, strip or passthrough"))
    }
}

/// How a non-square photo becomes square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCrop {
    /// Centre-crop to a square.
    Center,
    /// Keep the aspect ratio.
    None,
}

impl ImageCrop {
    /// The name used in configuration and the `crop` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageCrop::Center => "center",
            ImageCrop::None => "none",
        }
    }
}

impl std::str::FromStr for ImageCrop {
    type Err = String;

    fn from_str(s: &str) -> Result<ImageCrop, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "center" | "centre" => Ok(ImageCrop::Center),
            "none" => Ok(ImageCrop::None),
            _ => Err(format!("{s:?}: expected center or none")),
        }
    }
}

/// The image stage: what it makes of a photo by default, what callers may ask, and the limits
/// that hold whatever they ask.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// The mode when the request names none.
    pub mode: ImageMode,
    /// Modes a request may name (the default mode is always among them).
    pub allowed_modes: Vec<ImageMode>,
    /// Crop when the request names none.
    pub crop: ImageCrop,
    /// Long edge of the output, at most.
    pub max_edge: u32,
    /// JPEG quality of a re-encode.
    pub quality: u8,
    /// Alpha is flattened on this colour (RGB).
    pub background: [u8; 3],
    /// Byte budget of the output; none when `None`. A request's `maxBytes` never exceeds it.
    pub max_bytes: Option<usize>,
    /// Smallest `maxBytes` a request may name.
    pub min_bytes: usize,
    /// Decoded pixels of an input, at most.
    pub max_pixels: u64,
    /// Either edge of an input, at most.
    pub max_input_edge: u32,
    /// Workers of the decode/encode pool; the number of CPUs when `None`.
    pub workers: Option<usize>,
    /// How long an upload waits for a pool worker before 503 `overloaded`.
    pub queue_timeout: Duration,
}

impl ImageConfig {
    pub(super) fn read(v: &Vars) -> Result<ImageConfig, ConfigError> {
        let mode: ImageMode = v
            .get("IMAGE_MODE")
            .unwrap_or(d::IMAGE_MODE)
            .parse()
            .map_err(|e| err("IMAGE_MODE", e))?;
        let allowed = v.list("IMAGE_ALLOWED_MODES").unwrap_or_else(|| {
            d::IMAGE_ALLOWED_MODES
                .split(',')
                .map(str::to_owned)
                .collect()
        });
        let mut allowed_modes = Vec::new();
        for m in allowed {
            let m: ImageMode = m.parse().map_err(|e| err("IMAGE_ALLOWED_MODES", e))?;
            if !allowed_modes.contains(&m) {
                allowed_modes.push(m);
            }
        }
        if !allowed_modes.contains(&mode) {
            return Err(err(
                "IMAGE_MODE",
                format!(
                    "{} is not among PHOTO_GATEWAY_IMAGE_ALLOWED_MODES ({}): add it there too",
                    mode.as_str(),
                    allowed_modes
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
        let crop: ImageCrop = v
            .get("IMAGE_CROP")
            .unwrap_or(d::IMAGE_CROP)
            .parse()
            .map_err(|e| err("IMAGE_CROP", e))?;
        let max_edge: u32 = v.parse("IMAGE_MAX_EDGE", d::IMAGE_MAX_EDGE)?;
        if !(d::MIN_IMAGE_MAX_EDGE..=d::MAX_IMAGE_MAX_EDGE).contains(&max_edge) {
            return Err(err(
                "IMAGE_MAX_EDGE",
                format!(
                    "must be between {} and {}",
                    d::MIN_IMAGE_MAX_EDGE,
                    d::MAX_IMAGE_MAX_EDGE
                ),
            ));
        }
        let quality: u8 = v.parse("IMAGE_QUALITY", d::IMAGE_QUALITY)?;
        if !(d::MIN_IMAGE_QUALITY..=100).contains(&quality) {
            return Err(err(
                "IMAGE_QUALITY",
                format!("must be between {} and 100", d::MIN_IMAGE_QUALITY),
            ));
        }
        let background = parse_colour(v.get("IMAGE_BACKGROUND").unwrap_or(d::IMAGE_BACKGROUND))
            .map_err(|e| err("IMAGE_BACKGROUND", e))?;
        let min_bytes: usize = v.parse("IMAGE_MIN_BYTES", d::IMAGE_MIN_BUDGET_BYTES)?;
        if !(d::IMAGE_MIN_BUDGET_BYTES..d::MAX_PHOTO_BYTES).contains(&min_bytes) {
            return Err(err(
                "IMAGE_MIN_BYTES",
                format!(
                    "must be between {} and {}",
                    d::IMAGE_MIN_BUDGET_BYTES,
                    d::MAX_PHOTO_BYTES - 1
                ),
            ));
        }
        let max_bytes: Option<usize> = match v.get("IMAGE_MAX_BYTES") {
            None => None,
            Some(_) => {
                let n: usize = v.parse("IMAGE_MAX_BYTES", 0)?;
                if n < min_bytes || n >= d::MAX_PHOTO_BYTES {
                    return Err(err(
                        "IMAGE_MAX_BYTES",
                        format!(
                            "must be between PHOTO_GATEWAY_IMAGE_MIN_BYTES ({min_bytes}) and {}",
                            d::MAX_PHOTO_BYTES - 1
                        ),
                    ));
                }
                Some(n)
            }
        };
        let max_pixels: u64 = v.parse("IMAGE_MAX_PIXELS", d::IMAGE_MAX_PIXELS)?;
        if max_pixels == 0 || max_pixels > d::MAX_IMAGE_MAX_PIXELS {
            return Err(err(
                "IMAGE_MAX_PIXELS",
                format!("must be between 1 and {}", d::MAX_IMAGE_MAX_PIXELS),
            ));
        }
        let max_input_edge: u32 = v.parse("IMAGE_MAX_INPUT_EDGE", d::IMAGE_MAX_INPUT_EDGE)?;
        if max_input_edge == 0 || max_input_edge > d::MAX_IMAGE_MAX_INPUT_EDGE {
            return Err(err(
                "IMAGE_MAX_INPUT_EDGE",
                format!("must be between 1 and {}", d::MAX_IMAGE_MAX_INPUT_EDGE),
            ));
        }
        let workers: usize = v.parse("IMAGE_WORKERS", 0)?;
        if workers > d::MAX_IMAGE_WORKERS {
            return Err(err(
                "IMAGE_WORKERS",
                format!("at most {}", d::MAX_IMAGE_WORKERS),
            ));
        }
        let queue_ms: u64 = v.parse("IMAGE_QUEUE_TIMEOUT_MS", d::IMAGE_QUEUE_TIMEOUT_MS)?;
        if queue_ms > d::MAX_IMAGE_QUEUE_TIMEOUT_MS {
            return Err(err(
                "IMAGE_QUEUE_TIMEOUT_MS",
                format!("at most {}", d::MAX_IMAGE_QUEUE_TIMEOUT_MS),
            ));
        }
        Ok(ImageConfig {
            mode,
            allowed_modes,
            crop,
            max_edge,
            quality,
            background,
            max_bytes,
            min_bytes,
            max_pixels,
            max_input_edge,
            workers: (workers > 0).then_some(workers),
            queue_timeout: Duration::from_millis(queue_ms),
        })
    }
}

/// `#rrggbb` (or `rrggbb`) as RGB.
fn parse_colour(text: &str) -> Result<[u8; 3], String> {
    let hex = text.trim().trim_start_matches('#');
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{text:?}: expected a colour as #rrggbb"));
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string());
    Ok([byte(0)?, byte(2)?, byte(4)?])
}

/// Budgets and rate limits; 0 switches a limit off.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionConfig {
    /// Uploads in flight at once.
    pub max_inflight_uploads: usize,
    /// Photo bytes in flight at once.
    pub max_inflight_bytes: usize,
    /// Sustained requests per minute per caller (app + user).
    pub caller_rate_per_min: u32,
    /// Burst per caller.
    pub caller_burst: u32,
    /// Concurrent uploads per app and mailbox.
    pub mailbox_concurrency: usize,
    /// Bytes per 30 s per app and mailbox.
    pub mailbox_bytes_per_30s: usize,
    /// How long a request may wait for its mailbox before it is refused.
    pub mailbox_queue: Duration,
    /// How long the object id of a user named by UPN is kept; zero: no lookups.
    pub mailbox_lookup_ttl: Duration,
}

impl AdmissionConfig {
    pub(super) fn read(v: &Vars) -> Result<AdmissionConfig, ConfigError> {
        let mailbox_concurrency = v.parse("MAILBOX_CONCURRENCY", d::MAILBOX_CONCURRENCY)?;
        if mailbox_concurrency > d::MAX_MAILBOX_CONCURRENCY {
            return Err(err(
                "MAILBOX_CONCURRENCY",
                format!(
                    "at most {} (Graph allows 4 concurrent requests per mailbox)",
                    d::MAX_MAILBOX_CONCURRENCY
                ),
            ));
        }
        let mailbox_queue = v.secs("MAILBOX_QUEUE_SECS", d::MAILBOX_QUEUE_SECS)?;
        if mailbox_queue > Duration::from_secs(d::MAX_MAILBOX_QUEUE_SECS) {
            return Err(err(
                "MAILBOX_QUEUE_SECS",
                format!("at most {}", d::MAX_MAILBOX_QUEUE_SECS),
            ));
        }
        Ok(AdmissionConfig {
            max_inflight_uploads: v.parse("MAX_INFLIGHT_UPLOADS", d::MAX_INFLIGHT_UPLOADS)?,
            max_inflight_bytes: v.parse("MAX_INFLIGHT_BYTES", d::MAX_INFLIGHT_BYTES)?,
            caller_rate_per_min: v.parse("CALLER_RATE_PER_MIN", d::CALLER_RATE_PER_MIN)?,
            caller_burst: v.parse("CALLER_BURST", d::CALLER_BURST)?,
            mailbox_concurrency,
            mailbox_bytes_per_30s: v.parse("MAILBOX_BYTES_PER_30S", d::MAILBOX_BYTES_PER_30S)?,
            mailbox_queue,
            mailbox_lookup_ttl: v.secs("MAILBOX_LOOKUP_TTL_SECS", d::MAILBOX_LOOKUP_TTL_SECS)?,
        })
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logs (spans are exported per the standard `OTEL_*` variables).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log_level: String,
}

impl TelemetryConfig {
    pub(super) fn read(v: &Vars) -> Result<TelemetryConfig, ConfigError> {
        let log_format = match v.get("LOG_FORMAT").unwrap_or("json") {
            f if f.eq_ignore_ascii_case("json") => LogFormat::Json,
            f if f.eq_ignore_ascii_case("pretty") || f.eq_ignore_ascii_case("text") => {
                LogFormat::Pretty
            }
            other => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("{other:?}: expected json or pretty"),
                ));
            }
        };
        Ok(TelemetryConfig {
            log_format,
            log_level: v.get("LOG_LEVEL").unwrap_or(d::LOG_LEVEL).to_owned(),
        })
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownConfig {
    /// After SIGTERM: keep serving this long while endpoints update.
    pub drain: Duration,
    /// After the drain: deadline for in-flight requests.
    pub timeout: Duration,
}

impl ShutdownConfig {
    pub(super) fn read(v: &Vars) -> Result<ShutdownConfig, ConfigError> {
        Ok(ShutdownConfig {
            drain: v.secs("SHUTDOWN_DRAIN_SECS", d::SHUTDOWN_DRAIN_SECS)?,
            timeout: v.secs("SHUTDOWN_TIMEOUT_SECS", d::SHUTDOWN_TIMEOUT_SECS)?,
        })
    }
}
