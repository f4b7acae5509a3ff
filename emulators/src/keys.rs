//! RSA signing keys: Entra's published set (with rotation) and the federation issuer's key.

use std::io;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::util::{b64url, read, write};

/// One RSA key pair with everything needed to sign, verify and publish it.
pub(crate) struct RsaKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub n: String,
    pub e: String,
    pub private_pem: String,
    pub public_pem: String,
}

impl RsaKey {
    /// A fresh 2048-bit key (slow-ish: done at start and on rotation only, never per request).
    pub(crate) fn generate() -> io::Result<RsaKey> {
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(io::Error::other)?;
        RsaKey::from_private_pem(&pair.serialize_pem())
    }

    /// Loads a PKCS#8 private key PEM (the sandbox state file keeps one for `sandbox token`).
    pub(crate) fn from_private_pem(pem: &str) -> io::Result<RsaKey> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(io::Error::other)?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(io::Error::other)?;
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(io::Error::other)?;
        let AlgorithmParameters::RSA(rsa) = jwk.algorithm else {
            return Err(io::Error::other("not an RSA key"));
        };
        let decoding =
            DecodingKey::from_rsa_components(&rsa.n, &rsa.e).map_err(io::Error::other)?;
        // Entra's kids are opaque thumbprint-like strings; derive one from the modulus.
        let kid = b64url(&Sha256::digest(rsa.n.as_bytes())[..20]);
        Ok(RsaKey {
            kid,
            encoding,
            decoding,
            n: rsa.n,
            e: rsa.e,
            private_pem: pem.to_string(),
            public_pem: pair.public_key_pem(),
        })
    }

    /// Signs `claims` with this key, RS256, `typ: JWT`, `kid` set.
    pub(crate) fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        self.sign_with_header(&header, claims)
    }

    /// Signs with a caller-chosen header (for crafted tokens); an unsigned string on failure.
    pub(crate) fn sign_with_header(&self, header: &Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).unwrap_or_default()
    }

    fn jwk(&self) -> serde_json::Value {
        // Like Entra: no `alg` member.
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e})
    }
}

/// The keys Entra publishes: the current signing key plus the previous one after a rotation.
pub(crate) struct KeySet {
    pub current: Arc<RsaKey>,
    pub previous: Option<Arc<RsaKey>>,
    /// The JWKS document, serialized once per rotation.
    pub jwks: Bytes,
}

impl KeySet {
    fn new(current: Arc<RsaKey>, previous: Option<Arc<RsaKey>>) -> KeySet {
        let mut keys = vec![current.jwk()];
        if let Some(p) = &previous {
            keys.push(p.jwk());
        }
        let jwks = Bytes::from(serde_json::to_vec(&json!({"keys": keys})).unwrap_or_default());
        KeySet {
            current,
            previous,
            jwks,
        }
    }
}

/// Entra's key store, shared with the Graph emulator (which trusts exactly these keys).
pub(crate) struct KeyStore {
    set: RwLock<Arc<KeySet>>,
}

impl KeyStore {
    pub(crate) fn new(current: RsaKey) -> KeyStore {
        KeyStore {
            set: RwLock::new(Arc::new(KeySet::new(Arc::new(current), None))),
        }
    }

    /// The current key set (cheap: an `Arc` clone).
    pub(crate) fn get(&self) -> Arc<KeySet> {
        read(&self.set).clone()
    }

    /// The published key with this kid.
    pub(crate) fn find(&self, kid: &str) -> Option<Arc<RsaKey>> {
        let set = self.get();
        if set.current.kid == kid {
            return Some(set.current.clone());
        }
        set.previous.as_ref().filter(|p| p.kid == kid).cloned()
    }

    /// Makes `key` current, keeps the old current key published, drops the one before.
    pub(crate) fn rotate_to(&self, key: RsaKey) -> Arc<RsaKey> {
        let key = Arc::new(key);
        let mut guard = write(&self.set);
        let previous = guard.current.clone();
        *guard = Arc::new(KeySet::new(key.clone(), Some(previous)));
        key
    }
}
