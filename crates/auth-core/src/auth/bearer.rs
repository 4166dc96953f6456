//! Resource-server mode: bearer access tokens for APIs (RFC 6750), as JWTs (RFC 9068) verified
//! through the provider's JWKS, or opaque tokens checked by introspection (RFC 7662); DPoP-bound
//! ones (RFC 9449 §7) with their proof of possession.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::dpop_check;
use super::{Auth, ProviderRuntime};
use crate::http::{AuthResponse, RequestView};
use crate::id_token;
use crate::jwks::Trust;
use crate::session::Session;
use crate::{Error, TokenError, now};

/// How long an introspection result may be reused at most (however long the token lives).
const INTROSPECTION_MAX_CACHE: u64 = 300;
/// How long an inactive token's introspection result is reused.
const INACTIVE_CACHE: u64 = 10;
/// How many verified (or refused-as-inactive) tokens are remembered.
pub(super) const BEARER_CACHE_ENTRIES: usize = 10_000;
/// At most this many introspection calls are in flight at once: anyone can send opaque tokens
/// (and random ones are each new to the cache), which must not become a flood of calls to the
/// provider.
pub(super) const MAX_INTROSPECTIONS: usize = 32;
/// How long a request waits for a free introspection before it is answered 503.
const INTROSPECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A scope a route requires, for the adapters' `RequireScope<S>` guards.
///
/// ```
/// struct Admin;
/// impl auth_core::Scope for Admin {
///     const NAME: &'static str = "admin";
/// }
/// ```
pub trait Scope: Send + Sync + 'static {
    /// The scope's name, as the token's `scope` lists it.
    const NAME: &'static str;
}

/// A verified bearer access token: who it speaks for, for which client, with which scopes.
///
/// `Debug` shows its claims, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    claims: Map<String, Value>,
    expires_at: u64,
    jwt: bool,
}

impl Bearer {
    /// The subject (`sub`), when the token has one (a client-credentials token may not).
    pub fn sub(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// The client the token was issued to (`client_id`, or `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.claims.get("client_id").or_else(|| self.claims.get("azp")).and_then(Value::as_str)
    }

    /// The granted scopes: the space-delimited `scope` (RFC 6749 §3.3), or `scp` as Entra ID
    /// sends it (a string or an array).
    pub fn scopes(&self) -> Vec<&str> {
        let mut scopes = Vec::new();
        for name in ["scope", "scp"] {
            match self.claims.get(name) {
                Some(Value::String(s)) => scopes.extend(s.split(' ').filter(|s| !s.is_empty())),
                Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str)),
                _ => {}
            }
        }
        scopes
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().contains(&scope)
    }

    /// Every claim (of the JWT, or of the introspection response).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// When the token expires (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether it was a JWT (else an opaque token, introspected).
    pub fn is_jwt(&self) -> bool {
        self.jwt
    }

    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`, RFC 9449 §6), when it is
    /// bound: such a token is only ever accepted with a valid proof of that key.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.claims.get("cnf")?.get("jkt")?.as_str()
    }
}

/// Who a request speaks for: a browser's session or an API client's bearer token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Principal {
    /// A logged-in session (cookie).
    Session(Arc<Session>),
    /// A verified bearer token.
    Bearer(Arc<Bearer>),
}

impl Principal {
    /// How the request was authenticated: `"session"` or `"bearer"`.
    ///
    /// ```
    /// # fn demo(who: &auth_core::Principal) {
    /// let via = who.via(); // "session" or "bearer"
    /// # let _ = via;
    /// # }
    /// ```
    pub fn via(&self) -> &'static str {
        match self {
            Principal::Session(_) => "session",
            Principal::Bearer(_) => "bearer",
        }
    }

    /// The subject, either way.
    pub fn sub(&self) -> Option<&str> {
        match self {
            Principal::Session(s) => Some(s.sub()),
            Principal::Bearer(b) => b.sub(),
        }
    }
}

