//! `photo-gateway-bench`: the benchmark of issue 6 (see BENCHMARKS.md).
//!
//! One command, from the repository root:
//!
//!     cargo run --release -p photo-gateway-bench -- --out bench/results.json
//!
//! It builds the release gateway (`cargo build --release --locked -p photo-gateway`, or takes
//! `--gateway-bin`), starts `photo-gateway sandbox --emulators-only` and `photo-gateway serve` as
//! two child processes, drives both with its own HTTP/1.1 load generator (one bearer token per
//! user), reads the gateway's CPU and memory from /proc, prints a table and writes the same
//! figures as JSON. Phase 7 (issue 10) runs a second gateway in `normalize` mode on 12 MP JPEGs
//! (`image_load`), next to the image stage in process (`image`). `--smoke` runs every phase with tiny counts, for CI: it exits non-zero when a
//! request fails or a figure is missing. The goals are reported, never enforced.

mod forward;
mod image;
mod image_load;
mod load;
mod machine;
mod procs;
mod replicas;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};

use crate::load::{LoadStats, run_load};
use crate::procs::{ChildGuard, TempDir};

/// The gateway's overload and rate-limit knobs, switched off (0) for the benchmark. Variables the
/// gateway does not know are ignored, so these are safe to set before the knobs exist.
const LIMITS_OFF: [(&str, &str); 5] = [
    ("PHOTO_GATEWAY_MAX_INFLIGHT_UPLOADS", "0"),
    ("PHOTO_GATEWAY_MAX_INFLIGHT_BYTES", "0"),
    ("PHOTO_GATEWAY_CALLER_RATE_PER_MIN", "0"),
    ("PHOTO_GATEWAY_MAILBOX_CONCURRENCY", "0"),
    ("PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S", "0"),
];

/// The phases written before the image stage (cost, overhead, memory, reference) measure the
/// gateway forwarding JPEGs as sent: they run in `passthrough`, as the gateway did then.
const IMAGE_PASSTHROUGH: [(&str, &str); 2] = [
    ("PHOTO_GATEWAY_IMAGE_MODE", "passthrough"),
    (
        "PHOTO_GATEWAY_IMAGE_ALLOWED_MODES",
        "normalize,strip,passthrough",
    ),
];

const MIB: f64 = 1_048_576.0;

#[derive(Parser, Debug)]
#[command(
    name = "photo-gateway-bench",
    about = "Benchmark photo-gateway against the sandbox emulators (issue 6); see BENCHMARKS.md"
)]
struct Args {
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// Tiny counts and 50 KB photos only: proves the benchmark works (CI). Timings are meaningless.
    #[arg(long)]
    smoke: bool,
    /// A release `photo-gateway` binary built with the `sandbox` feature; default: build it.
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Concurrent requests of the load generator (cost, overhead and token phases).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Generated users (`--users` of the sandbox); requests go round-robin over them.
    #[arg(long)]
    users: Option<usize>,
    /// Measured requests per (a)/(b) phase without latency: 50 KB, 1 MB, ~4 MB (comma-separated).
    #[arg(long, value_delimiter = ',')]
    requests: Option<Vec<usize>>,
    /// Measured requests per (a)/(b) phase with latency injected, for each size.
    #[arg(long)]
    latency_requests: Option<usize>,
    /// Measured requests per (a)/(b) phase with latency injected at concurrency 1 (no contention).
    #[arg(long)]
    latency_c1_requests: Option<usize>,
    /// Latency the Graph emulator adds to every request in the overhead phase, ms.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Token-exchange phase: N requests ...
    #[arg(long)]
    token_requests: Option<usize>,
    /// ... from U distinct users (fresh caller tokens, empty cache).
    #[arg(long)]
    token_users: Option<usize>,
    /// Memory phase: this many concurrent uploads of the largest photo ...
    #[arg(long)]
    memory_concurrency: Option<usize>,
    /// ... repeated this many times.
    #[arg(long)]
    memory_rounds: Option<usize>,
    /// Starts of `photo-gateway serve` for the start-to-ready time (the median is reported).
    #[arg(long)]
    starts: Option<usize>,
    /// Profile the gateway with `perf record -e cpu-clock -g` during each measured (b) phase
    /// without latency; writes DIR/perf-<size>.data (read with `perf report -i`).
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
    /// Run only the image stage's phase (in process, plus the Pillow reference) and write its
    /// figures to --out (use another file than the full run's results).
    #[arg(long)]
    image_only: bool,
    /// Run only the image stage's throughput phase (the gateway in `normalize` receiving the
    /// 4032 × 3024 JPEG at C = cores) and the in-process phase it is compared with; writes their
    /// figures to --out (use another file than the full run's results).
    #[arg(long)]
    image_throughput_only: bool,
    /// Requests of the image throughput phase (default 48; 2 × cores with --smoke).
    #[arg(long)]
    image_requests: Option<usize>,
    /// Python with Pillow for the image phase's reference (`bench/pillow_reference.py`).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Print the table of an earlier results file and exit (nothing is run).
    #[arg(long, value_name = "RESULTS_JSON")]
    print: Option<PathBuf>,
    /// Do not run the criterion JWT benchmark (`cargo bench -p photo-gateway-bench --bench jwt`).
    #[arg(long)]
    skip_criterion: bool,
    /// Do not run phase 6 (three replicas with Redis against three without; needs redis-server).
    #[arg(long)]
    skip_replicas: bool,
    /// Run only phase 6 (three replicas with Redis against three without) and write its figures
    /// to --out (use another file than the full run's results); with --perf, replica 0 of each
    /// measured pass is profiled (DIR/perf-replicas-<with|without>.data).
    #[arg(long)]
    replicas_only: bool,
    /// Run only phase 8 (gateway vs nginx forward-only, and RSS after a burst) and write its
    /// figures to --out (use another file than the full run's results).
    #[arg(long)]
    forward_only: bool,
    /// Do not run phase 8 (gateway vs nginx forward-only).
    #[arg(long)]
    skip_forward: bool,
    /// Phase 8: measured requests per variant for 50 KB, 1 MB, ~4 MB (comma-separated), summed
    /// over the rounds.
    #[arg(long, value_delimiter = ',')]
    forward_requests: Option<Vec<usize>>,
    /// Phase 8: rounds over which the variants are interleaved (default 2; 1 with --smoke).
    #[arg(long)]
    forward_rounds: Option<usize>,
    /// Phase 8: seconds to wait after the burst before reading the gateway's RSS (default 60; 1
    /// with --smoke).
    #[arg(long)]
    burst_wait_secs: Option<u64>,
    /// Phase 8: the gateway's HTTP workers and nginx's worker processes (the same number for
    /// both; default: the cores).
    #[arg(long)]
    forward_workers: Option<usize>,
    /// The Graph emulator offers HTTP/2 (`sandbox --graph-http2`), as Graph does: the gateway then
    /// speaks HTTP/2 to it, as in production (the default is HTTP/1.1, as the tests run).
    #[arg(long)]
    graph_http2: bool,
}

