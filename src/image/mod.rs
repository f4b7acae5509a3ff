//! The image stage: whatever common photo a caller sends becomes a clean profile photo (EXIF
//! orientation applied, metadata and GPS removed, square, long edge within the maximum, baseline
//! JPEG) with the least work that gets there. Framework-free: `service.rs` hands it the received
//! bytes and the options resolved for this request, and gets the bytes to send to Graph plus what
//! was read and done, for the receipt.
//!
//! INTERFACE SKELETON (issue 10): the types below are the contract between the stage and the
//! rest of the gateway. The implementation behind `ImageStage::prepare` is being written; until
//! then only `Mode::Passthrough` does what it will do.

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
}

impl ImageStage {
    pub fn new(limits: ImageLimits) -> ImageStage {
        ImageStage { limits }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &ImageLimits {
        &self.limits
    }

    /// Turns the received bytes into the photo to send. Cheap work (header, lossless strip) runs
    /// inline; decoding and encoding run on the pool.
    pub async fn prepare(
        &self,
        input: Bytes,
        options: &ImageOptions,
    ) -> Result<Prepared, ImageError> {
        let is_jpeg = input.starts_with(&[0xFF, 0xD8, 0xFF]);
        if !is_jpeg {
            return Err(ImageError::Unsupported { detected: None });
        }
        let _ = options;
        let len = input.len();
        Ok(Prepared {
            bytes: input,
            input: InputInfo {
                content_type: "image/jpeg",
                bytes: len,
                width: None,
                height: None,
                orientation: None,
            },
            output: OutputInfo {
                width: None,
                height: None,
                bytes: len,
                quality: None,
                metadata_removed: Vec::new(),
            },
        })
    }
}
