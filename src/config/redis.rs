//! The optional Redis tier (`REDIS_*`): off unless `PHOTO_GATEWAY_REDIS_URL` is set. Its own file
//! so that the section and its checks stay together; plain data like the other sections.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{SecretSlice, SecretString};
use url::Url;

use super::ConfigError;
use super::defaults as d;
use super::source::{Vars, err};

/// Where the shared Redis is and how the gateway uses it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (host, port, database); credentials come from the
    /// variables below, never from the URL.
    pub url: Url,
    /// CA certificates (PEM) trusted for `rediss://` instead of the system roots; the system
    /// roots when `None`.
    pub ca_bundle_file: Option<PathBuf>,
    /// ACL user name.
    pub username: Option<String>,
    /// The password (read from its file at start).
    pub password: Option<SecretString>,
    /// Deadline of one Redis call; past it the call counts as failed and the gateway falls back.
    pub timeout: Duration,
    /// How many replicas share the limits: when Redis is unreachable each replica keeps 1/N of
    /// every global limit.
    pub expected_replicas: u32,
    /// Prefix of every key the gateway writes.
    pub key_prefix: String,
    /// The keys that seal cached tokens, from a file of `kid=base64` lines (32-byte AES-256-GCM
    /// keys): the first seals, every one opens, so a new key goes first and the old one stays
    /// until what it sealed has expired.
    pub token_keys: Vec<TokenKey>,
    /// The HMAC-SHA256 key (at least 32 bytes, from its file) that names cached tokens.
    pub hmac_key: SecretSlice<u8>,
    /// How long a mailbox slot is leased before it must be renewed (a dead replica's slot frees
    /// itself after this).
    pub lease: Duration,
}

impl RedisConfig {
    /// `None` when `PHOTO_GATEWAY_REDIS_URL` is unset: the gateway then works exactly as without
    /// the tier.
    pub(super) fn read(v: &Vars) -> Result<Option<RedisConfig>, ConfigError> {
        let Some(raw) = v.get("REDIS_URL") else {
            return Ok(None);
        };
        let url = Url::parse(raw).map_err(|e| err("REDIS_URL", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "redis" | "rediss") || url.host().is_none() {
            return Err(err(
                "REDIS_URL",
                "must be redis://host:port[/db] or rediss://host:port[/db]",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err(
                "REDIS_URL",
                "must not carry credentials: set PHOTO_GATEWAY_REDIS_USERNAME and PHOTO_GATEWAY_REDIS_PASSWORD_FILE",
            ));
        }
        // Each call names its variable twice, the second time as a literal lookup, so that the
        // check of README's table finds it.
        let file = |key: &str, value: Option<&str>| -> Result<Option<PathBuf>, ConfigError> {
            match value.map(PathBuf::from) {
                Some(p) if !p.is_file() => Err(err(key, format!("{p:?} is not a readable file"))),
                other => Ok(other),
            }
        };
        let ca_bundle_file = file("REDIS_CA_BUNDLE_FILE", v.get("REDIS_CA_BUNDLE_FILE"))?;
        if let Some(path) = &ca_bundle_file {
            if url.scheme() != "rediss" {
                return Err(err(
                    "REDIS_CA_BUNDLE_FILE",
                    "only used with a rediss:// URL",
                ));
            }
            // Checked here: a bundle that trusts nothing would fail every handshake later, and
            // the tier would only ever look down.
            check_ca_bundle(path).map_err(|m| err("REDIS_CA_BUNDLE_FILE", m))?;
        }
        let password = match file("REDIS_PASSWORD_FILE", v.get("REDIS_PASSWORD_FILE"))? {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| err("REDIS_PASSWORD_FILE", format!("cannot read {p:?}: {e}")))?;
                Some(SecretString::from(
                    text.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            }
            None => None,
        };
        let username = v.get("REDIS_USERNAME").map(str::to_owned);
        if username.is_some() && password.is_none() {
            // The client sends no AUTH without a password: the user would be silently ignored.
            return Err(err(
                "REDIS_PASSWORD_FILE",
                "required with PHOTO_GATEWAY_REDIS_USERNAME (an ACL user logs in with a password)",
            ));
        }
        let required =
            |key: &str, value: Option<&str>, what: &str| -> Result<PathBuf, ConfigError> {
                file(key, value)?.ok_or_else(|| {
                    err(
                        key,
                        format!("required with PHOTO_GATEWAY_REDIS_URL: {what}"),
                    )
                })
            };
        let keys_file = required(
            "REDIS_TOKEN_KEYS_FILE",
            v.get("REDIS_TOKEN_KEYS_FILE"),
            "a file of kid=base64 lines, each a 32-byte AES-256-GCM key",
        )?;
        let hmac_file = required(
            "REDIS_HMAC_KEY_FILE",
            v.get("REDIS_HMAC_KEY_FILE"),
            "a file holding at least 32 bytes of key for naming cached tokens",
        )?;
        let timeout_ms: u64 = v.parse("REDIS_TIMEOUT_MS", d::REDIS_TIMEOUT_MS)?;
        if timeout_ms == 0 || timeout_ms > d::MAX_REDIS_TIMEOUT_MS {
            return Err(err(
                "REDIS_TIMEOUT_MS",
                format!("must be between 1 and {}", d::MAX_REDIS_TIMEOUT_MS),
            ));
        }
        let expected_replicas: u32 =
            v.parse("REDIS_EXPECTED_REPLICAS", d::REDIS_EXPECTED_REPLICAS)?;
        if expected_replicas == 0 || expected_replicas > d::MAX_REDIS_EXPECTED_REPLICAS {
            return Err(err(
                "REDIS_EXPECTED_REPLICAS",
                format!("must be between 1 and {}", d::MAX_REDIS_EXPECTED_REPLICAS),
            ));
        }
        let lease = v.secs("REDIS_LEASE_SECS", d::REDIS_LEASE_SECS)?;
        if lease < Duration::from_secs(1) || lease > Duration::from_secs(d::MAX_REDIS_LEASE_SECS) {
            return Err(err(
                "REDIS_LEASE_SECS",
                format!("must be between 1 and {}", d::MAX_REDIS_LEASE_SECS),
            ));
        }
        let key_prefix = v
            .get("REDIS_KEY_PREFIX")
            .unwrap_or(d::REDIS_KEY_PREFIX)
            .to_owned();
        if key_prefix.len() > 64 || !key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(
                "REDIS_KEY_PREFIX",
                "at most 64 printable ASCII characters",
            ));
        }
        Ok(Some(RedisConfig {
            url,
            ca_bundle_file,
            username,
            password,
            timeout: Duration::from_millis(timeout_ms),
            expected_replicas,
            key_prefix,
            token_keys: token_keys(&keys_file).map_err(|m| err("REDIS_TOKEN_KEYS_FILE", m))?,
            hmac_key: hmac_key(&hmac_file).map_err(|m| err("REDIS_HMAC_KEY_FILE", m))?,
            lease,
        }))
    }
}

