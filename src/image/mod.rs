//! The image stage: whatever common photo a caller sends becomes a clean profile photo (EXIF
//! orientation applied, metadata and GPS removed, square, long edge within the maximum, baseline
//! JPEG) with the least work that gets there. Framework-free: `service.rs` hands it the received
//! bytes and the options resolved for this request, and gets the bytes to send to Graph plus what
//! was read and done, for the receipt.
//!
//! # Rooms
//! - `probe`: sniffs the bytes (declared types are never trusted) and reads the headers only:
//!   format, dimensions, EXIF orientation (`exif`, defensive), JPEG coding, metadata present.
//! - `strip`: lossless JPEG metadata removal (segments dropped, the rest copied byte for byte).
//! - `pipeline`: decode → orientation → centre-crop → downscale → baseline JPEG.
//! - `budget`: the byte budget (quality steps, then size steps, at most 8 encodes).
//! - `pool`: the bounded decode/encode pool (`limits.workers`, `limits.queue_timeout` → `Busy`).
//!
//! # The decision tree
//! - `passthrough`: JPEG only (sniffed), bytes untouched, nothing read (input width, height,
//!   orientation null; the byte budget does not apply).
//! - `strip`: JPEG only; within the limits; metadata removed losslessly, inline. If EXIF
//!   orientation is not 1 the pixels are decoded (full size, on the pool), rotated and
//!   re-encoded (no crop, no resize).
//! - `normalize`: within the limits (from the header: `TooLarge` before any decode); a baseline
//!   8-bit YCbCr or grayscale JPEG whose long edge is within `max_edge`, square when cropping,
//!   orientation 1 or absent, is stripped losslessly inline (no pool, pixels untouched);
//!   everything else goes to the pool: decode (JPEG downscaled in the DCT domain), orient,
//!   centre-crop (or not), downscale (never up), flatten alpha on `background`, re-encode as a
//!   baseline 4:2:0 JPEG at `quality`.
//! - In `strip` and `normalize`, an output over `max_bytes` is re-encoded under the budget
//!   (`budget`); if it cannot fit at quality 50 and 96 px → `NotFittable`.
//!
//! # Inputs
//! JPEG (baseline, progressive, grayscale, CMYK and YCCK: converted to RGB without a CMS), PNG
//! (1..16-bit, gray, palette, alpha), WebP (lossy, lossless, alpha; animated: first frame), GIF
//! (first frame only: later frames are never read). HEIC/AVIF are not read (`Unsupported`,
//! detected as `image/heic`/`image/avif`): the maintained Rust path, libheif-rs, needs libheif
//! ≥ 1.17 and Debian here ships 1.15; a pure-Rust AVIF decoder would add a large dependency
//! for a format internal apps rarely send. Anything else is `Unsupported`.
//!
//! # Colour (ICC)
//! The choice is to **keep** the profile rather than convert: an embedded RGB (or, for gray
//! output, GRAY) ICC profile of a JPEG or WebP is written into the output JPEG, so colours stay
//! as the author meant without a colour-management engine (lcms2 is C; the pure-Rust ones are
//! young) and without the cost of converting every pixel. A profile that does not describe the
//! output (a CMYK profile after the CMYK→RGB conversion) is dropped and listed as `icc` in
//! `metadataRemoved`. PNG iCCP chunks are never inflated (a zlib bomb vector), so a PNG is taken
//! as sRGB and its profile listed as removed. The lossless strip keeps the ICC APP2 segments.
//!
//! # Bounds
//! Dimensions are checked from the header (`max_pixels`, `max_input_edge`) before any decode;
//! each decoder gets an allocation bound of `max_pixels × 4` bytes (jpeg-decoder's buffer limit,
//! png's `Limits`, image-webp's memory limit, gif's `MemoryLimit`); PNG text and iCCP chunks are
//! ignored (never inflated); only the first frame of a GIF or WebP is read; EXIF is read from
//! IFD0's entry table only, every offset checked, no IFD link followed. WebP/PNG EXIF
//! orientation is not applied (only JPEG's is: phones write it there).

mod budget;
mod exif;
mod pipeline;
mod pool;
mod probe;
mod strip;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

/// What the stage does to a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Decode, orient, crop, downscale, re-encode as needed (the default); an already compliant
    /// baseline JPEG only loses its metadata segments, losslessly.
    Normalize,
    /// JPEG only: metadata segments removed; re-encoded only when EXIF orientation is not 1.
    Strip,
    /// JPEG only: bytes untouched (the gateway's behaviour before the stage existed).
    Passthrough,
}

/// How a non-square photo becomes square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// Centre-crop to a square.
    Center,
    /// Keep the aspect ratio.
    None,
}

/// The options for one photo, already resolved from config and the request (a caller can never
/// raise a configured limit: that is checked before these are built).
#[derive(Debug, Clone, Copy)]
pub struct ImageOptions {
    pub mode: Mode,
    pub crop: Crop,
    /// Long edge of the output, at most (never upscaled). Default 648.
    pub max_edge: u32,
    /// JPEG quality of a re-encode, 1..=100. Default 85.
    pub quality: u8,
    /// Alpha is flattened on this colour (RGB). Default white.
    pub background: [u8; 3],
    /// Byte budget of the output, if any.
    pub max_bytes: Option<usize>,
}

