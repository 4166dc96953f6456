//! The JWKS: a provider's key set as the cache reads it, and the key picked for a token by its
//! header's `kid` and `alg`, as a token check does.
//!
//! Input: the JWKS document (JSON) and a compact JWS, one per line.
//!
//! Properties: nothing panics; the key picked suits the algorithm (its `kty` and `crv`, and its
//! own `alg` if it has one), carries the token's `kid`, or, without a `kid`, is the only key that
//! suits; a verified token's claims are its payload.
#![no_main]

use auth_core::fuzzing::{jose_header, jwks, unverified_claims};
use libfuzzer_sys::fuzz_target;

fn suits(kty: &str, crv: Option<&str>, own_alg: Option<&str>, alg: &str) -> bool {
    let family = match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => kty == "RSA",
        "ES256" => kty == "EC" && crv == Some("P-256"),
        "ES384" => kty == "EC" && crv == Some("P-384"),
        "EdDSA" => kty == "OKP" && crv == Some("Ed25519"),
        _ => false,
    };
    family && own_alg.is_none_or(|a| a == alg)
}

fuzz_target!(|data: &[u8]| {
    let (doc, token) = auth_fuzz::split(data, b'\n');
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(doc) else { return };
    let token = String::from_utf8_lossy(token);
    let allowed = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
    let (kid, alg) = match jose_header(&token, &allowed) {
        Ok(h) => (h.kid, h.alg),
        Err(_) => (None, "RS256".to_owned()),
    };
    for kid in [kid.as_deref(), None] {
        let Some(Ok((keys, picked))) = jwks(&doc, kid, &alg, &token) else { continue };
        let suitable = keys.iter().filter(|k| suits(&k.2, k.3.as_deref(), k.1.as_deref(), &alg)).count();
        let Some((index, verdict)) = picked else { continue };
        let (key_kid, key_alg, kty, crv) = &keys[index];
        assert!(suits(kty, crv.as_deref(), key_alg.as_deref(), &alg), "a {kty} key picked for {alg}");
        match kid {
            Some(kid) => assert_eq!(key_kid.as_deref(), Some(kid), "the key of another kid"),
            None => assert_eq!(suitable, 1, "no kid, and {suitable} keys suit: ambiguous"),
        }
        if let Ok(claims) = verdict {
            assert_eq!(unverified_claims(&token).as_ref(), Some(&claims), "verified claims are the payload");
        }
    }
});
