//! Client key pairs for `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9), generated for tests.

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian as _, AsDer as _};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::keys::pem_private_key;
use crate::util::{b64url, now, random_token, sha256};

/// The key type of a [`TestClientKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    Ed25519,
}

/// A client's key pair for `private_key_jwt` client authentication (RFC 7523 §2.2, OIDC Core
/// §9), generated with aws-lc-rs, to register its public half at the [`TestProvider`] and hand
/// the private half to the client under test.
///
/// - [`rsa`](Self::rsa): a 2048-bit RSA key, `alg` RS256 (PS256 signatures verify as well
///   when the registered JWK has no `alg`; see [`TestClient::with_jwk`]).
/// - [`ec_p256`](Self::ec_p256): a P-256 key, `alg` ES256.
/// - [`ed25519`](Self::ed25519): an Ed25519 key (`kty` `OKP`), `alg` EdDSA.
///
/// The public JWK's `kid` is the key's RFC 7638 JWK thumbprint (SHA-256, base64url). `Debug`
/// shows the key type, `alg` and `kid`, never private material.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_testkit::{TestClient, TestClientKey, TestProvider};
///
/// let key = TestClientKey::ec_p256();
/// assert!(key.private_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert_eq!(key.public_jwk()["kid"], key.kid());
/// assert!(key.public_jwk().get("d").is_none());
/// assert!(!format!("{key:?}").contains(key.private_jwk()["d"].as_str().unwrap()));
///
/// let op = TestProvider::builder()
///     .client(TestClient::private_key_jwt("svc", key.public_jwk()))
///     .start()
///     .await?;
/// let assertion = key.client_assertion("svc", &format!("{}/token", op.issuer()));
/// let answer = reqwest::Client::new()
///     .post(format!("{}/introspect", op.issuer()))
///     .form(&[
///         ("token", "unknown"),
///         ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
///         ("client_assertion", assertion.as_str()),
///     ])
///     .send()
///     .await?;
/// // The audience was the token endpoint, not the introspection endpoint or the issuer.
/// assert_eq!(answer.status(), 401);
///
/// let assertion = key.client_assertion("svc", op.issuer());
/// let answer = reqwest::Client::new()
///     .post(format!("{}/introspect", op.issuer()))
///     .form(&[
///         ("token", "unknown"),
///         ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
///         ("client_assertion", assertion.as_str()),
///     ])
///     .send()
///     .await?;
/// assert_eq!(answer.status(), 200);
/// assert_eq!(op.client_assertions_accepted(), 1);
/// # Ok(())
/// # }
/// ```
///
/// [`TestProvider`]: crate::TestProvider
/// [`TestClient::with_jwk`]: crate::TestClient::with_jwk
pub struct TestClientKey {
    kind: Kind,
    kid: String,
    /// PKCS#8 v1 DER of the private key.
    pkcs8: Vec<u8>,
    /// The public JWK members (`kty` and the key's public parameters), without `kid` and `alg`.
    public: Map<String, Value>,
    /// The private JWK members (`d`, and for RSA `p`, `q`, `dp`, `dq`, `qi`).
    private: Map<String, Value>,
}

