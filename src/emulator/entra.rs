//! The Entra ID emulator: OIDC discovery (v2 and v1), JWKS with rotation, and a token endpoint
//! implementing On-Behalf-Of and client credentials with Entra's success and error shapes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::directory::{DEMO_CLIENT_ID, Directory};
use super::keys::{KeyStore, RsaKey};
use super::server::{ServerHandle, Service, bad_request, parse_control};
use super::util::{
    Body, b64url, collect_limited, empty, entra_timestamp, guid, json, lock, now_secs, read,
    stable_guid, write,
};

/// Graph's well-known application id, accepted as a resource like Graph's URL.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The public Graph resource, accepted in scopes next to the emulator's own URL.
pub const PUBLIC_GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// The audience a federated (workload identity) assertion must carry.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The default subject of minted federated assertions (a Kubernetes service account).
pub const DEFAULT_FEDERATED_SUBJECT: &str = "system:serviceaccount:photo-gateway:photo-gateway";
/// Graph delegated permissions admin-consented for the gateway app (`.default` grants all of them).
pub const CONSENTED_SCOPES: [&str; 5] = [
    "User.ReadWrite",
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Contacts.ReadWrite",
    "ProfilePhoto.ReadWrite.All",
];
/// Graph permissions the emulator knows but the gateway app has no consent for (→ AADSTS65001).
const KNOWN_UNCONSENTED: [&str; 12] = [
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "Group.Read.All",
    "Contacts.Read",
    "ProfilePhoto.Read.All",
    "Mail.Read",
    "Mail.Send",
    "Calendars.Read",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Files.ReadWrite.All",
];
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MFA_CLAIMS: &str = r#"{"access_token":{"capolids":{"essential":true,"values":["5d3f4a2b-0000-4c6e-8f00-00000000ca01"]}}}"#;

/// What a minted caller token (an access token for the gateway's API) looks like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallerTokenSpec {
    /// UPN or object id; users outside the directory get a stable derived object id.
    pub user: String,
    /// Delegated scopes (`scp`), space-separated; `access_as_user` when absent.
    #[serde(default, alias = "scope")]
    pub scp: Option<String>,
    /// Calling client id (`azp`, or `appid` in v1); [`DEMO_CLIENT_ID`] when absent.
    #[serde(default)]
    pub app: Option<String>,
    /// Lifetime in seconds from now; negative makes an already expired token.
    #[serde(default = "default_ttl")]
    pub ttl_secs: i64,
    /// Token version: 2 (default) or 1 (App ID URI audience, v1 issuer, `appid`).
    #[serde(default = "default_version")]
    pub version: u8,
    /// An app-only token: `roles`, no `scp`, `idtyp=app`.
    #[serde(default)]
    pub app_only: bool,
    /// `roles` of an app-only token.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Overrides `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Extra or overriding claims, applied last.
    #[serde(default)]
    pub extra_claims: Map<String, Value>,
}

fn default_ttl() -> i64 {
    3600
}

fn default_version() -> u8 {
    2
}

impl CallerTokenSpec {
    /// A v2 delegated token for `user` with `scp=access_as_user`, from the demo client, valid one hour.
    pub fn for_user(user: &str) -> CallerTokenSpec {
        CallerTokenSpec {
            user: user.to_string(),
            scp: None,
            app: None,
            ttl_secs: default_ttl(),
            version: 2,
            app_only: false,
            roles: Vec::new(),
            audience: None,
            extra_claims: Map::new(),
        }
    }

    /// Sets `scp`.
    pub fn scp(mut self, scp: &str) -> Self {
        self.scp = Some(scp.to_string());
        self
    }

    /// Sets the calling client id.
    pub fn app(mut self, client_id: &str) -> Self {
        self.app = Some(client_id.to_string());
        self
    }

    /// Sets the lifetime (negative = expired that many seconds ago).
    pub fn ttl_secs(mut self, secs: i64) -> Self {
        self.ttl_secs = secs;
        self
    }

    /// Sets the token version (1 or 2).
    pub fn version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// Makes it an app-only token with these roles.
    pub fn app_only(mut self, roles: &[&str]) -> Self {
        self.app_only = true;
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }

