//! `photo-gateway sandbox`: the gateway against the emulators of `photo-gateway-emulators`, on one
//! machine, no tenant; and `sandbox token`, which mints caller tokens the running sandbox accepts.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use photo_gateway_emulators::state::{mint_caller_token, write_atomically, write_private};
use photo_gateway_emulators::{
    CallerTokenSpec, DEMO_USER_UPN, EmulatorOptions, Emulators, UPDATE_SCOPES, sample_jpeg,
};
use serde_json::{Value, json};

use crate::config::Config;
use crate::shutdown::wait_for_signal;

/// Lifetime of the caller and Graph tokens the sandbox prints: long enough for a working session,
/// under the gateway's default maximum token lifetime (24 h).
const PRINTED_TOKEN_TTL: i64 = 12 * 3600;

/// Options of `photo-gateway sandbox`.
#[derive(clap::Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SandboxArgs {
    /// `sandbox token`: mint a caller token the running sandbox accepts.
    #[command(subcommand)]
    pub command: Option<SandboxCommand>,
    /// Port of the gateway (0 = a free port) [default: from PHOTO_GATEWAY_LISTEN_ADDR, else 8080].
    #[arg(long)]
    pub gateway_port: Option<u16>,
    /// Port of the Entra emulator (0 = a free port).
    #[arg(long, default_value_t = 0)]
    pub entra_port: u16,
    /// Port of the Graph emulator (0 = a free port).
    #[arg(long, default_value_t = 0)]
    pub graph_port: u16,
    /// Generated users `loaduser{i}@contoso.onmicrosoft.com` on top of the named ones.
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// Where ca.pem, sandbox-state.json, gateway.env and sample.jpg go [default: $TMPDIR/photo-gateway-sandbox].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Write the ready JSON here (atomically) once everything answers.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Run only the emulators and write gateway.env for a separately started `photo-gateway serve`.
    #[arg(long)]
    pub emulators_only: bool,
    /// The Graph emulator offers HTTP/2 as Graph does (ALPN h2, then http/1.1); the gateway then
    /// speaks HTTP/2 to it, as it does to Graph. Off by default: HTTP/1.1 only.
    #[arg(long)]
    pub graph_http2: bool,
}

/// Subcommands of `photo-gateway sandbox`.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum SandboxCommand {
    /// Mint a caller token for a user (printed alone on stdout).
    Token(SandboxTokenArgs),
}

