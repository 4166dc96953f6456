//! Entry points for the fuzz targets (`fuzz/` at the repository root): thin wrappers around the
//! crate's readers of what the network sends, so that each target runs the code the library
//! runs. Built only by `cargo fuzz`, which passes `--cfg fuzzing`; not an API.

use std::str::FromStr as _;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

pub use crate::auth::fuzzing::*;
use crate::id_token::{self, Expected};
use crate::{Claims, Error, KeyRing, Provider, ProviderMetadata, Secret, Session, TokenError, Tokens};

/// The compact encoding's decoder: what [`CookieStore`](crate::CookieStore) reads from an opened
/// session cookie.
pub fn decode_session(bytes: &[u8]) -> Option<Session> {
    crate::codec::decode(bytes)
}

/// The compact encoding's encoder: what [`CookieStore`](crate::CookieStore) seals into a session
/// cookie.
pub fn encode_session(session: &Session) -> Result<Vec<u8>, Error> {
    crate::codec::encode(session)
}

/// The keys a logout ends `session` by (its id, and its claims' `iss` and `sub`, and `sid`):
/// read from a decoded session's claims without parsing the others.
pub fn revocation_keys(session: &Session) -> Vec<String> {
    session.revocation_keys()
}

/// The parts of a [`Session`] (whose fields are the crate's own).
#[derive(Debug, Clone)]
pub struct SessionParts {
    /// The session id.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// The claims (any map; a session is made only of one with a non-empty string `sub`).
    pub claims: Map<String, Value>,
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// The ID token.
    pub id_token: Option<String>,
    /// When the access token expires.
    pub expires_at: Option<u64>,
    /// When the tokens were received (milliseconds).
    pub received_ms: Option<u64>,
    /// The granted scope.
    pub scope: Option<String>,
    /// Created (Unix seconds).
    pub created_at: u64,
    /// Ends (Unix seconds).
    pub session_expires_at: u64,
}

/// A session from its parts; `None` when the claims have no non-empty string `sub` (a login's
/// always have one, and the decoder refuses a session without it).
pub fn session(parts: SessionParts) -> Option<Session> {
    let claims = Claims::from_value(Value::Object(parts.claims))?;
    Some(Session {
        id: parts.id,
        provider: parts.provider,
        claims,
        tokens: Tokens {
            access_token: Secret::new(parts.access_token),
            refresh_token: parts.refresh_token.map(Secret::new),
            id_token: parts.id_token.map(Secret::new),
            expires_at: parts.expires_at,
            received_ms: parts.received_ms,
            scope: parts.scope,
            dpop_key: None,
        },
        created_at: parts.created_at,
        expires_at: parts.session_expires_at,
    })
}

/// Opens a sealed cookie value as a session lookup does: the plaintext, and whether an older key
/// of the ring opened it.
pub fn open_cookie(ring: &KeyRing, purpose: &[u8], sealed: &str) -> Option<(Vec<u8>, bool)> {
    ring.open_noting_key(purpose, sealed)
}

/// A JOSE header as the token checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    /// `alg`, by its JOSE name.
    pub alg: String,
    /// `kid`.
    pub kid: Option<String>,
    /// `typ`.
    pub typ: Option<String>,
}

/// An algorithm's JOSE name.
fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// Algorithms by their JOSE names (unknown names are left out).
fn algorithms(names: &[&str]) -> Vec<Algorithm> {
    names.iter().filter_map(|n| Algorithm::from_str(n).ok()).collect()
}

/// Reads a JWS's header as every token check does (ID, logout and access tokens), with the
/// algorithms `allowed` (JOSE names).
pub fn jose_header(token: &str, allowed: &[&str]) -> Result<JoseHeader, TokenError> {
    let h = id_token::header(token, &algorithms(allowed))?;
    Ok(JoseHeader { alg: alg_name(h.alg), kid: h.kid, typ: h.typ })
}

/// The algorithms a provider's ID tokens may use, from its metadata (JOSE names).
pub fn allowed_algorithms(advertised: &[String], allow_hs256: bool) -> Vec<String> {
    id_token::allowed_algorithms(advertised, allow_hs256).into_iter().map(alg_name).collect()
}

/// The algorithms a provider's logout tokens may use, from its metadata (JOSE names).
pub fn logout_algorithms(advertised: &[String]) -> Vec<String> {
    id_token::logout_algorithms(advertised).into_iter().map(alg_name).collect()
}

/// The payload of a session's own ID token, read without checking it again.
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    id_token::unverified_claims(token)
}

/// Verifies a compact JWS with the key of `jwk`, as a JWKS key does; `None` when the JWK is no
/// key or `alg` no algorithm.
pub fn verify_with_jwk(jwk: &Value, token: &str, alg: &str) -> Option<Result<Map<String, Value>, TokenError>> {
    let alg = Algorithm::from_str(alg).ok()?;
    Some(crate::jws::VerifyingKey::from_jwk(jwk)?.verify(token, alg))
}

