//! The load generator: a fixed number of workers over one HTTP/1.1 keep-alive client, each request
//! with the bearer token of its own user (round-robin over the users).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

/// One client for everything: HTTP/1.1 only, the sandbox CA trusted, no proxy.
pub fn client(ca_pem: &[u8], max_conns: usize) -> Result<reqwest::Client, String> {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem).map_err(|e| format!("CA: {e}"))?;
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tls_certs_merge(certs)
        .pool_max_idle_per_host(max_conns * 2)
        .pool_idle_timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// What one load phase measured.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl LoadStats {
    pub fn rps(&self) -> Option<f64> {
        let s = self.elapsed.as_secs_f64();
        (self.ok > 0 && s > 0.0).then(|| self.ok as f64 / s)
    }

    /// Nearest-rank percentile over every latency (exact; no histogram).
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        Some(self.latencies_us[rank.min(n) - 1] as f64 / 1000.0)
    }

    pub fn p50_ms(&self) -> Option<f64> {
        self.percentile_ms(50.0)
    }

    pub fn p99_ms(&self) -> Option<f64> {
        self.percentile_ms(99.0)
    }

    pub fn to_json(&self, size: usize) -> Value {
        let mean = (!self.latencies_us.is_empty()).then(|| {
            self.latencies_us.iter().sum::<u64>() as f64 / self.latencies_us.len() as f64 / 1000.0
        });
        json!({
            "requests_ok": self.ok,
            "requests_failed": self.errors,
            "first_error": self.first_error,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_rps": self.rps(),
            "throughput_mib_s": self.rps().map(|r| r * size as f64 / 1_048_576.0),
            "latency_ms": {
                "p50": self.p50_ms(),
                "p90": self.percentile_ms(90.0),
                "p99": self.p99_ms(),
                "max": self.percentile_ms(100.0),
                "mean": mean,
            },
        })
    }
}

/// How a request carries the photo: the method, and the body as it goes on the wire with its
/// Content-Type (the raw JPEG, or a multipart form built once, as callers' form encoders send it).
#[derive(Clone)]
pub struct Shape {
    pub method: reqwest::Method,
    pub content_type: String,
    pub body: Bytes,
}

/// The boundary of the bench's multipart bodies: dashes and digits, which the photos' filler
/// (lowercase letters in COM segments) and the 64×64 image data never spell out.
const BOUNDARY: &str = "----photo-gateway-bench-7f3a9c0412";

impl Shape {
    /// `PUT` with the raw JPEG as `image/jpeg`.
    pub fn raw(method: reqwest::Method, photo: &Bytes) -> Shape {
        Shape {
            method,
            content_type: "image/jpeg".into(),
            body: photo.clone(),
        }
    }

    /// One `photo` file part, what browsers and form encoders send.
    pub fn multipart(method: reqwest::Method, photo: &Bytes) -> Shape {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        );
        let tail = format!("\r\n--{BOUNDARY}--\r\n");
        let mut body = Vec::with_capacity(head.len() + photo.len() + tail.len());
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(photo);
        body.extend_from_slice(tail.as_bytes());
        Shape {
            method,
            content_type: format!("multipart/form-data; boundary={BOUNDARY}"),
            body: body.into(),
        }
    }
}

/// Sends `n` PUTs of `photo` to `url` with `concurrency` workers; request i carries
/// `tokens[i % tokens.len()]`. A request counts as successful only on 200 with its body read.
pub async fn run_load(
    client: &reqwest::Client,
    url: &str,
    tokens: Arc<Vec<String>>,
    photo: Bytes,
    n: usize,
    concurrency: usize,
) -> LoadStats {
    let shape = Shape::raw(reqwest::Method::PUT, &photo);
    run_shaped(client, url, tokens, &shape, n, concurrency).await
}

