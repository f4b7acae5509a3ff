//! Header reading: what the bytes are (sniffed, never the declared type), their dimensions,
//! EXIF orientation and which metadata they carry, from the headers alone (no pixel decoding, no
//! decompression). Every offset is checked against the input; nothing here allocates in
//! proportion to what a header claims.

use super::ImageError;

/// A type the stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
            Format::Gif => "image/gif",
        }
    }
}

/// What a JPEG's headers say (up to the first scan).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JpegHeader {
    /// The SOF marker's low nibble: 0 baseline, 1 extended, 2 progressive, others lossless or
    /// arithmetic.
    pub sof: u8,
    pub precision: u8,
    pub components: u8,
    /// Adobe APP14's transform flag, if the segment is present (0: RGB/CMYK, 1: YCbCr, 2: YCCK).
    pub adobe_transform: Option<u8>,
}

impl JpegHeader {
    /// Baseline, 8-bit, YCbCr or grayscale: what Graph and every viewer read.
    pub fn is_baseline_ycbcr_or_gray(&self) -> bool {
        self.sof == 0
            && self.precision == 8
            && (self.components == 1
                || (self.components == 3 && self.adobe_transform.is_none_or(|t| t != 0)))
    }
}

/// What the headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// EXIF orientation 1..=8 (JPEG only; an out-of-range value is ignored).
    pub orientation: Option<u16>,
    /// Metadata kinds present (`exif`, `xmp`, `iptc`, `comment`, `icc`, `app`, `text`,
    /// `trailer`), in the
    /// order of [`KINDS`].
    pub metadata: Vec<&'static str>,
    pub jpeg: Option<JpegHeader>,
}

/// The metadata kinds the receipt names, in a stable order.
pub const KINDS: [&str; 8] = [
    "exif", "xmp", "iptc", "comment", "icc", "app", "text", "trailer",
];

pub(crate) fn add_kind(list: &mut Vec<&'static str>, kind: &'static str) {
    if !list.contains(&kind) {
        list.push(kind);
        list.sort_by_key(|k| KINDS.iter().position(|x| x == k));
    }
}

/// The sniffed type of bytes the stage does not read (for `Unsupported { detected }`).
pub fn detect_other(b: &[u8]) -> Option<&'static str> {
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        let brand = &b[8..12];
        return Some(match brand {
            b"avif" | b"avis" => "image/avif",
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => "image/heic",
            _ => return None,
        });
    }
    if b.starts_with(b"BM") {
        return Some("image/bmp");
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return Some("image/tiff");
    }
    if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL ") {
        return Some("image/jxl");
    }
    None
}

/// The format of `b`, sniffed from its first bytes.
pub fn sniff(b: &[u8]) -> Option<Format> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
        Some(Format::WebP)
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else {
        None
    }
}

fn unreadable(why: &str) -> ImageError {
    ImageError::Unreadable(why.to_string())
}

/// Reads the headers of `b`.
pub fn probe(b: &[u8]) -> Result<Probe, ImageError> {
    let Some(format) = sniff(b) else {
        return Err(ImageError::Unsupported {
            detected: detect_other(b),
        });
    };
    let p = match format {
        Format::Jpeg => probe_jpeg(b)?,
        Format::Png => probe_png(b)?,
        Format::WebP => probe_webp(b)?,
        Format::Gif => probe_gif(b)?,
    };
    if p.width == 0 || p.height == 0 {
        return Err(unreadable("zero dimension"));
    }
    Ok(p)
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Classifies one JPEG APPn/COM segment by marker and payload; `None` for what is kept as
/// rendering data (APP0 JFIF, APP2 ICC, APP14 Adobe).
pub fn jpeg_metadata_kind(marker: u8, payload: &[u8]) -> Option<&'static str> {
    match marker {
        0xFE => Some("comment"),
        0xE0 if payload.starts_with(b"JFIF\0") => None,
        0xE1 if payload.starts_with(b"Exif\0") => Some("exif"),
        0xE1 if payload.starts_with(b"http://ns.adobe.com/xap/1.0/")
            || payload.starts_with(b"http://ns.adobe.com/xmp/extension/") =>
        {
            Some("xmp")
        }
        0xE2 if payload.starts_with(b"ICC_PROFILE\0") => None,
        0xED => Some("iptc"),
        0xEE if payload.starts_with(b"Adobe") => None,
        0xE0..=0xEF => Some("app"),
        _ => None,
    }
}

