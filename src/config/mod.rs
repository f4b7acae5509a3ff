//! One typed, validated configuration, read from `PHOTO_GATEWAY_*` environment variables (and
//! optionally a `KEY=VALUE` file), in sections, one per component. Every error names the variable
//! to fix. A leaf: it imports no other module of the gateway.
//!
//! - `defaults.rs`: every default, named;
//! - `source.rs`: the environment and the file, and the typed readers;
//! - `sections.rs`: the sections and how each is read;
//! - `redis.rs`: the optional Redis tier's section;
//! - `app_only.rs`: app-only (daemon) callers' policy and rate.

mod app_only;
pub mod defaults;
mod redis;
mod sections;
mod source;

pub use defaults::PREFIX;
pub use sections::{
    AdmissionConfig, BodyConfig, CallerConfig, CredentialConfig, DeleteScopes, EntraConfig, Grants,
    GraphConfig, ImageConfig, ImageCrop, ImageMode, JwksConfig, KindGrants, KindScopes, LogFormat,
    ReadCacheConfig, ScopeConfig, ServerConfig, ShutdownConfig, TelemetryConfig, UpstreamConfig,
};

pub use app_only::{AccessSet, AppOnlyConfig, READ_ONLY_ROLE, RoleGrants};
pub use redis::RedisConfig;

use source::Vars;

/// A configuration error that names the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The full variable name.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners and workers.
    pub server: ServerConfig,
    /// Outbound HTTP: trusted CAs and connect timeout.
    pub upstream: UpstreamConfig,
    /// The tenant, the gateway's app and credential, and the token exchange.
    pub entra: EntraConfig,
    /// The tenant's signing keys.
    pub jwks: JwksConfig,
    /// Which caller tokens are accepted and what each calling app may change.
    pub caller: CallerConfig,
    /// Microsoft Graph and the scopes asked for it.
    pub graph: GraphConfig,
    /// The in-memory cache of photos read.
    pub read_cache: ReadCacheConfig,
    /// What a caller may send.
    pub body: BodyConfig,
    /// The image stage.
    pub image: ImageConfig,
    /// Budgets and rate limits.
    pub admission: AdmissionConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// The shared Redis tier; `None` (the default): every replica on its own.
    pub redis: Option<RedisConfig>,
    /// App-only (daemon) callers: refused unless the policy names the app.
    pub app_only: AppOnlyConfig,
}

impl Config {
    /// Reads the process environment (and `PHOTO_GATEWAY_CONFIG_FILE` if set).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds the configuration from environment-style pairs; a `PHOTO_GATEWAY_CONFIG_FILE`
    /// among them supplies values for variables not set directly.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let v = Vars::collect(vars)?;
        Ok(Config {
            server: ServerConfig::read(&v)?,
            upstream: UpstreamConfig::read(&v)?,
            entra: EntraConfig::read(&v)?,
            jwks: JwksConfig::read(&v)?,
            caller: CallerConfig::read(&v)?,
            graph: GraphConfig::read(&v)?,
            read_cache: ReadCacheConfig::read(&v)?,
            body: BodyConfig::read(&v)?,
            image: ImageConfig::read(&v)?,
            admission: AdmissionConfig::read(&v)?,
            telemetry: TelemetryConfig::read(&v)?,
            shutdown: ShutdownConfig::read(&v)?,
            redis: RedisConfig::read(&v)?,
            app_only: AppOnlyConfig::read(&v)?,
        })
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
        assert_eq!(
            c.graph.scopes.write.me,
            "https://graph.microsoft.com/User.ReadWrite"
        );
        assert_eq!(
            c.graph.scopes.write.contacts,
            "https://graph.microsoft.com/Contacts.ReadWrite"
        );
        assert_eq!(
            c.graph.scopes.read.me,
            "https://graph.microsoft.com/User.Read"
        );
        assert_eq!(
            c.graph.scopes.read.teams,
            "https://graph.microsoft.com/Team.ReadBasic.All"
        );
        assert_eq!(
            c.graph.scopes.delete.users,
            "https://graph.microsoft.com/ProfilePhoto.ReadWrite.All"
        );
        assert_eq!(
            c.graph.scopes.write.teams,
            "https://graph.microsoft.com/TeamSettings.ReadWrite.All"
        );
        assert_eq!(c.read_cache.max_bytes, 64 * 1024 * 1024);
        assert_eq!(c.read_cache.max_age.as_secs(), 300);
        assert_eq!(c.body.max_photo_bytes, 4_194_304);
        assert_eq!(
            c.entra.app_id_uri,
            "api://aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        );
    }

