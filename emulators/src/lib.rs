//! Local emulators of Entra ID and Microsoft Graph: one implementation for the gateway's
//! end-to-end tests, `photo-gateway sandbox` (cargo feature `sandbox`) and the benchmark.
//!
//! Both serve HTTPS on 127.0.0.1 with a CA generated at start ([`Emulators::ca_file`]), so a
//! gateway pointed at them ([`Emulators::gateway_env`]) runs its production TLS path.
//! They import nothing from the gateway (this crate does not depend on it): they behave like the
//! real services, nothing more.
//!
//! # The seeded directory
//! Tenant [`TENANT_ID`] (`contoso.onmicrosoft.com`); gateway app [`GATEWAY_CLIENT_ID`]
//! (App ID URI `api://{client id}`, secret [`GATEWAY_CLIENT_SECRET`]); calling demo client
//! [`DEMO_CLIENT_ID`].
//!
//! | object | id | name |
//! |---|---|---|
//! | user (demo) | `5b0f9a8e-0000-4c11-8a01-000000000101` | `adele.vance@contoso.onmicrosoft.com` |
//! | user | `5b0f9a8e-0000-4c11-8a01-000000000102` | `megan.bowen@contoso.onmicrosoft.com` |
//! | user | `5b0f9a8e-0000-4c11-8a01-000000000103` | `lee.gu@contoso.onmicrosoft.com` |
//! | user | `5b0f9a8e-0000-4c11-8a01-000000000104` | `photo.admin@contoso.onmicrosoft.com` |
//! | user (guest) | `5b0f9a8e-0000-4c11-8a01-000000000105` | `alex_fabrikam.com#EXT#@contoso.onmicrosoft.com` |
//! | user (no mailbox: photos over 100 KB get 404) | `5b0f9a8e-0000-4c11-8a01-000000000106` | `nestor.wilke@contoso.onmicrosoft.com` |
//! | group | `2e4c6a80-0000-4b3d-9e21-000000000201` | Sales and Marketing |
//! | group | `2e4c6a80-0000-4b3d-9e21-000000000202` | Photo Admins |
//! | contact folder of Adele | `AAMkADSandboxFolderSuppliers0001AAA=` | Suppliers |
//! | contact of Adele (default folder) | `AAMkADSandboxContact0001AAA=` | Patti Fernandez |
//! | contact of Adele (default folder) | `AAMkADSandboxContact0002AAA=` | Diego Siciliani |
//! | contact of Adele (Suppliers) | `AAMkADSandboxContact0003AAA=` | Contoso Supplies Ltd |
//! | contact of Megan (default folder) | `AAMkADSandboxContact0004AAA=` | Johanna Lorenz |
//! | team (of the group Sales and Marketing) | `2e4c6a80-0000-4b3d-9e21-000000000201` | Sales and Marketing |
//!
//! Directory roles ([`roles`]): Adele User Administrator, Megan Global Administrator, photo.admin
//! People Administrator; Lee Gu, the guest and `loaduser{i}` are plain users.
//!
//! Plus `extra_users` generated users `loaduser{i}@contoso.onmicrosoft.com` (i from 1), whose ids
//! are stable across runs. The control API and the in-process API are described in `SANDBOX.md`.

mod control;
pub mod directory;
mod entra;
mod faults;
mod graph;
mod jpeg;
mod jwt;
mod keys;
pub mod roles;
pub mod samples;
mod server;
pub mod state;
pub mod teams;
mod tls;
mod util;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use control::FaultControl;
pub use directory::{
    CONTACT_FOLDER_ID, CONTACT_ID, Contact, DEMO_CLIENT_ID, DEMO_USER_ID, DEMO_USER_UPN, Directory,
    FOLDER_CONTACT_ID, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET, GROUP_ID, GUEST_USER_ID,
    GUEST_USER_UPN, Group, NO_MAILBOX_USER_ID, NO_MAILBOX_USER_UPN, TENANT_DOMAIN, TENANT_ID, User,
};
pub use entra::{
    CONSENTED_READ_SCOPES, CONSENTED_SCOPES, CONSENTED_TEAM_SCOPES, CallerTokenSpec,
    ClientCertificate, DEFAULT_FEDERATED_SUBJECT, EntraCounters, EntraEmulator, GRAPH_APP_ID,
    PUBLIC_GRAPH_RESOURCE, TOKEN_EXCHANGE_AUDIENCE, TokenErrorKind,
};
pub use faults::{ActiveFault, FaultAction, FaultRule};
pub use graph::{
    GraphCount, GraphCounters, GraphEmulator, MAX_PHOTO_BYTES, NO_MAILBOX_MAX_PHOTO_BYTES,
    PHOTO_SIZES, ReceivedImage, RecordedRequest, StoredPhoto, inspect,
};
pub use jpeg::sample_jpeg;

