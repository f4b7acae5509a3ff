//! Deterministic test images for the image stage (issue 10): the gateway's unit tests, the
//! end-to-end tests and the benchmark generate the same bytes from the same arguments (no
//! downloads, no binary fixtures except the two tiny lossy WebPs below, which no pure-Rust encoder
//! writes).
//!
//! # Marker convention
//! Every generated photo has, in its *upright* (displayed) orientation, a central square of side
//! `s = min(width, height)`; its top-left `s/8 × s/8` corner is red ([`MARKER_TOP_LEFT`]) and its
//! top-right corner is green ([`MARKER_TOP_RIGHT`]). The rest is a soft gradient (plus
//! deterministic noise where asked, so a JPEG has a phone-like size). A stage that applies EXIF
//! orientation and centre-crops correctly therefore outputs red at its top-left and green at its
//! top-right, whatever the orientation the input was stored with.

use std::io::Write;

/// The upright top-left marker colour.
pub const MARKER_TOP_LEFT: [u8; 3] = [230, 20, 20];
/// The upright top-right marker colour.
pub const MARKER_TOP_RIGHT: [u8; 3] = [20, 200, 40];

/// Maps a displayed (upright) pixel to the stored pixel it comes from, for EXIF orientation
/// `orientation` (1..=8; anything else is 1) and a stored image of `stored_w × stored_h`.
pub fn stored_from_display(
    orientation: u16,
    stored_w: u32,
    stored_h: u32,
    dx: u32,
    dy: u32,
) -> (u32, u32) {
    let (w, h) = (stored_w, stored_h);
    match orientation {
        2 => (w - 1 - dx, dy),
        3 => (w - 1 - dx, h - 1 - dy),
        4 => (dx, h - 1 - dy),
        5 => (dy, dx),
        6 => (dy, h - 1 - dx),
        7 => (w - 1 - dy, h - 1 - dx),
        8 => (w - 1 - dy, dx),
        _ => (dx, dy),
    }
}

/// Whether orientation `o` swaps width and height for display.
pub fn swaps_axes(orientation: u16) -> bool {
    (5..=8).contains(&orientation)
}

fn hash(x: u32, y: u32) -> u32 {
    let mut h = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h
}

/// The upright colour at display pixel (x, y) of a `dw × dh` photo.
fn upright_pixel(dw: u32, dh: u32, x: u32, y: u32, noise: u32) -> [u8; 3] {
    let s = dw.min(dh);
    let m = (s / 8).max(1);
    let (ox, oy) = ((dw - s) / 2, (dh - s) / 2);
    if y >= oy && y < oy + m {
        if x >= ox && x < ox + m {
            return MARKER_TOP_LEFT;
        }
        if x + m >= ox + s && x < ox + s {
            return MARKER_TOP_RIGHT;
        }
    }
    let gx = (x * 160 / dw.max(1)) as i32 + 50;
    let gy = (y * 120 / dh.max(1)) as i32 + 60;
    let n = if noise == 0 {
        0
    } else {
        (hash(x, y) % (2 * noise + 1)) as i32 - noise as i32
    };
    let c = |v: i32| v.clamp(0, 255) as u8;
    [c(gx + n), c(gy + n), c(170 - gx / 3 + n)]
}

/// Stored RGB pixels of a photo whose stored size is `w × h`, written with orientation `o`.
fn stored_rgb(w: u32, h: u32, orientation: u16, noise: u32) -> Vec<u8> {
    let (dw, dh) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let mut out = vec![0u8; w as usize * h as usize * 3];
    for dy in 0..dh {
        for dx in 0..dw {
            let (sx, sy) = stored_from_display(orientation, w, h, dx, dy);
            let i = (sy as usize * w as usize + sx as usize) * 3;
            out[i..i + 3].copy_from_slice(&upright_pixel(dw, dh, dx, dy, noise));
        }
    }
    out
}

/// Upright RGB pixels of `w × h` (orientation 1).
pub fn upright_rgb(w: u32, h: u32, noise: u32) -> Vec<u8> {
    stored_rgb(w, h, 1, noise)
}

fn encode_jpeg(
    pixels: &[u8],
    w: u32,
    h: u32,
    color: jpeg_encoder::ColorType,
    quality: u8,
    progressive: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_progressive(progressive);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(pixels, w as u16, h as u16, color)
        .expect("sample JPEG encodes");
    out
}