/// Everything the run uses, resolved from the arguments (written to the JSON).
#[derive(Debug, Clone)]
struct Params {
    smoke: bool,
    concurrency: usize,
    users: usize,
    sizes: Vec<(&'static str, usize)>,
    requests: Vec<usize>,
    latency_requests: usize,
    latency_c1_requests: usize,
    latency_ms: u64,
    token_requests: usize,
    token_users: usize,
    memory_concurrency: usize,
    memory_rounds: usize,
    memory_size: usize,
    starts: usize,
    criterion: bool,
    replicas: bool,
    image_requests: usize,
    image_concurrency: usize,
    forward: bool,
    forward_requests: Vec<usize>,
    forward_rounds: usize,
    forward_workers: usize,
    burst_wait_secs: u64,
    graph_http2: bool,
}

const SIZE_50K: usize = 50 * 1024;
const SIZE_1M: usize = 1024 * 1024;
/// Just under the 4 MiB limit (4,194,304 bytes, exclusive): 4 MiB minus 1 KiB.
const SIZE_4M: usize = 4 * 1024 * 1024 - 1024;

impl Params {
    fn from_args(a: &Args) -> Result<Params, String> {
        let smoke = a.smoke;
        let sizes: Vec<(&'static str, usize)> = if smoke {
            vec![("50KB", SIZE_50K)]
        } else {
            vec![("50KB", SIZE_50K), ("1MB", SIZE_1M), ("4MB", SIZE_4M)]
        };
        let requests = match &a.requests {
            Some(r) if r.len() == sizes.len() => r.clone(),
            Some(r) => {
                return Err(format!(
                    "--requests needs {} comma-separated counts (one per size), got {}",
                    sizes.len(),
                    r.len()
                ));
            }
            None if smoke => vec![8],
            None => vec![4000, 800, 240],
        };
        let n_sizes = sizes.len();
        let p = Params {
            smoke,
            concurrency: a.concurrency.unwrap_or(if smoke { 4 } else { 16 }),
            users: a.users.unwrap_or(if smoke { 8 } else { 200 }),
            sizes,
            requests,
            latency_requests: a.latency_requests.unwrap_or(if smoke { 8 } else { 480 }),
            latency_c1_requests: a.latency_c1_requests.unwrap_or(if smoke { 2 } else { 40 }),
            latency_ms: a.latency_ms,
            token_requests: a.token_requests.unwrap_or(if smoke { 16 } else { 2000 }),
            token_users: a.token_users.unwrap_or(if smoke { 4 } else { 100 }),
            memory_concurrency: a.memory_concurrency.unwrap_or(if smoke { 8 } else { 64 }),
            memory_rounds: a.memory_rounds.unwrap_or(if smoke { 1 } else { 3 }),
            memory_size: if smoke { SIZE_50K } else { SIZE_4M },
            starts: a.starts.unwrap_or(if smoke { 1 } else { 7 }),
            criterion: !smoke && !a.skip_criterion,
            replicas: !a.skip_replicas && !a.image_throughput_only,
            image_requests: a
                .image_requests
                .unwrap_or(if smoke { 2 * cores() } else { 48 }),
            image_concurrency: cores(),
            forward: !a.skip_forward,
            forward_requests: match &a.forward_requests {
                Some(r) if r.len() == n_sizes => r.clone(),
                Some(r) => {
                    return Err(format!(
                        "--forward-requests needs {} comma-separated counts (one per size), got {}",
                        n_sizes,
                        r.len()
                    ));
                }
                None if smoke => vec![8],
                None => vec![2000, 400, 120],
            },
            forward_rounds: a.forward_rounds.unwrap_or(if smoke { 1 } else { 2 }).max(1),
            forward_workers: a.forward_workers.unwrap_or_else(cores).max(1),
            burst_wait_secs: a.burst_wait_secs.unwrap_or(if smoke { 1 } else { 60 }),
            graph_http2: a.graph_http2,
        };
        if p.concurrency == 0 || p.starts == 0 || p.memory_concurrency == 0 {
            return Err(
                "--concurrency, --starts and --memory-concurrency must be at least 1".into(),
            );
        }
        if p.image_requests == 0 {
            return Err("--image-requests must be at least 1".into());
        }
        if p.token_users == 0 || p.token_users > p.users {
            return Err("--token-users must be between 1 and --users".into());
        }
        if p.memory_concurrency > p.users {
            return Err(
                "--memory-concurrency must not exceed --users (one user per upload)".into(),
            );
        }
        Ok(p)
    }

    fn to_json(&self) -> Value {
        json!({
            "smoke": self.smoke,
            "concurrency": self.concurrency,
            "users": self.users,
            "sizes_bytes": self.sizes.iter().map(|(n, s)| json!({"name": n, "bytes": s})).collect::<Vec<_>>(),
            "requests_per_phase_no_latency": self.requests,
            "requests_per_phase_with_latency": self.latency_requests,
            "requests_per_phase_with_latency_concurrency_1": self.latency_c1_requests,
            "graph_latency_ms": self.latency_ms,
            "token_phase": {"requests": self.token_requests, "users": self.token_users, "concurrency": self.concurrency, "photo_bytes": SIZE_50K},
            "memory_phase": {"concurrency": self.memory_concurrency, "rounds": self.memory_rounds, "photo_bytes": self.memory_size, "rss_sample_interval_ms": 10},
            "starts": self.starts,
            "image_throughput_phase": {"requests": self.image_requests, "concurrency": self.image_concurrency, "photo": "samples::phone_jpeg(4032, 3024, 6)", "image_mode": "normalize"},
            "warmup_requests_per_phase": self.warmup(),
            "forward_phase": {"requests_per_variant": self.forward_requests, "rounds": self.forward_rounds, "workers": self.forward_workers, "burst": {"concurrency": self.memory_concurrency, "photo_bytes": self.memory_size, "wait_s": self.burst_wait_secs}},
            "http": "HTTP/1.1 keep-alive, one connection per concurrent request, one bearer token per user, round-robin over users",
            "graph_emulator_protocols": if self.graph_http2 { "h2, http/1.1 (ALPN; the gateway speaks HTTP/2 to it, nginx HTTP/1.1)" } else { "http/1.1" },
            "gateway_env_overrides": {
                "PHOTO_GATEWAY_LOG_LEVEL": "warn",
                "PHOTO_GATEWAY_METRICS_ADDR": "off",
                "limits_off": LIMITS_OFF.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            },
        })
    }

