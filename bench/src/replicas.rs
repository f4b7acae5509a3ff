//! Phase 6: three replicas with the Redis tier against three without it, in the same run, with
//! Graph latency. For each: a token pass (every user once through every replica: token-endpoint
//! calls U with Redis, up to 3U without), then a measured pass in steady state (tokens cached):
//! throughput, latency, and CPU per request of the three gateways and of redis-server, counted
//! apart. The gateway's limits are left at their defaults in both runs (with Redis they are
//! counted there: that is the cost being measured).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::load::{LoadStats, run_load};
use crate::procs::{self, ChildGuard};

/// What the phase needs from the run.
pub struct Setup<'a> {
    pub gateway_bin: &'a Path,
    pub tmp: &'a Path,
    pub client: &'a reqwest::Client,
    pub entra_url: &'a str,
    pub graph_url: &'a str,
    /// The sandbox's gateway environment plus log level and metrics off (limits not touched).
    pub env: Vec<(String, String)>,
    pub caller_tokens: Arc<Vec<String>>,
    pub photo: Bytes,
    pub requests: usize,
    pub concurrency: usize,
    pub latency_ms: u64,
    /// Profile replica 0 during each measured pass (`perf record`), into this directory.
    pub perf: Option<std::path::PathBuf>,
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

async fn obo_calls(client: &reqwest::Client, entra: &str) -> Option<u64> {
    let v: Value = client
        .get(format!("{entra}/_emulator/counters"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["by_grant_type"]["on_behalf_of"].as_u64().or(Some(0))
}

/// Runs `n` requests spread evenly over `urls` (one load generator per replica, concurrency
/// split), merging what they measured.
async fn spread(
    client: &reqwest::Client,
    urls: &[String],
    tokens: &Arc<Vec<String>>,
    photo: &Bytes,
    n: usize,
    concurrency: usize,
) -> LoadStats {
    let per = n.div_ceil(urls.len());
    let c = concurrency.div_ceil(urls.len()).max(1);
    let runs = urls.iter().enumerate().map(|(i, url)| {
        // Replica i starts at user i, so every replica sees every user in the token pass.
        let rotated: Vec<String> = tokens
            .iter()
            .cycle()
            .skip(i)
            .take(tokens.len())
            .cloned()
            .collect();
        let (client, url, photo) = (client.clone(), url.clone(), photo.clone());
        tokio::spawn(async move { run_load(&client, &url, rotated.into(), photo, per, c).await })
    });
    let mut all = LoadStats::default();
    for r in futures_join(runs.collect()).await {
        all.ok += r.ok;
        all.errors += r.errors;
        all.first_error = all.first_error.or(r.first_error);
        all.elapsed = all.elapsed.max(r.elapsed);
        all.latencies_us.extend(r.latencies_us);
    }
    all.latencies_us.sort_unstable();
    all
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<LoadStats>>) -> Vec<LoadStats> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap_or_default());
    }
    out
}

/// The 1-minute load average (/proc/loadavg): the machine's background load, recorded with
/// every pass since this machine is shared.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `redis-cli` against the phase's redis-server.
fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Commands the server ran (`INFO commandstats`: calls, and calls inside scripts too) as
/// {command: calls}.
fn commandstats(port: u16) -> Option<Value> {
    let text = redis_cli(port, &["INFO", "commandstats"])?;
    let mut m = serde_json::Map::new();
    for line in text.lines() {
        let Some((name, rest)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(cmd) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        let calls = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse::<u64>().ok());
        let usec = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("usec="))
            .and_then(|v| v.parse::<u64>().ok());
        m.insert(cmd.to_owned(), json!({"calls": calls, "usec": usec}));
    }
    Some(Value::Object(m))
}

/// The phase's redis-server: its process, port, and the gateway's variables that point at it.
#[derive(Clone, Copy)]
struct RedisRun<'a> {
    server: &'a ChildGuard,
    port: u16,
    vars: &'a [(String, String)],
}