/// Options of `photo-gateway sandbox token`.
#[derive(clap::Args, Clone, Debug)]
pub struct SandboxTokenArgs {
    /// UPN or object id of the user.
    #[arg(long, default_value = DEMO_USER_UPN)]
    pub user: String,
    /// Delegated scopes (`scp`), space-separated.
    #[arg(long, default_value = "access_as_user")]
    pub scope: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: i64,
    /// Calling client id (`azp`) [default: the demo client].
    #[arg(long)]
    pub app: Option<String>,
    /// Token version, 2 or 1.
    #[arg(long, default_value_t = 2)]
    pub version: u8,
    /// An app-only (daemon) token of `--app` instead of a user's: `roles` (the gateway app roles
    /// the emulated directory assigns that app; the demo client holds `Photos.ReadWrite.All`),
    /// no `scp`.
    #[arg(long)]
    pub app_only: bool,
    /// The running sandbox's state directory (keys are read from it) [default: $TMPDIR/photo-gateway-sandbox].
    #[arg(long, conflicts_with = "entra_url")]
    pub state_dir: Option<PathBuf>,
    /// Ask the running Entra emulator at this URL instead of using saved keys.
    #[arg(long)]
    pub entra_url: Option<String>,
    /// CA file to trust for --entra-url [default: the state directory's ca.pem].
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// The emulator wiring: settings the sandbox always makes itself (tenant, app, authority, Graph,
/// credentials, CA). From the environment they would point the gateway away from its emulators,
/// so there they are ignored (and blanked, so a `PHOTO_GATEWAY_CONFIG_FILE` cannot supply them).
pub const WIRING_KEYS: [&str; 13] = [
    "TENANT_ID",
    "CLIENT_ID",
    "APP_ID_URI",
    "AUTHORITY_HOST",
    "GRAPH_BASE_URL",
    "GRAPH_SCOPE_RESOURCE",
    "ISSUERS",
    "CA_BUNDLE_FILE",
    "CLIENT_SECRET",
    "CLIENT_SECRET_FILE",
    "CLIENT_CERTIFICATE_FILE",
    "CLIENT_CERTIFICATE_KEY_FILE",
    "FEDERATED_TOKEN_FILE",
];

/// The sandbox's `PHOTO_GATEWAY_*` variables: what it applies and what it ignores (names only in
/// the ready file: a value may hold a credential, e.g. a connection string).
#[derive(Debug, Default, PartialEq)]
pub struct EnvSettings {
    /// Applied over the sandbox's own defaults, sorted by name.
    pub applied: Vec<(String, String)>,
    /// Emulator wiring found in the environment and ignored, sorted.
    pub ignored: Vec<String>,
}

impl EnvSettings {
    /// Splits an environment: `PHOTO_GATEWAY_*` variables other than the wiring are applied;
    /// anything else (`AZURE_*` included) is not the gateway's business here.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> EnvSettings {
        let mut out = EnvSettings::default();
        for (k, v) in vars {
            let Some(key) = k.strip_prefix("PHOTO_GATEWAY_") else {
                continue;
            };
            if WIRING_KEYS.contains(&key) {
                out.ignored.push(k);
            } else {
                out.applied.push((k, v));
            }
        }
        out.applied.sort();
        out.ignored.sort();
        out
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.applied
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// The gateway's variables: the emulators' wiring, then the sandbox's defaults (loopback
    /// listeners, the demo client's policy), then these settings over the defaults; wiring the
    /// emulators do not set is blanked.
    pub fn gateway_vars(
        &self,
        wiring: Vec<(String, String)>,
        gateway_port: Option<u16>,
    ) -> Vec<(String, String)> {
        let listen = match (gateway_port, self.get("PHOTO_GATEWAY_LISTEN_ADDR")) {
            (Some(port), _) => format!("127.0.0.1:{port}"),
            (None, Some(addr)) => addr.to_string(),
            (None, None) => "127.0.0.1:8080".to_string(),
        };
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v));
        };
        for (k, v) in self.applied.iter().cloned() {
            set(&k, v);
        }
        set("PHOTO_GATEWAY_LISTEN_ADDR", listen);
        if self.get("PHOTO_GATEWAY_METRICS_ADDR").is_none() {
            // A free loopback port, so several sandboxes can run.
            set("PHOTO_GATEWAY_METRICS_ADDR", "127.0.0.1:0".to_string());
        }
        for key in WIRING_KEYS {
            set(&format!("PHOTO_GATEWAY_{key}"), String::new());
        }
        let overridden: Vec<String> = self.applied.iter().map(|(k, _)| k.clone()).collect();
        for (k, v) in wiring {
            // The emulators' own defaults (the demo client's caller policy) yield to settings;
            // their wiring never does.
            let is_wiring = k
                .strip_prefix("PHOTO_GATEWAY_")
                .is_some_and(|key| WIRING_KEYS.contains(&key));
            if is_wiring || !overridden.contains(&k) {
                set(&k, v);
            }
        }
        vars
    }
}

/// The sandbox's app-only policy unless its environment sets one: the demo client, which the
/// emulated directory assigns the gateway's `Photos.ReadWrite.All` app role, may do everything
/// app-only, so the sandbox can show a daemon call (`sandbox token --app-only`).
pub fn sandbox_app_policy() -> String {
    format!(
        "{}/{}=*:*",
        photo_gateway_emulators::DEMO_CLIENT_ID,
        photo_gateway_emulators::roles::PHOTOS_READWRITE_ALL
    )
}

/// The emulators' variables for the gateway plus the sandbox's own defaults (which settings
/// from the environment override).
fn sandbox_env(emus: &Emulators) -> Vec<(String, String)> {
    let mut env = emus.gateway_env();
    env.push(("PHOTO_GATEWAY_APP_POLICY".into(), sandbox_app_policy()));
    env
}

fn default_state_dir() -> PathBuf {
    std::env::temp_dir().join("photo-gateway-sandbox")
}

