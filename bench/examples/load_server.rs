//! The server side of `cargo xtask bench --load`: serves one protected route `GET /` for one
//! framework and one guard, on a loopback port, with one worker thread (xtask pins the process to
//! one core), until it is killed.
//!
//! `load_server <framework> <target>`, where `framework` is `axum`, `actix` or `rocket` and
//! `target` one of `load_server --list`. Once it serves, it prints one line on stdout:
//! `READY <port> <path> <header name>: <header value>`: the path to load, and the header (a
//! session cookie, or a bearer token) that every request of the load generator carries. Every
//! target answers 200 only when it found the session (or token), so a load generator's non-2xx
//! count proves each request was served by the guard and not refused. The bare route is sent our
//! session cookie too: the same bytes on the wire, only the guard differs.
//!
//! The sessions hold the same claims everywhere (about 1 KiB: [`auth_bench::claims_user`]): ours
//! through a real login against auth-testkit, the peers' written by a first request to their own
//! `/login`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;

#[path = "../shared/axum_peers.rs"]
mod peers;

/// Every (framework, target) pair this server knows.
const TARGETS: &[(&str, &str)] = &[
    ("axum", "bare"),
    ("axum", "auth_cookie"),
    ("axum", "auth_redis"),
    ("axum", "auth_bearer"),
    ("axum", "tower_sessions_memory"),
    ("axum", "tower_sessions_redis"),
    ("axum", "private_cookie_jar"),
    ("axum", "axum_login"),
    ("actix", "bare"),
    ("actix", "auth_cookie"),
    ("actix", "auth_bearer"),
    ("actix", "actix_session_cookie"),
    ("rocket", "bare"),
    ("rocket", "auth_cookie"),
    ("rocket", "auth_bearer"),
    ("rocket", "private_cookie"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for (framework, target) in TARGETS {
            println!("{framework} {target}");
        }
        return;
    }
    let [framework, target] = args.as_slice() else {
        eprintln!("usage: load_server <axum|actix|rocket> <target> | --list");
        std::process::exit(2);
    };
    if !TARGETS.contains(&(framework.as_str(), target.as_str())) {
        eprintln!("unknown target {framework} {target}; see --list");
        std::process::exit(2);
    }
    match framework.as_str() {
        "axum" => axum_server::run(target),
        "actix" => actix_server::run(target),
        _ => rocket_server::run(target),
    }
}

/// Announces the server to xtask: the load generator asks for `path` with `header`.
fn ready(port: u16, path: &str, header: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {port} {path} {header}").unwrap();
    out.flush().unwrap();
}

/// A bearer access token (RFC 9068) the fixture's `Auth` accepts for its API.
fn bearer_header(fx: &auth_bench::Fixture) -> String {
    format!("authorization: Bearer {}", fx.provider.mint_jwt_access_token(fx.auth.api_audience(), "read"))
}

/// A GET of `url` on the server itself; the `name=value` of the cookie it sets.
async fn login_cookie(url: String) -> String {
    let res = auth_testkit::reqwest::get(url).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

mod axum_server {
    use auth_axum::{AuthLayer, AuthUser, BearerUser};
    use axum::Router;
    use axum::routing::get;
    use axum_extra::extract::cookie::Key;

    pub(crate) fn run(target: &str) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(serve(target));
    }

    fn guarded(auth: auth_core::Auth) -> Router {
        Router::new()
            .route("/", get(|user: AuthUser| async move { if user.sub().is_empty() { "?" } else { "ok" } }))
            .layer(AuthLayer::new(auth))
    }

    async fn serve(target: &str) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        // Kept alive for the server's lifetime: the provider, a redis-server.
        let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
        let (app, header): (Router, Option<String>) = match target {
            // The bare route gets the same request as ours, session cookie included: only the
            // guard differs.
            "bare" => {
                let fx = auth_bench::fixture().await;
                let header = format!("cookie: {}", fx.cookie);
                keep.push(Box::new(fx));
                (Router::new().route("/", get(|| async { "ok" })), Some(header))
            }
            "auth_cookie" => {
                let fx = auth_bench::fixture().await;
                let header = format!("cookie: {}", fx.cookie);
                let app = guarded(fx.auth.clone());
                keep.push(Box::new(fx));
                (app, Some(header))
            }
            "auth_redis" => {
                let redis = auth_redis::test_server::RedisServer::start().expect("redis-server starts");
                let store = auth_redis::RedisStore::connect(&redis.url()).await.unwrap();
                let fx = auth_bench::fixture_with(|b| b.store(store)).await;
                let header = format!("cookie: {}", fx.cookie);
                let app = guarded(fx.auth.clone());
                keep.push(Box::new(fx));
                keep.push(Box::new(redis));
                (app, Some(header))
            }
            "auth_bearer" => {
                let fx = auth_bench::fixture().await;
                let header = super::bearer_header(&fx);
                let app = Router::new()
                    .route("/", get(|t: BearerUser| async move { if t.sub().is_some() { "ok" } else { "?" } }))
                    .layer(AuthLayer::new(fx.auth.clone()));
                keep.push(Box::new(fx));
                (app, Some(header))
            }
            "tower_sessions_memory" => {
                (crate::peers::tower_sessions_memory(auth_bench::fixture().await.claims_json), None)
            }
            "tower_sessions_redis" => {
                use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
                let redis = auth_redis::test_server::RedisServer::start().expect("redis-server starts");
                let pool = Pool::new(Config::from_url(&redis.url()).unwrap(), None, None, None, 1).unwrap();
                pool.init().await.unwrap();
                keep.push(Box::new(redis));
                let claims = auth_bench::fixture().await.claims_json;
                (crate::peers::tower_sessions_redis(pool, claims), None)
            }
            "private_cookie_jar" => {
                (crate::peers::private_cookie_jar(Key::generate(), auth_bench::fixture().await.claims_json), None)
            }
            _ => (super::axum_login_app::app(&auth_bench::fixture().await.claims_json), None),
        };
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let header = match header {
            Some(header) => header,
            None => format!("cookie: {}", super::login_cookie(format!("{base}/login")).await),
        };
        super::ready(port, "/", &header);
        server.await.unwrap();
        drop(keep);
    }
}