/// Verified tokens, each until its own expiry, and opaque tokens the provider said are not
/// active (briefly), apart; both bounded, with gradual eviction (quick_cache's S3-FIFO: a burst
/// of tokens seen once goes before the tokens in use, and a full cache never starts over).
/// `Debug` shows no token.
pub(crate) struct BearerCache {
    /// Verified tokens, by the whole token (no hashing on the hot path, and no collision to
    /// craft); a token longer than [`MAX_CACHED_TOKEN`] by `sha256:` and its hash (`:` is no
    /// token character, so the two kinds of key never meet).
    map: TokenCache<Box<str>, Cached>,
    /// Inactive tokens, apart: anyone can send random ones, and they must not push the valid
    /// ones out.
    inactive: TokenCache<TokenHash, u64>,
    /// The introspection calls that may be in flight.
    introspections: tokio::sync::Semaphore,
    /// The introspections in progress, by token hash: concurrent requests with one new opaque
    /// token share one call (each entry goes when its call ends).
    introspecting: Mutex<HashMap<TokenHash, SharedIntrospection>>,
    /// The DPoP proofs accepted lately, against replays (however many tokens are cached).
    dpop_seen: dpop_check::ReplayCache,
    /// When expired entries were last dropped (Unix seconds).
    pruned: std::sync::atomic::AtomicU64,
}

/// How often expired tokens are dropped from the cache (they are never an answer; without this
/// they stayed until 10,000 had gathered: the soak saw the memory grow for two hours).
const PRUNE_EVERY: u64 = 30;

/// An introspection in progress, shared by the requests that carry its token.
type SharedIntrospection = Shared<BoxFuture<'static, Result<Arc<Bearer>, Refusal>>>;

/// Why an introspection refused a token, for every request that waited for it.
#[derive(Debug, Clone)]
enum Refusal {
    Invalid(String),
    Unavailable,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(reason) => Error::BearerInvalid(reason),
            Refusal::Unavailable => Error::BearerUnavailable,
        }
    }
}

impl std::fmt::Debug for BearerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerCache").finish_non_exhaustive()
    }
}

impl BearerCache {
    /// Room for `entries` verified tokens, and as many inactive ones.
    pub(crate) fn new(entries: usize) -> Self {
        BearerCache {
            map: token_cache(entries),
            inactive: token_cache(entries),
            introspections: tokio::sync::Semaphore::new(MAX_INTROSPECTIONS),
            introspecting: Mutex::default(),
            dpop_seen: dpop_check::ReplayCache::new(dpop_check::REPLAY_CACHE_ENTRIES),
            pruned: std::sync::atomic::AtomicU64::new(now()),
        }
    }
}

/// A bounded cache hashed with std's SipHash, pinned (another crate of the app enabling
/// quick_cache's default foldhash must not change it: anyone can choose the keys looked up).
pub(super) type TokenCache<K, V> = quick_cache::sync::Cache<K, V, quick_cache::UnitWeighter, std::hash::RandomState>;

