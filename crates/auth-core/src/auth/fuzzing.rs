//! The login flow's readers of what the network sends, for the fuzz targets (`fuzz/` at the
//! repository root). Built only by `cargo fuzz` (`--cfg fuzzing`); re-exported by
//! [`crate::fuzzing`]. Each wrapper parses its input as the flow does, then calls the flow's own
//! function.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::login::PendingLogin;
use super::logout::PendingLogout;
use super::{Auth, Bearer, ProviderRuntime};
use crate::{Claims, Error, Profile, Provider, ProviderMetadata};

/// A provider as the flow holds it once discovered (without a JWKS: no signature is checked by
/// the wrappers that take one).
#[derive(Debug)]
pub struct Discovered(ProviderRuntime);

impl std::fmt::Debug for ProviderRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRuntime").field("name", &self.config.name).finish_non_exhaustive()
    }
}

impl Discovered {
    /// `config` with the metadata its discovery found, and the algorithms it then allows.
    pub fn new(config: Provider, meta: ProviderMetadata) -> Self {
        let advertised = &meta.id_token_signing_alg_values_supported;
        let algs = crate::id_token::allowed_algorithms(advertised, config.allow_hs256);
        let logout_algs = crate::id_token::logout_algorithms(advertised);
        let redirect_uri = format!("https://app.example/auth/{}/callback", config.name);
        Discovered(ProviderRuntime { config, meta, jwks: None, algs, logout_algs, redirect_uri })
    }

    /// The issuer of its metadata.
    pub fn issuer(&self) -> &str {
        &self.0.meta.issuer
    }
}

/// A pending login's fields (the payload of its cookie, once opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLoginFields {
    /// The provider the login went to.
    pub provider: String,
    /// `state`.
    pub state: String,
    /// `nonce`.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// Where to go afterwards.
    pub next: String,
    /// Created, Unix seconds.
    pub created: u64,
    /// Creation order.
    pub order: u64,
}

/// Reads a pending-login cookie's payload, as the callback and the pruning of old logins do.
pub fn read_pending_login(plain: &[u8]) -> Option<PendingLoginFields> {
    let p: PendingLogin = serde_json::from_slice(plain).ok()?;
    Some(PendingLoginFields {
        provider: p.p,
        state: p.s,
        nonce: p.n,
        verifier: p.v,
        next: p.r,
        created: p.t,
        order: p.o,
    })
}

/// A pending-login cookie's payload, as a login writes it.
pub fn write_pending_login(f: &PendingLoginFields) -> Vec<u8> {
    let p = PendingLogin {
        p: f.provider.clone(),
        s: f.state.clone(),
        n: f.nonce.clone(),
        v: f.verifier.clone(),
        r: f.next.clone(),
        t: f.created,
        o: f.order,
    };
    to_json(&p)
}

/// Reads a pending-logout cookie's payload (`state`, created), as the logout callback does.
pub fn read_pending_logout(plain: &[u8]) -> Option<(String, u64)> {
    let p: PendingLogout = serde_json::from_slice(plain).ok()?;
    Some((p.s, p.t))
}

/// A pending-logout cookie's payload, as a logout writes it.
pub fn write_pending_logout(state: &str, created: u64) -> Vec<u8> {
    to_json(&PendingLogout { s: state.to_owned(), t: created })
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Strings and numbers only: serializing them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// What the flow keeps of a token response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFields {
    /// `access_token`.
    pub access_token: String,
    /// `token_type`.
    pub token_type: Option<String>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `id_token`.
    pub id_token: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// When the access token expires (Unix seconds), from `expires_in` and `now`.
    pub expires_at: Option<u64>,
}

/// Reads the token endpoint's answer (`status`, `body`) as the code exchange and the refresh do:
/// the body as JSON (`null` when it is not), then the tokens or the error, then the expiry.
pub fn token_response(cfg: &Provider, status: u16, body: &[u8], now: u64) -> Result<TokenFields, Error> {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    let t = super::client::read_token_response(cfg, status, body)?;
    Ok(TokenFields {
        expires_at: super::callback::access_token_expiry(now, t.expires_in.as_ref()),
        access_token: t.access_token,
        token_type: t.token_type,
        refresh_token: t.refresh_token,
        id_token: t.id_token,
        scope: t.scope,
    })
}

/// Reads a userinfo answer (and GitHub's `/user/emails`) as a login does: JSON, mapped by the
/// provider's profile, added to the ID token's claims `id_claims` (whose `sub` it must repeat).
pub fn userinfo(profile: &Profile, id_claims: Map<String, Value>, info: &[u8], emails: &[u8]) -> Result<Claims, Error> {
    let json = |body: &[u8]| -> Result<Value, Error> {
        serde_json::from_slice(body)
            .map_err(|_| Error::Provider { endpoint: "userinfo", reason: "the body is not valid JSON".into() })
    };
    let mut claims = id_claims;
    let mut info = super::callback::userinfo_claims(profile, &json(info)?)?;
    if matches!(profile, Profile::Github) {
        super::callback::github_email(&mut info, &json(emails)?);
    }
    super::callback::merge_userinfo(&mut claims, info)?;
    Claims::from_value(Value::Object(claims))
        .ok_or(Error::Provider { endpoint: "userinfo", reason: "no subject for the user".into() })
}

/// Reads an introspection answer (`status`, `body`) for provider `p` as a bearer request does.
pub fn introspection(auth: &Auth, p: &Discovered, status: u16, body: &[u8]) -> Result<Bearer, Error> {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    auth.read_introspection(&p.0, status, body)
}

/// Checks a JWT access token's header as a bearer request does (before its signature).
pub fn access_token_header(p: &Discovered, token: &str) -> Result<(), Error> {
    super::bearer::access_jwt_header(&p.0, token).map(|_| ())
}

/// Checks a JWT access token's claims as a bearer request does (after its signature).
pub fn access_token_claims(auth: &Auth, p: &Discovered, claims: Map<String, Value>) -> Result<Bearer, Error> {
    auth.access_jwt_claims(&p.0, claims)
}

/// Reads an `Authorization` header as a bearer request does: `None` without a bearer token.
pub fn bearer_header(header: Option<&str>) -> Option<Result<&str, Error>> {
    super::bearer::bearer_token(header)
}

/// The resource server's check of a request's `DPoP` headers (RFC 9449 §4.3, what
/// [`Auth::bearer`] runs for a DPoP-bound token): `proofs` for a `method` request to `url` with
/// `access_token`, bound to the key of thumbprint `jkt`, at `now` with a clock leeway of `leeway`.
/// The same headers are then checked a second time against the same replay cache, as a replayed
/// request would be; both outcomes are returned.
pub fn dpop_proof(
    proofs: &[&str],
    (method, url, access_token, jkt): (&str, &str, &str, &str),
    now: u64,
    leeway: u64,
) -> (Result<(), Error>, Result<(), Error>) {
    let expected = super::dpop_check::Expected { method, url, access_token, jkt, now, leeway };
    let seen = super::dpop_check::ReplayCache::new(16);
    let first = super::dpop_check::check(proofs, &expected, &seen);
    (first, super::dpop_check::check(proofs, &expected, &seen))
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of the `jwk` in a compact JWS's header, computed
/// as the API side computes a proof key's (by jsonwebtoken); `None` when there is none.
pub fn dpop_thumbprint(proof: &str) -> Option<String> {
    let header = super::dpop_check::json_part(proof.split('.').next()?)?;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(header.get("jwk")?.clone()).ok()?;
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).ok()
}
