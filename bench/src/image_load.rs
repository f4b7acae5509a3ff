//! The image stage's throughput phase (issue 10): the release gateway, started as the other phases
//! start it but in `normalize` mode, receives the deterministic 4032 × 3024 phone JPEG
//! (`photo_gateway_emulators::samples::phone_jpeg`, orientation 6, about 3 MB) at concurrency
//! C = cores, N times. It reports images per wall second and the gateway's CPU seconds while busy
//! (`/proc/<pid>/stat` utime + stime, before and after), and checks that every answer was 200 and
//! that the Graph emulator received, for every request, a decodable JPEG of at most 648 × 648.
//!
//! The goal's ratio is computed by [`goal`] once the in-process phase has measured the stage's CPU
//! per image in the same run (see BENCHMARKS.md, "Image stage (issue 10)").

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use photo_gateway_emulators::samples;
use serde_json::{Value, json};

use crate::load::run_load;
use crate::procs;

/// The longest edge the stage sends (the gateway's default `PHOTO_GATEWAY_IMAGE_MAX_EDGE`).
const MAX_EDGE: u64 = 648;

/// What the phase needs from the run.
pub struct Setup<'a> {
    pub gateway_bin: &'a Path,
    /// The gateway environment of the other phases; the image mode is overridden here.
    pub env: &'a [(String, String)],
    pub log: &'a Path,
    pub client: &'a reqwest::Client,
    /// The Graph emulator's base URL (its control API is `{graph_url}/_emulator/…`).
    pub graph_url: &'a str,
    pub caller_tokens: &'a [String],
    pub requests: usize,
    pub concurrency: usize,
}

/// The phase's environment: the run's, with `PHOTO_GATEWAY_IMAGE_MODE=normalize` (the gateway's
/// default, which the other phases override to `passthrough`).
pub fn normalize_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "PHOTO_GATEWAY_IMAGE_MODE")
        .cloned()
        .collect();
    e.push(("PHOTO_GATEWAY_IMAGE_MODE".into(), "normalize".into()));
    e
}

/// Runs the phase; failures and missing figures go to `problems`.
pub async fn phase(s: &Setup<'_>, problems: &mut Vec<String>) -> Value {
    let env = normalize_env(s.env);
    let (gateway, port, _) = match procs::start_gateway(s.gateway_bin, &env, s.log).await {
        Ok(g) => g,
        Err(e) => {
            problems.push(format!("image throughput phase: starting the gateway: {e}"));
            return Value::Null;
        }
    };
    let pid = gateway.pid();
    let url = format!("http://127.0.0.1:{port}/v1.0/me/photo/$value");
    let c = s.concurrency.max(1);
    // One user per concurrent request; the warm-up (one compliant 50 KB JPEG per user) fills the
    // token cache, so the measured requests are the image stage plus the usual forwarding.
    let users = c.min(s.caller_tokens.len()).max(1);
    let tokens: Arc<Vec<String>> = Arc::new(s.caller_tokens[..users].to_vec());
    let small = Bytes::from(samples::compliant_jpeg(600, 4));
    let photo = Bytes::from(samples::phone_jpeg(4032, 3024, 6));
    let warm = run_load(s.client, &url, tokens.clone(), small, users, c).await;
    if warm.errors > 0 {
        problems.push(format!(
            "image throughput phase: warm-up: {} failed (first: {})",
            warm.errors,
            warm.first_error.as_deref().unwrap_or("-")
        ));
    }
    // One 12 MP request per worker before measuring (first use of the stage's pool).
    let _ = run_load(s.client, &url, tokens.clone(), photo.clone(), c, c).await;
    let cleared = s
        .client
        .delete(format!("{}/_emulator/requests", s.graph_url))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    if !cleared {
        problems
            .push("image throughput phase: could not clear the Graph emulator's records".into());
    }

    let cpu0 = procs::cpu_time(&pid.to_string());
    let stats = run_load(s.client, &url, tokens, photo.clone(), s.requests, c).await;
    let cpu1 = procs::cpu_time(&pid.to_string());
    drop(gateway);
    if stats.errors > 0 || stats.ok != s.requests {
        problems.push(format!(
            "image throughput phase: {} of {} requests were not 200 (first: {})",
            s.requests - stats.ok,
            s.requests,
            stats.first_error.as_deref().unwrap_or("-")
        ));
    }
    let received = received_check(s, problems).await;
    let gw_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    if gw_cpu.is_none() {
        problems
            .push("missing figure: image throughput phase: gateway CPU (/proc/<pid>/stat)".into());
    }
    let wall = stats.elapsed.as_secs_f64();
    let gw_cpu_s = gw_cpu.map(|d| d.as_secs_f64());
    json!({
        "input": "samples::phone_jpeg(4032, 3024, 6)",
        "input_bytes": photo.len(),
        "gateway_env_override": "PHOTO_GATEWAY_IMAGE_MODE=normalize",
        "concurrency": c,
        "users": users,
        "requests": s.requests,
        "load": stats.to_json(photo.len()),
        "throughput_images_per_s": stats.rps(),
        "gateway_cpu_busy_s": gw_cpu_s,
        "gateway_busy_cores": gw_cpu_s.filter(|_| wall > 0.0).map(|c| c / wall),
        "gateway_cpu_ms_per_image": gw_cpu_s
            .filter(|_| stats.ok > 0)
            .map(|c| c * 1000.0 / stats.ok as f64),
        "graph_received": received,
    })
}