/// Why the bundle cannot serve as the TLS client's trust store, if it cannot: at least one PEM
/// certificate, every one usable.
fn check_ca_bundle(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    // Added to a trust store as the TLS client will: a certificate it cannot parse is refused.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{path:?} is not a PEM bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{path:?} holds a certificate that cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{path:?} holds no PEM certificate"));
    }
    Ok(())
}

/// One key that seals cached tokens.
#[derive(Debug, Clone)]
pub struct TokenKey {
    /// Its id, stored beside what it sealed (at most 32 printable characters, no `=`).
    pub kid: String,
    /// 32 bytes.
    pub key: SecretSlice<u8>,
}

/// Reads `kid=base64` lines (blank lines and `#` comments skipped). Messages never quote a key.
fn token_keys(path: &std::path::Path) -> Result<Vec<TokenKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let mut keys: Vec<TokenKey> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kid, b64) = line
            .split_once('=')
            .ok_or_else(|| format!("line {} is not kid=base64", n + 1))?;
        let kid = kid.trim();
        if kid.is_empty() || kid.len() > 32 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "line {}: the kid must be 1 to 32 printable characters",
                n + 1
            ));
        }
        if keys.iter().any(|k| k.kid == kid) {
            return Err(format!("line {}: kid {kid:?} appears twice", n + 1));
        }
        let key = STANDARD
            .decode(b64.trim())
            .map_err(|_| format!("line {}: the key is not base64", n + 1))?;
        if key.len() != 32 {
            return Err(format!(
                "line {}: the key must be 32 bytes (AES-256), not {}",
                n + 1,
                key.len()
            ));
        }
        keys.push(TokenKey {
            kid: kid.to_owned(),
            key: SecretSlice::from(key),
        });
    }
    if keys.is_empty() {
        return Err(format!("{path:?} holds no kid=base64 line"));
    }
    Ok(keys)
}

