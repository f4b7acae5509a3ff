//! The On-Behalf-Of token request and the translation of Entra's answers; the same request with
//! the client-credentials grant gives the gateway's own app-only token (`app.rs` caches it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::credential::Credential;
use crate::metrics;
use crate::outbound::parse_retry_after;

/// A Graph access token obtained for one caller and scope.
pub struct GraphToken {
    /// The bearer token for Graph.
    pub access_token: SecretString,
    /// When the cache must drop it (expiry minus the safety margin).
    pub cache_until: Instant,
}

impl std::fmt::Debug for GraphToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GraphToken([redacted])")
    }
}

/// What Entra said when it refused: its AADSTS number (callers may see it) and its free text,
/// which names the gateway's app, trace ids and times and therefore goes to the log only.
#[derive(Debug, Clone, Default)]
pub struct EntraSaid {
    /// The first AADSTS error code.
    pub aadsts: Option<u64>,
    /// Entra's `error_description` (first line), else its `error`.
    pub description: String,
}

/// Why an exchange failed, in terms the caller and the operator can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OboError {
    /// AADSTS65001: consent missing.
    #[error("consent required: {}", entra.description)]
    ConsentRequired {
        /// The scope requested.
        scope: String,
        /// Entra's answer.
        entra: EntraSaid,
    },
    /// Interaction (MFA, Conditional Access) required, with Entra's claims challenge.
    #[error("interaction required: {}", entra.description)]
    ClaimsChallenge {
        /// Entra's `claims` JSON, for the caller.
        claims: String,
        /// Entra's answer.
        entra: EntraSaid,
    },
    /// The caller's token was rejected as an assertion.
    #[error("assertion rejected: {}", .0.description)]
    AssertionRejected(EntraSaid),
    /// The gateway's own credential was rejected by Entra.
    #[error("gateway credential rejected: {}", .0.description)]
    CredentialRejected(EntraSaid),
    /// The gateway could not build its credential (a file unreadable or invalid).
    #[error("gateway credential unusable: {0}")]
    CredentialUnusable(String),
    /// Another refusal by Entra that the caller cannot fix.
    #[error("token request refused: {}", .0.description)]
    Refused(EntraSaid),
    /// Entra unreachable, slow, failing, throttling or unreadable (the description is the
    /// gateway's own).
    #[error("identity provider unavailable: {description}")]
    Unavailable {
        /// What went wrong.
        description: String,
        /// Suggested wait.
        retry_after: Duration,
    },
}