pub(super) fn token_cache<K: Eq + std::hash::Hash, V: Clone>(entries: usize) -> TokenCache<K, V> {
    quick_cache::sync::Cache::with(
        entries,
        u64::try_from(entries).unwrap_or(u64::MAX),
        quick_cache::UnitWeighter,
        std::hash::RandomState::new(),
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

/// SHA-256 of a whole token: the key of the inactive ones, which anyone can make up (their
/// memory is the hash's, whatever their length).
type TokenHash = [u8; 32];
/// A verified token, and until when it may be reused (Unix seconds).
type Cached = (Arc<Bearer>, u64);

/// The longest token kept whole as its own key in the cache of verified tokens (longer ones are
/// kept by their hash): the cache's memory stays bounded by entries × this.
const MAX_CACHED_TOKEN: usize = 4096;

/// The key of a verified token in the cache.
fn cache_key(token: &str) -> std::borrow::Cow<'_, str> {
    if token.len() <= MAX_CACHED_TOKEN {
        return token.into();
    }
    let digest = crate::crypto::sha256(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}").into()
}

impl BearerCache {
    fn valid(&self, token: &str, now: u64) -> Option<Arc<Bearer>> {
        let key = cache_key(token);
        // An expired entry is never an answer; it leaves as the cache evicts.
        self.map.get(key.as_ref()).filter(|(_, until)| *until > now).map(|(b, _)| b)
    }

    fn inactive(&self, key: &TokenHash, now: u64) -> bool {
        self.inactive.get(key).is_some_and(|until| until > now)
    }

    fn put_inactive(&self, key: TokenHash, until: u64) {
        self.inactive.insert(key, until);
    }

    fn put_valid(&self, token: &str, bearer: Arc<Bearer>, until: u64) {
        self.map.insert(cache_key(token).into(), (bearer, until));
        self.prune(now());
    }

    /// Drops the expired entries, at most every [`PRUNE_EVERY`] seconds (one caller does it).
    fn prune(&self, now: u64) {
        use std::sync::atomic::Ordering;
        let last = self.pruned.load(Ordering::Relaxed);
        if now < last + PRUNE_EVERY
            || self.pruned.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        self.map.retain(|_, (_, until)| *until > now);
        self.inactive.retain(|_, until| *until > now);
    }
}

/// The token of an `Authorization: Bearer` (or `DPoP`) header: `None` without one (another
/// scheme counts as none), `Err` for a malformed one (RFC 6750 §2.1 `b64token`).
#[cfg(any(fuzzing, test))]
pub(super) fn bearer_token(header: Option<&str>) -> Option<Result<&str, Error>> {
    authorization_token(header).map(|token| token.map(|(_, token)| token))
}

/// How the access token came: `Authorization: Bearer` (RFC 6750) or `Authorization: DPoP`
/// (RFC 9449 §7.1, with a `DPoP` proof header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The scheme and token of an `Authorization: Bearer` or `DPoP` header (the scheme
/// case-insensitive): `None` without one, `Err` for a malformed token (`token68`, as RFC 6750
/// §2.1's `b64token` and RFC 9449 §7.1 have it).
fn authorization_token(header: Option<&str>) -> Option<Result<(Scheme, &str), Error>> {
    let header = header?.trim();
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty() && body.bytes().all(|b| TOKEN68[usize::from(b)]);
    Some(if valid { Ok((scheme, token)) } else { Err(Error::BearerMalformed) })
}

/// The characters of RFC 6750's `b64token` (RFC 7235's `token68` without its trailing `=`), as a
/// table: checked for every byte of every bearer token.
const TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

impl Auth {
    /// Verifies the request's `Authorization: Bearer` access token (RFC 6750 §2.1; never from
    /// the query string or a form body): a JWT (RFC 9068) through the provider's JWKS, or an
    /// opaque token by introspection (RFC 7662), either remembered until its expiry.
    ///
    /// A token bound to a DPoP key (`cnf.jkt`) is refused here: a [`RequestView`] carries neither
    /// the request's `DPoP` header nor its exact method, so `Authorization: DPoP` needs
    /// [`Auth::bearer_with_dpop`].
    ///
    /// Errors: [`Error::BearerMissing`] (401), [`Error::BearerMalformed`] (400),
    /// [`Error::BearerInvalid`] (401), [`Error::BearerUnavailable`] (503: the provider could not
    /// say), and for the `DPoP` scheme [`Error::DpopTokenInvalid`] or [`Error::DpopProofInvalid`]
    /// (401); [`Auth::bearer_refusal`] turns them into the RFC 6750 (or RFC 9449 §7.1) answer.
    pub async fn bearer(&self, req: &RequestView<'_>) -> Result<Arc<Bearer>, Error> {
        self.bearer_with_dpop(req, req.method_name(), req.dpop_proofs()).await
    }

    /// [`Auth::bearer`], and for a token bound to a DPoP key (`cnf.jkt` in the JWT or in the
    /// introspection answer) sent as `Authorization: DPoP <token>`, its proof (RFC 9449 §4.3,
    /// §7.1): `dpop` is every `DPoP` header of the request (exactly one is allowed), `method`
    /// the request method exactly as sent (`GET`, `PUT`, …); the proof's `htu` must be the
    /// app's base URL and the request's path (its query ignored).
    ///
    /// The token's own validation may come from the cache; the proof is checked on every
    /// request, and each proof is accepted once. A DPoP-bound token sent as `Bearer` is refused
    /// (401 `invalid_token`), and so is an unbound one sent as `DPoP`. Server nonces (§9) are
    /// not asked for.
    ///
    /// ```no_run
    /// # async fn demo(auth: &auth_core::Auth, req: &auth_core::RequestView<'_>, dpop: Option<&str>) {
    /// let proofs: Vec<&str> = dpop.into_iter().collect();
    /// match auth.bearer_with_dpop(req, "GET", &proofs).await {
    ///     Ok(bearer) => println!("{:?} (bound to {:?})", bearer.sub(), bearer.dpop_jkt()),
    ///     Err(err) => println!("{}", auth.bearer_refusal(&err).status),
    /// }
    /// # }
    /// ```
    pub async fn bearer_with_dpop(
        &self,
        req: &RequestView<'_>,
        method: &str,
        dpop: &[&str],
    ) -> Result<Arc<Bearer>, Error> {
        let provider = self.inner.bearer_provider.as_str();
        let outcome =
            self.check_bearer(req, method, dpop).instrument(tracing::info_span!("auth.bearer", provider)).await;
        match &outcome {
            Ok(_) => crate::metrics::bearer(provider, true, "ok"),
            Err(err) => crate::metrics::bearer(provider, false, refusal_reason(err)),
        }
        outcome
    }

    async fn check_bearer(&self, req: &RequestView<'_>, method: &str, dpop: &[&str]) -> Result<Arc<Bearer>, Error> {
        let (scheme, token) = authorization_token(req.authorization()).ok_or(Error::BearerMissing)??;
        let bearer = match (scheme, self.validated_token(token).await) {
            (Scheme::Dpop, Err(Error::BearerInvalid(reason))) => return Err(Error::DpopTokenInvalid(reason)),
            (_, outcome) => outcome?,
        };
        // The token's validation may have come from the cache; its binding and proof never do.
        match (scheme, bearer.dpop_jkt()) {
            (Scheme::Bearer, None) => Ok(bearer),
            (Scheme::Bearer, Some(_)) => Err(Error::BearerInvalid(DPOP_AS_BEARER.into())),
            (Scheme::Dpop, None) => Err(Error::DpopTokenInvalid(NOT_DPOP_BOUND.into())),
            (Scheme::Dpop, Some(jkt)) => {
                let url = format!("{}{}", self.inner.base_url, req.path());
                let expected = dpop_check::Expected {
                    method,
                    url: &url,
                    access_token: token,
                    jkt,
                    now: now(),
                    leeway: self.inner.leeway,
                };
                dpop_check::check(dpop, &expected, &self.inner.bearer_cache.dpop_seen)?;
                Ok(bearer)
            }
        }
    }

    /// The token verified (a JWT) or introspected (an opaque one), or remembered as either; not
    /// yet checked for how it came (its scheme and DPoP proof).
    async fn validated_token(&self, token: &str) -> Result<Arc<Bearer>, Error> {
        let now = now();
        let cache = &self.inner.bearer_cache;
        if let Some(hit) = cache.valid(token, now) {
            return Ok(hit);
        }
        let p = self.provider(&self.inner.bearer_provider)?;
        // Only opaque tokens can be known inactive (a JWT is checked on its own).
        let jwt = token.split('.').count() == 3;
        let key: Option<TokenHash> = if jwt {
            None
        } else {
            let key: TokenHash =
                crate::crypto::sha256(token.as_bytes()).try_into().map_err(|_| Error::Internal("sha256"))?;
            if cache.inactive(&key, now) {
                return Err(Error::BearerInvalid(INACTIVE.into()));
            }
            Some(key)
        };
        let outcome = match key {
            None => self.verify_access_jwt(&p, token).await.map(Arc::new),
            Some(key) => self.introspect_shared(&p, token, key).await,
        };
        match outcome {
            Ok(bearer) => {
                let until = if bearer.jwt {
                    bearer.expires_at
                } else {
                    bearer.expires_at.min(now.saturating_add(INTROSPECTION_MAX_CACHE))
                };
                cache.put_valid(token, bearer.clone(), until);
                Ok(bearer)
            }
            Err(Error::BearerInvalid(reason)) if reason == INACTIVE => {
                if let Some(key) = key {
                    cache.put_inactive(key, now.saturating_add(INACTIVE_CACHE));
                }
                Err(Error::BearerInvalid(reason))
            }
            Err(err) => Err(err),
        }
    }

    /// [`Auth::bearer`], then the scope `scope` required (403 `insufficient_scope`).
    pub async fn bearer_with_scope(&self, req: &RequestView<'_>, scope: &str) -> Result<Arc<Bearer>, Error> {
        let bearer = self.bearer(req).await?;
        if bearer.has_scope(scope) { Ok(bearer) } else { Err(Error::InsufficientScope(scope.to_owned())) }
    }

    /// The session or, when the request carries an `Authorization` header, the bearer token:
    /// for routes that serve browsers and API clients alike. The refusal is the session's
    /// (302/401/503) or the bearer's (RFC 6750).
    pub async fn principal(
        &self,
        req: &RequestView<'_>,
        session: Option<&Arc<Session>>,
        unavailable: bool,
    ) -> Result<Principal, AuthResponse> {
        if req.authorization().is_some() {
            return self.bearer(req).await.map(Principal::Bearer).map_err(|e| self.bearer_refusal(&e));
        }
        match session {
            Some(session) => Ok(Principal::Session(session.clone())),
            None => Err(self.no_session(req, unavailable)),
        }
    }

    /// The RFC 6750 §3 answer to a refused bearer request: `WWW-Authenticate: Bearer realm=…`
    /// (with `error="invalid_request"`, `"invalid_token"` or `"insufficient_scope"` and its
    /// `scope`), then a second `WWW-Authenticate: DPoP algs="ES256 RS256 PS256 EdDSA"` (RFC 9449
    /// §7.1: the API takes DPoP-bound tokens too); a refused `DPoP` request gets only the DPoP
    /// challenge, with `error="invalid_dpop_proof"` or `"invalid_token"`. A JSON body,
    /// `no-store`. The reason a token or proof was refused goes to the log, not to the header.
    pub fn bearer_refusal(&self, err: &Error) -> AuthResponse {
        let realm = format!("Bearer realm=\"{}\"", self.inner.base_url);
        let algs = format!("algs=\"{}\"", dpop_check::ALGS);
        let (bearer, dpop) = match err {
            Error::BearerMissing => (Some(realm), format!("DPoP {algs}")),
            Error::BearerMalformed => (Some(format!("{realm}, error=\"invalid_request\"")), format!("DPoP {algs}")),
            Error::BearerInvalid(reason) => {
                tracing::info!(reason = %reason, "bearer token refused");
                (Some(format!("{realm}, error=\"invalid_token\"")), format!("DPoP {algs}"))
            }
            Error::InsufficientScope(scope) => {
                let error = format!("error=\"insufficient_scope\", scope=\"{scope}\"");
                (Some(format!("{realm}, {error}")), format!("DPoP {error}, {algs}"))
            }
            Error::DpopTokenInvalid(reason) => {
                tracing::info!(reason = %reason, "DPoP access token refused");
                (None, format!("DPoP error=\"invalid_token\", {algs}"))
            }
            Error::DpopProofInvalid(reason) => {
                tracing::info!(reason = %reason, "DPoP proof refused");
                (None, format!("DPoP error=\"invalid_dpop_proof\", {algs}"))
            }
            other if other.status() == 503 => return self.error_response(other, false).with_header("retry-after", "5"),
            other => return self.error_response(other, false),
        };
        let res = self.error_response(err, false);
        let res = match bearer {
            Some(bearer) => res.with_header("www-authenticate", bearer),
            None => res,
        };
        res.with_header("www-authenticate", dpop)
    }

    /// RFC 9068 §4: a JWT access token of the provider, for this API.
    async fn verify_access_jwt(&self, p: &ProviderRuntime, token: &str) -> Result<Bearer, Error> {
        let invalid = |why: String| Error::BearerInvalid(why);
        let header = access_jwt_header(p, token)?;
        let claims = self.verify_jws(p, token, &header, Trust::Anyone).await.map_err(|e| match e {
            Error::Token { source, .. } => invalid(source.to_string()),
            Error::Provider { .. } | Error::Unreachable { .. } => Error::BearerUnavailable,
            other => other,
        })?;
        self.access_jwt_claims(p, claims)
    }

    /// RFC 9068 §4, the claims of a JWT access token whose signature was verified: not an ID or
    /// logout token, the provider's, bound to no key but (perhaps) a DPoP key, for this API, and
    /// valid now.
    pub(super) fn access_jwt_claims(&self, p: &ProviderRuntime, claims: Map<String, Value>) -> Result<Bearer, Error> {
        let invalid = |why: String| Error::BearerInvalid(why);
        let now = now();
        let leeway = self.inner.leeway;
        // An ID token or a logout token is no access token, whatever its type says.
        if ["nonce", "at_hash", "c_hash", "events"].iter().any(|c| claims.contains_key(*c)) {
            return Err(invalid("an ID token (or logout token) is not an access token".into()));
        }
        if !claims.get("iss").and_then(Value::as_str).is_some_and(|iss| issued_by(p, iss, &claims)) {
            return Err(invalid(TokenError::WrongIssuer.to_string()));
        }
        if let Some(refusal) = sender_constrained(&claims) {
            return Err(invalid(refusal.into()));
        }
        self.check_audience(&claims)?;
        let exp = claims.get("exp").and_then(Value::as_u64).ok_or_else(|| invalid("no exp".into()))?;
        if exp.saturating_add(leeway) <= now {
            return Err(invalid(TokenError::Expired.to_string()));
        }
        for (claim, rule) in [("nbf", TokenError::NotYetValid), ("iat", TokenError::IssuedInFuture)] {
            if claims.get(claim).and_then(Value::as_u64).is_some_and(|t| t > now.saturating_add(leeway)) {
                return Err(invalid(rule.to_string()));
            }
        }
        Ok(Bearer { claims, expires_at: exp, jwt: true })
    }

    /// The token's `aud` must name this API.
    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), Error> {
        let audience = &self.inner.api_audience;
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if ok { Ok(()) } else { Err(Error::BearerInvalid(format!("the audience is not {audience}"))) }
    }

    /// [`Auth::introspect`], one call per token however many requests carry it at once. The call
    /// is driven to its end even if every request gives up, and then leaves the map.
    async fn introspect_shared(
        &self,
        p: &Arc<ProviderRuntime>,
        token: &str,
        key: TokenHash,
    ) -> Result<Arc<Bearer>, Error> {
        let (shared, started) = {
            let mut map = self.inner.bearer_cache.introspecting.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some(shared) => (shared.clone(), false),
                None => {
                    let (auth, p, token) = (self.clone(), p.clone(), token.to_owned());
                    let call: BoxFuture<'static, Result<Arc<Bearer>, Refusal>> = Box::pin(async move {
                        let outcome = auth.introspect(&p, &token).await.map(Arc::new).map_err(|err| match err {
                            Error::BearerInvalid(reason) => Refusal::Invalid(reason),
                            _ => Refusal::Unavailable,
                        });
                        let cache = &auth.inner.bearer_cache;
                        cache.introspecting.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                        outcome
                    });
                    let shared = call.shared();
                    map.insert(key, shared.clone());
                    (shared, true)
                }
            }
        };
        // Driven from outside the map's lock, once the map holds it: its end removes it.
        if started {
            tokio::spawn(shared.clone());
        }
        shared.await.map_err(Error::from)
    }

    /// RFC 7662: asks the provider's introspection endpoint, with the client's credentials.
    async fn introspect(&self, p: &ProviderRuntime, token: &str) -> Result<Bearer, Error> {
        let endpoint = p.meta.introspection_endpoint.as_ref().ok_or_else(|| {
            Error::BearerInvalid("an opaque token, and the provider has no introspection endpoint".into())
        })?;
        let permit = tokio::time::timeout(INTROSPECTION_WAIT, self.inner.bearer_cache.introspections.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            tracing::warn!(max = MAX_INTROSPECTIONS, "too many introspections at once; the bearer token gets 503");
            return Err(Error::BearerUnavailable);
        };
        let form = [("token", token), ("token_type_hint", "access_token")];
        let reply = self.post_authenticated(p, endpoint, &form, None, "introspection").await.map_err(|err| {
            tracing::warn!(error = %err, "introspection failed");
            Error::BearerUnavailable
        })?;
        self.read_introspection(p, reply.status, reply.body)
    }

    /// The introspection endpoint's answer (RFC 7662 §2.2), checked: an active access token for
    /// this API, issued by the provider, not expired, and bound to no key but (perhaps) a DPoP
    /// key (`token_type` `DPoP` and `cnf.jkt`, RFC 9449 §6.2).
    pub(super) fn read_introspection(&self, p: &ProviderRuntime, status: u16, body: Value) -> Result<Bearer, Error> {
        if !(200..300).contains(&status) {
            tracing::warn!(status, "the introspection endpoint refused");
            return Err(Error::BearerUnavailable);
        }
        let Value::Object(claims) = body else {
            tracing::warn!("the introspection response is not a JSON object");
            return Err(Error::BearerUnavailable);
        };
        if claims.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(Error::BearerInvalid(INACTIVE.into()));
        }
        // An access token for this API, not a refresh token, and not a token for another API or
        // for the app's own login client (which carries no audience of this API).
        if let Some(kind) = claims.get("token_type").and_then(Value::as_str)
            && kind.eq_ignore_ascii_case("dpop")
            && claims.get("cnf").and_then(|cnf| cnf.get("jkt")).is_none()
        {
            return Err(Error::BearerInvalid(DPOP_WITHOUT_KEY.into()));
        }
        if let Some(kind) = claims.get("token_type").and_then(Value::as_str)
            && !kind.eq_ignore_ascii_case("bearer")
            && !kind.eq_ignore_ascii_case("access_token")
            && !kind.eq_ignore_ascii_case("dpop")
        {
            return Err(Error::BearerInvalid(format!("the token is a {kind}, not an access token")));
        }
        if let Some(refusal) = sender_constrained(&claims) {
            return Err(Error::BearerInvalid(refusal.into()));
        }
        let now = now();
        let exp = claims.get("exp").and_then(Value::as_u64);
        if exp.is_some_and(|exp| exp.saturating_add(self.inner.leeway) <= now) {
            return Err(Error::BearerInvalid(TokenError::Expired.to_string()));
        }
        self.check_audience(&claims)?;
        if let Some(iss) = claims.get("iss")
            && !iss.as_str().is_some_and(|iss| issued_by(p, iss, &claims))
        {
            return Err(Error::BearerInvalid(TokenError::WrongIssuer.to_string()));
        }
        let expires_at = exp.unwrap_or_else(|| now.saturating_add(INTROSPECTION_MAX_CACHE));
        Ok(Bearer { claims, expires_at, jwt: false })
    }
}

