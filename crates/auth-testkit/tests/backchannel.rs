//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): each logout token fault breaks
//! exactly its rule, the JWKS stays unambiguous, and `/end_session` notifies the client.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use auth_testkit::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Fault, LogoutTokenFault, SigningAlg, TestClient, TestProvider,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::routing::post;
use common::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const ALGS: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::PS256];

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

async fn provider(alg: SigningAlg) -> TestProvider {
    TestProvider::builder().signing_alg(alg).start().await.expect("start")
}

/// The JWKS as served.
async fn served_jwks(op: &TestProvider) -> Value {
    json(http().get(format!("{}/jwks", op.issuer())).send().await.expect("jwks")).await
}

fn published_keys(jwks: &Value) -> &Vec<Value> {
    jwks["keys"].as_array().expect("keys")
}

/// Whether a JWK can verify `alg`: its type (and curve) fit, and its `alg`, if any, is `alg`.
fn suits(jwk: &Value, alg: &str) -> bool {
    let family = match alg {
        "RS256" | "PS256" => jwk["kty"] == "RSA",
        "ES256" => jwk["kty"] == "EC" && jwk["crv"] == "P-256",
        _ => false,
    };
    family && jwk["alg"].as_str().is_none_or(|a| a == alg)
}

/// A strict client's key choice: by `kid` among suitable keys; without a `kid`, the one suitable
/// key if there is exactly one.
fn pick<'a>(jwks: &'a Value, alg: &str, kid: Option<&str>) -> Option<&'a Value> {
    let mut suitable = published_keys(jwks).iter().filter(|k| suits(k, alg));
    match kid {
        Some(kid) => suitable.find(|k| k["kid"] == kid),
        None => {
            let first = suitable.next()?;
            suitable.next().is_none().then_some(first)
        }
    }
}

/// Whether `token`'s signature verifies with `alg` and the key a strict client picks.
fn signature_verifies(jwks: &Value, token: &str, alg: &str, kid: Option<&str>) -> bool {
    let Ok(algorithm) = alg.parse::<jsonwebtoken::Algorithm>() else {
        return false;
    };
    let Some(jwk) = pick(jwks, alg, kid) else {
        return false;
    };
    let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("a decoding key");
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

/// The rules of Back-Channel Logout 1.0 §2.6 (security rules, "Back-channel logout token") that
/// `token` breaks, checked the way a strict client checks them.
fn defects(op: &TestProvider, jwks: &Value, token: &str) -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    let header = header(token);
    let alg = header["alg"].as_str().unwrap_or_default();
    if alg == "none" {
        found.insert("alg none");
    } else {
        if alg != op.signing_alg().as_str() {
            found.insert("other alg");
        }
        if !signature_verifies(jwks, token, alg, header["kid"].as_str()) {
            found.insert("signature");
        }
    }
    let c = claims(token);
    if c["iss"] != op.issuer() {
        found.insert("iss");
    }
    let aud_ok = match &c["aud"] {
        Value::String(aud) => aud == op.client_id(),
        Value::Array(auds) => auds.iter().any(|a| a == op.client_id()),
        _ => false,
    };
    if !aud_ok {
        found.insert("aud");
    }
    if !c["iat"].is_u64() {
        found.insert("iat");
    }
    if c["exp"].as_u64().is_none_or(|exp| exp <= now()) {
        found.insert("exp");
    }
    if !c["jti"].is_string() {
        found.insert("jti");
    }
    if !c["sub"].is_string() && !c["sid"].is_string() {
        found.insert("sub or sid");
    }
    match c.get("events") {
        Some(Value::Object(events)) => {
            if !events.get(EVENT).is_some_and(Value::is_object) {
                found.insert("logout event");
            }
        }
        _ => {
            found.insert("events");
        }
    }
    if c.get("nonce").is_some() {
        found.insert("nonce");
    }
    found
}

