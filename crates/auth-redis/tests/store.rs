//! RedisStore against a real `redis-server`: the store contract, two instances sharing one Redis,
//! Redis going down and coming back.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use auth_core::{Error, SessionStore};
use auth_redis::RedisStore;
use auth_redis::test_server::RedisServer;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn store(server: &RedisServer) -> RedisStore {
    let store = RedisStore::connect(&server.url()).await.unwrap();
    wait_subscribed(&store).await;
    store
}

async fn wait_subscribed(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.is_subscribed() {
        assert!(Instant::now() < deadline, "the store subscribes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_the_store_contract() {
    let Some(server) = RedisServer::start_or_skip() else { return };
    auth_core::store_contract::check(&store(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_ttl_and_the_prefix() {
    let Some(server) = RedisServer::start_or_skip() else { return };
    let store = RedisStore::builder(server.url()).prefix("app1:").connect().await.unwrap();
    wait_subscribed(&store).await;
    auth_core::store_contract::check(&store).await;
    store.save(&auth_core::store_contract::sample("alice")).await.unwrap();
    store.use_once("state:abc", now() + 60).await.unwrap();
    store.end_sessions("sub:https://op|alice", now(), now() + 60).await.unwrap();
    assert!(store.lock("refresh:alice", "me", Duration::from_secs(15)).await.unwrap());
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    for kind in [":session", ":once", ":ended", ":lock"] {
        assert!(keys.iter().any(|k| k.ends_with(kind)), "a {kind} key among {keys:?}");
    }
    for key in keys {
        assert!(key.starts_with("app1:"), "{key} has the prefix");
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{key} has a TTL ({ttl})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_lock_is_held_by_one_instance_until_released_or_expired() {
    let Some(server) = RedisServer::start_or_skip() else { return };
    let (a, b) = (store(&server).await, store(&server).await);
    let ttl = Duration::from_millis(300);
    assert!(a.lock("refresh:s1", "a", ttl).await.unwrap(), "A takes it");
    assert!(!b.lock("refresh:s1", "b", ttl).await.unwrap(), "B cannot while A holds it");
    assert!(b.lock("refresh:s2", "b", ttl).await.unwrap(), "another session's lock is another lock");
    b.unlock("refresh:s1", "b").await.unwrap();
    assert!(!b.lock("refresh:s1", "b", ttl).await.unwrap(), "only its owner releases a lock");
    a.unlock("refresh:s1", "a").await.unwrap();
    assert!(b.lock("refresh:s1", "b", ttl).await.unwrap(), "released: B takes it");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.lock("refresh:s1", "a", ttl).await.unwrap(), "a holder that never releases loses it after its TTL");
    b.unlock("refresh:s1", "b").await.unwrap();
    assert!(!b.lock("refresh:s1", "b", ttl).await.unwrap(), "B's late unlock did not release A's lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_session_is_read_back_at_once_by_the_instance_that_saved_it() {
    let Some(server) = RedisServer::start_or_skip() else { return };
    let store = store(&server).await;
    let session = auth_core::store_contract::sample("alice");
    let payload = store.save(&session).await.unwrap();
    assert_eq!(store.load(&payload).await.unwrap().as_ref(), Some(&session), "cached now");
    // A refresh saves the same id with new tokens: the cached copy must not answer for it.
    let mut value = serde_json::to_value(&session).unwrap();
    value["tokens"]["access_token"] = "refreshed".into();
    let refreshed: auth_core::Session = serde_json::from_value(value).unwrap();
    let other = self::store(&server).await;
    assert_eq!(other.load(&payload).await.unwrap().as_ref(), Some(&session), "B has the old one cached");
    store.save(&refreshed).await.unwrap();
    let read = store.load(&payload).await.unwrap().unwrap();
    assert_eq!(read.tokens().access_token.secret(), "refreshed", "no stale copy after a save");
    let current = other.load_current(&payload).await.unwrap().unwrap();
    assert_eq!(current.tokens().access_token.secret(), "refreshed", "load_current skips B's cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_reaches_the_other_fast() {
    let Some(server) = RedisServer::start_or_skip() else { return };
    let (a, b) = (store(&server).await, store(&server).await);
    let keys = vec!["sub:https://op|alice".to_string()];
    let created = now() - 5;
    // B has looked: its cache knows the session is not ended.
    assert!(!b.ended_since(&keys, created).await.unwrap());
    let started = Instant::now();
    a.end_sessions(&keys[0], now(), now() + 600).await.unwrap();
    loop {
        if b.ended_since(&keys, created).await.unwrap() {
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(500), "the logout reached B");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let latency = started.elapsed();
    eprintln!("logout on A reached B's cache in {latency:?}");
    assert!(latency < Duration::from_millis(100), "{latency:?}");
    // Single-use values are shared too.
    assert!(a.use_once("state:shared", now() + 60).await.unwrap());
    assert!(!b.use_once("state:shared", now() + 60).await.unwrap(), "used on A, refused on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_a_bounded_error_and_recovery_needs_no_restart() {
    let Some(mut server) = RedisServer::start_or_skip() else { return };
    let store = RedisStore::builder(server.url()).command_timeout(Duration::from_millis(300)).connect().await.unwrap();
    wait_subscribed(&store).await;
    server.stop();
    let started = Instant::now();
    let err = store.use_once("state:down", now() + 60).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(2), "bounded: {:?}", started.elapsed());
    // The subscription notices, and the cache is no longer trusted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.is_subscribed() {
        assert!(Instant::now() < deadline, "the dropped subscription is noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.use_once("state:back", now() + 60).await {
            Ok(fresh) => {
                assert!(fresh);
                break;
            }
            Err(_) => {
                assert!(Instant::now() < deadline, "the store reconnects by itself");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    wait_subscribed(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_does_not_stop_the_app() {
    let Some(mut server) = RedisServer::start_or_skip() else { return };
    server.stop();
    let store = RedisStore::builder(server.url()).command_timeout(Duration::from_millis(300)).connect().await.unwrap();
    assert!(store.use_once("state:x", now() + 60).await.is_err(), "503 while Redis is down");
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.use_once("state:y", now() + 60).await.is_err() {
        assert!(Instant::now() < deadline, "connects once Redis is up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
