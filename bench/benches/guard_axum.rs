//! Per-request cost of the login guard on Axum, in-process (`oneshot`), against:
//! - the same route with no auth at all (the baseline);
//! - tower-sessions with its `MemoryStore`, reading the same claims;
//! - axum-extra's `PrivateCookieJar` holding the same claims (decrypt + parse).
//!
//! `cargo xtask bench` (or `cargo bench -p auth-bench`). Compare the medians in one run: the
//! machine's noise cancels in the ratios.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use auth_axum::{AuthLayer, AuthUser};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use axum_extra::extract::cookie::Key;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

#[path = "../shared/axum_peers.rs"]
mod peers;

fn request(cookie: &str) -> Request<Body> {
    Request::builder()
        .uri("/")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

async fn call(app: &Router, cookie: &str) {
    let res = app.clone().oneshot(request(cookie)).await.unwrap();
    assert_eq!(res.status(), 200);
}

fn guard(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fx = rt.block_on(auth_bench::fixture());
    eprintln!("claims: {} bytes of JSON; session cookie: {} bytes", fx.claims_json.len(), fx.cookie.len());

    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let ours: Router = Router::new()
        .route("/", get(|user: AuthUser| async move { if user.sub().is_empty() { "?" } else { "ok" } }))
        .layer(AuthLayer::new(fx.auth.clone()));

    // tower-sessions and axum-extra's private cookie jar, the same claims stored by a first
    // request to their `/login`.
    let sessions = peers::tower_sessions_memory(fx.claims_json.clone());
    let jar = peers::private_cookie_jar(Key::generate(), fx.claims_json.clone());
    let login = |app: &Router| {
        rt.block_on(async {
            let res = app.clone().oneshot(Request::builder().uri("/login").body(Body::empty()).unwrap()).await.unwrap();
            res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
        })
    };
    let sessions_cookie = login(&sessions);
    let jar_cookie = login(&jar);

    // Sanity: every variant answers 200 with its cookie.
    rt.block_on(async {
        call(&bare, &fx.cookie).await;
        call(&ours, &fx.cookie).await;
        call(&sessions, &sessions_cookie).await;
        call(&jar, &jar_cookie).await;
    });

    let mut group = c.benchmark_group("axum_guard");
    group.bench_function("bare_route", |b| b.to_async(&rt).iter(|| call(&bare, &fx.cookie)));
    group.bench_function("auth_user", |b| b.to_async(&rt).iter(|| call(&ours, &fx.cookie)));
    group.bench_function("tower_sessions_memory", |b| b.to_async(&rt).iter(|| call(&sessions, &sessions_cookie)));
    group.bench_function("private_cookie_jar", |b| b.to_async(&rt).iter(|| call(&jar, &jar_cookie)));
    group.finish();
}

criterion_group!(benches, guard);
criterion_main!(benches);
