//! Request bodies: JPEGs of any size, multipart forms, and the digest Graph records.

/// The gateway's default photo limit: a body of exactly this many bytes is already refused.
pub const PHOTO_LIMIT: usize = 4_194_304;

/// The boundary [`multipart_body`] uses.
pub const MULTIPART_BOUNDARY: &str = "----photo-gateway-test-boundary-7MA4YWxkTrZu0gW";

/// A JPEG of exactly `len` bytes (SOI, APP0, filler, EOI), content varying with `seed`.
pub fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    assert!(len >= 6);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    let mut x = seed as u32 | 1;
    while v.len() < len - 2 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8);
    }
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// SHA-256, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// One multipart part: name, optional filename, bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// Builds a multipart/form-data body from parts; returns the content type and the body.
pub fn multipart_body(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = MULTIPART_BOUNDARY;
    let mut out = Vec::new();
    for (name, filename, bytes) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}
