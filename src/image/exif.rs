//! EXIF orientation, read defensively. Only tag 0x0112 of IFD0 matters to the stage, so this
//! reads IFD0's entry table and nothing else: no sub-IFD pointer and no next-IFD link is ever
//! followed (so looping IFDs cannot loop), every offset is checked against the segment, and the
//! entry count is bounded by what the segment can hold. A full EXIF library (kamadak-exif,
//! nom-exif) would parse, and allocate for, everything else the stage then throws away.

/// The orientation (1..=8) in `tiff` (the APP1 payload after `Exif\0\0`), if present and valid.
pub fn orientation(tiff: &[u8]) -> Option<u16> {
    let le = match tiff.get(0..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |i: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(i..i.checked_add(2)?)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(i..i.checked_add(4)?)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let ifd0 = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd0)?);
    // At most as many entries as fit in the segment.
    let count = count.min(tiff.len().saturating_sub(ifd0 + 2) / 12);
    for k in 0..count {
        let e = ifd0 + 2 + k * 12;
        if u16_at(e)? != 0x0112 {
            continue;
        }
        // SHORT, count 1: the value is in the first two bytes of the value field.
        if u16_at(e + 2)? != 3 || u32_at(e + 4)? != 1 {
            return None;
        }
        let v = u16_at(e + 8)?;
        return (1..=8).contains(&v).then_some(v);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(le: bool, entries: &[(u16, u16, u32, u32)], ifd0: u32) -> Vec<u8> {
        let mut t = if le {
            b"II*\0".to_vec()
        } else {
            b"MM\0*".to_vec()
        };
        let p16 = |t: &mut Vec<u8>, v: u16| {
            t.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() })
        };
        let p32 = |t: &mut Vec<u8>, v: u32| {
            t.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() })
        };
        p32(&mut t, ifd0);
        p16(&mut t, entries.len() as u16);
        for &(tag, typ, count, value) in entries {
            p16(&mut t, tag);
            p16(&mut t, typ);
            p32(&mut t, count);
            if typ == 3 {
                p16(&mut t, value as u16);
                p16(&mut t, 0);
            } else {
                p32(&mut t, value);
            }
        }
        p32(&mut t, 8);
        t
    }

    #[test]
    fn reads_both_byte_orders() {
        for le in [true, false] {
            for o in 1..=8u32 {
                let t = tiff(le, &[(0x010F, 2, 4, 0), (0x0112, 3, 1, o)], 8);
                assert_eq!(orientation(&t), Some(o as u16));
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_valid_orientation() {
        assert_eq!(orientation(&tiff(true, &[(0x0112, 3, 1, 9)], 8)), None);
        assert_eq!(orientation(&tiff(true, &[(0x0112, 3, 1, 0)], 8)), None);
        assert_eq!(orientation(&tiff(true, &[(0x0112, 4, 1, 6)], 8)), None);
        assert_eq!(orientation(&tiff(true, &[(0x0112, 3, 2, 6)], 8)), None);
        assert_eq!(orientation(b"XX*\0\x08\0\0\0"), None);
        assert_eq!(orientation(b""), None);
    }

    #[test]
    fn out_of_segment_offsets_and_counts_are_safe() {
        // IFD0 offset past the end.
        assert_eq!(
            orientation(&tiff(true, &[(0x0112, 3, 1, 6)], 0xFFFF_FFF0)),
            None
        );
        // A count claiming 65,535 entries in a tiny segment: reads what is there.
        let mut t = tiff(true, &[(0x0112, 3, 1, 6)], 8);
        t[8] = 0xFF;
        t[9] = 0xFF;
        assert_eq!(orientation(&t), Some(6));
        // Truncated in the middle of the entry.
        let t = tiff(true, &[(0x0112, 3, 1, 6)], 8);
        assert_eq!(orientation(&t[..16]), None);
    }
}