/// Inserts `segments` (each a whole marker segment, `FF xx len …`) right after SOI, or after
/// APP0 when the JPEG starts with one.
pub fn insert_segments(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut at = 2;
    if jpeg.len() > 6 && jpeg[2] == 0xFF && jpeg[3] == 0xE0 {
        at = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    }
    let mut out = jpeg[..at].to_vec();
    for s in segments {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// One marker segment.
pub fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 65_533);
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

// ---- EXIF (TIFF) writing ----

struct Entry {
    tag: u16,
    typ: u16,
    count: u32,
    data: Vec<u8>,
}

fn ascii(tag: u16, s: &str) -> Entry {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    Entry {
        tag,
        typ: 2,
        count: data.len() as u32,
        data,
    }
}

fn short(tag: u16, v: u16) -> Entry {
    Entry {
        tag,
        typ: 3,
        count: 1,
        data: v.to_le_bytes().to_vec(),
    }
}

fn long(tag: u16, v: u32) -> Entry {
    Entry {
        tag,
        typ: 4,
        count: 1,
        data: v.to_le_bytes().to_vec(),
    }
}

fn rationals(tag: u16, v: &[(u32, u32)]) -> Entry {
    let mut data = Vec::new();
    for (n, d) in v {
        data.extend_from_slice(&n.to_le_bytes());
        data.extend_from_slice(&d.to_le_bytes());
    }
    Entry {
        tag,
        typ: 5,
        count: v.len() as u32,
        data,
    }
}

/// Writes an IFD at `tiff.len()` (little-endian); returns the offset of its next-IFD field.
fn write_ifd(tiff: &mut Vec<u8>, entries: &[Entry]) -> usize {
    let start = tiff.len();
    let table = 2 + entries.len() * 12 + 4;
    let mut data_at = start + table;
    let mut data = Vec::new();
    tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in entries {
        tiff.extend_from_slice(&e.tag.to_le_bytes());
        tiff.extend_from_slice(&e.typ.to_le_bytes());
        tiff.extend_from_slice(&e.count.to_le_bytes());
        if e.data.len() <= 4 {
            let mut v = e.data.clone();
            v.resize(4, 0);
            tiff.extend_from_slice(&v);
        } else {
            tiff.extend_from_slice(&(data_at as u32).to_le_bytes());
            data.extend_from_slice(&e.data);
            if e.data.len() % 2 == 1 {
                data.push(0);
            }
            data_at = start + table + data.len();
        }
    }
    let next = tiff.len();
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&data);
    next
}

/// An APP1 EXIF payload (`Exif\0\0` + TIFF) with orientation (if any), camera make/model/serial,
/// capture time and GPS coordinates.
pub fn exif_payload(orientation: Option<u16>) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    // IFD0 is written with placeholders for the sub-IFD pointers, patched below.
    let mut ifd0 = vec![
        ascii(0x010F, "Contoso Phone Co"),
        ascii(0x0110, "CP-12 Pro"),
    ];
    if let Some(o) = orientation {
        ifd0.push(short(0x0112, o));
    }
    ifd0.push(ascii(0x0132, "2026:11:30 09:41:07"));
    ifd0.push(long(0x8769, 0));
    ifd0.push(long(0x8825, 0));
    let n = ifd0.len();
    write_ifd(&mut tiff, &ifd0);
    let exif_at = tiff.len() as u32;
    write_ifd(
        &mut tiff,
        &[
            ascii(0x9003, "2026:11:30 09:41:07"),
            ascii(0xA431, "SN-4815162342"),
        ],
    );
    let gps_at = tiff.len() as u32;
    write_ifd(
        &mut tiff,
        &[
            Entry {
                tag: 0x0000,
                typ: 1,
                count: 4,
                data: vec![2, 3, 0, 0],
            },
            ascii(0x0001, "N"),
            rationals(0x0002, &[(47, 1), (38, 1), (4012, 100)]),
            ascii(0x0003, "W"),
            rationals(0x0004, &[(122, 1), (7, 1), (5321, 100)]),
        ],
    );
    // Patch the two pointers (the last two entries of IFD0; value at entry + 8).
    let e = 8 + 2 + (n - 2) * 12 + 8;
    tiff[e..e + 4].copy_from_slice(&exif_at.to_le_bytes());
    tiff[e + 12..e + 16].copy_from_slice(&gps_at.to_le_bytes());
    let mut p = b"Exif\0\0".to_vec();
    p.extend_from_slice(&tiff);
    p
}

/// An APP1 XMP payload naming a location and a person.
pub fn xmp_payload() -> Vec<u8> {
    let mut p = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    p.extend_from_slice(
        br#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="47,38.67N" exif:GPSLongitude="122,7.89W"/></rdf:RDF></x:xmpmeta>"#,
    );
    p
}

/// An APP13 IPTC payload (Photoshop 3.0 resource with a by-line).
pub fn iptc_payload() -> Vec<u8> {
    let mut p = b"Photoshop 3.0\08BIM\x04\x04\0\0".to_vec();
    let iim = b"\x1c\x02\x50\x00\x0aAdele Vanc";
    p.extend_from_slice(&(iim.len() as u32).to_be_bytes());
    p.extend_from_slice(iim);
    p
}

