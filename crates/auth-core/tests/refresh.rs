//! Tokens that stay fresh: automatic refresh on the request that finds them due, one refresh per
//! session at a time, OIDC Core §12.2 on refreshed ID tokens, and the failures (refused grant,
//! provider down). (The same on Axum, Actix and Rocket, and across two instances sharing Redis:
//! the scenario suite.)
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_core::{Error, MemoryStore, Method, Provider, RequestView, Session, SessionLookup, User};
use auth_testkit::{Fault, TestProvider};
use common::{Rig, rig_with};

/// A rig whose provider issues access tokens that live `ttl`.
async fn short_tokens(ttl: u64) -> Rig {
    rig_with(TestProvider::builder().token_ttl(Duration::from_secs(ttl)), |b| b).await
}

/// Reads the session of a request carrying `cookie`.
async fn lookup(r: &Rig, cookie: &str) -> SessionLookup {
    let req = RequestView::new(Method::Get, "/me", None).with_header("cookie", cookie);
    r.auth.session(&req).await
}

async fn logged_in(r: &mut Rig) -> Arc<Session> {
    r.login().await.outcome.unwrap();
    r.session().await.expect("a session")
}

fn access_token(s: &Session) -> String {
    s.tokens().access_token.secret().to_owned()
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_before_the_request_is_answered() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    let old_refresh = before.tokens().refresh_token.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let cookie = r.jar.header();
    let found = lookup(&r, &cookie).await;
    let after = found.session.expect("still logged in");
    assert_ne!(access_token(&after), access_token(&before), "the handler sees a new access token");
    assert_eq!(r.op.refresh_requests(), 1);
    assert_ne!(after.tokens().refresh_token.as_ref().unwrap(), &old_refresh, "the rotated refresh token is kept");
    assert!(r.op.is_revoked(old_refresh.secret()), "the provider rotated it");
    assert_eq!(
        (after.id(), after.created_at(), after.expires_at()),
        (before.id(), before.created_at(), before.expires_at())
    );
    assert_eq!(after.sub(), before.sub());
    assert_eq!(found.set_cookies.len(), 1, "the response carries the new session cookie");

    // The browser's next request carries the new cookie: nothing more to do.
    r.jar.absorb(&found.set_cookies);
    let next = lookup(&r, &r.jar.header()).await;
    assert_eq!(access_token(&next.session.unwrap()), access_token(&after));
    assert!(next.set_cookies.is_empty());
    assert_eq!(r.op.refresh_requests(), 1);
}

#[tokio::test]
async fn the_leeway_is_capped_at_a_quarter_of_the_token_lifetime() {
    // A 4-second token with the default 60-second leeway: due in its last second, not at once.
    let mut r = short_tokens(4).await;
    let before = logged_in(&mut r).await;
    let cookie = r.jar.header();
    for _ in 0..10 {
        assert_eq!(access_token(&lookup(&r, &cookie).await.session.unwrap()), access_token(&before));
    }
    assert_eq!(r.op.refresh_requests(), 0, "a token shorter than the leeway is not refreshed on every request");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let after = lookup(&r, &cookie).await.session.unwrap();
    assert_ne!(access_token(&after), access_token(&before), "refreshed before it expired");
    assert_eq!(r.op.refresh_requests(), 1);
}

#[tokio::test]
async fn fifty_concurrent_requests_make_one_refresh_and_all_succeed() {
    for store in ["cookie", "memory"] {
        let op = TestProvider::builder().token_ttl(Duration::from_secs(2));
        let mut r = rig_with(op, |b| if store == "memory" { b.store(MemoryStore::new()) } else { b }).await;
        let before = logged_in(&mut r).await;
        // A slow token endpoint, so that the 50 requests overlap the refresh.
        r.op.inject(Fault::TokenEndpointDelay(Duration::from_millis(300)));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let cookie = r.jar.header();
        let lookups = futures_util::future::join_all((0..50).map(|_| lookup(&r, &cookie))).await;
        let tokens: std::collections::HashSet<String> =
            lookups.iter().map(|l| access_token(l.session.as_ref().expect("nobody is logged out"))).collect();
        assert_eq!(tokens.len(), 1, "{store}: every request got the same new token");
        assert!(!tokens.contains(&access_token(&before)), "{store}");
        assert_eq!(r.op.refresh_requests(), 1, "{store}: one refresh grant for 50 requests");

        // A request that still carries the old cookie after the refresh uses its outcome: the
        // rotated refresh token is not spent again, and nobody is logged out.
        let late = lookup(&r, &cookie).await;
        assert!(tokens.contains(&access_token(&late.session.unwrap())), "{store}");
        assert_eq!(r.op.refresh_requests(), 1, "{store}");
    }
}