impl fmt::Debug for TestClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClientKey")
            .field("kty", &self.public.get("kty"))
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TestClientKey {
    /// A fresh 2048-bit RSA key, `alg` RS256. Generating it takes a moment (tens to hundreds of
    /// milliseconds); this blocks the calling thread meanwhile.
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (an internal failure of the library).
    pub fn rsa() -> TestClientKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
        let pkcs8 = pair.as_der().expect("encode an RSA key").as_ref().to_vec();
        let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let public = json!({ "kty": "RSA", "n": b64url(&components.n), "e": b64url(&components.e) });
        let private = rsa_private_members(&pkcs8).expect("parse the RSA key aws-lc-rs made");
        Self::assemble(Kind::Rsa, pkcs8, public, private)
    }

    /// A fresh P-256 key, `alg` ES256.
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (an internal failure of the library).
    pub fn ec_p256() -> TestClientKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate a P-256 key");
        let pkcs8 = pair.to_pkcs8v1().expect("encode a P-256 key").as_ref().to_vec();
        // Uncompressed SEC1 point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => panic!("unexpected P-256 public key encoding"),
        };
        let public = json!({ "kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y) });
        let d = pair.private_key().as_be_bytes().expect("export a P-256 private key");
        let private = json!({ "d": b64url(d.as_ref()) });
        Self::assemble(Kind::P256, pkcs8, public, private)
    }

    /// A fresh Ed25519 key (`kty` `OKP`, `crv` `Ed25519`), `alg` EdDSA (RFC 8037).
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (an internal failure of the library).
    pub fn ed25519() -> TestClientKey {
        let pair = Ed25519KeyPair::generate().expect("generate an Ed25519 key");
        let pkcs8 = pair.to_pkcs8v1().expect("encode an Ed25519 key").as_ref().to_vec();
        let public = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64url(pair.public_key().as_ref()) });
        let seed = pair.seed().and_then(|s| s.as_be_bytes()).expect("export an Ed25519 seed");
        let private = json!({ "d": b64url(seed.as_ref()) });
        Self::assemble(Kind::Ed25519, pkcs8, public, private)
    }

    fn assemble(kind: Kind, pkcs8: Vec<u8>, public: Value, private: Value) -> Self {
        let public = into_map(public);
        let kid = thumbprint(&public).unwrap_or_else(|| random_token(32));
        Self { kind, kid, pkcs8, public, private: into_map(private) }
    }

    /// The JOSE algorithm this key signs with: `RS256`, `ES256` or `EdDSA`.
    pub fn alg(&self) -> &'static str {
        match self.kind {
            Kind::Rsa => "RS256",
            Kind::P256 => "ES256",
            Kind::Ed25519 => "EdDSA",
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self.kind {
            Kind::Rsa => Algorithm::RS256,
            Kind::P256 => Algorithm::ES256,
            Kind::Ed25519 => Algorithm::EdDSA,
        }
    }

    /// The key id: the RFC 7638 JWK thumbprint of the public key (SHA-256, base64url without
    /// padding), also the `kid` of [`public_jwk`](Self::public_jwk) and
    /// [`private_jwk`](Self::private_jwk).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`), as
    /// `jsonwebtoken::EncodingKey::from_rsa_pem` / `from_ec_pem` / `from_ed_pem` and most
    /// libraries read it.
    pub fn private_pem(&self) -> String {
        pem_private_key(&self.pkcs8)
    }

    /// The private key as a JWK: the [public JWK](Self::public_jwk) plus `d` (for RSA also `p`,
    /// `q`, `dp`, `dq`, `qi`; for Ed25519 `d` is the 32-byte seed, RFC 8037 §2).
    pub fn private_jwk(&self) -> Value {
        let mut jwk = into_map(self.public_jwk());
        jwk.extend(self.private.clone());
        Value::Object(jwk)
    }

    /// The public key as a JWK, to register with [`TestClient::with_jwk`](crate::TestClient::with_jwk):
    /// `kty`, the public parameters (`n`, `e` / `crv`, `x`, `y` / `crv`, `x`), `kid`
    /// (the thumbprint), `use: sig` and `alg`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public.clone();
        jwk.insert("kid".into(), Value::String(self.kid.clone()));
        jwk.insert("use".into(), Value::String("sig".into()));
        jwk.insert("alg".into(), Value::String(self.alg().into()));
        Value::Object(jwk)
    }

    /// Signs `claims` as they are with this key: header `{"typ":"JWT","alg","kid"}`.
    ///
    /// # Panics
    ///
    /// If signing fails, which the keys this type generates do not.
    pub fn sign_jwt(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm());
        header.kid = Some(self.kid.clone());
        let key = match self.kind {
            Kind::Rsa => EncodingKey::from_rsa_pem(self.private_pem().as_bytes()).expect("load the RSA key"),
            Kind::P256 => EncodingKey::from_ec_der(&self.pkcs8),
            Kind::Ed25519 => EncodingKey::from_ed_der(&self.pkcs8),
        };
        jsonwebtoken::encode(&header, claims, &key).expect("sign with a generated key")
    }

    /// A valid client assertion (RFC 7523 §3) for `client_id` and the audience `aud` (the
    /// provider's issuer or the URL of the endpoint it is for): `iss` = `sub` = `client_id`,
    /// `aud`, `iat` now, `exp` in 60 seconds and a fresh random `jti`, signed by
    /// [`sign_jwt`](Self::sign_jwt).
    ///
    /// # Panics
    ///
    /// As [`sign_jwt`](Self::sign_jwt).
    pub fn client_assertion(&self, client_id: &str, aud: &str) -> String {
        let now = now();
        self.sign_jwt(&json!({
            "iss": client_id,
            "sub": client_id,
            "aud": aud,
            "iat": now,
            "exp": now + 60,
            "jti": random_token(16),
        }))
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA, EC or OKP public key: the
/// required members in lexicographic order, without whitespace.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let members: &[&str] = match text("kty")? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = Map::new();
    for name in members {
        canonical.insert((*name).to_owned(), Value::String(text(name)?.to_owned()));
    }
    // Built member by member in the listed (lexicographic) order; serde_json writes no
    // whitespace and escapes as JSON requires.
    let mut out = String::from("{");
    for (i, name) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String((*name).to_owned()).to_string());
        out.push(':');
        out.push_str(&canonical[*name].to_string());
    }
    out.push('}');
    Some(b64url(&sha256(out.as_bytes())))
}

