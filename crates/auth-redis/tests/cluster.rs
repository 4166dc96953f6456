//! RedisStore against a real Redis Cluster (three primaries started by the test): the store
//! contract, sessions spread over the shards, a logout shared by two instances, a node down.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use auth_core::SessionStore;
use auth_redis::RedisStore;
use auth_redis::test_server::RedisCluster;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn connect(cluster: &RedisCluster) -> RedisStore {
    let store = RedisStore::builder(cluster.url()).command_timeout(Duration::from_millis(400)).connect().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.is_subscribed() {
        assert!(Instant::now() < deadline, "the store subscribes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store
}

async fn dbsize(url: &str) -> usize {
    let mut conn = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_the_store_contract_with_sessions_on_every_shard() {
    let Some(cluster) = RedisCluster::start_or_skip() else { return };
    let store = connect(&cluster).await;
    auth_core::store_contract::check(&store).await;
    for i in 0..30 {
        store.save(&auth_core::store_contract::sample(&format!("user{i}"))).await.unwrap();
    }
    for url in cluster.node_urls() {
        assert!(dbsize(&url).await > 0, "every shard holds some of 30 sessions ({url})");
    }
    // Ended-session records of one session's several names live on several shards: one read
    // still answers for all of them (the client splits the MGET per shard).
    let keys: Vec<String> = (0..12).map(|i| format!("sub:https://op|user{i}")).collect();
    let created = now() - 5;
    assert!(!store.ended_since(&keys, created).await.unwrap());
    store.end_sessions(&keys[11], now(), now() + 60).await.unwrap();
    let fresh = connect(&cluster).await;
    assert!(fresh.ended_since(&keys, created).await.unwrap(), "read back from the cluster, not a cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_logout_and_a_used_state_reach_the_other_instance() {
    let Some(cluster) = RedisCluster::start_or_skip() else { return };
    let (a, b) = (connect(&cluster).await, connect(&cluster).await);
    let session = auth_core::store_contract::sample("alice");
    let payload = a.save(&session).await.unwrap();
    assert_eq!(b.load(&payload).await.unwrap().as_ref(), Some(&session), "B reads A's session");
    let keys = vec!["sub:https://op|alice".to_string(), "sid:https://op|s1".to_string()];
    let created = now() - 5;
    assert!(!b.ended_since(&keys, created).await.unwrap(), "B has cached: not ended");
    let started = Instant::now();
    a.end_sessions(&keys[1], now(), now() + 600).await.unwrap();
    while !b.ended_since(&keys, created).await.unwrap() {
        assert!(started.elapsed() < Duration::from_millis(500), "the logout reached B");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!("on a cluster, a logout on A reached B's cache in {:?}", started.elapsed());
    assert!(a.use_once("state:shared", now() + 60).await.unwrap());
    assert!(!b.use_once("state:shared", now() + 60).await.unwrap(), "used on A, refused on B");
    b.delete(&session).await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(500);
    while a.load(&payload).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "B's delete reached A's cache");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_is_a_bounded_error_not_a_hang() {
    let Some(mut cluster) = RedisCluster::start_or_skip() else { return };
    let store = connect(&cluster).await;
    cluster.stop_node(1);
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..30 {
        let call = Instant::now();
        if let Err(err) = store.use_once(&format!("state:{i}"), now() + 60).await {
            assert_eq!(err.status(), 503, "{err:?}");
            failed += 1;
        }
        assert!(call.elapsed() < Duration::from_secs(2), "each call is bounded: {:?}", call.elapsed());
    }
    assert!(failed > 0, "the keys of the stopped node's slots fail");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_at_start_is_503_until_it_is_up_then_it_serves() {
    let Some(mut cluster) = RedisCluster::start_or_skip() else { return };
    for node in 0..3 {
        cluster.stop_node(node);
    }
    let store = RedisStore::builder(cluster.url())
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let err = store.use_once("state:early", now() + 60).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(200), "no wait on a handshake: {:?}", started.elapsed());
    for node in 0..3 {
        cluster.restart_node(node).unwrap();
    }
    cluster.wait_until_up().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.use_once("state:later", now() + 60).await.is_err() {
        assert!(Instant::now() < deadline, "the store connects once the cluster is up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_subscribed() {
        assert!(Instant::now() < deadline, "and subscribes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node whose slots hold `key`, by port.
async fn owner(cluster: &RedisCluster, key: &str) -> u16 {
    let mut conn =
        redis::Client::open(cluster.node_urls()[0].as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut conn).await.unwrap();
    let ranges: Vec<(i64, i64, (String, i64))> = {
        let raw: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await.unwrap();
        raw.into_iter()
            .map(|range| {
                let redis::Value::Array(parts) = range else { panic!("a slot range") };
                let int = |v: &redis::Value| redis::from_redis_value_ref::<i64>(v).unwrap();
                let redis::Value::Array(node) = &parts[2] else { panic!("a node") };
                (int(&parts[0]), int(&parts[1]), (String::new(), int(&node[1])))
            })
            .collect()
    };
    let (_, _, (_, port)) = ranges.into_iter().find(|(lo, hi, _)| (*lo..=*hi).contains(&slot)).unwrap();
    u16::try_from(port).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_node_owning_the_channel_down_a_logout_still_reaches_the_other_instance() {
    let Some(mut cluster) = RedisCluster::start_or_skip() else { return };
    // A prefix whose channel's slot lives on another node than the first (where both subscribe),
    // and a user whose ended-session record lives on neither.
    let first = cluster.ports()[0];
    let mut prefix = String::new();
    for i in 0.. {
        prefix = format!("app{i}:");
        if owner(&cluster, &format!("{prefix}events")).await != first {
            break;
        }
    }
    let relay = owner(&cluster, &format!("{prefix}events")).await;
    let mut user = String::new();
    for i in 0.. {
        user = format!("sub:https://op|user{i}");
        if owner(&cluster, &user).await != relay {
            break;
        }
    }
    let connect = || {
        RedisStore::builder(cluster.url()).prefix(prefix.clone()).command_timeout(Duration::from_millis(300)).connect()
    };
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(a.is_subscribed() && b.is_subscribed()) {
        assert!(Instant::now() < deadline, "both subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let keys = vec![user.clone()];
    let created = now() - 5;
    assert!(!b.ended_since(&keys, created).await.unwrap(), "B has cached: not ended");
    let index = cluster.ports().iter().position(|p| *p == relay).unwrap();
    cluster.stop_node(index);
    a.end_sessions(&user, now(), now() + 600).await.unwrap();
    let ended = Instant::now();
    // Either the event arrives, or B stops trusting its cache and reads the record: never the
    // stale "not ended" for long.
    while !matches!(b.ended_since(&keys, created).await, Ok(true)) {
        assert!(ended.elapsed() < Duration::from_secs(3), "the logout reached B");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("with the channel's node down, a logout on A reached B in {:?}", ended.elapsed());
}
