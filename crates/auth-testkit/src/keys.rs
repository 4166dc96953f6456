//! Signing keys: generation with aws-lc-rs, signing with jsonwebtoken, JWK export.

use std::fmt;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::util::{b64url, random_token};

/// The algorithm the provider signs ID tokens with (and advertises in
/// `id_token_signing_alg_values_supported`).
///
/// ```
/// use auth_testkit::SigningAlg;
///
/// assert_eq!(SigningAlg::default(), SigningAlg::RS256);
/// assert_eq!(SigningAlg::ES256.as_str(), "ES256");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit RSA key (the OIDC default).
    #[default]
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PSS with SHA-256 and a 2048-bit RSA key.
    PS256,
}

impl SigningAlg {
    /// The JOSE name, as in a JWT header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::PS256 => "PS256",
        }
    }

    fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::PS256 => Algorithm::PS256,
        }
    }

    /// An algorithm of the other key family: ES256 for the RSA algorithms, RS256 for ES256. Keys
    /// of another family never suit this algorithm (a `kty` of their own).
    pub(crate) fn other_family(self) -> SigningAlg {
        match self.family() {
            KeyFamily::Rsa => Self::ES256,
            KeyFamily::P256 => Self::RS256,
        }
    }

    fn family(self) -> KeyFamily {
        match self {
            Self::RS256 | Self::PS256 => KeyFamily::Rsa,
            Self::ES256 => KeyFamily::P256,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    P256,
}

/// Why a key could not be made. Only an internal failure of aws-lc-rs can cause it.
#[derive(Debug, thiserror::Error)]
#[error("could not generate or load a signing key: {0}")]
pub(crate) struct KeyError(String);

impl From<KeyError> for std::io::Error {
    fn from(e: KeyError) -> Self {
        std::io::Error::other(e)
    }
}

/// Private key material and its public JWK members.
struct KeyMaterial {
    encoding: EncodingKey,
    /// `n`/`e` or `crv`/`x`/`y` (plus `kty`).
    public: serde_json::Map<String, Value>,
}

impl KeyMaterial {
    fn generate(family: KeyFamily) -> Result<Self, KeyError> {
        match family {
            KeyFamily::Rsa => Self::generate_rsa(),
            KeyFamily::P256 => Self::generate_p256(),
        }
    }

    fn generate_rsa() -> Result<Self, KeyError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError(e.to_string()))?;
        let pkcs8 = pair.as_der().map_err(|e| KeyError(e.to_string()))?;
        // jsonwebtoken's aws-lc-rs signer takes a PKCS#1 `RSAPrivateKey`; its PEM reader unwraps
        // the PKCS#8 document aws-lc-rs produces.
        let pem = pem_private_key(pkcs8.as_ref());
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError(e.to_string()))?;
        let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let public = json!({
            "kty": "RSA",
            "n": b64url(&components.n),
            "e": b64url(&components.e),
        });
        Ok(Self { encoding, public: into_map(public) })
    }

    fn generate_p256() -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|e| KeyError(e.to_string()))?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|e| KeyError(e.to_string()))?;
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        // Uncompressed SEC1 point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err(KeyError("unexpected P-256 public key encoding".into())),
        };
        let public = json!({ "kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y) });
        Ok(Self { encoding, public: into_map(public) })
    }

    /// The process-wide key of `family`, generated once. `slot` selects between the regular
    /// default key and the "rogue" key used for [`Fault::IdTokenUnknownKid`](crate::Fault).
    fn shared(family: KeyFamily, rogue: bool) -> Result<Arc<Self>, KeyError> {
        static RSA: OnceLock<Arc<KeyMaterial>> = OnceLock::new();
        static P256: OnceLock<Arc<KeyMaterial>> = OnceLock::new();
        static ROGUE_RSA: OnceLock<Arc<KeyMaterial>> = OnceLock::new();
        static ROGUE_P256: OnceLock<Arc<KeyMaterial>> = OnceLock::new();
        let cell = match (family, rogue) {
            (KeyFamily::Rsa, false) => &RSA,
            (KeyFamily::P256, false) => &P256,
            (KeyFamily::Rsa, true) => &ROGUE_RSA,
            (KeyFamily::P256, true) => &ROGUE_P256,
        };
        if let Some(key) = cell.get() {
            return Ok(Arc::clone(key));
        }
        // Two threads may race here; both keys are valid and one wins. That beats holding a lock
        // across a slow RSA key generation.
        let key = Arc::new(Self::generate(family)?);
        Ok(Arc::clone(cell.get_or_init(|| key)))
    }
}

