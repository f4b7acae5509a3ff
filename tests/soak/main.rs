//! A bounded soak ("Hardening, round 2", item 10): the real binary, 200 client connections, one
//! minute of mixed traffic — valid uploads (raw and multipart, over kept-alive connections),
//! forged tokens, announced bodies that never come, slow, stalled and aborted bodies, bodies
//! declared or streamed over the limit, and non-JPEG bodies. Afterwards: no 5xx but the errors
//! table's `overloaded`, every upload that got 200 is in the Graph emulator, the descriptors are
//! back where they started, and the memory after the load is at most its peak in the load's first
//! 10 s plus 32 MiB.
//!
//! Its own test binary: a minute of two hundred connections would skew the timing of the
//! end-to-end tests running beside it, and they its numbers. `cargo test --locked` runs it after
//! them. `--nocapture` shows its numbers.

#[allow(dead_code, unused_imports)]
#[path = "../api/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::raw_http::{
    RawResponse, closes_within, connect, open, read_response, send_on, stream_until_answer,
};
use support::{GatewayProcess, ME, jpeg, multipart_body, sha256_hex};

const CONNECTIONS: usize = 200;
const LOAD: Duration = Duration::from_secs(60);
/// Callers (and mailboxes): enough that most valid uploads pass the per-caller and per-mailbox
/// limits, which stay at their defaults.
const USERS: usize = 40;
const BODY_READ_TIMEOUT_SECS: u64 = 5;
const MIB: u64 = 1024 * 1024;

/// What a connection's client does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A valid upload on the client's kept-alive connection.
    Upload,
    /// A refused token with an ordinary body, on the kept-alive connection.
    Forged,
    /// A chunked body announced without a token, then nothing.
    NeverSent,
    /// A valid upload trickled within the read deadline.
    Slow,
    /// Half a body, then silence past the read deadline.
    Stalled,
    /// Part of a body, then the client goes away.
    Aborted,
    /// A body declared over the limit.
    Oversize,
    /// A chunked body streamed on past the limit, which the gateway reads up to the limit.
    Streamed,
    /// Bytes that are not a JPEG.
    NotJpeg,
}

/// Clients that stream bodies past the limit, and nothing else. The gateway holds up to the limit
/// of each before refusing it: a few steady streams from the start, rather than a random number of
/// them at random times, keep the memory the load needs the same throughout, so a later rise is
/// growth and not the luck of the draw.
const STREAMERS: usize = 4;

/// Share of each kind for the other clients, in percent.
const MIX: [(Kind, u32); 8] = [
    (Kind::Upload, 40),
    (Kind::Forged, 20),
    (Kind::NeverSent, 5),
    (Kind::Slow, 10),
    (Kind::Stalled, 4),
    (Kind::Aborted, 10),
    (Kind::Oversize, 3),
    (Kind::NotJpeg, 8),
];

/// Statuses each kind may get besides the admission refusals every request may meet (429
/// `rate-limited`, 503 `overloaded`); `None` is the client not waiting for one.
fn expected(kind: Kind) -> &'static [u16] {
    match kind {
        Kind::Upload => &[200],
        // Paced to finish well within the read deadline, but a loaded machine may stretch it.
        Kind::Slow => &[200, 408],
        Kind::Forged | Kind::NeverSent => &[401],
        Kind::Stalled => &[408],
        Kind::Aborted => &[],
        Kind::Oversize => &[413],
        // It may not reach the limit within the read deadline on a loaded machine.
        Kind::Streamed => &[413, 408],
        Kind::NotJpeg => &[415],
    }
}

/// A small deterministic generator: the same worker makes the same choices every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn kind(&mut self) -> Kind {
        let mut roll = self.below(100) as u32;
        for (kind, share) in MIX {
            if roll < share {
                return kind;
            }
            roll -= share;
        }
        Kind::Upload
    }
}

/// One answer a client got (or did not wait for).
struct Outcome {
    kind: Kind,
    status: Option<u16>,
    code: String,
}

/// A 200's receipt and what was sent.
struct Receipt {
    user: String,
    request_id: String,
    sha256: String,
}

/// Everything the clients saw.
#[derive(Default)]
struct Seen {
    outcomes: Vec<Outcome>,
    receipts: Vec<Receipt>,
}

/// What every client shares.
struct Plan {
    base: String,
    users: Vec<(String, String)>,
    forged: Vec<String>,
    deadline: Instant,
    seen: Mutex<Seen>,
}