/// Runs `photo-gateway sandbox` (or its `token` subcommand) until SIGINT or SIGTERM.
pub async fn run(args: SandboxArgs) -> Result<(), Box<dyn Error>> {
    if let Some(SandboxCommand::Token(t)) = args.command {
        return run_token(t).await;
    }
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir)?;
    let emus = Emulators::start(EmulatorOptions {
        entra_port: args.entra_port,
        graph_port: args.graph_port,
        extra_users: args.users,
        state_dir: Some(state_dir.clone()),
        graph_http2: args.graph_http2,
        ..EmulatorOptions::default()
    })
    .await?;
    let sample = state_dir.join("sample.jpg");
    write_atomically(
        &sample,
        &sample_jpeg(648, 648, "photo-gateway sandbox sample"),
    )?;

    if args.emulators_only {
        // Everything binds loopback, metrics included (a free port, so several sandboxes can run).
        let mut env = sandbox_env(&emus);
        env.push((
            "PHOTO_GATEWAY_LISTEN_ADDR".to_string(),
            format!("127.0.0.1:{}", args.gateway_port.unwrap_or(8080)),
        ));
        env.push((
            "PHOTO_GATEWAY_METRICS_ADDR".to_string(),
            "127.0.0.1:0".to_string(),
        ));
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let env_file = state_dir.join("gateway.env");
        write_private(&env_file, text.as_bytes())?;
        let ready = ready_json(&emus, None, &sample, None);
        print_banner(&emus, None, &ready, &sample, Some(&env_file));
        if let Some(path) = &args.ready_file {
            write_atomically(path, serde_json::to_string_pretty(&ready)?.as_bytes())?;
        }
        wait_for_signal().await;
        return Ok(());
    }

    // Any setting can be tried in the sandbox: PHOTO_GATEWAY_* from its environment, except the
    // emulator wiring.
    let settings = EnvSettings::from_vars(std::env::vars());
    if !settings.ignored.is_empty() {
        eprintln!(
            "photo-gateway sandbox: ignoring {} (the sandbox wires these to its emulators)",
            settings.ignored.join(", ")
        );
    }
    let config = Config::from_vars(settings.gateway_vars(sandbox_env(&emus), args.gateway_port))?;
    // The gateway's logs go to stderr (stdout has the banner) when asked for.
    let _telemetry = (settings.get("PHOTO_GATEWAY_LOG_LEVEL").is_some()
        || settings.get("PHOTO_GATEWAY_LOG_FORMAT").is_some())
    .then(|| {
        crate::telemetry::init(
            config.telemetry.log_format,
            &config.telemetry.log_level,
            std::io::stderr,
        )
    });
    let app = crate::Application::build(config).await?;
    let gateway_url = format!("http://127.0.0.1:{}", app.port());
    let server = app.run_until_stopped();
    tokio::pin!(server);
    tokio::select! {
        stopped = &mut server => {
            stopped?;
            return Err("the gateway stopped before it was ready".into());
        }
        ready = wait_ready(&gateway_url) => ready?,
    }
    let ready = ready_json(&emus, Some(&gateway_url), &sample, Some(&settings));
    print_banner(&emus, Some(&gateway_url), &ready, &sample, None);
    if let Some(path) = &args.ready_file {
        write_atomically(path, serde_json::to_string_pretty(&ready)?.as_bytes())?;
    }
    tokio::select! {
        stopped = &mut server => stopped?,
        _ = wait_for_signal() => {}
    }
    Ok(())
}

/// Polls `GET /readyz` until it answers 200 (the gateway has loaded the emulator's keys).
async fn wait_ready(gateway_url: &str) -> Result<(), Box<dyn Error>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{gateway_url}/readyz")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{gateway_url}/readyz did not answer 200 within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn demo_tokens(emus: &Emulators) -> (String, String) {
    let token =
        emus.caller_token(&CallerTokenSpec::for_user(DEMO_USER_UPN).ttl_secs(PRINTED_TOKEN_TTL));
    let graph_token =
        emus.entra
            .graph_token_with_ttl(DEMO_USER_UPN, &UPDATE_SCOPES, PRINTED_TOKEN_TTL);
    (token, graph_token)
}

