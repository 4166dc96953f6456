//! Each fault shows up on the wire as documented, and a strict client check catches it.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_testkit::{Fault, SigningAlg, TestProvider};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

/// Logs in with `fault` active and returns the token response.
async fn tokens_with(op: &TestProvider, fault: Fault) -> serde_json::Value {
    op.clear_faults();
    op.inject(fault);
    let tokens = tokens(op).await;
    op.clear_faults();
    tokens
}

async fn id_token_with(op: &TestProvider, fault: Fault) -> String {
    tokens_with(op, fault).await["id_token"].as_str().expect("id_token").to_owned()
}

#[tokio::test]
async fn id_token_signature_faults_fail_verification() {
    let op = TestProvider::start().await.expect("start");
    assert!(verify(&op, &id_token_with(&op, Fault::IdTokenNoKid).await).await.is_err());

    let bad = id_token_with(&op, Fault::IdTokenBadSignature).await;
    assert_eq!(header(&bad)["kid"], op.kid());
    assert!(verify(&op, &bad).await.expect_err("bad signature").contains("Signature"));

    let none = id_token_with(&op, Fault::IdTokenAlgNone).await;
    assert_eq!(header(&none)["alg"], "none");
    assert!(none.ends_with('.'), "empty signature");
    assert!(verify(&op, &none).await.is_err());

    let hs = id_token_with(&op, Fault::IdTokenHs256).await;
    assert_eq!(header(&hs)["alg"], "HS256");
    let key = jsonwebtoken::DecodingKey::from_secret(op.client_secret().as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[op.client_id()]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(&hs, &key, &validation).is_ok(), "keyed with the client secret");
    assert!(verify(&op, &hs).await.is_err());

    let unknown = id_token_with(&op, Fault::IdTokenUnknownKid).await;
    assert_ne!(header(&unknown)["kid"], op.kid());
    assert_eq!(verify(&op, &unknown).await.expect_err("unknown kid"), "unknown kid");
}

#[tokio::test]
async fn id_token_claim_faults() {
    let op = TestProvider::start().await.expect("start");
    let iss = op.issuer().to_owned();

    let t = id_token_with(&op, Fault::IdTokenWrongIssuer).await;
    assert_eq!(claims(&t)["iss"], format!("{iss}/wrong-issuer"));
    assert!(verify(&op, &t).await.is_err());

    let t = id_token_with(&op, Fault::IdTokenWrongAudience).await;
    assert_eq!(claims(&t)["aud"], "other-client");
    assert!(verify(&op, &t).await.is_err());

    let t = id_token_with(&op, Fault::IdTokenExtraAudience).await;
    assert_eq!(claims(&t)["aud"], json!([op.client_id(), "other-client"]));
    assert_eq!(claims(&t)["azp"], op.client_id());

    let t = id_token_with(&op, Fault::IdTokenWrongAzp).await;
    assert_eq!(claims(&t)["azp"], "other-client");

    let t = id_token_with(&op, Fault::IdTokenWrongNonce).await;
    assert_eq!(claims(&t)["nonce"], "nonce-1-wrong");
    let t = id_token_with(&op, Fault::IdTokenMissingNonce).await;
    assert!(claims(&t).get("nonce").is_none());

    let t = id_token_with(&op, Fault::IdTokenExpired).await;
    assert!(claims(&t)["exp"].as_u64().expect("exp") < now());
    assert!(verify(&op, &t).await.expect_err("expired").contains("Expired"));

    let t = id_token_with(&op, Fault::IdTokenIatInFuture).await;
    assert!(claims(&t)["iat"].as_u64().expect("iat") >= now() + 3500);

    for claim in ["sub", "exp", "iat", "aud", "at_hash", "sid"] {
        let t = id_token_with(&op, Fault::IdTokenMissingClaim(claim)).await;
        assert!(claims(&t).get(claim).is_none(), "{claim}");
    }

    let tokens = tokens_with(&op, Fault::AtHashMismatch).await;
    let t = claims(tokens["id_token"].as_str().expect("id"));
    assert_ne!(t["at_hash"], at_hash(tokens["access_token"].as_str().expect("at")));

    let t = id_token_with(&op, Fault::IdTokenAuthTimeStale).await;
    assert!(claims(&t)["auth_time"].as_u64().expect("auth_time") < now() - 80_000);
}

