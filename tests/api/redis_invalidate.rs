//! The cross-replica invalidation channel (`shared/invalidate.rs`) against a real redis-server:
//! two handles, each with its own connection and origin id as two replicas have, show that one's
//! change reaches the other's callback (and not its own), that junk on the channel is ignored, and
//! that a subscription lost to a redis-server restart comes back with a flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use photo_gateway::config::RedisConfig;
use photo_gateway::read_cache::TargetId;
use photo_gateway::shared::Redis;
use photo_gateway::shared::invalidate::{Invalidation, PING_EVERY};
use secrecy::{SecretSlice, SecretString};
use tokio::sync::mpsc;

use crate::support::{REDIS_USER, RedisServer};

fn config(server: &RedisServer) -> RedisConfig {
    let password = std::fs::read_to_string(server.path("password")).unwrap();
    RedisConfig {
        url: url::Url::parse(&server.url()).unwrap(),
        ca_bundle_file: None,
        username: Some(REDIS_USER.into()),
        password: Some(SecretString::from(password.trim().to_owned())),
        // Generous on a loaded test machine; the default is 50 ms.
        timeout: Duration::from_millis(500),
        expected_replicas: 2,
        key_prefix: "pgw-test:".into(),
        token_keys: Vec::new(),
        hmac_key: SecretSlice::from(vec![7u8; 32]),
        lease: Duration::from_secs(3),
    }
}

/// A replica's side of the channel: its handle, what its callback heard, how often it flushed.
struct Replica {
    channel: Invalidation,
    heard: mpsc::UnboundedReceiver<TargetId>,
    flushes: Arc<AtomicUsize>,
    _subscriber: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn replica(server: &RedisServer) -> Replica {
    let channel = Invalidation::new(Arc::new(Redis::new(&config(server)).unwrap()));
    let (tx, heard) = mpsc::unbounded_channel();
    let flushes = Arc::new(AtomicUsize::new(0));
    let f = flushes.clone();
    let subscriber = channel.spawn_subscriber(
        move |id| {
            let _ = tx.send(id);
        },
        move || {
            f.fetch_add(1, Ordering::SeqCst);
        },
    );
    Replica {
        channel,
        heard,
        flushes,
        _subscriber: AbortOnDrop(subscriber),
    }
}

/// Waits until `n` connections subscribe to `channel` (`PUBSUB NUMSUB`).
async fn subscribers(server: &RedisServer, channel: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = server.connection().await {
            // [channel, count] as a map.
            let counts: std::collections::HashMap<String, u64> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if counts.get(channel).is_some_and(|k| *k >= n) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{n} subscribers to {channel} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next(r: &mut Replica) -> TargetId {
    tokio::time::timeout(Duration::from_secs(10), r.heard.recv())
        .await
        .expect("no invalidation heard within 10 s")
        .expect("subscriber ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_reaches_the_other_and_a_lost_subscription_flushes() {
    let mut server = RedisServer::start().await;
    let mut a = replica(&server);
    let mut b = replica(&server);
    assert_ne!(a.channel.origin(), b.channel.origin());
    assert_eq!(a.channel.channel(), "pgw-test:invalidate");
    subscribers(&server, a.channel.channel(), 2).await;

    // A's write reaches B's callback, and only B's: A's own cache was invalidated where it wrote.
    assert!(a.channel.publish("tenant-1", "users/u1").await);
    assert_eq!(next(&mut b).await, TargetId::of("tenant-1", "users/u1"));
    assert!(b.channel.publish("tenant-1", "teams/t9").await);
    assert_eq!(next(&mut a).await, TargetId::of("tenant-1", "teams/t9"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.heard.try_recv().is_err(), "A heard its own message");
    assert!(b.heard.try_recv().is_err(), "B heard its own message");

    // Junk on the channel (someone else's publisher, an oversized forgery, an id that is no
    // hash) calls nothing; the next real message still arrives, in order.
    let mut c = server.connection().await.unwrap();
    for junk in [
        "not json".to_owned(),
        r#"{"o":"x","t":"t"}"#.to_owned(),
        format!(r#"{{"o":"x","t":"t","k":"{}"}}"#, "k".repeat(2048)),
        r#"{"o":"x","h":"users/u1"}"#.to_owned(),
    ] {
        let _: u64 = redis::cmd("PUBLISH")
            .arg(a.channel.channel())
            .arg(junk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    assert!(a.channel.publish("tenant-2", "users/u2").await);
    assert_eq!(next(&mut b).await, TargetId::of("tenant-2", "users/u2"));
    // What crosses Redis names neither the tenant nor the target, however long the name.
    let long = format!("/users/{}@contoso.example", "alice".repeat(400));
    let raw = redis::Client::open(server.url_with_credentials()).unwrap();
    let mut watcher = raw.get_async_pubsub().await.unwrap();
    watcher.subscribe(a.channel.channel()).await.unwrap();
    assert!(a.channel.publish("Tenant-7", &long).await);
    assert_eq!(next(&mut b).await, TargetId::of("tenant-7", &long));
    let seen = tokio::time::timeout(Duration::from_secs(10), watcher.on_message().next())
        .await
        .expect("the watcher saw the message")
        .expect("subscribed");
    let payload: String = seen.get_payload().unwrap();
    assert!(
        !payload.contains("enant") && !payload.contains("alice") && payload.len() < 100,
        "{payload}"
    );
    drop(watcher);
    // Past a liveness PING (in subscribed mode), the subscription is still the same one: no
    // flush, and messages still arrive.
    tokio::time::sleep(PING_EVERY + Duration::from_secs(1)).await;
    assert!(a.channel.publish("tenant-2", "users/u5").await);
    assert_eq!(next(&mut b).await, TargetId::of("tenant-2", "users/u5"));
    assert_eq!(
        a.flushes.load(Ordering::SeqCst),
        0,
        "no flush while subscribed"
    );
    assert_eq!(
        b.flushes.load(Ordering::SeqCst),
        0,
        "no flush while subscribed"
    );

    // redis-server dies: publishing fails quietly (false, no error, no panic)...
    server.kill();
    assert!(!a.channel.publish("tenant-3", "users/u3").await);
    // ...and when it is back, both subscribers flush (changes made meanwhile were not heard)...
    server.restart().await;
    subscribers(&server, a.channel.channel(), 2).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.flushes.load(Ordering::SeqCst) == 0 || b.flushes.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no flush after resubscribing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.flushes.load(Ordering::SeqCst), 1);
    assert_eq!(b.flushes.load(Ordering::SeqCst), 1);
    // ...and hear changes again (the publisher's handle probes a down Redis once a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.channel.publish("tenant-4", "users/u4").await {
        assert!(Instant::now() < deadline, "publishing never resumed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(next(&mut b).await, TargetId::of("tenant-4", "users/u4"));
    assert!(
        b.heard.try_recv().is_err(),
        "the message published while Redis was down must not appear later"
    );
}
