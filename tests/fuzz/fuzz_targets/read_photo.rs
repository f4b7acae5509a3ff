//! The gateway's body reader, `upload::read_photo`, on arbitrary bodies: the first byte picks the
//! Content-Type (multipart with a few boundaries, raw image/jpeg or octet-stream, a
//! Content-Encoding), the second how the body is cut into chunks, the rest is the body. The
//! reader must never panic, and whatever it accepts is a well-formed JPEG under the limit whose
//! SHA-256 is right; a raw body under the limit is refused exactly when it is not one, wherever
//! its chunks are cut. It goes through `actix_multipart::Multipart` exactly as in the server (the
//! handler only turns actix's payload into the same `BodyStream`).

#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use photo_gateway::upload::{
    BodyError, BodyHeaders, BodyStream, UploadLimits, jpeg, read_photo, sniff,
};

const LIMIT: usize = 16 * 1024;

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (kind, cut, body) = (data[0], data[1], &data[2..]);
    let content_type = match kind % 8 {
        0 | 1 => "multipart/form-data; boundary=b",
        2 => "multipart/form-data; boundary=\"--x y\"",
        3 => "multipart/form-data; boundary=",
        4 => "image/jpeg",
        5 => "application/octet-stream",
        6 => "multipart/form-data",
        _ => "multipart/mixed; boundary=b",
    };
    let headers = BodyHeaders {
        content_type: Some(content_type.as_bytes()),
        content_encoding: (kind & 0x40 != 0).then_some(b"identity".as_slice()),
        content_length: (kind & 0x80 != 0).then_some(body.len()),
    };

    // Chunks of 1..=256 bytes as picked by `cut`.
    let size = (cut as usize % 256) + 1;
    let chunks: Vec<Result<Bytes, BodyError>> = body
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = BodyStream::new(futures_util::stream::iter(chunks));

    RT.with(|rt| {
        rt.block_on(async {
            let limits = UploadLimits {
                max_bytes: LIMIT,
                read_timeout: Duration::from_secs(5),
            };
            let result = read_photo(headers, stream, limits).await;
            let raw = !content_type.starts_with("multipart");
            if raw && !body.is_empty() && body.len() < LIMIT {
                let sound = sniff::is_jpeg(body) && jpeg::check(body).is_ok();
                assert_eq!(
                    result.is_ok(),
                    sound,
                    "a raw body is accepted exactly when it is a well-formed JPEG: {:?}",
                    result.as_ref().err()
                );
            }
            if let Ok(photo) = result {
                let bytes = photo.to_bytes();
                assert_eq!(bytes.len(), photo.len());
                assert!(sniff::is_jpeg(&bytes), "accepted bytes are a JPEG");
                assert_eq!(jpeg::check(&bytes), Ok(()), "accepted bytes are well formed");
                assert!(bytes.len() < LIMIT, "accepted bytes are under the limit");
                assert!(!bytes.is_empty() && !photo.is_empty());
                assert_eq!(
                    photo.sha256,
                    sha256_hex(&bytes),
                    "the digest is of the bytes"
                );
                // A raw body is the photo itself.
                if raw {
                    assert_eq!(&bytes[..], body, "a raw body is forwarded unchanged");
                }
            }
        })
    });
});
