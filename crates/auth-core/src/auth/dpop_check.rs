//! The resource server's side of DPoP (RFC 9449 §4.3, §7): a request with a DPoP-bound access
//! token proves, with a fresh `DPoP` proof on every request, that it holds the token's key.
//!
//! A proof is a compact JWS typed `dpop+jwt`, signed (ES256, RS256, PS256 or EdDSA) by the public
//! key its header carries; its claims name the request (`htm`, `htu`), the moment (`iat`), the
//! access token (`ath`) and a one-time `jti`. The key's RFC 7638 thumbprint must be the token's
//! `cnf.jkt`. Server-provided nonces (§8, §9) are not asked for.

use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::Error;

/// The proof algorithms accepted, as the `DPoP` challenge's `algs` lists them (§7.1): asymmetric
/// only, never `none` or an HMAC.
pub(super) const ALGS: &str = "ES256 RS256 PS256 EdDSA";
/// How many proofs are remembered against replays (see [`ReplayCache`]).
pub(super) const REPLAY_CACHE_ENTRIES: usize = 100_000;
/// The longest `DPoP` header read (an RSA-8192 key and signature fit in well under half).
const MAX_PROOF: usize = 8 * 1024;
/// The longest `jti` accepted, in characters.
const MAX_JTI: usize = 256;
/// `iat` may be this far from now at least, whatever the clock leeway: with a leeway of 0 a proof
/// made in the second before would be refused.
const MIN_IAT_WINDOW: u64 = 5;
/// The members of a private (or symmetric) JWK: a proof's header carries a public key only.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What a proof must match: the request, the access token it came with, and now.
pub(super) struct Expected<'a> {
    /// The request method, exactly as sent (`GET`, `PUT`, …).
    pub(super) method: &'a str,
    /// The request's URL: the app's configured base URL and the request path (never the `Host`
    /// header, which the client chooses); its query, if any, is ignored.
    pub(super) url: &'a str,
    /// The access token of the `Authorization: DPoP` header.
    pub(super) access_token: &'a str,
    /// The token's `cnf.jkt`.
    pub(super) jkt: &'a str,
    /// Now (Unix seconds).
    pub(super) now: u64,
    /// How far `iat` may be from now, either way (the clock leeway).
    pub(super) leeway: u64,
}

/// Checks the request's `DPoP` headers (`proofs`, all of them: exactly one is allowed) against
/// `expected`, and records the proof's `jti` against replays. Called for every request with a
/// DPoP-bound token, whether or not the token's own validation came from the cache: a proof's
/// outcome is never cached.
pub(super) fn check(proofs: &[&str], expected: &Expected<'_>, seen: &ReplayCache) -> Result<(), Error> {
    let invalid = Error::DpopProofInvalid;
    let proof = match proofs {
        [] => return Err(invalid("no DPoP proof")),
        [one] => *one,
        _ => return Err(invalid("more than one DPoP header")),
    };
    if proof.len() > MAX_PROOF {
        return Err(invalid("the DPoP proof is too long"));
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("the DPoP proof is not a compact JWS"));
    };
    let header = json_part(header).ok_or(invalid("the DPoP proof's header is not a JSON object"))?;
    if !header.get("typ").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(invalid("the DPoP proof's typ is not dpop+jwt"));
    }
    if header.contains_key("crit") {
        return Err(invalid("the DPoP proof has critical header parameters"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Algorithm::ES256,
        Some("RS256") => Algorithm::RS256,
        Some("PS256") => Algorithm::PS256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(invalid("the DPoP proof's alg is not allowed")),
    };
    let jwk = public_jwk(&header, alg)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("the DPoP proof's jwk is not a usable key"))?;
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|_| invalid("the DPoP proof's signature does not verify"))?
        .claims;

    if claims.get("htm").and_then(Value::as_str) != Some(expected.method) {
        return Err(invalid("the DPoP proof's htm is not the request's method"));
    }
    let htu = claims.get("htu").and_then(Value::as_str).and_then(normalize_url);
    if htu.is_none() || htu != normalize_url(expected.url) {
        return Err(invalid("the DPoP proof's htu is not the request's URL"));
    }
    let window = expected.leeway.max(MIN_IAT_WINDOW);
    let iat = claims.get("iat").and_then(numeric_date).ok_or(invalid("the DPoP proof has no iat"))?;
    if iat.abs_diff(expected.now) > window {
        return Err(invalid("the DPoP proof's iat is not within the clock leeway"));
    }
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
    if jti.is_empty() || jti.chars().count() > MAX_JTI {
        return Err(invalid("the DPoP proof's jti is missing or too long"));
    }
    let ath = URL_SAFE_NO_PAD.encode(crate::crypto::sha256(expected.access_token.as_bytes()));
    if claims.get("ath").and_then(Value::as_str) != Some(ath.as_str()) {
        return Err(invalid("the DPoP proof's ath is not the access token's hash"));
    }
    let thumbprint =
        jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| invalid("the DPoP proof's jwk has no thumbprint"))?;
    if thumbprint != expected.jkt {
        return Err(invalid("the DPoP proof's key is not the one the token is bound to"));
    }
    // Last: only a proof that verified, for a valid token bound to its key, takes a place.
    if !seen.first_use(expected.jkt, jti, iat.saturating_add(window), expected.now) {
        return Err(invalid("the DPoP proof was used before (jti replayed)"));
    }
    Ok(())
}

