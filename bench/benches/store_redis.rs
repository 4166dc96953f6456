//! Per-request cost of a session in the Redis store, on Axum in-process (`oneshot`), against the
//! bare route and the cookie store, measured in one run:
//! - `redis_cached`: a session this instance has seen (the hot path: no round trip);
//! - `redis_uncached`: the store's cache turned off, so every request asks Redis (`GET` of the
//!   session and `MGET` of its ended-session records: the cost of a cache miss);
//! - `tower_sessions_redis`: the peer, tower-sessions with `tower-sessions-redis-store` (one `GET`
//!   per request, through fred), holding the same claims.
//!
//! It starts its own `redis-server` on a free loopback port (skipped when none is installed).
//! `cargo bench -p auth-bench --bench store_redis`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use auth_axum::{AuthLayer, AuthUser};
use auth_redis::RedisStore;
use auth_redis::test_server::RedisServer;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

#[path = "../shared/axum_peers.rs"]
mod peers;

async fn call(app: &Router, cookie: &str) {
    let req = Request::builder().uri("/").header("accept", "application/json").header("cookie", cookie);
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
}

fn app(auth: auth_core::Auth) -> Router {
    Router::new()
        .route("/", get(|user: AuthUser| async move { if user.sub().is_empty() { "?" } else { "ok" } }))
        .layer(AuthLayer::new(auth))
}

fn stores(c: &mut Criterion) {
    let Some(redis) = RedisServer::start_or_skip() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let url = redis.url();
    let cookie_fx = rt.block_on(auth_bench::fixture());
    let cached_fx = rt.block_on(async {
        let store = RedisStore::connect(&url).await.unwrap();
        auth_bench::fixture_with(|b| b.store(store)).await
    });
    let uncached_fx = rt.block_on(async {
        let store = RedisStore::builder(&url).cache_sessions(0).connect().await.unwrap();
        auth_bench::fixture_with(|b| b.store(store)).await
    });
    // The peer: tower-sessions with its Redis store, the same claims stored by a first request.
    let claims_json = cookie_fx.claims_json.clone();
    let (peer, peer_cookie) = rt.block_on(async {
        use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
        let pool = Pool::new(Config::from_url(&url).unwrap(), None, None, None, 1).unwrap();
        pool.init().await.unwrap();
        let peer = peers::tower_sessions_redis(pool, claims_json);
        let res = peer.clone().oneshot(Request::builder().uri("/login").body(Body::empty()).unwrap()).await.unwrap();
        let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        (peer, cookie)
    });
    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let (cookie, cached, uncached) =
        (app(cookie_fx.auth.clone()), app(cached_fx.auth.clone()), app(uncached_fx.auth.clone()));
    rt.block_on(async {
        // Wait for the subscription, then warm the cache.
        for _ in 0..200 {
            call(&cached, &cached_fx.cookie).await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        call(&uncached, &uncached_fx.cookie).await;
        call(&peer, &peer_cookie).await;
    });
    let mut group = c.benchmark_group("session_store");
    group.bench_function("bare_route", |b| b.iter(|| rt.block_on(call(&bare, &cookie_fx.cookie))));
    group.bench_function("cookie_store", |b| b.iter(|| rt.block_on(call(&cookie, &cookie_fx.cookie))));
    group.bench_function("redis_cached", |b| b.iter(|| rt.block_on(call(&cached, &cached_fx.cookie))));
    group.bench_function("redis_uncached", |b| b.iter(|| rt.block_on(call(&uncached, &uncached_fx.cookie))));
    group.bench_function("tower_sessions_redis", |b| b.iter(|| rt.block_on(call(&peer, &peer_cookie))));
    group.finish();
    drop(redis);
}

criterion_group!(benches, stores);
criterion_main!(benches);
