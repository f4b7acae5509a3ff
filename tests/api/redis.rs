//! The Redis tier: several real gateway processes against one real redis-server and the
//! emulators. Shared token cache (one exchange per user and scope for all replicas, sealed values,
//! key rotation), global Graph limits (mailbox concurrency, caller rate, leases of dead replicas),
//! and Redis failing under load (no 5xx, per-pod fallback, shared again once it is back).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use photo_gateway::read_cache::TargetId;
use photo_gateway_emulators::directory::{DEMO_USER_ID, TENANT_DOMAIN, TENANT_ID};
use photo_gateway_emulators::{CallerTokenSpec, EmulatorOptions, Emulators};

use crate::support::{
    DEMO, GatewayProcess, ME, REDIS_USER, RedisServer, aes_key_b64, assert_no_clear_jwt, free_port,
    jpeg,
};

async fn emulators(extra_users: usize) -> Arc<Emulators> {
    Arc::new(
        Emulators::start(EmulatorOptions {
            extra_users,
            ..EmulatorOptions::default()
        })
        .await
        .expect("emulators start"),
    )
}

fn load_user(i: usize) -> String {
    format!("loaduser{i}@{TENANT_DOMAIN}")
}

/// The Redis variables plus `extra`, with the rate limits off unless `extra` sets them.
fn env(redis: &RedisServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = redis.gateway_env();
    v.push(("PHOTO_GATEWAY_CALLER_RATE_PER_MIN".into(), "0".into()));
    v.push(("PHOTO_GATEWAY_LOG_FORMAT".into(), "json".into()));
    v.push(("PHOTO_GATEWAY_LOG_LEVEL".into(), "debug".into()));
    for (k, val) in extra {
        v.retain(|(key, _)| key != k);
        v.push(((*k).into(), (*val).into()));
    }
    v
}

async fn replica(
    emus: &Emulators,
    vars: &[(String, String)],
    log: Option<&PathBuf>,
) -> GatewayProcess {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    GatewayProcess::spawn_logged(emus, &pairs, log.map(|p| p.as_path())).await
}

async fn put(
    client: &reqwest::Client,
    g: &GatewayProcess,
    path: &str,
    token: &str,
    seed: u8,
) -> (u16, Option<String>) {
    let r = client
        .put(format!("{}{path}", g.base()))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(jpeg(600, seed))
        .send()
        .await
        .expect("request sent");
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r.status().as_u16(), retry_after)
}

fn obo(emus: &Emulators) -> u64 {
    emus.entra
        .counters()
        .by_grant_type
        .get("on_behalf_of")
        .copied()
        .unwrap_or(0)
}