/// A base64url part of the proof, as a JSON object.
pub(super) fn json_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The header's `jwk`: a public key of the type `alg` signs with (never a private or symmetric
/// key: a client that sends its private key has no key to prove possession of).
fn public_jwk(header: &Map<String, Value>, alg: Algorithm) -> Result<Jwk, Error> {
    let invalid = Error::DpopProofInvalid;
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(invalid("the DPoP proof's header has no jwk"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(invalid("the DPoP proof's jwk is not a public key"));
    }
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let fits = match alg {
        Algorithm::ES256 => member("kty") == Some("EC") && member("crv") == Some("P-256"),
        Algorithm::RS256 | Algorithm::PS256 => member("kty") == Some("RSA"),
        Algorithm::EdDSA => member("kty") == Some("OKP") && member("crv") == Some("Ed25519"),
        _ => false,
    };
    if !fits {
        return Err(invalid("the DPoP proof's jwk is not a key for its alg"));
    }
    serde_json::from_value(Value::Object(jwk.clone())).map_err(|_| invalid("the DPoP proof's jwk is malformed"))
}

/// A NumericDate (whole seconds; a fraction is dropped), not negative.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let f = value.as_f64()?;
        // Truncation is the point: NumericDate seconds, and `f` is finite and in range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (f.is_finite() && (0.0..1e15).contains(&f)).then_some(f as u64)
    })
}

/// An `http`/`https` URL without its query and fragment, normalized as RFC 9449 §4.3 asks
/// (RFC 3986 §6.2.2, §6.2.3): scheme and host lowercase, the default port dropped, an empty path
/// as `/`, dot segments removed, percent-encodings uppercase and unreserved characters decoded.
/// `None` for anything else (another scheme, credentials, no host).
fn normalize_url(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = normalize_percent(url.path());
    url.set_path(&path);
    Some(url.into())
}

/// `%xx` with uppercase hex digits, and decoded when it is an unreserved character.
fn normalize_percent(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(hi), Some(lo)) = (hex(h), hex(l))
        {
            let c = char::from(u8::try_from(hi * 16 + lo).unwrap_or(0));
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
                out.push(c);
            } else {
                out.push('%');
                out.push(char::from(h).to_ascii_uppercase());
                out.push(char::from(l).to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // Everything else is kept as it is (`Url` has encoded it already; the path is ASCII).
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// The proofs seen lately, against replays (RFC 9449 §11.1): by key thumbprint and `jti` (their
/// SHA-256, so an entry is 32 bytes and a timestamp whatever the `jti`), each until its `iat`
/// leaves the accepted window, after which the proof is refused as stale anyway.
///
/// Bounded ([`REPLAY_CACHE_ENTRIES`], S3-FIFO eviction): only proofs that verified, for a valid
/// access token bound to the proof's key, are recorded, so an anonymous client cannot fill it
/// with junk, only a holder of valid DPoP-bound tokens can; past that many accepted proofs within
/// one window (some 750 requests a second with the default 60 s leeway), the oldest may be
/// forgotten before their window closes. One process's memory: replicas of an API do not share
/// it.
pub(super) struct ReplayCache(super::bearer::TokenCache<[u8; 32], u64>);

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache").field("entries", &self.0.len()).finish()
    }
}