/// A minimal ICC profile header (display class, RGB data, XYZ PCS, no tags) of 132 bytes: enough
/// for "the profile is kept" checks; decoders do not interpret it.
pub fn icc_profile_rgb() -> Vec<u8> {
    let mut p = vec![0u8; 132];
    p[0..4].copy_from_slice(&132u32.to_be_bytes());
    p[8] = 4;
    p[12..16].copy_from_slice(b"mntr");
    p[16..20].copy_from_slice(b"RGB ");
    p[20..24].copy_from_slice(b"XYZ ");
    p[36..40].copy_from_slice(b"acsp");
    p
}

/// The APP2 payload carrying `icc` (one chunk).
pub fn icc_app2_payload(icc: &[u8]) -> Vec<u8> {
    let mut p = b"ICC_PROFILE\0\x01\x01".to_vec();
    p.extend_from_slice(icc);
    p
}

/// A phone-like baseline JPEG: stored `width × height` (as the sensor wrote it), EXIF
/// orientation `orientation` (the upright content follows the marker convention), EXIF with
/// camera make/model/serial, capture time and GPS, an XMP packet, an IPTC block, a comment and an
/// RGB ICC profile. Quality 92 with noise: 4032×3024 is about 3 MB.
pub fn phone_jpeg(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let px = stored_rgb(width, height, orientation, 10);
    let jpeg = encode_jpeg(&px, width, height, jpeg_encoder::ColorType::Rgb, 92, false);
    insert_segments(
        &jpeg,
        &[
            segment(0xE1, &exif_payload(Some(orientation))),
            segment(0xE1, &xmp_payload()),
            segment(0xE2, &icc_app2_payload(&icc_profile_rgb())),
            segment(0xED, &iptc_payload()),
            segment(0xFE, b"Shot on a CP-12 Pro by Adele at 47.6445N 122.1314W"),
        ],
    )
}

/// A JPEG that is already compliant for a profile photo: baseline, 8-bit YCbCr 4:2:0, square
/// `edge × edge`, quality 85, JFIF only (no metadata, no orientation). `noise` adds texture
/// (0: smooth; 10: photo-like, about 50 KB at 648²).
pub fn compliant_jpeg(edge: u32, noise: u32) -> Vec<u8> {
    let px = stored_rgb(edge, edge, 1, noise);
    encode_jpeg(&px, edge, edge, jpeg_encoder::ColorType::Rgb, 85, false)
}

/// [`compliant_jpeg`] plus metadata (EXIF without orientation but with GPS, XMP, IPTC, a comment
/// and an RGB ICC profile): what normalize strips losslessly.
pub fn compliant_jpeg_with_metadata(edge: u32) -> Vec<u8> {
    insert_segments(
        &compliant_jpeg(edge, 4),
        &[
            segment(0xE1, &exif_payload(None)),
            segment(0xE1, &xmp_payload()),
            segment(0xE2, &icc_app2_payload(&icc_profile_rgb())),
            segment(0xED, &iptc_payload()),
            segment(0xFE, b"taken at 47.6445N 122.1314W"),
        ],
    )
}

/// A valid JPEG of exactly `len` bytes (a small compliant JPEG padded with comment segments).
/// Panics if `len` is below the smallest such JPEG (about 700 bytes).
pub fn jpeg_of_len(len: usize) -> Vec<u8> {
    let base = compliant_jpeg(16, 0);
    assert!(
        len == base.len() || len >= base.len() + 4,
        "jpeg_of_len: {len} is too small"
    );
    let mut pad = len - base.len();
    let mut segs = Vec::new();
    while pad > 0 {
        // A segment is 4..=65_537 bytes; never leave a remainder below 4.
        let mut take = pad.min(65_537);
        if pad - take > 0 && pad - take < 4 {
            take -= 4;
        }
        segs.push(segment(0xFE, &vec![b'.'; take - 4]));
        pad -= take;
    }
    let out = insert_segments(&base, &segs);
    debug_assert_eq!(out.len(), len);
    out
}

/// A progressive JPEG (`width × height`, upright, no metadata).
pub fn progressive_jpeg(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 4);
    encode_jpeg(&px, width, height, jpeg_encoder::ColorType::Rgb, 88, true)
}

/// A grayscale baseline JPEG (`width × height`, upright; markers as grey levels).
pub fn grayscale_jpeg(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 4);
    let luma: Vec<u8> = px
        .chunks_exact(3)
        .map(|p| {
            ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8
        })
        .collect();
    encode_jpeg(
        &luma,
        width,
        height,
        jpeg_encoder::ColorType::Luma,
        88,
        false,
    )
}