fn expected_defects(fault: LogoutTokenFault) -> BTreeSet<&'static str> {
    let names: &[&'static str] = match fault {
        LogoutTokenFault::AlgNone => &["alg none"],
        LogoutTokenFault::BadSignature => &["signature"],
        LogoutTokenFault::OtherAlgorithm => &["other alg"],
        LogoutTokenFault::WrongIssuer => &["iss"],
        LogoutTokenFault::WrongAudience => &["aud"],
        LogoutTokenFault::Expired => &["exp"],
        LogoutTokenFault::MissingIat => &["iat"],
        LogoutTokenFault::MissingJti => &["jti"],
        LogoutTokenFault::NoSubNoSid => &["sub or sid"],
        LogoutTokenFault::MissingEvents => &["events"],
        LogoutTokenFault::EventNotObject => &["logout event"],
        LogoutTokenFault::WithNonce => &["nonce"],
        // An ID token: no `jti`, no `events`, a `nonce`.
        LogoutTokenFault::IdTokenInstead => &["jti", "events", "nonce"],
        other => panic!("no expectation for {other:?}"),
    };
    names.iter().copied().collect()
}

#[tokio::test]
async fn valid_logout_tokens_break_no_rule() {
    for alg in ALGS {
        let op = provider(alg).await;
        let jwks = served_jwks(&op).await;
        let token = op.logout_token_with(Some("alice"), Some("sid-1"), None);
        assert_eq!(defects(&op, &jwks, &token), BTreeSet::new(), "{alg}");

        let h = header(&token);
        assert_eq!((h["typ"].as_str(), h["alg"].as_str()), (Some("logout+jwt"), Some(alg.as_str())));
        assert_eq!(h["kid"], op.kid());
        let c = claims(&token);
        let names: BTreeSet<&str> = c.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(names, BTreeSet::from(["iss", "aud", "iat", "exp", "jti", "events", "sub", "sid"]));
        assert_eq!(c["aud"], op.client_id());
        assert_eq!(c["exp"].as_u64(), c["iat"].as_u64().map(|iat| iat + 120));
        assert_eq!(c["events"], json!({ EVENT: {} }));
        assert_eq!((c["sub"].as_str(), c["sid"].as_str()), (Some("alice"), Some("sid-1")));

        let again = claims(&op.logout_token_with(Some("alice"), Some("sid-1"), None));
        assert_ne!(again["jti"], c["jti"], "a fresh jti every time");

        let sub_only = op.logout_token(Some("alice"), None);
        assert!(defects(&op, &jwks, &sub_only).is_empty());
        assert!(claims(&sub_only).get("sid").is_none());
        let sid_only = op.logout_token(None, Some("sid-1"));
        assert!(defects(&op, &jwks, &sid_only).is_empty());
        assert!(claims(&sid_only).get("sub").is_none());
        assert_eq!(defects(&op, &jwks, &op.logout_token(None, None)), BTreeSet::from(["sub or sid"]));
    }
}

