//! The one way outbound HTTP clients are built: TLS roots (system plus an optional extra bundle),
//! no redirects, connect and total timeouts.

use std::time::Duration;

use crate::config::UpstreamConfig;

/// Errors building an upstream client.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The extra CA bundle could not be read or parsed.
    #[error("PHOTO_GATEWAY_CA_BUNDLE_FILE: {0}")]
    CaBundle(String),
    /// reqwest refused the configuration.
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Reads the extra CA bundle once, so all clients share the parsed certificates.
pub fn extra_roots(config: &UpstreamConfig) -> Result<Vec<reqwest::Certificate>, ClientBuildError> {
    let Some(path) = &config.ca_bundle_file else {
        return Ok(Vec::new());
    };
    let pem =
        std::fs::read(path).map_err(|e| ClientBuildError::CaBundle(format!("{path:?}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ClientBuildError::CaBundle(format!("{path:?}: {e}")))?;
    if certs.is_empty() {
        return Err(ClientBuildError::CaBundle(format!(
            "{path:?} holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// Builds a client for one upstream with the given total timeout per request.
pub fn client(
    config: &UpstreamConfig,
    roots: &[reqwest::Certificate],
    timeout: Duration,
) -> Result<reqwest::Client, ClientBuildError> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("photo-gateway/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tls_certs_merge(roots.iter().cloned());
    Ok(builder.build()?)
}
