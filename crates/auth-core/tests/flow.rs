//! The login flow against a real (in-process) provider: one test per rule of the "ID token",
//! "Login flow" and "Session" lists of the security rules.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use auth_core::{
    Auth, ClientAuth, Error, HttpConfig, JwksConfig, KeyRing, Method, Provider, RequestView, SessionKey, TokenError,
};
use auth_testkit::{ClientAuthMethod, Fault, SigningAlg, TestClient, TestProvider, TestUser};
use common::{Jar, builder_for, rig, rig_with};

fn token_error(err: &Error) -> Option<&TokenError> {
    match err {
        Error::Token { source, .. } => Some(source),
        _ => None,
    }
}

async fn refused_with(fault: Fault) -> Error {
    let mut r = rig().await;
    r.op.inject(fault);
    let done = r.login().await;
    assert!(r.session().await.is_none(), "no session after a refused login");
    done.outcome.expect_err("the login must be refused")
}

#[tokio::test]
async fn authorization_request_carries_pkce_state_nonce() {
    let mut r = rig().await;
    let url = url::Url::parse(&r.start_login("/me").await).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:3000/auth/oidc/callback");
    assert_eq!(q["scope"], "openid email profile");
    // Each login gets fresh values.
    let again = url::Url::parse(&r.start_login("/me").await).unwrap();
    let q2: std::collections::HashMap<_, _> = again.query_pairs().into_owned().collect();
    assert_ne!(q["state"], q2["state"]);
    assert_ne!(q["nonce"], q2["nonce"]);
    assert_ne!(q["code_challenge"], q2["code_challenge"]);
}

#[tokio::test]
async fn full_login_creates_a_session_with_claims_and_tokens() {
    let mut r = rig().await;
    r.op.set_user(TestUser::new("dora").with_claim("groups", serde_json::json!(["ops"])));
    let done = r.login().await;
    let logged_in = done.outcome.unwrap();
    assert_eq!(logged_in.next, "/me");
    let session = r.session().await.expect("session");
    assert_eq!(session.sub(), "dora");
    assert_eq!(session.claims().email(), Some("dora@example.test"));
    assert!(session.claims().contains("groups", "ops"));
    assert!(session.tokens().id_token.is_some());
    assert!(session.tokens().refresh_token.is_some());
    assert!(!format!("{session:?}").contains(session.tokens().access_token.secret()));
    assert_eq!(r.op.userinfo_requests(), 1);
}

#[tokio::test]
async fn every_id_token_rule_refuses() {
    let cases: Vec<(Fault, TokenError)> = vec![
        (Fault::IdTokenBadSignature, TokenError::BadSignature),
        (Fault::IdTokenAlgNone, TokenError::AlgorithmNotAllowed("none".into())),
        (Fault::IdTokenHs256, TokenError::AlgorithmNotAllowed("HS256".into())),
        (Fault::IdTokenWrongIssuer, TokenError::WrongIssuer),
        (Fault::IdTokenWrongAudience, TokenError::WrongAudience),
        (Fault::IdTokenExtraAudience, TokenError::UntrustedAudience),
        (Fault::IdTokenWrongAzp, TokenError::WrongAuthorizedParty),
        (Fault::IdTokenWrongNonce, TokenError::WrongNonce),
        (Fault::IdTokenMissingNonce, TokenError::WrongNonce),
        (Fault::IdTokenExpired, TokenError::Expired),
        (Fault::IdTokenIatInFuture, TokenError::IssuedInFuture),
        (Fault::IdTokenMissingClaim("sub"), TokenError::MissingClaim("sub")),
        (Fault::IdTokenMissingClaim("iss"), TokenError::MissingClaim("iss")),
        (Fault::IdTokenMissingClaim("aud"), TokenError::MissingClaim("aud")),
        (Fault::IdTokenMissingClaim("exp"), TokenError::MissingClaim("exp")),
        (Fault::IdTokenMissingClaim("iat"), TokenError::MissingClaim("iat")),
        (Fault::IdTokenUnknownKid, TokenError::UnknownKey(None)),
        (Fault::AtHashMismatch, TokenError::AccessTokenHashMismatch),
    ];
    for (fault, expected) in cases {
        let err = refused_with(fault.clone()).await;
        let got = token_error(&err).unwrap_or_else(|| panic!("{fault:?}: {err:?}"));
        match (&expected, got) {
            (TokenError::UnknownKey(_), TokenError::UnknownKey(_)) => {}
            _ => assert_eq!(got, &expected, "{fault:?}"),
        }
        assert_eq!(err.status(), 502, "{fault:?}");
    }
}