impl Plan {
    fn record(&self, kind: Kind, resp: Option<&RawResponse>) {
        let mut seen = self.seen.lock().unwrap();
        seen.outcomes.push(Outcome {
            kind,
            status: resp.map(|r| r.status),
            code: resp.map(RawResponse::code).unwrap_or_default(),
        });
    }
}

fn head(token: Option<&str>, content_type: &str, framing: &str, request_id: &str) -> String {
    let auth = token
        .map(|t| format!("\r\nAuthorization: Bearer {t}"))
        .unwrap_or_default();
    format!(
        "PUT {ME} HTTP/1.1{auth}\r\nContent-Type: {content_type}\r\n{framing}\r\nX-Request-Id: {request_id}"
    )
}

/// One connection's client: requests of every kind until the load ends.
async fn client(plan: Arc<Plan>, worker: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1).wrapping_mul(0x2545_F491));
    let mut kept: Option<TcpStream> = None;
    let mut n = 0;
    while Instant::now() < plan.deadline {
        n += 1;
        let rid = format!("soak-{worker}-{n}");
        let (upn, token) = &plan.users[rng.below(USERS as u64) as usize];
        let kind = if worker < STREAMERS {
            Kind::Streamed
        } else {
            rng.kind()
        };
        match kind {
            Kind::Upload | Kind::Forged => {
                let photo = jpeg(2_000 + rng.below(100_000) as usize, rng.next() as u8);
                let (ct, body) = if rng.below(2) == 0 {
                    ("image/jpeg".to_owned(), photo.clone())
                } else {
                    multipart_body(&[("photo", Some("me.jpg"), &photo)])
                };
                let token = match kind {
                    Kind::Upload => token,
                    _ => &plan.forged[rng.below(plan.forged.len() as u64) as usize],
                };
                let framing = format!("Content-Length: {}", body.len());
                let mut s = match kept.take() {
                    Some(s) => s,
                    None => connect(&plan.base).await,
                };
                let resp = send_on(
                    &mut s,
                    &plan.base,
                    &head(Some(token), &ct, &framing, &rid),
                    &body,
                )
                .await;
                plan.record(kind, resp.as_ref());
                if let Some(r) = &resp {
                    if r.status == 200 {
                        plan.seen.lock().unwrap().receipts.push(Receipt {
                            user: upn.clone(),
                            request_id: rid.clone(),
                            sha256: sha256_hex(&photo),
                        });
                    }
                    if r.header("connection") != Some("close") && !r.closed {
                        kept = Some(s);
                    }
                }
            }
            Kind::NeverSent => {
                let mut s = open(
                    &plan.base,
                    &head(None, "image/jpeg", "Transfer-Encoding: chunked", &rid),
                )
                .await;
                let resp = read_response(&mut s, Duration::from_secs(15)).await;
                plan.record(kind, resp.as_ref());
                // Held open by the client: only the gateway can end it.
                closes_within(&mut s, Duration::from_secs(10)).await;
            }
            Kind::Slow => {
                let photo = jpeg(5_000 + rng.below(40_000) as usize, rng.next() as u8);
                let framing = format!("Content-Length: {}", photo.len());
                let mut s =
                    open(&plan.base, &head(Some(token), "image/jpeg", &framing, &rid)).await;
                for piece in photo.chunks(photo.len().div_ceil(10)) {
                    if s.write_all(piece).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                let resp = read_response(&mut s, Duration::from_secs(15)).await;
                plan.record(kind, resp.as_ref());
                if resp.as_ref().is_some_and(|r| r.status == 200) {
                    plan.seen.lock().unwrap().receipts.push(Receipt {
                        user: upn.clone(),
                        request_id: rid.clone(),
                        sha256: sha256_hex(&photo),
                    });
                }
            }
            Kind::Stalled => {
                let photo = jpeg(20_000, 1);
                let framing = format!("Content-Length: {}", photo.len());
                let mut s =
                    open(&plan.base, &head(Some(token), "image/jpeg", &framing, &rid)).await;
                let _ = s.write_all(&photo[..10_000]).await;
                let resp = read_response(&mut s, Duration::from_secs(15)).await;
                plan.record(kind, resp.as_ref());
            }
            Kind::Aborted => {
                let photo = jpeg(50_000, 2);
                let framing = format!("Content-Length: {}", photo.len());
                let mut s =
                    open(&plan.base, &head(Some(token), "image/jpeg", &framing, &rid)).await;
                let _ = s.write_all(&photo[..rng.below(40_000) as usize]).await;
                plan.record(kind, None);
                drop(s);
            }
            Kind::Oversize => {
                let framing = "Content-Length: 5000000";
                let mut s = open(&plan.base, &head(Some(token), "image/jpeg", framing, &rid)).await;
                let _ = s.write_all(&jpeg(64 * 1024, 3)).await;
                let resp = read_response(&mut s, Duration::from_secs(15)).await;
                plan.record(kind, resp.as_ref());
            }
            Kind::Streamed => {
                let chunk = Bytes::from(jpeg(64 * 1024, 4));
                // stream_until_answer adds the chunked framing itself.
                let (resp, _) = stream_until_answer(
                    &plan.base,
                    &head(Some(token), "image/jpeg", "X-Soak: streamed", &rid),
                    move |i| (i < 160).then(|| chunk.clone()),
                    Duration::ZERO,
                )
                .await;
                plan.record(kind, resp.as_ref());
            }
            Kind::NotJpeg => {
                let body = vec![b'x'; 1_000 + rng.below(20_000) as usize];
                let framing = format!("Content-Length: {}", body.len());
                let mut s = match kept.take() {
                    Some(s) => s,
                    None => connect(&plan.base).await,
                };
                let ct = if rng.below(2) == 0 {
                    "image/jpeg"
                } else {
                    "text/plain"
                };
                let resp = send_on(
                    &mut s,
                    &plan.base,
                    &head(Some(token), ct, &framing, &rid),
                    &body,
                )
                .await;
                plan.record(kind, resp.as_ref());
                if resp
                    .as_ref()
                    .is_some_and(|r| r.header("connection") != Some("close") && !r.closed)
                {
                    kept = Some(s);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_for_a_minute_of_mixed_traffic() {
    let started = Instant::now();
    let emus = Emulators::start(EmulatorOptions {
        extra_users: USERS,
        record_capacity: 1_000_000,
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let read_timeout = BODY_READ_TIMEOUT_SECS.to_string();
    let gw = GatewayProcess::spawn(
        &emus,
        &[
            ("PHOTO_GATEWAY_LOG_LEVEL", "warn"),
            ("PHOTO_GATEWAY_BODY_READ_TIMEOUT_SECS", &read_timeout),
        ],
    )
    .await;
    let base = gw.base();
    let domain = photo_gateway_emulators::directory::TENANT_DOMAIN;
    let users: Vec<(String, String)> = (1..=USERS)
        .map(|i| {
            let upn = format!("loaduser{i}@{domain}");
            let token = emus.caller_token(&CallerTokenSpec::for_user(&upn));
            (upn, token)
        })
        .collect();
    let valid = &users[0].1;
    let forged = vec![
        format!("{}AAAA", &valid[..valid.len() - 4]),
        emus.caller_token(&CallerTokenSpec::for_user(&users[1].0).ttl_secs(-600)),
        emus.caller_token(&CallerTokenSpec::for_user(&users[2].0).audience("api://someone-else")),
        "not.a.jwt".to_owned(),
    ];

    // Warm: the first upload opens the pools to Entra and Graph the load will use.
    let warm = jpeg(10_000, 9);
    let r = reqwest::Client::new()
        .put(format!("{base}{ME}"))
        .bearer_auth(valid)
        .header("content-type", "image/jpeg")
        .body(warm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "warm-up upload");
    drop(r);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_start = gw.fds();
    let rss_start = gw.status_kib("VmRSS:");

    let load_start = Instant::now();
    let plan = Arc::new(Plan {
        base: base.clone(),
        users,
        forged,
        deadline: load_start + LOAD,
        seen: Mutex::default(),
    });
    let clients = futures_util::future::join_all(
        (0..CONNECTIONS).map(|w| tokio::spawn(client(plan.clone(), w))),
    );
    tokio::pin!(clients);
    // (seconds into the load, RSS KiB, descriptors)
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    // The high-water mark once the load's first 10 s are over: their peak, short spikes included.
    let mut rss_early_peak = None;
    let finished = loop {
        let at = load_start.elapsed();
        samples.push((at.as_secs_f64(), gw.status_kib("VmRSS:"), gw.fds().total));
        if rss_early_peak.is_none() && at >= Duration::from_secs(10) {
            rss_early_peak = Some(gw.status_kib("VmHWM:"));
        }
        tokio::select! {
            done = &mut clients => break done,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    for c in finished {
        c.unwrap();
    }
    let load_took = load_start.elapsed();

    // Settle: the clients are gone; the gateway closes its side.
    let settle_by = Instant::now() + Duration::from_secs(15);
    let fds_end = loop {
        let now = gw.fds();
        if (now.accepted == 0 && now.without_upstream() <= fds_start.without_upstream() + 3)
            || Instant::now() > settle_by
        {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rss_end = gw.status_kib("VmRSS:");
    let rss_hwm = gw.status_kib("VmHWM:");
    let rss_early_peak = rss_early_peak.expect("the load lasts longer than 10 s");
    let fds_peak = samples.iter().map(|p| p.2).max().unwrap_or(0);

    let seen = std::mem::take(&mut *plan.seen.lock().unwrap());
    let mut by_kind: BTreeMap<(Kind, Option<u16>, String), usize> = BTreeMap::new();
    for o in &seen.outcomes {
        *by_kind
            .entry((o.kind, o.status, o.code.clone()))
            .or_default() += 1;
    }
    let report: Vec<String> = by_kind
        .iter()
        .map(|((k, s, c), n)| format!("{k:?} {} {c}: {n}", s.map_or("-".into(), |s| s.to_string())))
        .collect();
    let series: Vec<String> = samples
        .iter()
        .step_by(25)
        .map(|(t, rss, fds)| format!("{t:.0} s: {} MiB, {fds} fds", rss / 1024))
        .collect();
    eprintln!(
        "soak: {} requests in {load_took:?} over {CONNECTIONS} connections; wall {:?}\n  {}\n  RSS KiB: start {rss_start}, peak in the first 10 s {rss_early_peak}, end {rss_end}, high-water {rss_hwm}\n  fds: start {fds_start:?}, peak {fds_peak}, end {fds_end:?}\n  during the load: {}",
        seen.outcomes.len(),
        started.elapsed(),
        report.join("\n  "),
        series.join("; ")
    );

    // No 5xx but the errors table's overload answer, and each kind its own answer.
    for ((kind, status, code), n) in &by_kind {
        let Some(status) = status else {
            assert!(
                matches!(kind, Kind::Aborted),
                "{kind:?}: {n} requests got no answer"
            );
            continue;
        };
        let admission = matches!(
            (*status, code.as_str()),
            (429, "rate-limited") | (503, "overloaded")
        );
        assert!(
            admission || expected(*kind).contains(status),
            "{kind:?}: {n} × {status} {code}"
        );
    }
    let ok = seen.receipts.len();
    assert!(
        ok >= 100,
        "only {ok} uploads got 200: the soak proved little"
    );

    // Every 200 is in Graph, with the bytes sent; each mailbox holds one of the photos it was sent.
    let recorded: HashMap<String, String> = emus
        .graph
        .requests()
        .into_iter()
        .filter(|r| (200..300).contains(&r.status))
        .filter_map(|r| r.client_request_id.map(|id| (id, r.sha256)))
        .collect();
    let mut sent_to: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in &seen.receipts {
        assert_eq!(
            recorded.get(&r.request_id),
            Some(&r.sha256),
            "upload {} answered 200 but Graph does not hold it",
            r.request_id
        );
        sent_to.entry(&r.user).or_default().push(&r.sha256);
    }
    for (user, shas) in &sent_to {
        let stored = emus
            .graph
            .photo_of_user(user)
            .map(|b| sha256_hex(&b))
            .unwrap_or_default();
        assert!(
            shas.contains(&stored.as_str()),
            "{user}'s stored photo is none of the {} sent to it",
            shas.len()
        );
    }

    // Descriptors back where they started (the HTTP client's idle pool to the emulators aside:
    // it keeps connections 60 s by design); memory no higher than early in the load.
    assert_eq!(fds_end.accepted, 0, "connections left open: {fds_end:?}");
    assert!(
        fds_end.without_upstream() <= fds_start.without_upstream() + 3,
        "descriptors: {fds_start:?} → {fds_end:?}"
    );
    assert!(
        rss_end <= rss_early_peak + 32 * MIB / 1024,
        "RSS after the load {rss_end} KiB > peak of its first 10 s {rss_early_peak} KiB + 32 MiB"
    );
}
