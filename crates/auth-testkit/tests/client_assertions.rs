//! RFC 7523 client assertions (`private_key_jwt`, `client_secret_jwt`), crafted by hand with
//! jsonwebtoken: what the provider accepts, and each check it refuses on.

mod common;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_testkit::{ClientAuthMethod, Fault, TestClient, TestClientKey, TestProvider};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const HS_SECRET: &str = "a-shared-secret-of-32-bytes-or-more!";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

/// Keys made once for the whole test binary (RSA generation is slow in debug builds).
struct Keys {
    rsa: TestClientKey,
    ec: TestClientKey,
    ed: TestClientKey,
    other_ec: TestClientKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestClientKey::rsa(),
        ec: TestClientKey::ec_p256(),
        ed: TestClientKey::ed25519(),
        other_ec: TestClientKey::ec_p256(),
    })
}

fn without(mut jwk: Value, member: &str) -> Value {
    jwk.as_object_mut().expect("object").remove(member);
    jwk
}

/// A provider with one client per method: `rsa`, `ec`, `ed` (registered without `kid`), `pss`
/// (the RSA key without `alg`), `hs` (client_secret_jwt) and the default `test-client`.
async fn provider() -> TestProvider {
    let k = keys();
    TestProvider::builder()
        .client(TestClient::private_key_jwt("rsa", k.rsa.public_jwk()))
        .client(TestClient::private_key_jwt("ec", k.other_ec.public_jwk()).with_jwk(k.ec.public_jwk()))
        .client(TestClient::private_key_jwt("ed", without(k.ed.public_jwk(), "kid")))
        .client(TestClient::private_key_jwt("pss", without(k.rsa.public_jwk(), "alg")))
        .client(TestClient::secret_jwt("hs", HS_SECRET))
        .start()
        .await
        .expect("start")
}

fn claims_for(client_id: &str, aud: &str) -> Value {
    let now = now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": format!("jti-{}", pkce().verifier),
    })
}

/// Signs `claims` with the private PEM of `key`, as a client library would: header `alg`, and
/// `kid` unless `kid` is `None`.
fn sign(key: &TestClientKey, kid: Option<&str>, claims: &Value) -> String {
    let pem = key.private_pem();
    let (alg, encoding) = match key.alg() {
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes())),
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes())),
        "EdDSA" => (Algorithm::EdDSA, EncodingKey::from_ed_pem(pem.as_bytes())),
        other => panic!("unexpected alg {other}"),
    };
    sign_with(alg, kid, claims, &encoding.expect("PEM"))
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn hs(alg: Algorithm, secret: &str, claims: &Value) -> String {
    sign_with(alg, None, claims, &EncodingKey::from_secret(secret.as_bytes()))
}

/// POSTs an assertion (and `extra` parameters) to `path`; introspection takes a dummy token.
async fn post(op: &TestProvider, path: &str, assertion: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("client_assertion_type", ASSERTION_TYPE), ("client_assertion", assertion)];
    if path != "/token" {
        form.push(("token", "no-such-token"));
    }
    form.extend_from_slice(extra);
    http().post(format!("{}{path}", op.issuer())).form(&form).send().await.expect("request")
}

async fn accepted(op: &TestProvider, assertion: &str) {
    let response = post(op, "/introspect", assertion, &[]).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false);
}

/// Expects `401 invalid_client` whose description contains `why`.
async fn refused_at(op: &TestProvider, path: &str, assertion: &str, extra: &[(&str, &str)], why: &str) {
    let response = post(op, path, assertion, extra).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let description = body["error_description"].as_str().expect("error_description");
    assert!(description.contains(why), "{description:?} should say {why:?}");
}

async fn refused(op: &TestProvider, assertion: &str, why: &str) {
    refused_at(op, "/introspect", assertion, &[], why).await;
}