/// Verifies an HS256 JWS with `secret`, as an HS256 ID token is (with the client secret).
pub fn verify_hs256(token: &str, secret: &[u8]) -> Result<Map<String, Value>, TokenError> {
    id_token::verify_signature(token, Algorithm::HS256, &jsonwebtoken::DecodingKey::from_secret(secret))
}

/// What a token is checked against (owned: see the crate's `id_token::Expected`).
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// The issuer (a template with `{tenantid}` when `issuer_template`).
    pub issuer: String,
    /// Replace `{tenantid}` by the token's `tid`.
    pub issuer_template: bool,
    /// Other spellings of the issuer.
    pub issuer_aliases: Vec<String>,
    /// The client id.
    pub client_id: String,
    /// Other audiences trusted.
    pub trusted_audiences: Vec<String>,
    /// The login's nonce.
    pub nonce: Option<String>,
    /// The access token of the same response (`at_hash`).
    pub access_token: Option<String>,
    /// `max_age` sent.
    pub max_age: Option<u64>,
    /// `acr_values` asked for.
    pub acr_values: Vec<String>,
    /// Clock leeway, seconds.
    pub leeway: u64,
    /// Now, Unix seconds.
    pub now: u64,
}

impl Expectations {
    fn expected(&self) -> Expected<'_> {
        Expected {
            issuer: &self.issuer,
            issuer_template: self.issuer_template,
            issuer_aliases: &self.issuer_aliases,
            client_id: &self.client_id,
            trusted_audiences: &self.trusted_audiences,
            nonce: self.nonce.as_deref(),
            access_token: self.access_token.as_deref(),
            max_age: self.max_age,
            acr_values: &self.acr_values,
            leeway: self.leeway,
            now: self.now,
        }
    }
}

/// Checks a signature-verified ID token's claims (OIDC Core §3.1.3.7), signed with `alg`.
pub fn check_id_token(claims: &Map<String, Value>, alg: &str, exp: &Expectations) -> Result<(), TokenError> {
    let alg = Algorithm::from_str(alg).map_err(|_| TokenError::Malformed)?;
    id_token::check_claims(claims, alg, &exp.expected())
}

/// Checks a refreshed ID token's claims against the session's original ones (OIDC Core §12.2).
pub fn check_refreshed(
    new: &Map<String, Value>,
    original: &Map<String, Value>,
    exp: &Expectations,
) -> Result<(), TokenError> {
    id_token::check_refreshed(new, original, &exp.expected())
}

/// A valid logout token's `iss`, `sub`, `sid`, `jti`, `exp` and `iat`.
pub type LogoutFields = (String, Option<String>, Option<String>, String, u64, u64);

/// Checks a signature-verified logout token's claims (Back-Channel Logout 1.0 §2.4, §2.6).
pub fn check_logout_token(claims: &Map<String, Value>, exp: &Expectations) -> Result<LogoutFields, TokenError> {
    let c = id_token::check_logout_claims(claims, &exp.expected())?;
    Ok((c.iss, c.sub, c.sid, c.jti, c.exp, c.iat))
}

/// `at_hash` of `token` for `alg` (OIDC Core §3.1.3.6); `None` for an unknown algorithm.
pub fn token_hash(alg: &str, token: &str) -> Option<String> {
    Some(id_token::token_hash(Algorithm::from_str(alg).ok()?, token))
}

/// A JWKS key as the cache keeps it: `kid`, `alg` (JOSE name), `kty`, `crv`.
pub type KeyFields = (Option<String>, Option<String>, String, Option<String>);

/// Reads a JWKS document as the cache does: the signing keys kept, and for a token with `kid`
/// and `alg` the index of the key picked and that key's verdict on `token`. `None` for an `alg`
/// that is no algorithm.
#[allow(clippy::type_complexity)]
pub fn jwks(
    doc: &Value,
    kid: Option<&str>,
    alg: &str,
    token: &str,
) -> Option<Result<(Vec<KeyFields>, Option<(usize, Result<Map<String, Value>, TokenError>)>), Error>> {
    let alg = Algorithm::from_str(alg).ok()?;
    Some(crate::jwks::fuzz_keys(doc, kid, alg, token).map(|(keys, picked)| {
        let keys = keys.into_iter().map(|(kid, alg, kty, crv)| (kid, alg.map(alg_name), kty, crv)).collect();
        (keys, picked)
    }))
}

/// Reads a discovery document fetched from `url` as discovery does, for `provider` whose metadata
/// must name `expected` as its issuer (`derived`: from the metadata URL): the metadata, checked.
pub fn discovery(
    provider: &Provider,
    url: &str,
    expected: Option<&str>,
    derived: bool,
    body: &[u8],
) -> Result<ProviderMetadata, Error> {
    let meta = crate::discovery::read_metadata(provider, url, expected, derived, body)?;
    crate::discovery::check_endpoints(provider, &meta)?;
    Ok(meta)
}

/// An OAuth error code as it may be shown and logged (`error=` of a callback or token response).
pub fn sanitize_code(code: &str) -> String {
    crate::error::sanitize_code(code)
}