/// axum-login 0.18 (on tower-sessions 0.14 and its `MemoryStore`): a user holding the claims,
/// logged in by `/login`, loaded from the backend on every request, as its docs show.
mod axum_login_app {
    use std::collections::HashMap;
    use std::sync::Arc;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};

    #[derive(Clone, Debug)]
    pub(crate) struct User {
        id: String,
        claims: serde_json::Value,
        /// What axum-login compares to detect a changed password: here a constant per user.
        hash: Vec<u8>,
    }

    impl AuthUser for User {
        type Id = String;
        fn id(&self) -> String {
            self.id.clone()
        }
        fn session_auth_hash(&self) -> &[u8] {
            &self.hash
        }
    }

    #[derive(Clone, Debug)]
    pub(crate) struct Backend {
        users: Arc<HashMap<String, User>>,
    }

    impl AuthnBackend for Backend {
        type User = User;
        type Credentials = String;
        type Error = std::convert::Infallible;

        async fn authenticate(&self, id: String) -> Result<Option<User>, Self::Error> {
            Ok(self.users.get(&id).cloned())
        }

        async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
            Ok(self.users.get(id).cloned())
        }
    }

    pub(crate) fn app(claims: &str) -> Router {
        let claims: serde_json::Value = serde_json::from_str(claims).unwrap();
        let user = User { id: "bench-user".into(), claims, hash: b"v1".to_vec() };
        let backend = Backend { users: Arc::new(HashMap::from([(user.id.clone(), user)])) };
        let sessions =
            tower_sessions014::SessionManagerLayer::new(tower_sessions014::MemoryStore::default()).with_secure(false);
        Router::new()
            .route(
                "/",
                get(|auth: AuthSession<Backend>| async move {
                    let user = auth.user.ok_or(StatusCode::UNAUTHORIZED)?;
                    Ok::<_, StatusCode>(if user.claims.is_object() { "ok" } else { "?" })
                }),
            )
            .route(
                "/login",
                get(|mut auth: AuthSession<Backend>| async move {
                    let user = auth.authenticate("bench-user".into()).await.unwrap().unwrap();
                    auth.login(&user).await.unwrap();
                    "ok"
                }),
            )
            .layer(AuthManagerLayerBuilder::new(backend, sessions).build())
    }
}

mod actix_server {
    use actix_session::storage::CookieSessionStore;
    use actix_session::{Session, SessionMiddleware};
    use actix_web::cookie::Key;
    use actix_web::{App, HttpResponse, HttpServer, web};
    use auth_actix::{AuthMiddleware, AuthUser, BearerUser};

    /// Binds an `HttpServer` of `factory`'s app with one worker on a free loopback port: its port,
    /// and the server to run. (A macro: each target's `App` is a type of its own.)
    macro_rules! bind {
        ($factory:expr) => {{
            let server = HttpServer::new($factory).workers(1).bind(("127.0.0.1", 0)).unwrap();
            (server.addrs()[0].port(), server.run())
        }};
    }

