//! What every emulator test file needs: the emulators, a client that trusts only their CA, a
//! token's claims, and a photo request. Each test binary uses a different part of it.
#![allow(dead_code)]

use std::time::Duration;

use photo_gateway_emulators::{EmulatorOptions, Emulators};
use serde_json::Value;

pub async fn start() -> Emulators {
    Emulators::start(EmulatorOptions::default()).await.unwrap()
}

/// A client that trusts only the emulators' CA (so TLS is really verified) and keeps no idle
/// connections.
pub fn client(emus: &Emulators) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emus.ca_pem().as_bytes()).unwrap()])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The payload of a JWT, unverified.
pub fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// A photo request (`method` on `url`) with a JPEG body.
pub async fn send(
    c: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    c.request(method.parse().unwrap(), url)
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(body)
        .send()
        .await
        .unwrap()
}

pub async fn put(c: &reqwest::Client, url: &str, token: &str, body: Vec<u8>) -> reqwest::Response {
    send(c, "PUT", url, token, body).await
}

/// The `access_token` of a successful answer of the Entra emulator's token endpoint to `form`.
pub async fn access_token(emus: &Emulators, form: &[(&str, &str)]) -> String {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        emus.entra_url(),
        emus.tenant_id()
    );
    let resp = client(emus).post(url).form(form).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}
