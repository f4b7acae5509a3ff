//! Request bodies: JPEGs of any size, multipart forms, and the digest Graph records.

/// The gateway's default photo limit: a body of exactly this many bytes is already refused.
pub const PHOTO_LIMIT: usize = 4_194_304;

/// The boundary [`multipart_body`] uses.
pub const MULTIPART_BOUNDARY: &str = "----photo-gateway-test-boundary-7MA4YWxkTrZu0gW";

/// The smallest JPEG [`jpeg`] makes: SOI, an empty COM, DQT, SOF0, DHT, SOS, one byte of scan
/// data, EOI.
pub const JPEG_MIN_LEN: usize = 141;

/// A valid baseline JPEG (8×8 grey pixels) of exactly `len` bytes, at least [`JPEG_MIN_LEN`]: its
/// quantization table and the comment (COM) segments that make up the size are pseudo-random bytes
/// drawn from `seed`, so different seeds give different photos of the same size.
pub fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    assert!(
        len >= JPEG_MIN_LEN,
        "jpeg({len}, _): the smallest JPEG is {JPEG_MIN_LEN} bytes"
    );
    let mut x = (u32::from(seed) << 8) | 0x5A;
    let mut random = move || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (x >> 16) as u8
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&[0xFF, 0xD8]);
    // A segment is 4 bytes of marker and length plus up to 65,533 bytes of payload; never leave
    // fewer than 4 bytes for the last one.
    let mut missing = len - (JPEG_MIN_LEN - 4);
    while missing > 0 {
        let mut seg = missing.min(4 + 65_533);
        if missing - seg > 0 && missing - seg < 4 {
            seg -= 4;
        }
        v.extend_from_slice(&[0xFF, 0xFE]);
        v.extend_from_slice(&u16::try_from(seg - 2).unwrap().to_be_bytes());
        v.extend((4..seg).map(|_| random()));
        missing -= seg;
    }
    // DQT: table 0, 8-bit precision; any values 1..=255 decode.
    v.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    v.extend((0..64).map(|_| random().max(1)));
    // SOF0: 8-bit samples, 8×8, one component, no subsampling, quantization table 0.
    v.extend_from_slice(&[
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,
    ]);
    // DHT: a DC and an AC table with a single 1-bit code each (DC category 0, end-of-block).
    v.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x26]);
    for class in [0x00, 0x10] {
        v.extend_from_slice(&[class, 1]);
        v.extend_from_slice(&[0; 15]);
        v.push(0x00);
    }
    v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    // The one block: DC difference 0 and end-of-block (two 0 bits), padded with 1 bits.
    v.push(0x3F);
    v.extend_from_slice(&[0xFF, 0xD9]);
    assert_eq!(v.len(), len);
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

#[test]
fn jpegs_are_well_formed_of_the_exact_size_and_differ_by_seed() {
    let one_segment = JPEG_MIN_LEN - 4 + 4 + 65_533;
    let sizes = (0..6)
        .flat_map(|d| [JPEG_MIN_LEN + d, one_segment - 2 + d])
        .chain([1_000, 3 * 65_537, PHOTO_LIMIT - 1]);
    for len in sizes {
        for seed in [0, 1, 2, 255] {
            let j = jpeg(len, seed);
            assert_eq!(j.len(), len);
            assert_eq!(
                photo_gateway::upload::jpeg::check(&j),
                Ok(()),
                "jpeg({len}, {seed})"
            );
        }
        assert_ne!(jpeg(len, 2), jpeg(len, 3), "{len}");
    }
}