/// The `--ready-file` document.
fn ready_json(
    emus: &Emulators,
    gateway_url: Option<&str>,
    sample: &Path,
    settings: Option<&EnvSettings>,
) -> Value {
    let d = emus.directory();
    let (token, graph_token) = demo_tokens(emus);
    let env: serde_json::Map<String, Value> = emus
        .gateway_env()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut v = json!({
        "graph_url": emus.graph_url(),
        "entra_url": emus.entra_url(),
        "tenant_id": emus.tenant_id(),
        "ca_file": emus.ca_file().display().to_string(),
        "gateway_env": env,
        "token": token,
        "graph_token": graph_token,
        "demo_user": {"id": d.demo_user().id, "userPrincipalName": d.demo_user().user_principal_name},
        "users": d.users.iter().map(|u| json!({"id": u.id, "userPrincipalName": u.user_principal_name})).collect::<Vec<_>>(),
        "groups": d.groups.iter().map(|g| json!({"id": g.id, "displayName": g.display_name})).collect::<Vec<_>>(),
        "contacts": d.contacts.iter().map(|c| json!({"user": c.user, "folder": c.folder, "id": c.id})).collect::<Vec<_>>(),
        "teams": photo_gateway_emulators::teams::seeded_teams(),
    });
    if let Some(url) = gateway_url {
        v["gateway_url"] = json!(url);
    }
    v["sample_file"] = json!(sample.display().to_string());
    if let Some(s) = settings {
        v["env_applied"] = json!(s.applied.iter().map(|(k, _)| k).collect::<Vec<_>>());
        v["env_ignored"] = json!(s.ignored);
    }
    v
}

fn print_banner(
    emus: &Emulators,
    gateway_url: Option<&str>,
    ready: &Value,
    sample: &Path,
    env_file: Option<&Path>,
) {
    let d = emus.directory();
    let token = ready["token"].as_str().unwrap_or_default();
    let graph_token = ready["graph_token"].as_str().unwrap_or_default();
    let ca = emus.ca_file().display();
    let demo = &d.demo_user().id;
    println!(
        "photo-gateway sandbox: for development and CI only (production points at a real tenant).\n"
    );
    if let Some(url) = gateway_url {
        println!("  gateway:          {url}   (API docs: {url}/docs)");
    }
    println!(
        "  Entra emulator:   {}   (tenant {})",
        emus.entra_url(),
        emus.tenant_id()
    );
    println!("  Graph emulator:   {}", emus.graph_url());
    println!("  CA certificate:   {ca}");
    println!(
        "  demo user:        {} ({demo})",
        d.demo_user().user_principal_name
    );
    if let Some(f) = env_file {
        println!("\nEmulators only. Start the gateway against them with:\n");
        println!("  set -a; . {}; set +a; photo-gateway serve", f.display());
    }
    println!(
        "\nCaller token for the demo user (also: photo-gateway sandbox token --user <upn>):\n"
    );
    println!("  export TOKEN='{token}'");
    println!("  export GRAPH_TOKEN='{graph_token}'");
    let gw = gateway_url
        .map(str::to_string)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    println!("\nUpload a photo through the gateway, then read it back from the Graph emulator:\n");
    println!(
        "  curl -sS -X PUT '{gw}/v1.0/me/photo/$value' -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: image/jpeg' --data-binary @{}",
        sample.display()
    );
    println!(
        "  curl -sS --cacert {ca} '{}/v1.0/users/{demo}/photo/$value' -H \"Authorization: Bearer $GRAPH_TOKEN\" -o /tmp/photo-back.jpg",
        emus.graph_url()
    );
    println!(
        "  cmp {} /tmp/photo-back.jpg && echo same bytes",
        sample.display()
    );
    println!(
        "\nControl API: {}/_emulator/… and {}/_emulator/… (see SANDBOX.md). Ctrl-C stops.",
        emus.entra_url(),
        emus.graph_url()
    );
}

/// Runs `photo-gateway sandbox token`: prints a caller token the running sandbox accepts.
pub async fn run_token(args: SandboxTokenArgs) -> Result<(), Box<dyn Error>> {
    let spec = if args.app_only {
        let app = args
            .app
            .as_deref()
            .unwrap_or(photo_gateway_emulators::DEMO_CLIENT_ID);
        CallerTokenSpec {
            ttl_secs: args.ttl,
            version: args.version,
            ..CallerTokenSpec::daemon(app)
        }
    } else {
        CallerTokenSpec {
            scp: Some(args.scope.clone()),
            app: args.app.clone(),
            ttl_secs: args.ttl,
            version: args.version,
            ..CallerTokenSpec::for_user(&args.user)
        }
    };
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let token = match &args.entra_url {
        Some(url) => {
            let ca_file = args
                .ca_file
                .clone()
                .unwrap_or_else(|| state_dir.join("ca.pem"));
            mint_remote(url, &ca_file, &spec).await?
        }
        None => mint_caller_token(&state_dir, &spec)?,
    };
    println!("{token}");
    Ok(())
}

