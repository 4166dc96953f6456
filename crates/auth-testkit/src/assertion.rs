//! Client assertions (RFC 7523 §2.2 and §3, OIDC Core §9): verification of `private_key_jwt`
//! and `client_secret_jwt`, and the replay cache of their `jti`s.
//!
//! [`verify`] is a plain function of the assertion, the registered clients, the audiences the
//! endpoint accepts and the provider's clock; the server only translates its errors into
//! `401 invalid_client`.

use std::collections::HashMap;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::model::{ClientAuthMethod, TestClient};
use crate::util::b64url_decode;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest `client_assertion` read.
pub(crate) const MAX_ASSERTION_LEN: usize = 16 * 1024;
/// How far ahead of the provider's clock `exp` may be.
pub(crate) const MAX_LIFETIME_SECS: i64 = 600;
/// How far ahead of the provider's clock `iat` and `nbf` may be.
pub(crate) const IAT_LEEWAY_SECS: i64 = 30;
/// How many unexpired `jti`s the replay cache holds; beyond that new assertions are refused.
pub(crate) const MAX_REPLAY_ENTRIES: usize = 10_000;
/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// The `alg`s accepted for `private_key_jwt`, as advertised.
pub(crate) const PRIVATE_KEY_ALGS: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];
/// The `alg`s accepted for `client_secret_jwt` (only HS256 is advertised).
pub(crate) const SECRET_ALGS: &[&str] = &["HS256", "HS384", "HS512"];

/// Why a client assertion was refused: one variant per check. The `Display` text is the
/// `error_description` of the `401 invalid_client` answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AssertionError {
    #[error("client_assertion is longer than {MAX_ASSERTION_LEN} bytes")]
    TooLong,
    #[error("client_assertion is not a JWS in compact serialization ({0})")]
    Malformed(&'static str),
    #[error("the client assertion has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the client assertion's {0} claim has the wrong type")]
    ClaimType(&'static str),
    #[error("wrong iss: the client assertion's iss {iss:?} differs from its sub {sub:?} (both must be the client_id)")]
    IssNotSub { iss: String, sub: String },
    #[error("unknown client {0:?} (the client assertion's iss and sub)")]
    UnknownClient(String),
    #[error("client_id {body:?} in the body differs from the client assertion's iss and sub {sub:?}")]
    ClientIdMismatch { body: String, sub: String },
    #[error("client {id:?} is registered for {method}, not for a JWT client assertion")]
    MethodMismatch { id: String, method: ClientAuthMethod },
    #[error("alg {alg:?} is not accepted for {method} (accepted: {accepted})")]
    AlgNotAccepted { alg: String, method: ClientAuthMethod, accepted: String },
    #[error("unknown kid {0:?}: the client has no registered key with this kid")]
    UnknownKid(String),
    #[error("the registered key {kid:?} does not suit alg {alg}")]
    KeyUnsuitable { kid: String, alg: String },
    #[error("the client has no registered key that suits alg {0}")]
    NoSuitableKey(String),
    #[error("bad signature: the client assertion does not verify with {0}")]
    BadSignature(String),
    #[error("wrong aud {found}: the client assertion's aud must contain {expected}")]
    WrongAudience { found: String, expected: String },
    #[error("the client assertion expired: exp {exp} is not after the provider's clock {now}")]
    Expired { exp: i64, now: i64 },
    #[error(
        "exp {exp} is more than {MAX_LIFETIME_SECS} s ahead of the provider's clock {now}: the client assertion lives too long"
    )]
    TooLongLived { exp: i64, now: i64 },
    #[error("iat {iat} is in the future: more than {IAT_LEEWAY_SECS} s ahead of the provider's clock {now}")]
    IatInFuture { iat: i64, now: i64 },
    #[error(
        "the client assertion is not valid yet: nbf {nbf} is more than {IAT_LEEWAY_SECS} s ahead of the provider's clock {now}"
    )]
    NotYetValid { nbf: i64, now: i64 },
    #[error("jti must be 1 to {MAX_JTI_LEN} characters")]
    JtiLength,
    #[error("replayed jti {0:?}: this client assertion was already used")]
    Replayed(String),
    #[error(
        "the provider remembers {MAX_REPLAY_ENTRIES} unexpired client assertions already and refuses new ones until some expire (use shorter-lived assertions)"
    )]
    ReplayCacheFull,
}

/// What a verified assertion authenticates, and what the replay cache must remember.
#[derive(Debug)]
pub(crate) struct Verified<'a> {
    pub(crate) client: &'a TestClient,
    pub(crate) jti: String,
    pub(crate) exp: i64,
}

/// What the endpoint accepts.
#[derive(Debug)]
pub(crate) struct Expect<'a> {
    /// Accepted audiences (any one suffices).
    pub(crate) audiences: &'a [String],
    /// The provider's clock (seconds since the epoch, skew included).
    pub(crate) now: i64,
}