/// The sum of a metric's series on a replica's metrics listener (`port`); `None` when it
/// exports none.
async fn metric_if_any(client: &reqwest::Client, port: &str, name: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// [`metric_if_any`], 0 when absent.
async fn metric(client: &reqwest::Client, port: &str, name: &str) -> f64 {
    metric_if_any(client, port, name).await.unwrap_or(0.0)
}

fn temp(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("pgw-redis-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn users_through_three_replicas_cost_one_exchange_each_and_a_new_replica_uses_l2() {
    const USERS: usize = 5;
    let emus = emulators(USERS).await;
    let redis = RedisServer::start().await;
    let vars = env(&redis, &[]);
    let logs: Vec<PathBuf> = (0..4).map(|i| temp(&format!("replica{i}.log"))).collect();
    let mut replicas = Vec::new();
    for log in &logs[..3] {
        replicas.push(replica(&emus, &vars, Some(log)).await);
    }
    let tokens: Vec<String> = (1..=USERS)
        .map(|i| emus.caller_token(&CallerTokenSpec::for_user(&load_user(i))))
        .collect();
    let client = reqwest::Client::new();
    // Every user through every replica at once: 15 uploads, 5 (user, scope) pairs.
    let uploads = tokens
        .iter()
        .enumerate()
        .flat_map(|(u, t)| replicas.iter().map(move |g| (u, t, g)));
    let statuses = futures_util::future::join_all(uploads.map(|(u, t, g)| {
        let client = &client;
        async move { put(client, g, ME, t, u as u8).await.0 }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        obo(&emus),
        USERS as u64,
        "one exchange per user for all three replicas"
    );

    // What Redis holds: one sealed value per user, under a name that is no token.
    let stored = redis.keys("pgw:tok:*").await;
    let values: Vec<&String> = stored.iter().filter_map(|(_, v)| v.as_ref()).collect();
    assert_eq!(values.len(), USERS, "{stored:?}");
    for v in &values {
        assert!(v.starts_with("k1."), "sealed with the current key: {v}");
        assert_no_clear_jwt(v);
    }

    // A replica that was not there serves every user from L2, without an exchange.
    replicas.remove(0).signal("KILL");
    let fresh = replica(&emus, &vars, Some(&logs[3])).await;
    for (u, t) in tokens.iter().enumerate() {
        assert_eq!(put(&client, &fresh, ME, t, u as u8).await.0, 200);
    }
    assert_eq!(
        obo(&emus),
        USERS as u64,
        "the new replica exchanged nothing"
    );

    // Nothing secret in any replica's log: tokens, keys, the Redis password.
    drop(replicas);
    drop(fresh);
    let secrets: Vec<String> = tokens
        .iter()
        .cloned()
        .chain([aes_key_b64(1), "h".repeat(48), "test-redis-password".into()])
        .collect();
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            text.contains("photo-gateway listening"),
            "the log was captured: {log:?}"
        );
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{log:?} holds a secret");
        }
        assert!(!text.contains("eyJ"), "{log:?} holds something JWT-like");
    }
}

/// The sealed values of the shared token cache (`kid.base64`).
async fn sealed_tokens(redis: &RedisServer) -> Vec<String> {
    redis
        .keys("pgw:tok:*")
        .await
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn keys_rotate_without_a_flush() {
    let emus = emulators(3).await;
    let redis = RedisServer::start().await;
    let client = reqwest::Client::new();
    let a = emus.caller_token(&CallerTokenSpec::for_user(&load_user(1)));
    let b = emus.caller_token(&CallerTokenSpec::for_user(&load_user(2)));
    let old = replica(&emus, &env(&redis, &[]), None).await;
    assert_eq!(put(&client, &old, ME, &a, 1).await.0, 200);
    assert_eq!(obo(&emus), 1);

    // The new key goes first; the old one stays to open what it sealed.
    let rotated = temp("keys");
    std::fs::write(
        &rotated,
        format!("k2={}\nk1={}\n", aes_key_b64(2), aes_key_b64(1)),
    )
    .unwrap();
    let rotated = rotated.display().to_string();
    let new = replica(
        &emus,
        &env(&redis, &[("PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE", &rotated)]),
        None,
    )
    .await;
    assert_eq!(put(&client, &new, ME, &a, 1).await.0, 200);
    assert_eq!(obo(&emus), 1, "the old key still opens the cached token");
    assert_eq!(put(&client, &new, ME, &b, 2).await.0, 200);
    assert_eq!(obo(&emus), 2);
    let sealed = sealed_tokens(&redis).await;
    assert!(sealed.iter().any(|v| v.starts_with("k2.")), "{sealed:?}");
    assert!(sealed.iter().any(|v| v.starts_with("k1.")), "{sealed:?}");

    // A replica without either key cannot open them: it exchanges, and still serves.
    let other = temp("keys");
    std::fs::write(&other, format!("k3={}\n", aes_key_b64(3))).unwrap();
    let other = other.display().to_string();
    let stranger = replica(
        &emus,
        &env(&redis, &[("PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE", &other)]),
        None,
    )
    .await;
    assert_eq!(put(&client, &stranger, ME, &b, 2).await.0, 200);
    assert_eq!(obo(&emus), 3, "a value no key opens is never used");
}

#[tokio::test]
async fn a_key_id_with_a_dot_opens_what_it_sealed() {
    // The sealed value is `kid.base64`: a kid such as a date (`2026.12`) must not be cut short.
    let emus = emulators(1).await;
    let redis = RedisServer::start().await;
    let client = reqwest::Client::new();
    let a = emus.caller_token(&CallerTokenSpec::for_user(&load_user(1)));
    let keys = temp("keys");
    std::fs::write(&keys, format!("2026.12={}\n", aes_key_b64(4))).unwrap();
    let keys = keys.display().to_string();
    let vars = env(&redis, &[("PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE", &keys)]);
    let first = replica(&emus, &vars, None).await;
    assert_eq!(put(&client, &first, ME, &a, 1).await.0, 200);
    assert_eq!(obo(&emus), 1);
    let sealed = sealed_tokens(&redis).await;
    assert!(
        sealed.iter().all(|v| v.starts_with("2026.12.")),
        "{sealed:?}"
    );
    let second = replica(&emus, &vars, None).await;
    assert_eq!(put(&client, &second, ME, &a, 1).await.0, 200);
    assert_eq!(
        obo(&emus),
        1,
        "the second replica opened the first one's token"
    );
}

#[tokio::test]
async fn twenty_uploads_to_one_mailbox_over_three_replicas_keep_graphs_four() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    // Slow enough that per-pod limits alone (4 each) would let 12 in at once.
    emus.graph.set_write_latency(Duration::from_millis(300));
    let vars = env(
        &redis,
        &[
            ("PHOTO_GATEWAY_MAILBOX_QUEUE_SECS", "10"),
            ("PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS", "3"),
        ],
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&emus, &vars, None).await);
    }
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let statuses = futures_util::future::join_all((0..20).map(|i| {
        let (client, token, g) = (&client, &token, &replicas[i % 3]);
        async move { put(client, g, ME, token, i as u8).await.0 }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let max = emus
        .graph
        .counters()
        .max_in_flight_per_mailbox
        .get(&format!("/users/{DEMO_USER_ID}"))
        .copied();
    assert!(matches!(max, Some(1..=4)), "Graph saw {max:?} at once");
    // 20 writes of 300 ms, at most 4 at a time: at least 5 rounds.
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn the_per_caller_rate_holds_across_replicas() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    let vars = env(
        &redis,
        &[
            ("PHOTO_GATEWAY_CALLER_RATE_PER_MIN", "6"),
            ("PHOTO_GATEWAY_CALLER_BURST", "3"),
        ],
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&emus, &vars, None).await);
    }
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for i in 0..9 {
        answers.push(put(&client, &replicas[i % 3], ME, &token, i as u8).await);
    }
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        ok, 3,
        "a burst of 3 for all replicas, not 3 each: {answers:?}"
    );
    for (s, retry_after) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 429);
        let secs: u64 = retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=11).contains(&secs), "{secs}");
    }
}