impl ReplayCache {
    pub(super) fn new(entries: usize) -> Self {
        ReplayCache(super::bearer::token_cache(entries))
    }

    /// Records `jti` of key `jkt` as used until `until`: `false` when it was used before and
    /// that use's window is still open. Atomic: of concurrent requests with one proof, one wins.
    fn first_use(&self, jkt: &str, jti: &str, until: u64, now: u64) -> bool {
        let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        hash.update(jkt.as_bytes());
        hash.update(&[0]);
        hash.update(jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(hash.finish().as_ref());
        // A use whose window has closed is no reason to refuse (the jti may come again).
        self.0.remove_if(&key, |seen_until| *seen_until < now);
        let mut first = false;
        let _ = self.0.get_or_insert_with(&key, || {
            first = true;
            Ok::<u64, Infallible>(until)
        });
        first
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use serde_json::json;

    const URL: &str = "https://api.example.com/orders";
    const TOKEN: &str = "the-access-token";

    struct Key {
        pair: EcdsaKeyPair,
        jwk: Value,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    impl Key {
        fn generate() -> Key {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
            let point = pair.public_key().as_ref().to_vec();
            let (x, y) = point[1..].split_at(32);
            let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
            Key { pair, jwk }
        }

        fn jkt(&self) -> String {
            let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
        }

        fn header(&self) -> Value {
            json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk })
        }

        /// Signs `header` and `claims` as they are, by ES256.
        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
            let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
            format!("{input}.{}", b64(sig.as_ref()))
        }

        fn proof_with(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
            let mut header = self.header();
            let mut claims = claims();
            edit(&mut header, &mut claims);
            self.sign(&header, &claims)
        }

        fn proof(&self) -> String {
            self.proof_with(|_, _| {})
        }
    }

    fn now() -> u64 {
        crate::now()
    }

    fn claims() -> Value {
        let jti = b64(&crate::crypto::sha256(format!("{:?}", std::time::Instant::now()).as_bytes()));
        json!({ "jti": jti, "htm": "POST", "htu": URL, "iat": now(),
                "ath": b64(&crate::crypto::sha256(TOKEN.as_bytes())) })
    }

    fn verify(key: &Key, proofs: &[&str], seen: &ReplayCache) -> Result<(), Error> {
        let jkt = key.jkt();
        let expected = Expected { method: "POST", url: URL, access_token: TOKEN, jkt: &jkt, now: now(), leeway: 60 };
        check(proofs, &expected, seen)
    }

    fn refused(result: Result<(), Error>, why: &str) {
        match result {
            Err(Error::DpopProofInvalid(reason)) if reason.contains(why) => {}
            other => panic!("{why}: {other:?}"),
        }
    }

    #[test]
    fn a_valid_proof_passes_once() {
        let key = Key::generate();
        let seen = ReplayCache::new(100);
        let proof = key.proof();
        verify(&key, &[&proof], &seen).unwrap();
        refused(verify(&key, &[&proof], &seen), "replayed");
        verify(&key, &[&key.proof()], &seen).expect("a new jti is a new proof");
    }

    #[test]
    fn every_claim_is_checked() {
        let key = Key::generate();
        let seen = ReplayCache::new(100);
        let edit = |f: fn(&mut Value)| key.proof_with(|_, c| f(c));
        for (proof, why) in [
            (edit(|c| c["htm"] = json!("GET")), "htm"),
            (edit(|c| c["htu"] = json!("https://api.example.com/other")), "htu"),
            (edit(|c| c["htu"] = json!("https://evil.example.com/orders")), "htu"),
            (edit(|c| c["htu"] = json!("http://api.example.com/orders")), "htu"),
            (edit(|c| c["htu"] = json!("not a url")), "htu"),
            (edit(|c| c["iat"] = json!(now() - 120)), "iat"),
            (edit(|c| c["iat"] = json!(now() + 120)), "iat"),
            (edit(|c| drop(c.as_object_mut().unwrap().remove("iat"))), "iat"),
            (edit(|c| drop(c.as_object_mut().unwrap().remove("jti"))), "jti"),
            (edit(|c| c["jti"] = json!("x".repeat(257))), "jti"),
            (edit(|c| c["ath"] = json!(b64(&crate::crypto::sha256(b"another token")))), "ath"),
            (edit(|c| drop(c.as_object_mut().unwrap().remove("ath"))), "ath"),
        ] {
            refused(verify(&key, &[&proof], &seen), why);
        }
        assert_eq!(seen.0.len(), 0, "no refused proof takes a place");
    }

