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
