//! Startup: builds every component from its section of the configuration, binds the listeners,
//! and runs until the shutdown handle (or a signal) stops it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::dev::Server;
use actix_web::http::KeepAlive;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::admission::Admission;
use crate::auth::{AppPolicy, CallerPolicy, KeyStore, TokenValidator};
use crate::config::Config;
use crate::config::{ImageConfig, ImageCrop, ImageMode};
use crate::graph::{GraphClient, Scopes, UserIds};
use crate::image::{Crop, ImageLimits, ImageOptions, ImageStage, Mode};
use crate::image_request::ImagePolicy;
use crate::read_cache::ReadCache;
use crate::service::PhotoService;
use crate::shared::{GlobalLimits, Invalidation, Redis};
use crate::shutdown::{ShutdownHandle, wait_for_signal};
use crate::state::AppState;
use crate::telemetry::GatewayRootSpan;
use crate::token::{AppTokens, Credential, L2Tokens, OboClient, TokenCache};
use crate::upload::UploadLimits;
use crate::{http, metrics, outbound, telemetry};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// An upstream client could not be built.
    #[error(transparent)]
    Client(#[from] outbound::ClientBuildError),
    /// The Redis tier could not be set up.
    #[error(transparent)]
    Redis(#[from] crate::shared::RedisSetupError),
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
        // Before any component: a gauge set while it starts (`redis_up`) is otherwise lost.
        if config.server.metrics_addr.is_some() {
            metrics::install();
        }
        let roots = outbound::extra_roots(&config.upstream)?;
        let entra_http = outbound::client(&config.upstream, &roots, config.entra.request_timeout)?;
        let graph_http =
            outbound::PerThreadClient::new(&config.upstream, &roots, config.graph.attempt_timeout)?;

        let keys = Arc::new(KeyStore::new(
            entra_http.clone(),
            config.entra.discovery_url_v2(),
            config.entra.discovery_url_v1(),
            config.jwks.issuers_override.clone(),
            config.jwks.unknown_kid_cooldown,
        ));
        keys.clone()
            .spawn_maintenance(config.jwks.refresh_interval, config.jwks.retry_max_backoff);

        let entra = &config.entra;
        let obo = OboClient::new(
            entra_http,
            entra.token_endpoint(),
            entra.client_id.clone(),
            Credential::new(entra.credential.clone()),
            entra.token_expiry_margin,
        );
        // The optional Redis tier: built without connecting (a Redis that is down is no reason
        // not to start); a first PING in the background logs whether it answers.
        let redis = match &config.redis {
            Some(rc) => {
                let redis = Arc::new(Redis::new(rc)?);
                let probe = redis.clone();
                tokio::spawn(async move {
                    if probe.probe().await {
                        tracing::info!("Redis answers: token cache and limits are shared");
                    }
                });
                Some((redis, rc))
            }
            None => None,
        };
        let l2 = redis
            .as_ref()
            .map(|(r, rc)| L2Tokens::new(r.clone(), rc, entra.request_timeout));
        // App-only callers' Graph token: the gateway's own, through the same credential and, with
        // Redis, the same sealed tier.
        let app_tokens = AppTokens::new(
            obo.clone(),
            format!("{}/.default", config.graph.scope_resource),
            redis
                .as_ref()
                .map(|(r, rc)| L2Tokens::new(r.clone(), rc, entra.request_timeout)),
        );
        let global = redis
            .as_ref()
            .map(|(r, rc)| Arc::new(GlobalLimits::new(r.clone(), rc.lease)));
        let replicas = config.redis.as_ref().map_or(1, |rc| rc.expected_replicas);
        let read_cache = ReadCache::new(config.read_cache.max_bytes, config.read_cache.max_age);
        // With Redis, other replicas' writes and deletes reach this replica's read cache; a
        // cache that is off needs neither the channel nor its connection.
        let invalidation = redis
            .as_ref()
            .filter(|_| read_cache.enabled())
            .map(|(r, _)| {
                // A mark outlives every entry it covers: served for max-age from Graph's answer,
                // which comes at most the Graph deadline after the mark was set.
                let invalidation = Invalidation::new(r.clone()).with_mark_ttl(
                    read_cache.max_age()
                        + config.graph.deadline
                        + std::time::Duration::from_secs(5),
                );
                let (on_change, on_flush) = (read_cache.clone(), read_cache.clone());
                invalidation.spawn_subscriber(
                    move |id| {
                        // The subscriber must not wait on the cache: the drop runs beside it.
                        let cache = on_change.clone();
                        tokio::spawn(async move { cache.invalidate_id(id).await });
                    },
                    move || on_flush.flush(),
                );
                invalidation
            });
        let photos = Arc::new(PhotoService {
            validator: TokenValidator::new(
                &config.caller,
                vec![entra.client_id.clone(), entra.app_id_uri.clone()],
                config.graph.audiences(),
                keys.clone(),
            ),
            tokens: TokenCache::with_l2(obo, entra.token_cache_max_bytes, l2),
            graph: GraphClient::new(
                graph_http,
                config.graph.base_url.as_str(),
                config.graph.attempt_timeout,
                config.graph.deadline,
                config.graph.max_retries,
            ),
            scopes: Scopes::new(config.graph.scopes.clone()),
            read_cache,
            invalidation,
            upload: UploadLimits {
                max_bytes: config.body.max_photo_bytes,
                read_timeout: config.body.read_timeout,
            },
            policy: CallerPolicy::new(config.caller.policy.clone()),
            app_policy: AppPolicy::new(config.app_only.policy.clone()),
            app_tokens,
            admission: Admission::with_global(config.admission, global, replicas)
                .with_app_rate(config.app_only.rate_per_min, config.app_only.burst),
            user_ids: UserIds::new(config.admission.mailbox_lookup_ttl),
            images: ImageStage::new(image_limits(&config.image)),
            image_policy: image_policy(&config.image),
        });
        let draining = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            photos,
            keys,
            draining: draining.clone(),
            close_after_body_bytes: config.server.close_after_body_bytes,
        });

        let listener =
            TcpListener::bind(config.server.listen_addr).map_err(|source| StartupError::Bind {
                var: "PHOTO_GATEWAY_LISTEN_ADDR",
                addr: config.server.listen_addr,
                source,
            })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        // Past this with no request in flight, a connection is stuck in a later request's head,
        // which the HTTP server does not time.
        let idle_limit = config.server.keep_alive
            + config.server.request_head_timeout
            + http::conn::CLOSE_LINGER;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(http::panic::catch_panic))
                .wrap(TracingLogger::<GatewayRootSpan>::new())
                .wrap(from_fn(telemetry::request_context))
                // Outermost: it acts once the answer, whatever produced it, is decided.
                .wrap(from_fn(http::conn::finish_body))
                .configure(http::routes)
        })
        .keep_alive(match config.server.keep_alive {
            d if d.is_zero() => KeepAlive::Disabled,
            d => KeepAlive::Timeout(d),
        })
        .client_request_timeout(config.server.request_head_timeout)
        // `finish_body` relies on it: without a linger the server would close at once, and
        // unread bytes would turn the close into a reset that can destroy the answer.
        .client_disconnect_timeout(http::conn::CLOSE_LINGER)
        .on_connect(http::conn::watch_idle(idle_limit))
        .disable_signals()
        .shutdown_timeout(config.shutdown.timeout.as_secs());
        if let Some(w) = config.server.workers {
            server = server.workers(w);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                var: "PHOTO_GATEWAY_LISTEN_ADDR",
                addr: config.server.listen_addr,
                source,
            })?
            .run();

        let (metrics_server, metrics_port) = match config.server.metrics_addr {
            Some(addr) => {
                let (s, p) = metrics::server::start(addr).map_err(|source| StartupError::Bind {
                    var: "PHOTO_GATEWAY_METRICS_ADDR",
                    addr,
                    source,
                })?;
                (Some(s), Some(p))
            }
            None => (None, None),
        };
        let mut handles = vec![server.handle()];
        handles.extend(metrics_server.as_ref().map(|s| s.handle()));
        let shutdown = ShutdownHandle {
            draining,
            drain: config.shutdown.drain,
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

fn image_mode(m: ImageMode) -> Mode {
    match m {
        ImageMode::Normalize => Mode::Normalize,
        ImageMode::Strip => Mode::Strip,
        ImageMode::Passthrough => Mode::Passthrough,
    }
}

/// What the stage enforces whatever a request asks; the pool is sized to the cores unless
/// configured.
fn image_limits(c: &ImageConfig) -> ImageLimits {
    ImageLimits {
        max_pixels: c.max_pixels,
        max_input_edge: c.max_input_edge,
        workers: c.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1)
        }),
        queue_timeout: c.queue_timeout,
    }
}

/// The defaults of a request that asks nothing, and what a request may ask.
fn image_policy(c: &ImageConfig) -> ImagePolicy {
    ImagePolicy {
        defaults: ImageOptions {
            mode: image_mode(c.mode),
            crop: match c.crop {
                ImageCrop::Center => Crop::Center,
                ImageCrop::None => Crop::None,
            },
            max_edge: c.max_edge,
            quality: c.quality,
            background: c.background,
            max_bytes: c.max_bytes,
        },
        allowed_modes: c.allowed_modes.iter().copied().map(image_mode).collect(),
        min_bytes: c.min_bytes,
    }
}