/// The file's bytes (one trailing newline dropped), at least 32 of them.
fn hmac_key(path: &std::path::Path) -> Result<SecretSlice<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < 32 {
        return Err("must hold at least 32 bytes of key".into());
    }
    Ok(SecretSlice::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use base64::Engine;
    use secrecy::ExposeSecret;

    fn base(dir: &std::path::Path) -> Vec<(String, String)> {
        let keys = dir.join("keys");
        std::fs::write(
            &keys,
            format!(
                "# current first\nk2={}\nk1={}\n",
                super::STANDARD.encode([2u8; 32]),
                super::STANDARD.encode([1u8; 32])
            ),
        )
        .unwrap();
        let hmac = dir.join("hmac");
        std::fs::write(&hmac, "h".repeat(40) + "\n").unwrap();
        vec![
            ("PHOTO_GATEWAY_TENANT_ID".into(), "t".into()),
            ("PHOTO_GATEWAY_CLIENT_ID".into(), "c".into()),
            ("PHOTO_GATEWAY_CLIENT_SECRET".into(), "s".into()),
            (
                "PHOTO_GATEWAY_REDIS_URL".into(),
                "redis://127.0.0.1:6379/0".into(),
            ),
            (
                "PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE".into(),
                keys.display().to_string(),
            ),
            (
                "PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE".into(),
                hmac.display().to_string(),
            ),
        ]
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pgw-redis-cfg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn off_by_default_and_read_with_its_keys() {
        let d = dir("ok");
        let mut v = base(&d);
        assert!(Config::from_vars(v[..3].to_vec()).unwrap().redis.is_none());
        let r = Config::from_vars(v.clone()).unwrap().redis.unwrap();
        assert_eq!(r.timeout.as_millis(), 50);
        assert_eq!(r.expected_replicas, 1);
        assert_eq!(r.token_keys.len(), 2);
        assert_eq!(
            r.token_keys[0].kid, "k2",
            "the first line is the current key"
        );
        assert_eq!(r.hmac_key.expose_secret().len(), 40, "newline dropped");
        assert!(!format!("{r:?}").contains("hhhh"), "keys never printed");
        let pw = d.join("pw");
        std::fs::write(&pw, "pa55\n").unwrap();
        v.push((
            "PHOTO_GATEWAY_REDIS_PASSWORD_FILE".into(),
            pw.display().to_string(),
        ));
        v.push(("PHOTO_GATEWAY_REDIS_USERNAME".into(), "gateway".into()));
        let r = Config::from_vars(v).unwrap().redis.unwrap();
        assert_eq!(r.password.unwrap().expose_secret(), "pa55");
    }

    #[test]
    fn mistakes_name_their_variable() {
        let d = dir("bad");
        let bad_keys = d.join("short");
        std::fs::write(&bad_keys, "k1=AAAA\n").unwrap();
        let short = d.join("hmac-short");
        std::fs::write(&short, "tiny").unwrap();
        for (var, value) in [
            (
                "PHOTO_GATEWAY_REDIS_URL",
                "http://127.0.0.1:6379".to_owned(),
            ),
            (
                "PHOTO_GATEWAY_REDIS_URL",
                "redis://u:p@127.0.0.1:6379".to_owned(),
            ),
            ("PHOTO_GATEWAY_REDIS_TIMEOUT_MS", "0".to_owned()),
            ("PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS", "0".to_owned()),
            ("PHOTO_GATEWAY_REDIS_LEASE_SECS", "0.5".to_owned()),
            (
                "PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE",
                bad_keys.display().to_string(),
            ),
            (
                "PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE",
                short.display().to_string(),
            ),
            (
                "PHOTO_GATEWAY_REDIS_CA_BUNDLE_FILE",
                short.display().to_string(),
            ),
        ] {
            let mut v = base(&d);
            v.retain(|(k, _)| k != var);
            v.push((var.into(), value.clone()));
            let e = Config::from_vars(v).unwrap_err();
            assert_eq!(e.var, var, "{var}={value}: {e}");
            assert!(!e.message.contains("AAAA"), "no key in messages");
        }
        let mut v = base(&d);
        v.retain(|(k, _)| k != "PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE");
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE"
        );
        // A user without a password would be silently ignored by the client.
        let mut v = base(&d);
        v.push(("PHOTO_GATEWAY_REDIS_USERNAME".into(), "gateway".into()));
        assert_eq!(
            Config::from_vars(v).unwrap_err().var,
            "PHOTO_GATEWAY_REDIS_PASSWORD_FILE"
        );
    }

    #[test]
    fn a_ca_bundle_must_hold_a_certificate() {
        let d = dir("ca");
        let cert = rcgen::generate_simple_self_signed(vec!["redis.example".into()]).unwrap();
        let pem = d.join("ca.pem");
        std::fs::write(&pem, cert.cert.pem()).unwrap();
        let der = d.join("ca.der");
        std::fs::write(&der, cert.cert.der()).unwrap();
        let empty = d.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let broken = d.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let with = |path: &std::path::Path| {
            let mut v = base(&d);
            v.retain(|(k, _)| k != "PHOTO_GATEWAY_REDIS_URL");
            v.push((
                "PHOTO_GATEWAY_REDIS_URL".into(),
                "rediss://redis.example:6380".into(),
            ));
            v.push((
                "PHOTO_GATEWAY_REDIS_CA_BUNDLE_FILE".into(),
                path.display().to_string(),
            ));
            Config::from_vars(v)
        };
        let ok = with(&pem).unwrap().redis.unwrap();
        assert_eq!(ok.ca_bundle_file.as_deref(), Some(pem.as_path()));
        for bad in [&der, &empty, &broken] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.var, "PHOTO_GATEWAY_REDIS_CA_BUNDLE_FILE", "{bad:?}: {e}");
        }
    }
}
