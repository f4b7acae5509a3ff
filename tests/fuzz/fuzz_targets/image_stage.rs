//! `ImageStage::prepare_blocking` (the image stage's synchronous entry point) on arbitrary
//! bytes: the first byte picks mode, crop and byte budget, the rest is the photo. No panic, no
//! unbounded allocation (limits 4 MP / 4,000 px, so one run stays small); what is accepted is a
//! JPEG (SOI … EOI), its receipt sizes match, it fits the budget, and, outside passthrough, it
//! carries no EXIF/XMP (APP1), IPTC (APP13) or comment segment before its scan and its size is
//! within the maximum edge when re-encoded.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use photo_gateway::image::{Crop, ImageLimits, ImageOptions, ImageStage, Mode};

const MAX_EDGE: u32 = 96;

fn stage() -> &'static ImageStage {
    static STAGE: OnceLock<ImageStage> = OnceLock::new();
    STAGE.get_or_init(|| {
        ImageStage::new(ImageLimits {
            max_pixels: 4_000_000,
            max_input_edge: 4_000,
            workers: 1,
            queue_timeout: Duration::from_secs(1),
        })
    })
}

/// Marker segments before the first scan.
fn markers_before_scan(j: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= j.len() && j[i] == 0xFF {
        let m = j[i + 1];
        out.push(m);
        if m == 0xDA {
            break;
        }
        i += 2 + usize::from(u16::from_be_bytes([j[i + 2], j[i + 3]]));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mode = match flags % 3 {
        0 => Mode::Normalize,
        1 => Mode::Strip,
        _ => Mode::Passthrough,
    };
    let crop = if flags & 0x04 != 0 { Crop::None } else { Crop::Center };
    let max_bytes = (flags & 0x08 != 0).then_some(1_500 + usize::from(flags >> 4) * 500);
    let o = ImageOptions {
        mode,
        crop,
        max_edge: MAX_EDGE,
        quality: 85,
        background: [255, 255, 255],
        max_bytes,
    };
    let Ok(p) = stage().prepare_blocking(Bytes::copy_from_slice(input), &o) else {
        return;
    };
    assert!(p.bytes.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    assert_eq!(p.output.bytes, p.bytes.len());
    assert_eq!(p.input.bytes, input.len());
    if mode == Mode::Passthrough {
        assert_eq!(p.bytes.as_ref(), input);
        return;
    }
    assert!(p.bytes.ends_with(&[0xFF, 0xD9]), "no EOI");
    if let Some(m) = max_bytes {
        assert!(p.bytes.len() <= m, "{} over the budget {m}", p.bytes.len());
    }
    for m in markers_before_scan(&p.bytes) {
        assert!(m != 0xE1 && m != 0xED && m != 0xFE, "metadata segment {m:#x} left");
    }
    if p.output.quality.is_some() && mode == Mode::Normalize {
        let (w, h) = (p.output.width.unwrap_or(0), p.output.height.unwrap_or(0));
        assert!(w >= 1 && h >= 1 && w.max(h) <= MAX_EDGE, "{w}x{h}");
        if crop == Crop::Center {
            assert_eq!(w, h);
        }
    }
});
