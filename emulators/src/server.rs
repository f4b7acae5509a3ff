//! The HTTPS server both emulators run on: an own accept loop, so faults can refuse connections
//! or reset them mid-request; requests under `/_emulator/` go to the shared control API.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::control::{self, ControlApi, FaultControl};
use crate::faults::{FaultAction, StatusFault};
use crate::util::{Body, drain, json};

/// What one emulator adds on top of the shared transport and control API.
pub(crate) trait Service: ControlApi {
    /// Serves a request that is neither a control request nor faulted.
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
    /// Builds (and counts) the answer to a status fault; `body_head` is the start of the request body.
    fn fault_response(
        &self,
        parts: &Parts,
        body_head: &[u8],
        fault: &StatusFault,
    ) -> Response<Body>;
}

/// What the control side asks of the accept loop.
pub(crate) enum Command {
    Refuse {
        duration: Duration,
        ack: oneshot::Sender<()>,
    },
}

struct Shared<S> {
    service: Arc<S>,
    control: Arc<FaultControl>,
}

/// A running server: its control side, and the way to stop it.
pub(crate) struct ServerHandle {
    pub control: Arc<FaultControl>,
    // Dropping the sender stops the accept loop and every connection.
    _shutdown: watch::Sender<bool>,
}

/// Binds 127.0.0.1:`port` (0 = a free port); bound before the service exists so its URL is known.
pub(crate) async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// Serves `service` over TLS on `listener` until the handle is dropped.
pub(crate) fn start<S: Service>(
    listener: TcpListener,
    tls: TlsAcceptor,
    service: Arc<S>,
) -> io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let control = Arc::new(FaultControl::new(addr, commands, service.clone()));
    let shared = Arc::new(Shared {
        service,
        control: control.clone(),
    });
    tokio::spawn(accept_loop(
        listener,
        addr,
        tls,
        shared,
        command_rx,
        shutdown_rx,
    ));
    Ok(ServerHandle {
        control,
        _shutdown: shutdown,
    })
}

async fn accept_loop<S: Service>(
    mut listener: TcpListener,
    addr: SocketAddr,
    tls: TlsAcceptor,
    shared: Arc<Shared<S>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (duration, ack) = loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                cmd = commands.recv() => match cmd {
                    Some(Command::Refuse { duration, ack }) => break (duration, ack),
                    None => return,
                },
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => spawn_connection(tcp, peer, tls.clone(), shared.clone(), shutdown.clone()),
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
            }
        };
        drop(listener);
        shared.control.faults.set_refusing(true);
        let _ = ack.send(());
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(duration) => {}
        }
        listener = match rebind(addr).await {
            Some(l) => l,
            None => return,
        };
        shared.control.faults.set_refusing(false);
    }
}

async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Per-connection control: a duplicate of the socket's descriptor, so a fault can set SO_LINGER 0
/// on a socket that hyper and rustls own, and a signal to drop the connection.
struct ConnCtl {
    fd: Option<OwnedFd>,
    reset: Notify,
}

impl ConnCtl {
    fn reset(&self) {
        if let Some(fd) = &self.fd {
            let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
        }
        self.reset.notify_one();
    }
}

fn spawn_connection<S: Service>(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    shared: Arc<Shared<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let _ = tcp.set_nodelay(true);
        let ctl = Arc::new(ConnCtl {
            fd: tcp.as_fd().try_clone_to_owned().ok(),
            reset: Notify::new(),
        });
        if shared.control.faults.refusing() {
            ctl.reset();
            return;
        }
        let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            _ => return,
        };
        let svc_ctl = ctl.clone();
        let service = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let ctl = svc_ctl.clone();
            async move { Ok::<_, Infallible>(dispatch(shared, req, peer, ctl).await) }
        });
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        let io = TokioIo::new(stream);
        let conn = async move {
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(io, service)
                    .await;
            }
        };
        tokio::select! {
            _ = conn => {}
            _ = ctl.reset.notified() => {}
            _ = shutdown.changed() => {}
        }
    });
}

const CONTROL_PREFIX: &str = "/_emulator";

async fn dispatch<S: Service>(
    shared: Arc<Shared<S>>,
    req: Request<Incoming>,
    peer: SocketAddr,
    ctl: Arc<ConnCtl>,
) -> Response<Body> {
    let path = req.uri().path();
    if path == CONTROL_PREFIX || path.starts_with("/_emulator/") {
        if !peer.ip().is_loopback() {
            return json(
                StatusCode::FORBIDDEN,
                &json!({"error": "the control API answers loopback clients only"}),
            );
        }
        return control::serve(&shared.control, req).await;
    }
    if shared.control.faults.refusing() {
        ctl.reset();
        return std::future::pending().await;
    }
    let decision = shared.control.faults.decide(req.method(), path);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.action {
        Some(FaultAction::Reset) => {
            ctl.reset();
            std::future::pending().await
        }
        Some(FaultAction::Status {
            status,
            retry_after,
            body,
            garbage,
        }) => {
            let (parts, incoming) = req.into_parts();
            let head = drain(incoming, 64 * 1024).await;
            let fault = StatusFault::new(status, retry_after, body, garbage);
            shared.service.fault_response(&parts, &head, &fault)
        }
        _ => shared.service.handle(req).await,
    }
}
