//! What the gateway accepts as a photo: size limits, JPEG sniffing and structure, the multipart
//! contract, compressed bodies, and path ids.

use crate::support::raw_http::send_framed;
use crate::support::{
    DEMO, ME, PHOTO_LIMIT, Part, TestApp, jpeg, multipart_body, sha256_hex, spawn_app,
};

#[tokio::test]
async fn the_limit_is_exclusive_for_raw_and_multipart_bodies() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let just_under = jpeg(PHOTO_LIMIT - 1, 9);

    let resp = app.put_raw(ME, &token, just_under.clone()).await;
    assert_eq!(
        resp.status(),
        200,
        "raw {} bytes: {}",
        PHOTO_LIMIT - 1,
        resp.text().await.unwrap()
    );
    let resp = app
        .send_multipart("PUT", ME, &token, just_under.clone())
        .await;
    assert_eq!(resp.status(), 200, "multipart {} bytes", PHOTO_LIMIT - 1);
    let seen = app.emus.graph.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|r| r.bytes == PHOTO_LIMIT - 1 && r.sha256 == sha256_hex(&just_under))
    );

    let at_limit = jpeg(PHOTO_LIMIT, 9);
    let (status, _, body) = TestApp::problem(app.put_raw(ME, &token, at_limit.clone()).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("photo-too-large")),
        "raw at the limit"
    );
    let (status, _, body) =
        TestApp::problem(app.send_multipart("PUT", ME, &token, at_limit).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("photo-too-large")),
        "multipart at the limit"
    );
    assert_eq!(
        app.emus.graph.requests().len(),
        2,
        "nothing more sent to Graph"
    );

    // A chunked raw body over the limit is stopped while reading.
    let resp = app
        .put_chunked(ME, &token, &jpeg(PHOTO_LIMIT + 100_000, 1), 65_536)
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
    assert_eq!(app.emus.graph.requests().len(), 2);
}

#[tokio::test]
async fn bytes_that_are_not_jpeg_get_415_whatever_the_declared_type() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR0000000000000".to_vec();
    for (what, resp) in [
        (
            "png as image/jpeg",
            app.put_raw(ME, &token, png.clone()).await,
        ),
        (
            "text as octet-stream",
            app.send_raw(
                "PUT",
                ME,
                Some(&token),
                b"hello world".to_vec(),
                "application/octet-stream",
            )
            .await,
        ),
        (
            "png in multipart",
            app.send_multipart("PUT", ME, &token, png.clone()).await,
        ),
        (
            "jpeg declared as text/plain",
            app.send_raw("PUT", ME, Some(&token), jpeg(200, 1), "text/plain")
                .await,
        ),
    ] {
        let (status, _, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (415, Some("unsupported-media-type")),
            "{what}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains("JPEG")
                || body["detail"].as_str().unwrap().contains("image/jpeg"),
            "{what}: names what is accepted"
        );
    }
    assert!(app.emus.graph.requests().is_empty());
}

#[tokio::test]
async fn a_truncated_or_corrupt_jpeg_gets_422_image_unreadable_and_never_reaches_graph() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let whole = jpeg(50_000, 7);
    let in_segment = whole[..30_000].to_vec();
    let no_eoi = whole[..whole.len() - 2].to_vec();
    // The first segment (a COM at offset 2) declares a length of 1.
    let mut short_length = whole.clone();
    short_length[4..6].copy_from_slice(&[0x00, 0x01]);
    for (what, resp, says) in [
        (
            "cut inside a segment, raw",
            app.put_raw(ME, &token, in_segment.clone()).await,
            "truncated: its COM segment at offset 2 declares",
        ),
        (
            "cut inside a segment, multipart",
            app.send_multipart("PUT", ME, &token, in_segment).await,
            "truncated: its COM segment at offset 2 declares",
        ),
        (
            "cut before the end-of-image marker, raw",
            app.put_raw(ME, &token, no_eoi.clone()).await,
            "without an end-of-image (EOI) marker",
        ),
        (
            "cut before the end-of-image marker, chunked",
            app.put_chunked(ME, &token, &no_eoi, 1_000).await.unwrap(),
            "without an end-of-image (EOI) marker",
        ),
        (
            "a segment length under 2",
            app.put_raw(ME, &token, short_length).await,
            "corrupt: its COM segment at offset 2 declares a length of 1",
        ),
    ] {
        let (status, _, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("image-unreadable")),
            "{what}: {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{what}: {detail}");
    }
    assert!(
        app.emus.graph.requests().is_empty(),
        "nothing reached Graph"
    );
}