/// Two replicas sharing one mailbox slot (concurrency 1, a short queue) with leases of
/// `lease_secs`; the second one's token is warm.
async fn one_slot_replicas(
    emus: &Emulators,
    redis: &RedisServer,
    lease_secs: &str,
) -> (GatewayProcess, GatewayProcess, String, reqwest::Client) {
    let vars = env(
        redis,
        &[
            ("PHOTO_GATEWAY_MAILBOX_CONCURRENCY", "1"),
            ("PHOTO_GATEWAY_MAILBOX_QUEUE_SECS", "0.2"),
            ("PHOTO_GATEWAY_REDIS_LEASE_SECS", lease_secs),
        ],
    );
    let first = replica(emus, &vars, None).await;
    let second = replica(emus, &vars, None).await;
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    assert_eq!(put(&client, &second, ME, &token, 1).await.0, 200);
    (first, second, token, client)
}

/// Starts an upload through `g` and returns once Graph has it (so `g` holds the mailbox's slot);
/// the handle gives its status, `None` if it never answered.
async fn upload_holding_the_slot(
    emus: &Emulators,
    client: &reqwest::Client,
    g: &GatewayProcess,
    token: &str,
) -> tokio::task::JoinHandle<Option<u16>> {
    let (client, token, base) = (client.clone(), token.to_owned(), g.base());
    let upload = tokio::spawn(async move {
        client
            .put(format!("{base}{ME}"))
            .bearer_auth(token)
            .header("content-type", "image/jpeg")
            .body(jpeg(600, 2))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while emus.graph.counters().in_flight_per_mailbox.is_empty() {
        assert!(Instant::now() < deadline, "the upload reached Graph");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    upload
}

#[tokio::test]
async fn a_dead_replicas_mailbox_slot_frees_itself_when_its_lease_ends() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    let (doomed, survivor, token, client) = one_slot_replicas(&emus, &redis, "2").await;
    emus.graph.set_write_latency(Duration::from_secs(30));
    // The doomed replica holds the mailbox's one slot.
    let hung = upload_holding_the_slot(&emus, &client, &doomed, &token).await;
    doomed.signal("KILL");
    emus.graph.set_write_latency(Duration::ZERO);
    let (status, retry_after) = put(&client, &survivor, ME, &token, 3).await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (429, Some("1")),
        "the slot is still leased"
    );
    let _ = hung.await;

    // The lease (2 s) ends without its replica.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match put(&client, &survivor, ME, &token, 4).await.0 {
            200 => break,
            429 if Instant::now() < deadline => {}
            other => panic!("the slot never came back: {other}"),
        }
    }
}