/// A CMYK JPEG with an Adobe APP14 segment (transform `ycck`: YCCK, as Photoshop writes;
/// otherwise plain CMYK), stored inverted as Photoshop does; the marker-convention pixels.
pub fn cmyk_jpeg(width: u32, height: u32, ycck: bool) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 4);
    let mut cmyk = Vec::with_capacity(px.len() / 3 * 4);
    for p in px.chunks_exact(3) {
        let (c, m, y) = (255 - p[0], 255 - p[1], 255 - p[2]);
        let k = c.min(m).min(y);
        // Ink amounts; jpeg-encoder stores them inverted, as Photoshop does (Adobe APP14).
        cmyk.extend_from_slice(&[c - k, m - k, y - k, k]);
    }
    let color = if ycck {
        jpeg_encoder::ColorType::CmykAsYcck
    } else {
        jpeg_encoder::ColorType::Cmyk
    };
    encode_jpeg(&cmyk, width, height, color, 90, false)
}

// ---- PNG ----

fn png_encode(
    data: &[u8],
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    palette: Option<(Vec<u8>, Vec<u8>)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some((plte, trns)) = palette {
            enc.set_palette(plte);
            if !trns.is_empty() {
                enc.set_trns(trns);
            }
        }
        let mut wr = enc.write_header().expect("PNG header");
        wr.write_image_data(data).expect("PNG data");
    }
    out
}

/// An 8-bit RGB PNG (noise 6: photo-like texture).
pub fn png_rgb8(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 6);
    png_encode(
        &px,
        width,
        height,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        None,
    )
}

/// An 8-bit RGBA PNG whose left quarter is fully transparent (so it flattens on the
/// background) and the rest opaque.
pub fn png_rgba8(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 2);
    let mut rgba = Vec::with_capacity(px.len() / 3 * 4);
    for (i, p) in px.chunks_exact(3).enumerate() {
        let x = i as u32 % width;
        rgba.extend_from_slice(p);
        rgba.push(if x < width / 4 { 0 } else { 255 });
    }
    png_encode(
        &rgba,
        width,
        height,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        None,
    )
}

/// A 16-bit RGB PNG.
pub fn png_rgb16(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 2);
    let mut out = Vec::with_capacity(px.len() * 2);
    for v in px {
        out.extend_from_slice(&(u16::from(v) * 257).to_be_bytes());
    }
    png_encode(
        &out,
        width,
        height,
        png::ColorType::Rgb,
        png::BitDepth::Sixteen,
        None,
    )
}

/// A palette PNG (8-bit indices, 4 colours: background grey, red, green and a transparent one).
pub fn png_palette(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 0);
    let idx: Vec<u8> = px
        .chunks_exact(3)
        .map(|p| match [p[0], p[1], p[2]] {
            MARKER_TOP_LEFT => 1,
            MARKER_TOP_RIGHT => 2,
            _ => 0,
        })
        .collect();
    let plte = [
        [128, 128, 128],
        MARKER_TOP_LEFT,
        MARKER_TOP_RIGHT,
        [0, 0, 255],
    ]
    .concat();
    png_encode(
        &idx,
        width,
        height,
        png::ColorType::Indexed,
        png::BitDepth::Eight,
        Some((plte, vec![255, 255, 255, 0])),
    )
}

// ---- WebP ----

/// A lossless WebP with alpha (left quarter transparent), marker convention otherwise.
pub fn webp_lossless_alpha(width: u32, height: u32) -> Vec<u8> {
    let px = stored_rgb(width, height, 1, 0);
    let mut rgba = Vec::with_capacity(px.len() / 3 * 4);
    for (i, p) in px.chunks_exact(3).enumerate() {
        rgba.extend_from_slice(p);
        rgba.push(if (i as u32 % width) < width / 4 {
            0
        } else {
            255
        });
    }
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(&rgba, width, height, image_webp::ColorType::Rgba8)
        .expect("WebP encodes");
    out
}

/// A lossy WebP of 64×48 (a gradient, no markers): made once by libwebp, as no pure-Rust crate
/// encodes lossy WebP.
pub fn webp_lossy() -> Vec<u8> {
    LOSSY_WEBP.to_vec()
}

/// A lossy WebP of 64×48 with an alpha channel (VP8X + ALPH + VP8; left quarter transparent).
pub fn webp_lossy_alpha() -> Vec<u8> {
    LOSSY_ALPHA_WEBP.to_vec()
}

// ---- GIF ----

/// A GIF of `frames` frames of `width × height`: the first follows the marker convention (red,
/// green on grey), every later frame is solid blue, so a stage that keeps the first frame shows
/// no blue.
pub fn gif_frames(width: u16, height: u16, frames: usize) -> Vec<u8> {
    let palette = [
        [128u8, 128, 128],
        MARKER_TOP_LEFT,
        MARKER_TOP_RIGHT,
        [0, 0, 255],
    ]
    .concat();
    let px = stored_rgb(u32::from(width), u32::from(height), 1, 0);
    let first: Vec<u8> = px
        .chunks_exact(3)
        .map(|p| match [p[0], p[1], p[2]] {
            MARKER_TOP_LEFT => 1,
            MARKER_TOP_RIGHT => 2,
            _ => 0,
        })
        .collect();
    let blue = vec![3u8; first.len()];
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, width, height, &palette).expect("GIF header");
        enc.set_repeat(gif::Repeat::Infinite).expect("GIF repeat");
        for i in 0..frames.max(1) {
            let mut f = gif::Frame::from_indexed_pixels(
                width,
                height,
                if i == 0 { first.clone() } else { blue.clone() },
                None,
            );
            f.delay = 10;
            enc.write_frame(&f).expect("GIF frame");
        }
    }
    out
}

