//! The Entra ID emulator: OIDC discovery (v2 and v1), JWKS with rotation, and a token endpoint
//! implementing On-Behalf-Of and client credentials with Entra's success and error shapes.

mod client_auth;
mod control;
mod discovery;
mod endpoints;
mod minting;
mod scopes;
mod token_endpoint;

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jsonwebtoken::{DecodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use client_auth::{ClientCertificate, DEFAULT_FEDERATED_SUBJECT, TOKEN_EXCHANGE_AUDIENCE};
pub use minting::CallerTokenSpec;
pub(crate) use minting::Minter;
pub use scopes::{
    CONSENTED_READ_SCOPES, CONSENTED_SCOPES, CONSENTED_TEAM_SCOPES, GRAPH_APP_ID,
    PUBLIC_GRAPH_RESOURCE,
};

use crate::control::FaultControl;
use crate::directory::Directory;
use crate::keys::{KeyStore, RsaKey};
use crate::server::ServerHandle;
use crate::util::{lock, write};

/// A per-user error the token endpoint answers OBO requests for that user with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenErrorKind {
    /// 400 `invalid_grant`, AADSTS65001, suberror `consent_required`.
    ConsentRequired,
    /// 400 `interaction_required`, AADSTS50076, with a `claims` challenge.
    MfaRequired,
}

/// Token endpoint and discovery counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EntraCounters {
    /// Every request to the token endpoint, faulted ones included.
    pub token_requests: u64,
    /// By grant: `on_behalf_of`, `client_credentials`, or the raw `grant_type`.
    pub by_grant_type: BTreeMap<String, u64>,
    /// By the `scope` parameter as sent.
    pub by_scope: BTreeMap<String, u64>,
    /// By the assertion's user (UPN, else oid); client credentials count as `app:{client_id}`.
    pub by_user: BTreeMap<String, u64>,
    /// By answered status.
    pub by_status: BTreeMap<u16, u64>,
    /// Discovery document fetches (v1 and v2).
    pub discovery: u64,
    /// JWKS fetches.
    pub jwks: u64,
}

/// Shared state of the Entra emulator.
pub(crate) struct EntraState {
    pub minter: Minter,
    pub graph_url: String,
    pub keys: Arc<KeyStore>,
    federation_key: RsaKey,
    pub federation_issuer: String,
    client_secret: String,
    federated_subjects: Vec<String>,
    certificates: RwLock<HashMap<String, DecodingKey>>,
    token_lifetime: AtomicU64,
    default_lifetime: u64,
    user_errors: RwLock<HashMap<String, TokenErrorKind>>,
    /// The gateway app's granted application permissions when a test changed them (else the seed's).
    app_permissions: RwLock<Option<Vec<String>>>,
    counters: Mutex<EntraCounters>,
    /// Where `sandbox token` finds the current key; rewritten on rotation.
    pub state_file: Option<std::path::PathBuf>,
}

/// Settings for building [`EntraState`].
pub(crate) struct EntraSettings {
    pub entra_url: String,
    pub graph_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: u64,
    pub federated_subjects: Vec<String>,
    pub directory: Arc<Directory>,
    pub keys: Arc<KeyStore>,
    pub state_file: Option<std::path::PathBuf>,
}

impl EntraState {
    pub(crate) fn new(s: EntraSettings) -> std::io::Result<EntraState> {
        Ok(EntraState {
            federation_issuer: format!("{}/_federation/", s.entra_url),
            minter: Minter {
                entra_url: s.entra_url,
                tenant_id: s.tenant_id,
                client_id: s.client_id,
                directory: s.directory,
            },
            graph_url: s.graph_url,
            keys: s.keys,
            federation_key: RsaKey::generate()?,
            client_secret: s.client_secret,
            federated_subjects: s.federated_subjects,
            certificates: RwLock::new(HashMap::new()),
            token_lifetime: AtomicU64::new(s.token_lifetime),
            default_lifetime: s.token_lifetime,
            user_errors: RwLock::new(HashMap::new()),
            app_permissions: RwLock::new(None),
            counters: Mutex::new(EntraCounters::default()),
            state_file: s.state_file,
        })
    }

    fn url(&self) -> &str {
        &self.minter.entra_url
    }

    fn tenant_ok(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.minter.tenant_id)
            || tenant.eq_ignore_ascii_case(&self.minter.directory.domain)
    }

    fn token_endpoint(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.url(), self.minter.tenant_id)
    }

    /// Canonical key for per-user state: the directory object id when known.
    fn user_key(&self, user: &str) -> String {
        self.minter
            .directory
            .user(user)
            .map(|u| u.id.clone())
            .unwrap_or_else(|| user.to_lowercase())
    }

    pub(crate) fn set_user_error(&self, user: &str, kind: Option<TokenErrorKind>) {
        let key = self.user_key(user);
        let mut map = write(&self.user_errors);
        match kind {
            Some(k) => map.insert(key, k),
            None => map.remove(&key),
        };
    }

    /// Grants the gateway app these application permissions instead of the seed's; `None` restores them.
    pub(crate) fn set_app_permissions(&self, roles: Option<Vec<String>>) {
        *write(&self.app_permissions) = roles;
    }

    /// The application permissions granted to `client_id` (the `roles` of its client-credentials tokens).
    pub(crate) fn app_permissions(&self, client_id: &str) -> Vec<String> {
        let seeded = crate::roles::app_permissions(client_id);
        if seeded.is_empty() {
            return Vec::new();
        }
        crate::util::read(&self.app_permissions)
            .clone()
            .unwrap_or_else(|| seeded.iter().map(|s| s.to_string()).collect())
    }

    pub(crate) fn set_lifetime(&self, secs: u64) {
        self.token_lifetime.store(secs, Ordering::Relaxed);
    }

    pub(crate) fn counters(&self) -> EntraCounters {
        lock(&self.counters).clone()
    }

    /// Rotates the signing key (the previous one stays published); returns the new kid.
    pub(crate) fn rotate(&self) -> std::io::Result<String> {
        let key = self.keys.rotate_to(RsaKey::generate()?);
        if let Some(path) = &self.state_file {
            crate::state::update_state_key(path, &key.private_pem);
        }
        Ok(key.kid.clone())
    }
}