#[tokio::test]
async fn an_upload_longer_than_its_lease_keeps_its_slot() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    let (slow, other, token, client) = one_slot_replicas(&emus, &redis, "1").await;
    // Graph takes 4 s: four leases' worth, renewed while the upload runs.
    emus.graph.set_write_latency(Duration::from_secs(4));
    let long = upload_holding_the_slot(&emus, &client, &slow, &token).await;
    // Past two lease lengths, the slot is still held: the other replica is refused.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, retry_after) = put(&client, &other, ME, &token, 3).await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (429, Some("1")),
        "the running upload's lease was renewed"
    );
    assert_eq!(long.await.unwrap(), Some(200));
    emus.graph.set_write_latency(Duration::ZERO);
    // Released at its answer: the next upload goes through at once.
    assert_eq!(put(&client, &other, ME, &token, 4).await.0, 200);
    assert_eq!(
        emus.graph
            .counters()
            .max_in_flight_per_mailbox
            .values()
            .max(),
        Some(&1),
        "Graph never saw two uploads to the mailbox at once"
    );
}

#[tokio::test]
async fn redis_killed_under_load_means_no_5xx_then_sharing_resumes() {
    let emus = emulators(4).await;
    let mut redis = RedisServer::start().await;
    let metrics_ports: Vec<String> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
                .to_string()
        })
        .collect();
    let mut replicas = Vec::new();
    for port in &metrics_ports {
        let addr = format!("127.0.0.1:{port}");
        let vars = env(
            &redis,
            &[
                ("PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS", "3"),
                ("PHOTO_GATEWAY_METRICS_ADDR", &addr),
            ],
        );
        replicas.push(replica(&emus, &vars, None).await);
    }
    let tokens: Vec<String> = (1..=4)
        .map(|i| emus.caller_token(&CallerTokenSpec::for_user(&load_user(i))))
        .collect();
    let client = reqwest::Client::new();

    // Load for 3 s from 4 users over the three replicas; Redis dies after 1 s.
    let load = async {
        let mut statuses = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        let mut i = 0usize;
        while Instant::now() < until {
            let round = futures_util::future::join_all(
                tokens
                    .iter()
                    .enumerate()
                    .map(|(u, t)| put(&client, &replicas[(u + i) % 3], ME, t, (u + i) as u8)),
            )
            .await;
            statuses.extend(round.into_iter().map(|(s, _)| s));
            i += 1;
        }
        statuses
    };
    let kill = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.kill();
    };
    let (statuses, ()) = tokio::join!(load, kill);
    assert!(statuses.len() > 8, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no 5xx (nor anything else): {statuses:?}"
    );
    for port in &metrics_ports {
        assert_eq!(metric(&client, port, "photo_gateway_redis_up").await, 0.0);
        assert!(metric(&client, port, "photo_gateway_redis_fallbacks_total").await >= 1.0);
    }

    // Meanwhile each replica keeps its share of a mailbox: 4 / 3 expected replicas, 1 at once.
    emus.graph.set_write_latency(Duration::from_millis(300));
    let demo = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let outage = futures_util::future::join_all(
        (0..4).map(|i| put(&client, &replicas[0], ME, &demo, 20 + i as u8)),
    )
    .await;
    assert!(outage.iter().all(|(s, _)| *s == 200), "{outage:?}");
    let max = emus
        .graph
        .counters()
        .max_in_flight_per_mailbox
        .get(&format!("/users/{DEMO_USER_ID}"))
        .copied();
    assert_eq!(max, Some(1), "this replica's share of Graph's 4");
    emus.graph.set_write_latency(Duration::ZERO);

    // Back (empty): the next probe (one a second) finds it, and the replicas share again.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (u, g) in replicas.iter().enumerate() {
            assert_eq!(put(&client, g, ME, &tokens[u], 9).await.0, 200);
        }
        let mut up = 0.0;
        for port in &metrics_ports {
            up += metric(&client, port, "photo_gateway_redis_up").await;
        }
        if up == 3.0 {
            break;
        }
        assert!(Instant::now() < deadline, "Redis never came back into use");
    }
    let before = obo(&emus);
    let megan = emus.caller_token(&CallerTokenSpec::for_user(crate::support::MEGAN));
    for g in &replicas {
        assert_eq!(put(&client, g, ME, &megan, 10).await.0, 200);
    }
    assert_eq!(
        obo(&emus),
        before + 1,
        "one exchange for the three replicas again"
    );
    assert_eq!(redis.keys("pgw:tok:*").await.len(), 1);
}

