//! The `/metrics` listener: its own small server, so scraping never competes with uploads for
//! workers and the port can stay private to the cluster.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::startup::StartupError;

/// Binds and starts the metrics server; returns it and its port.
pub fn start(addr: SocketAddr) -> Result<(Server, u16), StartupError> {
    super::install();
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
                    .body(super::render())
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
