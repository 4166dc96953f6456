//! Client assertions (RFC 7523 §2.2, OIDC Core §9): `private_key_jwt` with the client's own key,
//! `client_secret_jwt` with its secret.

use std::fmt;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::crypto::random_token;
use crate::{Error, now};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: a minute, as RFC 7523 §3 and FAPI 2.0 suggest.
const ASSERTION_LIFETIME: u64 = 60;

/// The largest key text read (a 16,384-bit RSA key in PEM is about 12 KiB).
const MAX_KEY_TEXT: usize = 32 * 1024;

/// The client's private key for `private_key_jwt`: RSA (signs RS256), EC P-256 (ES256) or
/// Ed25519 (EdDSA), read from PEM (PKCS#8, PKCS#1 or SEC1) or a private JWK.
///
/// `Debug` prints only the algorithm and `kid`. The `kid` is the JWK's own, or the RFC 7638
/// thumbprint of the public key, which is also the `kid` of [`ClientKey::public_jwk`], the key to
/// register at the provider.
///
/// ```
/// use auth_core::ClientKey;
/// # let pem = auth_core::ClientKey::example_pem();
/// let key = ClientKey::from_pem(&pem).unwrap();
/// assert_eq!(key.algorithm(), "ES256");
/// assert_eq!(key.public_jwk()["kid"], key.kid());
/// assert!(!format!("{key:?}").contains("PRIVATE"));
/// ```
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    public: Value,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Reads a key from its text: PEM, or a private JWK (a JSON object).
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong (never the key itself).
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_KEY_TEXT {
            return Err(Error::config("the client key is larger than 32 KiB"));
        }
        let text = text.trim();
        if text.starts_with('{') { ClientKey::from_jwk(text) } else { ClientKey::from_pem(text) }
    }

    /// Reads a PEM private key: `BEGIN PRIVATE KEY` (PKCS#8: RSA, EC P-256 or Ed25519),
    /// `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN EC PRIVATE KEY` (SEC1, P-256).
    ///
    /// # Errors
    /// [`Error::Config`] for anything else, or a key that cannot sign.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let bad = |what: &str| Error::config(format!("the client key is not {what}"));
        let pem = pem.trim().as_bytes();
        if pem.starts_with(b"-----BEGIN EC PRIVATE KEY-----") {
            // SEC1: jsonwebtoken reads EC keys as PKCS#8 only; aws-lc-rs converts.
            let der = pem_body(pem).ok_or_else(|| bad("valid PEM"))?;
            let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|_| bad("an EC P-256 private key"))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| bad("an EC P-256 private key"))?;
            return ClientKey::new(EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES256, None);
        }
        if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            return ClientKey::new(key, Algorithm::ES256, None);
        }
        if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            return ClientKey::new(key, Algorithm::EdDSA, None);
        }
        if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            return ClientKey::new(key, Algorithm::RS256, None);
        }
        Err(bad("a PEM private key (RSA, EC P-256 or Ed25519)"))
    }

    /// Reads a private JWK (`kty` `RSA` with `n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`; `EC` on
    /// `P-256` with `x`, `y`, `d`; `OKP` on `Ed25519` with `x`, `d`), keeping its `kid`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing or wrong member.
    pub fn from_jwk(jwk: &str) -> Result<Self, Error> {
        let jwk: Value = serde_json::from_str(jwk).map_err(|_| Error::config("the client key is not a JSON object"))?;
        let member = |name: &str| -> Result<Vec<u8>, Error> {
            let text = jwk.get(name).and_then(Value::as_str);
            text.and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
                .ok_or_else(|| Error::config(format!("the client JWK has no valid `{name}`")))
        };
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let bad = |what: &str| Error::config(format!("the client JWK is not {what}"));
        match (jwk.get("kty").and_then(Value::as_str), jwk.get("crv").and_then(Value::as_str)) {
            (Some("EC"), Some("P-256")) => {
                let mut public = vec![4];
                public.extend(member("x")?);
                public.extend(member("y")?);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &member("d")?,
                    &public,
                )
                .map_err(|_| bad("a valid P-256 key"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| bad("a valid P-256 key"))?;
                ClientKey::new(EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES256, kid)
            }
            (Some("OKP"), Some("Ed25519")) => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&member("d")?, &member("x")?)
                    .map_err(|_| bad("a valid Ed25519 key"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| bad("a valid Ed25519 key"))?;
                ClientKey::new(EncodingKey::from_ed_der(pkcs8.as_ref()), Algorithm::EdDSA, kid)
            }
            (Some("RSA"), _) => {
                let mut parts = Vec::with_capacity(8);
                for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                    parts.push(member(name)?);
                }
                ClientKey::new(EncodingKey::from_rsa_der(&rsa_pkcs1_der(&parts)), Algorithm::RS256, kid)
            }
            _ => Err(bad("an RSA, EC P-256 or Ed25519 private key")),
        }
    }

    /// Replaces the `kid` (when the provider registered the key under another id).
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self.public["kid"] = self.kid.clone().into();
        self
    }

    /// The `kid` the assertions carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm: `RS256`, `ES256` or `EdDSA`.
    pub fn algorithm(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            _ => "RS256",
        }
    }

    /// The public key as a JWK (with `kid`, `alg` and `use`), to register at the provider.
    pub fn public_jwk(&self) -> &Value {
        &self.public
    }

    /// A freshly generated P-256 key in PKCS#8 PEM, for the examples in this crate's docs.
    #[doc(hidden)]
    pub fn example_pem() -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map(|d| d.as_ref().to_vec());
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.unwrap_or_default());
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
        format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
    }

    /// Checks that the key signs, and derives its public JWK and thumbprint.
    fn new(key: EncodingKey, alg: Algorithm, kid: Option<String>) -> Result<Self, Error> {
        let unusable = || Error::config(format!("the client key cannot sign {alg:?}"));
        jsonwebtoken::encode(&Header::new(alg), &json!({}), &key).map_err(|_| unusable())?;
        let jwk = Jwk::from_encoding_key(&key, alg).map_err(|_| unusable())?;
        let kid = match kid {
            Some(kid) => kid,
            None => jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| unusable())?,
        };
        let mut public = serde_json::to_value(&jwk).map_err(|_| unusable())?;
        public["kid"] = kid.clone().into();
        public["use"] = "sig".into();
        Ok(ClientKey { key, alg, kid, public })
    }
}

