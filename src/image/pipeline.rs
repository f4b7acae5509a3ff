//! Decode → EXIF orientation → centre-crop → downscale → 8-bit sRGB → baseline JPEG.
//!
//! Order of work, chosen for speed: a JPEG is decoded already downscaled in the DCT domain (by
//! 1/2, 1/4 or 1/8, the largest factor that keeps enough pixels for the output, as Pillow's
//! `draft` does); the crop is taken on the stored pixels (a centre square is the centre square
//! in any orientation) and the resize is done in the same pass (fast_image_resize, Lanczos3);
//! the orientation is applied last, on the small output. Alpha is flattened on the background
//! right after decoding.

use fast_image_resize as fr;

use super::probe::{Format, Probe};
use super::{Crop, ImageError};

fn unreadable(why: impl std::fmt::Display) -> ImageError {
    ImageError::Unreadable(why.to_string())
}

/// 8-bit pixels, 1 (gray) or 3 (RGB) channels, rows packed.
#[derive(Debug, Clone)]
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
    /// An ICC profile to embed in the output (matching `channels`), if the input had one.
    pub icc: Option<Vec<u8>>,
}

/// How small the decoder may go: the output needs this many pixels on the short edge (crop) or
/// the long edge (no crop). `None`: full size.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub edge: u32,
    pub crop: Crop,
}

/// Decodes the first image of `b` (already probed and within the limits) into 8-bit gray or RGB,
/// alpha flattened on `background`. `max_bytes`: the decoder's allocation bound.
pub fn decode(
    b: &[u8],
    probe: &Probe,
    need: Option<Need>,
    background: [u8; 3],
    max_bytes: usize,
) -> Result<Raster, ImageError> {
    match probe.format {
        Format::Jpeg => decode_jpeg(b, probe, need, max_bytes),
        Format::Png => decode_png(b, background, max_bytes),
        Format::WebP => decode_webp(b, background, max_bytes),
        Format::Gif => decode_gif(b, background, max_bytes),
    }
}

/// Whether an ICC profile describes `channels`-channel data (so it can go with the output).
fn icc_matches(icc: &[u8], channels: u8) -> bool {
    match icc.get(16..20) {
        Some(b"RGB ") => channels == 3,
        Some(b"GRAY") => channels == 1,
        _ => false,
    }
}

fn decode_jpeg(
    b: &[u8],
    probe: &Probe,
    need: Option<Need>,
    max_bytes: usize,
) -> Result<Raster, ImageError> {
    let mut d = jpeg_decoder::Decoder::new(b);
    d.set_max_decoding_buffer_size(max_bytes);
    d.read_info().map_err(unreadable)?;
    if let Some(need) = need {
        let (w, h) = (probe.width, probe.height);
        let edge = match need.crop {
            Crop::Center => w.min(h),
            Crop::None => w.max(h),
        };
        // The largest reduction that keeps at least `need.edge` pixels on that edge.
        let mut div = 1;
        for d in [8u32, 4, 2] {
            if edge.div_ceil(d) >= need.edge {
                div = d;
                break;
            }
        }
        if div > 1 {
            d.scale(w.div_ceil(div) as u16, h.div_ceil(div) as u16)
                .map_err(unreadable)?;
        }
    }
    let px = d.decode().map_err(unreadable)?;
    let info = d
        .info()
        .ok_or_else(|| unreadable("JPEG: no info after decode"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let n = width as usize * height as usize;
    let (channels, pixels) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, px),
        jpeg_decoder::PixelFormat::L16 => (1, px.chunks_exact(2).map(|v| v[0]).collect()),
        jpeg_decoder::PixelFormat::RGB24 => (3, px),
        jpeg_decoder::PixelFormat::CMYK32 => {
            // jpeg-decoder returns ink amounts (Adobe's inversion undone); naive CMYK → RGB.
            let mut rgb = Vec::with_capacity(n * 3);
            for p in px.chunks_exact(4) {
                let k = 255 - u32::from(p[3]);
                for c in &p[..3] {
                    rgb.push(((255 - u32::from(*c)) * k / 255) as u8);
                }
            }
            (3, rgb)
        }
    };
    if pixels.len() < n * channels as usize {
        return Err(unreadable("JPEG: short pixel buffer"));
    }
    // Keep an ICC profile only if it describes what is output (a CMYK profile does not).
    let icc = d.icc_profile().filter(|icc| {
        info.pixel_format != jpeg_decoder::PixelFormat::CMYK32 && icc_matches(icc, channels)
    });
    Ok(Raster {
        width,
        height,
        channels,
        pixels,
        icc,
    })
}

/// Flattens `src` (gray+alpha or RGBA) on `bg`.
fn flatten(src: &[u8], gray: bool, bg: [u8; 3]) -> Vec<u8> {
    let step = if gray { 2 } else { 4 };
    let mut out = Vec::with_capacity(src.len() / step * 3);
    let blend =
        |c: u8, b: u8, a: u32| ((u32::from(c) * a + u32::from(b) * (255 - a) + 127) / 255) as u8;
    for p in src.chunks_exact(step) {
        let a = u32::from(p[step - 1]);
        if gray {
            for bc in bg {
                out.push(blend(p[0], bc, a));
            }
        } else {
            for (c, bc) in p[..3].iter().zip(bg) {
                out.push(blend(*c, bc, a));
            }
        }
    }
    out
}