#[tokio::test]
async fn userinfo_subject_must_match() {
    let err = refused_with(Fault::UserinfoSubMismatch).await;
    assert!(matches!(err, Error::UserinfoSubjectMismatch), "{err:?}");
}

#[tokio::test]
async fn rfc9207_iss_is_checked() {
    assert!(matches!(refused_with(Fault::CallbackIssWrong).await, Error::IssuerMismatch));
    // Advertised by discovery, so a missing `iss` is refused too.
    let err = refused_with(Fault::CallbackIssMissing).await;
    assert!(matches!(err, Error::IssuerMismatch), "{err:?}");
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn missing_iss_is_fine_when_not_advertised() {
    let mut r = rig_with(TestProvider::builder().iss_parameter(false), |b| b).await;
    r.op.inject(Fault::CallbackIssMissing);
    r.login().await.outcome.unwrap();
}

#[tokio::test]
async fn access_denied_is_a_403_error() {
    let err = refused_with(Fault::DenyConsent).await;
    assert!(matches!(&err, Error::Authorization { code } if code == "access_denied"));
    assert_eq!(err.status(), 403);
}

#[tokio::test]
async fn token_endpoint_errors_are_502_and_hangs_time_out() {
    let err = refused_with(Fault::TokenEndpointStatus(500)).await;
    assert_eq!(err.status(), 502, "{err:?}");
    let mut r = rig_with(TestProvider::builder(), |b| {
        b.http(HttpConfig {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            ..HttpConfig::default()
        })
    })
    .await;
    r.op.inject(Fault::TokenEndpointHang);
    let started = std::time::Instant::now();
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert_eq!(err.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_code_is_exchanged_once() {
    let mut r = rig().await;
    let url = r.start_login("/").await;
    let callback = r.authorize(&url).await;
    let jar = r.jar.clone();
    r.complete(&callback).await.outcome.unwrap();
    // Replay with the very same cookies (a stolen pending-login cookie): the state is spent.
    r.jar = jar;
    let err = r.complete(&callback).await.outcome.unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    assert_eq!(r.op.token_requests(), 1, "the replay never reached the token endpoint");
}

#[tokio::test]
async fn a_login_is_bound_to_its_browser_and_provider() {
    let mut r = rig().await;
    let url = r.start_login("/").await;
    let callback = r.authorize(&url).await;
    // Another browser (no pending-login cookie).
    let mut other = Jar::default();
    std::mem::swap(&mut r.jar, &mut other);
    assert!(matches!(r.complete(&callback).await.outcome, Err(Error::InvalidState(_))));
    std::mem::swap(&mut r.jar, &mut other);
    // The same browser but another provider's callback route (mix-up).
    let cookie = r.jar.header();
    let req = RequestView::new(Method::Get, "/auth/other/callback", callback.query()).with_header("cookie", &cookie);
    assert!(matches!(r.auth.complete_login("other", &req, b"").await.outcome, Err(Error::InvalidState(_))));
}

#[tokio::test]
async fn pending_logins_expire() {
    let mut r = rig_with(TestProvider::builder(), |b| b.login_ttl(Duration::from_secs(1))).await;
    let url = r.start_login("/").await;
    let callback = r.authorize(&url).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = r.complete(&callback).await.outcome.unwrap_err();
    assert!(matches!(err, Error::InvalidState("the login has expired")), "{err:?}");
}

#[tokio::test]
async fn several_pending_logins_at_once_are_bounded() {
    let mut r = rig().await;
    let mut callbacks = Vec::new();
    for _ in 0..3 {
        let url = r.start_login("/").await;
        callbacks.push(r.authorize(&url).await);
    }
    // Finish in reverse order: each tab's login has its own cookie.
    for callback in callbacks.iter().rev() {
        r.complete(callback).await.outcome.unwrap();
    }
    for _ in 0..12 {
        r.start_login("/").await;
    }
    let pending = r.jar.0.keys().filter(|k| k.starts_with("auth_login.")).count();
    assert!(pending <= 5, "at most 5 pending logins are kept, found {pending}");
}

#[tokio::test]
async fn form_post_callback_is_accepted() {
    let mut r = rig().await;
    let url = r.start_login("/x").await;
    let callback = r.authorize(&url).await;
    let cookie = r.jar.header();
    let body = callback.query().unwrap().as_bytes().to_vec();
    let req = RequestView::new(Method::Post, "/auth/oidc/callback", None)
        .with_header("cookie", &cookie)
        .with_header("content-type", "application/x-www-form-urlencoded");
    let res = r.auth.handle(&req, &body).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.header("location"), Some("/x"));
}

#[tokio::test]
async fn key_rotation_at_the_provider_refetches_the_jwks_once() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    assert_eq!(r.op.jwks_requests(), 1);
    r.login().await.outcome.unwrap();
    assert_eq!(r.op.jwks_requests(), 1, "cached");
    r.op.rotate_keys();
    // Five callbacks (the most a browser keeps pending) signed with the new key, finished
    // concurrently: one fetch (single flight).
    let mut callbacks = Vec::new();
    for _ in 0..5 {
        let url = r.start_login("/").await;
        callbacks.push(r.authorize(&url).await);
    }
    let cookie = r.jar.header();
    let auth = r.auth.clone();
    let tasks: Vec<_> = callbacks
        .into_iter()
        .map(|cb| {
            let (auth, cookie) = (auth.clone(), cookie.clone());
            tokio::spawn(async move {
                let req = RequestView::new(Method::Get, cb.path(), cb.query()).with_header("cookie", &cookie);
                auth.complete_login("oidc", &req, b"").await.outcome.map(|_| ())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(r.op.jwks_requests(), 2, "exactly one refetch for the new kid");
}

#[tokio::test]
async fn an_id_token_with_an_unknown_kid_refetches_once_per_login() {
    // ID tokens come from the token endpoint, which nobody else can write into: each may refetch
    // (a provider rotating twice in a minute must not block logins), one fetch per login. Tokens
    // anyone can send obey the cooldown (tests/hardening.rs).
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    r.op.inject(Fault::IdTokenUnknownKid);
    for _ in 0..3 {
        assert!(r.login().await.outcome.is_err());
    }
    assert_eq!(r.op.jwks_requests(), 4, "one refetch per login, never more");
}

#[tokio::test]
async fn stale_keys_are_served_while_the_jwks_is_down() {
    let mut r = rig_with(TestProvider::builder(), |b| {
        b.jwks(JwksConfig { refetch_cooldown: Duration::ZERO, max_age: Duration::ZERO })
    })
    .await;
    r.login().await.outcome.unwrap();
    r.op.inject(Fault::JwksStatus(503));
    r.login().await.outcome.expect("old keys still verify");
    assert!(r.op.jwks_requests() >= 2, "a refresh was attempted");
}

#[tokio::test]
async fn a_token_without_kid_uses_the_only_key() {
    let mut r = rig().await;
    r.op.inject(Fault::IdTokenNoKid);
    r.login().await.outcome.unwrap();
}

#[tokio::test]
async fn es256_and_ps256_providers_work() {
    for alg in [SigningAlg::ES256, SigningAlg::PS256] {
        let mut r = rig_with(TestProvider::builder().signing_alg(alg), |b| b).await;
        r.login().await.outcome.unwrap();
        // The same key verifies their JWT access tokens.
        let token = format!("Bearer {}", r.op.mint_jwt_access_token("http://127.0.0.1:3000", "read"));
        let req = RequestView::new(Method::Get, "/api", None).with_header("authorization", &token);
        assert!(r.auth.bearer(&req).await.is_ok(), "{alg:?}");
    }
}

#[tokio::test]
async fn client_authentication_methods() {
    for (method, auth) in
        [(ClientAuthMethod::SecretPost, ClientAuth::SecretPost), (ClientAuthMethod::None, ClientAuth::None)]
    {
        let client = match method {
            ClientAuthMethod::None => TestClient::public("spa"),
            _ => TestClient::new("poster", "post-secret").with_auth_method(method),
        };
        let op = TestProvider::builder().client(client.clone()).start().await.unwrap();
        let mut provider = Provider::oidc("oidc", op.issuer(), &client.id).with_client_auth(auth);
        if let Some(secret) = &client.secret {
            provider = provider.with_client_secret(secret);
        }
        let auth = Auth::builder()
            .provider(provider)
            .session_keys(KeyRing::new(SessionKey::generate()))
            .build()
            .await
            .unwrap();
        let mut r = common::Rig { op, auth, jar: Jar::default(), http: common::http() };
        r.login().await.outcome.unwrap_or_else(|e| panic!("{method:?}: {e:?}"));
        // The wrong method is refused by the provider: a 502, not a login.
        let wrong = Provider::oidc("oidc", r.op.issuer(), &client.id)
            .with_client_secret("wrong")
            .with_client_auth(ClientAuth::SecretBasic);
        r.auth = Auth::builder().provider(wrong).build().await.unwrap();
        r.jar = Jar::default();
        assert!(r.login().await.outcome.is_err());
    }
}

#[tokio::test]
async fn discovery_issuer_must_match() {
    let op = TestProvider::start().await.unwrap();
    op.inject(Fault::DiscoveryIssuerMismatch);
    let err = builder_for(&op).build().await.unwrap_err();
    assert!(matches!(&err, Error::Discovery { reason, .. } if reason.contains("not the configured issuer")), "{err}");
}

#[tokio::test]
async fn plain_http_providers_are_refused_off_loopback() {
    let err = Auth::builder().provider(Provider::oidc("x", "http://id.example.com", "c")).build().await.unwrap_err();
    assert!(err.to_string().contains("must use https"), "{err}");
}

#[tokio::test]
async fn key_ring_rotation_keeps_sessions() {
    let old = SessionKey::generate();
    let mut r = rig_with(TestProvider::builder(), |b| b.session_keys(KeyRing::new(old.clone()))).await;
    r.login().await.outcome.unwrap();
    let new = SessionKey::generate();
    let rotated = builder_for(&r.op).session_keys(KeyRing::new(new.clone()).with_old_key(old)).build().await.unwrap();
    let cookie = r.jar.header();
    let req = RequestView::new(Method::Get, "/me", None).with_header("cookie", &cookie);
    let lookup = rotated.session(&req).await;
    let sub = lookup.session.as_ref().expect("the old key still opens").sub().to_owned();
    // The cookie is sealed again under the new key: once the old key is dropped, it still opens.
    let resealed = lookup.set_cookies.first().expect("a resealed cookie");
    assert!(resealed.starts_with("auth_session=") && !resealed.contains("Max-Age=0"), "{resealed}");
    let mut jar = Jar::default();
    jar.absorb([resealed]);
    let only_new = builder_for(&r.op).session_keys(KeyRing::new(new)).build().await.unwrap();
    let cookie = jar.header();
    let req_new = RequestView::new(Method::Get, "/me", None).with_header("cookie", &cookie);
    let lookup = only_new.session(&req_new).await;
    assert_eq!(lookup.session.map(|s| s.sub().to_owned()), Some(sub), "the resealed cookie needs only the new key");
    assert!(lookup.set_cookies.is_empty(), "a cookie under the newest key is not resealed again");
    let dropped = builder_for(&r.op).session_keys(KeyRing::new(SessionKey::generate())).build().await.unwrap();
    let lookup = dropped.session(&req).await;
    assert!(lookup.session.is_none(), "a key removed from the ring opens nothing");
    assert!(lookup.set_cookies[0].contains("Max-Age=0"), "and the cookie is cleared");
}

#[tokio::test]
async fn a_session_too_large_for_a_cookie_is_a_clear_error() {
    let mut r = rig().await;
    r.op.set_user(TestUser::new("big").with_claim("bio", noise(6000)));
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
    assert!(r.session().await.is_none());
}

#[tokio::test]
async fn server_side_store_keeps_large_sessions() {
    let mut r = rig_with(TestProvider::builder(), |b| b.store(auth_core::MemoryStore::new())).await;
    r.op.set_user(TestUser::new("big").with_claim("bio", noise(6000)));
    r.login().await.outcome.unwrap();
    assert_eq!(r.session().await.unwrap().sub(), "big");
}

#[tokio::test]
async fn max_age_checks_auth_time() {
    let mut r = rig().await;
    r.auth = Auth::builder().provider(provider_max_age(&r.op)).build().await.unwrap();
    r.op.inject(Fault::IdTokenAuthTimeStale);
    let err = r.login().await.outcome.unwrap_err();
    assert_eq!(token_error(&err), Some(&TokenError::AuthTooOld));
    assert_eq!(r.op.last_authorize_param("max_age").as_deref(), Some("300"));
}

fn provider_max_age(op: &TestProvider) -> Provider {
    common::provider_for(op).with_max_age(300)
}

/// Letters that do not compress (xorshift), like a long random claim.
fn noise(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[tokio::test]
async fn https_apps_get_secure_host_prefixed_cookies() {
    let op = TestProvider::start().await.unwrap();
    let auth = builder_for(&op).base_url("https://app.example.com").build().await.unwrap();
    let res = auth.handle(&RequestView::new(Method::Get, "/auth/oidc/login", None), b"").await;
    let cookie = res.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-auth_login."), "{cookie}");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Domain="), "__Host- cookies have no Domain");
    assert_eq!(auth.session_cookie_name(), "__Host-auth_session");
    let url = url::Url::parse(res.header("location").unwrap()).unwrap();
    assert!(url.query_pairs().any(|(k, v)| k == "redirect_uri" && v == "https://app.example.com/auth/oidc/callback"));
}
