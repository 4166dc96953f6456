//! Resource-server mode in the core: key rotation, the token cache, floods of unknown keys, and
//! the session-or-token principal. (Every adapter's RFC 6750 answers: the scenario suite.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use auth_core::{Error, JwksConfig, Method, Principal, RequestView};
use auth_testkit::TestProvider;
use common::{rig, rig_with};

fn with_token(token: &str) -> String {
    format!("Bearer {token}")
}

async fn check(auth: &auth_core::Auth, token: &str) -> Result<std::sync::Arc<auth_core::Bearer>, Error> {
    let header = with_token(token);
    auth.bearer(&RequestView::new(Method::Get, "/api/whoami", None).with_header("authorization", &header)).await
}

#[tokio::test]
async fn a_rotation_refetches_the_keys_under_the_cooldown() {
    let quick = JwksConfig { refetch_cooldown: Duration::ZERO, ..JwksConfig::default() };
    let r = rig_with(TestProvider::builder(), |b| b.jwks(quick)).await;
    let base = "http://127.0.0.1:3000";
    check(&r.auth, &r.op.mint_jwt_access_token(base, "read")).await.unwrap();
    r.op.rotate_keys();
    let bearer = check(&r.auth, &r.op.mint_jwt_access_token(base, "read")).await.expect("the new key is fetched");
    assert_eq!(bearer.scopes(), ["read"]);
    assert_eq!(r.op.jwks_requests(), 2);

    // With the default 30 s cooldown, a new kid right after a fetch cannot be told from a forged
    // one yet: refused (401), and no fetch made for it.
    let r = rig().await;
    check(&r.auth, &r.op.mint_jwt_access_token(base, "read")).await.unwrap();
    r.op.rotate_keys();
    let err = check(&r.auth, &r.op.mint_jwt_access_token(base, "read")).await.unwrap_err();
    assert!(matches!(err, Error::BearerInvalid(_)), "{err:?}");
    assert_eq!(err.status(), 401);
    assert_eq!(r.op.jwks_requests(), 1);
}

#[tokio::test]
async fn introspection_accepts_only_access_tokens_for_this_api() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let session = r.session().await.unwrap();
    let refresh = session.tokens().refresh_token.clone().unwrap();
    let err = check(&r.auth, refresh.secret()).await.unwrap_err();
    assert!(matches!(err, Error::BearerInvalid(_)), "a refresh token is no access token: {err:?}");
    let own = session.tokens().access_token.clone();
    let err = check(&r.auth, own.secret()).await.unwrap_err();
    assert!(matches!(err, Error::BearerInvalid(_)), "the login client's token names no audience of this API: {err:?}");
    check(&r.auth, &r.op.mint_access_token_for("http://127.0.0.1:3000", "read")).await.expect("one for this API");
}