    fn warmup(&self) -> usize {
        if self.smoke { 2 } else { 2 * self.concurrency }
    }
}

/// The machine's cores (C of the image throughput phase).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The in-process image phase (CPU per image, and the Pillow reference), off the async workers.
async fn image_in_process(smoke: bool, python: &str) -> Result<(Value, Vec<String>), String> {
    let iterations = if smoke { 2 } else { 20 };
    let python = python.to_owned();
    tokio::task::spawn_blocking(move || image::phase(iterations, &python, !smoke))
        .await
        .map_err(|e| format!("image phase: {e}"))
}

/// The ready file of `photo-gateway sandbox --emulators-only`.
struct Sandbox {
    graph_url: String,
    entra_url: String,
    ca_pem: Vec<u8>,
    gateway_env: Vec<(String, String)>,
    users: Vec<String>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.print {
        return match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(r) => {
                println!(
                    "{}{}{}{}",
                    report::conditions(&r),
                    report::table(&r) + &forward::table(&r["forward"]),
                    if r["image_stage"].is_null() {
                        String::new()
                    } else {
                        image::table(&r["image_stage"])
                    },
                    image_load::table(&r["image_throughput"])
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("photo-gateway-bench: {}: {e}", path.display());
                ExitCode::from(2)
            }
        };
    }
    if args.image_only {
        let iterations = if args.smoke { 2 } else { 20 };
        let python = args.python.clone();
        let smoke = args.smoke;
        let Ok((v, problems)) =
            tokio::task::spawn_blocking(move || image::phase(iterations, &python, !smoke)).await
        else {
            eprintln!("photo-gateway-bench: the image phase panicked");
            return ExitCode::FAILURE;
        };
        println!("{}", image::table(&v));
        let text = serde_json::to_string_pretty(&json!({"image_stage": v})).unwrap_or_default();
        if let Err(e) = std::fs::write(&args.out, text + "\n") {
            eprintln!("photo-gateway-bench: {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
        for p in &problems {
            eprintln!("  - {p}");
        }
        return if problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let params = match Params::from_args(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("photo-gateway-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::select! {
        r = run(&args, &params) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    // Children were killed when their guards dropped, at the end of `run` or on interruption.
    match result {
        Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
        Ok(problems) => {
            eprintln!("\nphoto-gateway-bench: FAILED:");
            for p in problems {
                eprintln!("  - {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("photo-gateway-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn step(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Runs every phase; returns the list of problems (failed requests, missing figures).
async fn run(args: &Args, p: &Params) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let mut problems: Vec<String> = Vec::new();
    let load_before = machine::loadavg();
    let mut machine = machine::describe();
    // Background load: the benchmark shares the machine with whatever else runs on it.
    let busy0 = procs::machine_busy();
    std::thread::sleep(Duration::from_secs(1));
    let background = match (busy0, procs::machine_busy()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    machine["background_busy_cores_before_run"] = json!(background);
    if let Some(b) = background.filter(|b| *b > 0.2) {
        step(&format!(
            "WARNING: the machine was already {b:.2} cores busy before the benchmark started: \
             latency and throughput figures will be pessimistic (compare `machine_busy_cores` \
             with the processes' own CPU in the results)"
        ));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or("no workspace root")?;
    if let Some(d) = &args.perf {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let gateway_bin = match &args.gateway_bin {
        Some(b) => b.clone(),
        None => procs::build_gateway(&workspace)?,
    };
    let gateway_version = procs::output_of(&gateway_bin, &["--version"]).unwrap_or_default();
    step(&format!(
        "gateway binary: {} ({gateway_version})",
        gateway_bin.display()
    ));

    let tmp = TempDir::new()?;
    let state_dir = tmp.path().join("state");
    let ready_file = tmp.path().join("ready.json");
    let sandbox_users = p.users;
    step(&format!(
        "starting: {} sandbox --emulators-only --state-dir {} --ready-file {} --users {sandbox_users}",
        gateway_bin.display(),
        state_dir.display(),
        ready_file.display()
    ));
    let mut sandbox_child = ChildGuard::spawn(
        std::process::Command::new(&gateway_bin)
            .arg("sandbox")
            .arg("--emulators-only")
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--ready-file")
            .arg(&ready_file)
            .arg("--users")
            .arg(sandbox_users.to_string())
            .args(p.graph_http2.then_some("--graph-http2")),
        &tmp.path().join("sandbox.log"),
    )?;
    let ready = procs::wait_for_file(&ready_file, &mut sandbox_child, Duration::from_secs(120))?;
    let sandbox = parse_ready(&ready, p.users)?;
    let emulator_pid = sandbox_child.pid();

    let client = load::client(&sandbox.ca_pem, p.memory_concurrency.max(p.concurrency))?;

    // Tokens: one caller token and one Graph token per generated user, from the control API.
    step(&format!(
        "minting caller and Graph tokens for {} users",
        sandbox.users.len()
    ));
    let mut caller_tokens = Vec::with_capacity(sandbox.users.len());
    let mut graph_tokens = Vec::with_capacity(sandbox.users.len());
    for upn in &sandbox.users {
        caller_tokens.push(
            mint(
                &client,
                &format!("{}/_emulator/tokens", sandbox.entra_url),
                json!({"user": upn, "ttl_secs": 7200}),
            )
            .await?,
        );
        graph_tokens.push(
            mint(
                &client,
                &format!("{}/_emulator/graph-tokens", sandbox.entra_url),
                json!({"user": upn, "scopes": ["User.ReadWrite"]}),
            )
            .await?,
        );
    }
    let caller_tokens = Arc::new(caller_tokens);
    let graph_tokens = Arc::new(graph_tokens);

    let mut env = sandbox.gateway_env.clone();
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "PHOTO_GATEWAY_LISTEN_ADDR" | "PHOTO_GATEWAY_METRICS_ADDR" | "PHOTO_GATEWAY_LOG_LEVEL"
        )
    });
    // Phase 8 runs the gateway with production defaults: the sandbox's wiring, nothing else.
    let prod_env = env.clone();
    env.push(("PHOTO_GATEWAY_METRICS_ADDR".into(), "off".into()));
    env.push(("PHOTO_GATEWAY_LOG_LEVEL".into(), "warn".into()));
    for (k, v) in LIMITS_OFF.into_iter().chain(IMAGE_PASSTHROUGH) {
        env.push((k.into(), v.into()));
    }
    step(&format!(
        "gateway environment: the sandbox's gateway_env + PHOTO_GATEWAY_LISTEN_ADDR=127.0.0.1:<free> PHOTO_GATEWAY_METRICS_ADDR=off PHOTO_GATEWAY_LOG_LEVEL=warn; limits off: {}; image stage: {}",
        LIMITS_OFF
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        IMAGE_PASSTHROUGH
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));

    if args.replicas_only {
        return replicas_only(
            args,
            p,
            &gateway_bin,
            &tmp,
            &client,
            &sandbox,
            &env,
            &caller_tokens,
            &small_photo(),
            started,
        )
        .await;
    }

    if args.forward_only {
        let v = forward_phase(
            p,
            &gateway_bin,
            &tmp,
            &client,
            &sandbox,
            &prod_env,
            (&caller_tokens, &graph_tokens),
            emulator_pid,
            args.perf.as_deref(),
            &mut problems,
        )
        .await;
        let mut results = json!({
            "benchmark": "photo-gateway issue 12, phase 8 only",
            "machine": machine,
            "conditions": conditions(&gateway_bin, &gateway_version, &load_before, p),
            "gateway": {"binary": gateway_bin.display().to_string(), "binary_sha256": procs::binary_sha256(&gateway_bin), "version": gateway_version, "git": procs::git_describe(&workspace)},
            "parameters": p.to_json(),
            "duration_s": started.elapsed().as_secs_f64(),
            "forward": v,
            "problems": problems,
        });
        results["conditions"]["load_average_after"] = machine::loadavg();
        results["goals"] = json!(forward::goals(&results["forward"]));
        println!(
            "{}",
            report::conditions(&results)
                + &forward::table(&results["forward"])
                + &report::goal_lines(&results["goals"])
        );
        std::fs::write(
            &args.out,
            serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
        )
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
        step(&format!("results written to {}", args.out.display()));
        return Ok(problems);
    }

    if args.image_throughput_only {
        return image_throughput_only(
            args,
            p,
            &gateway_bin,
            &tmp,
            &client,
            &sandbox,
            &env,
            &caller_tokens,
            started,
        )
        .await;
    }

    // 5b. Start to ready.
    step(&format!(
        "start-to-ready: {} starts of `photo-gateway serve`",
        p.starts
    ));
    let mut start_ms = Vec::new();
    for i in 0..p.starts {
        let (guard, _port, elapsed) = procs::start_gateway(
            &gateway_bin,
            &env,
            &tmp.path().join(format!("gateway-start-{i}.log")),
        )
        .await?;
        start_ms.push(elapsed.as_secs_f64() * 1000.0);
        drop(guard);
    }
    let start_median = load::median(&start_ms);

    // The measured gateway.
    let (gateway, port, _) =
        procs::start_gateway(&gateway_bin, &env, &tmp.path().join("gateway.log")).await?;
    let gw_pid = gateway.pid();
    let gw_url = format!("http://127.0.0.1:{port}/v1.0/me/photo/$value");
    let graph_url = format!("{}/v1.0/me/photo/$value", sandbox.graph_url);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = procs::memory(gw_pid);
    step(&format!(
        "gateway pid {gw_pid} on port {port}; idle memory {idle:?}"
    ));

    let photos: Vec<Bytes> = p
        .sizes
        .iter()
        .map(|(_, s)| Bytes::from(load::jpeg_of_size(*s)))
        .collect();
    let small = Bytes::from(load::jpeg_of_size(SIZE_50K));

    // 3. Token exchanges: N requests from U users whose tokens the gateway has never seen.
    step(&format!(
        "token exchanges: {} requests from {} users at concurrency {}",
        p.token_requests, p.token_users, p.concurrency
    ));
    let before = entra_counters(&client, &sandbox.entra_url).await;
    let tok = run_load(
        &client,
        &gw_url,
        caller_tokens[..p.token_users].to_vec().into(),
        small.clone(),
        p.token_requests,
        p.concurrency,
    )
    .await;
    let after = entra_counters(&client, &sandbox.entra_url).await;
    check(&mut problems, "token phase", &tok);
    let token_calls = match (&before, &after) {
        (Some(b), Some(a)) => Some(a.0 - b.0),
        _ => None,
    };
    let obo_calls = match (&before, &after) {
        (Some(b), Some(a)) => Some(a.1 - b.1),
        _ => None,
    };
    if token_calls.is_none() {
        problems.push("could not read the Entra emulator's counters".into());
    }

    // Warm-up: one request per user through the gateway (fills the token cache for every user).
    step("warm-up: one request per user through the gateway");
    let warm = run_load(
        &client,
        &gw_url,
        caller_tokens.clone(),
        small.clone(),
        caller_tokens.len(),
        p.concurrency,
    )
    .await;
    check(&mut problems, "warm-up", &warm);

    // 1. Cost: no added latency.
    let mut cost = Vec::new();
    for (i, (name, size)) in p.sizes.iter().enumerate() {
        step(&format!(
            "cost, {name}: {} requests each, (a) Graph direct then (b) through the gateway, concurrency {}",
            p.requests[i], p.concurrency
        ));
        let perf_out = args
            .perf
            .as_ref()
            .map(|d| d.join(format!("perf-{name}.data")));
        let pair = measure_pair(
            &client,
            p,
            &graph_url,
            &gw_url,
            &graph_tokens,
            &caller_tokens,
            &photos[i],
            p.requests[i],
            gw_pid,
            emulator_pid,
            perf_out.as_deref(),
            p.concurrency,
        )
        .await;
        check(&mut problems, &format!("cost {name} (a)"), &pair.a);
        check(&mut problems, &format!("cost {name} (b)"), &pair.b);
        cost.push((*name, *size, pair));
    }

    // 2. Overhead: the Graph emulator adds latency to every request.
    step(&format!(
        "overhead: Graph emulator latency {} ms",
        p.latency_ms
    ));
    let fault = client
        .post(format!("{}/_emulator/faults", sandbox.graph_url))
        .json(&json!({"kind": "latency", "latency_ms": p.latency_ms}))
        .send()
        .await
        .map_err(|e| format!("adding the latency fault: {e}"))?;
    if !fault.status().is_success() {
        return Err(format!("adding the latency fault: {}", fault.status()));
    }
    let mut overhead = Vec::new();
    let mut overhead_c1 = Vec::new();
    for (i, (name, size)) in p.sizes.iter().enumerate() {
        step(&format!(
            "overhead, {name}: {} requests each",
            p.latency_requests
        ));
        let pair = measure_pair(
            &client,
            p,
            &graph_url,
            &gw_url,
            &graph_tokens,
            &caller_tokens,
            &photos[i],
            p.latency_requests,
            gw_pid,
            emulator_pid,
            None,
            p.concurrency,
        )
        .await;
        check(&mut problems, &format!("overhead {name} (a)"), &pair.a);
        check(&mut problems, &format!("overhead {name} (b)"), &pair.b);
        overhead.push((*name, *size, pair));
        // The same without contention: one request at a time, so the added latency is the
        // gateway's own path, not CPU queueing on a small machine.
        step(&format!(
            "overhead, {name}, concurrency 1: {} requests each",
            p.latency_c1_requests
        ));
        let pair = measure_pair(
            &client,
            p,
            &graph_url,
            &gw_url,
            &graph_tokens,
            &caller_tokens,
            &photos[i],
            p.latency_c1_requests,
            gw_pid,
            emulator_pid,
            None,
            1,
        )
        .await;
        check(&mut problems, &format!("overhead c1 {name} (a)"), &pair.a);
        check(&mut problems, &format!("overhead c1 {name} (b)"), &pair.b);
        overhead_c1.push((*name, *size, pair));
    }
    let cleared = client
        .delete(format!("{}/_emulator/faults", sandbox.graph_url))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    if !cleared {
        problems.push("could not clear the latency fault".into());
    }

    // 4. Memory: concurrent uploads of the largest photo; VmHWM reset first, VmRSS sampled every 10 ms.
    step(&format!(
        "memory: {} rounds of {} concurrent {}-byte uploads",
        p.memory_rounds, p.memory_concurrency, p.memory_size
    ));
    let idle_after_load = procs::memory(gw_pid);
    let hwm_reset = procs::reset_hwm(gw_pid);
    let sampler = procs::RssSampler::start(gw_pid, Duration::from_millis(10));
    let mem_photo = Bytes::from(load::jpeg_of_size(p.memory_size));
    let mem = run_load(
        &client,
        &gw_url,
        caller_tokens[..p.memory_concurrency].to_vec().into(),
        mem_photo,
        p.memory_concurrency * p.memory_rounds,
        p.memory_concurrency,
    )
    .await;
    let samples = sampler.stop();
    let mem_peak = procs::memory(gw_pid);
    check(&mut problems, "memory phase", &mem);
    drop(gateway);

    // 8. Gateway vs nginx forward-only (issue 12), and RSS a while after a burst.
    let forward_json = if p.forward {
        forward_phase(
            p,
            &gateway_bin,
            &tmp,
            &client,
            &sandbox,
            &prod_env,
            (&caller_tokens, &graph_tokens),
            emulator_pid,
            args.perf.as_deref(),
            &mut problems,
        )
        .await
    } else {
        Value::Null
    };

    // 7. The image stage through the gateway (issue 10): normalize mode, 12 MP JPEGs, C = cores.
    step(&format!(
        "image throughput: {} PUTs of the 4032x3024 JPEG at concurrency {}, PHOTO_GATEWAY_IMAGE_MODE=normalize",
        p.image_requests, p.image_concurrency
    ));
    let image_tput = image_load::phase(
        &image_load::Setup {
            gateway_bin: &gateway_bin,
            env: &env,
            log: &tmp.path().join("gateway-image.log"),
            client: &client,
            graph_url: &sandbox.graph_url,
            caller_tokens: &caller_tokens,
            requests: p.image_requests,
            concurrency: p.image_concurrency,
        },
        &mut problems,
    )
    .await;

    // 6. Three replicas with Redis against three without, with Graph latency.
    let replicas_json = if p.replicas {
        step(&format!(
            "replicas: 3 without Redis, then 3 with it; Graph latency {} ms, {} users, {} requests",
            p.latency_ms,
            caller_tokens.len(),
            p.latency_requests
        ));
        let setup = replicas::Setup {
            gateway_bin: &gateway_bin,
            tmp: tmp.path(),
            client: &client,
            entra_url: &sandbox.entra_url,
            graph_url: &sandbox.graph_url,
            env: env
                .iter()
                .filter(|(k, _)| !LIMITS_OFF.iter().any(|(off, _)| off == k))
                .cloned()
                .collect(),
            caller_tokens: caller_tokens.clone(),
            photo: small.clone(),
            requests: p.latency_requests,
            concurrency: p.concurrency,
            latency_ms: p.latency_ms,
            perf: args.perf.clone(),
        };
        match replicas::run(&setup, &mut problems).await {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("replicas phase: {e}"));
                Value::Null
            }
        }
    } else {
        Value::Null
    };

    // 5a. Criterion JWT benchmark.
    let criterion = if p.criterion {
        step("criterion: cargo bench -p photo-gateway-bench --bench jwt");
        match procs::run_criterion(&workspace) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(format!("criterion JWT benchmark: {e}"));
                None
            }
        }
    } else {
        None
    };
    drop(sandbox_child);

    // Figures.
    let mut missing: Vec<String> = Vec::new();
    let clk = procs::clock_ticks();
    if clk.is_none() {
        missing.push("CLK_TCK".into());
    }
    let cost_json: Vec<Value> = cost
        .iter()
        .map(|(n, s, pair)| pair.to_json(n, *s, "cost"))
        .collect();
    let overhead_json: Vec<Value> = overhead
        .iter()
        .map(|(n, s, pair)| pair.to_json(n, *s, "overhead"))
        .collect();
    let overhead_c1_json: Vec<Value> = overhead_c1
        .iter()
        .map(|(n, s, pair)| pair.to_json(n, *s, "overhead_concurrency_1"))
        .collect();
    for v in cost_json.iter().chain(overhead_json.iter()) {
        for k in [
            "ratio_b_over_a",
            "gateway_cpu_us_per_request",
            "gateway_cpu_ms_per_mib",
        ] {
            if v[k].is_null() {
                missing.push(format!("{} {}: {k}", v["phase"], v["size"]));
            }
        }
    }
    let marginal_ms_per_mib = marginal_cpu(&cost);
    let hit_ratio = token_calls.map(|c| 1.0 - c as f64 / p.token_requests as f64);
    let inflight_bytes = (p.memory_concurrency * p.memory_size) as f64;
    let rss_budget_mib = (1.25 * inflight_bytes) / MIB + 40.0;
    let peak_rss_kib = match (mem_peak.hwm_kib, samples.max_rss_kib) {
        (Some(h), Some(s)) => Some(h.max(s)),
        (h, s) => h.or(s),
    };
    if idle.rss_kib.is_none() || peak_rss_kib.is_none() {
        missing.push("gateway memory (/proc/<pid>/status)".into());
    }
    if start_median.is_none() {
        missing.push("start-to-ready".into());
    }
    if p.criterion && criterion.is_none() {
        missing.push("criterion JWT estimates".into());
    }
    for m in &missing {
        problems.push(format!("missing figure: {m}"));
    }

    step("image stage phase (in process, and the Pillow reference)");
    let (image_json, image_problems) = image_in_process(args.smoke, &args.python).await?;
    problems.extend(image_problems);
    let image_throughput = json!({
        "throughput": image_tput,
        "goal": image_load::goal(&image_tput, image_json["jpeg_12mp_to_648"]["stage_cpu_ms_median"].as_f64(), p.image_concurrency),
    });

    let mut results = json!({
        "benchmark": "photo-gateway issue 6",
        "generated_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "duration_s": started.elapsed().as_secs_f64(),
        "machine": machine,
        "conditions": conditions(&gateway_bin, &gateway_version, &load_before, p),
        "gateway": {
            "binary": gateway_bin.display().to_string(),
            "binary_sha256": procs::binary_sha256(&gateway_bin),
            "version": gateway_version,
            "git": procs::git_describe(&workspace),
        },
        "parameters": p.to_json(),
        "forward": forward_json,
        "cost": cost_json,
        "overhead": overhead_json,
        "overhead_concurrency_1": overhead_c1_json,
        "cpu_marginal_ms_per_mib": marginal_ms_per_mib,
        "token_exchanges": {
            "requests": p.token_requests,
            "users": p.token_users,
            "concurrency": p.concurrency,
            "token_endpoint_calls": token_calls,
            "obo_calls": obo_calls,
            "cache_hit_ratio": hit_ratio,
            "requests_failed": tok.errors,
            "load": tok.to_json(SIZE_50K),
        },
        "memory": {
            "idle_after_start": idle.to_json(),
            "idle_after_load": idle_after_load.to_json(),
            "vmhwm_reset_before_phase": hwm_reset,
            "during_concurrent_uploads": {
                "concurrency": p.memory_concurrency,
                "rounds": p.memory_rounds,
                "photo_bytes": p.memory_size,
                "inflight_photo_bytes": inflight_bytes,
                "vmhwm_kib": mem_peak.hwm_kib,
                "max_sampled_vmrss_kib": samples.max_rss_kib,
                "samples": samples.count,
                "peak_rss_kib": peak_rss_kib,
                "budget_mib": rss_budget_mib,
                "load": mem.to_json(p.memory_size),
            },
        },
        "start_to_ready_ms": {"median": start_median, "all": start_ms},
        "jwt_validation_criterion": criterion,
        "image_stage": image_json,
        "image_throughput": image_throughput,
        "replicas": replicas_json,
        "problems": problems,
    });

    results["conditions"]["load_average_after"] = machine::loadavg();
    results["goals"] = report::goals(&results);
    let forward_goals = forward::goals(&results["forward"]);
    if let Some(g) = results["goals"].as_array_mut() {
        g.extend(forward_goals);
    }
    let text = report::conditions(&results)
        + &report::table(&results)
        + &forward::table(&results["forward"])
        + &image::table(&results["image_stage"])
        + &image_load::table(&results["image_throughput"])
        + &replicas::table(&results["replicas"]);
    println!("{text}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    )
    .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    step(&format!(
        "results written to {} ({:.0} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(problems)
}

/// What a re-run must match to be comparable: the gateway's build, its logging, limits and
/// workers, and how busy the machine was.
fn conditions(bin: &Path, version: &str, load_before: &Value, p: &Params) -> Value {
    json!({
        "load_average_before": load_before,
        "gateway_build": machine::build_profile(version, bin),
        // Phases 1-6 run the gateway's default (one worker per core); phase 8 records its own.
        "gateway_workers": cores(),
        "phases_1_to_5": {
            "log_level": "warn",
            "log_format": "json",
            "metrics": "off",
            "limits": "off (LIMITS_OFF)",
            "image_mode": "passthrough",
            "bodies": "raw image/jpeg, PUT",
        },
        "phase_8_forward": {
            "log_level": "info (default)",
            "log_format": "json (default)",
            "metrics": "on (127.0.0.1:0)",
            "limits": "on; caller rate, mailbox bytes and in-flight bytes raised above the load",
            "image_mode": "passthrough",
            "bodies": "multipart (default) and raw, PUT and PATCH",
            "workers": p.forward_workers,
            "run": p.forward,
        },
    })
}

/// Phase 8 with the run's sandbox and tokens.
#[allow(clippy::too_many_arguments)]
async fn forward_phase(
    p: &Params,
    gateway_bin: &Path,
    tmp: &TempDir,
    client: &reqwest::Client,
    sandbox: &Sandbox,
    prod_env: &[(String, String)],
    (caller_tokens, graph_tokens): (&Arc<Vec<String>>, &Arc<Vec<String>>),
    emulator_pid: u32,
    perf: Option<&Path>,
    problems: &mut Vec<String>,
) -> Value {
    step(
        "forward-only: gateway (production defaults, multipart and raw, PUT and PATCH) vs nginx, side by side",
    );
    let setup = forward::Setup {
        gateway_bin,
        env: prod_env,
        tmp: tmp.path(),
        client,
        graph_url: &sandbox.graph_url,
        ca_pem: &sandbox.ca_pem,
        caller_tokens: caller_tokens.clone(),
        graph_tokens: graph_tokens.clone(),
        sizes: p
            .sizes
            .iter()
            .zip(&p.forward_requests)
            .map(|((n, s), r)| (*n, *s, *r))
            .collect(),
        concurrency: p.concurrency,
        workers: p.forward_workers,
        rounds: p.forward_rounds,
        warmup: p.warmup(),
        burst: (p.memory_concurrency, p.memory_size, p.burst_wait_secs),
        perf,
    };
    match forward::run(&setup, emulator_pid, problems).await {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("forward phase: {e}"));
            Value::Null
        }
    }
}

fn check(problems: &mut Vec<String>, what: &str, s: &LoadStats) {
    if s.errors > 0 || s.ok == 0 {
        problems.push(format!(
            "{what}: {} of {} requests failed (first: {})",
            s.errors,
            s.ok + s.errors,
            s.first_error.as_deref().unwrap_or("none succeeded")
        ));
    }
}

fn parse_ready(text: &str, users: usize) -> Result<Sandbox, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("ready file: {e}"))?;
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("ready file: no `{k}`"))
    };
    let ca_file = s("ca_file")?;
    let ca_pem = std::fs::read(&ca_file).map_err(|e| format!("{ca_file}: {e}"))?;
    let gateway_env = v["gateway_env"]
        .as_object()
        .ok_or("ready file: no `gateway_env`")?
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect();
    let users: Vec<String> = v["users"]
        .as_array()
        .ok_or("ready file: no `users`")?
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str())
        .filter(|u| u.starts_with("loaduser"))
        .map(str::to_owned)
        .take(users)
        .collect();
    Ok(Sandbox {
        graph_url: s("graph_url")?,
        entra_url: s("entra_url")?,
        ca_pem,
        gateway_env,
        users,
    })
}

async fn mint(client: &reqwest::Client, url: &str, body: Value) -> Result<String, String> {
    let r = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| format!("POST {url}: {e}"))?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("POST {url}: {status} {v}"))
}

/// (token-endpoint requests, on-behalf-of requests) from the Entra emulator's counters.
async fn entra_counters(client: &reqwest::Client, entra: &str) -> Option<(u64, u64)> {
    let v: Value = client
        .get(format!("{entra}/_emulator/counters"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some((
        v["token_requests"].as_u64()?,
        v["by_grant_type"]["on_behalf_of"].as_u64().unwrap_or(0),
    ))
}

/// One comparison: (a) Graph direct, (b) through the gateway, same photo, same concurrency.
struct Pair {
    machine_a: Option<Duration>,
    machine_b: Option<Duration>,
    a: LoadStats,
    b: LoadStats,
    gw_cpu_a: Option<Duration>,
    gw_cpu_b: Option<Duration>,
    emu_cpu_a: Option<Duration>,
    emu_cpu_b: Option<Duration>,
    own_cpu_a: Option<Duration>,
    own_cpu_b: Option<Duration>,
}

#[allow(clippy::too_many_arguments)]
async fn measure_pair(
    client: &reqwest::Client,
    p: &Params,
    graph_url: &str,
    gw_url: &str,
    graph_tokens: &Arc<Vec<String>>,
    caller_tokens: &Arc<Vec<String>>,
    photo: &Bytes,
    n: usize,
    gw_pid: u32,
    emu_pid: u32,
    perf: Option<&Path>,
    c: usize,
) -> Pair {
    let _ = run_load(
        client,
        graph_url,
        graph_tokens.clone(),
        photo.clone(),
        p.warmup(),
        c,
    )
    .await;
    let cpu0 = procs::cpu_all(gw_pid, emu_pid);
    let a = run_load(client, graph_url, graph_tokens.clone(), photo.clone(), n, c).await;
    let cpu1 = procs::cpu_all(gw_pid, emu_pid);
    let _ = run_load(
        client,
        gw_url,
        caller_tokens.clone(),
        photo.clone(),
        p.warmup(),
        c,
    )
    .await;
    let recorder = perf.and_then(|out| match procs::PerfRecord::start(gw_pid, out) {
        Ok(r) => Some(r),
        Err(e) => {
            step(&format!("perf not started: {e}"));
            None
        }
    });
    let cpu2 = procs::cpu_all(gw_pid, emu_pid);
    let b = run_load(client, gw_url, caller_tokens.clone(), photo.clone(), n, c).await;
    let cpu3 = procs::cpu_all(gw_pid, emu_pid);
    if let Some(r) = recorder {
        r.stop();
    }
    let d = |x: Option<Duration>, y: Option<Duration>| Some(y?.saturating_sub(x?));
    Pair {
        machine_a: d(cpu0.machine, cpu1.machine),
        machine_b: d(cpu2.machine, cpu3.machine),
        gw_cpu_a: d(cpu0.gateway, cpu1.gateway),
        gw_cpu_b: d(cpu2.gateway, cpu3.gateway),
        emu_cpu_a: d(cpu0.emulators, cpu1.emulators),
        emu_cpu_b: d(cpu2.emulators, cpu3.emulators),
        own_cpu_a: d(cpu0.own, cpu1.own),
        own_cpu_b: d(cpu2.own, cpu3.own),
        a,
        b,
    }
}

impl Pair {
    fn to_json(&self, name: &str, size: usize, phase: &str) -> Value {
        let with_latency = phase != "cost";
        let ratio = match (self.a.rps(), self.b.rps()) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        };
        let per_req = |cpu: Option<Duration>, s: &LoadStats| {
            let total = s.ok + s.errors;
            cpu.filter(|_| total > 0)
                .map(|c| c.as_secs_f64() * 1e6 / total as f64)
        };
        let gw_us = per_req(self.gw_cpu_b, &self.b);
        let mut v = json!({
            "phase": phase,
            "size": name,
            "photo_bytes": size,
            "a_graph_direct": self.a.to_json(size),
            "b_through_gateway": self.b.to_json(size),
            "ratio_b_over_a": ratio,
            "gateway_cpu_us_per_request": gw_us,
            "gateway_cpu_ms_per_mib": gw_us.map(|us| us / 1000.0 / (size as f64 / MIB)),
            "gateway_cpu_total_s": self.gw_cpu_b.map(|d| d.as_secs_f64()),
            "gateway_cpu_during_a_s": self.gw_cpu_a.map(|d| d.as_secs_f64()),
            "emulators_cpu_us_per_request": {"a": per_req(self.emu_cpu_a, &self.a), "b": per_req(self.emu_cpu_b, &self.b)},
            "machine_busy_cores": {
                "a": self.machine_a.map(|m| m.as_secs_f64() / self.a.elapsed.as_secs_f64().max(1e-9)),
                "b": self.machine_b.map(|m| m.as_secs_f64() / self.b.elapsed.as_secs_f64().max(1e-9)),
            },
            "load_generator_cpu_us_per_request": {"a": per_req(self.own_cpu_a, &self.a), "b": per_req(self.own_cpu_b, &self.b)},
        });
        if with_latency {
            let add = |x: Option<f64>, y: Option<f64>| Some(y? - x?);
            v["latency_added_ms"] = json!({
                "p50": add(self.a.p50_ms(), self.b.p50_ms()),
                "p99": add(self.a.p99_ms(), self.b.p99_ms()),
            });
        }
        v
    }
}

/// Gateway CPU per extra MiB: slope between the smallest and the largest photo.
fn marginal_cpu(cost: &[(&str, usize, Pair)]) -> Option<f64> {
    let (first, last) = (cost.first()?, cost.last()?);
    if first.1 == last.1 {
        return None;
    }
    let per = |pair: &Pair| {
        let total = pair.b.ok + pair.b.errors;
        Some(pair.gw_cpu_b?.as_secs_f64() * 1000.0 / total as f64)
    };
    let (c0, c1) = (per(&first.2)?, per(&last.2)?);
    Some((c1 - c0) / ((last.1 - first.1) as f64 / MIB))
}

/// `--image-throughput-only`: the sandbox is up and the tokens minted; runs the image throughput
/// phase and the in-process phase it is compared with, prints and writes their figures.
#[allow(clippy::too_many_arguments)]
async fn image_throughput_only(
    args: &Args,
    p: &Params,
    gateway_bin: &Path,
    tmp: &TempDir,
    client: &reqwest::Client,
    sandbox: &Sandbox,
    env: &[(String, String)],
    caller_tokens: &[String],
    started: Instant,
) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    step(&format!(
        "image throughput: {} PUTs of the 4032x3024 JPEG at concurrency {}, PHOTO_GATEWAY_IMAGE_MODE=normalize",
        p.image_requests, p.image_concurrency
    ));
    let tput = image_load::phase(
        &image_load::Setup {
            gateway_bin,
            env,
            log: &tmp.path().join("gateway-image.log"),
            client,
            graph_url: &sandbox.graph_url,
            caller_tokens,
            requests: p.image_requests,
            concurrency: p.image_concurrency,
        },
        &mut problems,
    )
    .await;
    step("image stage phase (in process, and the Pillow reference)");
    let (stage, stage_problems) = image_in_process(args.smoke, &args.python).await?;
    problems.extend(stage_problems);
    let results = json!({
        "machine": machine::describe(),
        "gateway": {"binary": gateway_bin.display().to_string(), "binary_sha256": procs::binary_sha256(gateway_bin), "git": procs::git_describe(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))},
        "duration_s": started.elapsed().as_secs_f64(),
        "image_stage": stage,
        "image_throughput": {
            "throughput": tput,
            "goal": image_load::goal(&tput, stage["jpeg_12mp_to_648"]["stage_cpu_ms_median"].as_f64(), p.image_concurrency),
        },
        "problems": problems,
    });
    println!(
        "{}",
        image::table(&results["image_stage"]) + &image_load::table(&results["image_throughput"])
    );
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    )
    .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    step(&format!("results written to {}", args.out.display()));
    Ok(problems)
}

