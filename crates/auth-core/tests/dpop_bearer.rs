//! Resource-server DPoP (RFC 9449 §7): DPoP-bound access tokens, JWT or opaque, count only with
//! `Authorization: DPoP` and a valid proof, checked on every request.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use auth_core::{Auth, Bearer, Error, Method, RequestView};
use auth_testkit::TestDpopKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::rig;
use serde_json::{Value, json};

const BASE: &str = "http://127.0.0.1:3000";
const PATH: &str = "/api/whoami";
const URL: &str = "http://127.0.0.1:3000/api/whoami";
const ALGS: &str = "algs=\"ES256 RS256 PS256 EdDSA\"";

/// `GET /api/whoami?x=1` with `Authorization: {authorization}` and these `DPoP` headers.
async fn call(auth: &Auth, authorization: &str, proofs: &[&str]) -> Result<Arc<Bearer>, Error> {
    let req = RequestView::new(Method::Get, PATH, Some("x=1")).with_header("authorization", authorization);
    auth.bearer_with_dpop(&req, "GET", proofs).await
}

async fn dpop(auth: &Auth, token: &str, proof: &str) -> Result<Arc<Bearer>, Error> {
    call(auth, &format!("DPoP {token}"), &[proof]).await
}

fn proof_refused(outcome: Result<Arc<Bearer>, Error>, what: &str) -> Error {
    match outcome {
        Err(err @ Error::DpopProofInvalid(_)) => err,
        other => panic!("{what}: {other:?}"),
    }
}