#[tokio::test]
async fn untyped_access_tokens_still_refuse_id_and_logout_tokens() {
    let op = TestProvider::start().await.unwrap();
    let auth = auth_core::Auth::builder()
        .provider(common::provider_for(&op).with_untyped_access_tokens())
        .session_keys(auth_core::KeyRing::new(auth_core::SessionKey::generate()))
        .build()
        .await
        .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |extra: serde_json::Value| {
        let mut c = serde_json::json!({"iss": op.issuer(), "sub": "alice", "aud": "http://127.0.0.1:3000",
            "client_id": op.client_id(), "iat": now, "exp": now + 300, "jti": format!("{extra}")});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    check(&auth, &op.sign_jwt_with_type(&claims(serde_json::json!({})), "JWT")).await.expect("typ JWT, opted in");
    for (what, token) in [
        ("an ID token without nonce", op.sign_jwt_with_type(&claims(serde_json::json!({"at_hash": "x"})), "JWT")),
        ("a logout token", op.sign_jwt_with_type(&claims(serde_json::json!({"events": {}})), "logout+jwt")),
        ("typed as a logout token", op.sign_jwt_with_type(&claims(serde_json::json!({"x": 1})), "logout+jwt")),
    ] {
        let err = check(&auth, &token).await.unwrap_err();
        assert!(matches!(err, Error::BearerInvalid(_)), "{what}: {err:?}");
    }
}

#[tokio::test]
async fn a_thousand_concurrent_unknown_kids_make_one_fetch() {
    let r = rig().await;
    let forged: Vec<String> = (0..1000)
        .map(|i| {
            use base64::Engine as _;
            let enc = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let header = enc(serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("forged-{i}")}));
            format!("{header}.{}.{}", enc(serde_json::json!({"sub": "x"})), enc(serde_json::json!("sig")))
        })
        .collect();
    let tasks: Vec<_> = forged
        .into_iter()
        .map(|token| {
            let auth = r.auth.clone();
            tokio::spawn(async move { check(&auth, &token).await.is_err() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap(), "a forged token is refused");
    }
    assert_eq!(r.op.jwks_requests(), 1, "one JWKS fetch for 1,000 unknown kids");
}

#[tokio::test]
async fn a_cached_token_is_not_served_past_its_exp() {
    let r =
        rig_with(TestProvider::builder().token_ttl(Duration::from_secs(1)), |b| b.clock_leeway(Duration::ZERO)).await;
    let token = r.op.mint_jwt_access_token("http://127.0.0.1:3000", "read");
    check(&r.auth, &token).await.unwrap();
    check(&r.auth, &token).await.unwrap();
    assert_eq!(r.op.jwks_requests(), 1, "verified once, then from the cache");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = check(&r.auth, &token).await.unwrap_err();
    assert!(matches!(err, Error::BearerInvalid(_)), "expired: {err:?}");
}

#[tokio::test]
async fn a_principal_is_the_bearer_token_or_the_session() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let session = r.session().await.unwrap();
    let cookie = r.jar.header();
    let req = RequestView::new(Method::Get, "/me", None).with_header("cookie", &cookie);
    let principal = r.auth.principal(&req, Some(&session), false).await.unwrap();
    assert!(matches!(principal, Principal::Session(_)));
    let token = with_token(&r.op.mint_jwt_access_token("http://127.0.0.1:3000", "read"));
    let req = req.with_header("authorization", &token);
    let principal = r.auth.principal(&req, Some(&session), false).await.unwrap();
    assert!(matches!(&principal, Principal::Bearer(b) if b.has_scope("read")), "the header wins");
    let bad = RequestView::new(Method::Get, "/me", None).with_header("authorization", "Bearer nope nope");
    assert_eq!(r.auth.principal(&bad, Some(&session), false).await.unwrap_err().status, 400);
    let none = RequestView::new(Method::Get, "/me", None).with_header("accept", "application/json");
    assert_eq!(r.auth.principal(&none, None, false).await.unwrap_err().status, 401);
    assert_eq!(r.auth.principal(&none, None, true).await.unwrap_err().status, 503, "the store was down");
}

#[tokio::test]
async fn a_flood_of_random_opaque_tokens_is_bounded_at_the_provider() {
    let r = rig().await;
    r.op.inject(auth_testkit::Fault::IntrospectionDelay(Duration::from_millis(1500)));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let auth = r.auth.clone();
            tokio::spawn(async move { check(&auth, &format!("random-opaque-token-{i:04}")).await.unwrap_err() })
        })
        .collect();
    let mut unavailable = 0;
    for task in tasks {
        match task.await.unwrap() {
            Error::BearerUnavailable => unavailable += 1,
            Error::BearerInvalid(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(r.op.introspect_requests(), 32, "at most 32 introspections in flight");
    assert_eq!(unavailable, 68, "the others get 503 after a bounded wait, not a queue");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn concurrent_requests_with_one_new_opaque_token_make_one_introspection() {
    let r = rig().await;
    let token = r.op.mint_access_token_for("http://127.0.0.1:3000", "read");
    r.op.inject(auth_testkit::Fault::IntrospectionDelay(Duration::from_millis(300)));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (auth, token) = (r.auth.clone(), token.clone());
            tokio::spawn(async move { check(&auth, &token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().has_scope("read"));
    }
    assert_eq!(r.op.introspect_requests(), 1, "one introspection for 50 requests");
    assert!(check(&r.auth, &token).await.is_ok(), "then from the cache");
    assert_eq!(r.op.introspect_requests(), 1);
}

/// A token bound to a key (`cnf`: DPoP's `jkt`, or a certificate) is refused as a plain bearer
/// token: without the proof of possession, which this API does not check, it must not count.
#[tokio::test]
async fn sender_constrained_tokens_are_refused_as_bearer_tokens() {
    let r = rig().await;
    let base = "http://127.0.0.1:3000";
    let claims = |cnf: serde_json::Value| {
        serde_json::json!({
            "iss": r.op.issuer(), "sub": "alice", "aud": base, "client_id": r.op.client_id(), "scope": "read",
            "iat": now(), "exp": now() + 300, "jti": "j1", "cnf": cnf,
        })
    };
    for cnf in [
        serde_json::json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        serde_json::json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
    ] {
        let token = r.op.sign_jwt_with_type(&claims(cnf.clone()), "at+jwt");
        let err = check(&r.auth, &token).await.unwrap_err();
        assert!(matches!(&err, Error::BearerInvalid(why) if why.contains("bound")), "{cnf}: {err:?}");
    }
    let mut unbound = claims(serde_json::Value::Null);
    unbound.as_object_mut().unwrap().remove("cnf");
    check(&r.auth, &r.op.sign_jwt_with_type(&unbound, "at+jwt")).await.expect("the same token without cnf");
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
