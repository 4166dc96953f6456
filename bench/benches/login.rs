//! Complete logins against auth-testkit over loopback (discovery done once, at start), measured in
//! one run, and the share of one login spent in our code:
//! - `provider_only`: the same protocol made bare with an HTTP client, no checks: `GET /authorize`
//!   (auth-testkit answers at once with a code), the code grant `POST /token`, `GET /userinfo`
//!   (the floor: the round trips and the provider's work, signing the ID token included);
//! - `full_login`: `GET /auth/oidc/login` (state, nonce, PKCE, the sealed pending-login cookie),
//!   the provider's redirect, and the callback: state and `iss` checks, the code exchange, the ID
//!   token verified (JWKS cached) and checked, userinfo with its `sub` matched, the session sealed
//!   into its cookie.
//!
//! Logins per second are 1 / the median; our share is `full_login − provider_only`. Before the
//! group it also measures the JWKS single flight: 1,000 concurrent bearer tokens signed with a key
//! the app has not seen (rotated at the provider) make one JWKS fetch, printed and asserted.
//!
//! `cargo bench -p auth-bench --bench login`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use auth_core::{JwksConfig, Method, RequestView};
use auth_testkit::reqwest;
use criterion::{Criterion, criterion_group, criterion_main};

fn cookies(headers: &[(&'static str, String)]) -> String {
    let pairs: Vec<&str> =
        headers.iter().filter(|(n, _)| *n == "set-cookie").filter_map(|(_, v)| v.split(';').next()).collect();
    pairs.join("; ")
}

fn login(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // The JWKS may be fetched again at once (no cooldown), for the single-flight figure.
    let quick = JwksConfig { refetch_cooldown: Duration::ZERO, ..JwksConfig::default() };
    let fx = rt.block_on(auth_bench::fixture_with(|b| b.jwks(quick)));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (op, auth) = (&fx.provider, &fx.auth);

    single_flight(&rt, &fx.auth, op);

    // One whole login through auth-core; asserts it gave a session.
    let full_login = || async {
        let start = auth.handle(&RequestView::new(Method::Get, "/auth/oidc/login", None), b"").await;
        assert_eq!(start.status, 302);
        let pending = cookies(&start.headers);
        let res = http.get(start.header("location").unwrap()).send().await.unwrap();
        let callback = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        let req = RequestView::new(Method::Get, callback.path(), callback.query()).with_header("cookie", &pending);
        let done = auth.complete_login("oidc", &req, b"").await;
        assert!(done.outcome.is_ok(), "a login");
    };
    // The provider's share: the same three calls, bare.
    let verifier = "bench-verifier-0123456789-0123456789-0123456789";
    let challenge = {
        use base64::Engine as _;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    };
    let redirect_uri = auth.redirect_uri("oidc").unwrap().to_owned();
    let provider_only = || async {
        let authorize = http
            .get(format!("{}/authorize", op.issuer()))
            .query(&[
                ("response_type", "code"),
                ("client_id", op.client_id()),
                ("redirect_uri", &redirect_uri),
                ("scope", "openid email profile"),
                ("state", "bench-state"),
                ("nonce", "bench-nonce"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        let location = url::Url::parse(authorize.headers()["location"].to_str().unwrap()).unwrap();
        let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", verifier),
        ];
        let token = http
            .post(format!("{}/token", op.issuer()))
            .basic_auth(op.client_id(), Some(op.client_secret()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        let token: serde_json::Value = token.json().await.unwrap();
        let access = token["access_token"].as_str().unwrap();
        let userinfo = http.get(format!("{}/userinfo", op.issuer())).bearer_auth(access).send().await.unwrap();
        assert_eq!(userinfo.status(), 200);
    };
    rt.block_on(full_login());
    rt.block_on(provider_only());

    let mut group = c.benchmark_group("login");
    group.bench_function("provider_only", |b| b.to_async(&rt).iter(provider_only));
    group.bench_function("full_login", |b| b.to_async(&rt).iter(full_login));
    group.finish();
}

/// 1,000 concurrent bearer tokens signed with the provider's new key, unknown to the app: one
/// JWKS fetch serves them all.
fn single_flight(rt: &tokio::runtime::Runtime, auth: &auth_core::Auth, op: &auth_testkit::TestProvider) {
    let audience = auth.api_audience().to_owned();
    rt.block_on(async {
        let check = |auth: auth_core::Auth, token: String| async move {
            let header = format!("Bearer {token}");
            let req = RequestView::new(Method::Get, "/api", None).with_header("authorization", &header);
            auth.bearer(&req).await.is_ok()
        };
        assert!(check(auth.clone(), op.mint_jwt_access_token(&audience, "read")).await, "the current key");
        op.rotate_keys();
        let before = op.jwks_requests();
        let tokens: Vec<String> = (0..1000).map(|_| op.mint_jwt_access_token(&audience, "read")).collect();
        let started = Instant::now();
        let tasks: Vec<_> = tokens.into_iter().map(|t| tokio::spawn(check(auth.clone(), t))).collect();
        for task in tasks {
            assert!(task.await.unwrap(), "a token signed with the new key is accepted");
        }
        let fetches = op.jwks_requests() - before;
        let elapsed = started.elapsed();
        eprintln!(
            "JWKS single flight: 1000 concurrent tokens with an unknown kid -> {fetches} JWKS fetch(es), all \
             accepted, in {elapsed:?}"
        );
        assert_eq!(fetches, 1);
        // For bench/RESULTS.md, when `cargo xtask bench` runs this.
        if let Some(dir) = std::env::var_os("AUTH_BENCH_NOTES") {
            let note = format!(
                "JWKS single flight: 1,000 concurrent bearer tokens signed with a key the app had not seen \
                 (rotated at the provider) made {fetches} JWKS fetch, and were all accepted, in {:.1} ms.",
                elapsed.as_secs_f64() * 1e3
            );
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(std::path::Path::new(&dir).join("login.md"), note).unwrap();
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = login
}
criterion_main!(benches);
