//! Reads the photo from a multipart form or a raw body, never holding more than the limit, within
//! a deadline, hashing and checking the JPEG's structure as the bytes arrive so the body is
//! touched once.

use std::sync::Arc;
use std::time::Duration;

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::body::{BodyError, BodyHeaders, BodyStream};
use super::jpeg::{JpegCheck, JpegError};
use super::sniff;
use crate::error::{ApiError, SUPPORTED_IMAGE_TYPES};

/// Multipart envelope bytes allowed on top of the photo limit before the declared
/// `Content-Length` alone is enough to refuse the request.
const MULTIPART_ENVELOPE_ALLOWANCE: usize = 64 * 1024;
/// At most this many parts are looked at; a form with more is refused.
const MAX_PARTS: usize = 8;

/// What the caller may send.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Exclusive photo size limit.
    pub max_bytes: usize,
    /// Deadline for receiving the whole body.
    pub read_timeout: Duration,
}

impl UploadLimits {
    /// The most bytes a request body may take on the wire: the photo plus a multipart envelope.
    fn max_body_bytes(&self) -> usize {
        self.max_bytes + MULTIPART_ENVELOPE_ALLOWANCE
    }

    /// Bytes to reserve for a body before reading it: what it declares, else the most it may be.
    pub fn reservation(&self, declared: Option<usize>) -> usize {
        let ceiling = self.max_body_bytes();
        declared.unwrap_or(ceiling).min(ceiling)
    }
}

/// Chunks at least this large are kept as received (no copy); smaller ones are coalesced, so a
/// body trickled in tiny chunks cannot turn into millions of chunk handles.
const ZERO_COPY_CHUNK: usize = 8 * 1024;
/// Size of the buffers small chunks are coalesced into.
const COALESCE_BUFFER: usize = 64 * 1024;

/// A received photo: the bytes as the chunks they arrived in (shared, never copied again), and
/// their digest.
#[derive(Clone)]
pub struct Photo {
    chunks: Arc<[Bytes]>,
    len: usize,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// What the bytes are, sniffed (one of the supported types).
    pub content_type: &'static str,
}

impl Photo {
    /// A photo of one buffer (what the image stage produced), hashed here.
    pub fn from_bytes(bytes: Bytes) -> Photo {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let len = bytes.len();
        Photo {
            chunks: Arc::from(vec![bytes]),
            len,
            sha256,
            content_type: sniff::JPEG,
        }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty photo (never produced by `read_photo`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A request body over the chunks, with its exact length; cheap, one per attempt.
    pub fn body(&self) -> PhotoBody {
        PhotoBody {
            chunks: self.chunks.clone(),
            next: 0,
            remaining: self.len as u64,
        }
    }

    /// The bytes in one buffer, for the image stage: the one chunk itself when the photo
    /// arrived in one, else one copy.
    pub fn contiguous(&self) -> Bytes {
        match &self.chunks[..] {
            [one] => one.clone(),
            _ => self.to_bytes(),
        }
    }

    /// The first `n` bytes (fewer if the photo is shorter), copied: enough to name the format
    /// without the whole photo in one buffer.
    pub fn head(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n.min(self.len));
        for c in self.chunks.iter() {
            if out.len() >= n {
                break;
            }
            let take = (n - out.len()).min(c.len());
            out.extend_from_slice(&c[..take]);
        }
        out
    }

    /// The bytes in one buffer (a copy: for tests and tools, not the request path).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for c in self.chunks.iter() {
            out.extend_from_slice(c);
        }
        out.freeze()
    }
}

impl std::fmt::Debug for Photo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes themselves.
        f.debug_struct("Photo")
            .field("content_type", &self.content_type)
            .field("len", &self.len)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The photo as an HTTP request body of exactly known length.
pub struct PhotoBody {
    chunks: Arc<[Bytes]>,
    next: usize,
    remaining: u64,
}

