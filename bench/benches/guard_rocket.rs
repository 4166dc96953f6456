//! Per-request cost of the login guard on Rocket, in-process (`local::asynchronous::Client`),
//! against the same route with no auth (the baseline) and Rocket's own private (encrypted) cookie
//! holding the same claims (decrypt + parse).
//!
//! `cargo xtask bench` (or `cargo bench -p auth-bench --bench guard_rocket`).
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use auth_rocket::{AuthFairing, AuthUser};
use criterion::{Criterion, criterion_group, criterion_main};
use rocket::http::{Cookie, CookieJar, Header, Status};
use rocket::local::asynchronous::Client;

#[rocket::get("/")]
fn bare() -> &'static str {
    "ok"
}

#[rocket::get("/")]
async fn guarded(user: AuthUser) -> &'static str {
    if user.sub().is_empty() { "?" } else { "ok" }
}

#[rocket::get("/")]
fn private(cookies: &CookieJar<'_>) -> &'static str {
    let claims: serde_json::Value = serde_json::from_str(cookies.get_private("claims").unwrap().value()).unwrap();
    if claims.is_object() { "ok" } else { "?" }
}

#[rocket::get("/login?<claims>")]
fn login(cookies: &CookieJar<'_>, claims: String) -> &'static str {
    cookies.add_private(Cookie::new("claims", claims));
    "ok"
}

fn figment() -> rocket::figment::Figment {
    rocket::Config::figment()
        .merge(("log_level", rocket::config::LogLevel::Off))
        .merge(("secret_key", "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="))
        .merge(("cli_colors", false))
}

/// Rocket's local client keeps cookies in its own jar rather than a `Cookie` header, so every
/// variant gets its cookie the same way: `name=value` (percent-decoded, as Rocket reads a `Cookie`
/// header) handed to the request's jar.
async fn call(client: &Client, cookie: &str) {
    let parsed = Cookie::parse_encoded(cookie.to_owned()).unwrap();
    let (name, value) = (parsed.name().to_owned(), parsed.value().to_owned());
    let res = client
        .get("/")
        .header(Header::new("accept", "application/json"))
        .header(Header::new("user-agent", "bench/1.0"))
        .cookie(Cookie::new(name, value))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
}

fn guard(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fx = rt.block_on(auth_bench::fixture());
    let (bare, ours, jar, jar_cookie) = rt.block_on(async {
        let bare = Client::untracked(rocket::custom(figment()).mount("/", rocket::routes![bare])).await.unwrap();
        let ours = Client::untracked(
            rocket::custom(figment())
                .mount("/", rocket::routes![guarded])
                .mount("/", auth_rocket::routes())
                .attach(AuthFairing::new(fx.auth.clone())),
        )
        .await
        .unwrap();
        let jar =
            Client::untracked(rocket::custom(figment()).mount("/", rocket::routes![private, login])).await.unwrap();
        let jar_cookie = {
            let res = jar.get(rocket::uri!(login(claims = fx.claims_json.clone()))).dispatch().await;
            res.headers().get_one("set-cookie").unwrap().split(';').next().unwrap().to_owned()
        };
        (bare, ours, jar, jar_cookie)
    });
    rt.block_on(async {
        call(&bare, &fx.cookie).await;
        call(&ours, &fx.cookie).await;
        call(&jar, &jar_cookie).await;
    });
    let mut group = c.benchmark_group("rocket_guard");
    group.bench_function("bare_route", |b| b.to_async(&rt).iter(|| call(&bare, &fx.cookie)));
    group.bench_function("auth_user", |b| b.to_async(&rt).iter(|| call(&ours, &fx.cookie)));
    group.bench_function("private_cookie", |b| b.to_async(&rt).iter(|| call(&jar, &jar_cookie)));
    group.finish();
}

criterion_group!(benches, guard);
criterion_main!(benches);
