//! The Graph emulator looks at the photos it receives (format, size, metadata), serves Exchange's
//! sizes of a stored photo, and answers an upload over 100 KB for a user without a mailbox with
//! Graph's 404: the image stage's end-to-end tests rely on all three.

mod common;
use common::client;

use std::io::Cursor;

use photo_gateway_emulators::directory::{DEMO_USER_UPN, GROUP_ID};
use photo_gateway_emulators::{
    EmulatorOptions, Emulators, NO_MAILBOX_MAX_PHOTO_BYTES, NO_MAILBOX_USER_ID,
    NO_MAILBOX_USER_UPN, sample_jpeg,
};
use serde_json::Value;

/// A JPEG of noise (it compresses badly, so its size is predictable from its pixels).
fn noisy_jpeg(w: u32, h: u32, quality: u8, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&img)
        .unwrap();
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::DynamicImage::new_rgba8(w, h)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn every_write_records_what_the_photo_is() {
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let c = client(&emus);
    let token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite"]);
    let url = format!("{}/v1.0/me/photo/$value", emus.graph_url());
    for body in [
        sample_jpeg(40, 30, "recorded"),
        png(7, 5),
        b"no image".to_vec(),
    ] {
        let resp = c
            .put(&url)
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Through the control API, as a sandbox user would look.
    let recorded: Vec<Value> = c
        .get(format!("{}/_emulator/requests", emus.graph_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let images: Vec<&Value> = recorded.iter().map(|r| &r["image"]).collect();
    assert_eq!(images.len(), 3, "{recorded:?}");
    assert_eq!(images[0]["format"], "jpeg");
    assert_eq!(
        (&images[0]["width"], &images[0]["height"]),
        (&40.into(), &30.into())
    );
    assert_eq!(images[0]["decoded"], true);
    assert_eq!(images[0]["baseline"], true);
    assert_eq!(
        (&images[0]["exif"], &images[0]["xmp"], &images[0]["gps"]),
        (&false.into(), &false.into(), &false.into())
    );
    assert_eq!(images[1]["format"], "png");
    assert_eq!(images[1]["width"], 7);
    assert_eq!(images[2]["format"], "unknown");
    assert_eq!(images[2]["decoded"], false);
    // The in-process API says the same.
    let first = emus.graph.requests()[0].image.clone().unwrap();
    assert_eq!((first.width, first.height), (Some(40), Some(30)));
}

#[tokio::test]
async fn exchange_sizes_are_served_from_the_stored_photo_and_never_upscaled() {
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let c = client(&emus);
    let token = emus.graph_token(
        DEMO_USER_UPN,
        &["User.ReadWrite.All", "Group.ReadWrite.All"],
    );
    let g = emus.graph_url();
    assert!(emus.graph.set_photo(
        &format!("/users/{DEMO_USER_UPN}"),
        &noisy_jpeg(300, 300, 80, 1),
        "image/jpeg"
    ));
    assert!(emus.graph.set_photo(
        &format!("/groups/{GROUP_ID}"),
        &noisy_jpeg(120, 100, 80, 2),
        "image/jpeg"
    ));
    for (path, size, status) in [
        ("/v1.0/me/photos/48x48/$value".to_string(), 48, 200),
        ("/v1.0/me/photos/240x240/$value".to_string(), 240, 200),
        (
            format!("/v1.0/users/{DEMO_USER_UPN}/photos/96/$value"),
            96,
            200,
        ),
        // Larger than the stored photo: Exchange keeps no such size.
        ("/v1.0/me/photos/360x360/$value".to_string(), 360, 404),
        // Not one of Exchange's sizes.
        ("/v1.0/me/photos/50x50/$value".to_string(), 50, 404),
        (
            format!("/v1.0/groups/{GROUP_ID}/photos/96x96/$value"),
            96,
            200,
        ),
        (
            format!("/v1.0/groups/{GROUP_ID}/photos/120x120/$value"),
            120,
            404,
        ),
    ] {
        let resp = c
            .get(format!("{g}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        if status == 200 {
            assert_eq!(resp.headers()["content-type"], "image/jpeg");
            let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
            assert_eq!((img.width(), img.height()), (size, size), "{path}");
        } else {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "ImageNotFound", "{path}");
        }
    }
    let meta: Value = c
        .get(format!("{g}/v1.0/me/photos/64x64"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&meta["width"], &meta["id"]), (&64.into(), &"64X64".into()));
    // Sizes are read-only.
    let resp = c
        .put(format!("{g}/v1.0/me/photos/64x64/$value"))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(sample_jpeg(64, 64, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn a_user_without_a_mailbox_gets_graphs_404_for_a_photo_over_100_kb() {
    let emus = Emulators::start(EmulatorOptions::default()).await.unwrap();
    let c = client(&emus);
    let token = emus.graph_token(DEMO_USER_UPN, &["User.ReadWrite.All"]);
    let g = emus.graph_url();
    let large = noisy_jpeg(400, 400, 95, 3);
    let small = noisy_jpeg(96, 96, 80, 4);
    assert!(large.len() > NO_MAILBOX_MAX_PHOTO_BYTES, "{}", large.len());
    assert!(small.len() <= NO_MAILBOX_MAX_PHOTO_BYTES);
    let put = |user: String, body: Vec<u8>| {
        c.put(format!("{g}/v1.0/users/{user}/photo/$value"))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(body)
            .send()
    };
    let resp = put(NO_MAILBOX_USER_UPN.into(), large.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ImageNotFound");
    assert!(
        emus.graph.photo_of_user(NO_MAILBOX_USER_ID).is_none(),
        "nothing stored"
    );
    let resp = put(NO_MAILBOX_USER_ID.into(), small.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        emus.graph.photo_of_user(NO_MAILBOX_USER_UPN).unwrap(),
        small
    );
    // A user with a mailbox takes the large one.
    let resp = put(DEMO_USER_UPN.into(), large).await.unwrap();
    assert_eq!(resp.status(), 200);
}
