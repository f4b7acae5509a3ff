//! The real `photo-gateway` binary as its own process: for what only a process shows (signals,
//! exit codes, its own memory and file descriptors, exporters flushed on exit).

use std::collections::HashSet;
use std::time::Duration;

use photo_gateway_emulators::Emulators;

use super::app::wait_until_ready;

/// The `photo-gateway` binary cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_photo-gateway");

/// The real `photo-gateway serve` binary, as its own process, against `emus`.
pub struct GatewayProcess {
    /// The child process.
    pub child: tokio::process::Child,
    /// Its API port.
    pub port: u16,
}

impl GatewayProcess {
    /// Starts the binary with the emulators' configuration plus `env`, and waits until ready.
    pub async fn spawn(emus: &Emulators, env: &[(&str, &str)]) -> GatewayProcess {
        Self::spawn_logged(emus, env, None).await
    }

    /// The same, its log lines (stdout) written to `log` when set.
    pub async fn spawn_logged(
        emus: &Emulators,
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(BINARY)
            .arg("serve")
            .env_clear()
            .envs(emus.gateway_env())
            .env("PHOTO_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("PHOTO_GATEWAY_METRICS_ADDR", "off")
            .envs(super::app::PASSTHROUGH_ENV)
            .envs(env.iter().copied())
            .stdout(match log {
                Some(path) => std::fs::File::create(path).unwrap().into(),
                None => std::process::Stdio::null(),
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let g = GatewayProcess { child, port };
        // A process starts slower than an in-process server, more so on a loaded machine.
        wait_until_ready(&reqwest::Client::new(), &g.base(), Duration::from_secs(20)).await;
        g
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, …) in KiB; 0 once the process
    /// is gone.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(field)
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
            })
            .unwrap_or(0)
    }

    /// The process's open file descriptors, and which of them are TCP connections it accepted
    /// on its API port or opened to its upstreams.
    pub fn fds(&self) -> FdCensus {
        let pid = self.pid();
        let mut total = 0;
        let mut sockets = HashSet::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            total += 1;
            if let Ok(target) = std::fs::read_link(entry.path())
                && let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
            {
                sockets.insert(inode);
            }
        }
        let (mut accepted, mut upstream) = (0, 0);
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(state), Some(inode)) =
                    (cols.get(1), cols.get(3), cols.get(9))
                else {
                    continue;
                };
                if !inode.parse().is_ok_and(|i: u64| sockets.contains(&i)) || *state == "0A" {
                    continue; // another process's socket, or a listener
                }
                let local_port = local
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                if local_port == Some(self.port) {
                    accepted += 1;
                } else {
                    upstream += 1;
                }
            }
        }
        FdCensus {
            total,
            accepted,
            upstream,
        }
    }

    /// Sends the signal `name` (`TERM`, `INT`, …) through kill(1): the tests link no libc binding.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success(),
            "kill -{name} {pid}"
        );
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits for the exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits")
            .unwrap()
            .code()
    }
}

/// The open file descriptors of a gateway process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdCensus {
    /// Every open descriptor.
    pub total: usize,
    /// TCP connections accepted on the API port (not the listener).
    pub accepted: usize,
    /// Other TCP connections: those to Entra and Graph, which the HTTP client keeps idle in its
    /// pool for a while after use.
    pub upstream: usize,
}

impl FdCensus {
    /// Descriptors other than the upstream pool's: what must return to its level once the
    /// gateway's callers are gone.
    pub fn without_upstream(&self) -> usize {
        self.total - self.upstream
    }
}