/// The Graph scopes the gateway's update paths need, as scope names (without the resource).
pub const UPDATE_SCOPES: [&str; 5] = CONSENTED_SCOPES;

/// How to start the emulators.
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    /// Entra emulator port; 0 picks a free one.
    pub entra_port: u16,
    /// Graph emulator port; 0 picks a free one.
    pub graph_port: u16,
    /// Generated `loaduser{i}` users on top of the named ones.
    pub extra_users: usize,
    /// Where `ca.pem` and `sandbox-state.json` go; a fresh temporary directory (removed on drop) if `None`.
    pub state_dir: Option<PathBuf>,
    /// The gateway app's client secret.
    pub gateway_client_secret: String,
    /// `expires_in` of issued Graph tokens, in seconds.
    pub token_lifetime_secs: u64,
    /// Graph's upload cap (a body of this size or more gets 413).
    pub max_photo_bytes: usize,
    /// How many write requests the Graph emulator keeps for inspection.
    pub record_capacity: usize,
    /// Subjects accepted in federated assertions (the app's federated identity credentials).
    pub federated_subjects: Vec<String>,
    /// The Graph emulator offers HTTP/2 (ALPN `h2`, then `http/1.1`) as Graph does, so a client
    /// that can, like the gateway's, speaks it. Off by default: the tests' connection faults
    /// (resets, a listener refusing) are written against HTTP/1.1 connections.
    pub graph_http2: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            entra_port: 0,
            graph_port: 0,
            extra_users: 0,
            state_dir: None,
            gateway_client_secret: GATEWAY_CLIENT_SECRET.to_string(),
            token_lifetime_secs: 3599,
            max_photo_bytes: MAX_PHOTO_BYTES,
            record_capacity: 1000,
            federated_subjects: vec![DEFAULT_FEDERATED_SUBJECT.to_string()],
            graph_http2: false,
        }
    }
}

/// Running Entra and Graph emulators sharing one CA, one directory and one key set.
pub struct Emulators {
    /// The Entra ID emulator.
    pub entra: EntraEmulator,
    /// The Graph emulator.
    pub graph: GraphEmulator,
    directory: Arc<Directory>,
    ca_pem: String,
    ca_file: PathBuf,
    state_dir: PathBuf,
    remove_state_dir: bool,
    client_secret: String,
}