    /// Overrides `aud`.
    pub fn audience(mut self, aud: &str) -> Self {
        self.audience = Some(aud.to_string());
        self
    }

    /// Adds or overrides a claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.extra_claims.insert(name.to_string(), value);
        self
    }
}

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

/// Builds the tokens the emulator issues; also used offline by `sandbox token` with saved keys.
pub(crate) struct Minter {
    pub entra_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub directory: Arc<Directory>,
}

/// The subject of a token: directory user or a derived stand-in.
pub(crate) struct Principal {
    pub oid: String,
    pub upn: String,
    pub name: String,
}

impl Minter {
    pub(crate) fn issuer_v2(&self) -> String {
        format!("{}/{}/v2.0", self.entra_url, self.tenant_id)
    }

    pub(crate) fn issuer_v1(&self) -> String {
        format!("{}/{}/", self.entra_url, self.tenant_id)
    }

    pub(crate) fn principal(&self, user: &str) -> Principal {
        match self.directory.user(user) {
            Some(u) => Principal {
                oid: u.id.clone(),
                upn: u.user_principal_name.clone(),
                name: u.display_name.clone(),
            },
            None => Principal {
                oid: if uuid::Uuid::parse_str(user).is_ok() {
                    user.to_ascii_lowercase()
                } else {
                    stable_guid(&format!("user:{}", user.to_lowercase()))
                },
                upn: user.to_string(),
                name: user.to_string(),
            },
        }
    }

    /// Claims of a caller token (an access token for the gateway app).
    pub(crate) fn caller_claims(&self, spec: &CallerTokenSpec) -> Value {
        let now = now_secs();
        let app = spec
            .app
            .clone()
            .unwrap_or_else(|| DEMO_CLIENT_ID.to_string());
        let mut c = Map::new();
        let v1 = spec.version == 1;
        if v1 {
            c.insert("aud".into(), json!(format!("api://{}", self.client_id)));
            c.insert("iss".into(), json!(self.issuer_v1()));
            c.insert("appid".into(), json!(app));
            c.insert("appidacr".into(), json!("0"));
            c.insert("ver".into(), json!("1.0"));
        } else {
            c.insert("aud".into(), json!(self.client_id));
            c.insert("iss".into(), json!(self.issuer_v2()));
            c.insert("azp".into(), json!(app));
            c.insert("azpacr".into(), json!("0"));
            c.insert("ver".into(), json!("2.0"));
        }
        c.insert("iat".into(), json!(now));
        c.insert("nbf".into(), json!(now));
        c.insert("exp".into(), json!(now + spec.ttl_secs));
        c.insert("tid".into(), json!(self.tenant_id));
        c.insert("uti".into(), json!(b64url(uuid::Uuid::new_v4().as_bytes())));
        if spec.app_only {
            let sp = stable_guid(&format!("sp:{app}"));
            c.insert("oid".into(), json!(sp));
            c.insert("sub".into(), json!(sp));
            c.insert("idtyp".into(), json!("app"));
            c.insert("roles".into(), json!(spec.roles));
        } else {
            let p = self.principal(&spec.user);
            c.insert(
                "sub".into(),
                json!(b64url(&sha2_32(&format!("{}:{app}", p.oid)))),
            );
            c.insert("oid".into(), json!(p.oid));
            c.insert("name".into(), json!(p.name));
            if v1 {
                c.insert("upn".into(), json!(p.upn));
                c.insert("unique_name".into(), json!(p.upn));
            } else {
                c.insert("preferred_username".into(), json!(p.upn));
            }
            c.insert(
                "scp".into(),
                json!(spec.scp.clone().unwrap_or_else(|| "access_as_user".into())),
            );
        }
        if let Some(aud) = &spec.audience {
            c.insert("aud".into(), json!(aud));
        }
        for (k, v) in &spec.extra_claims {
            c.insert(k.clone(), v.clone());
        }
        Value::Object(c)
    }

