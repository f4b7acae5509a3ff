//! The image stage's phase (issue 10): CPU ms per image of `ImageStage::prepare_blocking` in
//! process (thread CPU time, median of `iterations`), for three generated inputs, and the same
//! work by Pillow (`bench/pillow_reference.py`) in the same run, as the reference.
//!
//! Inputs (deterministic, `photo_gateway_emulators::samples`): a 4032 × 3024 phone JPEG
//! (orientation 6, GPS, about 3 MB); a 1600 × 1200 RGB PNG; a compliant 600² baseline JPEG of
//! about 50 KB, measured in `normalize` (lossless strip) and in `passthrough`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use photo_gateway::image::{Crop, ImageLimits, ImageOptions, ImageStage, Mode};
use photo_gateway_emulators::samples;
use serde_json::{Value, json};

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn options(mode: Mode) -> ImageOptions {
    ImageOptions {
        mode,
        crop: Crop::Center,
        max_edge: 648,
        quality: 85,
        background: [255, 255, 255],
        max_bytes: None,
    }
}

/// Median CPU ms of `iterations` runs (after one warm-up), and the last output's size.
fn measure(
    stage: &ImageStage,
    input: &Bytes,
    mode: Mode,
    iterations: usize,
) -> Result<(f64, usize), String> {
    let o = options(mode);
    stage
        .prepare_blocking(input.clone(), &o)
        .map_err(|e| format!("{mode:?}: {e}"))?;
    let mut times = Vec::with_capacity(iterations);
    let mut bytes = 0;
    for _ in 0..iterations.max(1) {
        let t0 = thread_cpu();
        let p = stage
            .prepare_blocking(input.clone(), &o)
            .map_err(|e| format!("{mode:?}: {e}"))?;
        times.push((thread_cpu() - t0).as_secs_f64() * 1000.0);
        bytes = p.bytes.len();
    }
    Ok((median(times).unwrap_or(f64::NAN), bytes))
}

/// A compliant square JPEG as close to 50 KB as the sample generator's noise levels give.
fn compliant_50k() -> Vec<u8> {
    (0..=16)
        .map(|noise| samples::compliant_jpeg(600, noise))
        .min_by_key(|j| j.len().abs_diff(51_200))
        .unwrap_or_default()
}

fn pillow(python: &str, dir: &Path, files: &[&str], iterations: usize) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("pillow_reference.py");
    let out = Command::new(python)
        .arg(&script)
        .arg("--iterations")
        .arg(iterations.to_string())
        .args(files.iter().map(|f| dir.join(f)))
        .output();
    match out {
        Ok(o) => match serde_json::from_slice::<Value>(&o.stdout) {
            Ok(mut v) => {
                // Key the figures by file name, not by temporary path.
                if let Some(map) = v.get("files").and_then(Value::as_object).cloned() {
                    let mut by_name = serde_json::Map::new();
                    for (k, val) in map {
                        let name = Path::new(&k)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or(k);
                        by_name.insert(name, val);
                    }
                    v["files"] = Value::Object(by_name);
                }
                v
            }
            Err(_) => {
                json!({"error": format!("{python} {}: {}", script.display(), String::from_utf8_lossy(&o.stderr).trim())})
            }
        },
        Err(e) => json!({"error": format!("{python}: {e}")}),
    }
}

