//! Helpers shared by the integration tests: a hand-written client, strict enough to check the
//! provider.
#![allow(dead_code, unreachable_pub)]

use auth_testkit::TestProvider;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::{Response, StatusCode, Url};
use serde_json::Value;

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("rng");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Pkce { challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()), verifier }
}

/// A client that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The authorization URL with sensible defaults; `overrides` replace defaults (an empty value
/// removes the parameter) or add parameters.
pub fn authorize_url(op: &TestProvider, pkce: &Pkce, overrides: &[(&str, &str)]) -> Url {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", op.client_id()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid email profile"),
        ("state", "state-1"),
        ("nonce", "nonce-1"),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in overrides {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    let mut url = Url::parse(&format!("{}/authorize", op.issuer())).expect("url");
    url.query_pairs_mut().extend_pairs(params);
    url
}

pub fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub fn location(response: &Response) -> Url {
    assert_eq!(response.status(), StatusCode::FOUND, "expected a redirect");
    let location = response.headers()["location"].to_str().expect("ascii");
    Url::parse(location).expect("absolute Location")
}

/// Runs the authorization request; returns the callback URL the provider redirected to.
pub async fn authorize(op: &TestProvider, pkce: &Pkce, overrides: &[(&str, &str)]) -> Url {
    let response = http().get(authorize_url(op, pkce, overrides)).send().await.expect("authorize");
    location(&response)
}

/// Authorizes and returns the code and the PKCE pair.
pub async fn code(op: &TestProvider) -> (String, Pkce) {
    let pkce = pkce();
    let callback = authorize(op, &pkce, &[]).await;
    (param(&callback, "code").expect("code"), pkce)
}

/// The token request for `code` with the default client (client_secret_basic).
pub async fn exchange(op: &TestProvider, code: &str, verifier: &str) -> Response {
    http()
        .post(format!("{}/token", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token request")
}

/// A whole login: returns the token response JSON.
pub async fn tokens(op: &TestProvider) -> Value {
    let (code, pkce) = code(op).await;
    let response = exchange(op, &code, &pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

pub async fn refresh(op: &TestProvider, refresh_token: &str) -> Response {
    http()
        .post(format!("{}/token", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .send()
        .await
        .expect("refresh request")
}

pub async fn json(response: Response) -> Value {
    response.json().await.expect("json body")
}

/// The claims of a JWT, without verifying it.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// The header of a JWT, without verifying it.
pub fn header(jwt: &str) -> Value {
    let header = jwt.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json")
}

/// Verifies an ID token the way a client must: key from the JWKS by `kid`, the advertised
/// algorithm only, `iss`, `aud`, `exp`.
pub async fn verify(op: &TestProvider, jwt: &str) -> Result<Value, String> {
    let jwks: JwkSet = http()
        .get(format!("{}/jwks", op.issuer()))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let alg: jsonwebtoken::Algorithm = op.signing_alg().as_str().parse().map_err(|_| "alg")?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[op.issuer()]);
    validation.set_audience(&[op.client_id()]);
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp", "iat"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).map(|data| data.claims).map_err(|e| e.to_string())
}

/// The left half of SHA-256, base64url.
pub fn at_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}