    /// Claims of a Graph access token (v1 style, as Entra issues for Graph).
    pub(crate) fn graph_claims(
        &self,
        who: Option<&Principal>,
        scp_or_roles: &[String],
        resource: &str,
        lifetime: i64,
        appidacr: &str,
    ) -> Value {
        let now = now_secs();
        let mut c = Map::new();
        c.insert("aud".into(), json!(resource));
        c.insert("iss".into(), json!(self.issuer_v1()));
        c.insert("iat".into(), json!(now));
        c.insert("nbf".into(), json!(now));
        c.insert("exp".into(), json!(now + lifetime));
        c.insert("tid".into(), json!(self.tenant_id));
        c.insert("appid".into(), json!(self.client_id));
        c.insert("appidacr".into(), json!(appidacr));
        c.insert("ver".into(), json!("1.0"));
        c.insert("uti".into(), json!(b64url(uuid::Uuid::new_v4().as_bytes())));
        match who {
            Some(p) => {
                c.insert("oid".into(), json!(p.oid));
                c.insert(
                    "sub".into(),
                    json!(b64url(&sha2_32(&format!("graph:{}", p.oid)))),
                );
                c.insert("upn".into(), json!(p.upn));
                c.insert("unique_name".into(), json!(p.upn));
                c.insert("name".into(), json!(p.name));
                c.insert("scp".into(), json!(scp_or_roles.join(" ")));
            }
            None => {
                let sp = stable_guid(&format!("sp:{}", self.client_id));
                c.insert("oid".into(), json!(sp));
                c.insert("sub".into(), json!(sp));
                c.insert("idtyp".into(), json!("app"));
                c.insert("roles".into(), json!(scp_or_roles));
            }
        }
        Value::Object(c)
    }
}

fn sha2_32(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// An error answered by the token endpoint, in Entra's shape.
struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
    suberror: Option<&'static str>,
    claims: Option<String>,
}

impl EntraError {
    fn new(error: &'static str, code: u32, description: impl Into<String>) -> EntraError {
        EntraError {
            status: if error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            error,
            code,
            description: description.into(),
            suberror: None,
            claims: None,
        }
    }

