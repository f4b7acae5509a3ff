//! Checks a JPEG's structure while its bytes arrive, chunk by chunk, without copying them and in
//! a few bytes of state. The gateway forwards the photo to Graph untouched, so this is what stands
//! between a corrupt or truncated upload and a photo Graph refuses late or stores broken.
//!
//! What is checked (ITU-T T.81, B.1): SOI first; then segments, each a marker `FF xx` (any number
//! of `FF` fill bytes may precede it) followed by a big-endian length that counts its own two
//! bytes, so at least 2, and must fit in the data — except the standalone markers TEM and
//! RST0–7, which have no length; a frame header (SOFn) before the first SOS; entropy-coded data
//! after every SOS, which runs to the next marker (`FF 00` is a stuffed `FF` and `FF D0`–`FF D7`
//! are restart markers, both part of the data); and an EOI. What follows the EOI — a phone's
//! second (MPF) image, say — is not looked at. Nothing is decoded: tables and image data are only
//! delimited, which is what a truncated or spliced upload breaks.

use std::fmt;

/// A marker code (the byte after `FF`); displays as its T.81 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker(pub u8);

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0x01 => "TEM",
            0xC4 => "DHT",
            0xC8 => "JPG",
            0xCC => "DAC",
            c @ 0xC0..=0xCF => return write!(f, "SOF{}", c - 0xC0),
            c @ 0xD0..=0xD7 => return write!(f, "RST{}", c - 0xD0),
            0xD8 => "SOI",
            0xD9 => "EOI",
            0xDA => "SOS",
            0xDB => "DQT",
            0xDC => "DNL",
            0xDD => "DRI",
            0xDE => "DHP",
            0xDF => "EXP",
            c @ 0xE0..=0xEF => return write!(f, "APP{}", c - 0xE0),
            c @ 0xF0..=0xFD => return write!(f, "JPG{}", c - 0xF0),
            0xFE => "COM",
            _ => "RES",
        };
        f.write_str(name)
    }
}

/// Why the bytes are not a well-formed JPEG. Offsets count from the photo's first byte; the
/// messages name markers and offsets, never the photo's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// The data does not begin with SOI: not a JPEG at all.
    #[error("the data does not begin with a JPEG start-of-image (SOI) marker")]
    NotJpeg,
    /// The data ends between segments, before EOI.
    #[error(
        "the JPEG is truncated: its {len} bytes end without an end-of-image (EOI) marker; send the whole file"
    )]
    NoEndOfImage {
        /// Bytes received.
        len: u64,
    },
    /// The data ends inside a segment's two length bytes.
    #[error(
        "the JPEG is truncated: it ends inside the length of its {marker} segment at offset {at}, without an end-of-image (EOI) marker; send the whole file"
    )]
    TruncatedLength {
        /// The segment's marker.
        marker: Marker,
        /// Offset of the marker.
        at: u64,
    },
    /// A segment's declared length runs past the end of the data.
    #[error(
        "the JPEG is truncated: its {marker} segment at offset {at} declares {declared} bytes but the data ends {missing} bytes short of them, without an end-of-image (EOI) marker; send the whole file"
    )]
    SegmentPastEnd {
        /// The segment's marker.
        marker: Marker,
        /// Offset of the marker.
        at: u64,
        /// The segment's declared length.
        declared: u16,
        /// Bytes of the segment that never came.
        missing: u16,
    },
    /// The data ends inside the entropy-coded data of a scan.
    #[error(
        "the JPEG is truncated: it ends inside the image data of the scan (SOS) at offset {at}, without an end-of-image (EOI) marker; send the whole file"
    )]
    TruncatedScan {
        /// Offset of the scan's SOS marker.
        at: u64,
    },
    /// A segment declares a length under 2 (the length counts its own two bytes).
    #[error(
        "the JPEG is corrupt: its {marker} segment at offset {at} declares a length of {length}, less than the two bytes of the length itself"
    )]
    LengthTooShort {
        /// The segment's marker.
        marker: Marker,
        /// Offset of the marker.
        at: u64,
        /// The declared length.
        length: u16,
    },
    /// Something other than a marker where one must begin (between segments).
    #[error(
        "the JPEG is corrupt: at offset {at}, between two segments, there is data where a marker must begin"
    )]
    StrayData {
        /// Offset of the unexpected byte.
        at: u64,
    },
    /// A second SOI before the EOI of the first image.
    #[error(
        "the JPEG is corrupt: a second start-of-image (SOI) marker at offset {at} comes before the first image's end-of-image (EOI) marker"
    )]
    NestedImage {
        /// Offset of the second SOI.
        at: u64,
    },
    /// An SOS before any SOFn: the scan belongs to no frame.
    #[error(
        "the JPEG is corrupt: its first scan (SOS) at offset {at} comes before any frame header (SOF marker), so the image's size and components are never declared"
    )]
    ScanBeforeFrame {
        /// Offset of the SOS.
        at: u64,
    },
    /// A scan without entropy-coded data.
    #[error("the JPEG is corrupt: the scan (SOS) at offset {at} has no image data")]
    EmptyScan {
        /// Offset of the scan's SOS marker.
        at: u64,
    },
    /// EOI before any SOS: the file has no image data at all.
    #[error(
        "the JPEG has no image data: its end-of-image (EOI) marker at offset {at} comes before any scan (SOS marker)"
    )]
    NoScan {
        /// Offset of the EOI.
        at: u64,
    },
}

