//! photo-gateway: sets Microsoft 365 profile photos on behalf of signed-in users.
//!
//! `Application::build` assembles the whole service from a `Config` so that `main` and the tests
//! run exactly the same thing.

pub mod auth;
pub mod config;
pub mod error;
pub mod graph;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod token;
pub mod upload;
pub mod upstream;

#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::auth::{KeyStore, TokenValidator};
use crate::config::Config;
use crate::graph::GraphClient;
use crate::service::PhotoService;
use crate::state::AppState;
use crate::telemetry::GatewayRootSpan;
use crate::token::{Credential, OboClient, TokenCache};
use crate::upload::UploadLimits;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// An upstream client could not be built.
    #[error(transparent)]
    Client(#[from] upstream::ClientBuildError),
    /// A listener could not be bound.
    #[error("{var}: cannot listen on {addr}: {source}")]
    Bind {
        /// The variable naming the address.
        var: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Starts a graceful shutdown: readiness false at once, keep serving for the drain delay, then
/// stop accepting and give in-flight requests until the shutdown timeout.
#[derive(Clone)]
pub struct ShutdownHandle {
    draining: Arc<AtomicBool>,
    drain: Duration,
    servers: Vec<ServerHandle>,
}

impl ShutdownHandle {
    /// Runs the shutdown sequence; returns when the servers have stopped.
    pub async fn shutdown(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(
            drain_ms = self.drain.as_millis() as u64,
            "shutdown requested: readiness is now false; still serving during the drain delay"
        );
        tokio::time::sleep(self.drain).await;
        tracing::info!(
            "drain delay over: no longer accepting connections; finishing in-flight requests"
        );
        for s in &self.servers {
            s.stop(true).await;
        }
    }
}

/// The assembled service, bound and ready to run.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    metrics_server: Option<Server>,
    shutdown: ShutdownHandle,
}

impl Application {
    /// Builds every component, binds the listeners and starts loading the signing keys in the
    /// background (the service reports ready once they are loaded).
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let roots = upstream::extra_roots(&config)?;
        let entra_http = upstream::client(&config, &roots, config.token_timeout)?;
        let graph_http = upstream::client(&config, &roots, config.graph_timeout)?;

        let keys = Arc::new(KeyStore::new(
            entra_http.clone(),
            config.discovery_url_v2(),
            config.discovery_url_v1(),
            config.issuers_override.clone(),
            config.jwks_unknown_kid_cooldown,
        ));
        keys.clone()
            .spawn_maintenance(config.jwks_refresh_interval, config.jwks_retry_max_backoff);

        let obo = OboClient::new(
            entra_http,
            config.token_endpoint(),
            config.client_id.clone(),
            Credential::new(config.credential.clone()),
            config.token_expiry_margin,
        );
        let photos = Arc::new(PhotoService {
            validator: TokenValidator::new(&config, keys.clone()),
            tokens: TokenCache::new(obo, config.token_cache_max_bytes),
            graph: GraphClient::new(
                graph_http,
                config.graph_base_url.as_str(),
                config.graph_timeout,
                config.graph_deadline,
                config.graph_max_retries,
            ),
            scopes: config.scopes.clone(),
            upload: UploadLimits {
                max_bytes: config.max_photo_bytes,
                read_timeout: config.body_read_timeout,
            },
            policy: config.caller_policy.clone(),
            limits: limits::Limits::new(config.limits),
        });
        let draining = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            photos,
            keys,
            draining: draining.clone(),
        });

        let listener =
            TcpListener::bind(config.listen_addr).map_err(|source| StartupError::Bind {
                var: "PHOTO_GATEWAY_LISTEN_ADDR",
                addr: config.listen_addr,
                source,
            })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(TracingLogger::<GatewayRootSpan>::new())
                .wrap(from_fn(telemetry::request_context))
                .configure(http::routes)
        })
        .on_connect(http::conn::remember_socket)
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout.as_secs());
        if let Some(w) = config.workers {
            server = server.workers(w);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                var: "PHOTO_GATEWAY_LISTEN_ADDR",
                addr: config.listen_addr,
                source,
            })?
            .run();

        let (metrics_server, metrics_port) = match config.metrics_addr {
            Some(addr) => {
                let (s, p) = metrics_server(addr)?;
                (Some(s), Some(p))
            }
            None => (None, None),
        };
        let mut handles = vec![server.handle()];
        handles.extend(metrics_server.as_ref().map(|s| s.handle()));
        let shutdown = ShutdownHandle {
            draining,
            drain: config.shutdown_drain,
            servers: handles,
        };
        tracing::info!(port, metrics_port, "photo-gateway listening");
        Ok(Application {
            port,
            metrics_port,
            server,
            metrics_server,
            shutdown,
        })
    }

    /// The API port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics port, when metrics are served.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// A handle that starts the graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until the servers are stopped (through the shutdown handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.metrics_server {
            Some(m) => {
                let (a, b) = tokio::join!(self.server, m);
                a.and(b)
            }
            None => self.server.await,
        }
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_with_signals(self) -> std::io::Result<()> {
        let handle = self.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            handle.shutdown().await;
        });
        self.run_until_stopped().await
    }
}

/// Resolves on the first SIGTERM or SIGINT (both mean "drain, then stop").
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => tracing::info!("SIGTERM received"),
                    _ = i.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn metrics_server(addr: SocketAddr) -> Result<(Server, u16), StartupError> {
    metrics::install();
    let bind_err = |source| StartupError::Bind {
        var: "PHOTO_GATEWAY_METRICS_ADDR",
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).map_err(bind_err)?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = HttpServer::new(|| {
        App::new().route(
            "/metrics",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/plain; version=0.0.4; charset=utf-8")
                    .body(metrics::render())
            }),
        )
    })
    .disable_signals()
    .workers(1)
    .listen(listener)
    .map_err(bind_err)?
    .run();
    Ok((server, port))
}
