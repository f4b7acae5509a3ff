//! Hostile request bodies and connections (issue 5, "Request attacks"): broken multipart forms,
//! bodies that end early or lie about their length, oversized chunked bodies, slow and stalled
//! clients, huge headers, and memory under many oversized uploads at once. Each gets a specific
//! 4xx, nothing reaches Graph, and the gateway keeps serving. Raw TCP is used wherever a client
//! library would normalise what is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::raw_http::{
    CLOSE_WITHIN, RawResponse, closes_within, connect, open, read_response, send_verbatim,
    stream_until_answer,
};
use crate::support::{
    DEMO, ME, MULTIPART_BOUNDARY, PHOTO_LIMIT, Part, TestApp, jpeg, multipart_body, spawn_app,
    spawn_app_with,
};

const BOUNDARY: &str = "----attack-boundary-5c1f";

fn auth_head(app: &TestApp, content_type: &str) -> String {
    format!(
        "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}",
        app.token(DEMO)
    )
}

/// Asserts a problem answer with this status and code, and returns its body.
fn assert_problem(resp: &Option<RawResponse>, status: u16, code: &str, what: &str) -> Value {
    let r = resp
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no answer, the connection just ended"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    r.json()
}

fn graph_writes(app: &TestApp) -> usize {
    app.emus.graph.requests().len()
}