/// Where the parser is. `Copy` and a few bytes: the whole state between two chunks.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting the `FF` of SOI.
    SoiFf,
    /// Expecting the `D8` of SOI.
    SoiCode,
    /// Between segments: expecting the `FF` that begins a marker.
    Marker,
    /// After an `FF` between segments: a marker code, or another fill byte.
    MarkerCode,
    /// Expecting the high byte of a segment's length.
    LengthHigh(u8),
    /// Expecting the low byte of a segment's length.
    LengthLow(u8, u8),
    /// Inside a segment's payload.
    Payload {
        marker: u8,
        declared: u16,
        remaining: u16,
    },
    /// Entropy-coded data of a scan.
    Scan,
    /// Entropy-coded data, just after an `FF`.
    ScanFf,
    /// After EOI: the rest is not looked at.
    Done,
    /// The verdict is in; the rest is not looked at.
    Failed(JpegError),
}

/// An incremental JPEG structure check: [`feed`](JpegCheck::feed) every chunk in order, then ask
/// [`finish`](JpegCheck::finish). The verdict does not depend on where the chunks are cut.
#[derive(Debug, Clone)]
pub struct JpegCheck {
    state: State,
    /// Bytes consumed so far, for the offsets in errors.
    pos: u64,
    /// Offset of the marker whose segment or scan is being read.
    at: u64,
    seen_frame: bool,
    seen_scan: bool,
    scan_has_data: bool,
}

impl Default for JpegCheck {
    fn default() -> Self {
        JpegCheck::new()
    }
}

