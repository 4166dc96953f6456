//! DPoP (RFC 9449): proof verification at the token and UserInfo endpoints, server nonces
//! (§8), and [`TestDpopKey`], a client's proof key for tests.
//!
//! [`verify`] is a plain function of the proof, what the request is and the provider's clock;
//! the server checks the nonce and the replay cache afterwards and translates the errors into
//! `400 invalid_dpop_proof` (token endpoint) or `401` with a `DPoP` challenge (UserInfo).

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value, json};

use crate::assertion::{AssertionError, ReplayCache};
use crate::util::{b64url, b64url_decode, now, random_token, sha256};

/// The `alg`s accepted for DPoP proofs, as advertised in `dpop_signing_alg_values_supported`.
pub(crate) const DPOP_ALGS: [&str; 4] = ["ES256", "RS256", "PS256", "EdDSA"];
/// How far `iat` may be from the provider's clock, either way.
pub(crate) const IAT_WINDOW_SECS: i64 = 60;
/// The longest DPoP proof read.
pub(crate) const MAX_PROOF_LEN: usize = 8 * 1024;
/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// A nonce is valid in the window it was issued in and the next one: 5 to 10 minutes.
pub(crate) const NONCE_WINDOW_SECS: u64 = 300;
/// JWK members that only a private key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a DPoP proof was refused: one variant per check. The `Display` text is the
/// `error_description`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DpopError {
    #[error("more than one DPoP header (RFC 9449 §4.3: exactly one proof)")]
    Multiple,
    #[error("the DPoP header is not visible ASCII")]
    NotAscii,
    #[error("the DPoP proof is longer than {MAX_PROOF_LEN} bytes")]
    TooLong,
    #[error("the DPoP proof is not a JWS in compact serialization ({0})")]
    Malformed(&'static str),
    #[error("wrong typ {0}: a DPoP proof's header has typ dpop+jwt")]
    Typ(String),
    #[error("alg {0} is not accepted for DPoP proofs (accepted: ES256, RS256, PS256, EdDSA)")]
    Alg(String),
    #[error("the DPoP proof's header has no jwk (a JSON object with the public key)")]
    NoJwk,
    #[error("the jwk in the DPoP proof's header has the private member {0}: it must be the public key only")]
    PrivateJwk(&'static str),
    #[error("the jwk in the DPoP proof's header is not a readable public key for alg {0}")]
    JwkUnsuitable(String),
    #[error("bad signature: the DPoP proof does not verify with the jwk in its header")]
    BadSignature,
    #[error("the DPoP proof has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the DPoP proof's {0} claim has the wrong type")]
    ClaimType(&'static str),
    #[error("wrong htm {found}: this request's method is {expected}")]
    Htm { found: String, expected: String },
    #[error("wrong htu {found}: this request is for {expected} (compared without query and fragment)")]
    Htu { found: String, expected: String },
    #[error("iat {iat} is more than {IAT_WINDOW_SECS} s away from the provider's clock {now}")]
    Iat { iat: i64, now: i64 },
    #[error("jti must be 1 to {MAX_JTI_LEN} characters")]
    JtiLength,
    #[error("wrong ath: it is not the base64url SHA-256 of the access token")]
    Ath,
    #[error("replayed jti {0}: this DPoP proof was already used")]
    Replayed(String),
    #[error(
        "the provider remembers {} recent DPoP proofs already and refuses new ones until some age out",
        crate::assertion::MAX_REPLAY_ENTRIES
    )]
    ReplayCacheFull,
}

/// What the request is: the proof must say so.
#[derive(Debug)]
pub(crate) struct Expect<'a> {
    /// The HTTP method (`POST`, `GET`).
    pub(crate) htm: &'a str,
    /// The endpoint's URL.
    pub(crate) htu: &'a str,
    /// The access token sent with the proof (then `ath` is required), if any.
    pub(crate) access_token: Option<&'a str>,
    /// The provider's clock (seconds since the epoch, skew included).
    pub(crate) now: i64,
}

/// A proof that passed [`verify`].
#[derive(Debug)]
pub(crate) struct Verified {
    /// The RFC 7638 thumbprint of the proof's key.
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: i64,
    pub(crate) nonce: Option<String>,
}

