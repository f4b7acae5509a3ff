//! What a connection is left in after an answer that did not read the whole request body.
//!
//! Left to itself, actix-web drains the unread rest of a chunked body for as long as the client
//! keeps the connection open, even when nothing ever comes (a client that announces a body and
//! sends nothing holds a connection forever without a token), and abandons a `Content-Length`
//! body by closing. Neither suits a gateway that refuses most bad requests before their body: a
//! healthy client that sent an ordinary body with an expired token should read its 401 and keep
//! its connection, and nobody should hold a connection by not sending.
//!
//! So [`finish_body`] (the outermost middleware) sees every request body through a handle that
//! notes when it ends. Once the answer is decided, a body that has not ended is drained while it
//! keeps arriving (no pause of [`DRAIN_IDLE`]), within [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`].
//! A body still unfinished after that is abandoned: the answer says `Connection: close`, and its
//! body holds the request body open until the answer is written, which makes the HTTP server close
//! the connection (after lingering up to its client-disconnect timeout for the client to go
//! first, so that unread bytes do not turn the close into a reset that could destroy the answer)
//! instead of draining on.
//!
//! The HTTP server times a connection's first request head and an idle connection's keep-alive,
//! but not the head of a later request: one byte of it stops the keep-alive timer, and no other
//! starts. [`watch_idle`] covers that gap: a connection with no request in flight for longer than
//! the keep-alive and a head timeout together is not waiting for anything legitimate, and is shut.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Most bytes read and discarded after the answer is decided: twice Graph's photo limit, so any
/// body a client could mean as a photo is drained and its connection kept.
pub const DRAIN_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Longest the answer waits for the rest of an unfinished body.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);
/// A body that sends nothing for this long is abandoned at once: it is not on its way.
pub const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// How long the HTTP server waits, after an answer that closes the connection, for the client to
/// close first (actix's client-disconnect timeout); it reads and discards meanwhile.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Middleware, outermost: every request body passes through a [`TrackedBody`]; after the answer,
/// an unfinished one is drained within limits or the connection is closed.
pub async fn finish_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let body = match req.take_payload() {
        Payload::None => None,
        payload => {
            let body = TrackedBody::new(payload);
            req.set_payload(Payload::Stream {
                payload: Box::pin(body.clone()),
            });
            Some(body)
        }
    };
    let declared = declared_length(req.headers());
    // A large body leaves the HTTP server's read buffer of this connection at its high-water mark
    // (up to about 256 KiB, actix-web#2075) for as long as the connection lives: such a
    // connection is closed after its answer (`CLOSE_AFTER_BODY_BYTES`).
    let close_after = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map_or(0, |s| s.close_after_body_bytes);
    // The client closes after this answer anyway: draining would only delay it.
    let client_closes = req.head().connection_type() == ConnectionType::Close;
    // Until the answer is decided (or the request is abandoned) the connection is not idle.
    let _busy = req.conn_data::<Rc<ConnClock>>().map(|c| c.busy());
    match next.call(req).await {
        Ok(mut res) => {
            let Some(body) = body else {
                return Ok(res.map_into_left_body());
            };
            let closes = client_closes || !res.response().head().keep_alive();
            if body.ended() || (!closes && body.drain(declared).await) {
                if close_after > 0 && body.read() > close_after {
                    res.response_mut()
                        .head_mut()
                        .set_connection_type(ConnectionType::Close);
                }
                return Ok(res.map_into_left_body());
            }
            // The error, if any, stays attached: only the head changes.
            res.response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            Ok(res
                .map_body(|_, b| HoldsBody::new(BoxBody::new(b), body))
                .map_into_right_body())
        }
        // A caught panic's answer comes as an error carrying its response.
        Err(cause) => match body {
            Some(body) if !(body.ended() || (!client_closes && body.drain(declared).await)) => {
                Err(UnreadBody { cause, body }.into())
            }
            _ => Err(cause),
        },
    }
}

/// `Content-Length`, when present and a number (parsed as the upload room parses it).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| crate::upload::BodyHeaders::parse_length(v.as_bytes()))
        .map(|n| n as u64)
}

/// A request body shared between the handler (which reads it as its payload) and
/// [`finish_body`] (which drains or abandons what the handler left), noting when it ended.
#[derive(Clone)]
struct TrackedBody(Rc<Tracked>);

struct Tracked {
    payload: RefCell<Payload>,
    ended: Cell<bool>,
    read: Cell<u64>,
}

