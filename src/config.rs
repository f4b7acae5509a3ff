//! One typed, validated configuration, read from `PHOTO_GATEWAY_*` environment variables (and
//! optionally a `KEY=VALUE` file). Every error names the variable to fix.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::auth::CallerPolicy;
use crate::limits::LimitsConfig;
use crate::telemetry::LogFormat;

/// Prefix of every variable the gateway reads.
pub const PREFIX: &str = "PHOTO_GATEWAY_";

/// A configuration error that names the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The full variable name.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
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

/// Delegated Graph scopes per target kind, fully qualified.
#[derive(Debug, Clone)]
pub struct TargetScopes {
    /// `/me/photo/$value`.
    pub me: String,
    /// `/users/{id}/photo/$value`.
    pub users: String,
    /// `/groups/{id}/photo/$value`.
    pub groups: String,
    /// Every contact path.
    pub contacts: String,
}

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the API listens.
    pub listen_addr: SocketAddr,
    /// Where `/metrics` is served; off when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// Entra tenant id (GUID).
    pub tenant_id: String,
    /// The gateway app registration's client id.
    pub client_id: String,
    /// The gateway's App ID URI (v1 tokens carry it as `aud`).
    pub app_id_uri: String,
    /// Entra authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: Url,
    /// Graph base URL, e.g. `https://graph.microsoft.com`.
    pub graph_base_url: Url,
    /// The resource Graph scopes are qualified with.
    pub graph_scope_resource: String,
    /// Accepted issuers; read from discovery when unset.
    pub issuers_override: Option<Vec<String>>,
    /// Extra CA certificates (PEM) trusted for upstream TLS.
    pub ca_bundle_file: Option<PathBuf>,
    /// The gateway's credential.
    pub credential: CredentialConfig,
    /// Delegated scopes every caller token must carry.
    pub required_scopes: Vec<String>,
    /// Calling client ids (`azp`/`appid`) allowed; all when unset.
    pub allowed_client_ids: Option<HashSet<String>>,
    /// Graph scope per target kind.
    pub scopes: TargetScopes,
    /// Exclusive photo size limit in bytes.
    pub max_photo_bytes: usize,
    /// Deadline for receiving the whole body.
    pub body_read_timeout: Duration,
    /// Leeway for `exp`/`nbf`, seconds.
    pub clock_skew_secs: u64,
    /// Longest accepted token lifetime, seconds.
    pub max_token_lifetime_secs: u64,
    /// Periodic JWKS refresh.
    pub jwks_refresh_interval: Duration,
    /// Minimum time between refreshes caused by unknown `kid`s.
    pub jwks_unknown_kid_cooldown: Duration,
    /// Cap of the backoff between failed JWKS loads.
    pub jwks_retry_max_backoff: Duration,
    /// Memory the cached Graph tokens may take, in bytes.
    pub token_cache_max_bytes: u64,
    /// Cached tokens are dropped this long before they expire.
    pub token_expiry_margin: Duration,
    /// TCP+TLS connect timeout for every upstream.
    pub connect_timeout: Duration,
    /// Total timeout of one token-endpoint or discovery request.
    pub token_timeout: Duration,
    /// Total timeout of one Graph attempt.
    pub graph_timeout: Duration,
    /// Deadline for a Graph call including retries.
    pub graph_deadline: Duration,
    /// Retries on Graph 429/503/504.
    pub graph_max_retries: u32,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log_level: String,
    /// After SIGTERM: keep serving this long while endpoints update.
    pub shutdown_drain: Duration,
    /// After the drain: deadline for in-flight requests.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads; the number of CPUs when unset.
    pub workers: Option<usize>,
    /// Budgets and rate limits.
    pub limits: LimitsConfig,
    /// Which calling app may change which kind of target.
    pub caller_policy: CallerPolicy,
}

/// Raw variables, with lookups that remember the full name for errors.
struct Vars(HashMap<String, String>);

impl Vars {
    fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.raw(&format!("{PREFIX}{key}"))
    }

    /// The prefixed variable, else the Azure Workload Identity one.
    fn get_or_azure(&self, key: &str, azure: &str) -> Option<(String, &str)> {
        let name = format!("{PREFIX}{key}");
        if let Some(v) = self.raw(&name) {
            return Some((name, v));
        }
        self.raw(azure).map(|v| (azure.to_owned(), v))
    }

    fn err(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            var: if key.starts_with(PREFIX) || key.starts_with("AZURE_") {
                key.to_owned()
            } else {
                format!("{PREFIX}{key}")
            },
            message: message.into(),
        }
    }

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| Self::err(key, format!("cannot parse {v:?}: {e}"))),
        }
    }

    fn secs(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let v: f64 = self.parse(key, default as f64)?;
        if !v.is_finite() || v < 0.0 {
            return Err(Self::err(key, "must be a non-negative number of seconds"));
        }
        Ok(Duration::from_secs_f64(v))
    }

    fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| {
            v.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

/// True when `url` is https, or http to a loopback address.
fn upstream_url(var: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim_end_matches('/'))
        .map_err(|e| Vars::err(var, format!("not a URL ({value:?}): {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(Vars::err(
            var,
            "plain http is only allowed for loopback addresses; use https",
        )),
        s => Err(Vars::err(var, format!("unsupported scheme {s:?}"))),
    }
}