#[tokio::test]
async fn a_request_that_goes_away_mid_refresh_does_not_spend_the_refresh_token_twice() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    r.op.inject(Fault::TokenEndpointDelay(Duration::from_millis(600)));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cookie = r.jar.header();
    // The client disconnects while the refresh is at the provider: its request is dropped.
    let gone = tokio::time::timeout(Duration::from_millis(100), lookup(&r, &cookie)).await;
    assert!(gone.is_err(), "cancelled mid-refresh");
    // The next request gets the outcome of the refresh that went on without it.
    let after = lookup(&r, &cookie).await.session.expect("not logged out");
    assert_ne!(access_token(&after), access_token(&before));
    assert_eq!(r.op.refresh_requests(), 1, "the rotated refresh token was spent once");
}

#[tokio::test]
async fn a_slow_provider_does_not_hold_requests_up() {
    // A 4-second token, due (not expired) after 3 s; the provider takes 3.5 s to refresh it.
    let mut r = short_tokens(4).await;
    let before = logged_in(&mut r).await;
    r.op.inject(Fault::TokenEndpointDelay(Duration::from_millis(3500)));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let cookie = r.jar.header();
    let started = std::time::Instant::now();
    let served = lookup(&r, &cookie).await.session.expect("served");
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(2600), "a still-valid token waits at most 2 s: {waited:?}");
    assert_eq!(access_token(&served), access_token(&before), "with the tokens it has, still valid");
    // The refresh went on; once done, its outcome answers the same cookie.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    r.op.clear_faults();
    let after = lookup(&r, &cookie).await.session.unwrap();
    assert_ne!(access_token(&after), access_token(&before));
    assert_eq!(r.op.refresh_requests(), 1, "one refresh, not one per waiting request");
}

#[tokio::test]
async fn a_server_side_session_is_refreshed_in_the_store() {
    let op = TestProvider::builder().token_ttl(Duration::from_secs(2));
    let mut r = rig_with(op, |b| b.store(MemoryStore::new())).await;
    let before = logged_in(&mut r).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cookie = r.jar.header();
    let found = lookup(&r, &cookie).await;
    assert!(found.set_cookies.is_empty(), "the cookie names the session; the store holds its new tokens");
    let after = found.session.unwrap();
    assert_ne!(access_token(&after), access_token(&before));
    let again = lookup(&r, &cookie).await.session.unwrap();
    assert_eq!(access_token(&again), access_token(&after), "read back from the store");
    assert_eq!(r.op.refresh_requests(), 1);
}

#[tokio::test]
async fn a_refused_grant_ends_the_session() {
    let mut r = short_tokens(2).await;
    logged_in(&mut r).await;
    r.op.inject(Fault::RefreshDenied);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cookie = r.jar.header();
    let found = lookup(&r, &cookie).await;
    assert!(found.session.is_none(), "invalid_grant: logged out");
    assert!(found.set_cookies.iter().any(|c| c.contains("Max-Age=0")), "the cookie is cleared");
    r.op.clear_faults();
    assert!(lookup(&r, &cookie).await.session.is_none(), "a copy of the cookie is refused too");
    assert_eq!(r.op.refresh_requests(), 1, "the refused grant is remembered, not retried");

    // A server-side session is one record: it is gone, whatever cookie names it.
    let op = TestProvider::builder().token_ttl(Duration::from_secs(2));
    let mut r = rig_with(op, |b| b.store(MemoryStore::new())).await;
    logged_in(&mut r).await;
    r.op.inject(Fault::RefreshDenied);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(lookup(&r, &r.jar.header()).await.session.is_none());
    r.op.clear_faults();
    let copy = r.jar.header();
    let req = RequestView::new(Method::Get, "/", None).with_header("cookie", &copy);
    assert!(r.auth.session(&req).await.session.is_none(), "deleted from the store");
}

#[tokio::test]
async fn a_provider_that_is_down_keeps_the_session_and_the_refresh_is_retried_after_a_backoff() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    r.op.inject(Fault::TokenEndpointStatus(503));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cookie = r.jar.header();
    for _ in 0..5 {
        let served = lookup(&r, &cookie).await.session.expect("still served from the session");
        assert_eq!(access_token(&served), access_token(&before));
    }
    assert_eq!(r.op.refresh_requests(), 1, "not retried on every request");

    // A handler that needs a valid token is told why it has none: 502, not a dead token.
    let user = User::new(r.auth.clone(), before.clone());
    let err = user.access_token().await.unwrap_err();
    assert_eq!(err.status(), 502, "{err}");

    r.op.clear_faults();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = lookup(&r, &cookie).await.session.unwrap();
    assert_ne!(access_token(&after), access_token(&before), "retried after the backoff");
    assert_eq!(r.op.refresh_requests(), 2);
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_user_ends_the_session() {
    let mut r = short_tokens(2).await;
    logged_in(&mut r).await;
    r.op.inject(Fault::RefreshIdTokenSubChanged);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let found = lookup(&r, &r.jar.header()).await;
    assert!(found.session.is_none(), "OIDC Core §12.2: the sub changed, the session ends");
    assert_eq!(r.op.refresh_requests(), 1);
}

