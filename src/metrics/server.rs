//! The `/metrics` listener: its own small server, so scraping never competes with uploads for
//! workers and the port can stay private to the cluster.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

/// Binds and starts the metrics server; returns it and its port, or why it could not bind.
pub fn start(addr: SocketAddr) -> std::io::Result<(Server, u16)> {
    super::install();
    let listener = TcpListener::bind(addr)?;
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
    .listen(listener)?
    .run();
    Ok((server, port))
}