fn probe_jpeg(b: &[u8]) -> Result<Probe, ImageError> {
    let mut i = 2;
    let mut header = JpegHeader::default();
    let mut dims = None;
    let mut orientation = None;
    let mut metadata = Vec::new();
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if b.get(i) != Some(&0xFF) {
            return Err(unreadable("JPEG: no marker where one was due"));
        }
        let marker = *b
            .get(i + 1)
            .ok_or_else(|| unreadable("JPEG: truncated header"))?;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0xD9 => return Err(unreadable("JPEG: EOI before any scan")),
            _ => {}
        }
        let len = usize::from(be16(b, i + 2).ok_or_else(|| unreadable("JPEG: truncated header"))?);
        if len < 2 || i + 2 + len > b.len() {
            return Err(unreadable("JPEG: segment past the end"));
        }
        let payload = &b[i + 4..i + 2 + len];
        match marker {
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                if payload.len() < 6 {
                    return Err(unreadable("JPEG: short SOF"));
                }
                header.sof = marker & 0x0F;
                header.precision = payload[0];
                let h = u32::from(u16::from_be_bytes([payload[1], payload[2]]));
                let w = u32::from(u16::from_be_bytes([payload[3], payload[4]]));
                header.components = payload[5];
                dims = Some((w, h));
            }
            0xDA => break,
            0xEE if payload.starts_with(b"Adobe") && payload.len() >= 12 => {
                header.adobe_transform = Some(payload[11]);
            }
            0xE1 if payload.starts_with(b"Exif\0") && orientation.is_none() => {
                orientation = super::exif::orientation(&payload[6.min(payload.len())..]);
            }
            0xE2 if payload.starts_with(b"ICC_PROFILE\0") => add_kind(&mut metadata, "icc"),
            _ => {}
        }
        if let Some(kind) = jpeg_metadata_kind(marker, payload) {
            add_kind(&mut metadata, kind);
        }
        i += 2 + len;
    }
    let (width, height) = dims.ok_or_else(|| unreadable("JPEG: scan before SOF"))?;
    Ok(Probe {
        format: Format::Jpeg,
        width,
        height,
        orientation,
        metadata,
        jpeg: Some(header),
    })
}

fn probe_png(b: &[u8]) -> Result<Probe, ImageError> {
    // IHDR must be the first chunk.
    if b.get(12..16) != Some(b"IHDR") {
        return Err(unreadable("PNG: no IHDR"));
    }
    let width = be32(b, 16).ok_or_else(|| unreadable("PNG: short IHDR"))?;
    let height = be32(b, 20).ok_or_else(|| unreadable("PNG: short IHDR"))?;
    // Walk the chunk headers (no decompression) for metadata before the image data ends.
    let mut metadata = Vec::new();
    let mut i = 8usize;
    while let (Some(len), Some(kind)) = (be32(b, i), b.get(i + 4..i + 8)) {
        match kind {
            b"eXIf" => add_kind(&mut metadata, "exif"),
            b"iCCP" => add_kind(&mut metadata, "icc"),
            b"tEXt" | b"zTXt" | b"iTXt" => add_kind(&mut metadata, "text"),
            b"IEND" => break,
            _ => {}
        }
        i = match i.checked_add(12).and_then(|v| v.checked_add(len as usize)) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(Probe {
        format: Format::Png,
        width,
        height,
        orientation: None,
        metadata,
        jpeg: None,
    })
}

fn probe_webp(b: &[u8]) -> Result<Probe, ImageError> {
    let short = || unreadable("WebP: short header");
    let kind = b.get(12..16).ok_or_else(short)?;
    let d = 20;
    let (width, height) = match kind {
        b"VP8 " => {
            // Frame tag (3), start code 9D 01 2A, then 14-bit width and height.
            if b.get(d + 3..d + 6) != Some(&[0x9D, 0x01, 0x2A][..]) {
                return Err(unreadable("WebP: bad VP8 start code"));
            }
            let w = u32::from(
                u16::from_le_bytes([
                    *b.get(d + 6).ok_or_else(short)?,
                    *b.get(d + 7).ok_or_else(short)?,
                ]) & 0x3FFF,
            );
            let h = u32::from(
                u16::from_le_bytes([
                    *b.get(d + 8).ok_or_else(short)?,
                    *b.get(d + 9).ok_or_else(short)?,
                ]) & 0x3FFF,
            );
            (w, h)
        }
        b"VP8L" => {
            if b.get(d) != Some(&0x2F) {
                return Err(unreadable("WebP: bad VP8L signature"));
            }
            let v = le32(b, d + 1).ok_or_else(short)?;
            ((v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => {
            let p = b.get(d..d + 10).ok_or_else(short)?;
            let w = u32::from_le_bytes([p[4], p[5], p[6], 0]) + 1;
            let h = u32::from_le_bytes([p[7], p[8], p[9], 0]) + 1;
            (w, h)
        }
        _ => return Err(unreadable("WebP: unknown first chunk")),
    };
    let mut metadata = Vec::new();
    let mut i = 12usize;
    while let (Some(kind), Some(len)) = (b.get(i..i + 4), le32(b, i + 4)) {
        match kind {
            b"EXIF" => add_kind(&mut metadata, "exif"),
            b"XMP " => add_kind(&mut metadata, "xmp"),
            b"ICCP" => add_kind(&mut metadata, "icc"),
            _ => {}
        }
        let padded = (len as usize).saturating_add((len & 1) as usize);
        i = match i.checked_add(8).and_then(|v| v.checked_add(padded)) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(Probe {
        format: Format::WebP,
        width,
        height,
        orientation: None,
        metadata,
        jpeg: None,
    })
}

fn probe_gif(b: &[u8]) -> Result<Probe, ImageError> {
    let w = b.get(6..8).ok_or_else(|| unreadable("GIF: short header"))?;
    let h = b
        .get(8..10)
        .ok_or_else(|| unreadable("GIF: short header"))?;
    Ok(Probe {
        format: Format::Gif,
        width: u32::from(u16::from_le_bytes([w[0], w[1]])),
        height: u32::from(u16::from_le_bytes([h[0], h[1]])),
        orientation: None,
        metadata: Vec::new(),
        jpeg: None,
    })
}