/// Verifies a DPoP proof (RFC 9449 §4.3): its form, `typ`, `alg`, the public `jwk` and the
/// signature by it, `htm`, `htu`, `iat`, `jti` and (with an access token) `ath`. The nonce and
/// replay are checked by the caller.
pub(crate) fn verify(proof: &str, expect: &Expect<'_>) -> Result<Verified, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::TooLong);
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(DpopError::Malformed("not three dot-separated parts"));
    };
    let decode_json = |part: &str, what: &'static str| -> Result<Value, DpopError> {
        let bytes = b64url_decode(part).ok_or(DpopError::Malformed(what))?;
        match serde_json::from_slice(&bytes) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(DpopError::Malformed(what)),
        }
    };
    let header = decode_json(header, "the header is not a base64url JSON object")?;
    let claims = decode_json(payload, "the payload is not a base64url JSON object")?;

    match header.get("typ") {
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("dpop+jwt") => {}
        other => return Err(DpopError::Typ(other.map_or_else(|| "(none)".to_owned(), Value::to_string))),
    }
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        other => return Err(DpopError::Alg(other.map_or_else(|| "(none)".to_owned(), Value::to_string))),
    };
    let algorithm: Algorithm = DPOP_ALGS
        .iter()
        .find(|a| **a == alg)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| DpopError::Alg(format!("{alg:?}")))?;
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(DpopError::NoJwk);
    };
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(DpopError::PrivateJwk(private));
    }
    let jwk_value = Value::Object(jwk.clone());
    let key =
        crate::assertion::decoding_key(&jwk_value, alg).ok_or_else(|| DpopError::JwkUnsuitable(alg.to_owned()))?;
    let jkt = crate::client_key::thumbprint(jwk).ok_or_else(|| DpopError::JwkUnsuitable(alg.to_owned()))?;
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    if jsonwebtoken::decode::<Value>(proof, &key, &validation).is_err() {
        return Err(DpopError::BadSignature);
    }

    let text = |name: &'static str| -> Result<&str, DpopError> {
        match claims.get(name) {
            None => Err(DpopError::MissingClaim(name)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(DpopError::ClaimType(name)),
        }
    };
    let jti = text("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(DpopError::JtiLength);
    }
    let htm = text("htm")?;
    if htm != expect.htm {
        return Err(DpopError::Htm { found: format!("{htm:?}"), expected: expect.htm.to_owned() });
    }
    let htu = text("htu")?;
    let strip = |u: &str| {
        url::Url::parse(u).ok().map(|mut url| {
            url.set_query(None);
            url.set_fragment(None);
            url
        })
    };
    if strip(htu).is_none() || strip(htu) != strip(expect.htu) {
        return Err(DpopError::Htu { found: format!("{htu:?}"), expected: expect.htu.to_owned() });
    }
    let iat = match claims.get("iat") {
        None => return Err(DpopError::MissingClaim("iat")),
        Some(Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).ok_or(DpopError::ClaimType("iat"))?
        }
        Some(_) => return Err(DpopError::ClaimType("iat")),
    };
    if iat.abs_diff(expect.now) > IAT_WINDOW_SECS.unsigned_abs() {
        return Err(DpopError::Iat { iat, now: expect.now });
    }
    if let Some(token) = expect.access_token {
        let ath = text("ath")?;
        if !crate::util::secure_eq(ath, &b64url(&sha256(token.as_bytes()))) {
            return Err(DpopError::Ath);
        }
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(DpopError::ClaimType("nonce")),
    };
    Ok(Verified { jkt, jti: jti.to_owned(), iat, nonce })
}

/// Records the proof's `jti` (per key) until its `iat` can no longer pass the window, or
/// refuses it as replayed. `real_now` and `clock` are the real and the provider's clock.
pub(crate) fn record(cache: &mut ReplayCache, verified: &Verified, real_now: i64, clock: i64) -> Result<(), DpopError> {
    // Kept while either clock could still accept the iat.
    let keep_until = verified.iat.max(real_now).max(clock).saturating_add(2 * IAT_WINDOW_SECS + 1);
    cache.insert(&verified.jkt, &verified.jti, keep_until, real_now.min(clock)).map_err(|e| match e {
        AssertionError::ReplayCacheFull => DpopError::ReplayCacheFull,
        _ => DpopError::Replayed(format!("{:?}", verified.jti)),
    })
}