/// What one upload costs Redis, for docs/scaling.md: commands, bytes on the wire, redis-server
/// CPU, and memory per cached token. Not a pass/fail test (`--ignored`, prints its figures):
///
///     cargo test --test api redis::measure_redis_cost -- --ignored --nocapture
#[tokio::test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
async fn measure_redis_cost() {
    const USERS: usize = 100;
    const UPLOADS: usize = 1000;
    let emus = emulators(USERS).await;
    let redis = RedisServer::start().await;
    // Every limit on (the defaults), as in production.
    let vars = env(
        &redis,
        &[
            ("PHOTO_GATEWAY_CALLER_RATE_PER_MIN", "600"),
            ("PHOTO_GATEWAY_LOG_LEVEL", "warn"),
        ],
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&emus, &vars, None).await);
    }
    let tokens: Vec<String> = (1..=USERS)
        .map(|i| emus.caller_token(&CallerTokenSpec::for_user(&load_user(i))))
        .collect();
    let client = reqwest::Client::new();
    let mem_before: f64 = redis.info("memory").await["used_memory"].parse().unwrap();
    // Warm: every user's token into L2 (and each replica's L1).
    for (i, t) in tokens.iter().enumerate() {
        for g in &replicas {
            assert_eq!(put(&client, g, ME, t, i as u8).await.0, 200);
        }
    }
    let mem_after: f64 = redis.info("memory").await["used_memory"].parse().unwrap();
    let keys = redis.keys("pgw:tok:*").await;
    let mut c = redis.connection().await.unwrap();
    let usage: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&keys[0].0)
        .query_async(&mut c)
        .await
        .unwrap();
    let value_len = keys[0].1.as_ref().map_or(0, String::len);

    // Steady state: L1 hits, the limits in Redis.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
    let cpu0 = redis.cpu_time();
    let started = Instant::now();
    let mut done = 0;
    for chunk in (0..UPLOADS).collect::<Vec<_>>().chunks(16) {
        let round = futures_util::future::join_all(
            chunk
                .iter()
                .map(|&i| put(&client, &replicas[i % 3], ME, &tokens[i % USERS], i as u8)),
        )
        .await;
        done += round.iter().filter(|(s, _)| *s == 200).count();
    }
    let elapsed = started.elapsed();
    let cpu = redis.cpu_time() - cpu0;
    let stats = redis.info("stats").await;
    let commands = redis.info("commandstats").await;
    let calls: u64 = commands
        .values()
        .filter_map(|v| {
            v.split(',')
                .next()?
                .strip_prefix("calls=")?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let net_in: f64 = stats["total_net_input_bytes"].parse().unwrap();
    let net_out: f64 = stats["total_net_output_bytes"].parse().unwrap();
    println!(
        "uploads {done}/{UPLOADS} over 3 replicas in {elapsed:?} ({:.0}/s)",
        done as f64 / elapsed.as_secs_f64()
    );
    println!(
        "redis commands per upload: {:.2}",
        calls as f64 / done as f64
    );
    for (k, v) in &commands {
        println!("  {k}: {v}");
    }
    println!(
        "redis bytes per upload: in {:.0}, out {:.0}",
        net_in / done as f64,
        net_out / done as f64
    );
    println!(
        "redis-server CPU per upload: {:.1} µs ({cpu:?} total)",
        cpu.as_secs_f64() * 1e6 / done as f64
    );
    println!(
        "per cached token: MEMORY USAGE {usage} bytes, sealed value {value_len} bytes, used_memory growth {:.0} bytes/token",
        (mem_after - mem_before) / USERS as f64
    );
    assert_eq!(done, UPLOADS);
}

/// The mailbox's slot and byte window are one script (one round trip): with both limits on, the
/// window still holds across replicas, and a refused upload's slot is given back.
#[tokio::test]
async fn the_byte_window_holds_across_replicas_with_the_slot_in_the_same_script() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    // Any photo is over 1,000 bytes: the first goes alone (an empty window takes any size), the
    // next must wait 30 s, longer than the mailbox queue, so it is refused.
    let vars = env(
        &redis,
        &[
            ("PHOTO_GATEWAY_MAILBOX_BYTES_PER_30S", "1000"),
            ("PHOTO_GATEWAY_MAILBOX_CONCURRENCY", "1"),
        ],
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&emus, &vars, None).await);
    }
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    assert_eq!(put(&client, &replicas[0], ME, &token, 1).await.0, 200);
    for (i, g) in replicas.iter().enumerate().skip(1) {
        let (status, retry_after) = put(&client, g, ME, &token, i as u8).await;
        assert_eq!(status, 429, "replica {i}");
        let secs: u64 = retry_after.as_deref().unwrap().parse().unwrap();
        assert!((25..=30).contains(&secs), "replica {i}: Retry-After {secs}");
    }
    // Every slot was given back (a sorted set left with no lease is deleted by Redis), so the
    // mailbox takes an upload again at once as far as its concurrency goes: what refuses the next
    // one is still the window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = redis.connection().await.unwrap();
    for (key, _) in redis.keys("pgw:mbx:*").await {
        if key.ends_with(":slots") {
            let leases: u64 = redis::cmd("ZCARD")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(leases, 0, "{key}");
        }
    }
    let (status, retry_after) = put(&client, &replicas[0], ME, &token, 9).await;
    assert_eq!(status, 429);
    let secs: u64 = retry_after.as_deref().unwrap().parse().unwrap();
    assert!(secs >= 25, "the window, not the slot: Retry-After {secs}");
}

