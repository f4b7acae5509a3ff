//! The state directory's files: `sandbox-state.json`, which lets another process mint tokens the
//! running emulators accept (`photo-gateway sandbox token`), and the way every file there is written.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::entra::{CallerTokenSpec, Minter};
use crate::keys::RsaKey;

/// The file in the state directory that lets `sandbox token` mint tokens offline.
pub const STATE_FILE: &str = "sandbox-state.json";

/// What `sandbox token` needs to mint tokens without the running emulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SandboxState {
    pub entra_url: String,
    pub graph_url: String,
    pub tenant_id: String,
    pub gateway_client_id: String,
    pub extra_users: usize,
    pub ca_file: PathBuf,
    pub private_key_pem: String,
}

pub(crate) fn write_state(path: &Path, state: &SandboxState) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    write_private(path, &bytes)
}

/// Keeps the state file's key current after a rotation (best effort: the emulator keeps working).
pub(crate) fn update_state_key(path: &Path, private_key_pem: &str) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let Ok(mut state) = serde_json::from_slice::<SandboxState>(&bytes) else {
        return;
    };
    state.private_key_pem = private_key_pem.to_string();
    let _ = write_state(path, &state);
}

/// Mints a caller token with the signing key saved in `state_dir` by running emulators, without
/// asking them (the key follows rotations).
pub fn mint_caller_token(state_dir: &Path, spec: &CallerTokenSpec) -> io::Result<String> {
    let path = state_dir.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (is the sandbox running with this --state-dir?)",
                path.display()
            ),
        )
    })?;
    let state: SandboxState = serde_json::from_slice(&bytes)?;
    let key = RsaKey::from_private_pem(&state.private_key_pem)?;
    let minter = Minter {
        entra_url: state.entra_url,
        tenant_id: state.tenant_id,
        client_id: state.gateway_client_id,
        directory: Arc::new(Directory::seeded(state.extra_users)),
    };
    Ok(key.sign(&minter.caller_claims(spec)))
}

/// Writes a file through a temporary file and a rename, so readers never see half of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// [`write_atomically`], then readable by the owner only (best effort): for files holding a
/// signing key or a client secret.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write_atomically(path, bytes)?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(())
}
