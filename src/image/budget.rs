//! The byte budget: encode at the asked quality; while the output is over the budget, lower the
//! quality (at most two steps, down to the floor of 50), then the size (at quality 50, each step
//! aimed at the budget from the last size, down to the floor of 96 px on the long edge), at most
//! [`MAX_ENCODES`] encodes in all. Over the budget at the floor → `NotFittable`.

use super::ImageError;
use super::pipeline::{Raster, encode, resize};

pub const MAX_ENCODES: usize = 8;
pub const FLOOR_QUALITY: u8 = 50;
pub const FLOOR_EDGE: u32 = 96;

/// The encoded output.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub quality: u8,
    pub width: u32,
    pub height: u32,
    /// How many encodes it took.
    pub encodes: usize,
}

fn scaled(r: &Raster, long: u32) -> Result<Raster, ImageError> {
    let (w, h) = (r.width, r.height);
    let s = f64::from(long) / f64::from(w.max(h));
    let nw = ((f64::from(w) * s).round() as u32).max(1);
    let nh = ((f64::from(h) * s).round() as u32).max(1);
    Ok(Raster {
        width: nw,
        height: nh,
        channels: r.channels,
        pixels: resize(r, (0, 0, w, h), (nw, nh))?,
        icc: r.icc.clone(),
    })
}

/// Encodes `full` (the rendered output at its largest size) within `max_bytes`, if any.
pub fn encode_within(
    full: &Raster,
    quality: u8,
    max_bytes: Option<usize>,
) -> Result<Encoded, ImageError> {
    let quality = quality.clamp(1, 100);
    let first = encode(full, quality)?;
    let Some(budget) = max_bytes else {
        return Ok(Encoded {
            bytes: first,
            quality,
            width: full.width,
            height: full.height,
            encodes: 1,
        });
    };
    let mut encodes = 1;
    let mut smallest = first.len();
    if first.len() <= budget {
        return Ok(Encoded {
            bytes: first,
            quality,
            width: full.width,
            height: full.height,
            encodes,
        });
    }
    // Quality steps.
    let mut steps = Vec::new();
    if quality > FLOOR_QUALITY {
        let mid = (u16::from(quality) + u16::from(FLOOR_QUALITY)).div_ceil(2) as u8;
        if mid > FLOOR_QUALITY && mid < quality {
            steps.push(mid);
        }
        steps.push(FLOOR_QUALITY);
    }
    let floor_q = quality.min(FLOOR_QUALITY);
    for q in steps {
        let out = encode(full, q)?;
        encodes += 1;
        smallest = smallest.min(out.len());
        if out.len() <= budget {
            return Ok(Encoded {
                bytes: out,
                quality: q,
                width: full.width,
                height: full.height,
                encodes,
            });
        }
    }
    // Size steps at the floor quality.
    let floor_edge = FLOOR_EDGE.min(full.width.max(full.height));
    let mut long = full.width.max(full.height);
    let mut last_len = smallest;
    while encodes < MAX_ENCODES && long > floor_edge {
        let aim = (f64::from(long) * (budget as f64 / last_len as f64).sqrt() * 0.95) as u32;
        let mut next = aim.min(long * 9 / 10).max(floor_edge);
        if encodes + 1 == MAX_ENCODES {
            next = floor_edge;
        }
        long = next;
        let r = scaled(full, long)?;
        let out = encode(&r, floor_q)?;
        encodes += 1;
        last_len = out.len();
        smallest = smallest.min(out.len());
        if out.len() <= budget {
            return Ok(Encoded {
                bytes: out,
                quality: floor_q,
                width: r.width,
                height: r.height,
                encodes,
            });
        }
    }
    Err(ImageError::NotFittable { budget, smallest })
}
