//! The cost of keeping tokens fresh, against auth-testkit over loopback, measured in one run:
//! - `fresh_lookup`: `Auth::session` for a cookie whose access token is fresh (the hot path: the
//!   refresh costs it one comparison);
//! - `token_endpoint`: a bare `grant_type=refresh_token` POST to the provider (the floor: the
//!   round trip and the provider's work, signing the new ID token included);
//! - `one_refresh`: `Auth::session` for a cookie whose access token has expired: the refresh
//!   grant, the new ID token verified and checked against the login's (§12.2), the new session
//!   sealed into its cookie;
//! - `fifty_concurrent`: 50 concurrent `Auth::session` for one expired cookie (one refresh shared
//!   by all 50).
//!
//! `cargo bench -p auth-bench --bench refresh`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::cell::RefCell;
use std::time::Duration;

use auth_core::{Method, RequestView};
use auth_testkit::{Fault, TestProvider};
use criterion::{Criterion, criterion_group, criterion_main};

fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // Fresh tokens: the default lifetime (an hour).
    let fresh = rt.block_on(auth_bench::fixture());
    // Refreshed tokens that expire as they arrive: every refresh leaves a session that is due
    // again. The login's token lives a second. The refresh token is not rotated, so the floor
    // can reuse one.
    let due = rt.block_on(auth_bench::fixture_on(TestProvider::builder().token_ttl(Duration::from_secs(1)), |b| b));
    due.provider.inject(Fault::RefreshExpiresIn(0));
    due.provider.inject(Fault::RefreshTokenNotRotated);
    std::thread::sleep(Duration::from_millis(1100));
    let session = |auth: &auth_core::Auth, cookie: &str| {
        let req = RequestView::new(Method::Get, "/me", None).with_header("cookie", cookie);
        let lookup = rt.block_on(auth.session(&req));
        assert!(lookup.session.is_some(), "a session");
        lookup
    };
    let first = session(&due.auth, &due.cookie);
    let refresh_token = first.session.as_ref().unwrap().tokens().refresh_token.clone().unwrap();
    let cookie = RefCell::new(cookie_of(&first.set_cookies[0]));
    let http = auth_testkit::reqwest::Client::new();
    let token_url = format!("{}/token", due.provider.issuer());

    let mut group = c.benchmark_group("refresh");
    group.bench_function("fresh_lookup", |b| b.iter(|| session(&fresh.auth, &fresh.cookie)));
    group.bench_function("token_endpoint", |b| {
        b.iter(|| {
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.secret())];
            let res = rt.block_on(
                http.post(&token_url)
                    .basic_auth(due.provider.client_id(), Some(due.provider.client_secret()))
                    .form(&form)
                    .send(),
            );
            assert_eq!(res.unwrap().status(), 200);
        });
    });
    group.bench_function("one_refresh", |b| {
        b.iter(|| {
            let before = due.provider.refresh_requests();
            let lookup = session(&due.auth, &cookie.borrow());
            assert_eq!(due.provider.refresh_requests(), before + 1, "one refresh per request");
            *cookie.borrow_mut() = cookie_of(&lookup.set_cookies[0]);
        });
    });
    group.bench_function("fifty_concurrent", |b| {
        b.iter(|| {
            let before = due.provider.refresh_requests();
            let current = cookie.borrow().clone();
            let req = RequestView::new(Method::Get, "/me", None).with_header("cookie", &current);
            let lookups = rt.block_on(futures_util::future::join_all((0..50).map(|_| due.auth.session(&req))));
            assert!(lookups.iter().all(|l| l.session.is_some()));
            assert_eq!(due.provider.refresh_requests(), before + 1, "one refresh for 50 requests");
            *cookie.borrow_mut() = cookie_of(&lookups[0].set_cookies[0]);
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = refresh
}
criterion_main!(benches);