    pub(crate) fn run(target: &str) {
        // The fixture (and its provider) on a Tokio runtime of their own, idle after set-up; the
        // server on Actix's system with one worker.
        let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let fx = tokio.block_on(auth_bench::fixture());
        let claims = fx.claims_json.clone();
        let header = match target {
            "auth_bearer" => Some(super::bearer_header(&fx)),
            "auth_cookie" | "bare" => Some(format!("cookie: {}", fx.cookie)),
            _ => None,
        };
        let auth = fx.auth.clone();
        let target = target.to_owned();
        actix_web::rt::System::new().block_on(async move {
            // Every target is the app's route `/`, as on Axum and Rocket: the bare app, or the
            // same app wrapped in a guard (which DESIGN.md's examples wrap around the whole app).
            let (port, server) = match target.as_str() {
                "bare" => bind!(|| App::new().route("/", web::get().to(|| async { HttpResponse::Ok().body("ok") }))),
                "auth_cookie" => bind!(move || {
                    App::new()
                        .route("/", web::get().to(|u: AuthUser| async move { ok(!u.sub().is_empty()) }))
                        .wrap(AuthMiddleware::new(auth.clone()))
                }),
                "auth_bearer" => bind!(move || {
                    App::new()
                        .route("/", web::get().to(|t: BearerUser| async move { ok(t.sub().is_some()) }))
                        .wrap(AuthMiddleware::new(auth.clone()))
                }),
                _ => {
                    let key = Key::generate();
                    bind!(move || {
                        let claims = claims.clone();
                        App::new()
                            .route(
                                "/",
                                web::get().to(|s: Session| async move {
                                    ok(s.get::<serde_json::Value>("claims").unwrap().is_some())
                                }),
                            )
                            .route(
                                "/login",
                                web::get().to(move |s: Session| {
                                    let claims: serde_json::Value = serde_json::from_str(&claims).unwrap();
                                    async move {
                                        s.insert("claims", claims).unwrap();
                                        HttpResponse::Ok().finish()
                                    }
                                }),
                            )
                            .wrap(
                                SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                                    .cookie_secure(false)
                                    .build(),
                            )
                    })
                }
            };
            let handle = server.handle();
            let running = actix_web::rt::spawn(server);
            let header = match header {
                Some(header) => header,
                None => format!("cookie: {}", super::login_cookie(format!("http://127.0.0.1:{port}/login")).await),
            };
            super::ready(port, "/", &header);
            let _ = running.await;
            drop(handle);
        });
        drop(fx);
    }

    fn ok(found: bool) -> HttpResponse {
        if found { HttpResponse::Ok().body("ok") } else { HttpResponse::Unauthorized().finish() }
    }
}

mod rocket_server {
    use auth_rocket::{AuthFairing, AuthUser, BearerUser};
    use rocket::http::{Cookie, CookieJar, Status};

    #[rocket::get("/")]
    fn bare() -> &'static str {
        "ok"
    }

    #[rocket::get("/")]
    async fn guarded(user: AuthUser) -> &'static str {
        if user.sub().is_empty() { "?" } else { "ok" }
    }

    #[rocket::get("/")]
    async fn bearer(token: BearerUser) -> &'static str {
        if token.sub().is_some() { "ok" } else { "?" }
    }

    #[rocket::get("/")]
    fn private(cookies: &CookieJar<'_>) -> Result<&'static str, Status> {
        let claims = cookies.get_private("claims").ok_or(Status::Unauthorized)?;
        let claims: serde_json::Value = serde_json::from_str(claims.value()).unwrap();
        Ok(if claims.is_object() { "ok" } else { "?" })
    }

    #[rocket::get("/login")]
    fn login(cookies: &CookieJar<'_>, claims: &rocket::State<Claims>) -> &'static str {
        cookies.add_private(Cookie::new("claims", claims.0.clone()));
        "ok"
    }

    struct Claims(String);

    /// The fixture's `Auth` names `http://127.0.0.1:3000`, not this server's port.
    fn fairing(fx: &auth_bench::Fixture) -> AuthFairing {
        AuthFairing::new(fx.auth.clone()).allow_port_mismatch()
    }

    pub(crate) fn run(target: &str) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(serve(target));
    }

    async fn serve(target: &str) {
        let fx = auth_bench::fixture().await;
        // Rocket binds its own socket: take a free port and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let figment = rocket::Config::figment()
            .merge(("port", port))
            .merge(("address", "127.0.0.1"))
            .merge(("workers", 1))
            .merge(("log_level", rocket::config::LogLevel::Off))
            .merge(("secret_key", "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="))
            .merge(("cli_colors", false));
        let rocket = rocket::custom(figment).manage(Claims(fx.claims_json.clone()));
        let (rocket, header) = match target {
            "bare" => (rocket.mount("/", rocket::routes![bare]), Some(format!("cookie: {}", fx.cookie))),
            "auth_cookie" => (
                rocket.mount("/", rocket::routes![guarded]).mount("/", auth_rocket::routes()).attach(fairing(&fx)),
                Some(format!("cookie: {}", fx.cookie)),
            ),
            "auth_bearer" => (
                rocket.mount("/", rocket::routes![bearer]).mount("/", auth_rocket::routes()).attach(fairing(&fx)),
                Some(super::bearer_header(&fx)),
            ),
            _ => (rocket.mount("/", rocket::routes![private, login]), None),
        };
        let rocket = rocket.ignite().await.unwrap();
        let running = tokio::spawn(rocket.launch());
        // Wait until it answers.
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if auth_testkit::reqwest::get(format!("{base}/nothing")).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let header = match header {
            Some(header) => header,
            None => format!("cookie: {}", super::login_cookie(format!("{base}/login")).await),
        };
        super::ready(port, "/", &header);
        let _ = running.await;
        drop(fx);
    }
}