/// Runs the phase; returns its JSON and the problems (missing figures, failures). A missing
/// Pillow is a problem only when `require_pillow` (not in `--smoke`, where CI may lack it).
pub fn phase(iterations: usize, python: &str, require_pillow: bool) -> (Value, Vec<String>) {
    let mut problems = Vec::new();
    let stage = ImageStage::new(ImageLimits {
        max_pixels: 40_000_000,
        max_input_edge: 12_000,
        workers: 1,
        queue_timeout: Duration::from_secs(2),
    });
    let phone = Bytes::from(samples::phone_jpeg(4032, 3024, 6));
    let png = Bytes::from(samples::png_rgb8(1600, 1200));
    let small = Bytes::from(compliant_50k());
    let dir = match crate::procs::TempDir::new() {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!("image phase: {e}"));
            None
        }
    };
    let files = [
        ("phone-4032x3024-o6.jpg", &phone),
        ("rgb-1600x1200.png", &png),
        ("compliant-50k.jpg", &small),
    ];
    if let Some(d) = &dir {
        for (name, bytes) in files {
            if let Err(e) = std::fs::write(d.path().join(name), bytes.as_ref()) {
                problems.push(format!("image phase: {e}"));
            }
        }
    }
    let mut run = |input: &Bytes, mode: Mode| match measure(&stage, input, mode, iterations) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("image phase: {e}"));
            None
        }
    };
    let jpeg = run(&phone, Mode::Normalize);
    let png_r = run(&png, Mode::Normalize);
    let strip = run(&small, Mode::Normalize);
    let pass = run(&small, Mode::Passthrough);
    let reference = match &dir {
        Some(d) => pillow(
            python,
            d.path(),
            &["phone-4032x3024-o6.jpg", "rgb-1600x1200.png"],
            iterations,
        ),
        None => json!({"error": "no temporary directory"}),
    };
    if let Some(e) = reference.get("error").filter(|_| require_pillow) {
        problems.push(format!("image phase: Pillow reference: {e}"));
    }
    let pil = |f: &str| reference["files"][f]["cpu_ms_median"].as_f64();
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let jpeg_ms = jpeg.map(|v| v.0);
    let png_ms = png_r.map(|v| v.0);
    let v = json!({
        "iterations": iterations,
        "jpeg_12mp_to_648": {
            "input_bytes": phone.len(),
            "stage_cpu_ms_median": jpeg_ms,
            "output_bytes": jpeg.map(|v| v.1),
            "pillow_cpu_ms_median": pil("phone-4032x3024-o6.jpg"),
            "ratio_to_pillow": ratio(jpeg_ms, pil("phone-4032x3024-o6.jpg")),
            "goal_ratio_at_most": 0.8,
        },
        "png_1600x1200_to_648": {
            "input_bytes": png.len(),
            "stage_cpu_ms_median": png_ms,
            "output_bytes": png_r.map(|v| v.1),
            "pillow_cpu_ms_median": pil("rgb-1600x1200.png"),
            "ratio_to_pillow": ratio(png_ms, pil("rgb-1600x1200.png")),
            "goal_ratio_at_most": 0.8,
        },
        "compliant_jpeg_50k": {
            "input_bytes": small.len(),
            "normalize_cpu_ms_median": strip.map(|v| v.0),
            "passthrough_cpu_ms_median": pass.map(|v| v.0),
            "added_ms": match (strip, pass) { (Some(a), Some(b)) => Some(a.0 - b.0), _ => None },
            "output_bytes": strip.map(|v| v.1),
            "goal_added_ms_at_most": 0.3,
        },
        "pillow": reference,
    });
    (v, problems)
}

/// The phase's lines of the printed table.
pub fn table(v: &Value) -> String {
    let f = |x: &Value| x.as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
    let mut s = String::from("\nImage stage (CPU ms per image, median; in process vs Pillow)\n");
    for (k, label) in [
        ("jpeg_12mp_to_648", "4032x3024 JPEG (o6) -> 648² JPEG"),
        ("png_1600x1200_to_648", "1600x1200 PNG -> 648² JPEG"),
    ] {
        s += &format!(
            "  {label:<36} stage {:>8} ms   Pillow {:>8} ms   ratio {:>5} (goal <= 0.8)\n",
            f(&v[k]["stage_cpu_ms_median"]),
            f(&v[k]["pillow_cpu_ms_median"]),
            f(&v[k]["ratio_to_pillow"]),
        );
    }
    s += &format!(
        "  {:<36} normalize {} ms, passthrough {} ms, added {} ms (goal <= 0.3)\n",
        "compliant 50 KB JPEG",
        f(&v["compliant_jpeg_50k"]["normalize_cpu_ms_median"]),
        f(&v["compliant_jpeg_50k"]["passthrough_cpu_ms_median"]),
        f(&v["compliant_jpeg_50k"]["added_ms"]),
    );
    s
}
