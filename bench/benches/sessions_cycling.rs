//! Many users at once: the per-request cost of a session when 1, 1,000, 10,000 or 50,000
//! distinct sessions cycle, on Axum in-process (`oneshot`), against the bare route and the peers,
//! measured in one run:
//! - `ours/N`: `AuthUser` with the cookie store; each of the N cookies holds the same ~1 KiB of
//!   claims, sealed anew (what N logins would give). Past what the decoded-session cache holds
//!   (32 MiB), a request is a miss: decrypt, inflate, read `sub` (the handler reads no other claim,
//!   so the others stay unparsed).
//! - `ours_reading_claims/N`: the same, with a handler that reads `name`, so a miss parses every
//!   claim, as the peers' handlers do.
//! - `tower_sessions_memory/N`: tower-sessions with its `MemoryStore`, N sessions of the same claims.
//! - `private_cookie_jar/N`: axum-extra's `PrivateCookieJar`, N cookies of the same claims
//!   (decrypted and parsed on every request, whatever N).
//! - `invalid_cookie`: a cookie that does not open (same length, random), answered as no session;
//!   `valid_after_invalid`: a cached cookie's request right after ten invalid ones (an invalid
//!   cookie is never cached, so it cannot push a valid one out).
//!
//! `cargo bench -p auth-bench --bench sessions_cycling`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::cell::Cell;

use auth_axum::{AuthLayer, AuthUser};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum_extra::extract::cookie::Key;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

#[path = "../shared/axum_peers.rs"]
mod peers;

const USERS: [usize; 4] = [1, 1_000, 10_000, 50_000];

async fn status(app: &Router, cookie: &str) -> StatusCode {
    let req = Request::builder().uri("/").header("accept", "application/json").header("cookie", cookie);
    app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap().status()
}

async fn call(app: &Router, cookie: &str) {
    assert_eq!(status(app, cookie).await, StatusCode::OK);
}

fn set_cookie(res: &axum::response::Response) -> String {
    res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

fn cycling(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fx = rt.block_on(auth_bench::fixture());
    let claims_json = fx.claims_json.clone();
    // What the cookie store's encoding costs in bytes (browsers keep at most 4096 per cookie).
    eprintln!("session cookie: {} bytes (claims JSON {} bytes)", fx.cookie.len(), claims_json.len());

    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let ours: Router = Router::new()
        .route("/", get(|user: AuthUser| async move { if user.sub().is_empty() { "?" } else { "ok" } }))
        .layer(AuthLayer::new(fx.auth.clone()));
    // The same guard, and a handler that reads a claim other than `sub`: claims read back from a
    // cookie are parsed on first use, so this pays for parsing them all, as the peers do.
    let ours_claims: Router = Router::new()
        .route(
            "/",
            get(|user: AuthUser| async move { user.claims().name().map(|_| "ok").ok_or(StatusCode::NOT_FOUND) }),
        )
        .layer(AuthLayer::new(fx.auth.clone()));
    let maybe: Router = Router::new()
        .route("/", get(|user: Option<AuthUser>| async move { if user.is_some() { "ok" } else { "anonymous" } }))
        .layer(AuthLayer::new(fx.auth.clone()));

    let sessions = peers::tower_sessions_memory(claims_json.clone());
    let jar = peers::private_cookie_jar(Key::generate(), claims_json);

    let mut group = c.benchmark_group("sessions_cycling");
    group.bench_function("bare_route", |b| b.iter(|| rt.block_on(call(&bare, &fx.cookie))));
    for users in USERS {
        let (our_cookies, peer_cookies, jar_cookies) = rt.block_on(async {
            let ours_c = fx.distinct_cookies(users).await;
            let mut peer_c = Vec::with_capacity(users);
            let mut jar_c = Vec::with_capacity(users);
            for _ in 0..users {
                let login = Request::builder().uri("/login").body(Body::empty()).unwrap();
                peer_c.push(set_cookie(&sessions.clone().oneshot(login).await.unwrap()));
                let login = Request::builder().uri("/login").body(Body::empty()).unwrap();
                jar_c.push(set_cookie(&jar.clone().oneshot(login).await.unwrap()));
            }
            // Every cookie works, and has been seen once.
            for i in 0..users {
                call(&ours, &ours_c[i]).await;
                call(&ours_claims, &ours_c[i]).await;
                call(&sessions, &peer_c[i]).await;
                call(&jar, &jar_c[i]).await;
            }
            (ours_c, peer_c, jar_c)
        });
        let cycle = |name: &str, app: &Router, cookies: &[String], group: &mut criterion::BenchmarkGroup<'_, _>| {
            let next = Cell::new(0usize);
            group.bench_function(format!("{name}/{users}"), |b| {
                b.iter(|| {
                    let i = next.get();
                    next.set((i + 1) % cookies.len());
                    rt.block_on(call(app, &cookies[i]));
                });
            });
        };
        cycle("ours", &ours, &our_cookies, &mut group);
        cycle("ours_reading_claims", &ours_claims, &our_cookies, &mut group);
        cycle("tower_sessions_memory", &sessions, &peer_cookies, &mut group);
        cycle("private_cookie_jar", &jar, &jar_cookies, &mut group);
    }

    // Invalid cookies: as long as a valid one, random.
    let forged = |i: usize| {
        let (name, value) = fx.cookie.split_once('=').unwrap();
        let junk: String =
            value.chars().enumerate().map(|(j, _)| if (i + j).is_multiple_of(3) { 'A' } else { 'x' }).collect();
        format!("{name}={junk}")
    };
    rt.block_on(async {
        assert_eq!(status(&maybe, &forged(0)).await, StatusCode::OK);
        call(&ours, &fx.cookie).await;
    });
    let n = Cell::new(0usize);
    group.bench_function("invalid_cookie", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            rt.block_on(status(&maybe, &forged(n.get())))
        });
    });
    group.bench_function("valid_after_invalid", |b| {
        b.iter_batched(
            || {
                for i in 0..10 {
                    rt.block_on(status(&maybe, &forged(i)));
                }
            },
            |()| rt.block_on(call(&ours, &fx.cookie)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("valid_cached", |b| b.iter(|| rt.block_on(call(&ours, &fx.cookie))));
    group.finish();
}

criterion_group!(benches, cycling);
criterion_main!(benches);