    fn missing(param: &str) -> EntraError {
        EntraError::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }
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
    /// AADSTS65001 as Entra answers it: consent for the gateway app is missing.
    fn consent_required(&self) -> EntraError {
        let mut e = EntraError::new(
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{}' named 'photo-gateway'. Send an interactive authorization request for this user and resource.",
                self.minter.client_id
            ),
        );
        e.suberror = Some("consent_required");
        e
    }

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

    pub(crate) fn set_lifetime(&self, secs: u64) {
        self.token_lifetime.store(secs, Ordering::Relaxed);
    }

    pub(crate) fn counters(&self) -> EntraCounters {
        lock(&self.counters).clone()
    }

    pub(crate) fn caller_token(&self, spec: &CallerTokenSpec) -> String {
        self.keys
            .get()
            .current
            .sign(&self.minter.caller_claims(spec))
    }

    pub(crate) fn graph_token(&self, user: &str, scopes: &[&str]) -> String {
        let lifetime = self.token_lifetime.load(Ordering::Relaxed) as i64;
        self.graph_token_with_ttl(user, scopes, lifetime)
    }

    pub(crate) fn graph_token_with_ttl(
        &self,
        user: &str,
        scopes: &[&str],
        lifetime: i64,
    ) -> String {
        let p = self.minter.principal(user);
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let claims = self
            .minter
            .graph_claims(Some(&p), &scopes, &self.graph_url, lifetime, "1");
        self.keys.get().current.sign(&claims)
    }

    pub(crate) fn federated_assertion(&self, subject: Option<&str>, ttl_secs: i64) -> String {
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

    pub(crate) fn register_certificate(&self, pem: &str) -> Result<String, String> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let key = DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("not an RSA certificate: {e}"))?;
        let thumbprint = b64url(&sha2_slice(der.as_ref()));
        write(&self.certificates).insert(thumbprint.clone(), key);
        Ok(thumbprint)
    }

    pub(crate) fn create_certificate(&self) -> Result<ClientCertificate, String> {
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

    pub(crate) fn rotate(&self) -> std::io::Result<String> {
        let key = self.keys.rotate_to(RsaKey::generate()?);
        if let Some(path) = &self.state_file {
            super::sandbox::update_state_key(path, &key.private_pem);
        }
        Ok(key.kid.clone())
    }

    fn discovery_v2(&self, tenant: &str) -> Value {
        let base = format!("{}/{tenant}", self.url());
        json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.minter.issuer_v2(),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{}/oidc/userinfo", self.graph_url),
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{base}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": self.graph_url.trim_start_matches("https://"),
            "rbac_url": "https://pas.windows.net"
        })
    }

    fn discovery_v1(&self, tenant: &str) -> Value {
        let base = format!("{}/{tenant}", self.url());
        json!({
            "token_endpoint": format!("{base}/oauth2/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": self.minter.issuer_v1(),
            "microsoft_multi_refresh_token": true,
            "authorization_endpoint": format!("{base}/oauth2/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
            "check_session_iframe": format!("{base}/oauth2/checksession"),
            "userinfo_endpoint": format!("{base}/openid/userinfo"),
            "kerberos_endpoint": format!("{base}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": self.graph_url.trim_start_matches("https://"),
            "rbac_url": "https://pas.windows.net"
        })
    }

    fn error_response(&self, err: EntraError, correlation: &str) -> Response<Body> {
        let now = now_secs();
        let ts = entra_timestamp(now);
        let trace = guid();
        let mut body = json!({
            "error": err.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}",
                err.code, err.description
            ),
            "error_codes": [err.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{}/error?code={}", self.url(), err.code),
        });
        if let Some(s) = err.suberror {
            body["suberror"] = json!(s);
        }
        if let Some(c) = err.claims {
            body["claims"] = json!(c);
        }
        let mut resp = json(err.status, &body);
        no_store(&mut resp);
        resp
    }

    fn count_token(&self, form: &HashMap<String, String>, user: Option<String>, status: u16) {
        let mut c = lock(&self.counters);
        c.token_requests += 1;
        let grant = match form.get("grant_type").map(String::as_str) {
            Some(JWT_BEARER) => "on_behalf_of".to_string(),
            Some(g) => g.to_string(),
            None => "-".to_string(),
        };
        *c.by_grant_type.entry(grant).or_default() += 1;
        if let Some(scope) = form.get("scope") {
            *c.by_scope.entry(scope.clone()).or_default() += 1;
        }
        if let Some(u) = user {
            *c.by_user.entry(u).or_default() += 1;
        }
        *c.by_status.entry(status).or_default() += 1;
    }

    /// Who a token request is for, for counting only (the assertion is decoded without verification).
    fn request_user(&self, form: &HashMap<String, String>) -> Option<String> {
        match form.get("grant_type").map(String::as_str) {
            Some(JWT_BEARER) => {
                let claims = unverified_claims(form.get("assertion")?)?;
                ["preferred_username", "upn", "oid"]
                    .iter()
                    .find_map(|k| claims.get(*k).and_then(Value::as_str))
                    .map(str::to_string)
            }
            Some("client_credentials") => form.get("client_id").map(|c| format!("app:{c}")),
            _ => None,
        }
    }

    fn token(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<Value, EntraError> {
        let grant = form
            .get("grant_type")
            .ok_or_else(|| EntraError::missing("grant_type"))?;
        if grant != JWT_BEARER && grant != "client_credentials" {
            return Err(EntraError::new(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let client_id = form
            .get("client_id")
            .cloned()
            .or_else(|| basic.as_ref().map(|b| b.0.clone()))
            .ok_or_else(|| EntraError::missing("client_id"))?;
        if !client_id.eq_ignore_ascii_case(&self.minter.client_id) {
            return Err(EntraError::new(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                    self.minter.tenant_id
                ),
            ));
        }
        let appidacr = self.authenticate_client(form, basic.as_ref().map(|b| b.1.as_str()))?;
        let scope = form
            .get("scope")
            .ok_or_else(|| EntraError::missing("scope"))?;
        let lifetime = self.token_lifetime.load(Ordering::Relaxed) as i64;
        if grant == "client_credentials" {
            let resource = self.client_credentials_resource(scope)?;
            let roles: Vec<String> = CONSENTED_SCOPES
                .iter()
                .filter(|s| s.ends_with(".All"))
                .map(|s| s.to_string())
                .collect();
            let claims = self
                .minter
                .graph_claims(None, &roles, &resource, lifetime, appidacr);
            return Ok(success(
                scope,
                lifetime,
                self.keys.get().current.sign(&claims),
            ));
        }
        if form.get("requested_token_use").map(String::as_str) != Some("on_behalf_of") {
            return Err(EntraError::missing("requested_token_use"));
        }
        let assertion = form
            .get("assertion")
            .ok_or_else(|| EntraError::missing("assertion"))?;
        let who = self.check_assertion(assertion)?;
        let granted = self.parse_scopes(scope)?;
        let injected = {
            let errors = read(&self.user_errors);
            errors
                .get(&who.oid.to_ascii_lowercase())
                .or_else(|| errors.get(&who.upn.to_lowercase()))
                .copied()
        };
        match injected {
            Some(TokenErrorKind::ConsentRequired) => {
                return Err(self.consent_required());
            }
            Some(TokenErrorKind::MfaRequired) => {
                let mut e = EntraError::new(
                    "interaction_required",
                    50076,
                    format!(
                        "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{}'.",
                        granted.resource
                    ),
                );
                e.claims = Some(MFA_CLAIMS.to_string());
                return Err(e);
            }
            None => {}
        }
        let claims = self.minter.graph_claims(
            Some(&who),
            &granted.names,
            &granted.resource,
            lifetime,
            appidacr,
        );
        Ok(success(
            &granted.qualified.join(" "),
            lifetime,
            self.keys.get().current.sign(&claims),
        ))
    }

    /// Checks the client's credential; returns `appidacr` ("1" secret, "2" certificate or federated).
    fn authenticate_client(
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

    fn check_certificate_assertion(
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
        check_lifetime(&claims).map_err(|_| {
            EntraError::new(
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        })
    }

    fn check_federated_assertion(
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
        check_lifetime(&claims).map_err(|_| {
            EntraError::new(
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        })?;
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

    /// Validates the OBO assertion as Entra does; returns the user it is for.
    fn check_assertion(&self, assertion: &str) -> Result<Principal, EntraError> {
        let bad_sig = |reason: &str| {
            EntraError::new(
                "invalid_grant",
                50013,
                format!("Assertion failed signature validation. [Reason - {reason}]"),
            )
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
            EntraError::new("invalid_grant", 50027, "JWT token is invalid or malformed.")
        })?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| bad_sig("The key was not found."))?;
        let key = self
            .keys
            .find(kid)
            .ok_or_else(|| bad_sig("The key was not found."))?;
        let claims =
            verify_signature(assertion, &key.decoding, Algorithm::RS256).map_err(|_| {
                bad_sig("The provided signature value did not match the expected signature value.")
            })?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if iss != self.minter.issuer_v2() && iss != self.minter.issuer_v1() {
            return Err(bad_sig(
                "The assertion issuer is not valid for this tenant.",
            ));
        }
        let aud = claims
            .get("aud")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let client = &self.minter.client_id;
        if !aud.eq_ignore_ascii_case(client) && aud != format!("api://{client}") {
            return Err(EntraError::new(
                "invalid_grant",
                500131,
                format!(
                    "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '{aud}' and the expected audience is '{client}' or one of the Application Uris of this application with App ID '{client}'."
                ),
            ));
        }
        check_lifetime(&claims).map_err(|_| {
            EntraError::new("invalid_grant", 500133, "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token.")
        })?;
        if claims.get("scp").and_then(Value::as_str).is_none() {
            return Err(EntraError::new(
                "invalid_grant",
                50013,
                "Assertion failed validation. [Reason - The assertion is not a user token: it has no 'scp' claim. On-Behalf-Of needs a delegated user token.]",
            ));
        }
        let oid = claims
            .get("oid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut who = self.minter.principal(oid);
        if let Some(upn) = ["preferred_username", "upn"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
        {
            who.upn = upn.to_string();
        }
        Ok(who)
    }

    fn resource_of(&self, resource: &str) -> Option<String> {
        let r = resource.trim_end_matches('/');
        if r.eq_ignore_ascii_case(&self.graph_url) {
            Some(self.graph_url.clone())
        } else if r.eq_ignore_ascii_case(PUBLIC_GRAPH_RESOURCE)
            || r.eq_ignore_ascii_case(GRAPH_APP_ID)
        {
            Some(PUBLIC_GRAPH_RESOURCE.to_string())
        } else {
            None
        }
    }

    fn client_credentials_resource(&self, scope: &str) -> Result<String, EntraError> {
        let invalid = || {
            EntraError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        };
        let mut parts = scope.split_whitespace();
        let (Some(only), None) = (parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let resource = only.strip_suffix("/.default").ok_or_else(invalid)?;
        self.resource_of(resource).ok_or_else(invalid)
    }

    fn parse_scopes(&self, scope: &str) -> Result<Granted, EntraError> {
        let invalid = |s: &str| {
            EntraError::new(
                "invalid_scope",
                70011,
                format!(
                    "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {s} is not valid."
                ),
            )
        };
        let mut granted = Granted::default();
        for s in scope.split_whitespace() {
            if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)) {
                continue;
            }
            let (resource, name) = match s.rfind('/') {
                Some(i) => (
                    self.resource_of(&s[..i]).ok_or_else(|| invalid(s))?,
                    &s[i + 1..],
                ),
                // Entra treats an unqualified scope as a Graph scope.
                None => (PUBLIC_GRAPH_RESOURCE.to_string(), s),
            };
            if !granted.resource.is_empty() && granted.resource != resource {
                return Err(EntraError::new(
                    "invalid_request",
                    28000,
                    "Provided value for the input parameter scope is not valid because it contains more than one resource.",
                ));
            }
            granted.resource = resource.clone();
            if name == ".default" {
                for c in CONSENTED_SCOPES {
                    granted.add(&resource, c);
                }
                continue;
            }
            if let Some(c) = CONSENTED_SCOPES
                .iter()
                .find(|c| c.eq_ignore_ascii_case(name))
            {
                granted.add(&resource, c);
            } else if KNOWN_UNCONSENTED
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
            {
                return Err(self.consent_required());
            } else {
                return Err(invalid(s));
            }
        }
        if granted.names.is_empty() {
            return Err(invalid(scope));
        }
        Ok(granted)
    }
}

#[derive(Default)]
struct Granted {
    resource: String,
    names: Vec<String>,
    qualified: Vec<String>,
}

impl Granted {
    fn add(&mut self, resource: &str, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
            self.qualified.push(format!("{resource}/{name}"));
        }
    }
}

fn sha2_slice(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn success(scope: &str, lifetime: i64, access_token: String) -> Value {
    json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    })
}

/// Verifies only the signature (and algorithm); claims are checked by the caller so each failure
/// gets Entra's own error code.
fn verify_signature(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, key, &v).map(|d| d.claims)
}

fn aud_contains(claims: &Value, expected: &str) -> bool {
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

/// The claims of a JWT without verifying it (counting only).
fn unverified_claims(token: &str) -> Option<Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn no_store(resp: &mut Response<Body>) {
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp.headers_mut()
        .insert("pragma", HeaderValue::from_static("no-cache"));
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn basic_auth(parts: &Parts) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((unescape(id), unescape(secret)))
}

fn correlation_id(parts: &Parts) -> String {
    parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(guid)
}

enum Route<'a> {
    DiscoveryV2(&'a str),
    DiscoveryV1(&'a str),
    Jwks(&'a str),
    Token(&'a str),
    NotFound,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some((tenant, rest)) = segs.split_first() else {
        return Route::NotFound;
    };
    match (method, rest) {
        (&Method::GET, ["v2.0", ".well-known", "openid-configuration"]) => {
            Route::DiscoveryV2(tenant)
        }
        (&Method::GET, [".well-known", "openid-configuration"]) => Route::DiscoveryV1(tenant),
        (&Method::GET, ["discovery", "v2.0", "keys"] | ["discovery", "keys"]) => {
            Route::Jwks(tenant)
        }
        (&Method::POST, ["oauth2", "v2.0", "token"]) => Route::Token(tenant),
        _ => Route::NotFound,
    }
}

impl Service for EntraState {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let correlation = correlation_id(&parts);
        let tenant_error = |tenant: &str, error: &'static str| {
            EntraError::new(
                error,
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            )
        };
        let mut resp = match route(&parts.method, parts.uri.path()) {
            Route::DiscoveryV2(t) | Route::DiscoveryV1(t) | Route::Jwks(t)
                if !self.tenant_ok(t) =>
            {
                self.error_response(tenant_error(t, "invalid_tenant"), &correlation)
            }
            Route::DiscoveryV2(t) => {
                lock(&self.counters).discovery += 1;
                json(StatusCode::OK, &self.discovery_v2(t))
            }
            Route::DiscoveryV1(t) => {
                lock(&self.counters).discovery += 1;
                json(StatusCode::OK, &self.discovery_v1(t))
            }
            Route::Jwks(_) => {
                lock(&self.counters).jwks += 1;
                let mut r = Response::new(Full::new(self.keys.get().jwks.clone()));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                r
            }
            Route::Token(tenant) => {
                let tenant = tenant.to_string();
                let form = match collect_limited(body, 1024 * 1024).await {
                    Some(b) => parse_form(&b),
                    None => HashMap::new(),
                };
                let user = self.request_user(&form);
                let result = if self.tenant_ok(&tenant) {
                    self.token(&form, basic_auth(&parts))
                } else {
                    Err(tenant_error(&tenant, "invalid_request"))
                };
                let resp = match result {
                    Ok(v) => {
                        let mut r = json(StatusCode::OK, &v);
                        no_store(&mut r);
                        r
                    }
                    Err(e) => self.error_response(e, &correlation),
                };
                self.count_token(&form, user, resp.status().as_u16());
                resp
            }
            Route::NotFound => json(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "error_description": format!("No Entra emulator endpoint at {} {}.", parts.method, parts.uri.path())}),
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&correlation) {
            resp.headers_mut().insert("client-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&guid()) {
            resp.headers_mut().insert("x-ms-request-id", v);
        }
        resp
    }

    fn control(&self, method: &Method, path: &str, body: &[u8]) -> Option<Response<Body>> {
        let segs: Vec<String> = path
            .trim_start_matches("/_emulator/")
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        Some(match (method, segs.as_slice()) {
            (&Method::GET, ["counters"]) => json(StatusCode::OK, &json!(self.counters())),
            (&Method::POST, ["users", user, "token-error"]) => {
                #[derive(Deserialize)]
                struct Req {
                    kind: TokenErrorKind,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => {
                        self.set_user_error(user, Some(r.kind));
                        empty(StatusCode::NO_CONTENT)
                    }
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::DELETE, ["users", user, "token-error"]) => {
                self.set_user_error(user, None);
                empty(StatusCode::NO_CONTENT)
            }
            (&Method::POST, ["keys", "rotate"]) => match self.rotate() {
                Ok(kid) => json(StatusCode::OK, &json!({"kid": kid})),
                Err(e) => json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": e.to_string()}),
                ),
            },
            (&Method::GET, ["keys"]) => {
                let set = self.keys.get();
                json(
                    StatusCode::OK,
                    &json!({
                        "current_kid": set.current.kid,
                        "public_key_pem": set.current.public_pem,
                        "kids": std::iter::once(&set.current).chain(set.previous.iter()).map(|k| k.kid.clone()).collect::<Vec<_>>(),
                    }),
                )
            }
            (&Method::POST, ["tokens"]) => match parse_control::<CallerTokenSpec>(body) {
                Ok(spec) => json(
                    StatusCode::OK,
                    &json!({"access_token": self.caller_token(&spec), "expires_in": spec.ttl_secs}),
                ),
                Err(e) => bad_request(&e),
            },
            (&Method::POST, ["graph-tokens"]) => {
                #[derive(Deserialize)]
                struct Req {
                    user: String,
                    scopes: Vec<String>,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => {
                        let scopes: Vec<&str> = r.scopes.iter().map(String::as_str).collect();
                        json(
                            StatusCode::OK,
                            &json!({"access_token": self.graph_token(&r.user, &scopes)}),
                        )
                    }
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::POST, ["federated-assertions"]) => {
                #[derive(Deserialize)]
                struct Req {
                    subject: Option<String>,
                    #[serde(default = "default_ttl")]
                    ttl_secs: i64,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => json(
                        StatusCode::OK,
                        &json!({"assertion": self.federated_assertion(r.subject.as_deref(), r.ttl_secs)}),
                    ),
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::POST, ["client-certificates"]) => {
                #[derive(Deserialize)]
                struct Req {
                    certificate_pem: Option<String>,
                }
                match parse_control::<Req>(body) {
                    Ok(Req {
                        certificate_pem: Some(pem),
                    }) => match self.register_certificate(&pem) {
                        Ok(t) => json(StatusCode::CREATED, &json!({"x5t#S256": t})),
                        Err(e) => bad_request(&e),
                    },
                    Ok(Req {
                        certificate_pem: None,
                    }) => match self.create_certificate() {
                        Ok(c) => json(StatusCode::CREATED, &json!(c)),
                        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e})),
                    },
                    Err(e) => bad_request(&e),
                }
            }
            (&Method::PUT, ["token-lifetime"]) => {
                #[derive(Deserialize)]
                struct Req {
                    expires_in: u64,
                }
                match parse_control::<Req>(body) {
                    Ok(r) => {
                        self.set_lifetime(r.expires_in);
                        empty(StatusCode::NO_CONTENT)
                    }
                    Err(e) => bad_request(&e),
                }
            }
            _ => return None,
        })
    }

    fn fault_response(
        &self,
        parts: &Parts,
        body_head: &[u8],
        status: StatusCode,
        retry_after: Option<&str>,
        body: Option<&str>,
        garbage: bool,
    ) -> Response<Body> {
        let correlation = correlation_id(parts);
        let mut resp = if let Some(r) = super::server::verbatim_fault_body(body, garbage) {
            r
        } else {
            let err = if status == StatusCode::UNAUTHORIZED {
                EntraError::new(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided (injected fault).",
                )
            } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                EntraError::new(
                    "temporarily_unavailable",
                    90033,
                    "A transient error has occurred. Please try again.",
                )
            } else {
                EntraError::new(
                    "invalid_request",
                    90033,
                    "The request was rejected (injected fault).",
                )
            };
            self.error_response(err, &correlation)
        };
        *resp.status_mut() = status;
        if let Some(ra) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
            resp.headers_mut().insert(RETRY_AFTER, ra);
        }
        match route(&parts.method, parts.uri.path()) {
            Route::Token(_) => {
                let form = parse_form(body_head);
                let user = self.request_user(&form);
                self.count_token(&form, user, status.as_u16());
            }
            Route::DiscoveryV1(_) | Route::DiscoveryV2(_) => lock(&self.counters).discovery += 1,
            Route::Jwks(_) => lock(&self.counters).jwks += 1,
            Route::NotFound => {}
        }
        resp
    }

    fn reset(&self) {
        *lock(&self.counters) = EntraCounters::default();
        write(&self.user_errors).clear();
        self.set_lifetime(self.default_lifetime);
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

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.addr.port()
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

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: super::FaultRule) -> u64 {
        self.server.faults.add(rule)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.server.faults.clear();
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<super::ActiveFault> {
        self.server.faults.list()
    }

    /// Stops listening for `duration` (ECONNREFUSED; open connections reset), then listens again.
    pub async fn refuse_connections(&self, duration: std::time::Duration) {
        self.server.refuse(duration).await;
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

    /// Sets `expires_in` (and the Graph tokens' lifetime) of new tokens.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.set_lifetime(secs);
    }

    /// Clears faults, counters, injected errors and the lifetime override.
    pub fn reset(&self) {
        self.server.faults.clear();
        self.state.reset();
    }
}
