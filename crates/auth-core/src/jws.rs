//! Verifying a provider's JWS (ID, logout and access tokens) with its key parsed once.
//!
//! Written here rather than left to `jsonwebtoken::decode`, which the rest of the crate uses for
//! HMAC: for a JWK, jsonwebtoken rebuilds the public key from its components at every
//! verification, which made the key setup cost about as much as the signature check itself.
//! aws-lc-rs's `ParsedPublicKey` keeps the parsed key; this module only splits the compact
//! serialization, decodes its parts and hands the signature to aws-lc-rs.

use std::sync::OnceLock;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

use crate::TokenError;
use crate::id_token::Claims;

/// The algorithms a JWKS key may verify, in the order of [`VerifyingKey::parsed`]'s slots.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A JWK's public key material, and its parsed forms, made once per algorithm it is used with.
pub(crate) struct VerifyingKey {
    material: Material,
    parsed: [OnceLock<Option<ParsedPublicKey>>; ALGORITHMS.len()],
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").finish_non_exhaustive()
    }
}

enum Material {
    /// `n` and `e`, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`.
    Ec(Vec<u8>),
    /// The Ed25519 public key `x`.
    Okp(Vec<u8>),
}

impl VerifyingKey {
    /// The key of a JWK (`kty` RSA, EC or OKP); `None` for anything else or malformed.
    pub(crate) fn from_jwk(jwk: &serde_json::Value) -> Option<VerifyingKey> {
        let part = |name: &str| URL_SAFE_NO_PAD.decode(jwk.get(name)?.as_str()?).ok();
        let material = match jwk.get("kty")?.as_str()? {
            "RSA" => Material::Rsa { n: part("n")?, e: part("e")? },
            "EC" => {
                let (x, y) = (part("x")?, part("y")?);
                Material::Ec([&[4u8][..], &x, &y].concat())
            }
            "OKP" => Material::Okp(part("x")?),
            _ => return None,
        };
        Some(VerifyingKey { material, parsed: Default::default() })
    }

    /// The parsed key for `alg`, made at first use; `None` when the material does not fit it.
    fn parsed(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        let slot = ALGORITHMS.iter().position(|a| *a == alg)?;
        self.parsed[slot].get_or_init(|| parse(&self.material, alg)).as_ref()
    }

    /// Verifies a compact JWS signed with `alg` (already checked against the allow-list) and
    /// returns its claims.
    pub(crate) fn verify(&self, token: &str, alg: Algorithm) -> Result<Claims, TokenError> {
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Malformed);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let key = self.parsed(alg).ok_or(TokenError::BadSignature)?;
        key.verify_sig(signing_input.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
    }
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn parse(material: &Material, alg: Algorithm) -> Option<ParsedPublicKey> {
    match material {
        Material::Rsa { n, e } => {
            RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.to_parsed_public_key(rsa_params(alg)?).ok()
        }
        Material::Ec(point) => {
            let algorithm: &'static dyn VerificationAlgorithm = match alg {
                Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return None,
            };
            ParsedPublicKey::new(algorithm, point).ok()
        }
        Material::Okp(x) if alg == Algorithm::EdDSA => ParsedPublicKey::new(&signature::ED25519, x).ok(),
        Material::Okp(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn an_ed25519_jws_verifies_and_a_tampered_one_does_not() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
        let key = VerifyingKey::from_jwk(&jwk).unwrap();
        let input = format!("{}.{}", b64(br#"{"alg":"EdDSA"}"#), b64(br#"{"sub":"alice"}"#));
        let token = format!("{input}.{}", b64(pair.sign(input.as_bytes()).as_ref()));
        assert_eq!(key.verify(&token, Algorithm::EdDSA).unwrap()["sub"], "alice");
        // The parsed key is reused.
        assert!(key.verify(&token, Algorithm::EdDSA).is_ok());
        let forged = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"EdDSA"}"#),
            b64(br#"{"sub":"mallory"}"#),
            token.rsplit('.').next().unwrap()
        );
        assert_eq!(key.verify(&forged, Algorithm::EdDSA), Err(TokenError::BadSignature));
        assert_eq!(key.verify(&token, Algorithm::ES256), Err(TokenError::BadSignature), "not a key for ES256");
        assert_eq!(key.verify(&format!("{input}.***"), Algorithm::EdDSA), Err(TokenError::Malformed));
        assert_eq!(key.verify("no-dots", Algorithm::EdDSA), Err(TokenError::Malformed));
        assert_eq!(key.verify(&format!("{token}.extra"), Algorithm::EdDSA), Err(TokenError::Malformed), "four parts");
        assert!(VerifyingKey::from_jwk(&serde_json::json!({"kty": "oct", "k": "c2VjcmV0"})).is_none());
    }
}
