//! Recognises what the bytes really are; the declared content type is never trusted.

/// The media type the gateway forwards (the only one Graph documents for photo updates).
pub const JPEG: &str = "image/jpeg";
/// PNG.
pub const PNG: &str = "image/png";
/// WebP.
pub const WEBP: &str = "image/webp";
/// GIF.
pub const GIF: &str = "image/gif";

/// The types a caller may send (the image stage reads them; some modes only JPEG).
pub fn supported(head: &[u8]) -> Option<&'static str> {
    detect(head).filter(|t| [JPEG, PNG, WEBP, GIF].contains(t))
}

/// Names the format of `head` (the first bytes of a body) when it is a known image or archive.
pub fn detect(head: &[u8]) -> Option<&'static str> {
    const SIGS: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"BM", "image/bmp"),
        (b"II*\0", "image/tiff"),
        (b"MM\0*", "image/tiff"),
        (b"\x1f\x8b", "application/gzip"),
        (b"PK\x03\x04", "application/zip"),
        (b"%PDF", "application/pdf"),
        (b"(\xb5/\xfd", "application/zstd"),
    ];
    if is_jpeg(head) {
        return Some(JPEG);
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some("image/heif");
    }
    SIGS.iter()
        .find(|(sig, _)| head.starts_with(sig))
        .map(|(_, name)| *name)
}

/// A JPEG starts with SOI (`FF D8`) followed by another marker (`FF xx`, xx not 00/FF).
pub fn is_jpeg(head: &[u8]) -> bool {
    head.len() >= 4
        && head[0] == 0xFF
        && head[1] == 0xD8
        && head[2] == 0xFF
        && head[3] >= 0xC0
        && head[3] != 0xFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_jpeg_and_refuses_look_alikes() {
        assert!(is_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]));
        assert!(is_jpeg(&[0xFF, 0xD8, 0xFF, 0xDB]));
        assert!(!is_jpeg(&[0xFF, 0xD8, 0xFF]));
        assert!(!is_jpeg(&[0xFF, 0xD8, 0x00, 0xE0]));
        assert!(!is_jpeg(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(detect(b"\x1f\x8b\x08"), Some("application/gzip"));
        assert_eq!(detect(b"hello"), None);
        assert_eq!(supported(b"\x89PNG\r\n\x1a\n...."), Some(PNG));
        assert_eq!(supported(b"RIFF\0\0\0\0WEBPVP8 "), Some(WEBP));
        assert_eq!(supported(b"GIF89a......"), Some(GIF));
        assert_eq!(supported(&[0xFF, 0xD8, 0xFF, 0xE1, 0, 0]), Some(JPEG));
        assert_eq!(supported(b"BM.........."), None);
        assert_eq!(supported(b"\0\0\0\x18ftypheic"), None);
    }
}
