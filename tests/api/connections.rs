//! Connections a client holds open without sending what it announced ("Hardening, round 2",
//! item 2): every answer that leaves the request body unread either drains a small remainder or
//! closes the connection, idle connections last the configured keep-alive, and a healthy client
//! refused with a normal-size body still reads its answer and keeps its connection.

use std::time::{Duration, Instant};

use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators, FaultRule};

use crate::support::raw_http::{
    RawResponse, closes_within, open, read_response, send_on, stream_until_answer,
};
use crate::support::{
    DEMO, GatewayProcess, ME, MEGAN, TestApp, jpeg, sha256_hex, spawn_app, spawn_app_with,
    user_photo,
};

/// A valid token's signature with its last characters changed: well formed, refused.
fn forged(app: &TestApp) -> String {
    let token = app.token(DEMO);
    format!("{}AAAA", &token[..token.len() - 4])
}

/// Asserts an answer with this status and code that announces the connection's end, and that the
/// connection did end.
fn assert_closed_after(resp: &Option<RawResponse>, status: u16, code: &str, what: &str) {
    let r = resp
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no answer could be read"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{what}: {}",
        r.text()
    );
    assert!(r.closed, "{what}: the gateway closes the connection");
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "{what}: {:?}",
        r.headers
    );
}

/// 1,000 clients each announce a chunked photo upload without a token and then send nothing. Each
/// gets its 401 and its connection is closed; the gateway's descriptors and memory return to
/// where they were, and a normal upload is served meanwhile.
#[tokio::test]
async fn a_thousand_announced_bodies_that_never_come_are_closed_and_the_gateway_keeps_serving() {
    const CLIENTS: usize = 1000;
    const WAVE: usize = 100;
    const KEEP_ALIVE_SECS: u64 = 5;
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let gw = GatewayProcess::spawn(
        &emus,
        &[
            ("PHOTO_GATEWAY_LOG_LEVEL", "warn"),
            (
                "PHOTO_GATEWAY_KEEP_ALIVE_SECS",
                &KEEP_ALIVE_SECS.to_string(),
            ),
        ],
    )
    .await;
    let base = gw.base();
    let before = gw.fds();
    let rss_before = gw.status_kib("VmRSS:");
    let bound = Duration::from_secs(KEEP_ALIVE_SECS + 2);
    let head =
        format!("PUT {ME} HTTP/1.1\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked");

    let mut clients = Vec::new();
    let mut peak_fds = before.total;
    // In waves, so the listen backlog never overflows: a dropped SYN would delay the client, not
    // the gateway.
    for _ in 0..CLIENTS / WAVE {
        let opened = futures_util::future::join_all((0..WAVE).map(|_| open(&base, &head))).await;
        let sent = Instant::now();
        for mut s in opened {
            clients.push(tokio::spawn(async move {
                let resp = read_response(&mut s, bound).await;
                let left = bound.saturating_sub(sent.elapsed());
                let closed = match &resp {
                    Some(r) => r.closed || closes_within(&mut s, left).await,
                    None => true,
                };
                (resp, closed, sent.elapsed())
            }));
        }
        peak_fds = peak_fds.max(gw.fds().total);
    }

    let photo = jpeg(30_000, 7);
    let resp = reqwest::Client::new()
        .put(format!("{base}{ME}"))
        .bearer_auth(emus.caller_token(&CallerTokenSpec::for_user(DEMO)))
        .header("content-type", "image/jpeg")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a normal upload is served meanwhile");
    assert!(
        emus.graph
            .requests()
            .iter()
            .any(|r| r.status == 200 && r.sha256 == sha256_hex(&photo)),
        "Graph received the normal upload"
    );

    let mut slowest = Duration::ZERO;
    for (i, c) in clients.into_iter().enumerate() {
        let (resp, closed, took) = c.await.unwrap();
        let r = resp.unwrap_or_else(|| panic!("client {i}: no 401 could be read"));
        assert!(closed, "client {i}: still open {took:?} after its request");
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "missing-token"),
            "client {i}"
        );
        assert_eq!(
            r.header("connection"),
            Some("close"),
            "client {i}: {:?}",
            r.headers
        );
        slowest = slowest.max(took);
    }
    assert!(slowest <= bound, "closed within {bound:?}: {slowest:?}");
    assert!(
        peak_fds <= before.total + CLIENTS + 32,
        "one descriptor per connection at most: {peak_fds} (from {})",
        before.total
    );
    let settled = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let now = gw.fds();
        if now.without_upstream() <= before.without_upstream() + 2 || Instant::now() > settled {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after.accepted, 0, "no connection left: {after:?}");
    assert!(
        after.without_upstream() <= before.without_upstream() + 2,
        "descriptors back to where they were: {before:?} → {after:?}"
    );
    let grew_kib = gw.status_kib("VmHWM:").saturating_sub(rss_before);
    assert!(
        grew_kib < 64 * 1024,
        "peak RSS grew {grew_kib} KiB for {CLIENTS} connections"
    );
    eprintln!(
        "{CLIENTS} connections: slowest closed after {slowest:?}; fds {before:?} → peak {peak_fds} → {after:?}; RSS {rss_before} KiB, peak +{grew_kib} KiB"
    );
}

