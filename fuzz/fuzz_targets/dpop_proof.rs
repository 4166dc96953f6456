//! The API side's DPoP proof check (RFC 9449 §4.3), which every request with a DPoP-bound access
//! token reaches with a `DPoP` header of the client's choosing.
//!
//! Input: the `DPoP` header values, one per line. The request is a `GET` of
//! [`URL`] with [`ACCESS_TOKEN`], bound to the key of the first proof's own `jwk` (so that a
//! well-signed proof gets past the key check to the claims and the replay cache), at [`NOW`].
//!
//! Properties: nothing panics; an accepted proof is the request's only `DPoP` header, at most
//! 8 KiB, a three-part JWS whose header types it `dpop+jwt` (no `crit`) with an allowed
//! asymmetric algorithm and a public `jwk` of that algorithm's key type, and whose payload names
//! the request's method and URL, an `iat` within the window of now, and a `jti` of 1 to 256
//! characters; the same proof is refused the second time (replay).
#![no_main]

use auth_core::fuzzing::{dpop_proof, dpop_thumbprint};
use auth_fuzz::{ACCESS_TOKEN, NOW};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The request's URL (`htu`).
const URL: &str = "https://api.example/items";
/// The clock leeway (the window is at least 5 s).
const LEEWAY: u64 = 30;

fn part(text: &str) -> Map<String, Value> {
    let bytes = URL_SAFE_NO_PAD.decode(text).expect("an accepted proof's parts are base64url");
    serde_json::from_slice(&bytes).expect("an accepted proof's parts are JSON objects")
}

fn accepted(proof: &str) {
    assert!(proof.len() <= 8 * 1024, "an accepted proof of {} bytes", proof.len());
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(parts.len(), 3, "an accepted proof is a compact JWS");
    let header = part(parts[0]);
    let str_of = |map: &Map<String, Value>, name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
    assert!(str_of(&header, "typ").is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")), "typ");
    assert!(!header.contains_key("crit"), "crit");
    let jwk = header.get("jwk").and_then(Value::as_object).expect("an accepted proof carries its jwk");
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        assert!(!jwk.contains_key(private), "an accepted proof's jwk holds `{private}`");
    }
    let kty = str_of(jwk, "kty");
    match str_of(&header, "alg").as_deref() {
        Some("ES256") => assert!(kty.as_deref() == Some("EC") && str_of(jwk, "crv").as_deref() == Some("P-256")),
        Some("RS256" | "PS256") => assert_eq!(kty.as_deref(), Some("RSA")),
        Some("EdDSA") => assert!(kty.as_deref() == Some("OKP") && str_of(jwk, "crv").as_deref() == Some("Ed25519")),
        other => panic!("an accepted proof with alg {other:?}"),
    }
    let claims = part(parts[1]);
    assert_eq!(str_of(&claims, "htm").as_deref(), Some("GET"), "htm");
    let htu = url::Url::parse(&str_of(&claims, "htu").expect("htu")).expect("htu is a URL");
    assert_eq!((htu.scheme(), htu.host_str(), htu.port()), ("https", Some("api.example"), None), "htu {htu}");
    let iat = claims.get("iat").and_then(Value::as_f64).expect("iat");
    assert!((iat - NOW as f64).abs() <= LEEWAY as f64 + 1.0, "iat {iat}");
    let jti = str_of(&claims, "jti").expect("jti");
    assert!(!jti.is_empty() && jti.chars().count() <= 256, "jti of {} characters", jti.chars().count());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let proofs: Vec<&str> = text.lines().collect();
    let jkt = proofs.first().and_then(|p| dpop_thumbprint(p)).unwrap_or_else(|| "no-key".to_owned());
    let (first, second) = dpop_proof(&proofs, ("GET", URL, ACCESS_TOKEN, &jkt), NOW, LEEWAY);
    if first.is_ok() {
        assert_eq!(proofs.len(), 1, "accepted with {} DPoP headers", proofs.len());
        accepted(proofs[0]);
        assert!(second.is_err(), "a replayed proof is accepted");
    }
});
