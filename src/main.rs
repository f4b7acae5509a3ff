//! The `photo-gateway` command: `serve` (default), `healthcheck`, `check-config`, `openapi`, and
//! with the `sandbox` feature, `sandbox`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use photo_gateway::config::Config;
use photo_gateway::{Application, telemetry};

/// See Cargo.toml: cheaper small allocations than glibc's, and memory returned after bursts.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// `--version` says how the binary was built: a debug gateway costs several times the CPU of a
// release one, and a benchmark result is only comparable to another of the same profile.
#[cfg(debug_assertions)]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (debug build)");
#[cfg(not(debug_assertions))]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (release build)");

#[derive(Parser)]
#[command(
    name = "photo-gateway",
    version = VERSION,
    about = "Sets Microsoft 365 profile photos on behalf of signed-in users"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default). Configured by PHOTO_GATEWAY_* variables.
    Serve,
    /// Probe a URL (default this instance's /readyz) and exit 0 if it answers 2xx, else 1.
    Healthcheck {
        /// URL to probe.
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Validate the configuration and exit.
    CheckConfig,
    /// Print the OpenAPI document (the committed openapi/openapi.json is this output).
    Openapi,
    /// Run built-in Entra ID and Graph emulators (and the gateway against them), for development and CI.
    #[cfg(feature = "sandbox")]
    Sandbox(photo_gateway::sandbox::SandboxArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("photo-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve().await,
            Command::Healthcheck { url, timeout } => healthcheck(url, timeout).await,
            Command::CheckConfig => match Config::from_env() {
                Ok(_) => {
                    println!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("photo-gateway: invalid configuration: {e}");
                    ExitCode::from(2)
                }
            },
            Command::Openapi => {
                print!("{}", photo_gateway::http::docs::openapi_pretty_json());
                ExitCode::SUCCESS
            }
            #[cfg(feature = "sandbox")]
            Command::Sandbox(cmd) => match photo_gateway::sandbox::run(cmd).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("photo-gateway sandbox: {e}");
                    ExitCode::FAILURE
                }
            },
        }
    })
}

async fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("photo-gateway: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = telemetry::init(
        config.telemetry.log_format,
        &config.telemetry.log_level,
        std::io::stdout,
    );
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            eprintln!("photo-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_with_signals().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(url: Option<String>, timeout: u64) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let port = std::env::var("PHOTO_GATEWAY_LISTEN_ADDR")
            .ok()
            .and_then(|a| a.rsplit(':').next().map(str::to_owned))
            .unwrap_or_else(|| "8080".into());
        format!("http://127.0.0.1:{port}/readyz")
    });
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("healthcheck: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
