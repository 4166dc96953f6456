//! A bearer-protected Axum route, in-process (`oneshot`), against the peers users would pick for
//! it, each next to a bare route of its own Axum in the same run:
//! - `bare` and `ours_fresh` / `ours_repeated`: Axum 0.8 with `AuthLayer` and `BearerUser`, a
//!   token seen for the first time (verified) or again (the cache);
//! - `keycloak`: axum-keycloak-auth 0.8 (Axum 0.8), discovery served at Keycloak's
//!   `/realms/{realm}` path, a Keycloak-shaped token;
//! - `bare07` and `jwt_authorizer`: jwt-authorizer 0.15, which is built on Axum 0.7.
//!
//! The peers verify every token again (neither caches); `ours_fresh` is the fair row against
//! them. All tokens are RS256, signed by the same auth-testkit key. Compare each row with its own
//! bare route. `cargo bench -p auth-bench --bench bearer_peers`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stderr)]

use std::cell::Cell;
use std::sync::Arc;

use auth_axum::{AuthLayer, BearerUser};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

fn request(token: &str) -> Request<Body> {
    Request::builder().uri("/").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
}

fn request07(token: &str) -> axum07::http::Request<axum07::body::Body> {
    axum07::http::Request::builder()
        .uri("/")
        .header("authorization", format!("Bearer {token}"))
        .body(axum07::body::Body::empty())
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn peers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // A bearer cache of 64 tokens, with 2,000 cycling below: a fresh token is never found in it.
    let fx = rt.block_on(auth_bench::fixture_with(|b| b.bearer_cache(64)));
    let op = &fx.provider;
    let audience = "http://127.0.0.1:3000";

    // Ours.
    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let ours: Router = Router::new()
        .route("/", get(|t: BearerUser| async move { if t.sub().is_some() { "ok" } else { "?" } }))
        .layer(AuthLayer::new(fx.auth.clone()));

    // axum-keycloak-auth: Keycloak's discovery path, pointing at the test provider's keys.
    let discovery = serde_json::json!({
        "issuer": op.issuer(),
        "authorization_endpoint": format!("{}/authorize", op.issuer()),
        "jwks_uri": format!("{}/jwks", op.issuer()),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let keycloak_base = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let app: Router = Router::new()
            .route("/realms/bench/.well-known/openid-configuration", get(move || async move { axum::Json(discovery) }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    });
    // It starts its discovery on the runtime it is made on.
    let instance = rt.block_on(async {
        Arc::new(axum_keycloak_auth::instance::KeycloakAuthInstance::new(
            axum_keycloak_auth::instance::KeycloakConfig::builder()
                .server(url::Url::parse(&keycloak_base).unwrap())
                .realm("bench".to_owned())
                .build(),
        ))
    });
    rt.block_on(async {
        for _ in 0..100 {
            if instance.is_operational().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("axum-keycloak-auth did not discover the keys");
    });
    let keycloak: Router = Router::new()
        .route(
            "/",
            get(|axum::Extension(t): axum::Extension<axum_keycloak_auth::decode::KeycloakToken<String>>| async move {
                if t.subject.is_empty() { "?" } else { "ok" }
            }),
        )
        .layer(
            axum_keycloak_auth::layer::KeycloakAuthLayer::<String>::builder()
                .instance(instance)
                .passthrough_mode(axum_keycloak_auth::PassthroughMode::Block)
                .expected_audiences(vec![audience.to_owned()])
                .build(),
        );
    let keycloak_token = |i: usize| {
        op.sign_jwt_with_type(
            &serde_json::json!({
                "iss": op.issuer(), "sub": "bench-user", "aud": [audience], "azp": op.client_id(), "typ": "Bearer",
                "jti": format!("kc-{i}"), "iat": now(), "exp": now() + 3600, "scope": "read",
                "preferred_username": "bench-user", "email": "bench@example.test", "email_verified": true,
            }),
            "JWT",
        )
    };

    // jwt-authorizer, on Axum 0.7.
    let jwks_url = format!("{}/jwks", op.issuer());
    let authorizer: jwt_authorizer::Authorizer = rt.block_on(async {
        jwt_authorizer::JwtAuthorizer::from_jwks_url(&jwks_url)
            .validation(jwt_authorizer::Validation::new().aud(&[audience]).iss(&[op.issuer()]))
            .build()
            .await
            .unwrap()
    });
    use jwt_authorizer::IntoLayer as _;
    let bare07: axum07::Router = axum07::Router::new().route("/", axum07::routing::get(|| async { "ok" }));
    let jwt_authorizer_app: axum07::Router = axum07::Router::new()
        .route(
            "/",
            axum07::routing::get(
                |jwt_authorizer::JwtClaims(c): jwt_authorizer::JwtClaims<jwt_authorizer::RegisteredClaims>| async move {
                    if c.sub.is_some() { "ok" } else { "?" }
                },
            ),
        )
        .layer(authorizer.into_layer());

    // Fresh RS256 access tokens, minted ahead (more than the bearer cache of 64 holds: cycling
    // through them never finds one in it).
    let minted: Vec<String> = (0..2_000).map(|_| op.mint_jwt_access_token(audience, "read")).collect();
    let keycloak_tokens: Vec<String> = (0..2_000).map(keycloak_token).collect();
    let repeated = minted[0].clone();
    let next = Cell::new(0usize);
    let fresh = || {
        let i = next.get();
        next.set((i + 1) % minted.len());
        minted[i].clone()
    };

    let call = |app: &Router, token: &str| {
        let res = rt.block_on(app.clone().oneshot(request(token))).unwrap();
        assert_eq!(res.status(), 200);
    };
    let call07 = |app: &axum07::Router, token: &str| {
        let res = rt.block_on(app.clone().oneshot(request07(token))).unwrap();
        assert_eq!(res.status(), 200);
    };
    call(&ours, &repeated);
    call(&keycloak, &keycloak_tokens[0]);
    call07(&jwt_authorizer_app, &repeated);

    let mut group = c.benchmark_group("bearer_peers");
    group.bench_function("bare", |b| b.iter(|| call(&bare, &repeated)));
    group.bench_function("ours_fresh", |b| b.iter_batched(fresh, |t| call(&ours, &t), BatchSize::SmallInput));
    group.bench_function("ours_repeated", |b| b.iter(|| call(&ours, &repeated)));
    let kc = Cell::new(0usize);
    group.bench_function("keycloak", |b| {
        b.iter_batched(
            || {
                let i = kc.get();
                kc.set((i + 1) % keycloak_tokens.len());
                keycloak_tokens[i].clone()
            },
            |t| call(&keycloak, &t),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("bare07", |b| b.iter(|| call07(&bare07, &repeated)));
    group.bench_function("jwt_authorizer", |b| {
        b.iter_batched(fresh, |t| call07(&jwt_authorizer_app, &t), BatchSize::SmallInput);
    });
    group.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