// ---- Hostile inputs ----

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut c = kind.to_vec();
    c.extend_from_slice(data);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

fn png_ihdr(w: u32, h: u32, color: u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, color, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    out
}

/// A zlib stream that inflates to `total` zero bytes, built from one compressed MiB repeated
/// (each copy is a sync-flushed block that only refers to zeros), so 1 GiB costs about 1 MB.
pub fn zlib_zeros(total: u64) -> Vec<u8> {
    use miniz_oxide::deflate::core::{
        CompressorOxide, TDEFLFlush, compress, create_comp_flags_from_zip_params,
    };
    const UNIT: usize = 1 << 20;
    let block = |n: usize| -> Vec<u8> {
        let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(9, -15, 0));
        let input = vec![0u8; n];
        let mut out = vec![0u8; n / 64 + 1024];
        let (_, _, written) = compress(&mut c, &input, &mut out, TDEFLFlush::Sync);
        out.truncate(written);
        out
    };
    let mut out = vec![0x78, 0x01];
    let full = (total / UNIT as u64) as usize;
    let rest = (total % UNIT as u64) as usize;
    if full > 0 {
        let unit = block(UNIT);
        out.reserve(unit.len() * full);
        for _ in 0..full {
            out.extend_from_slice(&unit);
        }
    }
    if rest > 0 {
        out.extend_from_slice(&block(rest));
    }
    // Final empty fixed-Huffman block, then Adler-32 of `total` zeros (a = 1, b = total).
    out.extend_from_slice(&[0x03, 0x00]);
    let b = (total % 65_521) as u32;
    out.extend_from_slice(&((b << 16) | 1).to_be_bytes());
    out
}

