//! Not a fuzz target: writes a small seed corpus for `image_stage` (the emulators' sample
//! generators at small sizes, each prefixed with the flags byte for normalize / strip /
//! passthrough) into the directory given, default `tests/fuzz/corpus/image_stage`.
//!
//!     cargo run --manifest-path tests/fuzz/Cargo.toml --bin seed_image_corpus

use photo_gateway_emulators::samples;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fuzz/corpus/image_stage".to_string());
    std::fs::create_dir_all(&dir)?;
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("phone-o6.jpg", samples::phone_jpeg(40, 30, 6)),
        ("phone-o3.jpg", samples::phone_jpeg(30, 40, 3)),
        ("compliant.jpg", samples::compliant_jpeg(32, 2)),
        ("compliant-meta.jpg", samples::compliant_jpeg_with_metadata(32)),
        ("progressive.jpg", samples::progressive_jpeg(40, 30)),
        ("gray.jpg", samples::grayscale_jpeg(40, 30)),
        ("cmyk.jpg", samples::cmyk_jpeg(24, 16, false)),
        ("ycck.jpg", samples::cmyk_jpeg(24, 16, true)),
        ("rgba8.png", samples::png_rgba8(24, 16)),
        ("rgb16.png", samples::png_rgb16(24, 16)),
        ("palette.png", samples::png_palette(24, 16)),
        ("lossless.webp", samples::webp_lossless_alpha(24, 16)),
        ("lossy.webp", samples::webp_lossy()),
        ("lossy-alpha.webp", samples::webp_lossy_alpha()),
        ("frames.gif", samples::gif_frames(16, 12, 3)),
        ("exif-loop.jpg", samples::hostile_jpeg_exif_loop()),
        ("huge.png", samples::hostile_png_huge_dimensions()),
        ("huge.jpg", samples::hostile_jpeg_huge_dimensions()),
        ("oversized.webp", samples::hostile_webp_oversized_chunk()),
    ];
    for (name, bytes) in seeds {
        for flags in [0u8, 1, 2, 0x0C] {
            let mut v = vec![flags];
            v.extend_from_slice(&bytes);
            std::fs::write(format!("{dir}/{flags:02x}-{name}"), v)?;
        }
    }
    Ok(())
}