/// What signs a client assertion: the client's key, or its secret (HS256).
pub(crate) enum AssertionSigner<'a> {
    Key(&'a ClientKey),
    Secret(&'a str),
}

/// A client assertion: `iss` and `sub` the client, `aud` as configured, a fresh `jti`, valid for
/// a minute.
pub(crate) fn client_assertion(signer: &AssertionSigner<'_>, client_id: &str, audience: &str) -> Result<String, Error> {
    let iat = now();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": random_token(24),
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME,
    });
    let signed = match signer {
        AssertionSigner::Key(key) => {
            let mut header = Header::new(key.alg);
            header.kid = Some(key.kid.clone());
            jsonwebtoken::encode(&header, &claims, &key.key)
        }
        AssertionSigner::Secret(secret) => {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        }
    };
    signed.map_err(|_| Error::Internal("client assertion"))
}

/// The DER body of a PEM block.
fn pem_body(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A PKCS#1 `RSAPrivateKey` (RFC 8017 §A.1.2) from a JWK's big-endian members, in order `n`, `e`,
/// `d`, `p`, `q`, `dp`, `dq`, `qi`.
///
/// By hand: neither jsonwebtoken nor aws-lc-rs builds an RSA private key from its components, and
/// the `rsa` crate would add a second RSA implementation for this one conversion. It is nine DER
/// integers in a sequence; a key that is not consistent fails the signing check in `ClientKey::new`.
fn rsa_pkcs1_der(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = der_integer(&[0]);
    for part in parts {
        body.extend(der_integer(part));
    }
    der_tlv(0x30, &body)
}

fn der_integer(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len().saturating_sub(1));
    let digits = &be[start.min(be.len())..];
    let mut value = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend_from_slice(digits);
    der_tlv(0x02, &value)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn verify(token: &str, key: &ClientKey) -> Value {
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).unwrap();
        let mut v = Validation::new(key.alg);
        v.set_audience(&["https://op.example"]);
        let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
        data.claims
    }

    #[test]
    fn a_pem_key_signs_assertions_its_public_jwk_verifies() {
        let key = ClientKey::parse(&ClientKey::example_pem()).unwrap();
        let a = client_assertion(&AssertionSigner::Key(&key), "app", "https://op.example").unwrap();
        let b = client_assertion(&AssertionSigner::Key(&key), "app", "https://op.example").unwrap();
        let (ca, cb) = (verify(&a, &key), verify(&b, &key));
        assert_eq!((ca["iss"].as_str(), ca["sub"].as_str()), (Some("app"), Some("app")));
        assert_ne!(ca["jti"], cb["jti"], "every assertion has its own jti");
        assert_eq!(ca["exp"].as_u64().unwrap() - ca["iat"].as_u64().unwrap(), ASSERTION_LIFETIME);
        assert_eq!(key.kid().len(), 43, "an RFC 7638 SHA-256 thumbprint: {}", key.kid());
    }

    #[test]
    fn ed25519_jwk_keys_are_read_and_checked() {
        // Ed25519 from a JWK (RFC 8037 §A.1), kid kept.
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = ClientKey::parse(&jwk.to_string()).unwrap();
        assert_eq!((key.algorithm(), key.kid()), ("EdDSA", "ed-1"));
        verify(&client_assertion(&AssertionSigner::Key(&key), "app", "https://op.example").unwrap(), &key);
        // A JWK whose public half does not match its private half is refused.
        let mut wrong = jwk;
        wrong["x"] = URL_SAFE_NO_PAD.encode([7u8; 32]).into();
        assert!(ClientKey::parse(&wrong.to_string()).is_err());
    }

    #[test]
    fn bad_keys_are_clear_errors_without_the_key() {
        for text in ["", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "{\"kty\":\"EC\"}", "{"] {
            let err = ClientKey::parse(text).unwrap_err().to_string();
            assert!(err.contains("client"), "{err}");
            assert!(!err.contains("AAAA"), "{err}");
        }
        assert!(ClientKey::parse(&"x".repeat(MAX_KEY_TEXT + 1)).unwrap_err().to_string().contains("32 KiB"));
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(der_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(der_integer(&[0]), [2, 1, 0]);
        assert_eq!(der_tlv(0x30, &[0; 200])[..3], [0x30, 0x81, 200]);
    }
}