/// Replica B's write reaches replica A's read cache through the invalidation channel: A, which
/// would serve its cached copy for `READ_CACHE_MAX_AGE_SECS` (5 minutes), answers the new photo
/// as soon as B's message arrives, and asks Graph again to do so.
#[tokio::test]
async fn a_write_on_one_replica_drops_the_read_cache_entry_on_the_others() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    let vars = env(&redis, &[]);
    let a = replica(&emus, &vars, None).await;
    let b = replica(&emus, &vars, None).await;
    // Both subscribers listen before anything is published (pub/sub keeps nothing for later).
    let mut conn = redis.connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg("*invalidate")
            .query_async(&mut conn)
            .await
            .unwrap();
        let listening: Vec<(String, u64)> = match channels.first() {
            Some(c) => redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(c)
                .query_async(&mut conn)
                .await
                .unwrap(),
            None => Vec::new(),
        };
        if listening.first().is_some_and(|(_, n)| *n >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both replicas subscribe: {listening:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let store = format!("/users/{DEMO}");
    let first = jpeg(700, 1);
    assert!(emus.graph.set_photo(&store, &first, "image/jpeg"));
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    let get = |g: &GatewayProcess| {
        client
            .get(format!("{}{ME}", g.base()))
            .bearer_auth(&token)
            .send()
    };
    let graph_gets = || {
        emus.graph
            .counters()
            .by_method
            .get("GET")
            .copied()
            .unwrap_or(0)
    };
    for _ in 0..2 {
        let r = get(&a).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), first.as_slice());
    }
    assert_eq!(graph_gets(), 1, "A's second read came from its cache");

    let (status, _) = put(&client, &b, ME, &token, 9).await;
    assert_eq!(status, 200);
    let second = emus.graph.photo(&store).expect("B's photo is stored");
    assert_ne!(second.bytes.as_ref(), first.as_slice());

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&a).await.unwrap();
        assert_eq!(r.status(), 200);
        if r.bytes().await.unwrap() == second.bytes {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A still serves its cached copy after B's write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        graph_gets(),
        2,
        "A asked Graph again once its entry was dropped"
    );
}

