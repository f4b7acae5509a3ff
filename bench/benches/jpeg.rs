//! What checking a photo's JPEG structure costs on the upload path: `upload::jpeg::JpegCheck` fed
//! the chunks of a body, next to `upload::read_photo` on the same chunks (hashing, chunk handling
//! and the check, as the server runs it).
//!
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench -p photo-gateway-bench --bench jpeg
//!
//! Bodies are 1 MB and 4 MB, in 64 KiB chunks, of two kinds: `scan`, a photo's usual shape, almost
//! all entropy-coded data (pseudo-random bytes, each `FF` stuffed, a restart marker every 4 KiB),
//! which the check walks from one `FF` to the next; and `com`, shaped like the load benchmark's
//! bodies (`load::jpeg_of_size`: a tiny image made up to size with comment segments), which the
//! check skips by their lengths.

use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use photo_gateway::upload::jpeg::JpegCheck;
use photo_gateway::upload::{BodyError, BodyHeaders, BodyStream, UploadLimits, read_photo};

const CHUNK: usize = 64 * 1024;

/// A baseline JPEG of exactly `size` bytes whose scan holds nearly all of them.
fn scan_heavy(size: usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    out.extend_from_slice(&[1u8; 64]);
    out.extend_from_slice(&[
        0xFF, 0xC0, 0x00, 0x11, 0x08, 0x0C, 0x00, 0x10, 0x00, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11,
        0x00, 0x03, 0x11, 0x00,
    ]);
    out.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x04, 0x00, 0x40]);
    out.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11,
    ]);
    out.extend_from_slice(&[0x00, 0x3F, 0x00]);
    let mut x: u32 = 0x2545_F491;
    let mut rst = 0u8;
    while out.len() < size - 2 {
        if out.len() % 4096 == 0 && out.len() + 2 < size - 2 {
            out.extend_from_slice(&[0xFF, 0xD0 + rst]);
            rst = (rst + 1) % 8;
            continue;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = x as u8;
        if b == 0xFF {
            if out.len() + 2 > size - 2 {
                out.push(0x00);
                continue;
            }
            out.extend_from_slice(&[0xFF, 0x00]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    assert_eq!(out.len(), size);
    out
}

/// The emulator's 64×64 image made up to exactly `size` bytes with comment segments after APP0.
fn com_padded(size: usize) -> Vec<u8> {
    let base = photo_gateway_emulators::sample_jpeg(64, 64, "photo-gateway-bench");
    let (head, tail) = base.split_at(20);
    let mut out = head.to_vec();
    let mut missing = size - base.len();
    while missing > 0 {
        let mut seg = missing.min(4 + 65_533);
        if missing - seg > 0 && missing - seg < 4 {
            seg -= 4;
        }
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((seg - 2) as u16).to_be_bytes());
        out.resize(out.len() + seg - 4, b'c');
        missing -= seg;
    }
    out.extend_from_slice(tail);
    assert_eq!(out.len(), size);
    out
}

fn chunks(data: &[u8]) -> Vec<Bytes> {
    data.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn jpeg(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let limits = UploadLimits {
        max_bytes: 4_194_304,
        read_timeout: Duration::from_secs(30),
    };
    let mut bodies = Vec::new();
    for size in [1_000_000, 4_000_000] {
        let mb = size / 1_000_000;
        bodies.push((format!("scan/{mb}MB"), size, chunks(&scan_heavy(size))));
        bodies.push((format!("com/{mb}MB"), size, chunks(&com_padded(size))));
    }
    for (_, _, body) in &bodies {
        let mut check = JpegCheck::new();
        body.iter().for_each(|c| check.feed(c));
        assert_eq!(
            check.finish(),
            Ok(()),
            "the benchmark's bodies are well formed"
        );
    }

    let mut group = c.benchmark_group("jpeg_check");
    for (name, size, body) in &bodies {
        group.throughput(Throughput::Bytes(*size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| {
                let mut check = JpegCheck::new();
                body.iter().for_each(|c| check.feed(c));
                check.finish()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("read_photo");
    for (name, size, body) in bodies.iter().filter(|(n, _, _)| n.starts_with("scan")) {
        group.throughput(Throughput::Bytes(*size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.to_async(&rt).iter(|| async {
                // The stream must own its chunks; cloning a `Bytes` is a reference count.
                let chunks: Vec<Bytes> = body.clone();
                let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, BodyError>));
                let headers = BodyHeaders {
                    content_type: Some(b"image/jpeg"),
                    content_encoding: None,
                    content_length: Some(*size),
                };
                read_photo(headers, BodyStream::new(stream), limits)
                    .await
                    .expect("the body is accepted")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, jpeg);
criterion_main!(benches);