/// Refusals that leave the body unread, each over a connection whose client keeps it open: a 403
/// whose body never comes, a 413 announced by its Content-Length, a 413 streamed past the limit,
/// and a 415 streamed at full speed. Each answer is read in full and the connection then closed.
#[tokio::test]
async fn refusals_that_stop_reading_the_body_answer_and_close_the_connection() {
    let app = spawn_app().await;
    let auth_as = |token: &str, path: &str, content_type: &str| {
        format!(
            "PUT {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}"
        )
    };
    let token = app.token(DEMO);
    let auth = |path: &str, content_type: &str| auth_as(&token, path, content_type);
    let chunk = bytes::Bytes::from(jpeg(64 * 1024, 4));
    // 32 MiB at full speed, far more than the gateway drains.
    let endless = move |c: bytes::Bytes| move |i: usize| (i < 512).then(|| c.clone());

    // Another user's photo needs a grant this app lacks: 403 before a byte of the body is wanted.
    let stranger =
        app.token_with(CallerTokenSpec::for_user(DEMO).app("99999999-0000-0000-0000-000000000000"));
    let (resp, _) = stream_until_answer(
        &app.address,
        &auth_as(&stranger, &user_photo(MEGAN), "image/jpeg"),
        |_| None,
        Duration::ZERO,
    )
    .await;
    assert_closed_after(&resp, 403, "caller-not-allowed", "403, body never sent");

    // Declared over the limit: refused on the header alone.
    let head = format!("{}\r\nContent-Length: 10000000", auth(ME, "image/jpeg"));
    let mut s = open(&app.address, &head).await;
    let mut resp = read_response(&mut s, Duration::from_secs(15)).await;
    if let Some(r) = resp.as_mut() {
        r.closed = r.closed || closes_within(&mut s, Duration::from_secs(5)).await;
    }
    assert_closed_after(&resp, 413, "photo-too-large", "413 on Content-Length");

    // Streamed past the limit, and on.
    let (resp, sent) = stream_until_answer(
        &app.address,
        &auth(ME, "image/jpeg"),
        endless(chunk.clone()),
        Duration::ZERO,
    )
    .await;
    assert_closed_after(&resp, 413, "photo-too-large", "413 while streaming");
    assert!(
        sent < 512 * 64 * 1024,
        "answered before the client finished"
    );

    // Not a photo type: refused before reading, the body keeps coming at full speed.
    let (resp, _) = stream_until_answer(
        &app.address,
        &auth(ME, "text/plain"),
        endless(chunk),
        Duration::ZERO,
    )
    .await;
    assert_closed_after(&resp, 415, "unsupported-media-type", "415 while streaming");

    assert!(
        app.emus.graph.requests().is_empty(),
        "nothing reached Graph"
    );
    app.assert_still_serving().await;
}

/// A healthy client whose token is refused, with a body of ordinary size: it reads its 401 in
/// full, and the connection stays usable for its next request (the body was read, so nothing
/// forces a close that could reset the answer away).
#[tokio::test]
async fn a_refused_token_with_a_normal_body_gets_a_readable_401_on_a_reusable_connection() {
    let app = spawn_app().await;
    let body = jpeg(100_000, 5);
    for (what, framing, wire) in [
        (
            "Content-Length",
            format!("Content-Length: {}", body.len()),
            body.clone(),
        ),
        ("chunked", "Transfer-Encoding: chunked".to_owned(), {
            let mut w = Vec::new();
            for c in body.chunks(16 * 1024) {
                w.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                w.extend_from_slice(c);
                w.extend_from_slice(b"\r\n");
            }
            w.extend_from_slice(b"0\r\n\r\n");
            w
        }),
    ] {
        let refused = format!(
            "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: image/jpeg\r\n{framing}",
            forged(&app)
        );
        let mut s = crate::support::raw_http::connect(&app.address).await;
        let r = send_on(&mut s, &app.address, &refused, &wire)
            .await
            .unwrap_or_else(|| panic!("{what}: the 401 could not be read"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "invalid-token"),
            "{what}"
        );
        assert!(r.header("www-authenticate").is_some(), "{what}");
        assert_ne!(
            r.header("connection"),
            Some("close"),
            "{what}: the connection is kept: {:?}",
            r.headers
        );

        let photo = jpeg(20_000, 6);
        let valid = format!(
            "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: image/jpeg\r\nContent-Length: {}",
            app.token(DEMO),
            photo.len()
        );
        let r = send_on(&mut s, &app.address, &valid, &photo)
            .await
            .unwrap_or_else(|| panic!("{what}: the connection was not kept after the 401"));
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.json()["sha256"], sha256_hex(&photo), "{what}");
    }
    let seen = app.emus.graph.requests();
    assert_eq!(seen.len(), 2, "only the valid uploads reached Graph");
}

