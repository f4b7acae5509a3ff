//! Minting the tokens Entra issues: caller tokens (access tokens for the gateway's API) and Graph
//! access tokens, as OBO would issue them; also used offline by `sandbox token` with saved keys.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::EntraState;
use crate::directory::{DEMO_CLIENT_ID, Directory};
use crate::util::{b64url, now_secs, sha256, stable_guid};

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

pub(super) fn default_ttl() -> i64 {
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

    /// An app-only token (client credentials for the gateway's API) of the seeded app
    /// `client_id`, carrying the gateway app roles assigned to it (`roles.rs`).
    pub fn daemon(client_id: &str) -> CallerTokenSpec {
        CallerTokenSpec::for_user(client_id)
            .app(client_id)
            .app_only(crate::roles::gateway_roles_of(client_id))
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
                json!(b64url(&sha256(format!("{}:{app}", p.oid).as_bytes()))),
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

    /// Claims of an ID token (v2) for `who`, issued to `client_id`: what Entra returns as
    /// `id_token` when a token request's scope has `openid`.
    pub(crate) fn id_token_claims(
        &self,
        who: &Principal,
        client_id: &str,
        nonce: Option<&str>,
        lifetime: i64,
    ) -> Value {
        let now = now_secs();
        let mut c = Map::new();
        c.insert("aud".into(), json!(client_id));
        c.insert("iss".into(), json!(self.issuer_v2()));
        c.insert("iat".into(), json!(now));
        c.insert("nbf".into(), json!(now));
        c.insert("exp".into(), json!(now + lifetime));
        // Pairwise, like Entra's: the same user has a different `sub` for each app.
        c.insert(
            "sub".into(),
            json!(b64url(&sha256(
                format!("{}:{client_id}", who.oid).as_bytes()
            ))),
        );
        c.insert("oid".into(), json!(who.oid));
        c.insert("tid".into(), json!(self.tenant_id));
        c.insert("preferred_username".into(), json!(who.upn));
        c.insert("name".into(), json!(who.name));
        c.insert("ver".into(), json!("2.0"));
        c.insert("uti".into(), json!(b64url(uuid::Uuid::new_v4().as_bytes())));
        if let Some(n) = nonce {
            c.insert("nonce".into(), json!(n));
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
                    json!(b64url(&sha256(format!("graph:{}", p.oid).as_bytes()))),
                );
                c.insert("upn".into(), json!(p.upn));
                c.insert("unique_name".into(), json!(p.upn));
                c.insert("name".into(), json!(p.name));
                c.insert("scp".into(), json!(scp_or_roles.join(" ")));
                // The user's directory roles, as Entra writes them into delegated tokens.
                c.insert("wids".into(), json!(crate::roles::wids_of(&p.oid)));
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

impl EntraState {
    pub(super) fn caller_token(&self, spec: &CallerTokenSpec) -> String {
        self.keys
            .get()
            .current
            .sign(&self.minter.caller_claims(spec))
    }

    pub(super) fn graph_token(&self, user: &str, scopes: &[&str]) -> String {
        let lifetime = self.token_lifetime.load(Ordering::Relaxed) as i64;
        self.graph_token_with_ttl(user, scopes, lifetime)
    }

    pub(super) fn graph_app_token(&self, roles: &[&str]) -> String {
        let lifetime = self.token_lifetime.load(Ordering::Relaxed) as i64;
        let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
        let claims = self
            .minter
            .graph_claims(None, &roles, &self.graph_url, lifetime, "1");
        self.keys.get().current.sign(&claims)
    }

    pub(super) fn graph_token_with_ttl(
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
}
