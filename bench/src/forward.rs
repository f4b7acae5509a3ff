//! Phase 8 (issue 12): the gateway next to nginx as a plain TLS-forwarding reverse proxy, side by
//! side in one run, and the gateway's resident memory a minute after a burst of large uploads.
//!
//! nginx (Debian's `nginx-light`, installed when missing) gets a generated config on loopback:
//! as many worker processes as the gateway has workers, TLS to the Graph emulator with the
//! sandbox CA and name verification, upstream keep-alive, bodies kept in memory and buffered
//! before forwarding. Its clients send raw bodies with Graph tokens; the gateway's send caller
//! tokens, multipart by default (as callers do) and raw. The gateway runs with production
//! defaults (info JSON logs, audit lines, metrics on) and limits on, set above what the load
//! reaches; the image stage in `passthrough`.
//!
//! Every variant runs in each of `rounds` rounds, interleaved, so that a change in the machine's
//! background load lands on all of them alike; per variant the figures are summed over rounds.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::load::{self, LoadStats, Shape, run_shaped};
use crate::procs::{self, ChildGuard};

pub struct Setup<'a> {
    pub gateway_bin: &'a Path,
    /// The sandbox's `gateway_env` (listen address, log level and metrics address removed).
    pub env: &'a [(String, String)],
    pub tmp: &'a Path,
    pub client: &'a reqwest::Client,
    pub graph_url: &'a str,
    pub ca_pem: &'a [u8],
    pub caller_tokens: Arc<Vec<String>>,
    pub graph_tokens: Arc<Vec<String>>,
    /// (name, photo bytes, measured requests per variant, summed over rounds).
    pub sizes: Vec<(&'static str, usize, usize)>,
    pub concurrency: usize,
    pub workers: usize,
    pub rounds: usize,
    pub warmup: usize,
    /// The burst of the memory measurement: concurrent uploads, photo bytes, seconds waited.
    pub burst: (usize, usize, u64),
    /// `perf record` the gateway during its multipart PUT variant: DIR/perf-forward-<size>.data.
    pub perf: Option<&'a Path>,
}

