//! The gateway's own credential towards Entra: a client secret, a certificate (PS256 client
//! assertion with `x5t#S256`), or a federated token file (workload identity). File-based
//! credentials are re-read when the file changes, so rotation needs no restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::CredentialConfig;

/// Why the credential could not be produced.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// Client-assertion type for JWT assertions (RFC 7523).
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path).ok().map(|m| FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

struct CertMaterial {
    stamp: (Option<FileStamp>, Option<FileStamp>),
    key: EncodingKey,
    x5t_s256: String,
}

struct SecretMaterial {
    stamp: Option<FileStamp>,
    secret: SecretString,
}

/// The gateway's credential, with whatever was read from files cached until they change.
pub struct Credential {
    config: CredentialConfig,
    secret_cache: Mutex<Option<SecretMaterial>>,
    cert_cache: Mutex<Option<std::sync::Arc<CertMaterial>>>,
}

/// The form fields that authenticate the gateway in a token request.
pub struct ClientAuth(pub Vec<(&'static str, SecretString)>);

impl Credential {
    /// Wraps the configured credential.
    pub fn new(config: CredentialConfig) -> Credential {
        Credential {
            config,
            secret_cache: Mutex::new(None),
            cert_cache: Mutex::new(None),
        }
    }

    /// True when the credential comes from a file that may have been rotated.
    pub fn is_file_based(&self) -> bool {
        !matches!(self.config, CredentialConfig::Secret(_))
    }

    /// Forgets anything read from files, so the next use reads them again.
    pub fn invalidate(&self) {
        *self.secret_cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.cert_cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Form fields authenticating `client_id` at `token_endpoint`.
    pub fn client_auth(
        &self,
        client_id: &str,
        token_endpoint: &str,
    ) -> Result<ClientAuth, CredentialError> {
        match &self.config {
            CredentialConfig::Secret(s) => Ok(ClientAuth(vec![("client_secret", s.clone())])),
            CredentialConfig::SecretFile(path) => {
                let secret = self.secret_from_file(path)?;
                Ok(ClientAuth(vec![("client_secret", secret)]))
            }
            CredentialConfig::FederatedTokenFile(path) => {
                // Read on every exchange: the kubelet rotates it, and exchanges are rare (cached).
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CredentialError(format!("reading the federated token file {path:?}: {e}"))
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(CredentialError(format!(
                        "the federated token file {path:?} is empty"
                    )));
                }
                Ok(assertion_fields(SecretString::from(token.to_owned())))
            }
            CredentialConfig::Certificate {
                cert_file,
                key_file,
            } => {
                let material = self.certificate(cert_file, key_file)?;
                let now = jsonwebtoken::get_current_timestamp();
                let mut header = Header::new(Algorithm::PS256);
                header.x5t_s256 = Some(material.x5t_s256.clone());
                let claims = serde_json::json!({
                    "aud": token_endpoint,
                    "iss": client_id,
                    "sub": client_id,
                    "jti": uuid::Uuid::new_v4().to_string(),
                    "nbf": now,
                    "iat": now,
                    "exp": now + 600,
                });
                let jwt = jsonwebtoken::encode(&header, &claims, &material.key)
                    .map_err(|e| CredentialError(format!("signing the client assertion: {e}")))?;
                Ok(assertion_fields(SecretString::from(jwt)))
            }
        }
    }

    fn secret_from_file(&self, path: &PathBuf) -> Result<SecretString, CredentialError> {
        let now_stamp = stamp(path);
        let mut cache = self.secret_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.as_ref()
            && m.stamp == now_stamp
        {
            return Ok(m.secret.clone());
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            CredentialError(format!("reading the client secret file {path:?}: {e}"))
        })?;
        let secret = SecretString::from(text.trim().to_owned());
        if secret.expose_secret().is_empty() {
            return Err(CredentialError(format!(
                "the client secret file {path:?} is empty"
            )));
        }
        *cache = Some(SecretMaterial {
            stamp: now_stamp,
            secret: secret.clone(),
        });
        Ok(secret)
    }

    fn certificate(
        &self,
        cert_file: &Path,
        key_file: &Path,
    ) -> Result<std::sync::Arc<CertMaterial>, CredentialError> {
        let stamps = (stamp(cert_file), stamp(key_file));
        let mut cache = self.cert_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.as_ref()
            && m.stamp == stamps
        {
            return Ok(m.clone());
        }
        let cert = CertificateDer::from_pem_file(cert_file)
            .map_err(|e| CredentialError(format!("reading the certificate {cert_file:?}: {e}")))?;
        let x5t_s256 =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref()));
        let key_pem = std::fs::read(key_file)
            .map_err(|e| CredentialError(format!("reading the private key {key_file:?}: {e}")))?;
        let key = EncodingKey::from_rsa_pem(&key_pem).map_err(|e| {
            CredentialError(format!(
                "the private key {key_file:?} is not an RSA PEM key: {e}"
            ))
        })?;
        let m = std::sync::Arc::new(CertMaterial {
            stamp: stamps,
            key,
            x5t_s256,
        });
        *cache = Some(m.clone());
        Ok(m)
    }
}

fn assertion_fields(assertion: SecretString) -> ClientAuth {
    ClientAuth(vec![
        (
            "client_assertion_type",
            SecretString::from(JWT_BEARER_ASSERTION),
        ),
        ("client_assertion", assertion),
    ])
}