#[tokio::test]
async fn a_refresh_without_an_id_token_or_a_new_refresh_token_keeps_what_it_had() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    r.op.inject(Fault::RefreshWithoutIdToken);
    r.op.inject(Fault::RefreshTokenNotRotated);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = lookup(&r, &r.jar.header()).await.session.unwrap();
    assert_ne!(access_token(&after), access_token(&before));
    assert_eq!(after.tokens().refresh_token, before.tokens().refresh_token, "not rotated: the old one stays");
    assert_eq!(after.tokens().id_token, before.tokens().id_token, "kept for id_token_hint");
    assert_eq!(after.claims(), before.claims(), "the login's claims, userinfo's answers unchanged");
}

#[tokio::test]
async fn a_refreshed_id_token_updates_the_claims() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = lookup(&r, &r.jar.header()).await.session.unwrap();
    let exp = |s: &Session| s.claims().get("exp").and_then(serde_json::Value::as_u64).unwrap();
    assert!(exp(&after) > exp(&before), "the claims are the new ID token's");
    assert_eq!(after.claims().email(), before.claims().email());
    assert!(after.claims().get("nonce").is_none() && after.claims().get("at_hash").is_none());
    assert_ne!(after.tokens().id_token, before.tokens().id_token, "the new ID token is kept");
}

#[tokio::test]
async fn a_handler_gets_a_fresh_token_and_the_userinfo_with_it() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A session that expired while a handler held it.
    let user = User::new(r.auth.clone(), before.clone());
    let token = user.access_token().await.unwrap();
    assert_ne!(token.secret(), access_token(&before));
    let again = user.access_token().await.unwrap();
    assert_eq!(again, token, "the refresh's outcome is shared");
    assert_eq!(r.op.refresh_requests(), 1);
    let userinfo_before = r.op.userinfo_requests();
    let info = user.userinfo().await.unwrap();
    assert_eq!(info["sub"], before.sub());
    assert_eq!(r.op.userinfo_requests(), userinfo_before + 1);

    r.op.inject(Fault::UserinfoStatus(500));
    let err = user.userinfo().await.unwrap_err();
    assert_eq!(err.status(), 502);
    assert!(err.public_message().contains("userinfo"), "{}", err.public_message());
}

#[tokio::test]
async fn an_expired_token_without_a_refresh_token_is_a_401() {
    let mut r = short_tokens(2).await;
    let before = logged_in(&mut r).await;
    // The same session, as if the provider had issued no refresh token.
    let mut value = serde_json::to_value(&*before).unwrap();
    value["tokens"]["refresh_token"] = serde_json::Value::Null;
    let without: Session = serde_json::from_value(value).unwrap();
    assert!(without.tokens().refresh_token.is_none());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = User::new(r.auth.clone(), Arc::new(without)).access_token().await.unwrap_err();
    assert!(matches!(err, Error::AccessTokenExpired), "{err:?}");
    assert_eq!(err.status(), 401);
    assert_eq!(r.op.refresh_requests(), 0);
}

#[tokio::test]
async fn the_api_client_sends_the_token_and_stays_on_its_origin() {
    let op = TestProvider::start().await.unwrap();
    let provider = common::provider_for(&op).with_api_base_url(op.issuer());
    let auth = auth_core::Auth::builder()
        .provider(provider)
        .session_keys(auth_core::KeyRing::new(auth_core::SessionKey::generate()))
        .build()
        .await
        .unwrap();
    let mut r = Rig { auth, op, jar: common::Jar::default(), http: common::http() };
    let session = logged_in(&mut r).await;
    let api = User::new(r.auth.clone(), session.clone()).api().await.unwrap();
    let me = api.get_json("userinfo").await.unwrap();
    assert_eq!(me["sub"], session.sub(), "the userinfo endpoint, through the API client, with the user's token");
    for elsewhere in ["https://evil.example/steal", "//evil.example/steal", "http://127.0.0.1:1/x"] {
        let err = api.url(elsewhere).unwrap_err();
        assert_eq!(err.status(), 400, "{elsewhere}");
    }
    let no_api = Provider::oidc("x", "https://id.example", "app");
    assert_eq!(no_api.api_base_url(), None);
}