#[tokio::test]
async fn what_follows_the_end_of_image_is_forwarded_unchanged() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    // A phone's photo: the primary image, then a second (MPF) image after its EOI.
    let mut photo = jpeg(30_000, 21);
    photo.extend_from_slice(&jpeg(8_000, 22));
    let digest = sha256_hex(&photo);
    for (what, resp) in [
        ("raw", app.put_raw(ME, &token, photo.clone()).await),
        (
            "multipart",
            app.send_multipart("PUT", ME, &token, photo.clone()).await,
        ),
    ] {
        assert_eq!(resp.status(), 200, "{what}");
        let receipt: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(receipt["bytes"], photo.len(), "{what}");
        assert_eq!(receipt["sha256"], digest, "{what}");
    }
    let seen = app.emus.graph.requests();
    assert_eq!(seen.len(), 2);
    for r in seen {
        assert_eq!((r.bytes, r.sha256.as_str()), (photo.len(), digest.as_str()));
    }
}

#[tokio::test]
async fn compressed_bodies_are_refused_never_forwarded() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let resp = app
        .client
        .put(format!("{}{ME}", app.address))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .header("content-encoding", "gzip")
        .body(jpeg(1000, 1))
        .send()
        .await
        .unwrap();
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported-media-type"))
    );
    assert!(app.emus.graph.requests().is_empty());
}

#[tokio::test]
async fn the_multipart_contract_is_one_photo_part() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let photo = jpeg(500, 1);
    let cases: Vec<(&str, Vec<Part<'_>>)> = vec![
        ("missing photo part", vec![("file", Some("a.jpg"), &photo)]),
        (
            "extra part",
            vec![("photo", Some("a.jpg"), &photo), ("comment", None, b"hi")],
        ),
        (
            "second photo",
            vec![
                ("photo", Some("a.jpg"), &photo),
                ("photo", Some("b.jpg"), &photo),
            ],
        ),
        ("no parts", vec![]),
    ];
    for (what, parts) in cases {
        let (ct, body) = multipart_body(&parts);
        let resp = app.send_raw("PUT", ME, Some(&token), body, &ct).await;
        let (status, _, body) = TestApp::problem(resp).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid-body")),
            "{what}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains("photo"),
            "{what}: says what is expected"
        );
    }
    // No boundary at all.
    let resp = app
        .send_raw(
            "PUT",
            ME,
            Some(&token),
            b"whatever".to_vec(),
            "multipart/form-data",
        )
        .await;
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid-body")));
    // Empty raw body.
    let (status, _, body) = TestApp::problem(app.put_raw(ME, &token, Vec::new()).await).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid-body")));
    assert!(app.emus.graph.requests().is_empty());
}

#[tokio::test]
async fn path_injection_attempts_get_400_and_nothing_goes_upstream() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let photo = jpeg(200, 1);
    for id in [
        "..",
        ".",
        "%2e%2E",
        "a%2Fb",
        "..%2F..%2Fgroups%2Fx",
        "a%5Cb",
        "a%00b",
        "a%0D%0AX-Injected:%201",
        "%FF%FE",
    ] {
        let head = format!(
            "PUT /v1.0/users/{id}/photo/$value HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg"
        );
        let (status, body) = send_framed(&app.address, &head, &photo).await;
        assert_eq!(status, 400, "{id}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "invalid-target", "{id}");
    }
    // An empty id segment.
    let head = format!(
        "PUT /v1.0/groups//photo/$value HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg"
    );
    assert_eq!(send_framed(&app.address, &head, &photo).await.0, 400);
    app.assert_nothing_upstream("nothing sent upstream; not even a token exchange");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let token = app.token(DEMO);
    let resp = app
        .send_raw(
            "PUT",
            "/v1.0/planner/t1/photo/$value",
            Some(&token),
            jpeg(200, 1),
            "image/jpeg",
        )
        .await;
    let (status, _, body) = TestApp::problem(resp).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not-found")));
    let resp = app
        .client
        .post(format!("{}{ME}", app.address))
        .send()
        .await
        .unwrap();
    let (status, headers, _) = TestApp::problem(resp).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET, PUT, PATCH, DELETE");
    let resp = app
        .client
        .get(format!("{}/nothing-here", app.address))
        .send()
        .await
        .unwrap();
    let (status, headers, _) = TestApp::problem(resp).await;
    assert_eq!(status, 404);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
}
