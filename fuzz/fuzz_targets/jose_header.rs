//! JWS parsing, as every token check starts (ID, logout and access tokens): the JOSE header with
//! the allow-list, the unverified payload, and the signature check with a JWK or an HMAC secret.
//!
//! Input: a JWK (JSON) and a compact JWS, one per line (or the JWS alone).
//!
//! Properties: nothing panics; an accepted header names an allowed algorithm of a three-part
//! token; a verified token's claims are its payload as read unverified, from a header that names
//! the algorithm it was verified with.
#![no_main]

use auth_core::fuzzing::{jose_header, unverified_claims, verify_hs256, verify_with_jwk};
use libfuzzer_sys::fuzz_target;

const ALLOW_LISTS: [&[&str]; 4] =
    [&["RS256"], &["RS256", "ES256", "PS256", "EdDSA"], &["RS256", "HS256"], &["ES384", "RS512", "PS384"]];

fn verified(token: &str, alg: &str, claims: &serde_json::Map<String, serde_json::Value>) {
    assert_eq!(unverified_claims(token).as_ref(), Some(claims), "verified claims are the payload");
    let header = jose_header(token, &[alg]).expect("a verified token has a header for its algorithm");
    assert_eq!(header.alg, alg);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (jwk, token) = match text.split_once('\n') {
        Some((jwk, token)) => (serde_json::from_str(jwk).ok(), token),
        None => (None, text),
    };
    for allowed in ALLOW_LISTS {
        if let Ok(header) = jose_header(token, allowed) {
            assert!(allowed.contains(&header.alg.as_str()), "{} is not allowed", header.alg);
            assert_eq!(token.split('.').count(), 3, "a header of a token that is no JWS");
        }
    }
    let _ = unverified_claims(token);
    if let Some(jwk) = &jwk {
        for alg in ["RS256", "PS256", "ES256", "ES384", "EdDSA", "RS512"] {
            if let Some(Ok(claims)) = verify_with_jwk(jwk, token, alg) {
                verified(token, alg, &claims);
            }
        }
    }
    if let Ok(claims) = verify_hs256(token, b"fuzz-client-secret") {
        verified(token, "HS256", &claims);
    }
});