#[tokio::test]
async fn each_fault_breaks_exactly_its_rule() {
    assert_eq!(LogoutTokenFault::ALL.len(), 13);
    for alg in ALGS {
        let op = provider(alg).await;
        let jwks = served_jwks(&op).await;
        for &fault in LogoutTokenFault::ALL {
            let token = op.logout_token_with(Some("alice"), Some("sid-1"), Some(fault));
            assert_eq!(defects(&op, &jwks, &token), expected_defects(fault), "{alg} {fault:?}");
            if fault != LogoutTokenFault::IdTokenInstead {
                assert_eq!(header(&token)["typ"], "logout+jwt", "{alg} {fault:?}");
            }
        }

        let none = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::AlgNone));
        assert_eq!(header(&none), json!({ "alg": "none", "typ": "logout+jwt" }));
        assert!(none.ends_with('.'), "empty signature");

        let bad = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::BadSignature));
        assert_eq!(
            (header(&bad)["alg"].as_str(), header(&bad)["kid"].as_str()),
            (Some(alg.as_str()), Some(&*op.kid()))
        );

        // A valid signature by a published key, with the other algorithm.
        let other = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::OtherAlgorithm));
        let h = header(&other);
        let other_alg = h["alg"].as_str().expect("alg");
        assert_eq!(other_alg, if alg == SigningAlg::ES256 { "RS256" } else { "ES256" });
        let kid = h["kid"].as_str().expect("a kid");
        let key = published_keys(&jwks).iter().find(|k| k["kid"] == kid).expect("published");
        assert_eq!(key["alg"], other_alg);
        assert!(signature_verifies(&jwks, &other, other_alg, Some(kid)));
        assert!(!signature_verifies(&jwks, &other, alg.as_str(), Some(kid)), "not with the ID-token alg");

        let c = claims(&op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::WrongIssuer)));
        assert_eq!(c["iss"], format!("{}/wrong-issuer", op.issuer()));
        let c = claims(&op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::WrongAudience)));
        assert_eq!(c["aud"], "other-client");
        let c = claims(&op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::Expired)));
        assert!(c["exp"].as_u64().expect("exp") + 3000 < now());
        let c = claims(&op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::EventNotObject)));
        assert!(c["events"][EVENT].is_string());
        let c = claims(&op.logout_token_with(Some("alice"), Some("sid-1"), Some(LogoutTokenFault::NoSubNoSid)));
        assert!(c.get("sub").is_none() && c.get("sid").is_none());
        assert!(c["jti"].is_string() && c["events"][EVENT].is_object(), "the rest stays");

        // An ID token posted instead: it verifies as one.
        let id_token = op.logout_token_with(Some("alice"), Some("sid-1"), Some(LogoutTokenFault::IdTokenInstead));
        assert_eq!(header(&id_token)["typ"], "JWT");
        let c = verify(&op, &id_token).await.expect("a valid ID token");
        assert_eq!((c["sub"].as_str(), c["sid"].as_str()), (Some("alice"), Some("sid-1")));
        assert_eq!(c["azp"], op.client_id());
        let c = claims(&op.logout_token_with(None, None, Some(LogoutTokenFault::IdTokenInstead)));
        assert_eq!(c["sub"], op.user().sub.as_str(), "an ID token always has a sub");
    }
}

#[tokio::test]
async fn the_other_family_key_keeps_kid_less_tokens_unambiguous() {
    for alg in ALGS {
        let op = provider(alg).await;
        let jwks = served_jwks(&op).await;
        assert_eq!(jwks, op.jwks());
        let keys = published_keys(&jwks);
        assert_eq!(keys.len(), 2, "{alg}");
        assert_eq!((keys[0]["kid"].as_str(), keys[0]["alg"].as_str()), (Some(&*op.kid()), Some(alg.as_str())));
        assert_ne!(keys[0]["kty"], keys[1]["kty"], "another family");
        assert_ne!(keys[0]["kid"], keys[1]["kid"]);
        assert!(keys.iter().all(|k| k["use"] == "sig" && k["alg"].is_string()));
        assert_eq!(keys.iter().filter(|k| suits(k, alg.as_str())).count(), 1, "one key suits the ID-token alg");

        // A kid-less ID token still has exactly one suitable key, and verifies with it.
        op.inject(Fault::IdTokenNoKid);
        let id_token = tokens(&op).await["id_token"].as_str().expect("id").to_owned();
        op.clear_faults();
        assert!(header(&id_token).get("kid").is_none());
        assert_eq!(pick(&jwks, alg.as_str(), None).map(|k| &k["kid"]), Some(&keys[0]["kid"]));
        assert!(signature_verifies(&jwks, &id_token, alg.as_str(), None));

        // Picking by kid: ID tokens still verify.
        let id_token = tokens(&op).await["id_token"].as_str().expect("id").to_owned();
        assert!(verify(&op, &id_token).await.is_ok());
    }
}

// ---------------------------------------------------------------------------------------------
// Sending: a tiny back-channel logout endpoint
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Received {
    content_type: Option<String>,
    params: Vec<(String, String)>,
}

impl Received {
    fn logout_token(&self) -> &str {
        match self.params.as_slice() {
            [(name, token)] if name == "logout_token" => token,
            other => panic!("expected only logout_token, got {other:?}"),
        }
    }
}

