//! A description of the machine the benchmark ran on.

use std::process::Command;

use serde_json::{Value, json};

pub fn describe() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let flags = field("flags").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string()
            })
        });
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    json!({
        "cpu_model": field("model name"),
        "logical_cpus": processors,
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "sha_ni": flags.split_whitespace().any(|f| f == "sha_ni"),
        "aes_ni": flags.split_whitespace().any(|f| f == "aes"),
        "ram_mib": mem_kib.map(|k| k / 1024),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "os": os,
        "rustc": rustc,
    })
}

/// The load averages (1, 5, 15 minutes) and runnable/total tasks, from /proc/loadavg.
pub fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let f: Vec<&str> = text.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    json!({
        "1m": num(0),
        "5m": num(1),
        "15m": num(2),
        "tasks": f.get(3),
    })
}

/// The actix worker threads of a process (threads named `actix-server w…`): the workers it
/// really runs, whatever the configuration said.
pub fn actix_workers(pid: u32) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        dir.filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
            .filter(|c| c.starts_with("actix-server w"))
            .count(),
    )
}

/// How the gateway binary was built, from its `--version` (`… (release build)` or
/// `… (debug build)`); older binaries that do not say are guessed from their path.
pub fn build_profile(version: &str, bin: &std::path::Path) -> Value {
    let said = if version.contains("(release build)") {
        Some("release")
    } else if version.contains("(debug build)") {
        Some("debug")
    } else {
        None
    };
    let path = bin.display().to_string();
    let guessed = if path.contains("/debug/") {
        "debug"
    } else if path.contains("/release/") {
        "release"
    } else {
        "unknown"
    };
    json!({
        "profile": said.unwrap_or(guessed),
        "source": if said.is_some() { "--version" } else { "binary path" },
    })
}