impl TrackedBody {
    fn new(payload: Payload) -> TrackedBody {
        TrackedBody(Rc::new(Tracked {
            payload: RefCell::new(payload),
            ended: Cell::new(false),
            read: Cell::new(0),
        }))
    }

    /// Nothing more will come: the body ended, or failed (then the HTTP server has given it up).
    fn ended(&self) -> bool {
        self.0.ended.get()
    }

    /// Bytes read so far (by the handler and any drain).
    fn read(&self) -> u64 {
        self.0.read.get()
    }

    /// Reads and discards the rest while it keeps arriving, within the drain limits; true when
    /// the body ended.
    async fn drain(&self, declared: Option<u64>) -> bool {
        let already = self.0.read.get();
        if declared.is_some_and(|n| n.saturating_sub(already) > DRAIN_MAX_BYTES) {
            return false;
        }
        let deadline = Instant::now() + DRAIN_MAX_TIME;
        let mut rest = self.clone();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.min(DRAIN_IDLE), rest.next()).await {
                Ok(Some(Ok(_))) if self.0.read.get() - already <= DRAIN_MAX_BYTES => {}
                _ => break,
            }
        }
        self.ended()
    }
}

impl Stream for TrackedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let t = &self.0;
        if t.ended.get() {
            return Poll::Ready(None);
        }
        // One reader at a time on one worker thread (the handler, then the drain); a second one
        // while the first polls would be a bug, answered as a read error rather than a panic.
        let Ok(mut payload) = t.payload.try_borrow_mut() else {
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::other(
                "the request body is already being read",
            )))));
        };
        let item = ready!(payload.poll_next_unpin(cx));
        match &item {
            Some(Ok(chunk)) => t.read.set(t.read.get() + chunk.len() as u64),
            None | Some(Err(_)) => t.ended.set(true),
        }
        Poll::Ready(item)
    }
}

/// An answer's body that keeps the unread request body alive until the answer is written: the
/// HTTP server then sees a body still wanted, and closes the connection instead of draining it.
struct HoldsBody {
    answer: BoxBody,
    _unread: TrackedBody,
}

impl HoldsBody {
    fn new(answer: BoxBody, unread: TrackedBody) -> HoldsBody {
        HoldsBody {
            answer,
            _unread: unread,
        }
    }
}

impl MessageBody for HoldsBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.answer.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.answer).poll_next(cx)
    }

    // `try_into_bytes` keeps its default (never): turned into plain bytes, this body would let the
    // request body go before the answer is written.
}

/// A caught panic's answer over an unread body: rendered with `Connection: close` and a body that
/// holds the request body, as [`finish_body`] does for ordinary answers.
struct UnreadBody {
    cause: Error,
    body: TrackedBody,
}

impl std::fmt::Debug for UnreadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.cause, f)
    }
}

impl std::fmt::Display for UnreadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.cause, f)
    }
}

impl ResponseError for UnreadBody {
    fn status_code(&self) -> StatusCode {
        self.cause.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.cause.error_response();
        res.head_mut().set_connection_type(ConnectionType::Close);
        let body = self.body.clone();
        res.map_body(|_, answer| BoxBody::new(HoldsBody::new(answer, body)))
    }
}

/// When a connection last had no request in flight; `None` while one is.
struct ConnClock {
    idle_since: Cell<Option<Instant>>,
    /// Dropped with the connection's data: tells the watchdog at once that there is nothing left
    /// to watch, so closed connections leave no sleeping tasks behind.
    _gone: tokio::sync::oneshot::Sender<()>,
}

impl ConnClock {
    /// Marks a request in flight until the returned guard is dropped.
    fn busy(self: &Rc<Self>) -> Busy {
        self.idle_since.set(None);
        Busy(self.clone())
    }
}

/// A request in flight on its connection; dropping it (answered or abandoned) makes it idle.
struct Busy(Rc<ConnClock>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.set(Some(Instant::now()));
    }
}

/// `HttpServer::on_connect` hook: gives each plain TCP connection a clock (in its connection
/// data, where [`finish_body`] marks requests in flight) and a watchdog that shuts the connection
/// once it has been idle longer than `limit`.
pub fn watch_idle(limit: Duration) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |conn, ext| {
        let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let (Ok(local), Ok(peer)) = (tcp.local_addr(), tcp.peer_addr()) else {
            return;
        };
        let (gone, closed) = tokio::sync::oneshot::channel();
        let clock = Rc::new(ConnClock {
            idle_since: Cell::new(Some(Instant::now())),
            _gone: gone,
        });
        let watched = Watched {
            clock: Rc::downgrade(&clock),
            fd: tcp.as_raw_fd(),
            local,
            peer,
        };
        ext.insert(clock);
        actix_web::rt::spawn(watched.watch(limit, closed));
    }
}