    #[test]
    fn the_url_is_compared_normalized() {
        let key = Key::generate();
        let seen = ReplayCache::new(100);
        for htu in [
            "HTTPS://API.Example.COM:443/orders",
            "https://api.example.com/orders?page=2#top",
            "https://api.example.com/./orders",
            "https://api.example.com/%6Frders",
        ] {
            let proof = key.proof_with(|_, c| c["htu"] = json!(htu));
            verify(&key, &[&proof], &seen).unwrap_or_else(|e| panic!("{htu}: {e}"));
        }
        assert_eq!(normalize_percent("/a%2fb%7e"), "/a%2Fb~");
        assert_eq!(normalize_url("http://h:80").as_deref(), Some("http://h/"));
        assert!(normalize_url("https://user:pw@h/").is_none());
        assert!(normalize_url("ftp://h/").is_none());
    }

    #[test]
    fn the_header_is_checked() {
        let key = Key::generate();
        let other = Key::generate();
        let seen = ReplayCache::new(100);
        let edit = |f: &dyn Fn(&mut Value)| key.proof_with(|h, _| f(h));
        let mut private = key.jwk.clone();
        private["d"] = json!(b64(&[1; 32]));
        let none = format!("{}.{}.", b64(br#"{"typ":"dpop+jwt","alg":"none"}"#), b64(claims().to_string().as_bytes()));
        for (proof, why) in [
            (edit(&|h| h["typ"] = json!("JWT")), "typ"),
            (edit(&|h| drop(h.as_object_mut().unwrap().remove("typ"))), "typ"),
            (edit(&|h| h["alg"] = json!("none")), "alg"),
            (edit(&|h| h["alg"] = json!("HS256")), "alg"),
            (edit(&|h| h["alg"] = json!("ES384")), "alg"),
            (edit(&|h| h["alg"] = json!("RS256")), "jwk"),
            (edit(&|h| h["jwk"] = private.clone()), "public"),
            (edit(&|h| h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"})), "public"),
            (edit(&|h| drop(h.as_object_mut().unwrap().remove("jwk"))), "jwk"),
            (edit(&|h| h["crit"] = json!(["exp"])), "critical"),
            (edit(&|h| h["jwk"] = other.jwk.clone()), "signature"),
            (none, "alg"),
            ("a.b".to_owned(), "compact"),
            ("e30.e30.e30.e30".to_owned(), "compact"),
            ("!!.e30.e30".to_owned(), "header"),
            ("x".repeat(MAX_PROOF + 1), "too long"),
        ] {
            refused(verify(&key, &[&proof], &seen), why);
        }
        // An HS256 proof keyed with a symmetric jwk: refused for its alg before any key is made.
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header { typ: Some("dpop+jwt".into()), ..jsonwebtoken::Header::new(Algorithm::HS256) },
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        refused(verify(&key, &[&hs], &seen), "alg");
        // Signed by another key, which the header names: the thumbprint is not the token's.
        refused(verify(&key, &[&other.proof()], &seen), "bound to");
        let proof = key.proof();
        refused(verify(&key, &[], &seen), "no DPoP proof");
        refused(verify(&key, &[&proof, &proof], &seen), "more than one");
        assert_eq!(seen.0.len(), 0);
    }

    #[test]
    fn a_closed_window_frees_its_jti() {
        let seen = ReplayCache::new(100);
        assert!(seen.first_use("k", "j", 100, 50));
        assert!(!seen.first_use("k", "j", 100, 100), "open until its end");
        assert!(seen.first_use("other key", "j", 100, 60), "per key");
        assert!(seen.first_use("k", "j", 300, 101), "closed, used again");
        assert!(!seen.first_use("k", "j", 300, 102));
    }
}