/// `run_load` with the method and body shape given.
pub async fn run_shaped(
    client: &reqwest::Client,
    url: &str,
    tokens: Arc<Vec<String>>,
    shape: &Shape,
    n: usize,
    concurrency: usize,
) -> LoadStats {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(n.max(1)) {
        let (client, url, tokens, shape, next) = (
            client.clone(),
            url.to_owned(),
            tokens.clone(),
            shape.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut s = LoadStats::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let token = &tokens[i % tokens.len()];
                let t0 = Instant::now();
                let res = client
                    .request(shape.method.clone(), &url)
                    .bearer_auth(token)
                    .header("content-type", &shape.content_type)
                    .body(shape.body.clone())
                    .send()
                    .await;
                let outcome = match res {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                            Ok(body) => Err(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(300)])
                            )),
                            Err(e) => Err(format!("{status}, body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e:?}")),
                };
                match outcome {
                    Ok(()) => {
                        s.ok += 1;
                        s.latencies_us.push(t0.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        s.errors += 1;
                        s.first_error.get_or_insert(e);
                    }
                }
            }
            s
        }));
    }
    let mut total = LoadStats::default();
    for w in workers {
        match w.await {
            Ok(s) => {
                total.ok += s.ok;
                total.errors += s.errors;
                if total.first_error.is_none() {
                    total.first_error = s.first_error;
                }
                total.latencies_us.extend(s.latencies_us);
            }
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}

/// A valid JPEG (SOI, JFIF APP0, the emulator's 64×64 grey image) of exactly `size` bytes: comment
/// (COM) segments after APP0 make up the size.
pub fn jpeg_of_size(size: usize) -> Vec<u8> {
    let base = photo_gateway_emulators::sample_jpeg(64, 64, "photo-gateway-bench");
    assert!(base.len() + 4 < size, "photo size too small");
    // SOI (2) + APP0 (18) come first; insert COM segments after them.
    let (head, tail) = base.split_at(20);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(head);
    let mut missing = size - base.len();
    let mut fill: u8 = 0;
    while missing > 0 {
        // A segment is 4 bytes of marker and length plus up to 65,533 bytes of payload; never
        // leave fewer than 4 bytes for a last segment.
        let mut seg = missing.min(4 + 65_533);
        if missing - seg > 0 && missing - seg < 4 {
            seg -= 4;
        }
        let payload = seg - 4;
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((payload + 2) as u16).to_be_bytes());
        out.extend((0..payload).map(|j| b'a' + ((j + fill as usize) % 26) as u8));
        fill = fill.wrapping_add(1);
        missing -= seg;
    }
    out.extend_from_slice(tail);
    debug_assert_eq!(out.len(), size);
    out
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpegs_are_well_formed_and_of_the_exact_size() {
        for size in [1000, 51_200, 65_537 + 200, 1_048_576, 4 * 1_048_576 - 1024] {
            let j = jpeg_of_size(size);
            assert_eq!(j.len(), size);
            assert_eq!(&j[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
            assert_eq!(&j[size - 2..], &[0xFF, 0xD9]);
            // What the gateway checks before forwarding a photo.
            assert_eq!(photo_gateway::upload::jpeg::check(&j), Ok(()), "{size}");
        }
    }

    #[test]
    fn multipart_bodies_frame_the_photo_once() {
        let photo = Bytes::from(jpeg_of_size(51_200));
        let s = Shape::multipart(reqwest::Method::PATCH, &photo);
        let boundary = s.content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8_lossy(&s.body);
        // The boundary opens and closes the form and never occurs inside the photo.
        assert_eq!(text.matches(boundary).count(), 2);
        assert!(
            s.body
                .ends_with(format!("\r\n--{boundary}--\r\n").as_bytes())
        );
        let start = s.body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&s.body[start..start + photo.len()], &photo[..]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = LoadStats {
            ok: 100,
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            ..Default::default()
        };
        assert_eq!(s.p50_ms(), Some(50.0));
        assert_eq!(s.p99_ms(), Some(99.0));
        assert_eq!(s.percentile_ms(100.0), Some(100.0));
    }
}