#[tokio::test]
async fn several_faults_at_once_and_clearing() {
    let op = TestProvider::start().await.expect("start");
    op.inject(Fault::IdTokenWrongAzp);
    op.inject(Fault::IdTokenMissingNonce);
    op.inject(Fault::IdTokenMissingNonce);
    assert_eq!(op.faults(), vec![Fault::IdTokenWrongAzp, Fault::IdTokenMissingNonce]);
    let t = claims(tokens(&op).await["id_token"].as_str().expect("id"));
    assert_eq!(t["azp"], "other-client");
    assert!(t.get("nonce").is_none());
    op.clear_faults();
    let t = tokens(&op).await["id_token"].as_str().expect("id").to_owned();
    assert!(verify(&op, &t).await.is_ok());
}

#[tokio::test]
async fn callback_faults() {
    let op = TestProvider::start().await.expect("start");
    op.inject(Fault::CallbackIssMissing);
    let callback = authorize(&op, &pkce(), &[]).await;
    assert!(param(&callback, "code").is_some());
    assert_eq!(param(&callback, "iss"), None);
    op.clear_faults();

    op.inject(Fault::CallbackIssWrong);
    let callback = authorize(&op, &pkce(), &[]).await;
    assert_eq!(param(&callback, "iss"), Some(format!("{}/wrong-issuer", op.issuer())));
    op.clear_faults();

    op.inject(Fault::CallbackStateWrong);
    let callback = authorize(&op, &pkce(), &[]).await;
    assert_eq!(param(&callback, "state").as_deref(), Some("state-1-wrong"));
    op.clear_faults();

    op.inject(Fault::DenyConsent);
    let callback = authorize(&op, &pkce(), &[]).await;
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&callback, "state").as_deref(), Some("state-1"));
    assert_eq!(param(&callback, "iss").as_deref(), Some(op.issuer()));
    assert_eq!(param(&callback, "code"), None);
}