/// A fresh server nonce (RFC 9449 §8): `{window}.{random}.{HMAC}`, stateless, valid in its
/// 5-minute window and the next.
pub(crate) fn new_nonce(secret: &[u8], now: u64) -> String {
    let body = format!("{}.{}", now / NONCE_WINDOW_SECS, random_token(12));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body.as_bytes());
    format!("{body}.{}", b64url(tag.as_ref()))
}

/// Whether `nonce` is one [`new_nonce`] made with `secret` in this window or the last.
pub(crate) fn nonce_valid(secret: &[u8], nonce: &str, now: u64) -> bool {
    let Some((body, tag)) = nonce.rsplit_once('.') else {
        return false;
    };
    let Some(window) = body.split_once('.').and_then(|(w, _)| w.parse::<u64>().ok()) else {
        return false;
    };
    let current = now / NONCE_WINDOW_SECS;
    if window > current || current - window > 1 {
        return false;
    }
    let Some(tag) = b64url_decode(tag) else {
        return false;
    };
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret), body.as_bytes(), &tag).is_ok()
}

/// A client's DPoP proof key (RFC 9449), ES256 on P-256, generated with aws-lc-rs: to make
/// the `DPoP` proofs a client under test would send, or to bind tokens minted for a resource
/// server's tests ([`TestProvider::mint_dpop_jwt_access_token`],
/// [`TestProvider::mint_dpop_access_token_for`]).
///
/// `Debug` shows the thumbprint, never private material.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_testkit::{TestDpopKey, TestProvider};
///
/// let op = TestProvider::start().await?;
/// let key = TestDpopKey::generate();
/// let token = op.mint_dpop_access_token_for("https://api.example", "openid email", key.jkt());
/// let userinfo = format!("{}/userinfo", op.issuer());
/// let http = reqwest::Client::new();
///
/// let ok = http
///     .get(&userinfo)
///     .header("Authorization", format!("DPoP {token}"))
///     .header("DPoP", key.proof("GET", &userinfo, Some(&token), None))
///     .send()
///     .await?;
/// assert_eq!(ok.status(), 200);
/// assert_eq!(op.dpop_proofs_accepted(), 1);
///
/// // A DPoP-bound token is no bearer token.
/// let bearer = http.get(&userinfo).bearer_auth(&token).send().await?;
/// assert_eq!(bearer.status(), 401);
/// assert!(bearer.headers()["www-authenticate"].to_str()?.starts_with("DPoP error=\"invalid_token\""));
/// # Ok(())
/// # }
/// ```
///
/// [`TestProvider::mint_dpop_jwt_access_token`]: crate::TestProvider::mint_dpop_jwt_access_token
/// [`TestProvider::mint_dpop_access_token_for`]: crate::TestProvider::mint_dpop_access_token_for
pub struct TestDpopKey {
    pair: EcdsaKeyPair,
    /// `kty`, `crv`, `x`, `y`.
    public: Map<String, Value>,
    jkt: String,
}

impl fmt::Debug for TestDpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDpopKey").field("alg", &"ES256").field("jkt", &self.jkt).finish_non_exhaustive()
    }
}

