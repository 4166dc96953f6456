//! The Axum peers every benchmark compares against, built one way for the in-process benchmarks
//! (`benches/`) and the load server (`examples/load_server.rs`), which include this file with
//! `#[path]` (it needs their dev-dependencies, so it is not part of the library).
//!
//! Each router has `GET /login`, which stores `claims_json` in a new session and sets its
//! cookie, and `GET /`, which reads the claims back: 200 when it found them, else 401 (so a
//! sanity call, or a load generator's non-2xx count, proves the session was read).
#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar};

/// tower-sessions 0.15 with its `MemoryStore`.
pub(crate) fn tower_sessions_memory(claims_json: String) -> Router {
    Router::new()
        .route(
            "/",
            get(|session: tower_sessions::Session| async move {
                let claims: Option<serde_json::Value> = session.get("claims").await.unwrap();
                claims.map(|_| "ok").ok_or(StatusCode::UNAUTHORIZED)
            }),
        )
        .route(
            "/login",
            get(move |session: tower_sessions::Session| {
                let claims: serde_json::Value = serde_json::from_str(&claims_json).unwrap();
                async move {
                    session.insert("claims", claims).await.unwrap();
                    "ok"
                }
            }),
        )
        .layer(tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default()).with_secure(false))
}

/// tower-sessions 0.14 (what tower-sessions-redis-store is built on) with its Redis store on
/// `pool`.
pub(crate) fn tower_sessions_redis(
    pool: tower_sessions_redis_store::fred::prelude::Pool,
    claims_json: String,
) -> Router {
    Router::new()
        .route(
            "/",
            get(|session: tower_sessions014::Session| async move {
                let claims: Option<serde_json::Value> = session.get("claims").await.unwrap();
                claims.map(|_| "ok").ok_or(StatusCode::UNAUTHORIZED)
            }),
        )
        .route(
            "/login",
            get(move |session: tower_sessions014::Session| {
                let claims: serde_json::Value = serde_json::from_str(&claims_json).unwrap();
                async move {
                    session.insert("claims", claims).await.unwrap();
                    "ok"
                }
            }),
        )
        .layer(
            tower_sessions014::SessionManagerLayer::new(tower_sessions_redis_store::RedisStore::new(pool))
                .with_secure(false),
        )
}

/// axum-extra's `PrivateCookieJar` under `key`: the claims in the encrypted cookie itself,
/// decrypted and parsed on every request.
pub(crate) fn private_cookie_jar(key: Key, claims_json: String) -> Router {
    Router::new()
        .route(
            "/",
            get(|jar: PrivateCookieJar| async move {
                let claims = jar.get("claims").ok_or(StatusCode::UNAUTHORIZED)?;
                let claims: serde_json::Value = serde_json::from_str(claims.value()).unwrap();
                Ok::<_, StatusCode>(if claims.is_object() { "ok" } else { "?" })
            }),
        )
        .route(
            "/login",
            get(move |jar: PrivateCookieJar| {
                let claims = claims_json.clone();
                async move { (jar.add(Cookie::new("claims", claims)), "ok") }
            }),
        )
        .with_state(key)
}