/// A redis-server whose gateway user has `rule` applied (`ACL SETUSER`), and a connection to it.
async fn redis_whose_user_lacks(rule: &str) -> (RedisServer, redis::aio::MultiplexedConnection) {
    let redis = RedisServer::start().await;
    let mut conn = redis.connection().await.unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(REDIS_USER)
        .arg(rule)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    (redis, conn)
}

/// Reads the caller's photo through `g`: 200.
async fn read_my_photo(client: &reqwest::Client, g: &GatewayProcess, token: &str) {
    let r = client
        .get(format!("{}{ME}", g.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A free port for a replica's metrics listener, and its address.
fn metrics_listener() -> (String, String) {
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    (port, addr)
}

/// An ACL user without the invalidation channel (Redis 7 grants none unless told): the replica
/// cannot hear the others' changes, so it caches nothing and says so, and Redis stays up for
/// everything else.
#[tokio::test]
async fn a_replica_that_cannot_subscribe_caches_nothing_and_says_so() {
    let emus = emulators(0).await;
    let (redis, _conn) = redis_whose_user_lacks("resetchannels").await;
    let (port, addr) = metrics_listener();
    let vars = env(&redis, &[("PHOTO_GATEWAY_METRICS_ADDR", &addr)]);
    let a = replica(&emus, &vars, None).await;
    let client = reqwest::Client::new();
    // Its subscriber has tried (and failed) at least once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_if_any(
        &client,
        &port,
        "photo_gateway_redis_invalidation_subscribed",
    )
    .await
        != Some(0.0)
    {
        assert!(Instant::now() < deadline, "no subscription state exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Exported from the start, not only after a change of state.
    assert_eq!(
        metric_if_any(&client, &port, "photo_gateway_redis_up").await,
        Some(1.0)
    );

    let store = format!("/users/{DEMO}");
    assert!(emus.graph.set_photo(&store, &jpeg(700, 1), "image/jpeg"));
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    for _ in 0..3 {
        read_my_photo(&client, &a, &token).await;
    }
    let gets = emus.graph.counters().by_method.get("GET").copied();
    assert_eq!(gets, Some(3), "every read asked Graph: nothing was cached");
    // A write still counts its limits in Redis, and nothing made the tier look down.
    let (status, _) = put(&client, &a, ME, &token, 2).await;
    assert_eq!(status, 200);
    assert_eq!(metric(&client, &port, "photo_gateway_redis_up").await, 1.0);
    assert_eq!(
        metric(
            &client,
            &port,
            "photo_gateway_redis_invalidation_subscribed"
        )
        .await,
        0.0
    );
}

/// Redis refusing one command (here an ACL without `PUBLISH`, which the announce script runs when
/// another replica caches the photo) is that call's failure, not the tier down: the replica keeps
/// its shared limits and token cache.
#[tokio::test]
async fn a_refused_command_is_not_redis_down() {
    let emus = emulators(0).await;
    let (redis, mut conn) = redis_whose_user_lacks("-publish").await;
    let (port, addr) = metrics_listener();
    let a = replica(&emus, &env(&redis, &[]), None).await;
    let b = replica(
        &emus,
        &env(&redis, &[("PHOTO_GATEWAY_METRICS_ADDR", &addr)]),
        None,
    )
    .await;
    let client = reqwest::Client::new();
    assert!(
        emus.graph
            .set_photo(&format!("/users/{DEMO}"), &jpeg(700, 1), "image/jpeg")
    );
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    // A caches the photo (and marks it), once its subscriber listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let marks: Vec<String> = redis::cmd("KEYS")
            .arg("*cached:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !marks.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "A never marked what it read");
        read_my_photo(&client, &a, &token).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B's write announces it: the script's PUBLISH is refused.
    for seed in 2..5 {
        let (status, _) = put(&client, &b, ME, &token, seed).await;
        assert_eq!(status, 200);
    }
    let fallbacks = |what: &str| {
        let name = format!("photo_gateway_redis_fallbacks_total{{use=\"{what}\"}}");
        let (client, port) = (client.clone(), port.clone());
        async move { metric(&client, &port, &name).await }
    };
    assert!(fallbacks("invalidation").await >= 1.0);
    assert_eq!(metric(&client, &port, "photo_gateway_redis_up").await, 1.0);
    // The next uploads' mailbox slots were still taken in Redis, not by B alone.
    assert_eq!(fallbacks("mailbox").await, 0.0);
    assert_eq!(fallbacks("caller_rate").await, 0.0);
}

/// Messages on the invalidation channel heard by a subscriber of the test's own.
async fn listen_to_invalidations(
    redis: &RedisServer,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let client = redis::Client::open(redis.url_with_credentials()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe("pgw:invalidate").await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = ps.into_on_message();
        while let Some(m) = stream.next().await {
            if tx.send(m.get_payload::<String>().unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test]
async fn a_change_is_announced_only_where_a_replica_may_cache_it_and_frees_its_slot_in_the_same_call()
 {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    let vars = env(&redis, &[]);
    let a = replica(&emus, &vars, None).await;
    let b = replica(&emus, &vars, None).await;
    let mut heard = listen_to_invalidations(&redis).await;
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();

    // Nobody has read this photo through the gateway: an upload tells nobody.
    assert_eq!(put(&client, &b, ME, &token, 1).await.0, 200);
    // The mailbox's lease was released before the answer (in the announcing call).
    assert_eq!(
        redis.keys("*slots").await,
        Vec::new(),
        "no lease left once the upload has answered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        heard.try_recv().is_err(),
        "nothing to announce: no replica caches it"
    );

    // A reads it (and may cache it): B's next upload is announced, once.
    let r = client
        .get(format!("{}{ME}", a.base()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(put(&client, &b, ME, &token, 2).await.0, 200);
    let message = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("the change is announced")
        .unwrap();
    // It names the target by its id: the user's object id is not in it.
    let id = TargetId::of(TENANT_ID, &format!("/users/{DEMO_USER_ID}"));
    assert!(message.contains(&id.hex()), "{message}");
    assert!(!message.contains(DEMO_USER_ID), "{message}");
    // The mark went with the message: a third upload, with nothing read since, tells nobody.
    assert_eq!(put(&client, &b, ME, &token, 3).await.0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        heard.try_recv().is_err(),
        "announced once per read, not per upload"
    );
}

#[tokio::test]
async fn an_upload_costs_two_redis_round_trips_with_every_limit_on() {
    let emus = emulators(0).await;
    let redis = RedisServer::start().await;
    // The production defaults (mailbox concurrency and bytes on) and a caller rate.
    let vars = env(
        &redis,
        &[
            ("PHOTO_GATEWAY_CALLER_RATE_PER_MIN", "600"),
            ("PHOTO_GATEWAY_CALLER_BURST", "60"),
        ],
    );
    let g = replica(&emus, &vars, None).await;
    let token = emus.caller_token(&CallerTokenSpec::for_user(DEMO));
    let client = reqwest::Client::new();
    // Warm: the Graph token in L1, the scripts loaded.
    assert_eq!(put(&client, &g, ME, &token, 0).await.0, 200);

    let mut asked = redis.monitor().await;
    for i in 1..=5 {
        assert_eq!(put(&client, &g, ME, &token, i).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lines = Vec::new();
    while let Ok(line) = asked.try_recv() {
        lines.push(line);
    }
    let (by_scripts, by_clients): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.contains(" lua]"));
    // The subscriber's liveness PING is not the uploads'.
    let round_trips: Vec<&&String> = by_clients
        .iter()
        .filter(|l| !l.to_ascii_uppercase().contains("\"PING\""))
        .collect();
    assert_eq!(
        round_trips.len(),
        10,
        "one script for the rate, slot and bytes, one for the release: {round_trips:#?}"
    );
    assert!(
        round_trips.iter().all(|l| l.contains("\"EVALSHA\"")),
        "{round_trips:#?}"
    );
    let ran = |cmd: &str| {
        by_scripts
            .iter()
            .filter(|l| l.contains(&format!("\"{cmd}\"")))
            .count()
    };
    assert_eq!(ran("ZREM"), 5, "every lease released");
    assert_eq!(ran("ZADD"), 10, "a lease and a byte-window entry each");
    assert_eq!(ran("SET"), 5, "the caller's rate counted each time");
    assert_eq!(ran("PUBLISH"), 0, "nobody caches this photo");
}