/// What the Graph emulator recorded for the measured requests: every one a decoded JPEG within
/// 648 × 648.
async fn received_check(s: &Setup<'_>, problems: &mut Vec<String>) -> Value {
    let recorded: Option<Value> = match s
        .client
        .get(format!("{}/_emulator/requests", s.graph_url))
        .send()
        .await
    {
        Ok(r) => r.json().await.ok(),
        Err(_) => None,
    };
    let Some(list) = recorded.as_ref().and_then(Value::as_array) else {
        problems.push("image throughput phase: could not read the Graph emulator's records".into());
        return Value::Null;
    };
    let puts: Vec<&Value> = list
        .iter()
        .filter(|r| r["method"] == "PUT" && r["status"] == 200)
        .collect();
    let ok = |r: &&&Value| {
        let i = &r["image"];
        i["format"] == "jpeg"
            && i["decoded"] == true
            && i["width"].as_u64().is_some_and(|w| w <= MAX_EDGE)
            && i["height"].as_u64().is_some_and(|h| h <= MAX_EDGE)
    };
    let good = puts.iter().filter(ok).count();
    if puts.len() != s.requests || good != puts.len() {
        problems.push(format!(
            "image throughput phase: the Graph emulator stored {} photos for {} requests, {} of them a decoded JPEG within {MAX_EDGE}²",
            puts.len(),
            s.requests,
            good
        ));
    }
    let dims: Vec<String> = {
        let mut d: Vec<String> = puts
            .iter()
            .map(|r| format!("{}x{}", r["image"]["width"], r["image"]["height"]))
            .collect();
        d.sort();
        d.dedup();
        d
    };
    let bytes: Vec<u64> = puts.iter().filter_map(|r| r["bytes"].as_u64()).collect();
    json!({
        "photos_stored": puts.len(),
        "decoded_jpeg_within_648": good,
        "dimensions": dims,
        "max_bytes": bytes.iter().max(),
        "exif_or_gps_left": puts.iter().filter(|r| r["image"]["exif"] == true || r["image"]["gps"] == true).count(),
    })
}