/// One run of three replicas, with `redis` or without.
async fn three(s: &Setup<'_>, redis: Option<RedisRun<'_>>, label: &str) -> Result<Value, String> {
    let mut env = s.env.clone();
    if let Some(r) = redis {
        env.extend(r.vars.iter().cloned());
    }
    let mut gateways = Vec::new();
    for i in 0..3 {
        let (g, port, _) = procs::start_gateway(
            s.gateway_bin,
            &env,
            &s.tmp.join(format!("replica-{label}-{i}.log")),
        )
        .await?;
        gateways.push((g, port));
    }
    let urls: Vec<String> = gateways
        .iter()
        .map(|(_, p)| format!("http://127.0.0.1:{p}/v1.0/me/photo/$value"))
        .collect();
    let users = s.caller_tokens.len();

    // Token pass: every user through every replica once.
    let before = obo_calls(s.client, s.entra_url).await;
    let tokens_pass = spread(
        s.client,
        &urls,
        &s.caller_tokens,
        &s.photo,
        3 * users,
        s.concurrency,
    )
    .await;
    let after = obo_calls(s.client, s.entra_url).await;
    let token_calls = match (before, after) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };

    // Measured pass, tokens cached.
    let pids: Vec<String> = gateways.iter().map(|(g, _)| g.pid().to_string()).collect();
    let redis_pid = redis.map(|r| r.server.pid().to_string());
    let redis_port = redis.map(|r| r.port);
    if let Some(p) = redis_port {
        redis_cli(p, &["CONFIG", "RESETSTAT"]);
    }
    let load_before = loadavg();
    let busy0 = procs::machine_busy();
    let recorder = s.perf.as_ref().and_then(|d| {
        procs::PerfRecord::start(
            gateways[0].0.pid(),
            &d.join(format!("perf-replicas-{label}.data")),
        )
        .ok()
    });
    let cpu = |pid: &String| procs::cpu_time(pid);
    let gw0: Vec<Option<Duration>> = pids.iter().map(cpu).collect();
    let r0 = redis_pid.as_ref().and_then(cpu);
    let measured = spread(
        s.client,
        &urls,
        &s.caller_tokens,
        &s.photo,
        s.requests,
        s.concurrency,
    )
    .await;
    let gw1: Vec<Option<Duration>> = pids.iter().map(cpu).collect();
    let r1 = redis_pid.as_ref().and_then(cpu);
    let busy1 = procs::machine_busy();
    if let Some(r) = recorder {
        r.stop();
    }
    let stats = redis_port.and_then(commandstats);
    let gw_cpu: Option<Duration> = gw0
        .iter()
        .zip(&gw1)
        .map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
        .sum();
    let per_req = |d: Option<Duration>| {
        d.filter(|_| measured.ok > 0)
            .map(|d| d.as_secs_f64() * 1e6 / measured.ok as f64)
    };
    let redis_cpu = match (r0, r1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    drop(gateways);
    Ok(json!({
        "replicas": 3,
        "redis": redis.is_some(),
        "token_pass": {
            "requests": 3 * users,
            "users": users,
            "requests_ok": tokens_pass.ok,
            "requests_failed": tokens_pass.errors,
            "first_error": tokens_pass.first_error,
            "token_endpoint_on_behalf_of_calls": token_calls,
        },
        "measured": measured.to_json(s.photo.len()),
        "gateways_cpu_us_per_request": per_req(gw_cpu),
        "redis_cpu_us_per_request": per_req(redis_cpu),
        "load_average_1m_before_measured_pass": load_before,
        "machine_busy_cores_during_measured_pass": match (busy0, busy1) {
            (Some(a), Some(b)) if !measured.elapsed.is_zero() =>
                Some(b.saturating_sub(a).as_secs_f64() / measured.elapsed.as_secs_f64()),
            _ => None,
        },
        "redis_commandstats_measured_pass": stats,
    }))
}