/// RFC 9068 §4, the header of a JWT access token of provider `p`: an allowed asymmetric
/// algorithm (an HMAC token would be keyed with our own client secret), and the type `at+jwt`
/// (or, when the provider is configured for it, `JWT` or none).
pub(super) fn access_jwt_header(p: &ProviderRuntime, token: &str) -> Result<id_token::Header, Error> {
    let invalid = |why: String| Error::BearerInvalid(why);
    let header = id_token::header(token, &p.algs).map_err(|e| invalid(e.to_string()))?;
    if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(invalid(TokenError::AlgorithmNotAllowed(format!("{:?}", header.alg)).to_string()));
    }
    let typed = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
    let generic = header.typ.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("JWT"));
    let accepted = typed || (p.config.untyped_access_tokens && generic);
    if !accepted {
        return Err(invalid(format!("the token type is {:?}, not at+jwt", header.typ)));
    }
    Ok(header)
}

/// The reason of an introspected token that is not active (cached briefly).
const INACTIVE: &str = "the token is not active";

/// Why a token was refused as invalid, as a metric label: one of a fixed set (the refusal's text
/// may quote the token's own values, so it is never a label itself).
fn invalid_reason(reason: &str) -> &'static str {
    let is = |rule: TokenError| *reason == rule.to_string();
    if reason == INACTIVE {
        "inactive"
    } else if is(TokenError::Expired) {
        "expired"
    } else if is(TokenError::BadSignature) {
        "bad_signature"
    } else if is(TokenError::WrongIssuer) {
        "wrong_issuer"
    } else if reason.starts_with("the audience is not") {
        "wrong_audience"
    } else if reason.starts_with("no key of the provider") {
        "unknown_key"
    } else if reason.starts_with("the token is bound to") {
        "sender_constrained"
    } else {
        "invalid"
    }
}