/// Verifies a JWT client assertion against the registered `clients`: the client by `iss`/`sub`
/// (and `body_client_id`), its method, the signature, `aud`, `exp`, `iat`, `nbf` and the
/// presence of `jti`. Replay is checked by [`ReplayCache::insert`] afterwards.
pub(crate) fn verify<'a>(
    clients: &'a [TestClient],
    assertion: &str,
    body_client_id: Option<&str>,
    expect: &Expect<'_>,
) -> Result<Verified<'a>, AssertionError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionError::TooLong);
    }
    let mut parts = assertion.split('.');
    let (Some(header), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AssertionError::Malformed("not three dot-separated parts"));
    };
    let decode_json = |part: &str, what: &'static str| -> Result<Value, AssertionError> {
        let bytes = b64url_decode(part).ok_or(AssertionError::Malformed(what))?;
        match serde_json::from_slice(&bytes) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(AssertionError::Malformed(what)),
        }
    };
    let header = decode_json(header, "the header is not base64url JSON object")?;
    let claims = decode_json(payload, "the payload is not a base64url JSON object")?;

    let text = |name: &'static str| -> Result<&str, AssertionError> {
        match claims.get(name) {
            None => Err(AssertionError::MissingClaim(name)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(AssertionError::ClaimType(name)),
        }
    };
    let iss = text("iss")?;
    let sub = text("sub")?;
    if iss != sub {
        return Err(AssertionError::IssNotSub { iss: iss.to_owned(), sub: sub.to_owned() });
    }
    let client = clients.iter().find(|c| c.id == sub).ok_or_else(|| AssertionError::UnknownClient(sub.to_owned()))?;
    if let Some(body) = body_client_id
        && body != sub
    {
        return Err(AssertionError::ClientIdMismatch { body: body.to_owned(), sub: sub.to_owned() });
    }
    let accepted = match client.auth_method {
        ClientAuthMethod::PrivateKeyJwt => PRIVATE_KEY_ALGS,
        ClientAuthMethod::SecretJwt => SECRET_ALGS,
        method => return Err(AssertionError::MethodMismatch { id: client.id.clone(), method }),
    };
    let alg = header.get("alg").and_then(Value::as_str).ok_or(AssertionError::Malformed("the header has no alg"))?;
    let algorithm =
        accepted.iter().find(|a| **a == alg).and_then(|a| a.parse::<Algorithm>().ok()).ok_or_else(|| {
            AssertionError::AlgNotAccepted {
                alg: alg.to_owned(),
                method: client.auth_method,
                accepted: accepted.join(", "),
            }
        })?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(AssertionError::Malformed("the header's kid is not a string")),
    };

    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let verifies = |key: &DecodingKey| jsonwebtoken::decode::<Value>(assertion, key, &validation).is_ok();

    if client.auth_method == ClientAuthMethod::SecretJwt {
        let secret = client.secret.as_deref().unwrap_or_default();
        if !verifies(&DecodingKey::from_secret(secret.as_bytes())) {
            return Err(AssertionError::BadSignature("the client secret".into()));
        }
    } else if let Some(kid) = kid {
        let jwk = client
            .jwks
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .ok_or_else(|| AssertionError::UnknownKid(kid.to_owned()))?;
        let key = decoding_key(jwk, alg)
            .ok_or_else(|| AssertionError::KeyUnsuitable { kid: kid.to_owned(), alg: alg.to_owned() })?;
        if !verifies(&key) {
            return Err(AssertionError::BadSignature(format!("the registered key {kid:?}")));
        }
    } else {
        let keys: Vec<DecodingKey> = client.jwks.iter().filter_map(|jwk| decoding_key(jwk, alg)).collect();
        if keys.is_empty() {
            return Err(AssertionError::NoSuitableKey(alg.to_owned()));
        }
        if !keys.iter().any(verifies) {
            return Err(AssertionError::BadSignature(format!("any of the client's {alg} keys (no kid in the header)")));
        }
    }

    // The claims, now that the signature says the client wrote them.
    let audiences: Vec<&str> = match claims.get("aud") {
        None => return Err(AssertionError::MissingClaim("aud")),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => {
            auds.iter().map(|a| a.as_str().ok_or(AssertionError::ClaimType("aud"))).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(AssertionError::ClaimType("aud")),
    };
    if !audiences.iter().any(|aud| expect.audiences.iter().any(|ok| ok == aud)) {
        return Err(AssertionError::WrongAudience {
            found: claims["aud"].to_string(),
            expected: expect.audiences.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(" or "),
        });
    }
    let number = |name: &'static str| -> Result<Option<i64>, AssertionError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(Some).ok_or(AssertionError::ClaimType(name))
            }
            Some(_) => Err(AssertionError::ClaimType(name)),
        }
    };
    let now = expect.now;
    let exp = number("exp")?.ok_or(AssertionError::MissingClaim("exp"))?;
    if exp <= now {
        return Err(AssertionError::Expired { exp, now });
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS) {
        return Err(AssertionError::TooLongLived { exp, now });
    }
    if let Some(iat) = number("iat")?
        && iat > now.saturating_add(IAT_LEEWAY_SECS)
    {
        return Err(AssertionError::IatInFuture { iat, now });
    }
    if let Some(nbf) = number("nbf")?
        && nbf > now.saturating_add(IAT_LEEWAY_SECS)
    {
        return Err(AssertionError::NotYetValid { nbf, now });
    }
    let jti = text("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(AssertionError::JtiLength);
    }
    Ok(Verified { client, jti: jti.to_owned(), exp })
}

