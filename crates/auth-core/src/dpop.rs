//! DPoP (RFC 9449), the client's side: a key pair per session, and the proofs that go with its
//! token requests and its calls with a DPoP-bound access token.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::crypto::random_token;
use crate::{Error, now};

/// A session's DPoP key: EC P-256, signing ES256 proofs. `Debug` prints only its thumbprint.
pub(crate) struct DpopKey {
    pair: EcdsaKeyPair,
    /// The PKCS#8 document, which the session keeps (sealed like its tokens).
    pkcs8: Vec<u8>,
    /// The public key as a JWK: `{"crv","kty","x","y"}`.
    jwk: serde_json::Value,
    /// RFC 7638 SHA-256 thumbprint of the public key, base64url.
    jkt: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey").field("jkt", &self.jkt).finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh key pair.
    pub(crate) fn generate() -> Result<Self, Error> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| Error::Internal("DPoP key generation"))?;
        DpopKey::from_pkcs8(doc.as_ref()).ok_or(Error::Internal("DPoP key generation"))
    }

    /// The key a session kept; `None` if the bytes are not one.
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
        // An uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let (x, y) = point.get(1..)?.split_at_checked(32)?;
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
        // RFC 7638, as the API side computes it (jsonwebtoken).
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).ok()?;
        let jkt = parsed.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).ok()?;
        Some(DpopKey { pair, pkcs8: pkcs8.to_vec(), jwk, jkt })
    }

    /// The PKCS#8 bytes, to keep in the session.
    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key's thumbprint (the `cnf.jkt` of tokens bound to it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for `htm` `htu` (RFC 9449 §4.2): a fresh `jti`, `iat` now, the server's `nonce`
    /// if it gave one, and `ath` for a call made with `access_token`.
    pub(crate) fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, Error> {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = json!({"jti": random_token(24), "htm": htm, "htu": htu_of(htu), "iat": now()});
        if let Some(token) = access_token {
            let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            claims["ath"] = URL_SAFE_NO_PAD.encode(hash).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| Error::Internal("DPoP proof"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// The `htu` of a request URL: without its query and fragment (RFC 9449 §4.2).
fn htu_of(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// A server's `DPoP-Nonce` (RFC 9449 §8), if it is one we may echo: printable ASCII (`NQCHAR`),
/// at most 512 bytes.
pub(crate) fn nonce_from(value: Option<&reqwest::header::HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let ok = !value.is_empty() && value.len() <= 512 && value.bytes().all(|b| (0x21..=0x7e).contains(&b));
    ok.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    #[test]
    fn proofs_verify_with_the_header_key_and_carry_what_the_server_checks() {
        let key = DpopKey::generate().unwrap();
        let proof = key.proof("POST", "https://op.example/token?x=1#f", Some("the-token"), Some("n-1")).unwrap();
        let header = jsonwebtoken::decode_header(&proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk: Jwk = header.jwk.unwrap();
        assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), key.jkt(), "our thumbprint is RFC 7638's");
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(&proof, &DecodingKey::from_jwk(&jwk).unwrap(), &v)
            .unwrap()
            .claims;
        assert_eq!(claims["htu"], "https://op.example/token");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["nonce"], "n-1");
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"the-token"));
        assert_eq!(claims["ath"], ath.as_str());
        let again = key.proof("POST", "https://op.example/token", None, None).unwrap();
        assert_ne!(proof, again);
        assert!(!again.contains("ath") && !format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(key.pkcs8())));
    }

    #[test]
    fn a_kept_key_is_the_same_key() {
        let key = DpopKey::generate().unwrap();
        let kept = DpopKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(kept.jkt(), key.jkt());
        assert!(DpopKey::from_pkcs8(b"junk").is_none());
    }

    #[test]
    fn only_printable_nonces_are_echoed() {
        let value = |s: &str| reqwest::header::HeaderValue::from_str(s).unwrap();
        assert_eq!(nonce_from(Some(&value("abc-123_~"))).as_deref(), Some("abc-123_~"));
        assert_eq!(nonce_from(Some(&value("a b"))), None);
        assert_eq!(nonce_from(Some(&value(&"n".repeat(513)))), None);
        assert_eq!(nonce_from(None), None);
    }
}