/// A multipart body built by hand: `parts` are raw part texts (headers, blank line, content).
fn raw_multipart(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn photo_part(headers: &str, content: &[u8]) -> Vec<u8> {
    let mut p = headers.as_bytes().to_vec();
    p.extend_from_slice(b"\r\n\r\n");
    p.extend_from_slice(content);
    p
}

const PHOTO_HEADERS: &str = "Content-Disposition: form-data; name=\"photo\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg";

fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

#[tokio::test]
async fn multipart_without_a_usable_boundary_is_400_invalid_body() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let body = raw_multipart(&[photo_part(PHOTO_HEADERS, &jpeg(500, 1))]);
    for (what, ct) in [
        ("no boundary parameter", "multipart/form-data".to_owned()),
        (
            "empty boundary",
            "multipart/form-data; boundary=".to_owned(),
        ),
        (
            "empty quoted boundary",
            "multipart/form-data; boundary=\"\"".to_owned(),
        ),
        (
            "wrong boundary",
            "multipart/form-data; boundary=not-the-one-in-the-body".to_owned(),
        ),
        (
            "boundary that is a prefix of the real one",
            format!("multipart/form-data; boundary={}", &BOUNDARY[..10]),
        ),
        (
            "boundary parameter twice",
            format!("multipart/form-data; boundary=other; boundary={BOUNDARY}"),
        ),
    ] {
        let resp = app
            .send_raw("PUT", ME, Some(&token), body.clone(), &ct)
            .await;
        let (status, _, problem) = TestApp::problem(resp).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid-body")),
            "{what}: {problem}"
        );
    }
    assert_eq!(graph_writes(&app), 0, "nothing reached Graph");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn many_parts_nesting_and_empty_parts_are_400_invalid_body() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let photo = jpeg(500, 1);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // Many parts: 1000 small non-photo fields before the photo, and 1000 photo parts.
    let mut many = Vec::new();
    for i in 0..1000 {
        many.push(photo_part(
            &format!("Content-Disposition: form-data; name=\"f{i}\""),
            b"x",
        ));
    }
    many.push(photo_part(PHOTO_HEADERS, &photo));
    cases.push(("1000 fields, then the photo", raw_multipart(&many)));
    let photos: Vec<Vec<u8>> = (0..1000)
        .map(|_| photo_part(PHOTO_HEADERS, &photo))
        .collect();
    cases.push(("1000 photo parts", raw_multipart(&photos)));

    // Nesting: the photo part is itself a multipart/mixed holding the JPEG.
    let inner = "inner-boundary-77";
    let mut nested = format!(
        "Content-Disposition: form-data; name=\"photo\"\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n--{inner}\r\nContent-Disposition: file; filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    nested.extend_from_slice(&photo);
    nested.extend_from_slice(format!("\r\n--{inner}--").as_bytes());
    cases.push((
        "multipart/mixed nested in the photo part",
        raw_multipart(&[nested]),
    ));

    // Empty parts.
    cases.push((
        "an empty photo part",
        raw_multipart(&[photo_part(PHOTO_HEADERS, b"")]),
    ));
    cases.push((
        "a part with no headers at all",
        raw_multipart(&[photo_part("", &photo)]),
    ));
    cases.push((
        "a part without a name",
        raw_multipart(&[photo_part(
            "Content-Disposition: form-data; filename=\"me.jpg\"",
            &photo,
        )]),
    ));
    cases.push((
        "a part that is not form-data",
        raw_multipart(&[photo_part(
            "Content-Disposition: attachment; name=\"photo\"; filename=\"me.jpg\"",
            &photo,
        )]),
    ));
    cases.push((
        "only the closing boundary",
        format!("--{BOUNDARY}--\r\n").into_bytes(),
    ));
    cases.push(("an empty body", Vec::new()));
    cases.push(("no closing boundary", {
        let mut b = format!("--{BOUNDARY}\r\n{PHOTO_HEADERS}\r\n\r\n").into_bytes();
        b.extend_from_slice(&photo);
        b
    }));

    for (what, body) in cases {
        let resp = app
            .send_raw("PUT", ME, Some(&token), body, &form_type())
            .await;
        let (status, _, problem) = TestApp::problem(resp).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid-body")),
            "{what}: {problem}"
        );
    }

    // A top-level multipart/mixed is not a form at all: 415, like any other unsupported type.
    let (_, form) = multipart_body(&[("photo", Some("me.jpg"), &photo)]);
    let resp = app
        .send_raw(
            "PUT",
            ME,
            Some(&token),
            form,
            &format!("multipart/mixed; boundary={MULTIPART_BOUNDARY}"),
        )
        .await;
    let (status, _, problem) = TestApp::problem(resp).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (415, Some("unsupported-media-type")),
        "multipart/mixed at the top: {problem}"
    );

    assert_eq!(graph_writes(&app), 0, "nothing reached Graph");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn part_headers_over_the_limit_are_400_invalid_body() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let photo = jpeg(500, 1);

    // More header lines than a part may have.
    let mut many = String::from(PHOTO_HEADERS);
    for i in 0..64 {
        many.push_str(&format!("\r\nX-Filler-{i}: {i}"));
    }
    let resp = app
        .send_raw(
            "PUT",
            ME,
            Some(&token),
            raw_multipart(&[photo_part(&many, &photo)]),
            &form_type(),
        )
        .await;
    let (status, _, problem) = TestApp::problem(resp).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-body")),
        "64 extra header lines in the part: {problem}"
    );

    // One part header line of 64 KiB: far beyond any real part header (the HTTP server itself
    // refuses request heads over its buffer), so it must not be accepted as a photo part.
    let long = format!(
        "Content-Disposition: form-data; name=\"photo\"; filename=\"{}.jpg\"\r\nContent-Type: image/jpeg",
        "a".repeat(64 * 1024)
    );
    let resp = app
        .send_raw(
            "PUT",
            ME,
            Some(&token),
            raw_multipart(&[photo_part(&long, &photo)]),
            &form_type(),
        )
        .await;
    let (status, _, problem) = TestApp::problem(resp).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-body")),
        "a 64 KiB part header: {problem}"
    );

    assert_eq!(graph_writes(&app), 0, "nothing reached Graph");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn filenames_with_path_characters_are_never_used() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let names = [
        "../../../../etc/passwd.jpg",
        "..\\..\\Windows\\System32\\me.jpg",
        "/absolute/path/me.jpg",
        "C:\\me.jpg",
        "%2e%2e%2fme.jpg",
        "me.jpg/../../x",
        "users/megan.bowen@contoso.onmicrosoft.com/photo/$value",
    ];
    for (i, name) in names.iter().enumerate() {
        let photo = jpeg(600 + i, i as u8);
        let parts: [Part<'_>; 1] = [("photo", Some(name), &photo)];
        let (ct, body) = multipart_body(&parts);
        let resp = app.send_raw("PUT", ME, Some(&token), body, &ct).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{name}: the filename is ignored: {text}");
        let receipt: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(receipt["target"], "/me/photo/$value", "{name}");
        assert_eq!(receipt["bytes"], photo.len(), "{name}");
        assert!(
            !text.contains(name) && !text.contains("passwd") && !text.contains("System32"),
            "{name}: the filename is not echoed: {text}"
        );
        let seen = app.emus.graph.requests();
        let last = seen.last().expect("Graph got the photo");
        assert_eq!(
            last.path.to_ascii_lowercase(),
            "/v1.0/me/photo/$value",
            "{name}"
        );
        assert_eq!(last.bytes, photo.len(), "{name}");
    }
    // A filename with a CR LF header injection makes the part header malformed.
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\r\nX-Injected: 1\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&jpeg(500, 1));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let resp = app
        .send_raw("PUT", ME, Some(&token), body, &form_type())
        .await;
    let status = resp.status().as_u16();
    assert!(
        status == 200 || status == 400,
        "CR LF in a filename: 200 (ignored) or 400, got {status}"
    );
    assert_eq!(
        app.emus
            .graph
            .requests()
            .iter()
            .filter(|r| !r.path.eq_ignore_ascii_case("/v1.0/me/photo/$value"))
            .count(),
        0,
        "no filename ever became a Graph path"
    );
}

