//! DPoP (RFC 9449): proofs at the token endpoint, bound access and refresh tokens, server
//! nonces, and DPoP access at UserInfo.

mod common;

use auth_testkit::{Fault, TestClient, TestDpopKey, TestProvider};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn token_url(op: &TestProvider) -> String {
    format!("{}/token", op.issuer())
}

fn userinfo_url(op: &TestProvider) -> String {
    format!("{}/userinfo", op.issuer())
}

/// POSTs a token request with the default client's credentials and the given `DPoP` headers.
async fn token_request(op: &TestProvider, form: &[(&str, &str)], proofs: &[&str]) -> reqwest::Response {
    let mut request = http().post(token_url(op)).basic_auth(op.client_id(), Some(op.client_secret())).form(form);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    request.send().await.expect("token request")
}

/// Exchanges a fresh code, with `proof` as the `DPoP` header when given.
async fn exchange_with(op: &TestProvider, proof: Option<&str>) -> reqwest::Response {
    let (code, pkce) = code(op).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    token_request(op, &form, proof.as_slice()).await
}

/// A login whose tokens are bound to `key`.
async fn bound_tokens(op: &TestProvider, key: &TestDpopKey) -> Value {
    let response = exchange_with(op, Some(&key.proof("POST", &token_url(op), None, None))).await;
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

async fn refresh_with(op: &TestProvider, refresh_token: &str, proof: Option<&str>) -> reqwest::Response {
    token_request(op, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)], proof.as_slice()).await
}

