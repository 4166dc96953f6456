//! Per-request cost of the login guard on Actix Web, in-process (`actix_web::test`), against the
//! same route with no auth (the baseline) and actix-session's `CookieSessionStore` (an encrypted
//! cookie, the peer an Actix user would otherwise pick) holding the same claims.
//!
//! `cargo xtask bench` (or `cargo bench -p auth-bench --bench guard_actix`).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, HttpResponse, test, web};
use auth_actix::{AuthMiddleware, AuthUser};
use criterion::{Criterion, criterion_group, criterion_main};

async fn call<S, B>(app: &S, cookie: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let req = test::TestRequest::get()
        .uri("/")
        .insert_header(("accept", "application/json"))
        .insert_header(("user-agent", "bench/1.0"))
        .insert_header(("cookie", cookie))
        .to_request();
    let res = app.call(req).await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn guarded(user: AuthUser) -> HttpResponse {
    HttpResponse::Ok().body(if user.sub().is_empty() { "?" } else { "ok" })
}

async fn sessioned(session: Session) -> HttpResponse {
    let claims: Option<serde_json::Value> = session.get("claims").unwrap();
    HttpResponse::Ok().body(if claims.is_some() { "ok" } else { "?" })
}

fn guard(c: &mut Criterion) {
    // Actix services are !Send: everything runs on one actix (current-thread) runtime.
    let rt = actix_web::rt::System::new();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fx = tokio.block_on(auth_bench::fixture());
    let auth = fx.auth.clone();
    let claims = fx.claims_json.clone();
    let key = Key::generate();
    let (bare, ours, sessions, sessions_cookie) = rt.block_on(async {
        let bare =
            test::init_service(App::new().route("/", web::get().to(|| async { HttpResponse::Ok().body("ok") }))).await;
        let ours = test::init_service(
            App::new().route("/", web::get().to(guarded)).configure(auth_actix::routes).wrap(AuthMiddleware::new(auth)),
        )
        .await;
        let sessions = test::init_service(
            App::new()
                .route("/", web::get().to(sessioned))
                .route(
                    "/login",
                    web::get().to(move |session: Session| {
                        let claims: serde_json::Value = serde_json::from_str(&claims).unwrap();
                        async move {
                            session.insert("claims", claims).unwrap();
                            HttpResponse::Ok().finish()
                        }
                    }),
                )
                .wrap(SessionMiddleware::builder(CookieSessionStore::default(), key).cookie_secure(false).build()),
        )
        .await;
        let res = sessions.call(test::TestRequest::get().uri("/login").to_request()).await.unwrap();
        let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
        (bare, ours, sessions, cookie)
    });
    rt.block_on(async {
        call(&bare, &fx.cookie).await;
        call(&ours, &fx.cookie).await;
        call(&sessions, &sessions_cookie).await;
    });
    let mut group = c.benchmark_group("actix_guard");
    group.bench_function("bare_route", |b| b.iter(|| rt.block_on(call(&bare, &fx.cookie))));
    group.bench_function("auth_user", |b| b.iter(|| rt.block_on(call(&ours, &fx.cookie))));
    group.bench_function("actix_session_cookie", |b| b.iter(|| rt.block_on(call(&sessions, &sessions_cookie))));
    group.finish();
    drop(fx);
}

criterion_group!(benches, guard);
criterion_main!(benches);