impl Emulators {
    /// Generates the CA and keys, binds both servers and starts serving.
    pub async fn start(opts: EmulatorOptions) -> io::Result<Emulators> {
        let (state_dir, remove_state_dir) = match &opts.state_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!(
                    "photo-gateway-emulators-{}-{}",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                )),
                true,
            ),
        };
        std::fs::create_dir_all(&state_dir)?;
        let tls = tls::generate()?;
        let ca_file = state_dir.join("ca.pem");
        state::write_atomically(&ca_file, tls.ca_pem.as_bytes())?;

        let entra_listener = server::bind(opts.entra_port).await?;
        let graph_listener = server::bind(opts.graph_port).await?;
        let entra_url = format!("https://127.0.0.1:{}", entra_listener.local_addr()?.port());
        let graph_url = format!("https://127.0.0.1:{}", graph_listener.local_addr()?.port());

        let directory = Arc::new(Directory::seeded(opts.extra_users));
        let key = keys::RsaKey::generate()?;
        let state_file = state_dir.join(state::STATE_FILE);
        state::write_state(
            &state_file,
            &state::SandboxState {
                entra_url: entra_url.clone(),
                graph_url: graph_url.clone(),
                tenant_id: TENANT_ID.to_string(),
                gateway_client_id: GATEWAY_CLIENT_ID.to_string(),
                extra_users: opts.extra_users,
                ca_file: ca_file.clone(),
                private_key_pem: key.private_pem.clone(),
            },
        )?;
        let key_store = Arc::new(keys::KeyStore::new(key));

        let entra_state = Arc::new(entra::EntraState::new(entra::EntraSettings {
            entra_url: entra_url.clone(),
            graph_url: graph_url.clone(),
            tenant_id: TENANT_ID.to_string(),
            client_id: GATEWAY_CLIENT_ID.to_string(),
            client_secret: opts.gateway_client_secret.clone(),
            token_lifetime: opts.token_lifetime_secs,
            federated_subjects: opts.federated_subjects.clone(),
            directory: directory.clone(),
            keys: key_store.clone(),
            state_file: Some(state_file),
        })?);
        let graph_state = Arc::new(graph::GraphState::new(
            graph_url,
            entra_url,
            key_store,
            directory.clone(),
            opts.max_photo_bytes,
            opts.record_capacity,
        ));
        let entra_server =
            server::start(entra_listener, tls.acceptor.clone(), entra_state.clone())?;
        let graph_tls = if opts.graph_http2 {
            tls.h2_acceptor
        } else {
            tls.acceptor
        };
        let graph_server = server::start(graph_listener, graph_tls, graph_state.clone())?;
        Ok(Emulators {
            entra: EntraEmulator {
                state: entra_state,
                server: Arc::new(entra_server),
            },
            graph: GraphEmulator {
                state: graph_state,
                server: Arc::new(graph_server),
            },
            directory,
            ca_pem: tls.ca_pem,
            ca_file,
            state_dir,
            remove_state_dir,
            client_secret: opts.gateway_client_secret,
        })
    }

    /// `https://127.0.0.1:PORT`: the authority host, without tenant.
    pub fn entra_url(&self) -> String {
        self.entra.url()
    }

    /// `https://127.0.0.1:PORT`: Graph's base URL, without `/v1.0`.
    pub fn graph_url(&self) -> String {
        self.graph.url()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        self.entra.tenant_id()
    }

    /// The CA certificate file (PEM) both emulators' certificates chain to.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The directory holding `ca.pem` and `sandbox-state.json`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The gateway app's client id.
    pub fn gateway_client_id(&self) -> &str {
        GATEWAY_CLIENT_ID
    }

    /// The gateway app's client secret.
    pub fn gateway_client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Environment that points a gateway at these emulators, exactly as for a real tenant.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        [
            ("PHOTO_GATEWAY_TENANT_ID", self.tenant_id().to_string()),
            ("PHOTO_GATEWAY_CLIENT_ID", GATEWAY_CLIENT_ID.to_string()),
            ("PHOTO_GATEWAY_AUTHORITY_HOST", self.entra_url()),
            ("PHOTO_GATEWAY_GRAPH_BASE_URL", self.graph_url()),
            (
                "PHOTO_GATEWAY_CA_BUNDLE_FILE",
                self.ca_file.display().to_string(),
            ),
            ("PHOTO_GATEWAY_CLIENT_SECRET", self.client_secret.clone()),
            // The demo client may read, change and delete every kind of target Graph allows, so
            // every documented flow works; the secure default (own photo and own contacts only)
            // applies to every other app.
            (
                "PHOTO_GATEWAY_CALLER_POLICY",
                format!("{DEMO_CLIENT_ID}=users,groups,contacts,teams,users:delete,groups:delete"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The seeded directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Mints a caller token (an access token for the gateway's API).
    pub fn caller_token(&self, spec: &CallerTokenSpec) -> String {
        self.entra.caller_token(spec)
    }

    /// Mints a Graph token for `user` with these scope names (e.g. `User.ReadWrite`).
    pub fn graph_token(&self, user: &str, scopes: &[&str]) -> String {
        self.entra.graph_token(user, scopes)
    }

    /// Mints an app-only Graph token (client credentials) with these application permissions as `roles`.
    pub fn graph_app_token(&self, roles: &[&str]) -> String {
        self.entra.graph_app_token(roles)
    }

    /// Signs arbitrary claims with the current Entra key (`header.kid` defaults to the current kid).
    pub fn sign_jwt(&self, header: jsonwebtoken::Header, claims: &serde_json::Value) -> String {
        self.entra.sign_jwt(header, claims)
    }

    /// The current Entra signing key's public key, SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        self.entra.public_key_pem()
    }

    /// The kid new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.entra.current_kid()
    }

    /// Resets both emulators: faults, counters, recorded requests, injected errors and photos.
    pub fn reset(&self) {
        self.entra.reset();
        self.graph.reset();
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        if self.remove_state_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
