//! DPoP (RFC 9449) on the app's side: a key per session, proofs on the code exchange, refreshes
//! and calls with the bound token, against auth-testkit, which checks every proof.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use auth_core::User;
use auth_testkit::{Fault, TestProvider, TestProviderBuilder};
use common::{Rig, provider_for, rig_with};

/// A rig whose provider `oidc` asks for DPoP-bound tokens.
async fn dpop_rig_for(op: TestProviderBuilder) -> Rig {
    let op = op.start().await.unwrap();
    let auth = auth_core::Auth::builder()
        .provider(provider_for(&op).with_dpop())
        .base_url("http://127.0.0.1:3000")
        .session_keys(auth_core::KeyRing::new(auth_core::SessionKey::generate()))
        .build()
        .await
        .unwrap();
    Rig { op, auth, jar: common::Jar::default(), http: common::http() }
}

#[tokio::test]
async fn a_login_binds_the_tokens_to_the_sessions_key_and_userinfo_sends_a_proof() {
    let mut r = dpop_rig_for(TestProvider::builder()).await;
    r.login().await.outcome.unwrap();
    let session = r.session().await.unwrap();
    assert!(session.tokens().is_dpop_bound(), "the provider bound the tokens");
    assert_eq!(r.op.dpop_proofs_accepted(), 2, "the code exchange and the login's userinfo carried proofs");
    let user = User::new(r.auth.clone(), session.clone());
    let info = user.userinfo().await.expect("userinfo with Authorization: DPoP and a proof");
    assert_eq!(info["sub"], session.sub());
    assert_eq!(r.op.dpop_proofs_accepted(), 3);
    // The same bound token as a bearer token is refused by the provider.
    let res = r
        .http
        .get(format!("{}/userinfo", r.op.issuer()))
        .bearer_auth(session.tokens().access_token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(format!("{session:?}").contains("[redacted]"));
}

#[tokio::test]
async fn each_session_has_its_own_key_and_a_refresh_proves_it() {
    let mut r = dpop_rig_for(TestProvider::builder().token_ttl(Duration::from_secs(2))).await;
    r.login().await.outcome.unwrap();
    let first = r.session().await.unwrap();
    r.jar = common::Jar::default();
    r.login().await.outcome.unwrap();
    let second = r.session().await.unwrap();
    assert_ne!(first.tokens().access_token, second.tokens().access_token);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let proofs = r.op.dpop_proofs_accepted();
    let user = User::new(r.auth.clone(), second.clone());
    let fresh = user.access_token().await.expect("refreshed with a proof by the session's key");
    assert_ne!(&fresh, &second.tokens().access_token);
    assert_eq!(r.op.refresh_requests(), 1);
    assert_eq!(r.op.dpop_proofs_accepted(), proofs + 2, "the refresh and its userinfo carried proofs");
    user.userinfo().await.expect("the refreshed token is bound to the same key");
}

#[tokio::test]
async fn a_provider_asking_for_a_nonce_gets_it_on_a_retry_and_then_at_once() {
    let mut r = dpop_rig_for(TestProvider::builder().require_dpop_nonce(true)).await;
    let before = r.op.token_requests();
    r.login().await.outcome.expect("the token request is sent again with the nonce");
    assert_eq!(r.op.token_requests(), before + 2, "one use_dpop_nonce answer, one retry");
    let session = r.session().await.unwrap();
    let user = User::new(r.auth.clone(), session);
    user.userinfo().await.expect("userinfo with the nonce");
    // The second login carries the nonce the provider gave last: no retry.
    r.jar = common::Jar::default();
    let before = r.op.token_requests();
    r.login().await.outcome.unwrap();
    assert_eq!(r.op.token_requests(), before + 1);
}

#[tokio::test]
async fn without_dpop_tokens_stay_bearer_tokens() {
    let mut r = rig_with(TestProvider::builder(), |b| b).await;
    r.login().await.outcome.unwrap();
    assert!(!r.session().await.unwrap().tokens().is_dpop_bound());
    assert_eq!(r.op.dpop_proofs_accepted(), 0);
}

#[tokio::test]
async fn a_nonce_fault_mid_session_is_answered_on_refresh() {
    let mut r = dpop_rig_for(TestProvider::builder().token_ttl(Duration::from_secs(2))).await;
    r.login().await.outcome.unwrap();
    let session = r.session().await.unwrap();
    r.op.inject(Fault::DpopNonceRequired);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let user = User::new(r.auth.clone(), session);
    user.access_token().await.expect("the refresh retries with the nonce");
    user.userinfo().await.expect("so does userinfo");
}