fn decode_png(b: &[u8], background: [u8; 3], max_bytes: usize) -> Result<Raster, ImageError> {
    let mut d =
        png::Decoder::new_with_limits(std::io::Cursor::new(b), png::Limits { bytes: max_bytes });
    // Text and ICC chunks are compressed and unbounded: never inflated (PNG is taken as sRGB).
    d.set_ignore_text_chunk(true);
    d.set_ignore_iccp_chunk(true);
    d.set_transformations(png::Transformations::normalize_to_color8());
    let mut r = d.read_info().map_err(unreadable)?;
    let size = r
        .output_buffer_size()
        .ok_or_else(|| unreadable("PNG: output size overflows"))?;
    if size > max_bytes {
        return Err(unreadable("PNG: over the decode memory bound"));
    }
    let mut buf = vec![0u8; size];
    let frame = r.next_frame(&mut buf).map_err(unreadable)?;
    buf.truncate(frame.buffer_size());
    let (width, height) = (frame.width, frame.height);
    let (channels, pixels) = match frame.color_type {
        png::ColorType::Grayscale => (1, buf),
        png::ColorType::Rgb => (3, buf),
        png::ColorType::GrayscaleAlpha => (3, flatten(&buf, true, background)),
        png::ColorType::Rgba => (3, flatten(&buf, false, background)),
        png::ColorType::Indexed => return Err(unreadable("PNG: palette not expanded")),
    };
    if frame.bit_depth != png::BitDepth::Eight
        || pixels.len() < width as usize * height as usize * channels as usize
    {
        return Err(unreadable("PNG: unexpected output layout"));
    }
    Ok(Raster {
        width,
        height,
        channels,
        pixels,
        icc: None,
    })
}

fn decode_webp(b: &[u8], background: [u8; 3], max_bytes: usize) -> Result<Raster, ImageError> {
    let mut d = image_webp::WebPDecoder::new(std::io::Cursor::new(b)).map_err(unreadable)?;
    d.set_memory_limit(max_bytes);
    let (width, height) = d.dimensions();
    let size = d
        .output_buffer_size()
        .ok_or_else(|| unreadable("WebP: output size overflows"))?;
    if size > max_bytes {
        return Err(unreadable("WebP: over the decode memory bound"));
    }
    let alpha = d.has_alpha();
    let icc = d
        .icc_profile()
        .ok()
        .flatten()
        .filter(|icc| icc_matches(icc, 3));
    let mut buf = vec![0u8; size];
    d.read_image(&mut buf).map_err(unreadable)?;
    let pixels = if alpha {
        flatten(&buf, false, background)
    } else {
        buf
    };
    if pixels.len() < width as usize * height as usize * 3 {
        return Err(unreadable("WebP: short pixel buffer"));
    }
    Ok(Raster {
        width,
        height,
        channels: 3,
        pixels,
        icc,
    })
}

fn decode_gif(b: &[u8], background: [u8; 3], max_bytes: usize) -> Result<Raster, ImageError> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    opts.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(max_bytes as u64).unwrap_or(std::num::NonZeroU64::MIN),
    ));
    let mut d = opts
        .read_info(std::io::Cursor::new(b))
        .map_err(unreadable)?;
    let (sw, sh) = (u32::from(d.width()), u32::from(d.height()));
    // The first frame only; later frames are never read.
    let frame = d
        .read_next_frame()
        .map_err(unreadable)?
        .ok_or_else(|| unreadable("GIF: no frame"))?;
    let (fl, ft, fw, fh) = (
        u32::from(frame.left),
        u32::from(frame.top),
        u32::from(frame.width),
        u32::from(frame.height),
    );
    if frame.buffer.len() < fw as usize * fh as usize * 4 {
        return Err(unreadable("GIF: short frame"));
    }
    // Compose on the logical screen (transparent elsewhere = background).
    let mut pixels = Vec::with_capacity(sw as usize * sh as usize * 3);
    for _ in 0..sw as usize * sh as usize {
        pixels.extend_from_slice(&background);
    }
    for y in 0..fh {
        let sy = ft + y;
        if sy >= sh {
            break;
        }
        for x in 0..fw {
            let sx = fl + x;
            if sx >= sw {
                break;
            }
            let s = ((y * fw + x) * 4) as usize;
            let a = u32::from(frame.buffer[s + 3]);
            let o = ((sy * sw + sx) * 3) as usize;
            for c in 0..3 {
                let v = u32::from(frame.buffer[s + c]);
                let bg = u32::from(background[c]);
                pixels[o + c] = ((v * a + bg * (255 - a) + 127) / 255) as u8;
            }
        }
    }
    Ok(Raster {
        width: sw,
        height: sh,
        channels: 3,
        pixels,
        icc: None,
    })
}

