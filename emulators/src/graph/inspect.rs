//! What the Graph emulator makes of a photo it receives: the format, whether it decodes, its size
//! in pixels, whether a JPEG is baseline, and whether it still carries EXIF, XMP or GPS metadata,
//! recorded per write so tests can check what the gateway really sent. Real Graph does not say
//! any of this; the emulator looks so that the image stage can be tested end to end.

use std::io::Cursor;

use image::{ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};

/// Decodes at most this many pixels per edge: an upload is under 4 MiB, and a test never needs
/// more; a larger header is recorded as not decoded.
const MAX_EDGE: u32 = 16_384;
/// Memory one decode may take.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// What the emulator saw in an uploaded photo.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceivedImage {
    /// `jpeg`, `png`, `webp`, `gif`, … or `unknown`.
    pub format: String,
    /// Width from the decoder (`None` when the header could not be read).
    pub width: Option<u32>,
    /// Height from the decoder.
    pub height: Option<u32>,
    /// The whole image decoded without error.
    pub decoded: bool,
    /// For a JPEG: its frame is baseline (SOF0), not progressive or another process.
    pub baseline: Option<bool>,
    /// EXIF is present (a JPEG APP1 `Exif`, a PNG `eXIf`, a WebP `EXIF` chunk).
    pub exif: bool,
    /// XMP is present (a JPEG APP1 of Adobe's namespace, a PNG `iTXt` `XML:com.adobe.xmp`, a
    /// WebP `XMP ` chunk).
    pub xmp: bool,
    /// The EXIF carries a GPS IFD (tag 0x8825), or the XMP names `exif:GPS…` properties.
    pub gps: bool,
    /// EXIF orientation, if any.
    pub orientation: Option<u16>,
}

/// Looks at one uploaded photo (CPU work: call it off the async workers).
pub fn inspect(bytes: &[u8]) -> ReceivedImage {
    let format = image::guess_format(bytes).ok();
    let mut out = ReceivedImage {
        format: format
            .map(|f| f.extensions_str().first().copied().unwrap_or("unknown"))
            .map(|e| if e == "jpg" { "jpeg" } else { e })
            .unwrap_or("unknown")
            .to_string(),
        ..ReceivedImage::default()
    };
    match format {
        Some(ImageFormat::Jpeg) => jpeg_segments(bytes, &mut out),
        Some(ImageFormat::Png) => png_chunks(bytes, &mut out),
        Some(ImageFormat::WebP) => webp_chunks(bytes, &mut out),
        _ => {}
    }
    let Some(format) = format else {
        return out;
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_EDGE);
    limits.max_image_height = Some(MAX_EDGE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    if let Ok(decoder) = reader.into_decoder() {
        let (w, h) = decoder.dimensions();
        out.width = Some(w);
        out.height = Some(h);
        out.decoded = image::DynamicImage::from_decoder(decoder).is_ok();
    }
    out
}

/// The big-endian or little-endian reader of a TIFF structure.
struct Tiff<'a> {
    data: &'a [u8],
    big: bool,
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.data.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.data.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

/// Reads IFD0 of a TIFF (EXIF) block: GPS pointer and orientation.
fn exif_block(tiff: &[u8], out: &mut ReceivedImage) {
    out.exif = true;
    let big = match tiff.get(0..2) {
        Some(b"MM") => true,
        Some(b"II") => false,
        _ => return,
    };
    let t = Tiff { data: tiff, big };
    let Some(ifd) = t.u32(4).map(|o| o as usize) else {
        return;
    };
    let Some(count) = t.u16(ifd) else {
        return;
    };
    for i in 0..usize::from(count.min(512)) {
        let entry = ifd + 2 + i * 12;
        match t.u16(entry) {
            Some(0x8825) => out.gps = true,
            Some(0x0112) => out.orientation = t.u16(entry + 8),
            Some(_) => {}
            None => return,
        }
    }
}

fn xmp_block(xml: &[u8], out: &mut ReceivedImage) {
    out.xmp = true;
    if xml.windows(7).any(|w| w == b"exif:GP") {
        out.gps = true;
    }
}

const XMP_NS: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

fn jpeg_segments(b: &[u8], out: &mut ReceivedImage) {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if matches!(marker, 0xD0..=0xD9 | 0x01) {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        let body = b.get(i + 4..(i + 2 + len).min(b.len())).unwrap_or(&[]);
        match marker {
            0xE1 if body.starts_with(b"Exif\0\0") => exif_block(&body[6..], out),
            0xE1 if body.starts_with(XMP_NS) => xmp_block(&body[XMP_NS.len()..], out),
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                out.baseline = Some(marker == 0xC0);
            }
            // Metadata comes before the scan; nothing after it matters here.
            0xDA => return,
            _ => {}
        }
        i += 2 + len;
    }
}

