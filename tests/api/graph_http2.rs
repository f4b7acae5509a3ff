//! Graph speaks HTTP/2, and the gateway's client takes it when offered (ALPN): uploads, reads and
//! deletes must work over it as over HTTP/1.1, which the other tests use.

use std::sync::Arc;

use photo_gateway_emulators::{EmulatorOptions, Emulators};

use crate::read::get;
use crate::support::{DEMO, ME, jpeg, sha256_hex, spawn_app, spawn_gateway};

#[tokio::test]
async fn uploads_reads_and_deletes_go_over_http2_when_graph_offers_it() {
    let emus = Emulators::start(EmulatorOptions {
        graph_http2: true,
        ..EmulatorOptions::default()
    })
    .await
    .expect("emulators start");
    let app = spawn_gateway(Arc::new(emus), |_| {}).await;
    let token = app.token(DEMO);

    // Raw and multipart, PUT and PATCH, a body larger than HTTP/2's initial flow-control window.
    let raw = jpeg(1_500_000, 7);
    assert_eq!(app.put_raw(ME, &token, raw.clone()).await.status(), 200);
    let multipart = jpeg(200_000, 8);
    let resp = app
        .send_multipart("PATCH", ME, &token, multipart.clone())
        .await;
    assert_eq!(resp.status(), 200);
    let writes = app.emus.graph.requests();
    assert_eq!(writes.len(), 2, "{writes:?}");
    for (rec, sent) in writes.iter().zip([&raw, &multipart]) {
        assert_eq!(rec.http_version, "HTTP/2.0", "{rec:?}");
        assert_eq!(rec.status, 200, "{rec:?}");
        assert_eq!(
            rec.sha256,
            sha256_hex(sent),
            "Graph received the bytes sent"
        );
    }

    let resp = get(&app, ME, &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), multipart);

    let resp = app
        .client
        .delete(format!("{}{ME}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let last = app.emus.graph.requests().pop().expect("the delete");
    assert_eq!(
        (last.method.as_str(), last.http_version.as_str()),
        ("DELETE", "HTTP/2.0")
    );
}

#[tokio::test]
async fn the_default_graph_emulator_speaks_http11_only() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    assert_eq!(app.put_raw(ME, &token, jpeg(1_000, 9)).await.status(), 200);
    let rec = app.emus.graph.requests().pop().expect("the upload");
    assert_eq!(rec.http_version, "HTTP/1.1");
}
