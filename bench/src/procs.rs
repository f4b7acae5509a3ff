//! Child processes (killed on drop, and by the kernel if this process dies), /proc readings,
//! and the nested cargo invocations.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A child process killed (SIGKILL) and reaped when dropped. It also gets PR_SET_PDEATHSIG, so
/// it dies with this process even when this process is killed.
pub struct ChildGuard {
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<ChildGuard, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("PHOTO_GATEWAY_") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(&k);
            }
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {:?}: {e}", cmd.get_program()))?;
        Ok(ChildGuard {
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Some(status) once the child has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The last lines of the child's output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "photo-gateway-bench-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cargo command for the workspace, without the variables `cargo run` sets for this binary:
/// build scripts watch some of them (ring watches `CARGO_MANIFEST_DIR`), and a nested build
/// that saw them would rebuild half the dependency tree.
fn cargo(workspace: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k.as_str(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// `cargo build --release --locked -p photo-gateway --bin photo-gateway` in the workspace;
/// returns the executable cargo reports.
pub fn build_gateway(workspace: &Path) -> Result<PathBuf, String> {
    crate::step(
        "building the gateway: cargo build --release --locked -p photo-gateway --bin photo-gateway",
    );
    let mut child = cargo(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "photo-gateway",
            "--bin",
            "photo-gateway",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running cargo: {e}"))?;
    let mut exe = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["reason"] == "compiler-artifact"
                && v["target"]["name"] == "photo-gateway"
                && let Some(e) = v["executable"].as_str()
            {
                exe = Some(PathBuf::from(e));
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build of the gateway failed: {status}"));
    }
    exe.ok_or_else(|| "cargo reported no photo-gateway executable".into())
}

pub fn output_of(bin: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(bin).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits until `path` exists and parses as JSON (it is written atomically), or the child exits.
pub fn wait_for_file(
    path: &Path,
    child: &mut ChildGuard,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && serde_json::from_str::<Value>(&text).is_ok()
        {
            return Ok(text);
        }
        if let Some(status) = child.exited() {
            return Err(format!(
                "the sandbox exited ({status}) before writing {}:\n{}",
                path.display(),
                child.log_tail()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no ready file {} after {timeout:?}:\n{}",
                path.display(),
                child.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts `photo-gateway serve` with `env` on a free port; returns once `/readyz` answered 200,
/// with the time from spawn to that answer.
pub async fn start_gateway(
    bin: &Path,
    env: &[(String, String)],
    log: &Path,
) -> Result<(ChildGuard, u16, Duration), String> {
    let port = free_port()?;
    let probe = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("PHOTO_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}"));
    let t0 = Instant::now();
    let mut child = ChildGuard::spawn(&mut cmd, log)?;
    let deadline = t0 + Duration::from_secs(30);
    loop {
        if let Ok(r) = probe.get(&url).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return Ok((child, port, t0.elapsed()));
        }
        if let Some(status) = child.exited() {
            return Err(format!(
                "photo-gateway serve exited ({status}) before it was ready:\n{}",
                child.log_tail()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "photo-gateway serve: {url} not 200 within 30 s:\n{}",
                child.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// VmRSS and VmHWM of a process, KiB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
}

impl Memory {
    pub fn to_json(self) -> Value {
        json!({"vmrss_kib": self.rss_kib, "vmhwm_kib": self.hwm_kib})
    }
}

fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Memory {
        rss_kib: status_field(&text, "VmRSS:"),
        hwm_kib: status_field(&text, "VmHWM:"),
    }
}

/// Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0).
pub fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples VmRSS at a fixed interval on its own thread.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(Option<u64>, usize)>,
}

pub struct Samples {
    pub max_rss_kib: Option<u64>,
    pub count: usize,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut max, mut n) = (None::<u64>, 0usize);
            while !flag.load(Ordering::Relaxed) {
                if let Some(r) = memory(pid).rss_kib {
                    max = Some(max.map_or(r, |m| m.max(r)));
                    n += 1;
                }
                std::thread::sleep(every);
            }
            (max, n)
        });
        RssSampler { stop, handle }
    }

    pub fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        let (max_rss_kib, count) = self.handle.join().unwrap_or((None, 0));
        Samples { max_rss_kib, count }
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, what `getconf CLK_TCK` prints).
pub fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (t > 0).then_some(t as u64)
}

/// utime + stime of a process (all its threads), from /proc/PID/stat.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is field 3, utime 14, stime 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks()? as f64,
    ))
}

pub struct CpuNow {
    /// Busy time of the whole machine (all CPUs: user, nice, system, irq, softirq, steal).
    pub machine: Option<Duration>,
    pub gateway: Option<Duration>,
    pub emulators: Option<Duration>,
    pub own: Option<Duration>,
}

pub fn cpu_all(gateway: u32, emulators: u32) -> CpuNow {
    CpuNow {
        machine: machine_busy(),
        gateway: cpu_time(&gateway.to_string()),
        emulators: cpu_time(&emulators.to_string()),
        own: cpu_time("self"),
    }
}

/// Runs the criterion JWT benchmark and returns its estimates (µs per validation).
pub fn run_criterion(workspace: &Path) -> Result<Value, String> {
    let home = std::env::temp_dir().join(format!(
        "photo-gateway-bench-criterion-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&home);
    let status = cargo(workspace)
        .args([
            "bench",
            "--locked",
            "-p",
            "photo-gateway-bench",
            "--bench",
            "jwt",
        ])
        .env("CRITERION_HOME", &home)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("running cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed: {status}"));
    }
    let mut out = serde_json::Map::new();
    for bench in ["v2_caller_token", "v1_caller_token"] {
        let path = home
            .join("jwt_validate")
            .join(bench)
            .join("new")
            .join("estimates.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let us = |k: &str, f: &str| v[k][f].as_f64().map(|ns| ns / 1000.0);
        out.insert(
            bench.into(),
            json!({
                "mean_us": us("mean", "point_estimate"),
                "mean_ci95_us": [v["mean"]["confidence_interval"]["lower_bound"].as_f64().map(|x| x / 1000.0),
                                 v["mean"]["confidence_interval"]["upper_bound"].as_f64().map(|x| x / 1000.0)],
                "median_us": us("median", "point_estimate"),
            }),
        );
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(json!({"command": "cargo bench -p photo-gateway-bench --bench jwt", "estimates": out}))
}

/// `git rev-parse HEAD` of the workspace, and whether the gateway's sources differ from it.
pub fn git_describe(workspace: &Path) -> Value {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // BENCH_GIT_HEAD names the commit when the tree is not a git checkout (an exported snapshot).
    let head = git(&["rev-parse", "HEAD"]).or_else(|| std::env::var("BENCH_GIT_HEAD").ok());
    let dirty = git(&["status", "--porcelain", "--", "src", "Cargo.lock"]).map(|s| !s.is_empty());
    json!({"head": head, "gateway_sources_modified": dirty})
}

/// The SHA-256 of the gateway binary (`sha256sum`): names the build measured, whichever commit
/// the bench itself was run from (`git_describe` is the bench checkout's, not `--gateway-bin`'s).
pub fn binary_sha256(bin: &Path) -> Option<String> {
    let out = Command::new("sha256sum").arg(bin).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text.split_whitespace().next()?;
    (out.status.success() && hash.len() == 64).then(|| hash.to_owned())
}

/// `perf record -e cpu-clock` attached to a process, stopped (SIGINT) and reaped on `stop`.
pub struct PerfRecord(Child);

impl PerfRecord {
    pub fn start(pid: u32, out: &Path) -> Result<PerfRecord, String> {
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "1999", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf record: {e}"))?;
        // Let perf attach before the load starts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(PerfRecord(child))
    }

    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Busy CPU time of the whole machine since boot, from the first line of /proc/stat.
pub fn machine_busy() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?;
    Some(Duration::from_secs_f64(busy as f64 / clock_ticks()? as f64))
}