/// The phase: redis-server on a free loopback port (no persistence), three replicas without it,
/// then three with it, the Graph emulator adding `latency_ms` to every request.
pub async fn run(s: &Setup<'_>, problems: &mut Vec<String>) -> Result<Value, String> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(
            "redis-server not found: install it with `apt-get install -y redis-server` (scripts/test.sh does)"
                .into(),
        );
    }
    let port = free_port()?;
    let keys = s.tmp.join("redis-token-keys");
    // 32 bytes of 0x01, base64: a benchmark key, never a secret.
    std::fs::write(&keys, "b1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
        .map_err(|e| e.to_string())?;
    let hmac = s.tmp.join("redis-hmac-key");
    std::fs::write(&hmac, "bench-hmac-key-bench-hmac-key-bench-hmac-key")
        .map_err(|e| e.to_string())?;
    let redis = ChildGuard::spawn(
        Command::new("redis-server").args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        &s.tmp.join("redis-server.log"),
    )?;
    // redis-server answers within milliseconds; the gateways connect lazily anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let vars = vec![
        (
            "PHOTO_GATEWAY_REDIS_URL".to_owned(),
            format!("redis://127.0.0.1:{port}"),
        ),
        (
            "PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE".to_owned(),
            keys.display().to_string(),
        ),
        (
            "PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE".to_owned(),
            hmac.display().to_string(),
        ),
        (
            "PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS".to_owned(),
            "3".to_owned(),
        ),
    ];

    let fault = s
        .client
        .post(format!("{}/_emulator/faults", s.graph_url))
        .json(&json!({"kind": "latency", "latency_ms": s.latency_ms}))
        .send()
        .await
        .map_err(|e| format!("adding the latency fault: {e}"))?;
    if !fault.status().is_success() {
        return Err(format!("adding the latency fault: {}", fault.status()));
    }
    let without = three(s, None, "without").await?;
    let with = three(
        s,
        Some(RedisRun {
            server: &redis,
            port,
            vars: &vars,
        }),
        "with",
    )
    .await?;
    let _ = s
        .client
        .delete(format!("{}/_emulator/faults", s.graph_url))
        .send()
        .await;
    for (label, v) in [("without Redis", &without), ("with Redis", &with)] {
        for pass in ["token_pass", "measured"] {
            if v[pass]["requests_failed"].as_u64().unwrap_or(1) > 0 {
                problems.push(format!(
                    "replicas {label}, {pass}: requests failed (first: {})",
                    v[pass]["first_error"]
                ));
            }
        }
    }
    let ratio = |k: &str| Some(with[k].as_f64()? / without[k].as_f64()?);
    let p50 = |v: &Value| v["measured"]["latency_ms"]["p50"].as_f64();
    Ok(json!({
        "graph_latency_ms": s.latency_ms,
        "requests": s.requests,
        "concurrency": s.concurrency,
        "photo_bytes": s.photo.len(),
        "without_redis": without,
        "with_redis": with,
        "gateway_cpu_ratio_with_over_without": ratio("gateways_cpu_us_per_request"),
        "p50_added_ms": match (p50(&with), p50(&without)) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        },
    }))
}

/// The phase's lines of the printed table.
pub fn table(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let mut out = format!(
        "\n6. three replicas with and without Redis: Graph latency {} ms, {} requests of {} bytes at concurrency {}\n",
        v["graph_latency_ms"], v["requests"], v["photo_bytes"], v["concurrency"]
    );
    out.push_str(
        "           |  req/s    p50    p99 | gateways µs/req | redis µs/req | token calls (U users through 3 replicas)\n",
    );
    for (label, k) in [("without", "without_redis"), ("with", "with_redis")] {
        let r = &v[k];
        let f = |x: &Value| x.as_f64().map_or("—".into(), |x| format!("{x:.1}"));
        out.push_str(&format!(
            "{label:>10} | {:>6} {:>6} {:>6} | {:>15} | {:>12} | {} for U = {}\n",
            f(&r["measured"]["throughput_rps"]),
            f(&r["measured"]["latency_ms"]["p50"]),
            f(&r["measured"]["latency_ms"]["p99"]),
            f(&r["gateways_cpu_us_per_request"]),
            f(&r["redis_cpu_us_per_request"]),
            r["token_pass"]["token_endpoint_on_behalf_of_calls"],
            r["token_pass"]["users"],
        ));
    }
    let w = &v["with_redis"];
    let f2 = |x: &Value| x.as_f64().map_or("—".into(), |x| format!("{x:.2}"));
    out.push_str(&format!(
        "load average (1 min) before the measured passes: without {}, with {}; machine busy cores during them: without {}, with {}\n",
        f2(&v["without_redis"]["load_average_1m_before_measured_pass"]),
        f2(&w["load_average_1m_before_measured_pass"]),
        f2(&v["without_redis"]["machine_busy_cores_during_measured_pass"]),
        f2(&w["machine_busy_cores_during_measured_pass"]),
    ));
    if let (Some(stats), Some(n)) = (
        w["redis_commandstats_measured_pass"].as_object(),
        w["measured"]["requests_ok"].as_f64().filter(|n| *n > 0.0),
    ) {
        let mut parts: Vec<String> = stats
            .iter()
            .filter_map(|(cmd, v)| Some(format!("{cmd} {:.2}", v["calls"].as_f64()? / n)))
            .collect();
        parts.sort();
        out.push_str(&format!(
            "Redis commands per upload (INFO commandstats, commands inside scripts included): {}\n",
            parts.join(", ")
        ));
    }
    let f = |x: &Value| x.as_f64().map_or("—".into(), |x| format!("{x:.3}"));
    out.push_str(&format!(
        "goals: gateway CPU per request with/without {} (goal ≤ 1.15); p50 added {} ms (goal ≤ 1); token calls with Redis {} (goal U = {})\n",
        f(&v["gateway_cpu_ratio_with_over_without"]),
        f(&v["p50_added_ms"]),
        v["with_redis"]["token_pass"]["token_endpoint_on_behalf_of_calls"],
        v["with_redis"]["token_pass"]["users"],
    ));
    out
}
