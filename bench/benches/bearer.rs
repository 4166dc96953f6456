//! The cost of verifying a bearer access token, against its floor, measured in one run:
//! - `raw_rs256_verify`: aws-lc-rs verifying the token's RS256 signature with the provider's key
//!   given as its components (`RsaPublicKeyComponents::verify`, which builds the key each time:
//!   what a verifier without a key cache pays; no parsing of claims, no checks);
//! - `raw_parsed_verify`: the same with the key parsed once (`ParsedPublicKey::verify_sig`), the
//!   floor of a verifier that caches its keys, as auth-core does;
//! - `raw_parsed_verify_fresh`: the same over tokens cycling, each signature decoded from its
//!   token (what every fresh token needs at least);
//! - `fresh_token`: `Auth::bearer` on a token it has not seen (header, JWKS key lookup,
//!   signature, claims, audience; then cached); the `Auth` remembers 64 tokens and 2,000 cycle,
//!   so none is found in the cache (whose eviction keeps tokens seen twice);
//! - `repeated_token`: `Auth::bearer` on a token it has seen (the cache, keyed by its hash).
//!
//! `cargo bench -p auth-bench --bench bearer`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::cell::Cell;

use auth_core::{Method, RequestView};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn bearer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fx = rt.block_on(auth_bench::fixture_with(|b| b.bearer_cache(64)));
    let op = &fx.provider;
    let audience = "http://127.0.0.1:3000";
    let token = op.mint_jwt_access_token(audience, "read");
    let check = |token: &str| {
        let header = format!("Bearer {token}");
        let req = RequestView::new(Method::Get, "/api", None).with_header("authorization", &header);
        rt.block_on(fx.auth.bearer(&req)).unwrap();
    };
    check(&token);

    // The floor: the RS256 signature alone, with the key the JWKS publishes.
    let jwks = op.jwks();
    let kid = op.kid();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap().clone();
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let public = RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() };
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    public.verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature).unwrap();
    let parsed = public.to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256).unwrap();
    parsed.verify_sig(signed.as_bytes(), &signature).unwrap();

    // Fresh tokens, minted ahead (each differs by its jti).
    let minted: Vec<String> = (0..2_000).map(|_| op.mint_jwt_access_token(audience, "read")).collect();
    let next = Cell::new(0usize);

    let mut group = c.benchmark_group("bearer");
    group.bench_function("raw_rs256_verify", |b| {
        b.iter(|| public.verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature).unwrap());
    });
    group.bench_function("raw_parsed_verify", |b| {
        b.iter(|| parsed.verify_sig(signed.as_bytes(), &signature).unwrap());
    });
    let next_raw = Cell::new(0usize);
    group.bench_function("raw_parsed_verify_fresh", |b| {
        b.iter_batched(
            || {
                let i = next_raw.get();
                next_raw.set((i + 1) % minted.len());
                minted[i].clone()
            },
            |token| {
                let (signed, signature) = token.rsplit_once('.').unwrap();
                let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
                parsed.verify_sig(signed.as_bytes(), &signature).unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("fresh_token", |b| {
        b.iter_batched(
            || {
                let i = next.get();
                next.set((i + 1) % minted.len());
                minted[i].clone()
            },
            |token| check(&token),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("repeated_token", |b| b.iter(|| check(&token)));
    group.finish();
}

criterion_group!(benches, bearer);
criterion_main!(benches);
