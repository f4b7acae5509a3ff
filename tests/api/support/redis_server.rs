//! A real `redis-server` for the tests: on a free loopback port, no persistence, an ACL user with
//! a password (the gateway's way in), killed on drop. No redis-server on the machine is a test
//! failure that says how to install it, never a skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ACL user the gateways log in as.
pub const REDIS_USER: &str = "gateway";
const REDIS_PASSWORD: &str = "test-redis-password-0123456789";

/// A redis-server of this test's own.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// 32 bytes of key, base64, for the token key file.
pub fn aes_key_b64(fill: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([fill; 32])
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers.
    pub async fn start() -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "pgw-redis-{}-{port}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("password"), format!("{REDIS_PASSWORD}\n")).unwrap();
        std::fs::write(dir.join("token-keys"), format!("k1={}\n", aes_key_b64(1))).unwrap();
        std::fs::write(dir.join("hmac-key"), "h".repeat(48)).unwrap();
        let mut r = RedisServer {
            child: None,
            port,
            dir,
        };
        r.restart().await;
        r
    }

    /// (Re)starts the server on its port (after [`RedisServer::kill`]).
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &self.dir.display().to_string(),
                "--user",
                "default",
                "off",
                // One word an argument: redis-server joins them up to the next `--`.
                "--user",
                REDIS_USER,
                "on",
                &format!(">{REDIS_PASSWORD}"),
                "~*",
                // Redis 7 grants no pub/sub channel unless told (the invalidation channel).
                "&*",
                "+@all",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the Redis tests need it. Install it with \
                     `apt-get install -y redis-server` (Debian/Ubuntu), or run scripts/test.sh, \
                     which does"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = self.connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's CPU time so far (user + system, from /proc), for cost measurements.
    pub fn cpu_time(&self) -> Duration {
        let stat = self
            .pid()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
            .unwrap_or_default();
        // Fields after the command name, which is in parentheses: utime and stime are 14 and 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// `INFO {section}` as (field, value) pairs.
    pub async fn info(&self, section: &str) -> std::collections::HashMap<String, String> {
        let mut c = self.connection().await.unwrap();
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut c)
            .await
            .unwrap();
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A file in this server's directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The variables that point a gateway at this server, with the default key files.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        vec![
            ("PHOTO_GATEWAY_REDIS_URL".into(), self.url()),
            ("PHOTO_GATEWAY_REDIS_USERNAME".into(), REDIS_USER.into()),
            (
                "PHOTO_GATEWAY_REDIS_PASSWORD_FILE".into(),
                self.path("password"),
            ),
            (
                "PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE".into(),
                self.path("token-keys"),
            ),
            (
                "PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE".into(),
                self.path("hmac-key"),
            ),
            // Generous on a loaded test machine; the default is 50 ms.
            ("PHOTO_GATEWAY_REDIS_TIMEOUT_MS".into(), "500".into()),
        ]
    }

    /// `redis://{user}:{password}@127.0.0.1:{port}`: the gateway's user.
    pub fn url_with_credentials(&self) -> String {
        format!(
            "redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
            self.port
        )
    }

    /// A connection of the test's own, as the gateway's user.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url_with_credentials())?;
        client.get_multiplexed_async_connection().await
    }

    /// What the server is asked from now on (`MONITOR`), a line per command: `… [0 127.0.0.1:port]
    /// "EVALSHA" …` for a client's command, `… [0 lua] "ZREM" …` for one run by a script.
    pub async fn monitor(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        use futures_util::StreamExt;
        let client = redis::Client::open(self.url_with_credentials()).unwrap();
        let monitor = client.get_async_monitor().await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = monitor.into_on_message::<String>();
            while let Some(line) = lines.next().await {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Every key matching `pattern`, with its value when it is a string.
    pub async fn keys(&self, pattern: &str) -> Vec<(String, Option<String>)> {
        let mut c = self.connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut c)
            .await
            .unwrap();
        let mut out = Vec::new();
        for k in keys {
            let v: Option<String> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut c)
                .await
                .ok()
                .flatten();
            out.push((k, v));
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A value kept in Redis holds no JWT in the clear (`eyJ…header.eyJ…payload.signature`). Looking
/// for "eyJ" alone fails by chance: a sealed value is base64 of random bytes, in which any three
/// given letters turn up in a few percent of runs.
pub fn assert_no_clear_jwt(value: &str) {
    let segments: Vec<&str> = value.split('.').collect();
    assert!(
        !segments
            .windows(2)
            .any(|w| w[0].contains("eyJ") && w[1].starts_with("eyJ")),
        "a JWT in the clear: {value}"
    );
}