/// Limits that hold whatever the request asks (config only).
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Decoded pixels of the input, at most (default 40,000,000).
    pub max_pixels: u64,
    /// Either edge of the input, at most (default 12,000).
    pub max_input_edge: u32,
    /// Workers of the decode/encode pool (default: the cores).
    pub workers: usize,
    /// How long an upload waits for a pool worker before 503 `overloaded` (default 2 s).
    pub queue_timeout: Duration,
}

/// What was received, as far as the mode read it (null where it did not).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InputInfo {
    /// The sniffed type (`image/jpeg`, `image/png`, `image/webp`, `image/gif`).
    pub content_type: &'static str,
    pub bytes: usize,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// EXIF orientation (1..=8), if the input had one.
    pub orientation: Option<u16>,
}

/// What is sent to Graph.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutputInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bytes: usize,
    /// JPEG quality of the re-encode; null when the pixels were not re-encoded.
    pub quality: Option<u8>,
    /// What was removed: any of `exif`, `xmp`, `iptc`, `comment`, `icc` (when converted), ...
    pub metadata_removed: Vec<&'static str>,
}

/// The photo to send, and what was done.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The bytes for Graph (always a JPEG).
    pub bytes: Bytes,
    pub input: InputInfo,
    pub output: OutputInfo,
}

/// Why the stage refused a photo. Each maps to one row of the error table.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not a type the stage reads (or, in `strip`/`passthrough`, not a JPEG) → 415.
    #[error("unsupported image type")]
    Unsupported { detected: Option<&'static str> },
    /// Over the dimension limits, known from the header alone → 413 `image-too-large`.
    #[error("image of {width}x{height} is over the limit")]
    TooLarge { width: u32, height: u32 },
    /// Cannot be decoded → 422 `image-unreadable`. The reason goes to logs, not to callers.
    #[error("image cannot be decoded: {0}")]
    Unreadable(String),
    /// Does not fit the byte budget even at the floor (quality 50, 96 px) → 422
    /// `image-not-fittable`.
    #[error("image does not fit {budget} bytes")]
    NotFittable { budget: usize, smallest: usize },
    /// No pool worker within the queue timeout → 503 `overloaded` + Retry-After.
    #[error("image workers are busy")]
    Busy,
}

/// The stage, shared by all workers: the bounded decode/encode pool and the limits.
pub struct ImageStage {
    limits: ImageLimits,
    pool: pool::Pool,
}

/// What is left to do after the inline part.
enum Plan {
    Done(Prepared),
    Heavy(Job),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Decode, orient, crop, downscale, encode (normalize).
    Normalize,
    /// Decode at full size, orient, encode (strip with an orientation, or over the budget).
    Reorient,
}

struct Job {
    input: Bytes,
    probe: probe::Probe,
    options: ImageOptions,
    work: Work,
    /// Kinds known to be removed already (from the strip walk).
    removed: Vec<&'static str>,
    max_decode_bytes: usize,
}

fn input_info(p: &probe::Probe, bytes: usize) -> InputInfo {
    InputInfo {
        content_type: p.format.content_type(),
        bytes,
        width: Some(p.width),
        height: Some(p.height),
        orientation: p.orientation,
    }
}

/// The bytes [`ImageStage::passthrough`] needs to name what a photo is.
pub const PASSTHROUGH_HEAD: usize = 64;

fn unsupported(b: &[u8]) -> ImageError {
    ImageError::Unsupported {
        detected: probe::sniff(b)
            .map(probe::Format::content_type)
            .or_else(|| probe::detect_other(b)),
    }
}