fn into_map(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub(crate) fn pem_private_key(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// A signing key with its `kid` and algorithm.
pub(crate) struct SigningKey {
    alg: SigningAlg,
    kid: String,
    material: Arc<KeyMaterial>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The process-wide default key for `alg` (generated on first use), under a fresh `kid`.
    pub(crate) fn shared(alg: SigningAlg) -> Result<Self, KeyError> {
        Ok(Self { alg, kid: new_kid(), material: KeyMaterial::shared(alg.family(), false)? })
    }

    /// A process-wide key that is never published in any JWKS.
    pub(crate) fn rogue(alg: SigningAlg) -> Result<Self, KeyError> {
        Ok(Self {
            alg,
            kid: format!("unknown-{}", random_token(6)),
            material: KeyMaterial::shared(alg.family(), true)?,
        })
    }

    /// A freshly generated key with a new `kid`.
    pub(crate) fn generate(alg: SigningAlg) -> Result<Self, KeyError> {
        Ok(Self { alg, kid: new_kid(), material: Arc::new(KeyMaterial::generate(alg.family())?) })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (`kty`, `kid`, `use`, `alg` and the key's public members).
    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = self.material.public.clone();
        jwk.insert("kid".into(), Value::String(self.kid.clone()));
        jwk.insert("use".into(), Value::String("sig".into()));
        jwk.insert("alg".into(), Value::String(self.alg.as_str().into()));
        Value::Object(jwk)
    }

    /// Signs `claims` as a JWS with header `{"typ", "alg", "kid"}`.
    pub(crate) fn sign(
        &self,
        claims: &Value,
        typ: &str,
        include_kid: bool,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.alg.jwt_algorithm());
        header.typ = Some(typ.to_owned());
        if include_kid {
            header.kid = Some(self.kid.clone());
        }
        jsonwebtoken::encode(&header, claims, &self.material.encoding)
    }
}

fn new_kid() -> String {
    format!("testkit-{}", random_token(9))
}

/// Signs with HS256 and a shared secret (for [`Fault::IdTokenHs256`](crate::Fault)).
pub(crate) fn sign_hs256(claims: &Value, secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
}

/// An unsigned JWT: header `{"alg":"none","typ":typ}` and an empty signature.
pub(crate) fn unsigned(claims: &Value, typ: &str) -> String {
    let header = b64url(json!({ "alg": "none", "typ": typ }).to_string().as_bytes());
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// Flips one bit of the signature of a compact JWS, keeping it well-formed base64url.
pub(crate) fn corrupt_signature(jwt: &str) -> String {
    let Some((signing_input, signature)) = jwt.rsplit_once('.') else {
        return jwt.to_owned();
    };
    let Some(mut bytes) = crate::util::b64url_decode(signature) else {
        return jwt.to_owned();
    };
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x01;
    }
    format!("{signing_input}.{}", b64url(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{DecodingKey, Validation};

    fn roundtrip(alg: SigningAlg) {
        let key = SigningKey::shared(alg).expect("key");
        let token = key.sign(&json!({"sub": "x"}), "JWT", true).expect("sign");
        let jwk: Jwk = serde_json::from_value(key.jwk()).expect("jwk");
        let decoding = DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = Validation::new(alg.jwt_algorithm());
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).expect("verify");
        assert_eq!(data.claims["sub"], "x");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
        let bad = corrupt_signature(&token);
        assert!(jsonwebtoken::decode::<Value>(&bad, &decoding, &validation).is_err());
    }

    #[test]
    fn rs256_roundtrip() {
        roundtrip(SigningAlg::RS256);
    }

    #[test]
    fn es256_roundtrip() {
        roundtrip(SigningAlg::ES256);
    }

    #[test]
    fn ps256_roundtrip() {
        roundtrip(SigningAlg::PS256);
    }

    #[test]
    fn jwk_members() {
        let rsa = SigningKey::shared(SigningAlg::RS256).expect("key").jwk();
        for member in ["kty", "kid", "use", "alg", "n", "e"] {
            assert!(rsa.get(member).is_some(), "{member}");
        }
        let ec = SigningKey::shared(SigningAlg::ES256).expect("key").jwk();
        for member in ["kty", "kid", "use", "alg", "crv", "x", "y"] {
            assert!(ec.get(member).is_some(), "{member}");
        }
        assert_eq!(ec["crv"], "P-256");
    }
}