impl http_body::Body for PhotoBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let Some(chunk) = self.chunks.get(self.next).cloned() else {
            return std::task::Poll::Ready(None);
        };
        self.next += 1;
        self.remaining -= chunk.len() as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

enum BodyKind {
    Multipart,
    Raw,
}

fn body_kind(headers: &BodyHeaders<'_>) -> Result<BodyKind, ApiError> {
    if let Some(enc) = headers.content_encoding {
        let enc = std::str::from_utf8(enc).unwrap_or("?").trim();
        if !enc.eq_ignore_ascii_case("identity") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {enc:?} is not accepted: send the image bytes uncompressed (Graph would store compressed bytes as a corrupt photo)"
            )));
        }
    }
    let Some(ct) = headers.content_type else {
        return Ok(BodyKind::Raw);
    };
    let ct = std::str::from_utf8(ct)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType("the Content-Type header is not valid ASCII".into())
        })?;
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/octet-stream" | "" => Ok(BodyKind::Raw),
        e if e.starts_with("image/") => Ok(BodyKind::Raw),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {other:?} is not accepted: send multipart/form-data with a `photo` file part, or the raw bytes as image/jpeg (or another image/* type) or application/octet-stream"
        ))),
    }
}

/// Accumulates one body, bounded by the limit, hashing and checking its structure as it goes.
struct Sink {
    chunks: Vec<Bytes>,
    small: BytesMut,
    len: usize,
    head: [u8; 16],
    hasher: Sha256,
    jpeg: JpegCheck,
    limit: usize,
}

impl Sink {
    fn new(limit: usize) -> Sink {
        Sink {
            chunks: Vec::new(),
            small: BytesMut::new(),
            len: 0,
            head: [0; 16],
            hasher: Sha256::new(),
            jpeg: JpegCheck::new(),
            limit,
        }
    }

    fn push(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        if self.len + chunk.len() >= self.limit {
            return Err(ApiError::PhotoTooLarge { limit: self.limit });
        }
        if self.len < self.head.len() {
            let n = (self.head.len() - self.len).min(chunk.len());
            self.head[self.len..self.len + n].copy_from_slice(&chunk[..n]);
        }
        self.hasher.update(&chunk);
        // A broken structure is not answered here: the verdict waits for the whole body so that
        // an oversized body is still 413 and bytes that are no JPEG at all are still 415.
        self.jpeg.feed(&chunk);
        self.len += chunk.len();
        if chunk.len() >= ZERO_COPY_CHUNK {
            self.flush_small();
            self.chunks.push(chunk);
        } else {
            if self.small.capacity() == 0 {
                self.small.reserve(COALESCE_BUFFER);
            }
            self.small.extend_from_slice(&chunk);
            if self.small.len() >= COALESCE_BUFFER {
                self.flush_small();
            }
        }
        Ok(())
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.chunks.push(self.small.split().freeze());
        }
    }

    fn finish(mut self) -> Result<Photo, ApiError> {
        if self.len == 0 {
            return Err(ApiError::InvalidBody("the photo is empty".into()));
        }
        let head = &self.head[..self.len.min(self.head.len())];
        let Some(content_type) = sniff::supported(head) else {
            let seen = sniff::detect(head).unwrap_or("unrecognised data");
            return Err(ApiError::UnsupportedMediaType(format!(
                "the photo must be one of {SUPPORTED_IMAGE_TYPES}; the bytes are {seen}"
            )));
        };
        // The structure check speaks for JPEG only; other types are checked by their decoder.
        if content_type == sniff::JPEG {
            match self.jpeg.finish() {
                Ok(()) => {}
                // Sniffing above has answered this already; this keeps the two from ever
                // disagreeing into a 422 for bytes that are not a JPEG at all.
                Err(JpegError::NotJpeg) => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "the photo must be one of {SUPPORTED_IMAGE_TYPES}"
                    )));
                }
                Err(e) => return Err(ApiError::ImageUnreadable(e.to_string())),
            }
        }
        self.flush_small();
        Ok(Photo {
            sha256: hex::encode(self.hasher.finalize()),
            len: self.len,
            chunks: self.chunks.into(),
            content_type,
        })
    }
}

fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::Incomplete => {
            ApiError::InvalidBody("the body ended before all of it was received".into())
        }
        BodyError::Overflow => ApiError::InvalidBody("the body is larger than declared".into()),
        BodyError::Other(other) => {
            ApiError::InvalidBody(format!("the body could not be read: {other}"))
        }
    }
}

/// The multipart parser speaks actix's payload errors; these two translate both ways.
fn to_payload_error(e: BodyError) -> PayloadError {
    match e {
        BodyError::Incomplete => PayloadError::Incomplete(None),
        BodyError::Overflow => PayloadError::Overflow,
        BodyError::Other(s) => PayloadError::Io(std::io::Error::other(s)),
    }
}

fn payload_error(e: PayloadError) -> ApiError {
    body_error(match e {
        PayloadError::Incomplete(_) => BodyError::Incomplete,
        PayloadError::Overflow => BodyError::Overflow,
        other => BodyError::Other(other.to_string()),
    })
}

fn multipart_error(e: MultipartError) -> ApiError {
    match e {
        // actix-multipart reports a part header or preamble over its 64 KiB buffer this way.
        MultipartError::Payload(PayloadError::Overflow) => ApiError::InvalidBody(
            "a multipart part header (or the preamble before the first part) exceeds 64 KiB".into(),
        ),
        MultipartError::Payload(p) => payload_error(p),
        MultipartError::BoundaryMissing | MultipartError::ContentTypeParse => {
            ApiError::InvalidBody(
                "the multipart Content-Type has no usable boundary parameter".into(),
            )
        }
        MultipartError::Nested => ApiError::InvalidBody(
            "nested multipart bodies are not accepted: send one file part named `photo`".into(),
        ),
        MultipartError::Incomplete => ApiError::InvalidBody(
            "the multipart body is incomplete or its boundary does not match the Content-Type"
                .into(),
        ),
        other => ApiError::InvalidBody(format!(
            "the multipart body is malformed ({other}): send exactly one file part named `photo`"
        )),
    }
}

/// Reads and validates the photo of one request within the read deadline. A refused body is left
/// as it is: what remains of it is the HTTP layer's to drain or abandon (`http::conn`), for every
/// refusal alike.
pub async fn read_photo(
    headers: BodyHeaders<'_>,
    body: BodyStream,
    limits: UploadLimits,
) -> Result<Photo, ApiError> {
    let kind = body_kind(&headers)?;
    let declared = headers.content_length;
    let too_large = match kind {
        BodyKind::Raw => declared.is_some_and(|n| n >= limits.max_bytes),
        BodyKind::Multipart => {
            declared.is_some_and(|n| n >= limits.max_bytes + MULTIPART_ENVELOPE_ALLOWANCE)
        }
    };
    if too_large {
        return Err(ApiError::PhotoTooLarge {
            limit: limits.max_bytes,
        });
    }
    let read = async {
        match kind {
            BodyKind::Raw => read_raw(body, limits.max_bytes).await,
            BodyKind::Multipart => read_multipart(&headers, body, limits.max_bytes).await,
        }
    };
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::BodyTimeout(limits.read_timeout.as_secs().max(1))),
    }
}

async fn read_raw(mut body: BodyStream, limit: usize) -> Result<Photo, ApiError> {
    let mut sink = Sink::new(limit);
    while let Some(chunk) = body.next().await {
        sink.push(chunk.map_err(body_error)?)?;
    }
    sink.finish()
}

async fn read_multipart(
    headers: &BodyHeaders<'_>,
    body: BodyStream,
    limit: usize,
) -> Result<Photo, ApiError> {
    // The parser reads the boundary from a header map; it needs nothing else of the request.
    let mut map = HeaderMap::new();
    if let Some(ct) = headers
        .content_type
        .and_then(|ct| HeaderValue::from_bytes(ct).ok())
    {
        map.insert(header::CONTENT_TYPE, ct);
    }
    let mut form = Multipart::new(&map, body.map(|r| r.map_err(to_payload_error)));
    let mut photo: Option<Photo> = None;
    let mut parts = 0usize;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(multipart_error)?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::InvalidBody(format!(
                "the form has more than {MAX_PARTS} parts: send exactly one file part named `photo`"
            )));
        }
        let name = field.name().unwrap_or("").to_owned();
        if name != "photo" {
            return Err(ApiError::InvalidBody(format!(
                "unexpected form part {name:?}: send exactly one file part named `photo`"
            )));
        }
        if photo.is_some() {
            return Err(ApiError::InvalidBody(
                "the form has more than one `photo` part: send exactly one".into(),
            ));
        }
        let mut sink = Sink::new(limit);
        while let Some(chunk) = field.next().await {
            sink.push(chunk.map_err(multipart_error)?)?;
        }
        photo = Some(sink.finish()?);
    }
    photo.ok_or_else(|| {
        ApiError::InvalidBody(
            "the form has no `photo` file part: send exactly one file part named `photo`".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: usize) -> UploadLimits {
        UploadLimits {
            max_bytes,
            read_timeout: Duration::from_secs(5),
        }
    }

    async fn read_raw_chunks(chunks: Vec<Vec<u8>>, max_bytes: usize) -> Result<Photo, ApiError> {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BodyError>(Bytes::from(c))),
        );
        let headers = BodyHeaders {
            content_type: Some(b"image/jpeg"),
            content_encoding: None,
            content_length: None,
        };
        read_photo(headers, BodyStream::new(stream), limits(max_bytes)).await
    }

    fn split(data: &[u8], size: usize) -> Vec<Vec<u8>> {
        data.chunks(size).map(<[u8]>::to_vec).collect()
    }

    #[tokio::test]
    async fn a_truncated_jpeg_is_unreadable_however_it_arrives() {
        let whole = photo_gateway_emulators::sample_jpeg(64, 64, "truncated");
        let cut = &whole[..whole.len() - 2];
        for size in [1, 7, 100, cut.len()] {
            match read_raw_chunks(split(cut, size), 1 << 20).await {
                Err(e @ ApiError::ImageUnreadable(_)) => {
                    assert_eq!(e.code(), "image-unreadable");
                    assert!(e.to_string().contains("truncated"), "{e}");
                }
                other => panic!("chunks of {size}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn what_follows_the_end_of_image_is_kept_as_sent() {
        let mut data = photo_gateway_emulators::sample_jpeg(64, 64, "primary");
        data.extend_from_slice(&photo_gateway_emulators::sample_jpeg(16, 16, "second"));
        data.extend_from_slice(b"\xFF\x00 not a segment");
        let photo = read_raw_chunks(split(&data, 33), 1 << 20)
            .await
            .expect("accepted");
        assert_eq!(&photo.to_bytes()[..], &data[..]);
    }

    #[tokio::test]
    async fn size_and_format_are_answered_before_structure() {
        // Over the limit and broken: the size is what the caller must fix first.
        let broken = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0, 0, 0, 0];
        let e = read_raw_chunks(vec![broken.clone(), vec![0; 100]], 64)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "photo-too-large");
        // Not an image at all: 415, as before structure was checked, naming what is accepted.
        let e = read_raw_chunks(vec![b"%PDF-1.7 000000".to_vec()], 64)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unsupported-media-type");
        assert!(e.to_string().contains("image/png, image/webp"), "{e}");
        // A PNG is received as it is (the image stage reads it), whatever its structure.
        let png = read_raw_chunks(vec![b"\x89PNG\r\n\x1a\n0000".to_vec()], 64)
            .await
            .expect("a PNG is received");
        assert_eq!(png.content_type, "image/png");
        // A JPEG, broken: 422.
        let e = read_raw_chunks(vec![broken], 64).await.unwrap_err();
        assert_eq!(e.code(), "image-unreadable");
    }
}