    #[test]
    fn connections_outlive_a_proxys_idle_upstream_connections_and_heads_have_a_deadline() {
        let c = Config::from_vars(base()).unwrap();
        // ingress-nginx keeps idle upstream connections 60 s; the gateway must not close first.
        assert!(c.server.keep_alive > std::time::Duration::from_secs(60));
        assert_eq!(c.server.request_head_timeout.as_secs(), 5);

        let mut v = base();
        v.push(("PHOTO_GATEWAY_KEEP_ALIVE_SECS".into(), "0".into()));
        assert!(Config::from_vars(v).unwrap().server.keep_alive.is_zero());
        let mut v = base();
        v.push(("PHOTO_GATEWAY_REQUEST_HEAD_TIMEOUT_SECS".into(), "0".into()));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_REQUEST_HEAD_TIMEOUT_SECS",
            "zero would mean no deadline at all"
        );
    }

    #[test]
    fn a_connection_is_closed_after_a_body_over_one_mib_unless_configured() {
        assert_eq!(
            Config::from_vars(base())
                .unwrap()
                .server
                .close_after_body_bytes,
            1_048_576
        );
        let mut v = base();
        v.push(("PHOTO_GATEWAY_CLOSE_AFTER_BODY_BYTES".into(), "0".into()));
        assert_eq!(
            Config::from_vars(v).unwrap().server.close_after_body_bytes,
            0
        );
        let mut v = base();
        v.push(("PHOTO_GATEWAY_CLOSE_AFTER_BODY_BYTES".into(), "-1".into()));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_CLOSE_AFTER_BODY_BYTES"
        );
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
    fn every_variable_read_is_documented_in_readme() {
        let sections = concat!(
            include_str!("sections.rs"),
            include_str!("redis.rs"),
            include_str!("app_only.rs")
        );
        let readme = include_str!("../../README.md");
        let mut keys = Vec::new();
        for pattern in [
            "v.get(\"",
            "v.parse(\"",
            "v.secs(\"",
            "v.list(\"",
            "get_or_azure(\"",
        ] {
            for (i, _) in sections.match_indices(pattern) {
                let rest = &sections[i + pattern.len()..];
                if let Some(end) = rest.find('"') {
                    keys.push(&rest[..end]);
                }
            }
        }
        assert!(keys.len() > 30, "the scan found the variables: {keys:?}");
        assert!(keys.contains(&"REDIS_URL") && keys.contains(&"REDIS_LEASE_SECS"));
        assert!(keys.contains(&"APP_POLICY") && keys.contains(&"APP_RATE_PER_MIN"));
        let missing: Vec<&&str> = keys
            .iter()
            .filter(|k| !readme.contains(&format!("`{k}`")) && !readme.contains(&format!("`{k}` ")))
            .collect();
        assert!(
            missing.is_empty(),
            "README's configuration table lacks {missing:?}"
        );
    }

    #[test]
    fn numbers_that_would_overflow_later_are_refused_at_start() {
        for (var, value) in [
            ("PHOTO_GATEWAY_MAILBOX_CONCURRENCY", "2305843009213693952"),
            ("PHOTO_GATEWAY_MAILBOX_QUEUE_SECS", "1e12"),
            ("PHOTO_GATEWAY_GRAPH_DEADLINE_SECS", "1e15"),
            ("PHOTO_GATEWAY_BODY_READ_TIMEOUT_SECS", "1e300"),
            ("PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS", "inf"),
            (
                "PHOTO_GATEWAY_MAX_TOKEN_LIFETIME_SECS",
                "18446744073709551615",
            ),
            ("PHOTO_GATEWAY_MAX_TOKEN_LIFETIME_SECS", "0"),
        ] {
            let mut v = base();
            v.push((var.into(), value.into()));
            assert_eq!(Config::from_vars(v).unwrap_err().var, var, "{var}={value}");
        }
    }

    #[test]
    fn the_image_section_has_the_agreed_defaults_and_refuses_what_it_cannot_honour() {
        let c = Config::from_vars(base()).unwrap().image;
        assert_eq!(c.mode, ImageMode::Normalize);
        assert_eq!(
            c.allowed_modes,
            vec![ImageMode::Normalize, ImageMode::Strip]
        );
        assert_eq!(c.crop, ImageCrop::Center);
        assert_eq!((c.max_edge, c.quality, c.background), (648, 85, [255; 3]));
        assert_eq!((c.max_bytes, c.min_bytes), (None, 4096));
        assert_eq!((c.max_pixels, c.max_input_edge), (40_000_000, 12_000));
        assert_eq!(c.workers, None);
        assert_eq!(c.queue_timeout, std::time::Duration::from_millis(2000));

        let mut v = base();
        v.push(("PHOTO_GATEWAY_IMAGE_MODE".into(), "passthrough".into()));
        v.push((
            "PHOTO_GATEWAY_IMAGE_ALLOWED_MODES".into(),
            "passthrough, STRIP".into(),
        ));
        v.push(("PHOTO_GATEWAY_IMAGE_BACKGROUND".into(), "#102030".into()));
        v.push(("PHOTO_GATEWAY_IMAGE_MAX_BYTES".into(), "100000".into()));
        v.push(("PHOTO_GATEWAY_IMAGE_CROP".into(), "none".into()));
        let c = Config::from_vars(v).unwrap().image;
        assert_eq!(c.mode, ImageMode::Passthrough);
        assert_eq!(
            c.allowed_modes,
            vec![ImageMode::Passthrough, ImageMode::Strip]
        );
        assert_eq!(c.background, [0x10, 0x20, 0x30]);
        assert_eq!(c.max_bytes, Some(100_000));
        assert_eq!(c.crop, ImageCrop::None);

        for (var, value) in [
            // The default mode must be one callers may name too.
            ("PHOTO_GATEWAY_IMAGE_MODE", "passthrough"),
            ("PHOTO_GATEWAY_IMAGE_MODE", "shrink"),
            ("PHOTO_GATEWAY_IMAGE_ALLOWED_MODES", "normalize,sideways"),
            ("PHOTO_GATEWAY_IMAGE_CROP", "left"),
            ("PHOTO_GATEWAY_IMAGE_MAX_EDGE", "10"),
            ("PHOTO_GATEWAY_IMAGE_QUALITY", "101"),
            ("PHOTO_GATEWAY_IMAGE_QUALITY", "20"),
            ("PHOTO_GATEWAY_IMAGE_BACKGROUND", "white"),
            ("PHOTO_GATEWAY_IMAGE_MAX_BYTES", "100"),
            ("PHOTO_GATEWAY_IMAGE_MAX_BYTES", "4194304"),
            ("PHOTO_GATEWAY_IMAGE_MAX_PIXELS", "0"),
            ("PHOTO_GATEWAY_IMAGE_MAX_INPUT_EDGE", "70000"),
            ("PHOTO_GATEWAY_IMAGE_WORKERS", "100000"),
            ("PHOTO_GATEWAY_IMAGE_QUEUE_TIMEOUT_MS", "1e9"),
        ] {
            let mut v = base();
            v.push((var.into(), value.into()));
            assert_eq!(Config::from_vars(v).unwrap_err().var, var, "{var}={value}");
        }
    }

    #[test]
    fn caller_policy_is_parsed_into_grants_and_unknown_kinds_name_the_variable() {
        let mut v = base();
        v.push((
            "PHOTO_GATEWAY_CALLER_POLICY".into(),
            "APP-A=users,groups; *=contacts".into(),
        ));
        let c = Config::from_vars(v).unwrap();
        let a = c.caller.policy["app-a"];
        // A bare kind keeps its meaning (may change), and may read what it may change.
        assert!(a.write.users && a.write.groups && !a.write.contacts);
        assert!(a.read.users && !a.delete.users);
        assert!(c.caller.policy["*"].write.contacts);

        let mut v = base();
        v.push((
            "PHOTO_GATEWAY_CALLER_POLICY".into(),
            "b=users:read,groups:delete,teams".into(),
        ));
        let b = Config::from_vars(v).unwrap().caller.policy["b"];
        assert!(b.read.users && !b.write.users && !b.delete.users);
        assert!(b.delete.groups && b.read.groups && !b.write.groups);
        assert!(b.write.teams && b.read.teams);

        let mut v = base();
        v.push(("PHOTO_GATEWAY_CALLER_POLICY".into(), "x=users:erase".into()));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_CALLER_POLICY"
        );

        let mut v = base();
        v.push(("PHOTO_GATEWAY_CALLER_POLICY".into(), "x=everything".into()));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_CALLER_POLICY"
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
        assert_eq!(c.entra.tenant_id, "tenant-b");
        assert_eq!(c.entra.client_id, "client-a");
        assert_eq!(
            c.entra.token_endpoint(),
            "https://login.microsoftonline.us/tenant-b/oauth2/v2.0/token"
        );
        assert!(matches!(
            c.entra.credential,
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