async fn mint_remote(
    entra_url: &str,
    ca_file: &Path,
    spec: &CallerTokenSpec,
) -> Result<String, Box<dyn Error>> {
    let ca = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .timeout(Duration::from_secs(10))
        .build()?;
    let resp = client
        .post(format!(
            "{}/_emulator/tokens",
            entra_url.trim_end_matches('/')
        ))
        .json(spec)
        .send()
        .await?
        .error_for_status()?;
    let body: Value = resp.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the emulator answered without access_token".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn value<'a>(vars: &'a [(String, String)], k: &str) -> Option<&'a str> {
        let found: Vec<&str> = vars
            .iter()
            .filter(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(found.len() <= 1, "{k} set twice");
        found.first().copied()
    }

    #[test]
    fn settings_apply_over_defaults_but_never_over_the_wiring() {
        let settings = EnvSettings::from_vars(pairs(&[
            ("PHOTO_GATEWAY_MAX_PHOTO_BYTES", "1000"),
            ("PHOTO_GATEWAY_CALLER_POLICY", "app=users"),
            (
                "PHOTO_GATEWAY_GRAPH_BASE_URL",
                "https://graph.microsoft.com",
            ),
            ("PHOTO_GATEWAY_CLIENT_CERTIFICATE_FILE", "/etc/cert.pem"),
            ("PHOTO_GATEWAY_METRICS_ADDR", "off"),
            ("PHOTO_GATEWAY_LISTEN_ADDR", "127.0.0.1:9999"),
            ("AZURE_CLIENT_ID", "x"),
            ("HOME", "/root"),
        ]));
        assert_eq!(
            settings.ignored,
            [
                "PHOTO_GATEWAY_CLIENT_CERTIFICATE_FILE",
                "PHOTO_GATEWAY_GRAPH_BASE_URL"
            ]
        );
        let wiring = pairs(&[
            ("PHOTO_GATEWAY_GRAPH_BASE_URL", "https://127.0.0.1:1"),
            ("PHOTO_GATEWAY_CLIENT_SECRET", "s"),
            ("PHOTO_GATEWAY_CALLER_POLICY", "demo=users,groups,contacts"),
        ]);
        let vars = settings.gateway_vars(wiring.clone(), None);
        assert_eq!(value(&vars, "PHOTO_GATEWAY_MAX_PHOTO_BYTES"), Some("1000"));
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_CALLER_POLICY"),
            Some("app=users")
        );
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_GRAPH_BASE_URL"),
            Some("https://127.0.0.1:1")
        );
        assert_eq!(value(&vars, "PHOTO_GATEWAY_CLIENT_SECRET"), Some("s"));
        // Wiring the emulators leave unset is blanked, so no file can supply it.
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_CLIENT_CERTIFICATE_FILE"),
            Some("")
        );
        assert_eq!(value(&vars, "PHOTO_GATEWAY_METRICS_ADDR"), Some("off"));
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_LISTEN_ADDR"),
            Some("127.0.0.1:9999")
        );
        assert!(value(&vars, "AZURE_CLIENT_ID").is_none());
        // --gateway-port wins over the environment's listener.
        let vars = settings.gateway_vars(wiring, Some(0));
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_LISTEN_ADDR"),
            Some("127.0.0.1:0")
        );
    }

    #[test]
    fn without_settings_the_sandbox_defaults_stay() {
        let vars = EnvSettings::default().gateway_vars(
            pairs(&[("PHOTO_GATEWAY_CALLER_POLICY", "demo=users")]),
            None,
        );
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_LISTEN_ADDR"),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_METRICS_ADDR"),
            Some("127.0.0.1:0")
        );
        assert_eq!(
            value(&vars, "PHOTO_GATEWAY_CALLER_POLICY"),
            Some("demo=users")
        );
    }
}