/// A client's back-channel logout endpoint: records each request and answers with `status`.
#[derive(Clone, Default)]
struct Endpoint {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl Endpoint {
    async fn start() -> (Endpoint, String) {
        let endpoint = Endpoint::default();
        endpoint.set_status(200);
        let app = axum::Router::new().route("/backchannel-logout", post(receive)).with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/backchannel-logout", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (endpoint, url)
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// The content type and logout token of request `i` (the lock is not held on return: the
    /// endpoint runs on this test's thread).
    fn request(&self, i: usize) -> (Option<String>, String) {
        let received = self.received.lock().expect("lock");
        (received[i].content_type.clone(), received[i].logout_token().to_owned())
    }

    fn last_token(&self) -> String {
        self.received.lock().expect("lock").last().expect("a request").logout_token().to_owned()
    }
}

async fn receive(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> impl axum::response::IntoResponse {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let params = url::form_urlencoded::parse(body.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    endpoint.received.lock().expect("lock").push(Received { content_type, params });
    let status = AxumStatus::from_u16(endpoint.status.load(Ordering::SeqCst)).expect("status");
    let body = if status == AxumStatus::OK { String::new() } else { r#"{"error":"invalid_request"}"#.to_owned() };
    (status, [(header::CACHE_CONTROL, "no-store")], body)
}

/// A provider whose default client has the back-channel logout URI `url`.
async fn provider_notifying(url: &str) -> TestProvider {
    TestProvider::builder()
        .client(TestClient::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).with_backchannel_logout_uri(url))
        .client(TestClient::new("plain", "plain-secret"))
        .start()
        .await
        .expect("start")
}

async fn end_session(op: &TestProvider, params: &[(&str, &str)]) -> reqwest::Response {
    http().get(format!("{}/end_session", op.issuer())).query(params).send().await.expect("end_session")
}

async fn id_token(op: &TestProvider) -> String {
    tokens(op).await["id_token"].as_str().expect("id_token").to_owned()
}

#[tokio::test]
async fn end_session_posts_a_logout_token_for_the_session_it_ends() {
    let (endpoint, url) = Endpoint::start().await;
    let op = provider_notifying(&url).await;
    let jwks = served_jwks(&op).await;
    let id_token = id_token(&op).await;
    let id_claims = claims(&id_token);
    assert_eq!(op.backchannel_requests(), 0, "logging in notifies nobody");

    let response = end_session(
        &op,
        &[("id_token_hint", &id_token), ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"), ("state", "st")],
    )
    .await;
    // The POST was answered before the browser was redirected.
    assert_eq!(location(&response).as_str(), "http://127.0.0.1:9/bye?state=st");
    assert_eq!(endpoint.count(), 1);
    let (content_type, token) = endpoint.request(0);
    assert_eq!(content_type.as_deref(), Some("application/x-www-form-urlencoded"));

    assert!(defects(&op, &jwks, &token).is_empty(), "a valid logout token: {:?}", defects(&op, &jwks, &token));
    assert_eq!(header(&token)["typ"], "logout+jwt");
    let c = claims(&token);
    assert_eq!(c["sid"], id_claims["sid"], "the sid of the ID token");
    assert_eq!(c["sub"], id_claims["sub"]);
    assert_eq!(c["aud"], op.client_id());
    assert_eq!(op.backchannel_requests(), 1);
    assert_eq!(op.last_backchannel_status(), Some(200));
    assert_eq!(op.last_backchannel_response(), Some((200, String::new())));
    assert_eq!(op.last_backchannel_token().as_deref(), Some(token.as_str()));

    // The session has ended: ending it again notifies nobody.
    let response =
        end_session(&op, &[("id_token_hint", &id_token), ("post_logout_redirect_uri", "http://127.0.0.1:9/bye")]).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!((endpoint.count(), op.backchannel_requests()), (1, 1));
}

#[tokio::test]
async fn end_session_picks_the_session_by_hint_or_client() {
    let (endpoint, url) = Endpoint::start().await;
    let op = provider_notifying(&url).await;
    let first = id_token(&op).await;
    let second = id_token(&op).await;
    let sid = |jwt: &str| claims(jwt)["sid"].as_str().expect("sid").to_owned();
    assert_ne!(sid(&first), sid(&second));

    // A refused request ends no session.
    let response =
        end_session(&op, &[("id_token_hint", &first), ("post_logout_redirect_uri", "https://evil.example/")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(op.backchannel_requests(), 0);

    // The hint names the older session.
    let response = end_session(&op, &[("id_token_hint", &first)]).await;
    assert_eq!(response.status(), StatusCode::OK, "the signed-out page");
    assert_eq!(claims(&endpoint.last_token())["sid"], sid(&first));

    // Without a hint: the newest open session of the client.
    end_session(&op, &[("client_id", op.client_id()), ("post_logout_redirect_uri", "http://127.0.0.1:9/bye")]).await;
    assert_eq!(claims(&endpoint.last_token())["sid"], sid(&second));
    assert_eq!(endpoint.count(), 2);

    // None left.
    end_session(&op, &[("client_id", op.client_id())]).await;
    assert_eq!(endpoint.count(), 2);

    // A client without a back-channel logout URI is not notified, and its session is not the
    // default client's.
    let third = id_token(&op).await;
    let pkce = pkce();
    authorize(&op, &pkce, &[("client_id", "plain")]).await;
    end_session(&op, &[("client_id", "plain")]).await;
    assert_eq!(endpoint.count(), 2);
    // Without client and hint: the newest session of all, here the default client's.
    end_session(&op, &[]).await;
    assert_eq!(endpoint.count(), 3);
    assert_eq!(claims(&endpoint.last_token())["sid"], sid(&third));
    assert_eq!(op.backchannel_requests(), 3);
    assert_eq!(op.end_session_requests(), 6);
}

#[tokio::test]
async fn the_clients_answer_is_recorded_and_the_logout_goes_on() {
    let (endpoint, url) = Endpoint::start().await;
    let op = provider_notifying(&url).await;
    endpoint.set_status(400);
    let id_token = id_token(&op).await;
    let response =
        end_session(&op, &[("id_token_hint", &id_token), ("post_logout_redirect_uri", "http://127.0.0.1:9/bye")]).await;
    assert_eq!(location(&response).as_str(), "http://127.0.0.1:9/bye");
    assert_eq!(op.last_backchannel_status(), Some(400));
    assert_eq!(op.last_backchannel_response(), Some((400, r#"{"error":"invalid_request"}"#.to_owned())));

    // Nobody listening: the logout still completes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}/backchannel-logout", listener.local_addr().expect("addr"));
    drop(listener);
    let op = provider_notifying(&closed).await;
    let id_token = self::id_token(&op).await;
    let response =
        end_session(&op, &[("id_token_hint", &id_token), ("post_logout_redirect_uri", "http://127.0.0.1:9/bye")]).await;
    assert_eq!(location(&response).as_str(), "http://127.0.0.1:9/bye");
    assert_eq!(op.backchannel_requests(), 1);
    assert_eq!(op.last_backchannel_status(), None, "no answer");
    assert_eq!(claims(&op.last_backchannel_token().expect("a token"))["sid"], claims(&id_token)["sid"]);
}

#[tokio::test]
async fn send_backchannel_logout_posts_a_form_like_a_provider() {
    let (endpoint, url) = Endpoint::start().await;
    let op = TestProvider::start().await.expect("start");
    assert_eq!((op.backchannel_requests(), op.last_backchannel_response()), (0, None));

    let token = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::WithNonce));
    assert_eq!(op.send_backchannel_logout(&url, &token).await.expect("answered"), (200, String::new()));
    assert_eq!(endpoint.count(), 1);
    let (content_type, received) = endpoint.request(0);
    assert_eq!(content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(received, token);

    endpoint.set_status(400);
    let token = op.logout_token(Some("alice"), None);
    let (status, body) = op.send_backchannel_logout(&url, &token).await.expect("answered");
    assert_eq!((status, body.as_str()), (400, r#"{"error":"invalid_request"}"#));
    assert_eq!(op.last_backchannel_response(), Some((400, body)));
    assert_eq!(op.last_backchannel_token(), Some(token));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    assert!(op.send_backchannel_logout(&closed, "x.y.z").await.is_err());
    assert_eq!(op.backchannel_requests(), 3);
    assert_eq!(op.last_backchannel_response(), None);
    assert_eq!(op.last_backchannel_token().as_deref(), Some("x.y.z"));
}