impl TestDpopKey {
    /// A fresh P-256 key (`alg` ES256).
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (an internal failure of the library).
    pub fn generate() -> TestDpopKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate a P-256 key");
        // Uncompressed SEC1 point: 0x04 || x || y.
        let (x, y) = match pair.public_key().as_ref() {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => panic!("unexpected P-256 public key encoding"),
        };
        let public = match json!({ "kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y) }) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let jkt = crate::client_key::thumbprint(&public).expect("thumbprint of a P-256 key");
        TestDpopKey { pair, public, jkt }
    }

    /// The key's RFC 7638 JWK thumbprint (SHA-256, base64url without padding): the `jkt` a
    /// token bound to this key carries in `cnf`.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The public key as a JWK: `kty` `EC`, `crv` `P-256`, `x`, `y` (nothing else, as a DPoP
    /// proof's header carries it).
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.public.clone())
    }

    /// A valid DPoP proof (RFC 9449 §4.2) for a request `htm` `htu`: header
    /// `{"typ":"dpop+jwt","alg":"ES256","jwk":<public_jwk>}`, claims a fresh random `jti`,
    /// `htm`, `htu`, `iat` now, `ath` (base64url SHA-256 of `access_token`) when an access
    /// token is given and `nonce` when one is.
    pub fn proof(&self, htm: &str, htu: &str, access_token: Option<&str>, nonce: Option<&str>) -> String {
        self.sign_jws(&self.proof_header(), &self.proof_claims(htm, htu, access_token, nonce))
    }

    /// The header [`proof`](Self::proof) signs: `{"typ":"dpop+jwt","alg":"ES256","jwk":…}`, to
    /// change before [`sign_jws`](Self::sign_jws) when building invalid proofs.
    pub fn proof_header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk() })
    }

    /// The claims [`proof`](Self::proof) signs (a fresh `jti` each call), to change before
    /// [`sign_jws`](Self::sign_jws) when building invalid proofs.
    pub fn proof_claims(&self, htm: &str, htu: &str, access_token: Option<&str>, nonce: Option<&str>) -> Value {
        let mut claims = json!({ "jti": random_token(16), "htm": htm, "htu": htu, "iat": now() });
        if let Some(token) = access_token {
            claims["ath"] = Value::String(b64url(&sha256(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_owned());
        }
        claims
    }

    /// Signs `header` and `claims`, as they are, as a compact JWS with this key by ES256
    /// (whatever `alg` the header says).
    ///
    /// # Panics
    ///
    /// If signing fails, which a generated key does not.
    pub fn sign_jws(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let signature = self.pair.sign(&SystemRandom::new(), input.as_bytes()).expect("sign with a generated key");
        format!("{input}.{}", b64url(signature.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTU: &str = "http://127.0.0.1:1/token";

    fn expect(now: i64) -> Expect<'static> {
        Expect { htm: "POST", htu: HTU, access_token: None, now }
    }

    #[test]
    fn a_proof_verifies_and_its_jkt_is_the_thumbprint() {
        let key = TestDpopKey::generate();
        let now = i64::try_from(now()).expect("now");
        let verified = verify(&key.proof("POST", "http://127.0.0.1:1/token?x=1#f", None, None), &expect(now))
            .expect("valid proof");
        assert_eq!(verified.jkt, key.jkt());
        assert!(verified.nonce.is_none());
        assert!(matches!(verify(&key.proof("GET", HTU, None, None), &expect(now)), Err(DpopError::Htm { .. })));
        assert!(matches!(verify(&key.proof("POST", HTU, None, None), &expect(now + 61)), Err(DpopError::Iat { .. })));
        let with_token = Expect { access_token: Some("at"), ..expect(now) };
        verify(&key.proof("POST", HTU, Some("at"), None), &with_token).expect("ath");
        assert!(matches!(verify(&key.proof("POST", HTU, Some("other"), None), &with_token), Err(DpopError::Ath)));
        assert!(matches!(
            verify(&key.proof("POST", HTU, None, None), &with_token),
            Err(DpopError::MissingClaim("ath"))
        ));
        // jsonwebtoken computes the same thumbprint.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).expect("jwk");
        assert_eq!(jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).expect("thumbprint"), key.jkt());
    }

    #[test]
    fn replays_are_refused_per_key() {
        let key = TestDpopKey::generate();
        let now = i64::try_from(now()).expect("now");
        let proof = key.proof("POST", HTU, None, None);
        let mut cache = ReplayCache::default();
        record(&mut cache, &verify(&proof, &expect(now)).expect("valid"), now, now).expect("first");
        let again = verify(&proof, &expect(now)).expect("valid");
        assert!(matches!(record(&mut cache, &again, now, now), Err(DpopError::Replayed(_))));
    }

    #[test]
    fn nonces_are_valid_for_their_window_and_the_next() {
        let secret = [7u8; 32];
        let t = 1_000_000;
        let nonce = new_nonce(&secret, t);
        assert_ne!(nonce, new_nonce(&secret, t), "fresh each time");
        assert!(nonce_valid(&secret, &nonce, t));
        assert!(nonce_valid(&secret, &nonce, t + NONCE_WINDOW_SECS));
        assert!(!nonce_valid(&secret, &nonce, t + 2 * NONCE_WINDOW_SECS));
        assert!(!nonce_valid(&[8u8; 32], &nonce, t));
        assert!(!nonce_valid(&secret, &format!("{nonce}x"), t));
        assert!(!nonce_valid(&secret, "garbage", t));
    }
}