/// SOF0–SOF15; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers.
fn is_frame_header(code: u8) -> bool {
    matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

const SOS: u8 = 0xDA;

impl JpegCheck {
    /// A check that has seen nothing yet.
    pub fn new() -> JpegCheck {
        JpegCheck {
            state: State::SoiFf,
            pos: 0,
            at: 0,
            seen_frame: false,
            seen_scan: false,
            scan_has_data: false,
        }
    }

    /// Looks at the next bytes. Once the verdict is known (an error, or EOI) the rest costs
    /// nothing.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.step(data) {
                Ok(n) => {
                    self.pos += n as u64;
                    data = &data[n..];
                }
                Err(e) => {
                    self.state = State::Failed(e);
                    return;
                }
            }
        }
    }

    /// The verdict on everything fed so far, taken as the whole photo.
    pub fn finish(&self) -> Result<(), JpegError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e),
            State::SoiFf | State::SoiCode => Err(JpegError::NotJpeg),
            State::Marker | State::MarkerCode => Err(JpegError::NoEndOfImage { len: self.pos }),
            State::LengthHigh(m) | State::LengthLow(m, _) => Err(JpegError::TruncatedLength {
                marker: Marker(m),
                at: self.at,
            }),
            State::Payload {
                marker,
                declared,
                remaining,
            } => Err(JpegError::SegmentPastEnd {
                marker: Marker(marker),
                at: self.at,
                declared,
                missing: remaining,
            }),
            State::Scan | State::ScanFf => Err(JpegError::TruncatedScan { at: self.at }),
        }
    }

    /// Consumes a prefix of `data` (never empty) and says how long it was.
    fn step(&mut self, data: &[u8]) -> Result<usize, JpegError> {
        let b = data[0];
        match self.state {
            State::Done | State::Failed(_) => return Ok(data.len()),
            State::SoiFf if b == 0xFF => self.state = State::SoiCode,
            State::SoiCode if b == 0xD8 => self.state = State::Marker,
            State::SoiFf | State::SoiCode => return Err(JpegError::NotJpeg),
            State::Marker if b == 0xFF => self.state = State::MarkerCode,
            State::Marker => return Err(JpegError::StrayData { at: self.pos }),
            State::MarkerCode if b == 0xFF => {}
            State::MarkerCode => self.marker(b)?,
            State::LengthHigh(m) => self.state = State::LengthLow(m, b),
            State::LengthLow(m, high) => {
                let length = u16::from_be_bytes([high, b]);
                if length < 2 {
                    return Err(JpegError::LengthTooShort {
                        marker: Marker(m),
                        at: self.at,
                        length,
                    });
                }
                self.payload(m, length, length - 2);
            }
            State::Payload {
                marker,
                declared,
                remaining,
            } => {
                let n = data.len().min(usize::from(remaining));
                // n ≤ remaining, a u16.
                self.payload(marker, declared, remaining - n as u16);
                return Ok(n);
            }
            State::Scan => return Ok(self.scan(data)),
            State::ScanFf => match b {
                0x00 => {
                    self.scan_has_data = true;
                    self.state = State::Scan;
                }
                0xD0..=0xD7 => self.state = State::Scan,
                0xFF => {}
                _ if !self.scan_has_data => return Err(JpegError::EmptyScan { at: self.at }),
                code => self.marker(code)?,
            },
        }
        Ok(1)
    }

    /// Entropy-coded data: most of a photo, so it jumps from one `FF` to the next and passes
    /// stuffed bytes and restart markers without leaving the loop. Stops after an `FF` whose
    /// meaning the next chunk holds, or that may end the scan.
    fn scan(&mut self, data: &[u8]) -> usize {
        let mut from = 0;
        loop {
            let Some(ff) = memchr::memchr(0xFF, &data[from..]).map(|i| from + i) else {
                self.scan_has_data |= from < data.len();
                return data.len();
            };
            self.scan_has_data |= ff > from;
            match data.get(ff + 1) {
                Some(0x00) => self.scan_has_data = true,
                Some(0xD0..=0xD7) => {}
                _ => {
                    self.state = State::ScanFf;
                    return ff + 1;
                }
            }
            from = ff + 2;
        }
    }

    /// A marker code at `self.pos`, its `FF` just before.
    fn marker(&mut self, code: u8) -> Result<(), JpegError> {
        let at = self.pos - 1;
        self.state = match code {
            0x00 => return Err(JpegError::StrayData { at }),
            0xD8 => return Err(JpegError::NestedImage { at }),
            0xD9 if !self.seen_scan => return Err(JpegError::NoScan { at }),
            0xD9 => State::Done,
            0x01 | 0xD0..=0xD7 => State::Marker,
            SOS if !self.seen_frame => return Err(JpegError::ScanBeforeFrame { at }),
            code => {
                self.seen_frame |= is_frame_header(code);
                State::LengthHigh(code)
            }
        };
        self.at = at;
        Ok(())
    }

    /// Inside the payload of `marker`'s segment with `remaining` bytes to go; at its end, the
    /// next segment or, after an SOS header, the scan's data.
    fn payload(&mut self, marker: u8, declared: u16, remaining: u16) {
        self.state = match (remaining, marker) {
            (0, SOS) => {
                self.seen_scan = true;
                self.scan_has_data = false;
                State::Scan
            }
            (0, _) => State::Marker,
            _ => State::Payload {
                marker,
                declared,
                remaining,
            },
        };
    }
}