/// An idle connection lasts the configured keep-alive, then the gateway closes it; a request head
/// that does not arrive in full is answered by the configured head timeout.
#[tokio::test]
async fn idle_connections_and_stalled_heads_last_as_configured() {
    let app = spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_KEEP_ALIVE_SECS".into(), "1".into()));
        v.push(("PHOTO_GATEWAY_REQUEST_HEAD_TIMEOUT_SECS".into(), "1".into()));
    })
    .await;
    let mut s = open(&app.address, "GET /healthz HTTP/1.1").await;
    let r = read_response(&mut s, Duration::from_secs(15))
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    assert!(
        !closes_within(&mut s, Duration::from_millis(300)).await,
        "kept alive for a while"
    );
    assert!(
        closes_within(&mut s, Duration::from_secs(3)).await,
        "closed after the keep-alive"
    );

    let mut s = crate::support::raw_http::connect(&app.address).await;
    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /healthz HTTP/1.1\r\nHos")
        .await
        .unwrap();
    let r = read_response(&mut s, Duration::from_secs(3)).await;
    assert_eq!(
        r.map(|r| r.status),
        Some(408),
        "the head timeout's bare 408"
    );
    assert!(closes_within(&mut s, Duration::from_secs(3)).await);
}

/// The HTTP server times only a connection's first request head: a later head that stops half way
/// would hold the connection forever. The gateway shuts a connection with no request in flight for
/// longer than its keep-alive, head timeout and linger together (3 s here); a request in flight
/// for longer than that is left alone.
#[tokio::test]
async fn a_later_request_head_that_stalls_is_closed_but_a_slow_request_is_not() {
    let app = spawn_app_with(|v| {
        v.push(("PHOTO_GATEWAY_KEEP_ALIVE_SECS".into(), "1".into()));
        v.push(("PHOTO_GATEWAY_REQUEST_HEAD_TIMEOUT_SECS".into(), "1".into()));
    })
    .await;
    app.emus
        .graph
        .add_fault(FaultRule::latency(Duration::from_secs(5)).method("PUT"));
    let photo = jpeg(10_000, 3);
    let upload = format!(
        "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: image/jpeg\r\nContent-Length: {}",
        app.token(DEMO),
        photo.len()
    );
    let mut s = crate::support::raw_http::connect(&app.address).await;
    let r = send_on(&mut s, &app.address, &upload, &photo)
        .await
        .expect("the slow upload is answered");
    assert_eq!(r.status, 200, "{}", r.text());

    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /hea")
        .await
        .unwrap();
    assert!(
        closes_within(&mut s, Duration::from_secs(10)).await,
        "a stalled second head does not hold the connection"
    );
}

/// A connection that carried a body over `CLOSE_AFTER_BODY_BYTES` (1 MiB) is closed after its
/// answer, which frees the read buffer the HTTP server would otherwise keep at its high-water mark
/// while the connection idles; a smaller photo keeps its connection for the next request.
#[tokio::test]
async fn a_connection_that_carried_a_large_photo_is_closed_after_its_answer() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let put = |photo: &[u8]| {
        format!(
            "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\nContent-Length: {}",
            photo.len()
        )
    };
    let mut s = crate::support::raw_http::connect(&app.address).await;
    let small = jpeg(900_000, 1);
    let r = send_on(&mut s, &app.address, &put(&small), &small)
        .await
        .expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.header("connection"), Some("close"), "{:?}", r.headers);

    let large = jpeg(1_200_000, 2);
    let r = send_on(&mut s, &app.address, &put(&large), &large)
        .await
        .expect("the connection was kept after the smaller photo");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    assert!(
        closes_within(&mut s, Duration::from_secs(5)).await,
        "the gateway closed the connection after the large photo"
    );
}

/// With `CLOSE_AFTER_BODY_BYTES=0` even a large photo keeps its connection.
#[tokio::test]
async fn closing_after_a_large_photo_can_be_switched_off() {
    let app =
        spawn_app_with(|v| v.push(("PHOTO_GATEWAY_CLOSE_AFTER_BODY_BYTES".into(), "0".into())))
            .await;
    let large = jpeg(1_200_000, 3);
    let head = format!(
        "PUT {ME} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: image/jpeg\r\nContent-Length: {}",
        app.token(DEMO),
        large.len()
    );
    let mut s = crate::support::raw_http::connect(&app.address).await;
    for _ in 0..2 {
        let r = send_on(&mut s, &app.address, &head, &large)
            .await
            .expect("the connection was kept");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_ne!(r.header("connection"), Some("close"), "{:?}", r.headers);
    }
}