/// Reads one DER TLV: `(tag, content, rest)`.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The private members of an RSA JWK (RFC 7518 §6.3.2) from a PKCS#8 `PrivateKeyInfo` holding
/// a PKCS#1 `RSAPrivateKey` (RFC 8017 §A.1.2).
fn rsa_private_members(pkcs8: &[u8]) -> Option<Value> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    let (SEQUENCE, info, _) = der_tlv(pkcs8)? else { return None };
    let (INTEGER, _version, rest) = der_tlv(info)? else { return None };
    let (SEQUENCE, _algorithm, rest) = der_tlv(rest)? else { return None };
    let (OCTET_STRING, key, _) = der_tlv(rest)? else { return None };
    let (SEQUENCE, mut fields, _) = der_tlv(key)? else { return None };
    let mut ints = Vec::with_capacity(9);
    while !fields.is_empty() && ints.len() < 9 {
        let (INTEGER, value, rest) = der_tlv(fields)? else { return None };
        // DER integers are signed: strip the sign octet(s) for the JWK's unsigned big-endian form.
        let start = value.iter().position(|&b| b != 0).unwrap_or(value.len().saturating_sub(1));
        ints.push(&value[start..]);
        fields = rest;
    }
    // version, n, e, d, p, q, dp, dq, qi
    let [_, _, _, d, p, q, dp, dq, qi] = ints.as_slice() else { return None };
    Some(json!({
        "d": b64url(d),
        "p": b64url(p),
        "q": b64url(q),
        "dp": b64url(dp),
        "dq": b64url(dq),
        "qi": b64url(qi),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{DecodingKey, Validation};

    fn verify(key: &TestClientKey, token: &str) {
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).expect("jwk");
        let decoding = DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = Validation::new(key.algorithm());
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(token, &decoding, &validation).expect("verify");
        assert_eq!(data.claims["sub"], "c");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
    }

    fn check(key: &TestClientKey) {
        verify(key, &key.client_assertion("c", "https://op.example"));
        // The PEM loads with jsonwebtoken, as a client would load it.
        let pem = key.private_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let encoding = match key.kind {
            Kind::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Kind::P256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Kind::Ed25519 => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .expect("PEM");
        let mut header = Header::new(key.algorithm());
        header.kid = Some(key.kid().to_owned());
        verify(key, &jsonwebtoken::encode(&header, &json!({"sub": "c", "exp": now() + 60}), &encoding).expect("sign"));
        // The kid is the RFC 7638 thumbprint, as jsonwebtoken computes it too.
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).expect("jwk");
        assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).expect("thumbprint"), key.kid());
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()));
        for (name, value) in &key.private {
            assert!(!debug.contains(value.as_str().expect("string")), "Debug shows {name}");
            assert!(key.public_jwk().get(name).is_none(), "public JWK has {name}");
            assert_eq!(key.private_jwk()[name], *value);
        }
    }

    fn decode(jwk: &Value, name: &str) -> Vec<u8> {
        crate::util::b64url_decode(jwk[name].as_str().expect(name)).expect("base64url")
    }

    fn der_int(out: &mut Vec<u8>, value: &[u8]) {
        let mut body = value.to_vec();
        if body.first().is_some_and(|b| b & 0x80 != 0) {
            body.insert(0, 0);
        }
        out.push(0x02);
        der_len(out, body.len());
        out.extend(body);
    }

    fn der_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(u8::try_from(len).expect("short"));
        } else {
            let bytes = u32::try_from(len).expect("len").to_be_bytes();
            let start = bytes.iter().position(|&b| b != 0).unwrap_or(3);
            out.push(0x80 | u8::try_from(4 - start).expect("n"));
            out.extend(&bytes[start..]);
        }
    }

    #[test]
    fn rsa_key() {
        let key = TestClientKey::rsa();
        check(&key);
        // The private JWK's CRT members rebuild a key aws-lc-rs accepts (it checks consistency)
        // and that signs verifiably with the public key.
        let jwk = key.private_jwk();
        let mut body = Vec::new();
        der_int(&mut body, &[0]);
        for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
            der_int(&mut body, &decode(&jwk, name));
        }
        let mut der = vec![0x30];
        der_len(&mut der, body.len());
        der.extend(body);
        let pair = RsaKeyPair::from_der(&der).expect("the private JWK is a consistent RSA key");
        let rebuilt = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        assert_eq!(b64url(&rebuilt.n), jwk["n"]);
    }

    #[test]
    fn ec_key() {
        let key = TestClientKey::ec_p256();
        check(&key);
        let jwk = key.private_jwk();
        let mut point = vec![4];
        point.extend(decode(&jwk, "x"));
        point.extend(decode(&jwk, "y"));
        EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &decode(&jwk, "d"), &point)
            .expect("d matches x, y");
    }

    #[test]
    fn ed25519_key() {
        let key = TestClientKey::ed25519();
        check(&key);
        let jwk = key.private_jwk();
        let pair = Ed25519KeyPair::from_seed_unchecked(&decode(&jwk, "d")).expect("seed");
        assert_eq!(pair.public_key().as_ref(), decode(&jwk, "x").as_slice());
    }
}