#[tokio::test]
async fn a_body_that_ends_early_is_never_forwarded() {
    let app = spawn_app().await;
    for (what, ct, declared, sent) in [
        (
            "raw",
            "image/jpeg".to_owned(),
            50_000usize,
            jpeg(50_000, 2)[..10_000].to_vec(),
        ),
        ("multipart", form_type(), 50_000, {
            let b = raw_multipart(&[photo_part(PHOTO_HEADERS, &jpeg(49_000, 2))]);
            b[..b.len() / 2].to_vec()
        }),
    ] {
        let head = format!("{}\r\nContent-Length: {declared}", auth_head(&app, &ct));
        let mut s = open(&app.address, &head).await;
        s.write_all(&sent).await.unwrap();
        // The client gives up: no more bytes will ever come.
        s.shutdown().await.unwrap();
        let resp = read_response(&mut s, Duration::from_secs(15)).await;
        match &resp {
            None => {} // the server just closed the connection: acceptable
            Some(r) => {
                assert_eq!(
                    (r.status, r.code().as_str()),
                    (400, "invalid-body"),
                    "{what}: {}",
                    String::from_utf8_lossy(&r.body)
                );
            }
        }
    }
    assert_eq!(
        graph_writes(&app),
        0,
        "a truncated body never reaches Graph"
    );
    app.assert_still_serving().await;
}