/// Why a bearer token was refused, as a metric label: one of a fixed set.
fn refusal_reason(err: &Error) -> &'static str {
    match err {
        Error::DpopProofInvalid(_) => "invalid_dpop_proof",
        Error::DpopTokenInvalid(reason) if reason == NOT_DPOP_BOUND => "not_dpop_bound",
        Error::DpopTokenInvalid(reason) => invalid_reason(reason),
        Error::BearerInvalid(reason) => invalid_reason(reason),
        Error::BearerMissing => "missing",
        Error::BearerMalformed => "malformed",
        Error::BearerUnavailable => "unavailable",
        other => other.code(),
    }
}

/// A DPoP-bound token sent as a plain bearer token: without its proof it must not count.
const DPOP_AS_BEARER: &str =
    "the token is bound to a DPoP key (RFC 9449): it counts only with the DPoP scheme and a proof";
/// An introspected token of type `DPoP` whose key the answer does not name.
const DPOP_WITHOUT_KEY: &str = "the token is bound to a DPoP key, and the introspection answer names none (cnf.jkt)";
/// A token bound to no key, sent with the `DPoP` scheme.
const NOT_DPOP_BOUND: &str = "the token sent with the DPoP scheme is not bound to a DPoP key";

/// A sender-constrained token (`cnf`, RFC 7800) may be bound to a DPoP key (`{"jkt": …}` alone,
/// RFC 9449 §6), which a request proves with its `DPoP` proof; bound to anything else (a client
/// certificate, RFC 8705 `x5t#S256`), or with a malformed `cnf`, it is worthless without a proof
/// of possession this API does not check: refused, never accepted unbound.
fn sender_constrained(claims: &Map<String, Value>) -> Option<&'static str> {
    let cnf = claims.get("cnf")?;
    let dpop = cnf.as_object().is_some_and(|cnf| {
        cnf.len() == 1 && cnf.get("jkt").and_then(Value::as_str).is_some_and(|jkt| !jkt.is_empty() && jkt.len() <= 128)
    });
    if dpop {
        None
    } else if cnf.get("jkt").is_some() {
        Some("the token is bound to a DPoP key by a malformed cnf, or to another key too")
    } else {
        Some("the token is bound to a key (`cnf`) whose proof of possession this API does not check")
    }
}

