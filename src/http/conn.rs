//! The one thing a handler may do to its connection: stop reading from it.
//!
//! After a body deadline the rest of the body must not be read: actix would otherwise drain a
//! chunked body for as long as the client trickles it (a slowloris). Shutting down the read half
//! makes the server send the answer and then close the connection.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use actix_web::HttpRequest;
use actix_web::dev::Extensions;

/// The socket of the connection a request arrived on.
#[derive(Clone, Copy)]
struct ConnFd(RawFd);

/// `HttpServer::on_connect` hook: remembers each connection's socket.
pub fn remember_socket(conn: &dyn std::any::Any, ext: &mut Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        ext.insert(ConnFd(tcp.as_raw_fd()));
    }
}

/// Stops reading the request's connection; the answer is still written, then it is closed.
pub fn stop_reading(req: &HttpRequest) {
    let Some(ConnFd(fd)) = req.conn_data::<ConnFd>().copied() else {
        return;
    };
    // SAFETY: the descriptor belongs to the connection this request is being served on, which
    // stays open at least until the request's answer has been written.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = socket2::SockRef::from(&borrowed).shutdown(std::net::Shutdown::Read);
}
