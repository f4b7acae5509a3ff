//! `sniff::detect` and `sniff::is_jpeg` on arbitrary bytes: no panic, and the two agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photo_gateway::upload::sniff;

fuzz_target!(|data: &[u8]| {
    let is = sniff::is_jpeg(data);
    let detected = sniff::detect(data);
    assert_eq!(is, detected == Some(sniff::JPEG), "{data:?}");
    if is {
        assert!(data.len() >= 4 && data[..2] == [0xFF, 0xD8]);
        assert_eq!(is, sniff::is_jpeg(&data[..4]));
    }
});