#[tokio::test]
async fn lying_content_lengths_are_refused() {
    let app = spawn_app().await;
    let photo = jpeg(5_000, 3);

    // Declared shorter than the multipart form: the form is cut short → 400 invalid-body.
    let form = raw_multipart(&[photo_part(PHOTO_HEADERS, &photo)]);
    let head = format!(
        "{}\r\nContent-Length: {}\r\nConnection: close",
        auth_head(&app, &form_type()),
        form.len() / 2
    );
    let resp = send_verbatim(&app.address, &head, &form).await;
    assert_problem(&resp, 400, "invalid-body", "Content-Length half the form");

    // Request smuggling shapes the HTTP server refuses before any gateway code (bare 400).
    for (what, framing) in [
        (
            "two different Content-Lengths",
            format!("Content-Length: {}\r\nContent-Length: 10", photo.len()),
        ),
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked",
                photo.len()
            ),
        ),
        (
            "a signed Content-Length",
            format!("Content-Length: +{}", photo.len()),
        ),
        ("a negative Content-Length", "Content-Length: -1".to_owned()),
        (
            "a non-numeric Content-Length",
            "Content-Length: lots".to_owned(),
        ),
        (
            "Transfer-Encoding other than chunked",
            "Transfer-Encoding: gzip, identity".to_owned(),
        ),
    ] {
        let head = format!(
            "{}\r\n{framing}\r\nConnection: close",
            auth_head(&app, "image/jpeg")
        );
        let resp = send_verbatim(&app.address, &head, &photo).await;
        let r = resp.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert!(
            r.body.is_empty(),
            "{what}: the HTTP server's own bare 400 (no problem body)"
        );
        assert!(
            r.closed,
            "{what}: the connection is closed after a framing error"
        );
    }

    // Declared shorter than a raw body: exactly the declared bytes are the photo (HTTP framing),
    // and the rest is read as the next request, which is malformed → the server's bare 400.
    let declared = 2_000;
    let head = format!(
        "{}\r\nContent-Length: {declared}",
        auth_head(&app, "image/jpeg")
    );
    let mut sent = jpeg(declared, 3);
    sent.extend_from_slice(&photo[declared..]);
    let mut s = open(&app.address, &head).await;
    s.write_all(&sent).await.unwrap();
    let first = read_response(&mut s, Duration::from_secs(15)).await;
    let first = first.expect("an answer to the first request");
    assert_eq!(
        first.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.json()["bytes"], declared, "only the declared bytes");
    assert_eq!(app.emus.graph.requests().last().unwrap().bytes, declared);
    let writes = graph_writes(&app);
    let second = read_response(&mut s, Duration::from_secs(15)).await;
    if let Some(second) = second {
        assert_eq!(second.status, 400, "the leftover bytes are not a request");
    }
    assert_eq!(
        graph_writes(&app),
        writes,
        "the leftover bytes never reach Graph"
    );
    app.assert_still_serving().await;
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_are_413() {
    let app = spawn_app().await;
    let chunk = bytes::Bytes::from(jpeg(64 * 1024, 4));
    let mut first = chunk.to_vec();
    first[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    let first = bytes::Bytes::from(first);

    // Raw: at most 16 MiB offered; the answer must come long before.
    let (f, c) = (first.clone(), chunk.clone());
    let (resp, sent) = stream_until_answer(
        &app.address,
        &auth_head(&app, "image/jpeg"),
        move |i| match i {
            0 => Some(f.clone()),
            i if i < 256 => Some(c.clone()),
            _ => None,
        },
        Duration::ZERO,
    )
    .await;
    assert_problem(&resp, 413, "photo-too-large", "chunked raw over the limit");
    assert!(
        sent >= PHOTO_LIMIT as u64,
        "answered after the limit was passed"
    );

    // Multipart: a photo part that never ends.
    let mut head_part = format!("--{BOUNDARY}\r\n{PHOTO_HEADERS}\r\n\r\n").into_bytes();
    head_part.extend_from_slice(&first);
    let head_part = bytes::Bytes::from(head_part);
    let c = chunk.clone();
    let (resp, _) = stream_until_answer(
        &app.address,
        &auth_head(&app, &form_type()),
        move |i| match i {
            0 => Some(head_part.clone()),
            i if i < 256 => Some(c.clone()),
            _ => None,
        },
        Duration::ZERO,
    )
    .await;
    assert_problem(
        &resp,
        413,
        "photo-too-large",
        "chunked multipart over the limit",
    );

    assert_eq!(graph_writes(&app), 0, "nothing reached Graph");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn a_slow_body_gets_408_body_timeout_and_the_connection_is_closed() {
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_BODY_READ_TIMEOUT_SECS".into(), "1".into())))
            .await;
    let photo = jpeg(20_000, 6);

    // A trickle: 100 bytes every 200 ms, declared length 20 000 (would take 40 s).
    let started = Instant::now();
    let data = bytes::Bytes::from(photo.clone());
    let (resp, _) = stream_until_answer(
        &app.address,
        &auth_head(&app, "image/jpeg"),
        move |i| {
            let at = i * 100;
            (at < data.len()).then(|| data.slice(at..(at + 100).min(data.len())))
        },
        Duration::from_millis(200),
    )
    .await;
    let elapsed = started.elapsed();
    let body = assert_problem(&resp, 408, "body-timeout", "slow chunked body");
    let r = resp.unwrap();
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(r.closed, "the server closes the connection after a 408");
    assert!(
        elapsed >= Duration::from_secs(1),
        "not before the read deadline: {elapsed:?}"
    );
    assert!(body["detail"].as_str().unwrap().contains('1'), "{body}");

    // The same with a Content-Length and a multipart form.
    let form = raw_multipart(&[photo_part(PHOTO_HEADERS, &photo)]);
    let head = format!(
        "{}\r\nContent-Length: {}",
        auth_head(&app, &form_type()),
        form.len()
    );
    let (mut rd, mut wr) = open(&app.address, &head).await.into_split();
    let trickle = tokio::spawn(async move {
        for piece in form.chunks(100) {
            if wr.write_all(piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let resp = read_response(&mut rd, Duration::from_secs(15)).await;
    let closed = closes_within(&mut rd, CLOSE_WITHIN).await;
    trickle.abort();
    assert_problem(&resp, 408, "body-timeout", "slow multipart body");
    let mut r = resp.unwrap();
    r.closed = r.closed || closed;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.closed);

    assert_eq!(graph_writes(&app), 0, "nothing reached Graph");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn a_stalled_client_gets_408_and_a_stalled_head_the_servers_bare_408() {
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_BODY_READ_TIMEOUT_SECS".into(), "1".into())))
            .await;

    // Head complete, 1 000 of 100 000 declared bytes, then silence (the connection stays open).
    let head = format!(
        "{}\r\nContent-Length: 100000",
        auth_head(&app, "image/jpeg")
    );
    let mut s = open(&app.address, &head).await;
    s.write_all(&jpeg(100_000, 1)[..1000]).await.unwrap();
    let resp = read_response(&mut s, Duration::from_secs(15)).await;
    let closed = closes_within(&mut s, CLOSE_WITHIN).await;
    assert_problem(&resp, 408, "body-timeout", "stalled body");
    let mut r = resp.unwrap();
    r.closed = r.closed || closed;
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.closed, "the stalled connection is closed");

    // Half a request head, then silence: the HTTP server's own head timeout (bare 408, 5 s).
    let mut s = connect(&app.address).await;
    s.write_all(format!("PUT {ME} HTTP/1.1\r\nHost: x\r\nAuthoriz").as_bytes())
        .await
        .unwrap();
    let resp = read_response(&mut s, Duration::from_secs(15)).await;
    if let Some(r) = &resp {
        assert_eq!(r.status, 408, "{r:?}");
        assert!(r.body.is_empty(), "the server's bare answer: {r:?}");
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the stalled head's connection is closed");

    assert_eq!(graph_writes(&app), 0);
    app.assert_still_serving().await;
}

#[tokio::test]
async fn huge_headers_get_the_servers_bare_431_or_400() {
    let app = spawn_app().await;
    let photo = jpeg(300, 1);

    // One header of 200 KiB: over the HTTP server's 128 KiB head buffer → bare 431.
    let head = format!(
        "{}\r\nX-Big: {}\r\nContent-Length: {}\r\nConnection: close",
        auth_head(&app, "image/jpeg"),
        "a".repeat(200 * 1024),
        photo.len()
    );
    let r = send_verbatim(&app.address, &head, &photo)
        .await
        .expect("an answer to a 200 KiB header");
    assert_eq!(r.status, 431, "{r:?}");
    assert!(r.body.is_empty(), "bare: {r:?}");

    // A 200 KiB Authorization header: the same, the token never parsed.
    let head = format!(
        "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nConnection: close",
        "a".repeat(200 * 1024),
        photo.len()
    );
    let r = send_verbatim(&app.address, &head, &photo)
        .await
        .expect("an answer");
    assert_eq!(r.status, 431, "{r:?}");

    // More header lines than the server parses (96) → bare 431 as well.
    let mut many = auth_head(&app, "image/jpeg");
    for i in 0..120 {
        many.push_str(&format!("\r\nX-H{i}: {i}"));
    }
    many.push_str(&format!(
        "\r\nContent-Length: {}\r\nConnection: close",
        photo.len()
    ));
    let r = send_verbatim(&app.address, &many, &photo)
        .await
        .expect("an answer");
    assert_eq!(r.status, 431, "{r:?}");
    assert!(r.body.is_empty(), "bare: {r:?}");

    // A header value with a bare LF / NUL → bare 400.
    let head = format!(
        "{}\r\nX-Evil: a\u{0}b\r\nContent-Length: {}\r\nConnection: close",
        auth_head(&app, "image/jpeg"),
        photo.len()
    );
    let r = send_verbatim(&app.address, &head, &photo)
        .await
        .expect("an answer");
    assert_eq!(r.status, 400, "NUL in a header: {r:?}");

    assert_eq!(graph_writes(&app), 0);
    assert_eq!(app.emus.entra.counters().token_requests, 0);
    app.assert_still_serving().await;
}

/// Resident set size of this process (the gateway runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Samples the RSS every few milliseconds until dropped; `peak()` is the highest seen.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss()));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

const MIB: u64 = 1024 * 1024;

/// Offers `n` concurrent chunked uploads of `each` bytes made by `chunks`, and returns the peak
/// RSS growth and the answers.
async fn concurrent_offer(
    app: &TestApp,
    n: usize,
    content_type: &str,
    chunks: impl Fn(usize) -> Option<bytes::Bytes> + Clone + Send + 'static,
) -> (u64, Vec<Option<RawResponse>>) {
    let base = rss();
    let sampler = RssSampler::start();
    let head = auth_head(app, content_type);
    let calls = (0..n).map(|_| {
        let chunks = chunks.clone();
        let head = head.clone();
        async move {
            stream_until_answer(&app.address, &head, chunks, Duration::ZERO)
                .await
                .0
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    let peak = sampler.peak();
    (peak.saturating_sub(base), answers)
}

#[tokio::test]
async fn memory_stays_bounded_under_many_oversized_uploads() {
    let app = spawn_app().await;
    let n = 20;
    let each: u64 = 32 * MIB;
    let chunk = bytes::Bytes::from(jpeg(256 * 1024, 8));
    let per = each / chunk.len() as u64;

    // 20 × 32 MiB raw chunked bodies (640 MiB offered, never materialised by the client).
    let c = chunk.clone();
    let (growth, answers) = concurrent_offer(&app, n, "image/jpeg", move |i| {
        ((i as u64) < per).then(|| c.clone())
    })
    .await;
    let budget = n as u64 * PHOTO_LIMIT as u64 * 3 / 2 + 64 * MIB;
    assert!(
        growth < budget,
        "RSS grew by {} MiB for {n} oversized uploads ({} MiB offered); bound {} MiB",
        growth / MIB,
        n as u64 * each / MIB,
        budget / MIB
    );
    for r in answers.iter().flatten() {
        assert!(
            matches!(r.status, 413 | 503 | 429),
            "413 (or a shed 503/429), got {r:?}"
        );
    }
    assert!(
        answers.iter().flatten().any(|r| r.status == 413),
        "at least some uploads got their 413"
    );

    // 8 × 32 MiB multipart bodies whose part header never ends: the header is not the photo,
    // so the photo limit never trips; the part header itself must be bounded.
    let n = 8;
    let mut start =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"")
            .into_bytes();
    start.extend(std::iter::repeat_n(b'a', 256 * 1024 - start.len()));
    let start = bytes::Bytes::from(start);
    let filler = bytes::Bytes::from(vec![b'a'; 256 * 1024]);
    let (growth, answers) = concurrent_offer(&app, n, &form_type(), move |i| {
        ((i as u64) < per).then(|| {
            if i == 0 {
                start.clone()
            } else {
                filler.clone()
            }
        })
    })
    .await;
    let budget = n as u64 * PHOTO_LIMIT as u64 * 3 / 2 + 64 * MIB;
    assert!(
        growth < budget,
        "RSS grew by {} MiB for {n} multipart bodies with an endless part header ({} MiB offered); bound {} MiB",
        growth / MIB,
        n as u64 * each / MIB,
        budget / MIB
    );
    for r in answers.iter().flatten() {
        assert!(
            matches!(
                (r.status, r.code().as_str()),
                (400, "invalid-body") | (413, "photo-too-large")
            ),
            "an endless part header gets 400 invalid-body or 413, got {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }

    assert_eq!(graph_writes(&app), 0, "nothing reached Graph");
    app.assert_still_serving().await;
}