/// `https://host[:port]` of a URL.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn qualify(resource: &str, scope: &str) -> String {
    if scope.contains("://") || scope.starts_with("api://") {
        scope.to_owned()
    } else {
        format!("{}/{}", resource.trim_end_matches('/'), scope)
    }
}

impl Config {
    /// Reads the process environment (and `PHOTO_GATEWAY_CONFIG_FILE` if set).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds the configuration from environment-style pairs; a `PHOTO_GATEWAY_CONFIG_FILE`
    /// among them supplies defaults for variables not set directly.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = vars.into_iter().collect();
        let file_var = format!("{PREFIX}CONFIG_FILE");
        if let Some(path) = map.get(&file_var).cloned().filter(|p| !p.trim().is_empty()) {
            let text = std::fs::read_to_string(path.trim())
                .map_err(|e| Vars::err(&file_var, format!("cannot read {path:?}: {e}")))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((k, v)) = line.split_once('=') else {
                    return Err(Vars::err(
                        &file_var,
                        format!("line {} is not KEY=VALUE", n + 1),
                    ));
                };
                map.entry(k.trim().to_owned())
                    .or_insert_with(|| v.trim().trim_matches('"').to_owned());
            }
        }
        Self::build(&Vars(map))
    }

    fn build(v: &Vars) -> Result<Config, ConfigError> {
        let listen_addr = v.parse("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))?;

        let metrics_addr = match v.get("METRICS_ADDR") {
            None => Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(a) => Some(
                a.parse()
                    .map_err(|e| Vars::err("METRICS_ADDR", format!("cannot parse {a:?}: {e}")))?,
            ),
        };
        let (tenant_var, tenant_id) = v
            .get_or_azure("TENANT_ID", "AZURE_TENANT_ID")
            .ok_or_else(|| Vars::err("TENANT_ID", "required: the Entra tenant id (GUID)"))?;
        if tenant_id.is_empty()
            || !tenant_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            || matches!(
                tenant_id.to_ascii_lowercase().as_str(),
                "common" | "organizations" | "consumers"
            )
        {
            return Err(Vars::err(
                &tenant_var,
                "must be a tenant id or domain; not common/organizations/consumers (On-Behalf-Of needs the tenant)",
            ));
        }
        let (_, client_id) = v
            .get_or_azure("CLIENT_ID", "AZURE_CLIENT_ID")
            .ok_or_else(|| {
                Vars::err(
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
            None => upstream_url("AUTHORITY_HOST", "https://login.microsoftonline.com")?,
        };
        let graph_base_url = upstream_url(
            &format!("{PREFIX}GRAPH_BASE_URL"),
            v.get("GRAPH_BASE_URL")
                .unwrap_or("https://graph.microsoft.com"),
        )?;
        let graph_scope_resource = v
            .get("GRAPH_SCOPE_RESOURCE")
            .map(|s| s.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| origin(&graph_base_url));

        let ca_bundle_file = v.get("CA_BUNDLE_FILE").map(PathBuf::from);
        if let Some(p) = &ca_bundle_file
            && !p.is_file()
        {
            return Err(Vars::err(
                "CA_BUNDLE_FILE",
                format!("{p:?} is not a readable file"),
            ));
        }

        let credential = Self::credential(v)?;

        let scope = |key: &str, default: &str| {
            qualify(&graph_scope_resource, v.get(key).unwrap_or(default))
        };
        let scopes = TargetScopes {
            me: scope("SCOPE_ME", "User.ReadWrite"),
            users: scope("SCOPE_USERS", "User.ReadWrite.All"),
            groups: scope("SCOPE_GROUPS", "Group.ReadWrite.All"),
            contacts: scope("SCOPE_CONTACTS", "Contacts.ReadWrite"),
        };

        let max_photo_bytes: usize = v.parse("MAX_PHOTO_BYTES", 4_194_304)?;
        if max_photo_bytes == 0 || max_photo_bytes > 4_194_304 {
            return Err(Vars::err(
                "MAX_PHOTO_BYTES",
                "must be between 1 and 4194304 (Graph refuses requests of 4 MiB and more)",
            ));
        }
        let log_format = match v.get("LOG_FORMAT").unwrap_or("json") {
            f if f.eq_ignore_ascii_case("json") => LogFormat::Json,
            f if f.eq_ignore_ascii_case("pretty") || f.eq_ignore_ascii_case("text") => {
                LogFormat::Pretty
            }
            other => {
                return Err(Vars::err(
                    "LOG_FORMAT",
                    format!("{other:?}: expected json or pretty"),
                ));
            }
        };
        let graph_max_retries: u32 = v.parse("GRAPH_MAX_RETRIES", 3)?;
        if graph_max_retries > 10 {
            return Err(Vars::err("GRAPH_MAX_RETRIES", "at most 10"));
        }
        let workers: usize = v.parse("WORKERS", 0)?;
        let required_scopes = v
            .list("REQUIRED_SCOPES")
            .unwrap_or_else(|| vec!["access_as_user".to_owned()]);
        let allowed_client_ids = v
            .list("ALLOWED_CLIENT_IDS")
            .map(|l| l.into_iter().map(|s| s.to_ascii_lowercase()).collect());

        let cfg = Config {
            listen_addr,
            metrics_addr,
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            app_id_uri,
            authority_host,
            graph_base_url,
            graph_scope_resource,
            issuers_override: v.list("ISSUERS"),
            ca_bundle_file,
            credential,
            required_scopes,
            allowed_client_ids,
            scopes,
            max_photo_bytes,
            body_read_timeout: v.secs("BODY_READ_TIMEOUT_SECS", 30)?,
            clock_skew_secs: v.parse("CLOCK_SKEW_SECS", 60)?,
            max_token_lifetime_secs: v.parse("MAX_TOKEN_LIFETIME_SECS", 86_400)?,
            jwks_refresh_interval: v.secs("JWKS_REFRESH_INTERVAL_SECS", 43_200)?,
            jwks_unknown_kid_cooldown: v.secs("JWKS_UNKNOWN_KID_COOLDOWN_SECS", 60)?,
            jwks_retry_max_backoff: v.secs("JWKS_RETRY_MAX_BACKOFF_SECS", 30)?,
            token_cache_max_bytes: v.parse("TOKEN_CACHE_MAX_BYTES", 64 * 1024 * 1024)?,
            token_expiry_margin: v.secs("TOKEN_EXPIRY_MARGIN_SECS", 300)?,
            connect_timeout: v.secs("CONNECT_TIMEOUT_SECS", 5)?,
            token_timeout: v.secs("TOKEN_TIMEOUT_SECS", 10)?,
            graph_timeout: v.secs("GRAPH_TIMEOUT_SECS", 30)?,
            graph_deadline: v.secs("GRAPH_DEADLINE_SECS", 60)?,
            graph_max_retries,
            log_format,
            log_level: v.get("LOG_LEVEL").unwrap_or("info").to_owned(),
            shutdown_drain: v.secs("SHUTDOWN_DRAIN_SECS", 5)?,
            shutdown_timeout: v.secs("SHUTDOWN_TIMEOUT_SECS", 20)?,
            workers: (workers > 0).then_some(workers),
            limits: LimitsConfig {
                max_inflight_uploads: v.parse("MAX_INFLIGHT_UPLOADS", 128)?,
                max_inflight_bytes: v.parse("MAX_INFLIGHT_BYTES", 256 * 1024 * 1024)?,
                caller_rate_per_min: v.parse("CALLER_RATE_PER_MIN", 600)?,
                caller_burst: v.parse("CALLER_BURST", 60)?,
                mailbox_concurrency: v.parse("MAILBOX_CONCURRENCY", 4)?,
                mailbox_bytes_per_30s: v.parse("MAILBOX_BYTES_PER_30S", 15_000_000)?,
                mailbox_queue: v.secs("MAILBOX_QUEUE_SECS", 2)?,
            },
            caller_policy: CallerPolicy::parse(v.get("CALLER_POLICY").unwrap_or(""))
                .map_err(|e| Vars::err("CALLER_POLICY", e))?,
        };
        if cfg.clock_skew_secs > 300 {
            return Err(Vars::err("CLOCK_SKEW_SECS", "at most 300"));
        }
        if cfg.body_read_timeout.is_zero() {
            return Err(Vars::err("BODY_READ_TIMEOUT_SECS", "must be positive"));
        }
        if cfg.jwks_retry_max_backoff.is_zero()
            || cfg.jwks_retry_max_backoff > Duration::from_secs(300)
        {
            return Err(Vars::err(
                "JWKS_RETRY_MAX_BACKOFF_SECS",
                "must be between 1 and 300",
            ));
        }
        Ok(cfg)
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
                None => Err(Vars::err(
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
                    return Err(Vars::err(name, format!("{p:?} is not a readable file")));
                }
                if let CredentialConfig::Certificate { key_file, .. } = &cred
                    && !key_file.is_file()
                {
                    return Err(Vars::err(
                        "CLIENT_CERTIFICATE_KEY_FILE",
                        format!("{key_file:?} is not a readable file"),
                    ));
                }
                Ok(cred)
            }
            _ => Err(Vars::err(
                found[1].0,
                format!(
                    "several credentials are set ({}); set exactly one",
                    found
                        .iter()
                        .map(|(n, _)| format!("{PREFIX}{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// The v2 OIDC discovery document of the tenant.
    pub fn discovery_url_v2(&self) -> String {
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.authority_host.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// The v1 OIDC discovery document of the tenant.
    pub fn discovery_url_v1(&self) -> String {
        format!(
            "{}/{}/.well-known/openid-configuration",
            self.authority_host.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// The tenant's v2 token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// Audiences that identify Microsoft Graph: a caller token for Graph is refused.
    pub fn graph_audiences(&self) -> Vec<String> {
        vec![
            "https://graph.microsoft.com".into(),
            "https://graph.microsoft.com/".into(),
            "00000003-0000-0000-c000-000000000000".into(),
            self.graph_scope_resource.clone(),
            format!("{}/", self.graph_scope_resource),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(String, String)> {
        vec![
            (
                "PHOTO_GATEWAY_TENANT_ID".into(),
                "11111111-2222-3333-4444-555555555555".into(),
            ),
            (
                "PHOTO_GATEWAY_CLIENT_ID".into(),
                "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into(),
            ),
            ("PHOTO_GATEWAY_CLIENT_SECRET".into(), "s3cret".into()),
        ]
    }

    #[test]
    fn defaults_are_least_privilege_and_qualified() {
        let c = Config::from_vars(base()).unwrap();
        assert_eq!(c.scopes.me, "https://graph.microsoft.com/User.ReadWrite");
        assert_eq!(
            c.scopes.contacts,
            "https://graph.microsoft.com/Contacts.ReadWrite"
        );
        assert_eq!(c.max_photo_bytes, 4_194_304);
        assert_eq!(c.app_id_uri, "api://aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    }

    #[test]
    fn errors_name_the_variable() {
        let mut v = base();
        v.push(("PHOTO_GATEWAY_MAX_PHOTO_BYTES".into(), "lots".into()));
        let e = Config::from_vars(v).unwrap_err();
        assert_eq!(e.var, "PHOTO_GATEWAY_MAX_PHOTO_BYTES");

        let e = Config::from_vars(vec![]).unwrap_err();
        assert_eq!(e.var, "PHOTO_GATEWAY_TENANT_ID");

        let mut v = base();
        v.push((
            "PHOTO_GATEWAY_GRAPH_BASE_URL".into(),
            "http://graph.example.com".into(),
        ));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_GRAPH_BASE_URL"
        );
    }

    #[test]
    fn workload_identity_variables_are_honoured_and_prefixed_ones_win() {
        let dir = std::env::temp_dir().join(format!("pgw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "x").unwrap();
        let v = vec![
            ("AZURE_TENANT_ID".to_owned(), "tenant-a".to_owned()),
            ("PHOTO_GATEWAY_TENANT_ID".to_owned(), "tenant-b".to_owned()),
            ("AZURE_CLIENT_ID".to_owned(), "client-a".to_owned()),
            (
                "AZURE_AUTHORITY_HOST".to_owned(),
                "https://login.microsoftonline.us/".to_owned(),
            ),
            (
                "AZURE_FEDERATED_TOKEN_FILE".to_owned(),
                token.display().to_string(),
            ),
        ];
        let c = Config::from_vars(v).unwrap();
        assert_eq!(c.tenant_id, "tenant-b");
        assert_eq!(c.client_id, "client-a");
        assert_eq!(
            c.token_endpoint(),
            "https://login.microsoftonline.us/tenant-b/oauth2/v2.0/token"
        );
        assert!(matches!(
            c.credential,
            CredentialConfig::FederatedTokenFile(_)
        ));
    }

    #[test]
    fn loopback_http_is_allowed_and_two_credentials_are_not() {
        let mut v = base();
        v.push((
            "PHOTO_GATEWAY_GRAPH_BASE_URL".into(),
            "http://127.0.0.1:9999".into(),
        ));
        assert!(Config::from_vars(v).is_ok());
        let mut v = base();
        v.push((
            "PHOTO_GATEWAY_CLIENT_SECRET_FILE".into(),
            "/etc/hostname".into(),
        ));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_CLIENT_SECRET_FILE"
        );
    }
}
