//! The photo store: which stored photo a path resolves to, reading an upload into a photo, and the
//! photo metadata Graph answers.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::GraphState;
use super::auth::Caller;
use super::error::GraphError;
use super::paths::{Owner, PHOTO_SIZES, PhotoPath};
use super::recording::{Trace, content_length};
use crate::util::{Body, drain, json, read, sha256, write};

/// A stored photo.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPhoto {
    /// The bytes as uploaded.
    pub bytes: Bytes,
    /// The media type: the declared `image/*` type, else sniffed from the bytes.
    pub content_type: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Pixel width, when the format could be read (JPEG, PNG, GIF).
    pub width: Option<u32>,
    /// Pixel height, when the format could be read.
    pub height: Option<u32>,
}

impl StoredPhoto {
    /// The ETag Graph sends with the photo's bytes (the same as its `@odata.mediaEtag`); a size
    /// Exchange made of it has its own.
    pub fn etag(&self, size: Option<u32>) -> String {
        let short = &self.sha256[..16.min(self.sha256.len())];
        match size {
            None => format!("\"{short}\""),
            Some(n) => format!("\"{short}-{n}\""),
        }
    }

    /// The photo's bytes as Graph answers a `GET …/$value`: its type and ETag, or 304 when the
    /// request's `If-None-Match` names that ETag.
    pub(super) fn answer(
        &self,
        parts: &Parts,
        size: Option<u32>,
        bytes: Bytes,
        content_type: &str,
    ) -> Response<Body> {
        let etag = self.etag(size);
        let matches = parts
            .headers
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|h| {
                h.split(',')
                    .map(str::trim)
                    .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
            });
        let mut resp = if matches {
            let mut r = Response::new(crate::util::Body::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = Response::new(Body::new(bytes));
            if let Ok(v) = HeaderValue::from_str(content_type) {
                r.headers_mut().insert(CONTENT_TYPE, v);
            }
            r
        };
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(ETAG, v);
        }
        resp
    }

    /// The photo as stored: with its digest and, when readable, its dimensions.
    pub(super) fn of(bytes: Bytes, content_type: String) -> StoredPhoto {
        let (width, height) = dimensions(&bytes).unzip();
        StoredPhoto {
            sha256: hex::encode(sha256(&bytes)),
            bytes,
            content_type,
            width,
            height,
        }
    }
}