fn png_chunks(b: &[u8], out: &mut ReceivedImage) {
    let mut i = 8;
    while i + 8 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind = &b[i + 4..i + 8];
        let body = b
            .get(i + 8..(i + 8).saturating_add(len).min(b.len()))
            .unwrap_or(&[]);
        match kind {
            b"eXIf" => exif_block(body, out),
            b"iTXt" if body.starts_with(b"XML:com.adobe.xmp\0") => xmp_block(body, out),
            b"IEND" => return,
            _ => {}
        }
        i = i.saturating_add(12).saturating_add(len);
    }
}

fn webp_chunks(b: &[u8], out: &mut ReceivedImage) {
    let mut i = 12;
    while i + 8 <= b.len() {
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = b
            .get(i + 8..(i + 8).saturating_add(len).min(b.len()))
            .unwrap_or(&[]);
        match &b[i..i + 4] {
            b"EXIF" => exif_block(body.strip_prefix(b"Exif\0\0").unwrap_or(body), out),
            b"XMP " => xmp_block(body, out),
            _ => {}
        }
        i = i.saturating_add(8).saturating_add(len + (len & 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG with an APP1 EXIF block (orientation 6, a GPS pointer) and an XMP block.
    fn tagged_jpeg() -> Vec<u8> {
        let plain = crate::sample_jpeg(32, 16, "inspect");
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&2u16.to_be_bytes());
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]);
        tiff.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]);
        tiff.extend_from_slice(&[0, 0, 0, 0]);
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(&tiff);
        let mut xmp = XMP_NS.to_vec();
        xmp.extend_from_slice(b"<x:xmpmeta/>");
        let mut out = plain[..2].to_vec();
        for seg in [exif, xmp] {
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&u16::try_from(seg.len() + 2).unwrap().to_be_bytes());
            out.extend_from_slice(&seg);
        }
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn sees_format_size_metadata_and_gps() {
        let r = inspect(&tagged_jpeg());
        assert_eq!(r.format, "jpeg");
        assert_eq!((r.width, r.height), (Some(32), Some(16)));
        assert!(r.decoded);
        assert_eq!(r.baseline, Some(true));
        assert!(r.exif && r.xmp && r.gps);
        assert_eq!(r.orientation, Some(6));

        let plain = inspect(&crate::sample_jpeg(8, 8, "plain"));
        assert!(plain.decoded && !plain.exif && !plain.xmp && !plain.gps);

        let mut png = Vec::new();
        image::DynamicImage::new_rgba8(5, 3)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let r = inspect(&png);
        assert_eq!(
            (r.format.as_str(), r.width, r.height, r.decoded),
            ("png", Some(5), Some(3), true)
        );
        assert_eq!(r.baseline, None);

        let r = inspect(b"not an image at all");
        assert_eq!((r.format.as_str(), r.decoded), ("unknown", false));
        let truncated = crate::sample_jpeg(64, 64, "cut");
        let r = inspect(&truncated[..truncated.len() / 2]);
        assert!(!r.decoded);
    }
}
