//! Lossless metadata removal from a JPEG: the marker segments that carry metadata are dropped,
//! everything else (tables, frame, scans, entropy-coded data) is copied byte for byte, so the
//! pixels are untouched.
//!
//! Dropped: APP1 (EXIF, XMP), APP13 (IPTC/Photoshop), COM, every other APPn that is not one of
//! the three kept below (APP2 MPF/FlashPix, APP3..APP15 vendor blocks), and anything after EOI
//! (phones append preview images there). Kept: APP0 JFIF, APP2 ICC_PROFILE (so colours stay
//! right), APP14 Adobe (it says how to read the colour components).
//!
//! The walk also checks the structure: every segment inside the input, a scan before EOI, and an
//! EOI; anything else is unreadable.

use super::ImageError;
use super::probe::{add_kind, jpeg_metadata_kind};

fn unreadable(why: &str) -> ImageError {
    ImageError::Unreadable(why.to_string())
}

/// The stripped JPEG (`None` when nothing was removed: the input is already clean) and the
/// kinds removed.
pub fn strip(b: &[u8]) -> Result<(Option<Vec<u8>>, Vec<&'static str>), ImageError> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(unreadable("JPEG: no SOI"));
    }
    let mut removed = Vec::new();
    // Ranges of the input to keep, in order (merged when contiguous).
    let mut keep: Vec<(usize, usize)> = vec![(0, 2)];
    let push = |keep: &mut Vec<(usize, usize)>, s: usize, e: usize| {
        if let Some(last) = keep.last_mut()
            && last.1 == s
        {
            last.1 = e;
            return;
        }
        keep.push((s, e));
    };
    let mut i = 2;
    let mut seen_scan = false;
    loop {
        if b.get(i) != Some(&0xFF) {
            return Err(unreadable("JPEG: no marker where one was due"));
        }
        // Fill bytes.
        let mut j = i + 1;
        while b.get(j) == Some(&0xFF) {
            j += 1;
        }
        let marker = *b.get(j).ok_or_else(|| unreadable("JPEG: truncated"))?;
        let seg = j - 1; // the 0xFF right before the marker
        match marker {
            0xD9 => {
                if !seen_scan {
                    return Err(unreadable("JPEG: EOI before any scan"));
                }
                push(&mut keep, seg, j + 1);
                if j + 1 < b.len() {
                    add_kind(&mut removed, "trailer");
                }
                break;
            }
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => {
                return Err(unreadable("JPEG: unexpected marker"));
            }
            _ => {}
        }
        let len = b
            .get(j + 1..j + 3)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or_else(|| unreadable("JPEG: truncated segment"))?;
        let end = j + 1 + len;
        if len < 2 || end > b.len() {
            return Err(unreadable("JPEG: segment past the end"));
        }
        let payload = &b[j + 3..end];
        match jpeg_metadata_kind(marker, payload) {
            Some(kind) => add_kind(&mut removed, kind),
            None => push(&mut keep, seg, end),
        }
        i = end;
        if marker == 0xDA {
            seen_scan = true;
            // Entropy-coded data up to the next marker that is not a stuffed 0x00 or an RSTn.
            let mut k = end;
            loop {
                let Some(off) = memchr::memchr(0xFF, &b[k..]) else {
                    return Err(unreadable("JPEG: scan runs past the end (truncated)"));
                };
                let ff = k + off;
                match b.get(ff + 1) {
                    None => return Err(unreadable("JPEG: truncated scan")),
                    Some(0x00) | Some(0xD0..=0xD7) => k = ff + 2,
                    Some(0xFF) => k = ff + 1,
                    Some(_) => {
                        push(&mut keep, end, ff);
                        i = ff;
                        break;
                    }
                }
            }
        }
    }
    if keep.len() == 1 && keep[0] == (0, b.len()) {
        return Ok((None, removed));
    }
    let mut out = Vec::with_capacity(keep.iter().map(|(s, e)| e - s).sum());
    for (s, e) in keep {
        out.extend_from_slice(&b[s..e]);
    }
    Ok((Some(out), removed))
}