/// The output size for a `w × h` display image: square of the short edge when cropping, then
/// the long edge at most `max_edge` (never upscaled).
pub fn output_size(w: u32, h: u32, crop: Crop, max_edge: u32) -> (u32, u32) {
    let (w, h) = match crop {
        Crop::Center => (w.min(h), w.min(h)),
        Crop::None => (w, h),
    };
    let long = w.max(h);
    if long <= max_edge {
        return (w, h);
    }
    let scale = f64::from(max_edge) / f64::from(long);
    let sw = ((f64::from(w) * scale).round() as u32).clamp(1, max_edge);
    let sh = ((f64::from(h) * scale).round() as u32).clamp(1, max_edge);
    (sw, sh)
}

fn swaps(orientation: u16) -> bool {
    (5..=8).contains(&orientation)
}

/// Crops (centre square, when asked) and resizes `src` (stored orientation) so that, once
/// oriented, the long edge is at most `max_edge`; then applies `orientation`.
pub fn render(
    src: &Raster,
    orientation: u16,
    crop: Crop,
    max_edge: u32,
) -> Result<Raster, ImageError> {
    let (w, h) = (src.width, src.height);
    // Sizes in stored orientation (the square and the scale do not depend on orientation).
    let (cw, ch) = match crop {
        Crop::Center => (w.min(h), w.min(h)),
        Crop::None => (w, h),
    };
    let (ow, oh) = output_size(w, h, crop, max_edge);
    let resized = if (ow, oh) == (w, h) {
        src.pixels.clone()
    } else {
        resize(src, ((w - cw) / 2, (h - ch) / 2, cw, ch), (ow, oh))?
    };
    let (pixels, width, height) = orient(&resized, ow, oh, src.channels, orientation);
    Ok(Raster {
        width,
        height,
        channels: src.channels,
        pixels,
        icc: src.icc.clone(),
    })
}

/// Resizes the `crop` rectangle (left, top, width, height) of `src` to `to`.
pub fn resize(
    src: &Raster,
    crop: (u32, u32, u32, u32),
    to: (u32, u32),
) -> Result<Vec<u8>, ImageError> {
    let pt = if src.channels == 1 {
        fr::PixelType::U8
    } else {
        fr::PixelType::U8x3
    };
    let s = fr::images::ImageRef::new(src.width, src.height, &src.pixels, pt)
        .map_err(|e| unreadable(format!("resize: {e}")))?;
    let mut dst = fr::images::Image::new(to.0, to.1, pt);
    let filter = if crop.2 >= to.0 * 3 {
        // Large reductions: a bilinear-width filter looks the same and costs less.
        fr::FilterType::CatmullRom
    } else {
        fr::FilterType::Lanczos3
    };
    let opts = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(filter))
        .crop(
            f64::from(crop.0),
            f64::from(crop.1),
            f64::from(crop.2),
            f64::from(crop.3),
        );
    fr::Resizer::new()
        .resize(&s, &mut dst, &opts)
        .map_err(|e| unreadable(format!("resize: {e}")))?;
    Ok(dst.into_vec())
}

/// Applies EXIF `orientation` to stored pixels `w × h`; returns the upright pixels and size.
pub fn orient(px: &[u8], w: u32, h: u32, channels: u8, orientation: u16) -> (Vec<u8>, u32, u32) {
    if !(2..=8).contains(&orientation) {
        return (px.to_vec(), w, h);
    }
    let (dw, dh) = if swaps(orientation) { (h, w) } else { (w, h) };
    let c = channels as usize;
    let mut out = vec![0u8; px.len()];
    for dy in 0..dh {
        for dx in 0..dw {
            let (sx, sy) = match orientation {
                2 => (w - 1 - dx, dy),
                3 => (w - 1 - dx, h - 1 - dy),
                4 => (dx, h - 1 - dy),
                5 => (dy, dx),
                6 => (dy, h - 1 - dx),
                7 => (w - 1 - dy, h - 1 - dx),
                _ => (w - 1 - dy, dx),
            };
            let s = (sy as usize * w as usize + sx as usize) * c;
            let d = (dy as usize * dw as usize + dx as usize) * c;
            out[d..d + c].copy_from_slice(&px[s..s + c]);
        }
    }
    (out, dw, dh)
}

/// Encodes a baseline JPEG (4:2:0 for colour), JFIF, the ICC profile if any, nothing else.
pub fn encode(r: &Raster, quality: u8) -> Result<Vec<u8>, ImageError> {
    let (Ok(w), Ok(h)) = (u16::try_from(r.width), u16::try_from(r.height)) else {
        return Err(unreadable("encode: over 65,535 px"));
    };
    let mut out = Vec::with_capacity(r.pixels.len() / 8 + 1024);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    if let Some(icc) = &r.icc {
        enc.add_icc_profile(icc)
            .map_err(|e| unreadable(format!("encode: {e}")))?;
    }
    let color = if r.channels == 1 {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    enc.encode(&r.pixels, w, h, color)
        .map_err(|e| unreadable(format!("encode: {e}")))?;
    Ok(out)
}