async fn introspect(op: &TestProvider, token: &str) -> Value {
    let response = http()
        .post(format!("{}/introspect", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

/// Expects `400 invalid_dpop_proof` whose description contains `why`.
async fn refused_proof(response: reqwest::Response, why: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json(response).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let description = body["error_description"].as_str().expect("error_description");
    assert!(description.contains(why), "{description:?} should contain {why:?}");
}

/// A refresh request with a made-up refresh token: `invalid_grant` once the proof passed,
/// `invalid_dpop_proof` if it did not.
async fn try_proof(op: &TestProvider, proof: &str) -> reqwest::Response {
    refresh_with(op, "no-such-refresh-token", Some(proof)).await
}

#[tokio::test]
async fn a_token_request_with_a_proof_gets_bound_tokens() {
    let op = TestProvider::start().await.expect("start");
    let doc = json(http().get(op.discovery_url()).send().await.expect("discovery")).await;
    assert_eq!(doc["dpop_signing_alg_values_supported"], json!(["ES256", "RS256", "PS256", "EdDSA"]));

    let key = TestDpopKey::generate();
    assert_eq!(key.jkt().len(), 43, "base64url of a SHA-256");
    let tokens = bound_tokens(&op, &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(op.dpop_proofs_accepted(), 1);
    let access = introspect(&op, tokens["access_token"].as_str().expect("access token")).await;
    assert_eq!(access["active"], true);
    assert_eq!(access["token_type"], "DPoP");
    assert_eq!(access["cnf"]["jkt"], key.jkt());
    let refresh = introspect(&op, tokens["refresh_token"].as_str().expect("refresh token")).await;
    assert_eq!(refresh["cnf"]["jkt"], key.jkt());
    // The ID token is as ever.
    verify(&op, tokens["id_token"].as_str().expect("id_token")).await.expect("valid ID token");

    // Without a proof, nothing changes.
    let plain = json(exchange_with(&op, None).await).await;
    assert_eq!(plain["token_type"], "Bearer");
    let access = introspect(&op, plain["access_token"].as_str().expect("access token")).await;
    assert_eq!(access["token_type"], "Bearer");
    assert!(access.get("cnf").is_none());
}

#[tokio::test]
async fn a_bound_refresh_token_needs_a_proof_by_the_same_key() {
    let op = TestProvider::start().await.expect("start");
    let key = TestDpopKey::generate();
    let tokens = bound_tokens(&op, &key).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");

    refused_proof(refresh_with(&op, refresh_token, None).await, "DPoP-bound").await;
    let other = TestDpopKey::generate();
    refused_proof(
        refresh_with(&op, refresh_token, Some(&other.proof("POST", &token_url(&op), None, None))).await,
        "not the key the refresh token is bound to",
    )
    .await;
    assert!(!op.is_revoked(refresh_token), "a refused refresh rotates nothing");

    let response = refresh_with(&op, refresh_token, Some(&key.proof("POST", &token_url(&op), None, None))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed = json(response).await;
    assert_eq!(refreshed["token_type"], "DPoP");
    assert_eq!(introspect(&op, refreshed["access_token"].as_str().expect("at")).await["cnf"]["jkt"], key.jkt());
    let new_refresh = refreshed["refresh_token"].as_str().expect("rotated");
    assert_eq!(introspect(&op, new_refresh).await["cnf"]["jkt"], key.jkt());
    refused_proof(refresh_with(&op, new_refresh, None).await, "DPoP-bound").await;
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound() {
    let op = TestProvider::builder().client(TestClient::public("spa")).start().await.expect("start");
    let key = TestDpopKey::generate();
    let pkce = pkce();
    let callback = authorize(&op, &pkce, &[("client_id", "spa")]).await;
    let code = param(&callback, "code").expect("code");
    let proof = key.proof("POST", &token_url(&op), None, None);
    let tokens = json(
        http()
            .post(token_url(&op))
            .header("DPoP", proof)
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", pkce.verifier.as_str()),
            ])
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(tokens["token_type"], "DPoP");
    let refresh = |proof: Option<String>| {
        let mut request = http().post(token_url(&op)).form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", tokens["refresh_token"].as_str().expect("refresh token")),
        ]);
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
        request.send()
    };
    refused_proof(refresh(None).await.expect("refresh"), "DPoP-bound").await;
    let other = TestDpopKey::generate();
    refused_proof(refresh(Some(other.proof("POST", &token_url(&op), None, None))).await.expect("refresh"), "jkt").await;
    let ok = refresh(Some(key.proof("POST", &token_url(&op), None, None))).await.expect("refresh");
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_proofs_are_refused() {
    let op = TestProvider::start().await.expect("start");
    let key = TestDpopKey::generate();
    let url = token_url(&op);
    let fresh = || key.proof_claims("POST", &url, None, None);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());

    // A valid proof passes (and the made-up refresh token fails after it); a query is ignored.
    let response = try_proof(&op, &key.proof("POST", &format!("{url}?x=1"), None, None)).await;
    assert_eq!(json(response).await["error"], "invalid_grant");
    assert_eq!(op.dpop_proofs_accepted(), 1);

    refused_proof(try_proof(&op, &key.proof("POST", &userinfo_url(&op), None, None)).await, "wrong htu").await;
    refused_proof(try_proof(&op, &key.proof("POST", "http://127.0.0.1:1/token", None, None)).await, "wrong htu").await;
    refused_proof(try_proof(&op, &key.proof("GET", &url, None, None)).await, "wrong htm").await;

    let mut old = fresh();
    old["iat"] = json!(old["iat"].as_i64().expect("iat") - 120);
    refused_proof(try_proof(&op, &key.sign_jws(&key.proof_header(), &old)).await, "iat").await;
    let mut future = fresh();
    future["iat"] = json!(future["iat"].as_i64().expect("iat") + 120);
    refused_proof(try_proof(&op, &key.sign_jws(&key.proof_header(), &future)).await, "iat").await;
    for missing in ["jti", "htm", "htu", "iat"] {
        let mut partial = fresh();
        partial.as_object_mut().expect("object").remove(missing);
        refused_proof(try_proof(&op, &key.sign_jws(&key.proof_header(), &partial)).await, missing).await;
    }

    // Replay: the same proof twice.
    let proof = key.proof("POST", &url, None, None);
    assert_eq!(json(try_proof(&op, &proof).await).await["error"], "invalid_grant");
    refused_proof(try_proof(&op, &proof).await, "replayed jti").await;
    // The same jti from another key is another proof.
    let other = TestDpopKey::generate();
    let mut same_jti = other.proof_claims("POST", &url, None, None);
    same_jti["jti"] = json!(claims(&proof)["jti"]);
    assert_eq!(
        json(try_proof(&op, &other.sign_jws(&other.proof_header(), &same_jti)).await).await["error"],
        "invalid_grant"
    );

    // A private key in the header.
    let mut header = key.proof_header();
    header["jwk"]["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    refused_proof(try_proof(&op, &key.sign_jws(&header, &fresh())).await, "private member").await;
    // No jwk, or a symmetric one.
    let mut header = key.proof_header();
    header.as_object_mut().expect("object").remove("jwk");
    refused_proof(try_proof(&op, &key.sign_jws(&header, &fresh())).await, "no jwk").await;

    // Signed by another key than the header's jwk, and a tampered payload.
    refused_proof(try_proof(&op, &other.sign_jws(&key.proof_header(), &fresh())).await, "bad signature").await;
    let proof = key.proof("POST", &url, None, None);
    let parts: Vec<&str> = proof.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&fresh()), parts[2]);
    refused_proof(try_proof(&op, &tampered).await, "bad signature").await;

    // alg none and HS256.
    let mut header = key.proof_header();
    header["alg"] = json!("none");
    refused_proof(try_proof(&op, &format!("{}.{}.", b64(&header), b64(&fresh()))).await, "alg \"none\"").await;
    header["alg"] = json!("HS256");
    let input = format!("{}.{}", b64(&header), b64(&fresh()));
    let mac =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret"), input.as_bytes());
    let hs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    refused_proof(try_proof(&op, &hs256).await, "alg \"HS256\"").await;

    // typ, form, and two headers.
    let mut header = key.proof_header();
    header["typ"] = json!("JWT");
    refused_proof(try_proof(&op, &key.sign_jws(&header, &fresh())).await, "typ").await;
    refused_proof(try_proof(&op, "not-a-jwt").await, "compact serialization").await;
    let two = [key.proof("POST", &url, None, None), key.proof("POST", &url, None, None)];
    let response = token_request(
        &op,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        &[two[0].as_str(), two[1].as_str()],
    )
    .await;
    refused_proof(response, "more than one DPoP header").await;

    // A code is not used up by a refused proof.
    let (code, pkce) = code(&op).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    refused_proof(token_request(&op, &form, &[&key.proof("GET", &url, None, None)]).await, "htm").await;
    let response = token_request(&op, &form, &[&key.proof("POST", &url, None, None)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(op.dpop_proofs_accepted(), 4);
}

#[tokio::test]
async fn clock_skew_moves_the_iat_window() {
    let op = TestProvider::start().await.expect("start");
    let key = TestDpopKey::generate();
    op.inject(Fault::ClockSkew(120));
    refused_proof(try_proof(&op, &key.proof("POST", &token_url(&op), None, None)).await, "iat").await;
    let mut ahead = key.proof_claims("POST", &token_url(&op), None, None);
    ahead["iat"] = json!(ahead["iat"].as_i64().expect("iat") + 120);
    let response = try_proof(&op, &key.sign_jws(&key.proof_header(), &ahead)).await;
    assert_eq!(json(response).await["error"], "invalid_grant");
}

#[tokio::test]
async fn nonces_are_required_when_configured() {
    let op = TestProvider::builder().require_dpop_nonce(true).start().await.expect("start");
    let key = TestDpopKey::generate();
    let url = token_url(&op);
    let (code, pkce) = code(&op).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let first = token_request(&op, &form, &[&key.proof("POST", &url, None, None)]).await;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let nonce = first.headers()["dpop-nonce"].to_str().expect("ascii").to_owned();
    assert_eq!(json(first).await["error"], "use_dpop_nonce");
    // A made-up nonce is no better.
    let forged = token_request(&op, &form, &[&key.proof("POST", &url, None, Some("1.2.3"))]).await;
    assert_eq!(json(forged).await["error"], "use_dpop_nonce");

    let retry = token_request(&op, &form, &[&key.proof("POST", &url, None, Some(&nonce))]).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert!(retry.headers().get("dpop-nonce").is_some(), "a fresh nonce on success too");
    let tokens = json(retry).await;
    assert_eq!(tokens["token_type"], "DPoP");

    // UserInfo wants one too.
    let token = tokens["access_token"].as_str().expect("access token");
    let response = userinfo(&op, "GET", token, Some(&key.proof("GET", &userinfo_url(&op), Some(token), None))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).starts_with("DPoP error=\"use_dpop_nonce\""), "{}", challenge(&response));
    let nonce = response.headers()["dpop-nonce"].to_str().expect("ascii").to_owned();
    let response =
        userinfo(&op, "GET", token, Some(&key.proof("GET", &userinfo_url(&op), Some(token), Some(&nonce)))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_nonce_fault_requires_nonces_at_runtime() {
    let op = TestProvider::start().await.expect("start");
    let key = TestDpopKey::generate();
    let url = token_url(&op);
    let response = try_proof(&op, &key.proof("POST", &url, None, None)).await;
    assert!(response.headers().get("dpop-nonce").is_none());
    assert_eq!(json(response).await["error"], "invalid_grant");

    op.inject(Fault::DpopNonceRequired);
    let response = try_proof(&op, &key.proof("POST", &url, None, None)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let nonce = response.headers()["dpop-nonce"].to_str().expect("ascii").to_owned();
    assert_eq!(json(response).await["error"], "use_dpop_nonce");
    let response = try_proof(&op, &key.proof("POST", &url, None, Some(&nonce))).await;
    assert_eq!(json(response).await["error"], "invalid_grant");
    op.clear_faults();
}

async fn userinfo(op: &TestProvider, method: &str, token: &str, proof: Option<&str>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http().request(method, userinfo_url(op)).header("Authorization", format!("DPoP {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.expect("userinfo")
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"].to_str().expect("ascii").to_owned()
}

async fn refused_at_userinfo(response: reqwest::Response, error: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge(&response);
    assert!(challenge.starts_with(&format!("DPoP error=\"{error}\"")), "{challenge}");
    assert_eq!(json(response).await["error"], error);
}

#[tokio::test]
async fn userinfo_takes_dpop_bound_tokens_with_a_proof() {
    let op = TestProvider::start().await.expect("start");
    let key = TestDpopKey::generate();
    let tokens = bound_tokens(&op, &key).await;
    let token = tokens["access_token"].as_str().expect("access token");
    let url = userinfo_url(&op);

    let response = userinfo(&op, "GET", token, Some(&key.proof("GET", &url, Some(token), None))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["sub"], "alice");
    let response = userinfo(&op, "POST", token, Some(&key.proof("POST", &url, Some(token), None))).await;
    assert_eq!(response.status(), StatusCode::OK);

    // As a bearer token: refused.
    let bearer = http().get(&url).bearer_auth(token).send().await.expect("userinfo");
    refused_at_userinfo(bearer, "invalid_token").await;
    // Wrong ath, no proof, another key, wrong htm, wrong htu, a replay.
    refused_at_userinfo(
        userinfo(&op, "GET", token, Some(&key.proof("GET", &url, Some("other"), None))).await,
        "invalid_dpop_proof",
    )
    .await;
    refused_at_userinfo(
        userinfo(&op, "GET", token, Some(&key.proof("GET", &url, None, None))).await,
        "invalid_dpop_proof",
    )
    .await;
    refused_at_userinfo(userinfo(&op, "GET", token, None).await, "invalid_dpop_proof").await;
    let other = TestDpopKey::generate();
    refused_at_userinfo(
        userinfo(&op, "GET", token, Some(&other.proof("GET", &url, Some(token), None))).await,
        "invalid_dpop_proof",
    )
    .await;
    refused_at_userinfo(
        userinfo(&op, "GET", token, Some(&key.proof("POST", &url, Some(token), None))).await,
        "invalid_dpop_proof",
    )
    .await;
    refused_at_userinfo(
        userinfo(&op, "GET", token, Some(&key.proof("GET", &token_url(&op), Some(token), None))).await,
        "invalid_dpop_proof",
    )
    .await;
    let proof = key.proof("GET", &url, Some(token), None);
    assert_eq!(userinfo(&op, "GET", token, Some(&proof)).await.status(), StatusCode::OK);
    refused_at_userinfo(userinfo(&op, "GET", token, Some(&proof)).await, "invalid_dpop_proof").await;

    // A bearer token sent as DPoP, and an unknown token.
    let plain = op.mint_access_token("openid");
    refused_at_userinfo(
        userinfo(&op, "GET", &plain, Some(&key.proof("GET", &url, Some(&plain), None))).await,
        "invalid_token",
    )
    .await;
    refused_at_userinfo(
        userinfo(&op, "GET", "unknown", Some(&key.proof("GET", &url, Some("unknown"), None))).await,
        "invalid_token",
    )
    .await;
    // Bearer tokens still work as before.
    let ok = http().get(&url).bearer_auth(&plain).send().await.expect("userinfo");
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn minted_dpop_tokens_carry_the_thumbprint() {
    let op = TestProvider::start().await.expect("start");
    let key = TestDpopKey::generate();

    let jwt = op.mint_dpop_jwt_access_token("https://api.example", "read write", key.jkt());
    assert_eq!(header(&jwt)["typ"], "at+jwt");
    assert_eq!(header(&jwt)["kid"], op.kid());
    let claims = claims(&jwt);
    assert_eq!(claims["cnf"], json!({ "jkt": key.jkt() }));
    assert_eq!(claims["aud"], "https://api.example");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["iss"], op.issuer());

    let opaque = op.mint_dpop_access_token_for("https://api.example", "read", key.jkt());
    let answer = introspect(&op, &opaque).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "DPoP");
    assert_eq!(answer["cnf"]["jkt"], key.jkt());
    assert_eq!(answer["aud"], "https://api.example");
    assert!(introspect(&op, &op.mint_access_token_for("https://api.example", "read")).await.get("cnf").is_none());
}