/// The Entra ID emulator: a handle to a running server (cheap to clone).
#[derive(Clone)]
pub struct EntraEmulator {
    pub(crate) state: Arc<EntraState>,
    pub(crate) server: Arc<ServerHandle>,
}

impl EntraEmulator {
    /// `https://127.0.0.1:PORT` (the authority host, without tenant).
    pub fn url(&self) -> String {
        self.state.minter.entra_url.clone()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.state.minter.tenant_id
    }

    /// `{url}/{tenant}/v2.0`, the v2 `issuer`.
    pub fn issuer_v2(&self) -> String {
        self.state.minter.issuer_v2()
    }

    /// `{url}/{tenant}/`, the v1 `issuer`.
    pub fn issuer_v1(&self) -> String {
        self.state.minter.issuer_v1()
    }

    /// The v2 token endpoint (also the `aud` a certificate client assertion needs).
    pub fn token_endpoint(&self) -> String {
        self.state.token_endpoint()
    }

    /// The issuer of federated assertions minted by [`EntraEmulator::federated_assertion`].
    pub fn federation_issuer(&self) -> &str {
        &self.state.federation_issuer
    }

    /// The counters.
    pub fn counters(&self) -> EntraCounters {
        self.state.counters()
    }

    /// Makes OBO requests for `user` (UPN or object id) fail with `kind`.
    pub fn set_token_error(&self, user: &str, kind: TokenErrorKind) {
        self.state.set_user_error(user, Some(kind));
    }

    /// Stops injecting errors for `user`.
    pub fn clear_token_error(&self, user: &str) {
        self.state.set_user_error(user, None);
    }

    /// Rotates the signing key (the previous one stays published); returns the new kid.
    pub fn rotate_keys(&self) -> std::io::Result<String> {
        self.state.rotate()
    }

    /// The kid new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.state.keys.get().current.kid.clone()
    }

    /// The current signing key's public key, SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        self.state.keys.get().current.public_pem.clone()
    }

    /// The JWKS document as served.
    pub fn jwks(&self) -> Value {
        serde_json::from_slice(&self.state.keys.get().jwks).unwrap_or(Value::Null)
    }

    /// Mints a caller token (for the gateway's API) signed with the current key.
    pub fn caller_token(&self, spec: &CallerTokenSpec) -> String {
        self.state.caller_token(spec)
    }

    /// Mints a Graph token for `user` with these scope names (e.g. `User.ReadWrite`), as OBO would.
    pub fn graph_token(&self, user: &str, scopes: &[&str]) -> String {
        self.state.graph_token(user, scopes)
    }

    /// Mints an app-only Graph token (as client credentials would) carrying these application
    /// permissions as `roles`.
    pub fn graph_app_token(&self, roles: &[&str]) -> String {
        self.state.graph_app_token(roles)
    }

    /// Like [`EntraEmulator::graph_token`], but valid `ttl_secs` from now whatever the token
    /// lifetime setting (the sandbox prints tokens meant to last a working session).
    pub fn graph_token_with_ttl(&self, user: &str, scopes: &[&str], ttl_secs: i64) -> String {
        self.state.graph_token_with_ttl(user, scopes, ttl_secs)
    }

    /// Signs arbitrary claims with the current key; `header.kid` defaults to the current kid.
    pub fn sign_jwt(&self, header: Header, claims: &Value) -> String {
        let key = self.state.keys.get().current.clone();
        let mut header = header;
        if header.kid.is_none() {
            header.kid = Some(key.kid.clone());
        }
        key.sign_with_header(&header, claims)
    }

    /// Mints a federated (workload identity) assertion; `subject` defaults to
    /// [`DEFAULT_FEDERATED_SUBJECT`]; a negative `ttl_secs` makes an expired one (→ AADSTS700024).
    pub fn federated_assertion(&self, subject: Option<&str>, ttl_secs: i64) -> String {
        self.state.federated_assertion(subject, ttl_secs)
    }

    /// Registers a client certificate (PEM) for the gateway app; returns its `x5t#S256`.
    pub fn register_client_certificate(&self, pem: &str) -> Result<String, String> {
        self.state.register_certificate(pem)
    }

    /// Generates an RSA certificate and key and registers the certificate for the gateway app.
    pub fn create_client_certificate(&self) -> Result<ClientCertificate, String> {
        self.state.create_certificate()
    }

    /// Changes the Graph application permissions granted to the gateway app (the `roles` of its
    /// client-credentials Graph tokens from now on), as an admin granting or revoking consent;
    /// `reset` restores the seed's ([`crate::roles::GATEWAY_APP_PERMISSIONS`]).
    pub fn set_app_permissions(&self, roles: &[&str]) {
        self.state
            .set_app_permissions(Some(roles.iter().map(|s| s.to_string()).collect()));
    }

    /// Sets `expires_in` (and the Graph tokens' lifetime) of new tokens.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.set_lifetime(secs);
    }
}

/// Fault rules, refusing connections and `reset`: the same for both emulators.
impl Deref for EntraEmulator {
    type Target = FaultControl;

    fn deref(&self) -> &FaultControl {
        &self.server.control
    }
}