#[tokio::test]
async fn accepted_for_rsa_ec_ed25519_and_hmac() {
    let op = provider().await;
    let k = keys();
    let aud = op.issuer().to_owned();

    accepted(&op, &sign(&k.rsa, Some(k.rsa.kid()), &claims_for("rsa", &aud))).await;
    // The second registered key of `ec`, chosen by kid …
    accepted(&op, &sign(&k.ec, Some(k.ec.kid()), &claims_for("ec", &aud))).await;
    // … or found by trying each key when the header has no kid.
    accepted(&op, &sign(&k.ec, None, &claims_for("ec", &aud))).await;
    accepted(&op, &sign(&k.ed, None, &claims_for("ed", &aud))).await;
    // PS256 with an RSA key registered without `alg`.
    let pem = EncodingKey::from_rsa_pem(k.rsa.private_pem().as_bytes()).expect("PEM");
    accepted(&op, &sign_with(Algorithm::PS256, Some(k.rsa.kid()), &claims_for("pss", &aud), &pem)).await;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        accepted(&op, &hs(alg, HS_SECRET, &claims_for("hs", &aud))).await;
    }
    // TestClientKey's own helper makes the same kind of assertion.
    accepted(&op, &k.rsa.client_assertion("rsa", &aud)).await;
    assert_eq!(op.client_assertions_accepted(), 9);

    // A matching client_id in the body is fine; the endpoint URL is an accepted audience too,
    // as is an array that contains an accepted audience.
    let at_endpoint = claims_for("rsa", &format!("{aud}/introspect"));
    let response =
        post(&op, "/introspect", &sign(&k.rsa, Some(k.rsa.kid()), &at_endpoint), &[("client_id", "rsa")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut array = claims_for("ec", &aud);
    array["aud"] = json!(["https://elsewhere.example", aud]);
    accepted(&op, &sign(&k.ec, None, &array)).await;
    assert_eq!(op.client_assertions_accepted(), 11);
}

#[tokio::test]
async fn private_key_jwt_at_the_token_endpoint_and_revocation() {
    let op = provider().await;
    let k = keys();
    let pkce = pkce();
    let callback = authorize(&op, &pkce, &[("client_id", "rsa")]).await;
    let code = param(&callback, "code").expect("code");
    let assertion = sign(&k.rsa, Some(k.rsa.kid()), &claims_for("rsa", &format!("{}/token", op.issuer())));
    let response = post(
        &op,
        "/token",
        &assertion,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = json(response).await;
    assert_eq!(claims(tokens["id_token"].as_str().expect("id_token"))["aud"], "rsa");
    assert_eq!(op.client_assertions_accepted(), 1);

    let access_token = tokens["access_token"].as_str().expect("access_token");
    let assertion = sign(&k.rsa, Some(k.rsa.kid()), &claims_for("rsa", &format!("{}/revoke", op.issuer())));
    let response = http()
        .post(format!("{}/revoke", op.issuer()))
        .form(&[("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &assertion), ("token", access_token)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(op.is_revoked(access_token));
    assert_eq!(op.client_assertions_accepted(), 2);
}

#[tokio::test]
async fn each_check_refuses_with_its_reason() {
    let op = provider().await;
    let k = keys();
    let aud = op.issuer().to_owned();
    let rsa = |claims: &Value| sign(&k.rsa, Some(k.rsa.kid()), claims);

    // Wrong audience, also the URL of another endpoint.
    refused(&op, &rsa(&claims_for("rsa", "https://elsewhere.example")), "wrong aud").await;
    refused(&op, &rsa(&claims_for("rsa", &format!("{aud}/revoke"))), "wrong aud").await;

    // Replayed jti: the same assertion twice.
    let once = rsa(&claims_for("rsa", &aud));
    accepted(&op, &once).await;
    refused(&op, &once, "replayed jti").await;
    // The same jti in a new assertion too.
    let mut again = claims_for("rsa", &aud);
    again["jti"] = claims(&once)["jti"].clone();
    refused(&op, &rsa(&again), "replayed jti").await;

    let mut c = claims_for("rsa", &aud);
    c["exp"] = json!(now() - 5);
    refused(&op, &rsa(&c), "expired").await;
    c["exp"] = json!(now() + 3600);
    refused(&op, &rsa(&c), "lives too long").await;
    let mut c = claims_for("rsa", &aud);
    c["iat"] = json!(now() + 120);
    refused(&op, &rsa(&c), "iat").await;
    for missing in ["exp", "jti", "aud"] {
        let mut c = claims_for("rsa", &aud);
        c.as_object_mut().expect("object").remove(missing);
        refused(&op, &rsa(&c), &format!("no {missing} claim")).await;
    }

    // Wrong key: another key under the registered kid, and an unknown kid.
    refused(&op, &sign(&k.other_ec, Some(k.ec.kid()), &claims_for("ec", &aud)), "bad signature").await;
    refused(&op, &sign(&k.ec, None, &claims_for("ed", &aud)), "no registered key that suits alg ES256").await;
    refused(&op, &sign(&k.ed, None, &claims_for("ec", &aud)), "no registered key that suits alg EdDSA").await;
    refused(&op, &sign(&k.rsa, Some("not-registered"), &claims_for("rsa", &aud)), "unknown kid").await;
    refused(&op, &hs(Algorithm::HS256, "wrong-secret", &claims_for("hs", &aud)), "bad signature").await;
    // An RSA key with `alg` RS256 does not verify PS256.
    let pem = EncodingKey::from_rsa_pem(k.rsa.private_pem().as_bytes()).expect("PEM");
    let ps = sign_with(Algorithm::PS256, Some(k.rsa.kid()), &claims_for("rsa", &aud), &pem);
    refused(&op, &ps, "does not suit alg PS256").await;
    // A tampered payload.
    let good = rsa(&claims_for("rsa", &aud));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut tampered = claims_for("rsa", &aud);
    tampered["exp"] = json!(now() + 300);
    parts[1] = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, tampered.to_string());
    refused(&op, &parts.join("."), "bad signature").await;

    // Wrong iss (not the sub), an unknown client, a body client_id of another client.
    let mut c = claims_for("rsa", &aud);
    c["iss"] = json!("ec");
    refused(&op, &rsa(&c), "wrong iss").await;
    refused(&op, &rsa(&claims_for("nobody", &aud)), "unknown client").await;
    refused_at(&op, "/introspect", &rsa(&claims_for("rsa", &aud)), &[("client_id", "ec")], "differs").await;

    // Method mismatch: a client_secret_basic client with an assertion, a private_key_jwt
    // client with an HMAC assertion, a client_secret_jwt client with a signature.
    refused(&op, &hs(Algorithm::HS256, op.client_secret(), &claims_for("test-client", &aud)), "client_secret_basic")
        .await;
    refused(&op, &hs(Algorithm::HS256, HS_SECRET, &claims_for("rsa", &aud)), "alg \"HS256\" is not accepted").await;
    refused(&op, &sign(&k.ec, None, &claims_for("hs", &aud)), "not accepted for client_secret_jwt").await;
    // … and a private_key_jwt client without an assertion.
    let response = http()
        .post(format!("{}/introspect", op.issuer()))
        .basic_auth("rsa", Some("guess"))
        .form(&[("token", "t")])
        .send()
        .await
        .expect("introspect");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json(response).await["error_description"].as_str().expect("text").contains("private_key_jwt"));

    // Not a JWT, alg none, an unknown assertion type.
    refused(&op, "not-a-jwt", "compact serialization").await;
    let unsigned = format!(
        "{}.{}.",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, r#"{"alg":"none"}"#),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims_for("rsa", &aud).to_string()),
    );
    refused(&op, &unsigned, "alg \"none\" is not accepted").await;
    let response = http()
        .post(format!("{}/introspect", op.issuer()))
        .form(&[("client_assertion_type", "urn:example:saml"), ("client_assertion", &good), ("token", "t")])
        .send()
        .await
        .expect("introspect");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // An assertion beside a secret is two methods at once.
    let response = post(&op, "/introspect", &good, &[("client_secret", "x")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Only the first `once` and the first good ones were accepted.
    assert_eq!(op.client_assertions_accepted(), 1);
}

#[tokio::test]
async fn audience_fault_accepts_only_the_token_endpoint() {
    let op = provider().await;
    let k = keys();
    let iss = op.issuer().to_owned();
    let token_endpoint = format!("{iss}/token");
    let ec = |aud: &str| sign(&k.ec, None, &claims_for("ec", aud));

    accepted(&op, &ec(&iss)).await;
    accepted(&op, &ec(&format!("{iss}/introspect"))).await;
    refused(&op, &ec(&token_endpoint), "wrong aud").await;

    op.inject(Fault::AssertionAudienceTokenEndpointOnly);
    refused(&op, &ec(&iss), "wrong aud").await;
    refused(&op, &ec(&format!("{iss}/introspect")), "wrong aud").await;
    accepted(&op, &ec(&token_endpoint)).await;
    assert_eq!(op.client_assertions_accepted(), 3);
}

#[tokio::test]
async fn clock_skew_moves_the_provider_clock() {
    let op = provider().await;
    let k = keys();
    let aud = op.issuer().to_owned();
    // Valid for 60 s by the real clock …
    accepted(&op, &sign(&k.ed, None, &claims_for("ed", &aud))).await;
    // … expired by a clock two minutes ahead.
    op.inject(Fault::ClockSkew(120));
    refused(&op, &sign(&k.ed, None, &claims_for("ed", &aud)), "expired").await;
    op.clear_faults();
    // A clock behind: iat now is more than 30 s in its future.
    op.inject(Fault::ClockSkew(-120));
    refused(&op, &sign(&k.ed, None, &claims_for("ed", &aud)), "iat").await;
    op.clear_faults();
    accepted(&op, &sign(&k.ed, None, &claims_for("ed", &aud))).await;
    assert_eq!(op.client_assertions_accepted(), 2);
}

#[tokio::test]
async fn discovery_advertises_the_methods_and_algorithms() {
    let op = TestProvider::start().await.expect("start");
    let doc = json(http().get(op.discovery_url()).send().await.expect("discovery")).await;
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = doc[format!("{endpoint}_endpoint_auth_methods_supported")].as_array().expect(endpoint).clone();
        for method in ["client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"] {
            assert!(methods.contains(&json!(method)), "{endpoint}: {method}");
        }
        assert_eq!(
            doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            json!(["RS256", "PS256", "ES256", "EdDSA", "HS256"])
        );
    }
    assert_eq!(ClientAuthMethod::PrivateKeyJwt.as_str(), "private_key_jwt");
    assert_eq!(ClientAuthMethod::SecretJwt.to_string(), "client_secret_jwt");
}

#[tokio::test]
async fn start_refuses_unusable_client_keys() {
    let k = keys();
    let no_key = TestClient::public("svc").with_auth_method(ClientAuthMethod::PrivateKeyJwt);
    let error = TestProvider::builder().client(no_key).start().await.expect_err("no key");
    assert!(error.to_string().contains("no key"), "{error}");

    let private = TestClient::private_key_jwt("svc", k.ec.private_jwk());
    let error = TestProvider::builder().client(private).start().await.expect_err("private key");
    assert!(error.to_string().contains("private member"), "{error}");

    let junk = TestClient::private_key_jwt("svc", json!({"kty": "RSA", "n": 1}));
    assert!(TestProvider::builder().client(junk).start().await.is_err());

    let no_secret = TestClient::public("svc").with_auth_method(ClientAuthMethod::SecretJwt);
    assert!(TestProvider::builder().client(no_secret).start().await.is_err());
}
