//! Logout: local, at the provider (RP-initiated, with revocation), and back-channel.
#![allow(clippy::unwrap_used)]

mod common;

use auth_core::{Auth, AuthResponse, Method, RequestView};
use auth_testkit::TestProvider;
use common::{Rig, builder_for, rig};
use serde_json::json;

async fn post_logout(r: &mut Rig, accept: &str) -> AuthResponse {
    let cookie = r.jar.header();
    let req = RequestView::new(Method::Post, "/auth/logout", None)
        .with_header("cookie", &cookie)
        .with_header("accept", accept);
    let res = r.auth.handle(&req, b"").await;
    r.jar.absorb_response(&res);
    res
}

async fn backchannel(auth: &Auth, token: &str) -> AuthResponse {
    let body = format!("logout_token={token}&unknown=ignored");
    let req = RequestView::new(Method::Post, "/auth/oidc/backchannel-logout", None)
        .with_header("content-type", "application/x-www-form-urlencoded");
    auth.handle(&req, body.as_bytes()).await
}

fn logout_claims(op: &TestProvider, extra: &serde_json::Value) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({
        "iss": op.issuer(), "aud": op.client_id(), "iat": now, "exp": now + 120,
        "jti": format!("jti-{now}-{}", extra.to_string().len()),
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

#[tokio::test]
async fn logout_goes_to_the_provider_and_back_with_state() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let id_token = r.session().await.unwrap().tokens().id_token.clone().unwrap();
    let res = post_logout(&mut r, "text/html").await;
    assert_eq!(res.status, 303);
    let location = url::Url::parse(res.header("location").unwrap()).unwrap();
    assert!(location.as_str().starts_with(&format!("{}/end_session", r.op.issuer())), "{location}");
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["id_token_hint"], id_token.secret());
    assert_eq!(q["post_logout_redirect_uri"], "http://127.0.0.1:3000/auth/logout/callback");
    assert!(r.session().await.is_none(), "the local session is over before the provider is visited");

    // The provider sends the browser back with the state.
    let back = r.http.get(location.as_str()).send().await.unwrap();
    let back = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.path(), "/auth/logout/callback");
    let jar = r.jar.header();
    let forged = RequestView::new(Method::Get, "/auth/logout/callback", Some("state=forged-state-value"))
        .with_header("cookie", &jar);
    assert_eq!(r.auth.handle(&forged, b"").await.status, 400, "a wrong state is refused");
    let cookie = r.jar.header();
    let req = RequestView::new(Method::Get, back.path(), back.query()).with_header("cookie", &cookie);
    let res = r.auth.handle(&req, b"").await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/"));
    assert_eq!(r.op.end_session_requests(), 1);
}

#[tokio::test]
async fn a_copied_session_cookie_is_dead_after_logout() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let copy = r.jar.clone();
    post_logout(&mut r, "application/json").await;
    r.jar = copy;
    assert!(r.session().await.is_none());
}

#[tokio::test]
async fn logout_revokes_tokens_when_configured() {
    let op = TestProvider::start().await.unwrap();
    let auth = Auth::builder()
        .provider(common::provider_for(&op).with_token_revocation())
        .session_keys(auth_core::KeyRing::new(auth_core::SessionKey::generate()))
        .build()
        .await
        .unwrap();
    let mut r = Rig { op, auth, jar: common::Jar::default(), http: common::http() };
    r.login().await.outcome.unwrap();
    let session = r.session().await.unwrap();
    let res = post_logout(&mut r, "application/json").await;
    assert_eq!(res.status, 200, "an API client is told where the provider's logout is");
    assert!(r.op.is_revoked(session.tokens().refresh_token.as_ref().unwrap().secret()));
    assert!(r.op.is_revoked(session.tokens().access_token.secret()));
}

#[tokio::test]
async fn backchannel_logout_by_sid_ends_that_session_only() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let first_sid = r.op.last_sid().unwrap();
    let first = r.jar.clone();
    r.jar = common::Jar::default();
    r.login().await.outcome.unwrap();
    let second = r.jar.clone();

    let res = backchannel(&r.auth, &r.op.logout_token(None, Some(&first_sid))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    r.jar = first;
    assert!(r.session().await.is_none(), "the session with that sid is over");
    r.jar = second;
    assert!(r.session().await.is_some(), "another session of the same user lives on");
}

#[tokio::test]
async fn backchannel_logout_by_sub_ends_every_session_of_the_user() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let first = r.jar.clone();
    r.jar = common::Jar::default();
    r.login().await.outcome.unwrap();
    let res = backchannel(&r.auth, &r.op.logout_token(Some("alice"), None)).await;
    assert_eq!(res.status, 200);
    assert!(r.session().await.is_none());
    r.jar = first;
    assert!(r.session().await.is_none());
    // A login after the logout is a new session and works.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    r.jar = common::Jar::default();
    r.login().await.outcome.unwrap();
    assert!(r.session().await.is_some());
}

#[tokio::test]
async fn invalid_logout_tokens_are_400() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let sid = r.op.last_sid().unwrap();
    let cases = [
        ("wrong issuer", json!({"sid": sid, "iss": "http://127.0.0.1:1/other"})),
        ("wrong audience", json!({"sid": sid, "aud": "someone-else"})),
        ("expired", json!({"sid": sid, "iat": 1_000, "exp": 1_100})),
        ("no iat", json!({"sid": sid, "iat": null})),
        ("no jti", json!({"sid": sid, "jti": null})),
        ("no sub or sid", json!({})),
        ("no event", json!({"sid": sid, "events": {}})),
        (
            "event not an object",
            json!({"sid": sid, "events": {"http://schemas.openid.net/event/backchannel-logout": "x"}}),
        ),
        ("nonce", json!({"sid": sid, "nonce": "n"})),
    ];
    for (what, extra) in cases {
        let token = r.op.sign_jwt(&logout_claims(&r.op, &extra));
        let res = backchannel(&r.auth, &token).await;
        assert_eq!(res.status, 400, "{what}");
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }
    let none = format!("eyJhbGciOiJub25lIn0.{}.", {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(logout_claims(&r.op, &json!({"sid": sid})).to_string())
    });
    assert_eq!(backchannel(&r.auth, &none).await.status, 400, "alg none");
    let res = backchannel(&r.auth, "").await;
    assert_eq!(res.status, 400, "empty token");
    assert!(r.session().await.is_some(), "no invalid token ended the session");
}

#[tokio::test]
async fn a_replayed_logout_token_is_refused() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let token = r.op.logout_token(None, Some(&r.op.last_sid().unwrap()));
    assert_eq!(backchannel(&r.auth, &token).await.status, 200);
    assert_eq!(backchannel(&r.auth, &token).await.status, 400);
}

#[tokio::test]
async fn an_already_ended_session_is_still_a_success() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let sid = r.op.last_sid().unwrap();
    post_logout(&mut r, "application/json").await;
    assert_eq!(backchannel(&r.auth, &r.op.logout_token(None, Some(&sid))).await.status, 200);
    let other = builder_for(&r.op).build().await.unwrap();
    assert_eq!(backchannel(&other, &r.op.logout_token(Some("nobody"), None)).await.status, 200, "unknown user");
}
