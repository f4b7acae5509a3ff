//! The real `photo-gateway` binary as its own process: for what only a process shows (signals,
//! exit codes, its own memory, exporters flushed on exit).

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
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
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