/// What the watchdog knows of its connection. The clock lives in the connection's data, which
/// the HTTP server drops with the connection: while it can be upgraded, the descriptor is still
/// that connection's.
struct Watched {
    clock: Weak<ConnClock>,
    fd: RawFd,
    local: SocketAddr,
    peer: SocketAddr,
}

impl Watched {
    async fn watch(self, limit: Duration, mut closed: tokio::sync::oneshot::Receiver<()>) {
        loop {
            let Some(clock) = self.clock.upgrade() else {
                return;
            };
            let wake = match clock.idle_since.get() {
                Some(since) if since.elapsed() >= limit => break,
                Some(since) => since + limit,
                None => Instant::now() + limit,
            };
            drop(clock);
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = &mut closed => return,
            }
        }
        self.shut();
    }

    /// Shuts both directions: the HTTP server reads the end of the stream and closes.
    fn shut(&self) {
        // SAFETY: `watch` saw the connection's clock alive on this same thread just now, with no
        // await since, so the HTTP server still holds the connection and its descriptor is open.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let sock = socket2::SockRef::from(&fd);
        // Belt and braces: the descriptor must still be the very connection it was.
        let same = |a: std::io::Result<socket2::SockAddr>, b: SocketAddr| {
            a.ok().and_then(|a| a.as_socket()) == Some(b)
        };
        if same(sock.local_addr(), self.local) && same(sock.peer_addr(), self.peer) {
            tracing::debug!(peer = %self.peer, "closing a connection idle past its keep-alive and head timeout");
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The decision at the service boundary: which answers announce `Connection: close`. That the
    //! HTTP server then really closes, and the answer still arrives, is end to end
    //! (`tests/api/connections.rs`).

    use actix_web::dev::Payload;
    use actix_web::error::PayloadError;
    use actix_web::http::ConnectionType;
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};
    use bytes::Bytes;
    use futures_util::{Stream, StreamExt, stream};

    type BoxedPayloadStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

    use super::finish_body;
    use crate::http::panic::catch_panic;

    /// A body of `chunks`, then either its end or nothing ever again.
    fn body(chunks: &[&'static [u8]], ends: bool) -> Payload {
        let items: Vec<Result<Bytes, PayloadError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let body = stream::iter(items);
        let payload: BoxedPayloadStream = if ends {
            Box::pin(body)
        } else {
            Box::pin(body.chain(stream::pending()))
        };
        Payload::Stream { payload }
    }

    /// Whether the answer (a response, or a caught panic's error) tells the client to close.
    async fn closes(path: &str, chunks: &[&'static [u8]], ends: bool) -> (u16, bool) {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(catch_panic))
                .wrap(from_fn(finish_body))
                .route(
                    "/refuse",
                    web::put().to(|| async { HttpResponse::Forbidden().finish() }),
                )
                .route(
                    "/panic",
                    web::put().to(|| async {
                        if std::hint::black_box(true) {
                            panic!("deliberate");
                        }
                        HttpResponse::Ok().finish()
                    }),
                ),
        )
        .await;
        let (req, _) = test::TestRequest::put()
            .uri(path)
            .to_request()
            .replace_payload(body(chunks, ends));
        let res = match test::try_call_service(&app, req).await {
            Ok(res) => res.into_parts().1.map_into_boxed_body(),
            Err(e) => e.error_response(),
        };
        (
            res.status().as_u16(),
            res.head().connection_type() == ConnectionType::Close,
        )
    }

    #[actix_web::test]
    async fn an_unread_body_that_ends_promptly_is_drained_and_the_connection_kept() {
        assert_eq!(
            closes("/refuse", &[b"abc", b"def"], true).await,
            (403, false)
        );
        assert_eq!(closes("/panic", &[b"abc"], true).await, (500, false));
    }

    #[actix_web::test]
    async fn an_unread_body_that_stops_coming_closes_the_connection() {
        assert_eq!(closes("/refuse", &[], false).await, (403, true));
        assert_eq!(closes("/refuse", &[b"abc"], false).await, (403, true));
        assert_eq!(
            closes("/panic", &[b"abc"], false).await,
            (500, true),
            "a caught panic's answer too"
        );
    }
}
