//! Trace context across services: the caller's `traceparent` is joined, spans are exported over
//! OTLP when the standard variables say so, and Entra and Graph receive the trace.

use std::sync::{Arc, Mutex};

use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{DEMO, GatewayProcess, ME, jpeg};

/// A minimal OTLP/HTTP collector: records each request body and answers 200.
async fn fake_collector() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    seen.lock()
                        .unwrap()
                        .push(buf[end + 4..end + 4 + len].to_vec());
                    buf.drain(..end + 4 + len);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (port, bodies)
}

#[tokio::test]
async fn spans_join_the_callers_trace_and_are_exported_over_otlp() {
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let (collector, bodies) = fake_collector().await;
    let endpoint = format!("http://127.0.0.1:{collector}");
    let mut gw = GatewayProcess::spawn(
        &emus,
        &[
            ("PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS", "0"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = gw.base();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let resp = client
        .put(format!("{base}{ME}"))
        .bearer_auth(emus.caller_token(&CallerTokenSpec::for_user(DEMO)))
        .header("content-type", "image/jpeg")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .body(jpeg(1000, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Graph received the same trace, with the gateway's own span as parent.
    let graph_tp = emus.graph.requests()[0]
        .traceparent
        .clone()
        .expect("Graph received a traceparent");
    assert!(
        graph_tp.starts_with(&format!("00-{trace_id}-")),
        "{graph_tp}"
    );
    assert!(
        !graph_tp.contains(caller_span),
        "the gateway's span is the parent: {graph_tp}"
    );

    // Stop the gateway: pending spans are flushed on the way out.
    gw.terminate();
    assert_eq!(gw.exit_code().await, Some(0));
    let wanted = hex::decode(trace_id).unwrap();
    let exported = bodies
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.windows(16).any(|w| w == wanted.as_slice()));
    assert!(
        exported,
        "the collector received spans of the caller's trace"
    );
}
