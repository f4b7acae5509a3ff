//! Forging caller tokens: the claims of a valid token to vary, the tenant's own signing key for
//! bytes `Emulators::sign_jwt` cannot express, and an RSA key nobody published.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::app::TestApp;
use super::paths::DEMO;

/// Base64url without padding, as JWTs encode their parts.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Standard base64 with padding, as PEM and `x5c` encode DER.
pub fn b64_std(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Seconds since the epoch, the clock JWT times count in.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of `token`, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The claims of a valid v2 caller token for the demo user, for crafting variants.
pub fn claims(app: &TestApp) -> Value {
    claims_of(&app.token(DEMO))
}

/// A header for `alg` naming key `kid`.
pub fn header(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_owned());
    h
}

/// An RS256 header naming key `kid`: what the tenant signs with.
pub fn rs256(kid: &str) -> Header {
    header(Algorithm::RS256, kid)
}

/// A token under `header` signed with HMAC over `secret`: what a verifier confusing a public
/// key for a shared secret would accept.
pub fn sign_hmac(header: &Header, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// The tenant's current private signing key (the emulators keep it in their state file), to sign
/// arbitrary header and payload bytes that `sign_jwt` cannot express.
pub fn tenant_key(app: &TestApp) -> EncodingKey {
    let state: Value = serde_json::from_slice(
        &std::fs::read(app.emus.state_dir().join("sandbox-state.json")).unwrap(),
    )
    .unwrap();
    EncodingKey::from_rsa_pem(state["private_key_pem"].as_str().unwrap().as_bytes()).unwrap()
}

/// `b64(header).b64(payload).signature` over exactly these bytes.
pub fn sign_raw(header: &[u8], payload: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!("{}.{}", b64(header), b64(payload));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

/// A fresh RSA key nobody published, and its certificate.
pub struct Attacker {
    pub key: EncodingKey,
    pub cert_der: Vec<u8>,
    pub jwk: Value,
}

impl Attacker {
    /// A token under `header` signed by the attacker's key.
    pub fn sign(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.key).unwrap()
    }
}

/// Generates an [`Attacker`] key.
pub fn attacker() -> Attacker {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let key = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["attacker.example".to_owned()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    // The public key as a JWK: n and e from the PKCS#1 RSAPublicKey inside the SPKI.
    let pkcs1 = spki_to_pkcs1(&pem_body(&pair.public_key_pem()));
    let (n, e) = rsa_public_numbers(&pkcs1);
    Attacker {
        key,
        cert_der: cert.der().to_vec(),
        jwk: json!({"kty": "RSA", "use": "sig", "n": b64(&n), "e": b64(&e)}),
    }
}

/// Reads one DER TLV at `at`: (tag, start of content, end of content).
fn der_tlv(der: &[u8], at: usize) -> (u8, usize, usize) {
    let tag = der[at];
    let first = der[at + 1] as usize;
    let (len, start) = if first < 0x80 {
        (first, at + 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | der[at + 2 + i] as usize;
        }
        (len, at + 2 + n)
    };
    (tag, start, start + len)
}

/// SPKI DER → the PKCS#1 `RSAPublicKey` DER inside its BIT STRING.
pub fn spki_to_pkcs1(spki: &[u8]) -> Vec<u8> {
    let (tag, body, _) = der_tlv(spki, 0);
    assert_eq!(tag, 0x30);
    let (tag, _, alg_end) = der_tlv(spki, body);
    assert_eq!(tag, 0x30);
    let (tag, bits, bits_end) = der_tlv(spki, alg_end);
    assert_eq!(tag, 0x03);
    // First content byte of a BIT STRING: the number of unused bits (0).
    spki[bits + 1..bits_end].to_vec()
}

/// PKCS#1 DER → (modulus, exponent), big-endian without leading zero bytes.
fn rsa_public_numbers(pkcs1: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, body, _) = der_tlv(pkcs1, 0);
    let (_, n_start, n_end) = der_tlv(pkcs1, body);
    let (_, e_start, e_end) = der_tlv(pkcs1, n_end);
    let strip = |v: &[u8]| {
        let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        v[i..].to_vec()
    };
    (strip(&pkcs1[n_start..n_end]), strip(&pkcs1[e_start..e_end]))
}

/// The DER inside a PEM block.
pub fn pem_body(pem: &str) -> Vec<u8> {
    let text: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// `der` as a PEM block labelled `label`, 64 characters a line.
pub fn pem_wrap(label: &str, der: &[u8]) -> String {
    let b = b64_std(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