/// A PNG whose header declares 100,000 × 100,000 (RGB), with a tiny IDAT.
pub fn hostile_png_huge_dimensions() -> Vec<u8> {
    let mut out = png_ihdr(100_000, 100_000, 2);
    png_chunk(&mut out, b"IDAT", &zlib_zeros(1024));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A 64×64 RGB PNG whose IDAT inflates to 256 MiB (64×64×3 + 64 bytes are needed).
pub fn hostile_png_idat_bomb() -> Vec<u8> {
    let mut out = png_ihdr(64, 64, 2);
    png_chunk(&mut out, b"IDAT", &zlib_zeros(256 << 20));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 64×64 RGB PNG preceded by a zTXt chunk whose text inflates past 1 GiB (about 1 MB on
/// the wire).
pub fn hostile_png_ztxt_bomb() -> Vec<u8> {
    let mut out = png_ihdr(64, 64, 2);
    let mut z = b"Comment\0\0".to_vec();
    z.extend_from_slice(&zlib_zeros((1 << 30) + 1));
    png_chunk(&mut out, b"zTXt", &z);
    png_chunk(&mut out, b"IDAT", &zlib_zeros(64 * (64 * 3 + 1)));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 64×64 RGB PNG whose iCCP profile inflates past 1 GiB (about 1 MB on the wire).
pub fn hostile_png_iccp_bomb() -> Vec<u8> {
    let mut out = png_ihdr(64, 64, 2);
    let mut z = b"bomb\0\0".to_vec();
    z.extend_from_slice(&zlib_zeros((1 << 30) + 1));
    png_chunk(&mut out, b"iCCP", &z);
    png_chunk(&mut out, b"IDAT", &zlib_zeros(64 * (64 * 3 + 1)));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A JPEG whose SOF0 claims 65,535 × 65,535 (the scan is a 16×16 one, so a decoder that trusts
/// the header allocates 12 GiB; one that checks limits refuses it from the header).
pub fn hostile_jpeg_huge_dimensions() -> Vec<u8> {
    let mut j = compliant_jpeg(16, 0);
    let mut i = 2;
    while i + 9 < j.len() {
        if j[i] == 0xFF && j[i + 1] == 0xC0 {
            j[i + 5..i + 7].copy_from_slice(&65_535u16.to_be_bytes());
            j[i + 7..i + 9].copy_from_slice(&65_535u16.to_be_bytes());
            break;
        }
        let len = usize::from(u16::from_be_bytes([j[i + 2], j[i + 3]]));
        i += 2 + len;
    }
    j
}

/// The first half of a phone JPEG (256×192, orientation 1): the scan ends early, no EOI.
pub fn truncated_jpeg() -> Vec<u8> {
    let j = phone_jpeg(256, 192, 1);
    j[..j.len() / 2].to_vec()
}

/// A 256×192 JPEG whose EXIF has offsets past the segment's end and IFDs that loop (IFD0's next
/// IFD is itself; its EXIF pointer points back at IFD0), with orientation 6 in IFD0.
pub fn hostile_jpeg_exif_loop() -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    // IFD0 at 8: 4 entries, next IFD = 8 (itself).
    t.extend_from_slice(&4u16.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&typ.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    entry(&mut t, 0x010F, 2, 0x4000_0000, 0xFFFF_FFF0); // Make: huge count, offset outside
    entry(&mut t, 0x0112, 3, 1, 6); // Orientation 6
    entry(&mut t, 0x8769, 4, 1, 8); // EXIF IFD pointer → IFD0 (a loop)
    entry(&mut t, 0x8825, 4, 1, 0x7FFF_FFFF); // GPS IFD pointer outside the segment
    t.extend_from_slice(&8u32.to_le_bytes());
    let mut p = b"Exif\0\0".to_vec();
    p.extend_from_slice(&t);
    let px = stored_rgb(256, 192, 6, 0);
    let j = encode_jpeg(&px, 256, 192, jpeg_encoder::ColorType::Rgb, 85, false);
    insert_segments(&j, &[segment(0xE1, &p)])
}

/// A GIF of 10,000 frames of 16×16 (first frame marker convention, later frames blue).
pub fn hostile_gif_many_frames() -> Vec<u8> {
    gif_frames(16, 16, 10_000)
}

/// A WebP whose VP8L chunk (and RIFF size) claim 2 GiB while the file is a few hundred bytes.
pub fn hostile_webp_oversized_chunk() -> Vec<u8> {
    let mut w = webp_lossless_alpha(16, 16);
    // RIFF size and the first chunk's size.
    w[4..8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    w[16..20].copy_from_slice(&0x7FFF_FF00u32.to_le_bytes());
    w
}

/// Writes all the samples into `dir` (a helper for looking at them by eye or with other tools).
pub fn write_all(dir: &std::path::Path) -> std::io::Result<()> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("phone-o6.jpg", phone_jpeg(800, 600, 6)),
        ("compliant.jpg", compliant_jpeg(648, 10)),
        ("progressive.jpg", progressive_jpeg(800, 600)),
        ("gray.jpg", grayscale_jpeg(800, 600)),
        ("cmyk.jpg", cmyk_jpeg(400, 300, false)),
        ("ycck.jpg", cmyk_jpeg(400, 300, true)),
        ("rgba8.png", png_rgba8(400, 300)),
        ("rgb16.png", png_rgb16(400, 300)),
        ("palette.png", png_palette(400, 300)),
        ("lossless-alpha.webp", webp_lossless_alpha(400, 300)),
        ("lossy.webp", webp_lossy()),
        ("frames.gif", gif_frames(120, 90, 3)),
    ];
    for (name, bytes) in files {
        std::fs::File::create(dir.join(name))?.write_all(&bytes)?;
    }
    Ok(())
}

const LOSSY_WEBP: [u8; 264] = [
    0x52, 0x49, 0x46, 0x46, 0x00, 0x01, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x20,
    0xf4, 0x00, 0x00, 0x00, 0x50, 0x08, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x00, 0x30, 0x00, 0x3e, 0x6d,
    0x2e, 0x92, 0x45, 0xaf, 0x2f, 0x21, 0xa1, 0x30, 0x1a, 0xa8, 0x01, 0xe0, 0x0d, 0x89, 0x66, 0x00,
    0xae, 0x4f, 0x80, 0x40, 0x9f, 0xc6, 0x53, 0x72, 0x3a, 0x7d, 0x53, 0x9d, 0x69, 0xa6, 0xa3, 0xfb,
    0x38, 0xf3, 0x3d, 0xd5, 0xe4, 0xa5, 0x6d, 0x74, 0x07, 0xb9, 0xa1, 0xda, 0x27, 0x2a, 0x85, 0x88,
    0x38, 0x67, 0xd0, 0x9e, 0xe8, 0x9c, 0x7a, 0xef, 0xec, 0x5e, 0xff, 0xbf, 0xff, 0x86, 0x00, 0x00,
    0xfe, 0xfd, 0x5e, 0x9c, 0xdf, 0x04, 0x2c, 0xe7, 0x35, 0x0d, 0x0f, 0xff, 0x9b, 0xf7, 0xb0, 0xcf,
    0x47, 0x73, 0x9b, 0x58, 0xa3, 0x78, 0x56, 0x17, 0x52, 0x72, 0xaf, 0x12, 0x8c, 0x6b, 0xbd, 0x2c,
    0xa4, 0xb3, 0x7e, 0x35, 0xed, 0xc4, 0x01, 0x37, 0xe7, 0xc4, 0x63, 0xbd, 0x7d, 0xb9, 0x4e, 0x61,
    0x4c, 0x7b, 0xb2, 0xfc, 0x67, 0x58, 0xf3, 0x31, 0xf4, 0x6a, 0x37, 0x0b, 0xd8, 0x01, 0x56, 0xd9,
    0x95, 0x5e, 0x47, 0x1d, 0x7a, 0xa4, 0x9b, 0x55, 0xfa, 0xd5, 0x69, 0x77, 0xd2, 0xf6, 0x3e, 0x31,
    0xbe, 0x57, 0xac, 0xf6, 0x4b, 0x51, 0x4e, 0x19, 0x07, 0x40, 0xab, 0xe5, 0x3e, 0xa5, 0x3a, 0xe0,
    0x70, 0x01, 0x4d, 0x3a, 0xeb, 0x63, 0x77, 0x09, 0x58, 0xa5, 0x15, 0x45, 0x1a, 0x08, 0xcc, 0x37,
    0xa0, 0x90, 0x9a, 0x72, 0xad, 0xd9, 0x5f, 0x85, 0x9a, 0x8c, 0x01, 0x70, 0x7c, 0xb6, 0xa6, 0x1b,
    0xa2, 0xf5, 0x8a, 0xfe, 0x03, 0x4c, 0x7f, 0x05, 0xf0, 0x89, 0x4e, 0xe9, 0x9b, 0x78, 0x38, 0xbf,
    0x34, 0xf1, 0x13, 0x27, 0xd4, 0x77, 0x52, 0x8c, 0x84, 0x1f, 0x77, 0xdb, 0x44, 0x01, 0x0e, 0xe5,
    0x02, 0x97, 0x55, 0x4b, 0x2a, 0x70, 0x00, 0x00,
];
const LOSSY_ALPHA_WEBP: [u8; 284] = [
    0x52, 0x49, 0x46, 0x46, 0x14, 0x01, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x58,
    0x0a, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x41, 0x4c,
    0x50, 0x48, 0x13, 0x00, 0x00, 0x00, 0x01, 0x50, 0xd3, 0xb6, 0x01, 0x13, 0xfe, 0xa4, 0x7b, 0x2e,
    0x00, 0x55, 0x44, 0x4c, 0x00, 0xb6, 0xe6, 0xff, 0x3b, 0x00, 0x56, 0x50, 0x38, 0x20, 0xda, 0x00,
    0x00, 0x00, 0x90, 0x07, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x00, 0x30, 0x00, 0x3e, 0x6d, 0x34, 0x94,
    0x47, 0x2f, 0x31, 0x22, 0x21, 0xa8, 0x1a, 0xaa, 0xaa, 0x20, 0x0d, 0x89, 0x66, 0x33, 0x81, 0x7f,
    0xff, 0x58, 0x31, 0x3c, 0x95, 0xc9, 0xe7, 0xb6, 0xca, 0xf5, 0xcf, 0xc8, 0x0e, 0x85, 0x0e, 0x8e,
    0x82, 0x50, 0x60, 0xf4, 0xa7, 0xdc, 0xf3, 0x94, 0x37, 0xf9, 0xa3, 0x69, 0x2f, 0xff, 0xff, 0x77,
    0x91, 0x3f, 0x51, 0x1f, 0xff, 0xfd, 0xa0, 0x00, 0xfe, 0xfb, 0x08, 0x97, 0xff, 0x48, 0x2f, 0xfe,
    0xad, 0x0e, 0x5a, 0x0a, 0xe9, 0x33, 0xdb, 0xa4, 0xda, 0xe6, 0xbb, 0xe1, 0x7f, 0x2b, 0x0a, 0xd1,
    0xc9, 0x5d, 0x87, 0xf6, 0xf3, 0x76, 0x3f, 0xd6, 0xbe, 0xd9, 0xca, 0x8a, 0x64, 0x75, 0x71, 0x5c,
    0xc4, 0xe5, 0xc4, 0x34, 0xfb, 0xc9, 0x7a, 0x52, 0x71, 0x3f, 0x5b, 0x03, 0xd4, 0xff, 0x1b, 0x99,
    0xb0, 0x0f, 0xad, 0xfb, 0x0b, 0xf8, 0x79, 0xa0, 0x20, 0x5c, 0x1f, 0xf8, 0xcc, 0x7f, 0xff, 0xe8,
    0x84, 0x82, 0x22, 0x9f, 0x04, 0xc2, 0x4e, 0xc1, 0x90, 0xbb, 0xa4, 0x57, 0xdf, 0xff, 0xb8, 0x3f,
    0x3c, 0x6d, 0x20, 0xea, 0x03, 0xd2, 0x37, 0xca, 0xf1, 0x1d, 0xdc, 0x23, 0x40, 0xc0, 0x69, 0xb3,
    0xcf, 0x35, 0xb0, 0xf3, 0x84, 0x81, 0xc1, 0x9f, 0xb8, 0x0d, 0x99, 0x59, 0xef, 0x53, 0x07, 0x08,
    0xbf, 0x7f, 0xfd, 0xc1, 0xf9, 0xe3, 0x69, 0x0f, 0xd7, 0xdc, 0xe4, 0x5c, 0xb9, 0x19, 0x24, 0x3c,
    0x2e, 0xcf, 0xf4, 0x48, 0xb1, 0x8c, 0xc8, 0x1c, 0x70, 0x00, 0x00, 0x00,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the `image_stage` fuzz target's seed corpus (small samples of every format, each
    /// behind a flags byte: normalize, strip, passthrough, normalize with a budget) into
    /// `$IMAGE_FUZZ_SEEDS`; skipped unless that is set.
    ///     IMAGE_FUZZ_SEEDS=tests/fuzz/corpus/image_stage cargo test -p photo-gateway-emulators seed_corpus
    #[test]
    fn seed_corpus() {
        let Ok(dir) = std::env::var("IMAGE_FUZZ_SEEDS") else {
            return;
        };
        std::fs::create_dir_all(&dir).unwrap();
        let seeds: Vec<(&str, Vec<u8>)> = vec![
            ("phone-o6.jpg", phone_jpeg(40, 30, 6)),
            ("phone-o3.jpg", phone_jpeg(30, 40, 3)),
            ("compliant.jpg", compliant_jpeg(32, 2)),
            ("compliant-meta.jpg", compliant_jpeg_with_metadata(32)),
            ("progressive.jpg", progressive_jpeg(40, 30)),
            ("gray.jpg", grayscale_jpeg(40, 30)),
            ("cmyk.jpg", cmyk_jpeg(24, 16, false)),
            ("ycck.jpg", cmyk_jpeg(24, 16, true)),
            ("rgba8.png", png_rgba8(24, 16)),
            ("rgb16.png", png_rgb16(24, 16)),
            ("palette.png", png_palette(24, 16)),
            ("lossless.webp", webp_lossless_alpha(24, 16)),
            ("lossy.webp", webp_lossy()),
            ("lossy-alpha.webp", webp_lossy_alpha()),
            ("frames.gif", gif_frames(16, 12, 3)),
            ("exif-loop.jpg", hostile_jpeg_exif_loop()),
            ("huge.png", hostile_png_huge_dimensions()),
            ("huge.jpg", hostile_jpeg_huge_dimensions()),
            ("oversized.webp", hostile_webp_oversized_chunk()),
        ];
        for (name, bytes) in seeds {
            for flags in [0u8, 1, 2, 0x0C] {
                let mut v = vec![flags];
                v.extend_from_slice(&bytes);
                std::fs::write(format!("{dir}/{flags:02x}-{name}"), v).unwrap();
            }
        }
    }

    #[test]
    fn jpeg_of_len_is_exact() {
        for len in [700, 1000, 4096, 70_000, 200_003] {
            let base = compliant_jpeg(16, 0).len();
            if len < base + 4 {
                continue;
            }
            let j = jpeg_of_len(len);
            assert_eq!(j.len(), len);
            assert_eq!(&j[..2], &[0xFF, 0xD8]);
            assert_eq!(&j[len - 2..], &[0xFF, 0xD9]);
        }
    }

    #[test]
    fn orientation_mapping_is_a_bijection() {
        for o in 1..=8u16 {
            let (w, h) = (5u32, 3u32);
            let (dw, dh) = if swaps_axes(o) { (h, w) } else { (w, h) };
            let mut seen = vec![false; (w * h) as usize];
            for dy in 0..dh {
                for dx in 0..dw {
                    let (sx, sy) = stored_from_display(o, w, h, dx, dy);
                    assert!(sx < w && sy < h);
                    assert!(!seen[(sy * w + sx) as usize]);
                    seen[(sy * w + sx) as usize] = true;
                }
            }
        }
    }

    #[test]
    fn zlib_zeros_inflates_to_its_length() {
        let z = zlib_zeros((3 << 20) + 17);
        let out = miniz_oxide::inflate::decompress_to_vec_zlib(&z).expect("inflates");
        assert_eq!(out.len(), (3 << 20) + 17);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn hostile_bombs_are_small_on_the_wire() {
        assert!(hostile_png_ztxt_bomb().len() < 3_000_000);
        assert!(hostile_png_iccp_bomb().len() < 3_000_000);
        assert!(hostile_png_idat_bomb().len() < 1_000_000);
        assert!(hostile_gif_many_frames().len() < 1_000_000);
    }
}
