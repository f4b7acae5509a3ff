//! JWT checks both emulators make. The library verifies signatures only; claims are checked by hand
//! so each failure gets the real service's own error code and message.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::util::now_secs;

/// A validation that checks the signature and algorithm, no claim.
pub(crate) fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

/// Verifies only the signature (and algorithm); returns the claims.
pub(crate) fn verify_signature(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Value, jsonwebtoken::errors::Error> {
    jsonwebtoken::decode::<Value>(token, key, &signature_only(alg)).map(|d| d.claims)
}

/// Whether `aud` is `expected` or, as an array, holds it.
pub(crate) fn aud_contains(claims: &Value, expected: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(s)) => s == expected,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(expected)),
        _ => false,
    }
}

/// `exp` required and in the future, `nbf` (if present) not in the future.
pub(crate) fn check_lifetime(claims: &Value) -> Result<(), ()> {
    let now = now_secs();
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(())?;
    if exp <= now {
        return Err(());
    }
    match claims.get("nbf") {
        None => Ok(()),
        Some(n) => match n.as_i64() {
            Some(nbf) if nbf <= now => Ok(()),
            _ => Err(()),
        },
    }
}

/// The claims of a JWT without verifying it (for counting only).
pub(crate) fn unverified_claims(token: &str) -> Option<Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
