//! The gateway app's credentials: its client secret, registered certificates (certificate
//! assertions) and federated identity (federated assertions the emulator mints), and their checks.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::EntraState;
use super::token_endpoint::EntraError;
use crate::jwt::{aud_contains, check_lifetime, verify_signature};
use crate::util::{b64url, now_secs, read, sha256, write};

/// The audience a federated (workload identity) assertion must carry.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The default subject of minted federated assertions (a Kubernetes service account).
pub const DEFAULT_FEDERATED_SUBJECT: &str = "system:serviceaccount:photo-gateway:photo-gateway";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client certificate (and its key) for the gateway app's certificate credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: String,
    /// base64url SHA-256 of the certificate DER: the `x5t#S256` header value.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

impl EntraState {
    pub(super) fn federated_assertion(&self, subject: Option<&str>, ttl_secs: i64) -> String {
        let now = now_secs();
        let claims = json!({
            "iss": self.federation_issuer,
            "sub": subject.unwrap_or(DEFAULT_FEDERATED_SUBJECT),
            "aud": [TOKEN_EXCHANGE_AUDIENCE],
            "iat": now,
            "nbf": now,
            "exp": now + ttl_secs,
        });
        self.federation_key.sign(&claims)
    }

    pub(super) fn register_certificate(&self, pem: &str) -> Result<String, String> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let key = DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("not an RSA certificate: {e}"))?;
        let thumbprint = b64url(&sha256(der.as_ref()));
        write(&self.certificates).insert(thumbprint.clone(), key);
        Ok(thumbprint)
    }

    pub(super) fn create_certificate(&self) -> Result<ClientCertificate, String> {
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "photo-gateway sandbox client");
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let certificate_pem = cert.pem();
        let x5t_s256 = self.register_certificate(&certificate_pem)?;
        Ok(ClientCertificate {
            certificate_pem,
            private_key_pem: key.serialize_pem(),
            x5t_s256,
        })
    }

    /// Checks the client's credential; returns `appidacr` ("1" secret, "2" certificate or federated).
    pub(super) fn authenticate_client(
        &self,
        form: &HashMap<String, String>,
        basic_secret: Option<&str>,
    ) -> Result<&'static str, EntraError> {
        if let Some(kind) = form.get("client_assertion_type") {
            if kind != CLIENT_ASSERTION_TYPE {
                return Err(EntraError::new(
                    "invalid_request",
                    90014,
                    "The request body must contain a valid 'client_assertion_type' (urn:ietf:params:oauth:client-assertion-type:jwt-bearer).",
                ));
            }
            let assertion = form
                .get("client_assertion")
                .ok_or_else(|| EntraError::missing("client_assertion"))?;
            let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
                EntraError::new(
                    "invalid_client",
                    50027,
                    "JWT token is invalid or malformed.",
                )
            })?;
            if header.x5t_s256.is_some() || header.x5t.is_some() {
                self.check_certificate_assertion(&header, assertion)?;
            } else {
                self.check_federated_assertion(&header, assertion)?;
            }
            return Ok("2");
        }
        let secret = form
            .get("client_secret")
            .map(String::as_str)
            .or(basic_secret)
            .ok_or_else(|| {
                EntraError::new(
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
            })?;
        if secret != self.client_secret {
            return Err(EntraError::new(
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    self.minter.client_id
                ),
            ));
        }
        Ok("1")
    }

    pub(super) fn check_certificate_assertion(
        &self,
        header: &Header,
        assertion: &str,
    ) -> Result<(), EntraError> {
        let invalid = |reason: &str| {
            EntraError::new(
                "invalid_client",
                700027,
                format!("Client assertion failed signature validation. [Reason - {reason}]"),
            )
        };
        let thumbprint = header.x5t_s256.as_deref().ok_or_else(|| {
            invalid("Only 'x5t#S256' thumbprints of registered certificates are accepted.")
        })?;
        if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
            return Err(invalid("The algorithm must be PS256 or RS256."));
        }
        let key = read(&self.certificates).get(thumbprint).cloned().ok_or_else(|| {
            invalid(&format!(
                "The key was not found., Thumbprint of key used by client: '{thumbprint}'. Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.",
                self.minter.client_id
            ))
        })?;
        let claims = verify_signature(assertion, &key, header.alg).map_err(|_| {
            invalid("The provided signature value did not match the expected signature value.")
        })?;
        let endpoint = self.token_endpoint();
        if !aud_contains(&claims, &endpoint) {
            return Err(EntraError::new(
                "invalid_client",
                700027,
                format!("Client assertion contains an invalid claim: 'aud' must be '{endpoint}'."),
            ));
        }
        let client = &self.minter.client_id;
        let iss_ok = claims.get("iss").and_then(Value::as_str) == Some(client.as_str());
        let sub_ok = claims.get("sub").and_then(Value::as_str) == Some(client.as_str());
        if !iss_ok || !sub_ok {
            return Err(EntraError::new(
                "invalid_client",
                700023,
                "Client assertion contains an invalid claim: 'iss' and 'sub' must be the client id.",
            ));
        }
        check_client_assertion_lifetime(&claims)
    }

    pub(super) fn check_federated_assertion(
        &self,
        header: &Header,
        assertion: &str,
    ) -> Result<(), EntraError> {
        let unknown_issuer = || {
            EntraError::new(
                "invalid_client",
                700211,
                "No matching federated identity record found for presented assertion issuer.",
            )
        };
        if header.kid.as_deref() != Some(self.federation_key.kid.as_str())
            || header.alg != Algorithm::RS256
        {
            return Err(unknown_issuer());
        }
        let claims = verify_signature(assertion, &self.federation_key.decoding, Algorithm::RS256)
            .map_err(|_| unknown_issuer())?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.federation_issuer.as_str()) {
            return Err(unknown_issuer());
        }
        if !aud_contains(&claims, TOKEN_EXCHANGE_AUDIENCE) {
            return Err(EntraError::new(
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience 'api://AzureADTokenExchange'.",
            ));
        }
        check_client_assertion_lifetime(&claims)?;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.federated_subjects.iter().any(|s| s == sub) {
            return Err(EntraError::new(
                "invalid_client",
                70021,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{sub}'.",
                    self.federation_issuer
                ),
            ));
        }
        Ok(())
    }
}

/// AADSTS700024 for an expired (or not yet valid) client assertion, certificate or federated.
fn check_client_assertion_lifetime(claims: &Value) -> Result<(), EntraError> {
    check_lifetime(claims).map_err(|_| {
        EntraError::new(
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )
    })
}
