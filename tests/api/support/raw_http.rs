//! One raw HTTP/1.1 client over `TcpStream`, for what a client library would normalise or refuse
//! to send: paths byte for byte, duplicate or contradictory headers, lying lengths, bodies that
//! stop, trickle or never end. It writes a hand-written request head and reads one answer (status,
//! headers, body) with deadlines, so a server that never answers fails the test instead of
//! hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a server may take to close a connection it announced `Connection: close` on: the
/// HTTP server lingers up to its client-disconnect timeout (1 s by default) for the client to
/// close first.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// How long one answer may take to arrive in full.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// One HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server closed the connection after this response (checked with [`closes_within`]).
    pub closed: bool,
}

impl RawResponse {
    /// The first header called `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, `Null` when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The problem code of the body, empty when there is none.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `host:port` of a base address such as `http://127.0.0.1:8080`.
fn host(address: &str) -> &str {
    address.trim_start_matches("http://")
}

/// `head` (request line and headers, no final blank line) with `Host` and the blank line added.
fn request_head(address: &str, head: &str) -> String {
    format!("{head}\r\nHost: {}\r\n\r\n", host(address))
}

/// A plain connection to `address`, for requests not even a head can be built for.
pub async fn connect(address: &str) -> TcpStream {
    TcpStream::connect(host(address)).await.unwrap()
}

/// Connects to `address` and sends `head` (request line and headers, no final blank line; Host
/// is added). The body, if any, is the caller's to write: whole, in part, slowly or never.
pub async fn open(address: &str, head: &str) -> TcpStream {
    let mut s = connect(address).await;
    s.write_all(request_head(address, head).as_bytes())
        .await
        .unwrap();
    s
}

/// Sends one more request (`head` as for [`open`], then `body`) on a connection already open, and
/// reads its answer without waiting to see whether the server closes: for keep-alive reuse.
/// `None` when the connection ended before a full response head.
pub async fn send_on(
    stream: &mut TcpStream,
    address: &str,
    head: &str,
    body: &[u8],
) -> Option<RawResponse> {
    // A refused request may be answered before its body is read: the answer is the test.
    let _ = stream
        .write_all(request_head(address, head).as_bytes())
        .await;
    let _ = stream.write_all(body).await;
    read_response(stream, ANSWER_WITHIN).await
}

/// Sends `head` (request line and headers, no final blank line; Host is added) and `body`
/// verbatim, then reads one response and whether the server closes the connection after it.
/// `None` when the connection ended before a full response head.
pub async fn send_verbatim(address: &str, head: &str, body: &[u8]) -> Option<RawResponse> {
    let mut s = connect(address).await;
    // A server refusing the head may close before reading the rest: what it answers is the test.
    let _ = s.write_all(request_head(address, head).as_bytes()).await;
    let _ = s.write_all(body).await;
    let mut resp = read_response(&mut s, ANSWER_WITHIN).await?;
    resp.closed = resp.closed || closes_within(&mut s, CLOSE_WITHIN).await;
    Some(resp)
}

/// Sends `head` and `body` framed by `Content-Length` on a connection the server is asked to
/// close, and returns the status and the body as text (0 and empty when nothing came back).
pub async fn send_framed(address: &str, head: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close",
        body.len()
    );
    match send_verbatim(address, &head, body).await {
        Some(r) => (r.status, r.text()),
        None => (0, String::new()),
    }
}

/// Streams a chunked body produced by `next_chunk` (None = stop without the final chunk) while
/// reading the answer, and stops sending as soon as the answer arrives. Returns the answer and
/// how many body bytes were written.
pub async fn stream_until_answer(
    address: &str,
    head: &str,
    mut next_chunk: impl FnMut(usize) -> Option<bytes::Bytes> + Send + 'static,
    pace: Duration,
) -> (Option<RawResponse>, u64) {
    let s = open(address, &format!("{head}\r\nTransfer-Encoding: chunked")).await;
    let (mut rd, mut wr) = s.into_split();
    let stop = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let stop = stop.clone();
        let release = release.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(chunk) = next_chunk(i) else {
                    break;
                };
                i += 1;
                let frame_head = format!("{:x}\r\n", chunk.len());
                if wr.write_all(frame_head.as_bytes()).await.is_err()
                    || wr.write_all(&chunk).await.is_err()
                    || wr.write_all(b"\r\n").await.is_err()
                {
                    break;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
            // Keep the write half open (no FIN) until released: a stalled, not a finished, client.
            while !release.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drop(wr);
        })
    };
    let mut resp = read_response(&mut rd, Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    if let Some(r) = resp.as_mut() {
        // The writer keeps its half open (no FIN): only the server can end the connection.
        r.closed = r.closed || closes_within(&mut rd, CLOSE_WITHIN).await;
    }
    release.store(true, Ordering::Relaxed);
    let _ = writer.await;
    (resp, sent.load(Ordering::Relaxed))
}

/// Reads one response (head, then a Content-Length or chunked body). `None` when the connection
/// ended before a full response head. `closed` is only set here when the server closed while the
/// body was read; see [`closes_within`].
pub async fn read_response(
    stream: &mut (impl AsyncReadExt + Unpin),
    wait: Duration,
) -> Option<RawResponse> {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut closed = false;
    let complete = |rest: &[u8]| match (len, chunked) {
        (Some(n), _) => rest.len() >= n,
        (None, true) => find(rest, b"0\r\n\r\n").is_some(),
        (None, false) => true,
    };
    while !complete(&rest) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match tokio::time::timeout(left, stream.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => rest.extend_from_slice(&tmp[..n]),
            Err(_) => break,
        }
    }
    let body = match (len, chunked) {
        (Some(n), _) => rest[..n.min(rest.len())].to_vec(),
        (None, true) => dechunk(&rest),
        (None, false) => rest,
    };
    Some(RawResponse {
        status_line,
        status,
        headers,
        body,
        closed,
    })
}

/// Whether the server closes the connection (EOF or reset) within `wait`; bytes read meanwhile
/// are discarded.
pub async fn closes_within(stream: &mut (impl AsyncReadExt + Unpin), wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut tmp = [0u8; 8192];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        match tokio::time::timeout(left, stream.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(data, b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..i]).unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 || data.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&data[i + 2..i + 2 + size]);
        data = &data[(i + 4 + size).min(data.len())..];
    }
    out
}