impl GraphState {
    /// The store key and normalized target of a path, or 404.
    pub(super) fn resolve(
        &self,
        path: &PhotoPath,
        caller: Option<&Caller>,
    ) -> Result<(String, String), GraphError> {
        let not_found = |id: &str| {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                ),
            )
        };
        let user_id = match &path.owner {
            Owner::Group(id) => {
                let g = self.directory.group(id).ok_or_else(|| not_found(id))?;
                return Ok((
                    format!("g:{}", g.id),
                    format!("/groups/{}/photo/$value", g.id),
                ));
            }
            Owner::Me => {
                let oid = caller.map(|c| c.oid.as_str()).unwrap_or_default();
                self.directory
                    .user(oid)
                    .ok_or_else(|| not_found(oid))?
                    .id
                    .clone()
            }
            Owner::User(id) => self
                .directory
                .user(id)
                .ok_or_else(|| not_found(id))?
                .id
                .clone(),
        };
        let Some(contact) = &path.contact else {
            return Ok((
                format!("u:{user_id}"),
                format!("/users/{user_id}/photo/$value"),
            ));
        };
        let item_not_found = || {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
        };
        if let Some(f) = &path.folder
            && !self.directory.has_folder(&user_id, f)
        {
            return Err(item_not_found());
        }
        let c = self
            .directory
            .contact(&user_id, path.folder.as_deref(), contact)
            .ok_or_else(item_not_found)?;
        let target = match &path.folder {
            Some(f) => format!(
                "/users/{user_id}/contactFolders/{f}/contacts/{}/photo/$value",
                c.id
            ),
            None => format!("/users/{user_id}/contacts/{}/photo/$value", c.id),
        };
        Ok((format!("c:{user_id}:{}", c.id), target))
    }

    pub(super) async fn upload(
        &self,
        parts: &Parts,
        body: &mut Option<Incoming>,
        trace: &mut Trace,
    ) -> Result<StoredPhoto, GraphError> {
        if parts.headers.contains_key(CONTENT_ENCODING) {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Content-Encoding is not supported for photo uploads.",
            ));
        }
        let declared = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !(declared.starts_with("image/") || declared == "application/octet-stream") {
            return Err(GraphError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "Content type '{declared}' is not supported: send image/jpeg (or another image/* type) or application/octet-stream."
                ),
            ));
        }
        let too_large = || {
            GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "The request body must be smaller than {} bytes.",
                    self.max_bytes
                ),
            )
        };
        let declared_len = content_length(parts);
        if declared_len.is_some_and(|n| n >= self.max_bytes as u64) {
            return Err(too_large());
        }
        let Some(mut incoming) = body.take() else {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "No request body.",
            ));
        };
        let capacity = declared_len
            .map_or(64 * 1024, |n| n as usize)
            .min(self.max_bytes);
        let mut buf = BytesMut::with_capacity(capacity);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Err(_) => {
                    return Err(GraphError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "RequestTimeout",
                        "The request body was not received in time.",
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err(GraphError::new(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "The request body could not be read.",
                    ));
                }
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        if buf.len() + data.len() >= self.max_bytes {
                            trace.bytes = buf.len() + data.len();
                            // Stop keeping bytes, but read the rest so the 413 is not lost to a reset.
                            drain(incoming, 0).await;
                            return Err(too_large());
                        }
                        buf.extend_from_slice(data);
                    }
                }
            }
        }
        let bytes = buf.freeze();
        trace.bytes = bytes.len();
        if bytes.is_empty() {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The photo is empty.",
            ));
        }
        let content_type = if declared.starts_with("image/") {
            declared
        } else {
            sniff(&bytes)
                .unwrap_or("application/octet-stream")
                .to_string()
        };
        let photo = StoredPhoto::of(bytes, content_type);
        trace.sha256 = photo.sha256.clone();
        // Decoding is CPU work: off the server's async workers.
        let seen = photo.bytes.clone();
        trace.image = tokio::task::spawn_blocking(move || super::inspect::inspect(&seen))
            .await
            .ok();
        Ok(photo)
    }

    /// `GET …/photos/{size}[/$value]`: one of Exchange's square sizes of the stored photo,
    /// made from it (centre-cropped and scaled, JPEG); 404 for a size Exchange does not keep or
    /// one larger than the photo (Exchange never upscales).
    pub(super) async fn sized(
        &self,
        parts: &Parts,
        path: &PhotoPath,
        key: &str,
    ) -> Result<Response<Body>, GraphError> {
        let not_found = || {
            GraphError::new(
                StatusCode::NOT_FOUND,
                "ImageNotFound",
                "The photo wasn't found.",
            )
        };
        let size = path.size.unwrap_or(0);
        if !PHOTO_SIZES.contains(&size) {
            return Err(not_found());
        }
        let photo = read(&self.photos).get(key).cloned().ok_or_else(not_found)?;
        let fits = match (photo.width, photo.height) {
            (Some(w), Some(h)) => w.min(h) >= size,
            _ => false,
        };
        if !fits {
            return Err(not_found());
        }
        if !path.value {
            return Ok(json(
                StatusCode::OK,
                &json!({
                    "@odata.mediaContentType": "image/jpeg",
                    "@odata.mediaEtag": photo.etag(Some(size)),
                    "id": format!("{size}X{size}"),
                    "height": size,
                    "width": size,
                }),
            ));
        }
        let bytes = photo.bytes.clone();
        let scaled = tokio::task::spawn_blocking(move || scale(&bytes, size))
            .await
            .ok()
            .flatten()
            .ok_or_else(not_found)?;
        Ok(photo.answer(parts, Some(size), Bytes::from(scaled), "image/jpeg"))
    }

    /// `GET …/photos`: the sizes Exchange keeps of the stored photo (those not larger than it).
    pub(super) fn sizes_list(&self, photo: Option<&StoredPhoto>) -> Value {
        let value: Vec<Value> = photo
            .map(|p| {
                let edge = p.width.unwrap_or(0).min(p.height.unwrap_or(0));
                PHOTO_SIZES
                    .iter()
                    .filter(|s| **s <= edge)
                    .map(|s| {
                        json!({
                            "@odata.mediaContentType": "image/jpeg",
                            "@odata.mediaEtag": p.etag(Some(*s)),
                            "id": format!("{s}X{s}"),
                            "height": s,
                            "width": s,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({ "value": value })
    }

    pub(super) fn metadata(
        &self,
        path: &PhotoPath,
        key: &str,
        photo: Option<&StoredPhoto>,
    ) -> Value {
        let entity = match key.split(':').collect::<Vec<_>>().as_slice() {
            ["g", id] => format!("groups('{id}')"),
            ["c", user, contact] => format!("users('{user}')/contacts('{contact}')"),
            [_, id, ..] => format!("users('{id}')"),
            _ => String::new(),
        };
        let _ = path;
        let context = format!("{}/v1.0/$metadata#{entity}/photo/$entity", self.url);
        match photo {
            Some(p) => {
                let (w, h) = (p.width.unwrap_or(0), p.height.unwrap_or(0));
                json!({
                    "@odata.context": context,
                    "@odata.mediaContentType": p.content_type,
                    "@odata.mediaEtag": p.etag(None),
                    "id": format!("{w}X{h}"),
                    "height": h,
                    "width": w,
                })
            }
            // Graph answers a placeholder, not 404, when there is no photo.
            None => json!({
                "@odata.context": context,
                "@odata.mediaContentType": "image/gif",
                "id": "1X1",
                "height": 1,
                "width": 1,
            }),
        }
    }

    /// Resolves a path like `/users/{id}`, `/groups/{id}/photo/$value` or `/v1.0/users/{u}/contactFolders/{f}/contacts/{c}`.
    pub(super) fn key_of(&self, path: &str) -> Option<String> {
        let p = path.trim_end_matches('/');
        let p = p.strip_prefix("/v1.0").unwrap_or(p);
        let p = p
            .strip_suffix("/photo/$value")
            .or_else(|| p.strip_suffix("/photo"))
            .unwrap_or(p);
        let parsed = PhotoPath::parse(&format!("/v1.0{p}/photo/$value"))?;
        self.resolve(&parsed, None).ok().map(|(key, _)| key)
    }
}

pub(super) fn write_lock_remove(photos: &RwLock<HashMap<String, StoredPhoto>>, key: &str) {
    write(photos).remove(key);
}

/// The photo centre-cropped to a square of `size` and encoded as a JPEG (quality 85).
fn scale(bytes: &[u8], size: u32) -> Option<Vec<u8>> {
    let img = image::load_from_memory(bytes).ok()?;
    let square = img
        .resize_to_fill(size, size, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&square)
        .ok()?;
    Some(out)
}

/// The image format of `bytes`, from its magic number.
pub(super) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF8") {
        Some("image/gif")
    } else {
        None
    }
}

/// Width and height from a JPEG SOF, PNG IHDR or GIF header.
pub(super) fn dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])))
    };
    match sniff(b)? {
        "image/png" => {
            let w = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
            let h = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
            Some((w, h))
        }
        "image/gif" => {
            let w = u32::from(u16::from_le_bytes(b.get(6..8)?.try_into().ok()?));
            let h = u32::from(u16::from_le_bytes(b.get(8..10)?.try_into().ok()?));
            Some((w, h))
        }
        _ => {
            let mut i = 2;
            while i + 3 < b.len() {
                if b[i] != 0xFF {
                    return None;
                }
                let marker = b[i + 1];
                if marker == 0xFF {
                    i += 1;
                    continue;
                }
                if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    return Some((be16(i + 7)?, be16(i + 5)?));
                }
                if matches!(marker, 0xD0..=0xD9 | 0x01) {
                    i += 2;
                    continue;
                }
                i += 2 + be16(i + 2)? as usize;
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jpeg_dimensions() {
        let jpeg = crate::sample_jpeg(24, 16, "x");
        assert_eq!(dimensions(&jpeg), Some((24, 16)));
    }
}