/// The `WWW-Authenticate` values of a refusal, in order.
fn challenges(auth: &Auth, err: &Error) -> Vec<String> {
    let res = auth.bearer_refusal(err);
    assert_eq!(res.status, err.status());
    res.headers.iter().filter(|(n, _)| *n == "www-authenticate").map(|(_, v)| v.clone()).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn a_bound_jwt_counts_with_its_proof_on_every_request() {
    let r = rig().await;
    let key = TestDpopKey::generate();
    let token = r.op.mint_dpop_jwt_access_token(BASE, "read", key.jkt());
    let bearer = dpop(&r.auth, &token, &key.proof("GET", URL, Some(&token), None)).await.expect("a valid proof");
    assert_eq!(bearer.dpop_jkt(), Some(key.jkt()));
    assert!(bearer.is_jwt() && bearer.has_scope("read"));
    // The query (and a fragment) of htu are no part of the comparison.
    let proof = key.proof("GET", &format!("{URL}?x=1#frag"), Some(&token), None);
    dpop(&r.auth, &token, &proof).await.expect("htu with a query");
    assert_eq!(r.op.jwks_requests(), 1, "the token's validation comes from the cache");

    // Cached or not, the proof is checked every time.
    let replay = key.proof("GET", URL, Some(&token), None);
    dpop(&r.auth, &token, &replay).await.unwrap();
    let err = proof_refused(dpop(&r.auth, &token, &replay).await, "a replayed proof");
    assert!(err.to_string().contains("replayed"), "{err}");
    proof_refused(call(&r.auth, &format!("DPoP {token}"), &[]).await, "no proof, with the token cached");
    assert_eq!(challenges(&r.auth, &err), [format!("DPoP error=\"invalid_dpop_proof\", {ALGS}")]);
    assert_eq!(r.auth.bearer_refusal(&err).status, 401);
    assert_eq!(r.op.jwks_requests(), 1);
}

#[tokio::test]
async fn a_bound_opaque_token_counts_with_its_proof() {
    let r = rig().await;
    let key = TestDpopKey::generate();
    let token = r.op.mint_dpop_access_token_for(BASE, "read", key.jkt());
    let bearer = dpop(&r.auth, &token, &key.proof("GET", URL, Some(&token), None)).await.expect("a valid proof");
    assert_eq!(bearer.dpop_jkt(), Some(key.jkt()));
    assert!(!bearer.is_jwt());
    dpop(&r.auth, &token, &key.proof("GET", URL, Some(&token), None)).await.expect("again, from the cache");
    assert_eq!(r.op.introspect_requests(), 1, "introspected once");
    let other = TestDpopKey::generate();
    proof_refused(dpop(&r.auth, &token, &other.proof("GET", URL, Some(&token), None)).await, "another key");
    proof_refused(dpop(&r.auth, &token, &key.proof("POST", URL, Some(&token), None)).await, "another method");

    // As a bearer token it does not count, cached or not.
    let err = call(&r.auth, &format!("Bearer {token}"), &[]).await.unwrap_err();
    assert!(matches!(&err, Error::BearerInvalid(why) if why.contains("bound")), "{err:?}");
    let fresh = r.op.mint_dpop_access_token_for(BASE, "read", key.jkt());
    let err = call(&r.auth, &format!("Bearer {fresh}"), &[]).await.unwrap_err();
    assert!(matches!(&err, Error::BearerInvalid(why) if why.contains("bound")), "{err:?}");
}

#[tokio::test]
async fn a_bound_token_sent_as_a_bearer_token_is_refused() {
    let r = rig().await;
    let key = TestDpopKey::generate();
    let token = r.op.mint_dpop_jwt_access_token(BASE, "read", key.jkt());
    let proof = key.proof("GET", URL, Some(&token), None);
    // Even with a valid proof alongside: the Bearer scheme is no proof of possession.
    let err = call(&r.auth, &format!("Bearer {token}"), &[&proof]).await.unwrap_err();
    assert!(matches!(&err, Error::BearerInvalid(why) if why.contains("bound")), "{err:?}");
    assert_eq!(
        challenges(&r.auth, &err),
        [format!("Bearer realm=\"{BASE}\", error=\"invalid_token\""), format!("DPoP {ALGS}")]
    );
    // `Auth::bearer` sees no DPoP header: a DPoP request through it has no proof.
    let header = format!("DPoP {token}");
    let req = RequestView::new(Method::Get, PATH, None).with_header("authorization", &header);
    proof_refused(r.auth.bearer(&req).await, "Auth::bearer");
    // The proof is still unused.
    dpop(&r.auth, &token, &proof).await.expect("with the DPoP scheme");
}

#[tokio::test]
async fn the_dpop_scheme_needs_a_dpop_bound_token() {
    let r = rig().await;
    let key = TestDpopKey::generate();
    for token in [r.op.mint_jwt_access_token(BASE, "read"), r.op.mint_access_token_for(BASE, "read")] {
        let err = dpop(&r.auth, &token, &key.proof("GET", URL, Some(&token), None)).await.unwrap_err();
        assert!(matches!(&err, Error::DpopTokenInvalid(why) if why.contains("not bound")), "{err:?}");
        assert_eq!(challenges(&r.auth, &err), [format!("DPoP error=\"invalid_token\", {ALGS}")]);
        call(&r.auth, &format!("Bearer {token}"), &[]).await.expect("as the bearer token it is");
    }
    // An invalid token with the DPoP scheme: invalid_token, in the DPoP challenge.
    let err = dpop(&r.auth, "not-a-token", &key.proof("GET", URL, Some("not-a-token"), None)).await.unwrap_err();
    assert!(matches!(err, Error::DpopTokenInvalid(_)), "{err:?}");
    // Bound to a certificate (RFC 8705): refused whichever scheme.
    let claims = json!({
        "iss": r.op.issuer(), "sub": "alice", "aud": BASE, "client_id": r.op.client_id(), "scope": "read",
        "iat": now(), "exp": now() + 300, "jti": "j1", "cnf": { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" },
    });
    let mtls = r.op.sign_jwt_with_type(&claims, "at+jwt");
    let err = dpop(&r.auth, &mtls, &key.proof("GET", URL, Some(&mtls), None)).await.unwrap_err();
    assert!(matches!(&err, Error::DpopTokenInvalid(why) if why.contains("bound to a key")), "{err:?}");
    let err = call(&r.auth, &format!("Bearer {mtls}"), &[]).await.unwrap_err();
    assert!(matches!(&err, Error::BearerInvalid(why) if why.contains("bound to a key")), "{err:?}");
}

#[tokio::test]
async fn every_part_of_the_proof_is_checked() {
    let r = rig().await;
    let key = TestDpopKey::generate();
    let token = r.op.mint_dpop_jwt_access_token(BASE, "read", key.jkt());
    let claims = || key.proof_claims("GET", URL, Some(&token), None);
    let with_claims = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims();
        edit(&mut c);
        key.sign_jws(&key.proof_header(), &c)
    };
    let with_header = |edit: &dyn Fn(&mut Value)| {
        let mut h = key.proof_header();
        edit(&mut h);
        key.sign_jws(&h, &claims())
    };
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned =
        format!("{}.{}.", b64(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()})), b64(&claims()));
    let other = TestDpopKey::generate();
    let mut private = key.public_jwk();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    let cases = [
        ("wrong htm", key.proof("POST", URL, Some(&token), None), "htm"),
        ("htm in lowercase", key.proof("get", URL, Some(&token), None), "htm"),
        ("wrong htu path", key.proof("GET", "http://127.0.0.1:3000/api/other", Some(&token), None), "htu"),
        ("wrong htu host", key.proof("GET", "http://evil.example:3000/api/whoami", Some(&token), None), "htu"),
        ("wrong htu scheme", key.proof("GET", "https://127.0.0.1:3000/api/whoami", Some(&token), None), "htu"),
        ("stale iat", with_claims(&|c| c["iat"] = json!(now() - 300)), "iat"),
        ("future iat", with_claims(&|c| c["iat"] = json!(now() + 300)), "iat"),
        ("no jti", with_claims(&|c| drop(c.as_object_mut().unwrap().remove("jti"))), "jti"),
        ("wrong ath", key.proof("GET", URL, Some("another token"), None), "ath"),
        ("no ath", key.proof("GET", URL, None, None), "ath"),
        ("a different key", other.proof("GET", URL, Some(&token), None), "bound to"),
        ("alg none", unsigned, "alg"),
        ("alg HS256", with_header(&|h| h["alg"] = json!("HS256")), "alg"),
        ("typ JWT", with_header(&|h| h["typ"] = json!("JWT")), "typ"),
        ("a private jwk", with_header(&|h| h["jwk"] = private.clone()), "public key"),
        ("another key's jwk", with_header(&|h| h["jwk"] = other.public_jwk()), "signature"),
        ("not a JWS", "garbage".to_owned(), "compact"),
    ];
    for (what, proof, why) in &cases {
        let err = proof_refused(dpop(&r.auth, &token, proof).await, what);
        assert!(err.to_string().contains(why), "{what}: {err}");
        assert!(!err.to_string().contains(&token), "{what}: no token in the error");
        assert_eq!(challenges(&r.auth, &err), [format!("DPoP error=\"invalid_dpop_proof\", {ALGS}")], "{what}");
    }
    let proof = key.proof("GET", URL, Some(&token), None);
    let err = proof_refused(call(&r.auth, &format!("DPoP {token}"), &[&proof, &proof]).await, "two DPoP headers");
    assert!(err.to_string().contains("more than one"), "{err}");
    let err = proof_refused(call(&r.auth, &format!("DPoP {token}"), &[]).await, "no DPoP header");
    assert!(err.to_string().contains("no DPoP proof"), "{err}");
    // None of the refused proofs was recorded: the valid one, sent last, is accepted once.
    dpop(&r.auth, &token, &proof).await.expect("valid");
    proof_refused(dpop(&r.auth, &token, &proof).await, "replayed");
}

#[tokio::test]
async fn missing_tokens_and_scopes_advertise_dpop_too() {
    let r = rig().await;
    let missing = r.auth.bearer(&RequestView::new(Method::Get, PATH, None)).await.unwrap_err();
    assert!(matches!(missing, Error::BearerMissing));
    assert_eq!(challenges(&r.auth, &missing), [format!("Bearer realm=\"{BASE}\""), format!("DPoP {ALGS}")]);
    let scope = Error::InsufficientScope("admin".into());
    assert_eq!(
        challenges(&r.auth, &scope),
        [
            format!("Bearer realm=\"{BASE}\", error=\"insufficient_scope\", scope=\"admin\""),
            format!("DPoP error=\"insufficient_scope\", scope=\"admin\", {ALGS}"),
        ]
    );
    let res = r.auth.bearer_refusal(&Error::DpopProofInvalid("x"));
    assert_eq!(res.status, 401);
    assert!(res.body.contains("invalid_dpop_proof"), "{}", res.body);
}