#[derive(Deserialize)]
struct TokenSuccess {
    access_token: String,
    #[serde(deserialize_with = "number_or_string")]
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct TokenFailure {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    suberror: Option<String>,
    #[serde(default)]
    claims: Option<String>,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        N(u64),
        S(String),
    }
    match N::deserialize(d)? {
        N::N(n) => Ok(n),
        N::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// No Entra access token lives longer than this (CAE tokens: up to 28 hours); a larger
/// `expires_in` is Entra's or a proxy's mistake and is saturated rather than trusted.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(28 * 3600);

/// When a token obtained with a request sent at `sent_at` must leave the cache: counted from the
/// send time, so network time never stretches the lifetime.
fn cache_until(sent_at: Instant, expires_in: u64, margin: Duration) -> Instant {
    let lifetime = Duration::from_secs(expires_in).min(MAX_TOKEN_LIFETIME);
    sent_at + lifetime.saturating_sub(margin)
}

/// Which grant a token request uses.
#[derive(Clone, Copy)]
enum Grant<'a> {
    /// On-Behalf-Of the caller whose token is the assertion.
    OnBehalfOf(&'a str),
    /// The gateway as itself (app-only callers).
    ClientCredentials,
}

/// Client for the tenant's token endpoint. Cloning shares the credential (and what it read
/// from files).
#[derive(Clone)]
pub struct OboClient {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    credential: Arc<Credential>,
    margin: Duration,
}

impl OboClient {
    /// Builds the client.
    pub fn new(
        http: reqwest::Client,
        endpoint: String,
        client_id: String,
        credential: Credential,
        margin: Duration,
    ) -> OboClient {
        OboClient {
            http,
            endpoint,
            client_id,
            credential: Arc::new(credential),
            margin,
        }
    }

    /// Exchanges `assertion` for a Graph token for `scope`, re-reading a file credential once if
    /// Entra rejects it (it may have been rotated under us).
    pub async fn exchange(
        &self,
        assertion: &str,
        scope: &str,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        self.request(Grant::OnBehalfOf(assertion), scope, claims, traceparent)
            .await
    }

    /// The gateway's own token for `scope` (a `/.default` scope: the application permissions
    /// admin-consented to the gateway), with the client-credentials grant; the same credential
    /// handling as [`OboClient::exchange`].
    pub async fn client_credentials(
        &self,
        scope: &str,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        self.request(Grant::ClientCredentials, scope, claims, traceparent)
            .await
    }

    async fn request(
        &self,
        grant: Grant<'_>,
        scope: &str,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        let started = Instant::now();
        let traceparent = crate::telemetry::outbound_traceparent(traceparent);
        let traceparent = traceparent.as_deref();
        let mut result = self.exchange_once(grant, scope, claims, traceparent).await;
        if matches!(
            result,
            Err(OboError::CredentialRejected(_) | OboError::CredentialUnusable(_))
        ) && self.credential.is_file_based()
        {
            self.credential.invalidate();
            result = self.exchange_once(grant, scope, claims, traceparent).await;
        }
        let outcome = match &result {
            Ok(_) => "success",
            Err(OboError::Unavailable { .. }) => "unavailable",
            Err(OboError::CredentialRejected(_) | OboError::CredentialUnusable(_)) => {
                "credential_rejected"
            }
            Err(_) => "refused",
        };
        metrics::token_request(outcome, started.elapsed());
        if let Err(e) = &result {
            // Entra's text and local details are for operators: callers get a stable detail.
            match e {
                OboError::CredentialUnusable(_) => {
                    tracing::error!(error = %e, "the gateway's credential cannot be used")
                }
                OboError::CredentialRejected(said) => {
                    tracing::error!(aadsts = said.aadsts, error = %e, "Entra rejected the gateway's credential")
                }
                OboError::ConsentRequired { entra: said, .. }
                | OboError::ClaimsChallenge { entra: said, .. }
                | OboError::AssertionRejected(said)
                | OboError::Refused(said) => {
                    tracing::warn!(aadsts = said.aadsts, error = %e, "Entra refused the token exchange")
                }
                OboError::Unavailable { .. } => {
                    tracing::warn!(error = %e, "Entra could not issue a token")
                }
            }
        }
        result
    }

    async fn exchange_once(
        &self,
        grant: Grant<'_>,
        scope: &str,
        claims: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        let auth = self
            .credential
            .client_auth(&self.client_id, &self.endpoint)
            .map_err(|e| OboError::CredentialUnusable(e.0))?;
        let mut form: Vec<(&str, &str)> = match grant {
            Grant::OnBehalfOf(assertion) => vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("requested_token_use", "on_behalf_of"),
                ("assertion", assertion),
            ],
            Grant::ClientCredentials => vec![("grant_type", "client_credentials")],
        };
        form.extend([("client_id", self.client_id.as_str()), ("scope", scope)]);
        for (k, v) in &auth.0 {
            form.push((k, v.expose_secret()));
        }
        if let Some(c) = claims {
            form.push(("claims", c));
        }
        let sent_at = Instant::now();
        let mut req = self
            .http
            .post(&self.endpoint)
            .header("x-ms-lib-capability", "retry-after, h429");
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| OboError::Unavailable {
                description: if e.is_timeout() {
                    "the token endpoint did not answer in time".into()
                } else {
                    "the token endpoint could not be reached".into()
                },
                retry_after: Duration::from_secs(5),
            })?;
        let status = resp.status();
        let retry_after = parse_retry_after(resp.headers().get(reqwest::header::RETRY_AFTER));
        let body = resp.bytes().await.map_err(|_| OboError::Unavailable {
            description: "the token endpoint's answer was cut off".into(),
            retry_after: Duration::from_secs(5),
        })?;
        if status.is_success() {
            let ok: TokenSuccess =
                serde_json::from_slice(&body).map_err(|_| OboError::Unavailable {
                    description: "the token endpoint's answer is unreadable".into(),
                    retry_after: Duration::from_secs(5),
                })?;
            return Ok(GraphToken {
                access_token: SecretString::from(ok.access_token),
                cache_until: cache_until(sent_at, ok.expires_in, self.margin),
            });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(OboError::Unavailable {
                description: format!("the token endpoint answered HTTP {}", status.as_u16()),
                retry_after: retry_after.unwrap_or(Duration::from_secs(5)),
            });
        }
        let Ok(f) = serde_json::from_slice::<TokenFailure>(&body) else {
            return Err(OboError::Unavailable {
                description: format!(
                    "the token endpoint answered HTTP {} with an unreadable body",
                    status.as_u16()
                ),
                retry_after: Duration::from_secs(5),
            });
        };
        Err(classify(f, scope))
    }
}