impl ImageStage {
    pub fn new(limits: ImageLimits) -> ImageStage {
        ImageStage {
            pool: pool::Pool::new(limits.workers, limits.queue_timeout),
            limits,
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &ImageLimits {
        &self.limits
    }

    /// Pool workers free now (for metrics and tests).
    pub fn idle_workers(&self) -> usize {
        self.pool.idle()
    }

    /// Turns the received bytes into the photo to send. Cheap work (header, lossless strip) runs
    /// inline; decoding and encoding run on the pool (`Busy` if no worker frees up in time).
    pub async fn prepare(
        &self,
        input: Bytes,
        options: &ImageOptions,
    ) -> Result<Prepared, ImageError> {
        match self.plan(input, options)? {
            Plan::Done(p) => Ok(p),
            Plan::Heavy(job) => self.pool.run(move || job.run()).await,
        }
    }

    /// [`ImageStage::prepare`] on the calling thread, without the pool: for the fuzz target, the
    /// benchmark and callers that are already on a blocking thread.
    pub fn prepare_blocking(
        &self,
        input: Bytes,
        options: &ImageOptions,
    ) -> Result<Prepared, ImageError> {
        match self.plan(input, options)? {
            Plan::Done(p) => Ok(p),
            Plan::Heavy(job) => job.run(),
        }
    }

    fn check_limits(&self, p: &probe::Probe) -> Result<(), ImageError> {
        let l = &self.limits;
        if p.width > l.max_input_edge
            || p.height > l.max_input_edge
            || u64::from(p.width) * u64::from(p.height) > l.max_pixels
        {
            return Err(ImageError::TooLarge {
                width: p.width,
                height: p.height,
            });
        }
        Ok(())
    }

    /// `passthrough` reads nothing past the first bytes: what it says of a photo of `len` bytes
    /// that starts with `head` (at least [`PASSTHROUGH_HEAD`] bytes when the photo has them),
    /// without the photo in one buffer.
    pub fn passthrough(
        &self,
        head: &[u8],
        len: usize,
    ) -> Result<(InputInfo, OutputInfo), ImageError> {
        if probe::sniff(head) != Some(probe::Format::Jpeg) {
            return Err(unsupported(head));
        }
        Ok((
            InputInfo {
                content_type: "image/jpeg",
                bytes: len,
                width: None,
                height: None,
                orientation: None,
            },
            OutputInfo {
                width: None,
                height: None,
                bytes: len,
                quality: None,
                metadata_removed: Vec::new(),
            },
        ))
    }

    /// The inline part: sniff, header, limits, passthrough, lossless strip.
    fn plan(&self, input: Bytes, o: &ImageOptions) -> Result<Plan, ImageError> {
        let len = input.len();
        let is_jpeg = probe::sniff(&input) == Some(probe::Format::Jpeg);
        if o.mode == Mode::Passthrough {
            let (input_info, output) = self.passthrough(&input, len)?;
            return Ok(Plan::Done(Prepared {
                bytes: input,
                input: input_info,
                output,
            }));
        }
        if o.mode == Mode::Strip && !is_jpeg {
            return Err(unsupported(&input));
        }
        let p = probe::probe(&input)?;
        self.check_limits(&p)?;
        let max_decode_bytes =
            usize::try_from(self.limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX);
        let upright = p.orientation.is_none_or(|o| o == 1);
        let compliant = match o.mode {
            Mode::Strip => is_jpeg && upright,
            _ => {
                p.jpeg
                    .as_ref()
                    .is_some_and(|j| j.is_baseline_ycbcr_or_gray())
                    && p.width.max(p.height) <= o.max_edge
                    && (o.crop == Crop::None || p.width == p.height)
                    && upright
            }
        };
        let mut removed = Vec::new();
        // Every JPEG is walked whole (structure checked: a truncated one is unreadable before
        // any decode); the walk is the lossless strip.
        if is_jpeg {
            let (stripped, kinds) = strip::strip(&input)?;
            removed = kinds;
            if compliant {
                let bytes = match stripped {
                    Some(v) => Bytes::from(v),
                    None => input.clone(),
                };
                if o.max_bytes.is_none_or(|m| bytes.len() <= m) {
                    return Ok(Plan::Done(Prepared {
                        input: input_info(&p, len),
                        output: OutputInfo {
                            width: Some(p.width),
                            height: Some(p.height),
                            bytes: bytes.len(),
                            quality: None,
                            metadata_removed: removed,
                        },
                        bytes,
                    }));
                }
            }
        }
        let work = match o.mode {
            Mode::Strip => Work::Reorient,
            _ => Work::Normalize,
        };
        Ok(Plan::Heavy(Job {
            input,
            probe: p,
            options: *o,
            work,
            removed,
            max_decode_bytes,
        }))
    }
}

impl Job {
    /// Decode, render and encode (on a pool worker).
    fn run(self) -> Result<Prepared, ImageError> {
        let o = &self.options;
        let p = &self.probe;
        let need = (self.work == Work::Normalize).then_some(pipeline::Need {
            edge: o.max_edge.max(1),
            crop: o.crop,
        });
        let raster = pipeline::decode(&self.input, p, need, o.background, self.max_decode_bytes)?;
        let orientation = p.orientation.unwrap_or(1);
        let rendered = match self.work {
            Work::Normalize => pipeline::render(&raster, orientation, o.crop, o.max_edge.max(1))?,
            Work::Reorient => pipeline::render(&raster, orientation, Crop::None, u32::MAX)?,
        };
        let enc = budget::encode_within(&rendered, o.quality, o.max_bytes)?;
        tracing::debug!(
            encodes = enc.encodes,
            quality = enc.quality,
            bytes = enc.bytes.len(),
            "image re-encoded"
        );
        let mut removed = self.removed;
        for kind in &p.metadata {
            probe::add_kind(&mut removed, kind);
        }
        if rendered.icc.is_some() {
            removed.retain(|k| *k != "icc");
        } else if p.metadata.contains(&"icc") {
            probe::add_kind(&mut removed, "icc");
        }
        Ok(Prepared {
            input: input_info(p, self.input.len()),
            output: OutputInfo {
                width: Some(enc.width),
                height: Some(enc.height),
                bytes: enc.bytes.len(),
                quality: Some(enc.quality),
                metadata_removed: removed,
            },
            bytes: Bytes::from(enc.bytes),
        })
    }
}