fn small_photo() -> Bytes {
    Bytes::from(load::jpeg_of_size(SIZE_50K))
}

/// `--replicas-only`: the sandbox is up and the tokens minted; runs phase 6 alone, prints and
/// writes its figures.
#[allow(clippy::too_many_arguments)]
async fn replicas_only(
    args: &Args,
    p: &Params,
    gateway_bin: &Path,
    tmp: &TempDir,
    client: &reqwest::Client,
    sandbox: &Sandbox,
    env: &[(String, String)],
    caller_tokens: &Arc<Vec<String>>,
    photo: &Bytes,
    started: Instant,
) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    step(&format!(
        "replicas only: 3 without Redis, then 3 with it; Graph latency {} ms, {} users, {} requests",
        p.latency_ms,
        caller_tokens.len(),
        p.latency_requests
    ));
    let setup = replicas::Setup {
        gateway_bin,
        tmp: tmp.path(),
        client,
        entra_url: &sandbox.entra_url,
        graph_url: &sandbox.graph_url,
        env: env
            .iter()
            .filter(|(k, _)| !LIMITS_OFF.iter().any(|(off, _)| off == k))
            .cloned()
            .collect(),
        caller_tokens: caller_tokens.clone(),
        photo: photo.clone(),
        requests: p.latency_requests,
        concurrency: p.concurrency,
        latency_ms: p.latency_ms,
        perf: args.perf.clone(),
    };
    let v = replicas::run(&setup, &mut problems).await?;
    let results = json!({
        "machine": machine::describe(),
        "gateway": {"binary": gateway_bin.display().to_string(), "binary_sha256": procs::binary_sha256(gateway_bin), "git": procs::git_describe(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))},
        "duration_s": started.elapsed().as_secs_f64(),
        "replicas": v,
        "problems": problems,
    });
    println!("{}", replicas::table(&results["replicas"]));
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    )
    .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    step(&format!("results written to {}", args.out.display()));
    Ok(problems)
}