/// The goal of issue 10: throughput ≥ 0.9 × (gateway CPU busy ÷ per-image CPU), per wall second.
///
/// `efficiency` = images completed per wall second ÷ ((gateway CPU seconds busy ÷ wall seconds) ÷
/// the stage's in-process CPU seconds per image) = images × per-image CPU ÷ gateway CPU: the
/// share of the gateway's CPU that was the image stage's own work. `core_scaling` is the same with
/// all the machine's cores in the denominator: images per wall second ÷ (cores ÷ per-image CPU).
pub fn goal(throughput: &Value, stage_cpu_ms: Option<f64>, cores: usize) -> Value {
    let tput = throughput["throughput_images_per_s"].as_f64();
    let busy = throughput["gateway_busy_cores"].as_f64();
    let per_image_s = stage_cpu_ms.map(|ms| ms / 1000.0).filter(|s| *s > 0.0);
    let bound_busy = match (busy, per_image_s) {
        (Some(b), Some(p)) => Some(b / p),
        _ => None,
    };
    let bound_cores = per_image_s.map(|p| cores as f64 / p);
    let ratio = |t: Option<f64>, b: Option<f64>| match (t, b) {
        (Some(t), Some(b)) if b > 0.0 => Some(t / b),
        _ => None,
    };
    let efficiency = ratio(tput, bound_busy);
    json!({
        "stage_cpu_ms_per_image_in_process": stage_cpu_ms,
        "throughput_images_per_s": tput,
        "gateway_busy_cores": busy,
        "images_per_s_the_busy_cpu_allows": bound_busy,
        "efficiency": efficiency,
        "goal_efficiency_at_least": 0.9,
        "met": efficiency.map(|e| e >= 0.9),
        "cores": cores,
        "images_per_s_all_cores_allow": bound_cores,
        "core_scaling": ratio(tput, bound_cores),
    })
}

/// The phase's lines of the printed table.
pub fn table(v: &Value) -> String {
    let f = |x: &Value| x.as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
    let t = &v["throughput"];
    let g = &v["goal"];
    if t.is_null() {
        return String::new();
    }
    format!(
        "\nImage stage through the gateway (normalize, 4032x3024 JPEG, C = {}, {} requests)\n  \
         throughput {} images/s; gateway CPU {} s busy ({} cores, {} ms/image); stage in process {} ms/image\n  \
         efficiency {} (goal >= 0.9: {}); core scaling {}; Graph stored {} JPEGs within 648², dims {}\n",
        t["concurrency"],
        t["requests"],
        f(&t["throughput_images_per_s"]),
        f(&t["gateway_cpu_busy_s"]),
        f(&t["gateway_busy_cores"]),
        f(&t["gateway_cpu_ms_per_image"]),
        f(&g["stage_cpu_ms_per_image_in_process"]),
        f(&g["efficiency"]),
        match g["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "missed",
            None => "-",
        },
        f(&g["core_scaling"]),
        t["graph_received"]["decoded_jpeg_within_648"],
        t["graph_received"]["dimensions"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_env_overrides_only_the_mode() {
        let env = vec![
            (
                "PHOTO_GATEWAY_IMAGE_MODE".to_string(),
                "passthrough".to_string(),
            ),
            ("PHOTO_GATEWAY_LOG_LEVEL".to_string(), "warn".to_string()),
        ];
        let e = normalize_env(&env);
        let modes: Vec<&str> = e
            .iter()
            .filter(|(k, _)| k == "PHOTO_GATEWAY_IMAGE_MODE")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(modes, ["normalize"]);
        assert!(e.contains(&("PHOTO_GATEWAY_LOG_LEVEL".to_string(), "warn".to_string())));
    }

    #[test]
    fn goal_is_images_times_stage_cpu_over_gateway_cpu() {
        // 10 images/s with 1 core busy and 80 ms per image in process: the busy CPU allows
        // 12.5 images/s, so 0.8 (10 × 0.08 s of stage work per 1 s of gateway CPU): missed.
        let t = json!({"throughput_images_per_s": 10.0, "gateway_busy_cores": 1.0});
        let g = goal(&t, Some(80.0), 2);
        assert!((g["efficiency"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(g["met"], false);
        assert!((g["core_scaling"].as_f64().unwrap() - 0.4).abs() < 1e-9);
        let g = goal(&t, Some(95.0), 2);
        assert_eq!(g["met"], true);
        // No in-process figure: no ratio, and no verdict.
        let g = goal(&t, None, 2);
        assert!(g["efficiency"].is_null() && g["met"].is_null());
    }
}
