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
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

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

    // tower-sessions: the claims stored in the session by a first request.
    let store = tower_sessions::MemoryStore::default();
    let sessions: Router = Router::new()
        .route(
            "/",
            get(|session: tower_sessions::Session| async move {
                let claims: Option<serde_json::Value> = session.get("claims").await.unwrap();
                if claims.is_some() { "ok" } else { "?" }
            }),
        )
        .route(
            "/login",
            get(|session: tower_sessions::Session| async move {
                let claims: serde_json::Value = serde_json::from_str(&auth_bench_claims()).unwrap();
                session.insert("claims", claims).await.unwrap();
                "ok"
            }),
        )
        .layer(tower_sessions::SessionManagerLayer::new(store).with_secure(false));
    CLAIMS.set(fx.claims_json.clone()).unwrap();
    let sessions_cookie = rt.block_on(async {
        let res =
            sessions.clone().oneshot(Request::builder().uri("/login").body(Body::empty()).unwrap()).await.unwrap();
        res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    });

    // axum-extra's private cookie jar holding the same claims.
    let key = Key::generate();
    let jar_cookie = {
        // The encrypted cookie, as the jar itself writes it into a response.
        rt.block_on(async {
            let app: Router =
                Router::new()
                    .route(
                        "/",
                        get(|jar: PrivateCookieJar| async move {
                            (jar.add(Cookie::new("claims", auth_bench_claims())), "ok")
                        }),
                    )
                    .with_state(key.clone());
            let res = app.oneshot(Request::builder().uri("/").body(Body::empty()).unwrap()).await.unwrap();
            res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
        })
    };
    let jar: Router = Router::new()
        .route(
            "/",
            get(|jar: PrivateCookieJar| async move {
                let claims: serde_json::Value = serde_json::from_str(jar.get("claims").unwrap().value()).unwrap();
                if claims.is_object() { "ok" } else { "?" }
            }),
        )
        .with_state(key);

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

static CLAIMS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn auth_bench_claims() -> String {
    CLAIMS.get().cloned().unwrap_or_else(|| "{}".into())
}

criterion_group!(benches, guard);
criterion_main!(benches);