/// What the gateway's environment adds for this phase, on top of the sandbox's: production
/// defaults except the limits a load generator would otherwise trip over (one bench client is
/// 200 "callers" sending hundreds of uploads a second).
pub fn gateway_overrides(workers: usize, metrics_port: u16) -> Vec<(String, String)> {
    [
        (
            "PHOTO_GATEWAY_METRICS_ADDR",
            format!("127.0.0.1:{metrics_port}"),
        ),
        ("PHOTO_GATEWAY_WORKERS", workers.to_string()),
        ("PHOTO_GATEWAY_CALLER_RATE_PER_MIN", "10000000".into()),
        ("PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S", "100000000000".into()),
        ("PHOTO_GATEWAY_MAX_INFLIGHT_BYTES", "1073741824".into()),
        ("PHOTO_GATEWAY_IMAGE_MODE", "passthrough".into()),
        (
            "PHOTO_GATEWAY_IMAGE_ALLOWED_MODES",
            "normalize,strip,passthrough".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The nginx binary, installed from Debian's `nginx-light` when there is none.
pub fn ensure_nginx() -> Result<(PathBuf, String), String> {
    let find = || {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    let bin = match find() {
        Some(b) => b,
        None => {
            crate::step("nginx not found: apt-get install -y nginx-light");
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            let mut cmd = if root {
                Command::new("apt-get")
            } else {
                let mut c = Command::new("sudo");
                c.arg("apt-get");
                c
            };
            let status = cmd
                .args(["install", "-y", "nginx-light"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .map_err(|e| format!("apt-get install nginx-light: {e}"))?;
            if !status.success() {
                return Err(format!("apt-get install -y nginx-light: {status}"));
            }
            find().ok_or("nginx-light installed but no nginx binary found")?
        }
    };
    let version = Command::new(&bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    Ok((bin, version))
}

/// The generated config: the forward-only reference, nothing more.
pub fn nginx_config(
    prefix: &Path,
    workers: usize,
    port: u16,
    upstream: &str,
    ca_file: &Path,
) -> String {
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        // Workers run as root too so they can use the temp directories made here.
        "user root;\n"
    } else {
        ""
    };
    let p = prefix.display();
    format!(
        "# Generated by photo-gateway-bench (phase 8, issue 12): a plain TLS-forwarding reverse proxy.
{user}daemon off;
master_process on;
worker_processes {workers};
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    upstream graph {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 8m;
        client_body_buffer_size 8m;
        proxy_request_buffering on;
        location / {{
            proxy_pass https://graph;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host localhost;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_session_reuse on;
        }}
    }}
}}
",
        ca = ca_file.display()
    )
}

/// nginx's master process: stopped with SIGTERM (the master then stops its workers), killed if it
/// does not stop in time.
struct Nginx {
    guard: ChildGuard,
}

impl Nginx {
    fn pids(&self) -> Vec<u32> {
        let master = self.guard.pid();
        let mut pids = vec![master];
        pids.extend(children_of(master));
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.guard.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.guard.exited().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Processes whose parent is `pid` (nginx's workers), from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|t| {
                    let rest = &t[t.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn cpu_of(pids: &[u32]) -> Option<Duration> {
    pids.iter()
        .map(|p| procs::cpu_time(&p.to_string()))
        .sum::<Option<Duration>>()
}

/// The gateway's `/metrics` text, `None` when the scrape fails.
async fn scrape(client: &reqwest::Client, metrics_port: u16) -> Option<String> {
    let r = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .ok()?;
    Some(r.text().await.unwrap_or_default())
}

/// jemalloc's figures as the gateway reports them on `/metrics` (KiB by kind), `Null` when the
/// scrape fails or the gateway predates them.
async fn allocator(client: &reqwest::Client, metrics_port: u16) -> Value {
    let Some(text) = scrape(client, metrics_port).await else {
        return Value::Null;
    };
    let mut m = serde_json::Map::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("photo_gateway_allocator_bytes{kind=\"") else {
            continue;
        };
        if let Some((kind, value)) = rest.split_once("\"} ")
            && let Ok(bytes) = value.trim().parse::<f64>()
        {
            m.insert(kind.to_string(), json!((bytes / 1024.0).round()));
        }
    }
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// What the gateway's caches held, from its `/metrics`: the RSS goal excludes them, so a run
/// records them (token-cache entries, read-cache bytes) beside the RSS it does not subtract them
/// from.
async fn caches(client: &reqwest::Client, metrics_port: u16) -> Value {
    let Some(text) = scrape(client, metrics_port).await else {
        return Value::Null;
    };
    let gauge = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .reduce(|a, b| a + b)
    };
    json!({
        "token_cache_entries": gauge("photo_gateway_token_cache_entries"),
        "read_cache_bytes": gauge("photo_gateway_read_cache_bytes"),
    })
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

async fn start_nginx(
    bin: &Path,
    s: &Setup<'_>,
    prefix: &Path,
) -> Result<(Nginx, u16, String), String> {
    for d in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(prefix.join(d)).map_err(|e| e.to_string())?;
    }
    let ca_file = prefix.join("sandbox-ca.pem");
    std::fs::write(&ca_file, s.ca_pem).map_err(|e| e.to_string())?;
    let upstream = reqwest::Url::parse(s.graph_url)
        .ok()
        .and_then(|u| Some(format!("127.0.0.1:{}", u.port_or_known_default()?)))
        .ok_or_else(|| format!("no port in the Graph URL {}", s.graph_url))?;
    let port = free_port()?;
    let conf = nginx_config(prefix, s.workers, port, &upstream, &ca_file);
    let conf_file = prefix.join("nginx.conf");
    std::fs::write(&conf_file, &conf).map_err(|e| e.to_string())?;
    let guard = ChildGuard::spawn(
        Command::new(bin)
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(&conf_file),
        &prefix.join("nginx.out"),
    )?;
    let mut nginx = Nginx { guard };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && children_of(nginx.guard.pid()).len() >= s.workers
        {
            return Ok((nginx, port, conf));
        }
        if let Some(status) = nginx.guard.exited() {
            let err = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            return Err(format!(
                "nginx exited ({status}): {}{err}",
                nginx.guard.log_tail()
            ));
        }
        if Instant::now() > deadline {
            return Err("nginx did not listen within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Direct,
    Nginx,
    Gateway,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "graph_direct",
            Target::Nginx => "nginx",
            Target::Gateway => "gateway",
        }
    }
}

struct Variant {
    target: Target,
    method: Method,
    multipart: bool,
    stats: LoadStats,
    cpu: Option<Duration>,
    emulator_cpu: Option<Duration>,
    machine: Option<Duration>,
}

impl Variant {
    fn new(target: Target, method: Method, multipart: bool) -> Variant {
        Variant {
            target,
            method,
            multipart,
            stats: LoadStats::default(),
            cpu: Some(Duration::ZERO),
            emulator_cpu: Some(Duration::ZERO),
            machine: Some(Duration::ZERO),
        }
    }

    fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.target.name(),
            self.method,
            if self.multipart { "multipart" } else { "raw" }
        )
    }

    fn absorb(
        &mut self,
        s: LoadStats,
        cpu: Option<Duration>,
        emu: Option<Duration>,
        m: Option<Duration>,
    ) {
        let add = |a: Option<Duration>, b: Option<Duration>| Some(a? + b?);
        self.cpu = add(self.cpu, cpu);
        self.emulator_cpu = add(self.emulator_cpu, emu);
        self.machine = add(self.machine, m);
        self.stats.ok += s.ok;
        self.stats.errors += s.errors;
        if self.stats.first_error.is_none() {
            self.stats.first_error = s.first_error;
        }
        self.stats.elapsed += s.elapsed;
        self.stats.latencies_us.extend(s.latencies_us);
        self.stats.latencies_us.sort_unstable();
    }

    fn cpu_us(&self) -> Option<f64> {
        let n = self.stats.ok + self.stats.errors;
        (self.target != Target::Direct && n > 0).then_some(self.cpu?.as_secs_f64() * 1e6 / n as f64)
    }

    fn to_json(&self, size: usize) -> Value {
        let n = (self.stats.ok + self.stats.errors).max(1) as f64;
        json!({
            "target": self.target.name(),
            "method": self.method.as_str(),
            "body": if self.multipart { "multipart" } else { "raw" },
            "load": self.stats.to_json(size),
            "cpu_us_per_request": self.cpu_us(),
            "cpu_of": match self.target {
                Target::Direct => "—",
                Target::Nginx => "nginx master + workers",
                Target::Gateway => "photo-gateway process",
            },
            "emulators_cpu_us_per_request": self.emulator_cpu.map(|d| d.as_secs_f64() * 1e6 / n),
            "machine_busy_cores": self.machine.map(|m| m.as_secs_f64() / self.stats.elapsed.as_secs_f64().max(1e-9)),
        })
    }
}

/// Runs the phase; requests that fail are reported in `problems`.
pub async fn run(
    s: &Setup<'_>,
    emulator_pid: u32,
    problems: &mut Vec<String>,
) -> Result<Value, String> {
    let load_before = crate::machine::loadavg();
    let (nginx_bin, nginx_version) = ensure_nginx()?;
    let prefix = s.tmp.join("nginx");
    std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
    let (nginx, nginx_port, nginx_conf) = start_nginx(&nginx_bin, s, &prefix).await?;

    let mut env: Vec<(String, String)> = s.env.to_vec();
    let metrics_port = free_port()?;
    let overrides = gateway_overrides(s.workers, metrics_port);
    env.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
    env.extend(overrides.iter().cloned());
    let (gateway, gw_port, _) =
        procs::start_gateway(s.gateway_bin, &env, &s.tmp.join("gateway-forward.log")).await?;
    let gw_pid = gateway.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = procs::memory(gw_pid);
    let idle_allocator = allocator(s.client, metrics_port).await;
    let gw_threads = crate::machine::actix_workers(gw_pid);

    let path = "/v1.0/me/photo/$value";
    let gw_url = format!("http://127.0.0.1:{gw_port}{path}");
    let nginx_url = format!("http://127.0.0.1:{nginx_port}{path}");
    let graph_url = format!("{}{path}", s.graph_url);

    // Every user's Graph token cached by the gateway first: the steady state is what is compared.
    let small = Bytes::from(load::jpeg_of_size(51_200));
    let warm = run_shaped(
        s.client,
        &gw_url,
        s.caller_tokens.clone(),
        &Shape::raw(Method::PUT, &small),
        s.caller_tokens.len(),
        s.concurrency,
    )
    .await;
    crate::check(problems, "forward phase: gateway warm-up", &warm);

    let mut sizes_json = Vec::new();
    for (name, size, requests) in &s.sizes {
        crate::step(&format!(
            "forward-only, {name}: {requests} requests per variant over {} rounds, concurrency {}",
            s.rounds, s.concurrency
        ));
        let photo = Bytes::from(load::jpeg_of_size(*size));
        let mut variants = vec![
            Variant::new(Target::Direct, Method::PUT, false),
            Variant::new(Target::Nginx, Method::PUT, false),
            Variant::new(Target::Gateway, Method::PUT, true),
            Variant::new(Target::Nginx, Method::PATCH, false),
            Variant::new(Target::Gateway, Method::PATCH, true),
            Variant::new(Target::Gateway, Method::PUT, false),
            Variant::new(Target::Gateway, Method::PATCH, false),
        ];
        let per_round = requests.div_ceil(s.rounds).max(1);
        for round in 0..s.rounds {
            for v in variants.iter_mut() {
                let shape = if v.multipart {
                    Shape::multipart(v.method.clone(), &photo)
                } else {
                    Shape::raw(v.method.clone(), &photo)
                };
                let (url, tokens) = match v.target {
                    Target::Direct => (&graph_url, &s.graph_tokens),
                    Target::Nginx => (&nginx_url, &s.graph_tokens),
                    Target::Gateway => (&gw_url, &s.caller_tokens),
                };
                if round == 0 {
                    let w = run_shaped(
                        s.client,
                        url,
                        tokens.clone(),
                        &shape,
                        s.warmup,
                        s.concurrency,
                    )
                    .await;
                    crate::check(
                        problems,
                        &format!("forward {name} {} warm-up", v.label()),
                        &w,
                    );
                }
                let pids = match v.target {
                    Target::Direct => Vec::new(),
                    Target::Nginx => nginx.pids(),
                    Target::Gateway => vec![gw_pid],
                };
                let recorder =
                    (v.target == Target::Gateway && v.multipart && v.method == Method::PUT)
                        .then_some(s.perf)
                        .flatten()
                        .and_then(|d| {
                            procs::PerfRecord::start(
                                gw_pid,
                                &d.join(format!("perf-forward-{name}-r{round}.data")),
                            )
                            .ok()
                        });
                let (c0, e0, m0) = (
                    cpu_of(&pids),
                    procs::cpu_time(&emulator_pid.to_string()),
                    procs::machine_busy(),
                );
                let st = run_shaped(
                    s.client,
                    url,
                    tokens.clone(),
                    &shape,
                    per_round,
                    s.concurrency,
                )
                .await;
                let (c1, e1, m1) = (
                    cpu_of(&pids),
                    procs::cpu_time(&emulator_pid.to_string()),
                    procs::machine_busy(),
                );
                if let Some(r) = recorder {
                    r.stop();
                }
                let d = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
                v.absorb(st, d(c0, c1), d(e0, e1), d(m0, m1));
            }
        }
        for v in &variants {
            crate::check(problems, &format!("forward {name} {}", v.label()), &v.stats);
        }
        let find = |t: Target, m: &Method, mp: bool| {
            variants
                .iter()
                .find(|v| v.target == t && v.method == *m && v.multipart == mp)
        };
        let direct_rps = find(Target::Direct, &Method::PUT, false).and_then(|v| v.stats.rps());
        let mut ratios = Vec::new();
        for (m, mp) in [
            (Method::PUT, true),
            (Method::PATCH, true),
            (Method::PUT, false),
            (Method::PATCH, false),
        ] {
            let (Some(g), Some(n)) = (
                find(Target::Gateway, &m, mp),
                find(Target::Nginx, &m, false),
            ) else {
                continue;
            };
            let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            ratios.push(json!({
                "method": m.as_str(),
                "gateway_body": if mp { "multipart" } else { "raw" },
                "nginx_body": "raw",
                "cpu_gateway_over_nginx": div(g.cpu_us(), n.cpu_us()),
                "throughput_gateway_over_nginx": div(g.stats.rps(), n.stats.rps()),
                "throughput_gateway_over_direct": div(g.stats.rps(), direct_rps),
                "throughput_nginx_over_direct": div(n.stats.rps(), direct_rps),
            }));
        }
        sizes_json.push(json!({
            "size": name,
            "photo_bytes": size,
            "requests_per_variant": per_round * s.rounds,
            "variants": variants.iter().map(|v| v.to_json(*size)).collect::<Vec<_>>(),
            "ratios": ratios,
        }));
    }

    // Memory a while after a burst of large uploads, against the same gateway's idle RSS.
    let (burst_c, burst_bytes, wait_s) = s.burst;
    crate::step(&format!(
        "forward phase: RSS {wait_s} s after a burst of {burst_c} concurrent {burst_bytes}-byte multipart uploads"
    ));
    let big = Bytes::from(load::jpeg_of_size(burst_bytes));
    let before_burst = procs::memory(gw_pid);
    let burst = run_shaped(
        s.client,
        &gw_url,
        s.caller_tokens[..burst_c.min(s.caller_tokens.len())]
            .to_vec()
            .into(),
        &Shape::multipart(Method::PUT, &big),
        burst_c,
        burst_c,
    )
    .await;
    crate::check(problems, "forward phase: burst", &burst);
    let right_after = procs::memory(gw_pid);
    let right_after_allocator = allocator(s.client, metrics_port).await;
    tokio::time::sleep(Duration::from_secs(wait_s)).await;
    let after_wait = procs::memory(gw_pid);
    let after_wait_allocator = allocator(s.client, metrics_port).await;
    let after_wait_caches = caches(s.client, metrics_port).await;
    let ratio = match (after_wait.rss_kib, idle.rss_kib) {
        (Some(a), Some(i)) if i > 0 => Some(a as f64 / i as f64),
        _ => None,
    };
    drop(gateway);
    drop(nginx);
    let load_after = crate::machine::loadavg();
    Ok(json!({
        "nginx": {
            "binary": nginx_bin.display().to_string(),
            "version": nginx_version,
            "worker_processes": s.workers,
            "config": nginx_conf,
        },
        "gateway": {
            "env_overrides": overrides.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "log_level": "info (default)",
            "log_format": "json (default)",
            // The metrics listener runs one actix worker of its own (named like the HTTP ones).
            "http_workers_seen": gw_threads.map(|n| n.saturating_sub(1)),
        },
        "concurrency": s.concurrency,
        "rounds": s.rounds,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "sizes": sizes_json,
        "rss_after_burst": {
            "idle_kib": idle.rss_kib,
            "before_burst_kib": before_burst.rss_kib,
            "burst": {"concurrency": burst_c, "photo_bytes": burst_bytes, "body": "multipart", "load": burst.to_json(burst_bytes)},
            "right_after_burst_kib": right_after.rss_kib,
            "after_wait_kib": after_wait.rss_kib,
            "wait_s": wait_s,
            "after_wait_over_idle": ratio,
            "allocator_kib": {
                "source": "the gateway's /metrics photo_gateway_allocator_bytes (jemalloc's stats), KiB",
                "idle": idle_allocator,
                "right_after_burst": right_after_allocator,
                "after_wait": after_wait_allocator,
            },
            "caches_after_wait": after_wait_caches,
            "note": "idle = 0.5 s after ready; the gateway's caches (caches_after_wait: one Graph token per user, about 2 KB each with its key, plus the validated claims and mailbox ids) are not subtracted, so the ratio is an upper bound",
        },
    }))
}

/// The phase's table and its goals.
pub fn table(v: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if v.is_null() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n8. forward-only: gateway vs nginx ({}), {} workers each, concurrency {}, {} rounds; load average before {} after {}",
        v["nginx"]["version"].as_str().unwrap_or("?"),
        v["nginx"]["worker_processes"],
        v["concurrency"],
        v["rounds"],
        v["load_average_before"]["1m"],
        v["load_average_after"]["1m"],
    );
    let _ = writeln!(
        out,
        "size   target       method body      |    n   req/s    p50 ms   p99 ms | CPU µs/req | emu µs/req | busy cores"
    );
    let f = |x: &Value, p: usize| x.as_f64().map_or("—".to_string(), |v| format!("{v:.p$}"));
    for s in v["sizes"].as_array().into_iter().flatten() {
        for r in s["variants"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "{:<6} {:<12} {:<6} {:<9} | {:>4} {:>7} {:>9} {:>8} | {:>10} | {:>10} | {:>5}",
                s["size"].as_str().unwrap_or("?"),
                r["target"].as_str().unwrap_or("?"),
                r["method"].as_str().unwrap_or("?"),
                r["body"].as_str().unwrap_or("?"),
                r["load"]["requests_ok"],
                f(&r["load"]["throughput_rps"], 1),
                f(&r["load"]["latency_ms"]["p50"], 2),
                f(&r["load"]["latency_ms"]["p99"], 2),
                f(&r["cpu_us_per_request"], 0),
                f(&r["emulators_cpu_us_per_request"], 0),
                f(&r["machine_busy_cores"], 2),
            );
        }
        for r in s["ratios"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "{:<6} gateway {} {} ÷ nginx {} raw: CPU {}  throughput {}  (gateway ÷ direct {}, nginx ÷ direct {})",
                s["size"].as_str().unwrap_or("?"),
                r["method"].as_str().unwrap_or("?"),
                r["gateway_body"].as_str().unwrap_or("?"),
                r["method"].as_str().unwrap_or("?"),
                f(&r["cpu_gateway_over_nginx"], 3),
                f(&r["throughput_gateway_over_nginx"], 3),
                f(&r["throughput_gateway_over_direct"], 3),
                f(&r["throughput_nginx_over_direct"], 3),
            );
        }
    }
    let m = &v["rss_after_burst"];
    let _ = writeln!(
        out,
        "RSS: idle {} KiB; right after {} × {} B multipart burst {} KiB; {} s later {} KiB = {} × idle (goal ≤ 2)",
        m["idle_kib"],
        m["burst"]["concurrency"],
        m["burst"]["photo_bytes"],
        m["right_after_burst_kib"],
        m["wait_s"],
        m["after_wait_kib"],
        f(&m["after_wait_over_idle"], 2),
    );
    let a = &m["allocator_kib"];
    for (when, key) in [
        ("idle", "idle"),
        ("right after the burst", "right_after_burst"),
        ("after the wait", "after_wait"),
    ] {
        let x = &a[key];
        if x.is_object() {
            let _ = writeln!(
                out,
                "  jemalloc {when}: allocated {} KiB, active {}, resident {}, retained {}",
                x["allocated"], x["active"], x["resident"], x["retained"]
            );
        }
    }
    out
}

/// The issue-12 goals on the phase's figures.
pub fn goals(v: &Value) -> Vec<Value> {
    let mut g = Vec::new();
    let ratio = |size: &str, key: &str| {
        v["sizes"].as_array()?.iter().find(|s| s["size"] == size)?["ratios"]
            .as_array()?
            .iter()
            .find(|r| r["method"] == "PUT" && r["gateway_body"] == "multipart")?[key]
            .as_f64()
    };
    for (size, limit) in [("50KB", 1.0), ("1MB", 1.15)] {
        let r = ratio(size, "cpu_gateway_over_nginx");
        g.push(json!({
            "measure": format!("gateway CPU per {size} multipart PUT ÷ nginx forward-only"),
            "goal": format!("≤ {limit}"),
            "value": r, "unit": "", "met": r.map(|x| x <= limit),
        }));
    }
    for s in v["sizes"].as_array().into_iter().flatten() {
        let size = s["size"].as_str().unwrap_or("?");
        let r = ratio(size, "throughput_gateway_over_nginx");
        g.push(json!({
            "measure": format!("gateway throughput ÷ nginx, {size} multipart PUT"),
            "goal": "≥ 1.0",
            "value": r, "unit": "", "met": r.map(|x| x >= 1.0),
        }));
    }
    let m = v["rss_after_burst"]["after_wait_over_idle"].as_f64();
    g.push(json!({
        "measure": "RSS after a burst of large uploads ÷ idle RSS",
        "goal": "≤ 2",
        "value": m, "unit": "", "met": m.map(|x| x <= 2.0),
    }));
    g
}