/// A decoding key for `alg` from a registered JWK, if the JWK suits `alg` (key type and curve,
/// its `alg` and `use` if it has them).
pub(crate) fn decoding_key(jwk: &Value, alg: &str) -> Option<DecodingKey> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let suits = match alg {
        "RS256" | "PS256" => member("kty") == Some("RSA"),
        "ES256" => member("kty") == Some("EC") && member("crv") == Some("P-256"),
        "EdDSA" => member("kty") == Some("OKP") && member("crv") == Some("Ed25519"),
        _ => false,
    };
    if !suits || member("alg").is_some_and(|a| a != alg) || member("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let jwk: Jwk = serde_json::from_value(jwk.clone()).ok()?;
    DecodingKey::from_jwk(&jwk).ok()
}

/// Why a registered client JWK is refused at start, if it is.
pub(crate) fn check_client_jwk(jwk: &Value) -> Result<(), String> {
    let Some(object) = jwk.as_object() else {
        return Err("is not a JSON object".into());
    };
    if let Some(private) = ["d", "p", "q", "dp", "dq", "qi", "k"].iter().find(|m| object.contains_key(**m)) {
        return Err(format!("has the private member {private:?}: register the public key only"));
    }
    let kty = object.get("kty").and_then(Value::as_str).unwrap_or_default();
    if !PRIVATE_KEY_ALGS.iter().any(|alg| decoding_key(jwk, alg).is_some()) {
        return Err(format!("(kty {kty:?}) is not a readable RSA, EC P-256 or Ed25519 signing key"));
    }
    Ok(())
}

/// The `jti`s of accepted client assertions, each kept until its `exp` (RFC 7523 §3 item 7).
/// Bounded: when [`MAX_REPLAY_ENTRIES`] unexpired entries are held, new assertions are refused
/// rather than live entries forgotten.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache {
    /// `(client_id, jti)` → `exp`.
    seen: HashMap<(String, String), i64>,
}

impl ReplayCache {
    /// Records the assertion, or refuses it as replayed (or the cache as full). `now` is the
    /// earlier of the real and the provider's (skewed) clock, so that no entry is dropped
    /// while either clock still deems it unexpired.
    pub(crate) fn insert(&mut self, client_id: &str, jti: &str, exp: i64, now: i64) -> Result<(), AssertionError> {
        let key = (client_id.to_owned(), jti.to_owned());
        if self.seen.get(&key).is_some_and(|&seen_exp| seen_exp > now) {
            return Err(AssertionError::Replayed(jti.to_owned()));
        }
        if self.seen.len() >= MAX_REPLAY_ENTRIES {
            self.seen.retain(|_, &mut e| e > now);
            if self.seen.len() >= MAX_REPLAY_ENTRIES {
                return Err(AssertionError::ReplayCacheFull);
            }
        }
        self.seen.insert(key, exp);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_refuses_replays_and_stays_bounded() {
        let mut cache = ReplayCache::default();
        cache.insert("c", "a", 100, 50).expect("first");
        assert!(matches!(cache.insert("c", "a", 100, 60), Err(AssertionError::Replayed(_))));
        // Another client may use the same jti.
        cache.insert("d", "a", 100, 60).expect("other client");
        // Once expired, the jti may be forgotten (the assertion is refused as expired anyway).
        cache.insert("c", "a", 200, 100).expect("after exp");

        let mut cache = ReplayCache::default();
        for i in 0..MAX_REPLAY_ENTRIES {
            cache.insert("c", &i.to_string(), 1000, 0).expect("room");
        }
        assert!(matches!(cache.insert("c", "x", 1000, 0), Err(AssertionError::ReplayCacheFull)));
        assert_eq!(cache.len(), MAX_REPLAY_ENTRIES);
        // Expired entries make room.
        cache.insert("c", "x", 2000, 1000).expect("room after expiry");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn private_jwks_are_refused() {
        let key = crate::TestClientKey::ec_p256();
        assert!(check_client_jwk(&key.public_jwk()).is_ok());
        assert!(check_client_jwk(&key.private_jwk()).expect_err("private").contains("\"d\""));
        assert!(check_client_jwk(&serde_json::json!({"kty": "oct", "k": "AAAA"})).is_err());
        assert!(check_client_jwk(&serde_json::json!({"kty": "RSA"})).is_err());
    }
}