/// Checks a whole JPEG held in one buffer.
pub fn check(data: &[u8]) -> Result<(), JpegError> {
    let mut c = JpegCheck::new();
    c.feed(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SOI: [u8; 2] = [0xFF, 0xD8];
    const EOI: [u8; 2] = [0xFF, 0xD9];

    /// A segment: marker, length, payload.
    fn seg(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, marker];
        v.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn app0() -> Vec<u8> {
        seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
    }
    fn dqt() -> Vec<u8> {
        let mut p = vec![0u8];
        p.extend_from_slice(&[1u8; 64]);
        seg(0xDB, &p)
    }
    fn sof(marker: u8) -> Vec<u8> {
        seg(marker, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0])
    }
    fn dht() -> Vec<u8> {
        let mut p = vec![0x00, 1];
        p.extend_from_slice(&[0u8; 15]);
        p.push(0);
        seg(0xC4, &p)
    }
    fn sos() -> Vec<u8> {
        seg(SOS, &[1, 1, 0, 0, 0x3F, 0])
    }

    /// SOI, APP0, DQT, SOF0, DHT, SOS, `scan`, EOI.
    fn baseline_with(scan: &[u8]) -> Vec<u8> {
        [
            &SOI[..],
            &app0(),
            &dqt(),
            &sof(0xC0),
            &dht(),
            &sos(),
            scan,
            &EOI,
        ]
        .concat()
    }

    fn baseline() -> Vec<u8> {
        baseline_with(&[0x12, 0x34, 0x56])
    }

    /// Feeds `data` in pieces cut at `cuts` (sorted offsets).
    fn verdict_cut(data: &[u8], cuts: &[usize]) -> Result<(), JpegError> {
        let mut c = JpegCheck::new();
        let mut start = 0;
        for &cut in cuts {
            c.feed(&data[start..cut]);
            start = cut;
        }
        c.feed(&data[start..]);
        c.finish()
    }

    /// The verdict, the same fed whole, byte by byte, and cut at every single point.
    fn verdict(data: &[u8]) -> Result<(), JpegError> {
        let whole = check(data);
        let bytewise = verdict_cut(data, &(1..data.len()).collect::<Vec<_>>());
        assert_eq!(whole, bytewise, "byte by byte");
        for k in 0..=data.len() {
            assert_eq!(whole, verdict_cut(data, &[k]), "cut at {k}");
        }
        whole
    }

    #[test]
    fn a_baseline_jpeg_passes() {
        assert_eq!(verdict(&baseline()), Ok(()));
        for (w, h) in [(8, 8), (16, 16), (64, 48), (648, 648)] {
            let sample = photo_gateway_emulators::sample_jpeg(w, h, "sample");
            assert_eq!(check(&sample), Ok(()), "{w}×{h}");
        }
    }

    #[test]
    fn a_progressive_jpeg_with_several_scans_and_tables_between_them_passes() {
        let data = [
            &SOI[..],
            &dqt(),
            &sof(0xC2),
            &dht(),
            &seg(SOS, &[1, 1, 0, 0, 0, 0]),
            &[0xAA, 0xBB],
            &dht(),
            &seg(SOS, &[1, 1, 0, 1, 5, 0]),
            &[0xCC],
            &seg(SOS, &[1, 1, 0, 6, 63, 0]),
            &[0xDD, 0xEE, 0xFF, 0x00],
            &seg(0xDC, &[0, 8]), // DNL after the first scan is allowed too
            &seg(SOS, &[1, 1, 0, 1, 63, 0x10]),
            &[0x01],
            &EOI,
        ]
        .concat();
        assert_eq!(verdict(&data), Ok(()));
    }

    #[test]
    fn restart_markers_and_stuffed_bytes_are_part_of_the_scan() {
        let mut scan = Vec::new();
        for n in 0..16u8 {
            scan.extend_from_slice(&[0x55, 0xFF, 0x00, 0x66]);
            scan.extend_from_slice(&[0xFF, 0xD0 + n % 8]);
        }
        let data = [
            &SOI[..],
            &dqt(),
            &seg(0xDD, &[0, 1]),
            &sof(0xC1),
            &dht(),
            &sos(),
            &scan,
            &EOI,
        ]
        .concat();
        assert_eq!(verdict(&data), Ok(()));
        // Scan data that is nothing but stuffed FFs is still data.
        assert_eq!(verdict(&baseline_with(&[0xFF, 0x00, 0xFF, 0x00])), Ok(()));
        // Restart markers alone are not.
        assert_eq!(
            verdict(&baseline_with(&[0xFF, 0xD0])),
            Err(JpegError::EmptyScan { at: 124 })
        );
    }

    #[test]
    fn fill_bytes_may_precede_any_marker() {
        let data = [
            &SOI[..],
            &[0xFF, 0xFF, 0xFF],
            &dqt(),
            &[0xFF],
            &sof(0xC0),
            &dht(),
            &sos(),
            &[0x42, 0xFF, 0xFF, 0xFF],
            &EOI,
        ]
        .concat();
        assert_eq!(verdict(&data), Ok(()));
    }

    #[test]
    fn app_and_com_segments_are_skipped_by_their_length_whatever_they_hold() {
        // Payloads that look like markers (EOI, SOS, SOI) must not be taken for them.
        let tricky = [0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD8, 0xFF, 0x00];
        let mut data = SOI.to_vec();
        data.extend(seg(0xE1, &tricky));
        data.extend(seg(0xFE, b""));
        data.extend(seg(0xFE, &tricky));
        data.extend(seg(0xEF, &[0xFF; 300]));
        data.extend_from_slice(&baseline()[2..]);
        assert_eq!(verdict(&data), Ok(()));
        // A segment of the largest length.
        let mut big = SOI.to_vec();
        big.extend(seg(0xE2, &vec![0xFF; 65_533]));
        big.extend_from_slice(&baseline()[2..]);
        assert_eq!(check(&big), Ok(()));
    }

    #[test]
    fn data_after_the_end_of_image_is_not_looked_at() {
        let mut data = baseline();
        data.extend_from_slice(&baseline()); // a second (MPF) image
        data.extend_from_slice(b"\x00\x01 trailing junk \xFF\xD8\xFF");
        assert_eq!(verdict(&data), Ok(()));
    }

    #[test]
    fn truncation_is_reported_where_it_happens() {
        let full = baseline();
        let sos_at = (2 + 18 + 69 + 13 + 22) as u64;
        // Between segments: ends after the DQT.
        assert_eq!(
            verdict(&full[..2 + 18 + 69]),
            Err(JpegError::NoEndOfImage { len: 89 })
        );
        // Right after a marker's FF.
        assert_eq!(
            verdict(&full[..2 + 18 + 69 + 1]),
            Err(JpegError::NoEndOfImage { len: 90 })
        );
        // Inside a segment's length.
        assert_eq!(
            verdict(&full[..2 + 18 + 3]),
            Err(JpegError::TruncatedLength {
                marker: Marker(0xDB),
                at: 20
            })
        );
        // Inside a segment's payload.
        assert_eq!(
            verdict(&full[..2 + 18 + 10]),
            Err(JpegError::SegmentPastEnd {
                marker: Marker(0xDB),
                at: 20,
                declared: 67,
                missing: 59
            })
        );
        // Inside the scan, and just before the EOI marker's code.
        let in_scan = Err(JpegError::TruncatedScan { at: sos_at });
        assert_eq!(verdict(&full[..full.len() - 3]), in_scan);
        assert_eq!(verdict(&full[..full.len() - 1]), in_scan);
        // Every proper prefix is refused.
        for k in 0..full.len() {
            assert!(check(&full[..k]).is_err(), "prefix of {k} bytes");
        }
    }

    #[test]
    fn a_segment_length_past_the_end_is_refused() {
        // An APP1 that claims 1000 bytes where 10 follow, then a whole image: the image is
        // swallowed by the APP1 and the data ends inside it.
        let mut data = SOI.to_vec();
        data.extend_from_slice(&[0xFF, 0xE1, 0x03, 0xE8]);
        data.extend_from_slice(&[0x11; 10]);
        let rest = &baseline()[2..];
        data.extend_from_slice(rest);
        assert_eq!(
            verdict(&data),
            Err(JpegError::SegmentPastEnd {
                marker: Marker(0xE1),
                at: 2,
                declared: 1000,
                missing: (998 - 10 - rest.len()) as u16,
            })
        );
    }

    #[test]
    fn a_length_under_two_is_refused() {
        for length in [0u8, 1] {
            let mut data = SOI.to_vec();
            data.extend_from_slice(&[0xFF, 0xFE, 0x00, length]);
            data.extend_from_slice(&baseline()[2..]);
            assert_eq!(
                verdict(&data),
                Err(JpegError::LengthTooShort {
                    marker: Marker(0xFE),
                    at: 2,
                    length: u16::from(length)
                })
            );
        }
    }

    #[test]
    fn a_scan_needs_a_frame_header_before_it() {
        let data = [&SOI[..], &dqt(), &dht(), &sos(), &[0x12], &EOI].concat();
        assert_eq!(
            verdict(&data),
            Err(JpegError::ScanBeforeFrame { at: 2 + 69 + 22 })
        );
        // DHT, JPG and DAC sit among the SOF codes but are not frame headers.
        for not_a_frame in [0xC4, 0xC8, 0xCC] {
            let data = [&SOI[..], &seg(not_a_frame, &[0; 4]), &sos(), &[1], &EOI].concat();
            assert_eq!(
                check(&data),
                Err(JpegError::ScanBeforeFrame { at: 10 }),
                "{not_a_frame:02X}"
            );
        }
        // Every other code of C0–CF is one.
        for frame in (0xC0..=0xCF).filter(|c| ![0xC4, 0xC8, 0xCC].contains(c)) {
            let data = [&SOI[..], &sof(frame), &sos(), &[1], &EOI].concat();
            assert_eq!(check(&data), Ok(()), "{frame:02X}");
        }
    }

    #[test]
    fn bytes_before_the_start_of_image_are_not_a_jpeg() {
        for data in [
            [b"garbage".as_slice(), &baseline()].concat(),
            [&[0x00][..], &baseline()].concat(),
            [&[0xFF][..], &baseline()].concat(),
            b"\x89PNG\r\n\x1a\n".to_vec(),
            vec![0xFF],
            vec![],
        ] {
            assert_eq!(verdict(&data), Err(JpegError::NotJpeg));
        }
    }

    #[test]
    fn stray_bytes_nested_images_and_empty_files_are_refused() {
        let full = baseline();
        // A byte between APP0 and DQT.
        let stray = [&full[..20], &[0x00], &full[20..]].concat();
        assert_eq!(verdict(&stray), Err(JpegError::StrayData { at: 20 }));
        // FF 00 is stuffing only inside a scan.
        let stuffed = [&full[..20], &[0xFF, 0x00], &full[20..]].concat();
        assert_eq!(verdict(&stuffed), Err(JpegError::StrayData { at: 20 }));
        // A second SOI before the first image ends.
        let nested = [&full[..20], &full].concat();
        assert_eq!(verdict(&nested), Err(JpegError::NestedImage { at: 20 }));
        // Tables and no scan.
        let no_scan = [&SOI[..], &dqt(), &sof(0xC0), &EOI].concat();
        assert_eq!(verdict(&no_scan), Err(JpegError::NoScan { at: 84 }));
        assert_eq!(
            verdict(&[0xFF, 0xD8, 0xFF, 0xD9]),
            Err(JpegError::NoScan { at: 2 })
        );
        // A scan header straight followed by EOI.
        let empty = baseline_with(&[]);
        assert_eq!(verdict(&empty), Err(JpegError::EmptyScan { at: 124 }));
        // Standalone markers (TEM, RSTn) between segments carry no length.
        let standalone = [&full[..20], &[0xFF, 0x01, 0xFF, 0xD3], &full[20..]].concat();
        assert_eq!(verdict(&standalone), Ok(()));
    }

    #[test]
    fn messages_say_what_is_wrong_and_never_carry_the_bytes() {
        let truncated = check(&baseline()[..130]).unwrap_err().to_string();
        assert!(truncated.contains("truncated"), "{truncated}");
        assert!(truncated.contains("end-of-image"), "{truncated}");
        let short = JpegError::LengthTooShort {
            marker: Marker(0xE1),
            at: 2,
            length: 1,
        }
        .to_string();
        assert!(short.contains("APP1 segment at offset 2"), "{short}");
        let past = JpegError::SegmentPastEnd {
            marker: Marker(0xC2),
            at: 9,
            declared: 17,
            missing: 3,
        }
        .to_string();
        assert!(past.contains("SOF2 segment at offset 9"), "{past}");
        let names: Vec<String> = [0x01, 0xC4, 0xC8, 0xCC, 0xC3, 0xD5, 0xE0, 0xF3, 0xFE, 0x02]
            .into_iter()
            .map(|c| Marker(c).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "TEM", "DHT", "JPG", "DAC", "SOF3", "RST5", "APP0", "JPG3", "COM", "RES"
            ]
        );
    }

    /// Entropy-coded data as an encoder writes it: any bytes, each FF stuffed, restart markers
    /// between intervals.
    fn scan_data() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec((any::<u8>(), 0u8..16), 1..60).prop_map(|v| {
            let mut out = Vec::new();
            for (i, (b, r)) in v.into_iter().enumerate() {
                out.push(b);
                if b == 0xFF {
                    out.push(0x00);
                }
                if r == 0 && i > 0 {
                    out.extend_from_slice(&[0xFF, 0xD0 + (i % 8) as u8]);
                }
            }
            out
        })
    }

    /// A segment of a table, application data or comment, with up to `fill` fill bytes before it.
    fn table_segment() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![0xC4u8, 0xCC, 0xDB, 0xDD, 0xE0, 0xE1, 0xEF, 0xFE]),
            prop::collection::vec(any::<u8>(), 0..40),
            0usize..3,
        )
            .prop_map(|(marker, payload, fill)| {
                let mut v = vec![0xFF; fill];
                v.extend(seg(marker, &payload));
                v
            })
    }

    /// Well-formed JPEGs: tables, a frame header, one or more scans with tables between them,
    /// EOI, and sometimes something after it.
    fn valid_jpeg() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(table_segment(), 0..4),
            prop::sample::select(vec![0xC0u8, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCF]),
            prop::collection::vec(
                (
                    prop::collection::vec(table_segment(), 0..3),
                    prop::collection::vec(any::<u8>(), 0..12),
                    scan_data(),
                ),
                1..4,
            ),
            prop::collection::vec(any::<u8>(), 0..30),
        )
            .prop_map(|(tables, frame, scans, trailer)| {
                let mut out = SOI.to_vec();
                tables.iter().for_each(|t| out.extend_from_slice(t));
                out.extend(seg(frame, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]));
                for (tables, header, data) in scans {
                    tables.iter().for_each(|t| out.extend_from_slice(t));
                    out.extend(seg(SOS, &header));
                    out.extend(data);
                }
                out.extend_from_slice(&EOI);
                out.extend(trailer);
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_valid_jpeg_passes_however_it_is_cut(data in valid_jpeg()) {
            prop_assert_eq!(check(&data), Ok(()));
            for k in 0..=data.len() {
                prop_assert_eq!(verdict_cut(&data, &[k]), Ok(()), "cut at {}", k);
            }
            prop_assert_eq!(verdict_cut(&data, &(1..data.len()).collect::<Vec<_>>()), Ok(()));
        }

        #[test]
        fn the_verdict_on_damaged_jpegs_does_not_depend_on_the_cuts(
            data in valid_jpeg(),
            cut_at in any::<prop::sample::Index>(),
            flip_at in any::<prop::sample::Index>(),
            flip in any::<u8>(),
            truncate in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut data = data;
            if truncate {
                data.truncate(cut_at.index(data.len()));
            } else {
                let i = flip_at.index(data.len());
                data[i] ^= flip;
            }
            let whole = check(&data);
            for k in 0..=data.len() {
                prop_assert_eq!(verdict_cut(&data, &[k]), whole, "cut at {}", k);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(verdict_cut(&data, &cuts), whole, "cuts {:?}", cuts);
        }
    }
}