/// Whether `iss` names provider `p`: its issuer, an alias, or for a multi-tenant Microsoft
/// provider, the issuer template with the token's own `tid` (as ID tokens are checked).
fn issued_by(p: &ProviderRuntime, iss: &str, claims: &serde_json::Map<String, Value>) -> bool {
    crate::id_token::names_issuer(iss, &p.meta.issuer, p.config.multi_tenant_issuer, &p.config.issuer_aliases, claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_header() {
        assert!(bearer_token(None).is_none());
        assert!(bearer_token(Some("Basic dXNlcjpwYXNz")).is_none(), "another scheme is no bearer token");
        assert_eq!(bearer_token(Some("Bearer abc.def-ghi_~+/==")).unwrap().unwrap(), "abc.def-ghi_~+/==");
        assert_eq!(bearer_token(Some("bearer abc")).unwrap().unwrap(), "abc", "the scheme is case-insensitive");
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer ==", "Bearer a\"b"] {
            assert!(matches!(bearer_token(Some(bad)), Some(Err(Error::BearerMalformed))), "{bad:?}");
        }
        assert_eq!(authorization_token(Some("DPoP abc")).unwrap().unwrap(), (Scheme::Dpop, "abc"));
        assert_eq!(authorization_token(Some("dpop abc")).unwrap().unwrap(), (Scheme::Dpop, "abc"), "any case");
        assert_eq!(authorization_token(Some("Bearer abc")).unwrap().unwrap(), (Scheme::Bearer, "abc"));
        assert!(matches!(authorization_token(Some("DPoP a b")), Some(Err(Error::BearerMalformed))));
        assert!(authorization_token(Some("DPoPx abc")).is_none());
    }

    fn bearer(sub: &str) -> Arc<Bearer> {
        let claims = serde_json::json!({ "sub": sub }).as_object().cloned().unwrap_or_default();
        Arc::new(Bearer { claims, expires_at: u64::MAX, jwt: true })
    }

    #[test]
    fn a_full_cache_evicts_gradually_and_keeps_the_tokens_in_use() {
        let cache = BearerCache::new(1_000);
        cache.put_valid("in-use", bearer("alice"), u64::MAX);
        for i in 0..20_000 {
            cache.put_valid(&format!("once-{i}"), bearer("x"), u64::MAX);
            if i % 100 == 0 {
                assert!(cache.valid("in-use", 1).is_some(), "a token in use survives a flood of new ones ({i})");
            }
        }
        assert!(cache.map.len() <= 1_000, "bounded: {}", cache.map.len());
        assert!(cache.valid("once-19999", 1).is_some(), "the newest is there: a full cache does not start over");
        assert!(cache.valid("in-use", u64::MAX).is_none(), "never past its expiry");
        let none = BearerCache::new(0);
        none.put_valid("t", bearer("a"), u64::MAX);
        assert!(none.valid("t", 1).is_none(), "0 remembers nothing");
    }

    #[test]
    fn expired_tokens_are_dropped_every_half_minute() {
        let cache = BearerCache::new(1_000);
        let t0 = now();
        cache.put_valid("short", bearer("a"), t0 + 10);
        cache.put_valid("long", bearer("b"), t0 + 3_600);
        cache.put_inactive([7; 32], t0 + 10);
        cache.prune(t0 + 20);
        assert_eq!(cache.map.len(), 2, "not before PRUNE_EVERY");
        cache.prune(t0 + PRUNE_EVERY + 1);
        assert_eq!((cache.map.len(), cache.inactive.len()), (1, 0), "the expired ones are gone");
        assert!(cache.valid("long", t0 + PRUNE_EVERY + 1).is_some());
    }

    #[test]
    fn scopes_from_scope_or_scp() {
        let b = |claims: Value| Bearer {
            claims: claims.as_object().cloned().unwrap_or_default(),
            expires_at: 0,
            jwt: true,
        };
        assert_eq!(b(serde_json::json!({"scope": "read  write"})).scopes(), ["read", "write"]);
        assert!(b(serde_json::json!({"scp": ["admin"]})).has_scope("admin"));
        assert!(!b(serde_json::json!({"scope": "read admin-lite"})).has_scope("admin"));
        let full = b(serde_json::json!({"sub": "u", "azp": "app"}));
        assert_eq!((full.sub(), full.client_id()), (Some("u"), Some("app")));
    }
}