#[tokio::test]
async fn discovery_and_jwks_faults() {
    let op = TestProvider::start().await.expect("start");
    op.inject(Fault::DiscoveryIssuerMismatch);
    let doc = json(http().get(op.discovery_url()).send().await.expect("get")).await;
    assert_ne!(doc["issuer"], op.issuer());
    op.clear_faults();

    op.inject(Fault::DiscoveryStatus(500));
    let response = http().get(op.discovery_url()).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    op.clear_faults();

    op.inject(Fault::JwksStatus(503));
    let response = http().get(format!("{}/jwks", op.issuer())).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(op.jwks_requests(), 1);
    op.clear_faults();

    // JwksDelay makes concurrent fetches overlap, to test single-flight clients.
    op.inject(Fault::JwksDelay(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    let url = format!("{}/jwks", op.issuer());
    let (a, b) = tokio::join!(http().get(&url).send(), http().get(&url).send());
    assert_eq!(a.expect("a").status(), StatusCode::OK);
    assert_eq!(b.expect("b").status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(op.jwks_requests(), 3);
}

#[tokio::test]
async fn token_endpoint_faults() {
    let op = TestProvider::start().await.expect("start");
    let (code, pkce) = code(&op).await;
    op.inject(Fault::TokenEndpointStatus(500));
    let response = exchange(&op, &code, &pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json(response).await["error"], "server_error");
    op.clear_faults();
    // The faulted request did not consume the code.
    assert_eq!(exchange(&op, &code, &pkce.verifier).await.status(), StatusCode::OK);

    let (code, pkce) = common::code(&op).await;
    op.inject(Fault::TokenEndpointHang);
    let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let result = client
        .post(format!("{}/token", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", pkce.verifier.as_str()),
        ])
        .send()
        .await;
    assert!(result.expect_err("hangs").is_timeout());
    assert_eq!(op.token_requests(), 3);
}

#[tokio::test]
async fn refresh_faults() {
    let op = TestProvider::start().await.expect("start");
    let first = tokens(&op).await;
    let rt = first["refresh_token"].as_str().expect("rt").to_owned();

    op.inject(Fault::RefreshTokenNotRotated);
    op.inject(Fault::RefreshWithoutIdToken);
    let second = json(refresh(&op, &rt).await).await;
    assert!(second.get("refresh_token").is_none());
    assert!(second.get("id_token").is_none());
    assert!(second["access_token"].is_string());
    op.clear_faults();

    op.inject(Fault::RefreshIdTokenSubChanged);
    let third = json(refresh(&op, &rt).await).await;
    let sub = claims(third["id_token"].as_str().expect("id"))["sub"].clone();
    assert_eq!(sub, "alice-other");
    op.clear_faults();

    let rt = third["refresh_token"].as_str().expect("rt");
    op.inject(Fault::RefreshDenied);
    let response = refresh(&op, rt).await;
    assert_eq!(json(response).await["error"], "invalid_grant");
}

#[tokio::test]
async fn userinfo_faults() {
    let op = TestProvider::start().await.expect("start");
    let at = tokens(&op).await["access_token"].as_str().expect("at").to_owned();
    let url = format!("{}/userinfo", op.issuer());
    op.inject(Fault::UserinfoSubMismatch);
    let body = json(http().get(&url).bearer_auth(&at).send().await.expect("get")).await;
    assert_eq!(body["sub"], "alice-other");
    op.clear_faults();
    op.inject(Fault::UserinfoStatus(502));
    let response = http().get(&url).bearer_auth(&at).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn rotate_keys_changes_the_kid_and_the_jwks() {
    let op = TestProvider::start().await.expect("start");
    let old_kid = op.kid();
    let other_kid = op.jwks()["keys"][1]["kid"].clone();
    let old_token = tokens(&op).await["id_token"].as_str().expect("id").to_owned();
    op.rotate_keys();
    assert_ne!(op.kid(), old_kid);
    let jwks = json(http().get(format!("{}/jwks", op.issuer())).send().await.expect("jwks")).await;
    let kids: Vec<_> = jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].clone()).collect();
    // The new ID-token key first, then the key of the other family, which stays.
    assert_eq!(kids, vec![json!(op.kid()), other_kid]);
    assert_eq!(jwks["keys"][1]["alg"], "ES256");
    assert_eq!(verify(&op, &old_token).await.expect_err("old key gone"), "unknown kid");
    let new_token = tokens(&op).await["id_token"].as_str().expect("id").to_owned();
    assert_eq!(header(&new_token)["kid"], op.kid());
    assert!(verify(&op, &new_token).await.is_ok());
}

#[tokio::test]
async fn es256_provider() {
    let op = TestProvider::builder().signing_alg(SigningAlg::ES256).start().await.expect("start");
    let doc = json(http().get(op.discovery_url()).send().await.expect("get")).await;
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["ES256"]));
    let jwk = &op.jwks()["keys"][0];
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("EC"), Some("P-256")));
    let tokens = tokens(&op).await;
    let id_token = tokens["id_token"].as_str().expect("id");
    assert_eq!(header(id_token)["alg"], "ES256");
    let claims = verify(&op, id_token).await.expect("valid");
    assert_eq!(claims["at_hash"], at_hash(tokens["access_token"].as_str().expect("at")));
    op.rotate_keys();
    let id_token = common::tokens(&op).await["id_token"].as_str().expect("id").to_owned();
    assert!(verify(&op, &id_token).await.is_ok());
}

#[tokio::test]
async fn sign_jwt_and_logout_tokens_verify_with_the_jwks() {
    let op = TestProvider::start().await.expect("start");
    let claims = json!({ "iss": op.issuer(), "aud": op.client_id(), "sub": "x", "iat": now(), "exp": now() + 60 });
    let jwt = op.sign_jwt(&claims);
    assert_eq!(verify(&op, &jwt).await.expect("valid")["sub"], "x");

    let _ = tokens(&op).await;
    let sid = op.last_sid().expect("sid");
    let logout = op.logout_token(None, Some(&sid));
    assert_eq!(header(&logout)["typ"], "logout+jwt");
    let c = common::claims(&logout);
    assert_eq!(c["sid"], sid.as_str());
    assert!(c.get("sub").is_none() && c.get("nonce").is_none());
    assert!(c["jti"].is_string());
    assert!(c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());

    let at = op.mint_jwt_access_token("https://api.example.test", "read");
    assert_eq!(header(&at)["typ"], "at+jwt");
    assert_eq!(common::claims(&at)["aud"], "https://api.example.test");
}