/// Maps an Entra error answer to what the caller or operator must do.
fn classify(f: TokenFailure, scope: &str) -> OboError {
    let has = |code: u64| {
        f.error_codes.contains(&code) || f.error_description.starts_with(&format!("AADSTS{code}:"))
    };
    let first_line = f.error_description.lines().next().unwrap_or("").to_owned();
    let aadsts = f.error_codes.first().copied().or_else(|| {
        let digits: String = f
            .error_description
            .strip_prefix("AADSTS")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    let entra = EntraSaid {
        aadsts,
        description: if first_line.is_empty() {
            f.error.clone()
        } else {
            first_line
        },
    };
    if has(65001)
        || f.suberror.as_deref() == Some("consent_required")
        || f.error == "consent_required"
    {
        return OboError::ConsentRequired {
            scope: scope.to_owned(),
            entra,
        };
    }
    if let Some(claims) = f.claims.filter(|c| !c.is_empty())
        && (f.error == "interaction_required"
            || has(50076)
            || has(50079)
            || f.error == "invalid_grant")
    {
        return OboError::ClaimsChallenge { claims, entra };
    }
    if f.error == "invalid_client"
        || [7000215, 7000222, 700024, 700027, 7000274, 700016]
            .iter()
            .any(|c| has(*c))
    {
        return OboError::CredentialRejected(entra);
    }
    if [50013, 500131, 500133, 50173, 700082]
        .iter()
        .any(|c| has(*c))
        || f.error == "invalid_grant"
    {
        return OboError::AssertionRejected(entra);
    }
    OboError::Refused(entra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurd_expires_in_is_saturated_not_a_panic() {
        let now = Instant::now();
        let margin = Duration::from_secs(300);
        assert_eq!(
            cache_until(now, u64::MAX, margin),
            now + MAX_TOKEN_LIFETIME - margin
        );
        assert_eq!(
            cache_until(now, 3599, margin),
            now + Duration::from_secs(3299)
        );
        assert_eq!(
            cache_until(now, 10, margin),
            now,
            "shorter than the margin: not cached"
        );
    }

    #[test]
    fn entra_errors_are_classified() {
        let f = |error: &str, codes: Vec<u64>, claims: Option<&str>| TokenFailure {
            error: error.into(),
            error_description: format!("AADSTS{}: text", codes.first().copied().unwrap_or(0)),
            error_codes: codes,
            suberror: None,
            claims: claims.map(str::to_owned),
        };
        assert!(matches!(
            classify(f("invalid_grant", vec![65001], None), "s"),
            OboError::ConsentRequired { .. }
        ));
        assert!(matches!(
            classify(f("interaction_required", vec![50076], Some("{}")), "s"),
            OboError::ClaimsChallenge { .. }
        ));
        assert!(matches!(
            classify(f("invalid_grant", vec![500133], None), "s"),
            OboError::AssertionRejected(_)
        ));
        assert!(matches!(
            classify(f("invalid_client", vec![7000215], None), "s"),
            OboError::CredentialRejected(_)
        ));
        assert!(matches!(
            classify(f("invalid_request", vec![700024], None), "s"),
            OboError::CredentialRejected(_)
        ));
        assert!(matches!(
            classify(f("invalid_scope", vec![70011], None), "s"),
            OboError::Refused(_)
        ));
    }
}
