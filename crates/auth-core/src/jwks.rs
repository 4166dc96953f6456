//! The provider's signing keys: fetched once, cached, refetched on an unknown `kid` with a cooldown,
//! one fetch in flight however many requests wait, stale keys served while the provider is down.
//!
//! Every fetch, successful or not, is an *attempt*. Requests that waited for an attempt that
//! started after they arrived share its outcome instead of fetching again; keys grown old are
//! refreshed without making anyone wait (the old keys serve meanwhile). A fetch caused by a token from a channel anyone can
//! post to ([`Trust::Anyone`]: back-channel logout, bearer tokens) or by keys growing old waits for
//! the cooldown since the last attempt, doubled after each failed attempt in a row (up to
//! [`MAX_BACKOFF`]). An ID token from the token endpoint's response ([`Trust::TokenEndpoint`]: an
//! authenticated server-to-server exchange an attacker cannot write into) may always refetch for
//! an unknown `kid`, so a provider's key rotation never blocks logins; it is still single-flight.

use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

use crate::jws::VerifyingKey;
use crate::net::HttpClient;
use crate::{Error, TokenError};

/// The longest wait between two attempts after failures in a row, whatever the cooldown.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often the JWKS may be refetched because of an unknown `kid`, and how old it may grow.
///
/// ```
/// use std::time::Duration;
/// let cfg = auth_core::JwksConfig { refetch_cooldown: Duration::from_secs(10), ..Default::default() };
/// assert_eq!(cfg.max_age, Duration::from_secs(24 * 3600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksConfig {
    /// Minimum time between two fetches of the JWKS caused by tokens anyone can send or by keys
    /// growing old (default 30 s), doubled after each failed fetch in a row (up to 5 minutes), so a
    /// flood of forged `kid`s cannot turn into a flood of requests to the provider. ID tokens
    /// received from the token endpoint are not held back by it.
    pub refetch_cooldown: Duration,
    /// Keys older than this are refreshed on next use (default 24 h); if that fails, the old keys
    /// stay in use.
    pub max_age: Duration,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig { refetch_cooldown: Duration::from_secs(30), max_age: Duration::from_secs(24 * 3600) }
    }
}

/// Where a token to verify came from, which decides whether an unknown `kid` may bypass the
/// refetch cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// The token endpoint's response to our own authenticated request.
    TokenEndpoint,
    /// A request anyone can send (back-channel logout, a bearer token).
    Anyone,
}

#[derive(Debug)]
struct CachedKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    kty: String,
    crv: Option<String>,
    key: VerifyingKey,
}

#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<CachedKey>>,
    fetched_at: Option<Instant>,
}

/// The record of fetch attempts that the cooldown and the shared outcome are decided from.
#[derive(Debug, Default)]
struct Attempts {
    /// Fetches started so far (successful or not). A request that waited shares the outcome of
    /// a fetch that started after it arrived; one that started before may predate a rotation.
    started: u64,
    /// When the last attempt started.
    last: Option<Instant>,
    /// Failed attempts in a row.
    failures: u32,
    /// Why the last attempt failed, for the requests that shared it.
    last_error: Option<String>,
}

impl Attempts {
    /// The wait before another attempt that the cooldown governs.
    fn wait(&self, cooldown: Duration) -> Duration {
        let doubled = cooldown.saturating_mul(1u32 << self.failures.min(16));
        if self.failures == 0 { cooldown } else { doubled.min(MAX_BACKOFF.max(cooldown)) }
    }
}

/// A provider's JWKS cache.
#[derive(Debug)]
pub(crate) struct JwksCache {
    uri: String,
    /// The provider's name, for the metrics.
    provider: String,
    cfg: JwksConfig,
    set: RwLock<Arc<KeySet>>,
    /// Held while fetching: the single flight.
    fetching: tokio::sync::Mutex<()>,
    attempts: Mutex<Attempts>,
}

/// A verification key picked for one token.
#[derive(Debug, Clone)]
pub(crate) struct PickedKey(Arc<CachedKey>);

impl PickedKey {
    /// Verifies a JWS signed with `alg` by this key; its claims.
    pub(crate) fn verify(&self, token: &str, alg: Algorithm) -> Result<crate::id_token::Claims, TokenError> {
        self.0.key.verify(token, alg)
    }
}

/// The outcome of a request's try at refreshing the keys.
enum Refresh {
    /// A fetch was made (by this request or one that started after it arrived) and succeeded,
    /// or the key appeared meanwhile.
    Fetched,
    /// That fetch failed.
    Failed(Error),
    /// The cooldown forbids a fetch now.
    CoolingDown,
}

impl JwksCache {
    pub(crate) fn new(uri: String, cfg: JwksConfig, provider: String) -> Self {
        JwksCache {
            uri,
            provider,
            cfg,
            set: RwLock::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(()),
            attempts: Mutex::new(Attempts::default()),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the cooldown (with its backoff) allows another fetch now.
    fn cooling_down(&self) -> bool {
        let attempts = self.attempts();
        attempts.last.is_some_and(|t| t.elapsed() < attempts.wait(self.cfg.refetch_cooldown))
    }

    /// The key for a token signed with `alg` and carrying `kid`, from a channel of `trust`.
    pub(crate) async fn key_for(
        &self,
        http: &HttpClient,
        kid: Option<&str>,
        alg: Algorithm,
        trust: Trust,
    ) -> Result<PickedKey, Error> {
        let seen = self.attempts().started;
        let set = self.current();
        let stale = set.fetched_at.is_none_or(|t| t.elapsed() > self.cfg.max_age);
        if let Some(key) = pick(&set, kid, alg) {
            if stale && !self.cooling_down() {
                // Keys grown old: refresh them, but never make a request wait for it while a
                // fetch is already in flight; the old key serves meanwhile (and if it fails).
                if let Ok(flight) = self.fetching.try_lock() {
                    self.fetch_now(http, &flight).await;
                }
            }
            return Ok(pick(&self.current(), kid, alg).unwrap_or(key));
        }
        // An unknown kid (rotation) may bypass the cooldown when the token came from the token
        // endpoint; tokens from anyone wait for it.
        let outcome = self.refresh(http, kid, alg, seen, trust == Trust::TokenEndpoint).await;
        match pick(&self.current(), kid, alg) {
            Some(key) => Ok(key),
            None => match outcome {
                Refresh::Failed(err) => Err(err),
                Refresh::Fetched => Err(crate::TokenError::UnknownKey(kid.map(str::to_owned)).into()),
                // Not known yet, and not ours to fetch now: a key the provider may have just
                // rotated in cannot be told from a forged one until the cooldown ends.
                Refresh::CoolingDown => Err(crate::TokenError::UnknownKeyCoolingDown(kid.map(str::to_owned)).into()),
            },
        }
    }

    /// Fetches the JWKS for a key that is missing, unless it appeared meanwhile, a fetch that
    /// started after this request arrived (`seen` is the start count it saw) already answered,
    /// or the cooldown forbids it. A failed fetch keeps the old keys.
    async fn refresh(&self, http: &HttpClient, kid: Option<&str>, alg: Algorithm, seen: u64, bypass: bool) -> Refresh {
        let flight = self.fetching.lock().await;
        if pick(&self.current(), kid, alg).is_some() {
            return Refresh::Fetched;
        }
        {
            let attempts = self.attempts();
            if attempts.started != seen {
                // A fetch began after this request arrived, and is over: share its outcome.
                return match &attempts.last_error {
                    None => Refresh::Fetched,
                    Some(reason) => Refresh::Failed(jwks_unavailable(reason)),
                };
            }
        }
        if self.cooling_down() && !bypass {
            return Refresh::CoolingDown;
        }
        self.fetch_now(http, &flight).await
    }

    /// One fetch, with its bookkeeping; the caller holds the single-flight lock.
    async fn fetch_now(&self, http: &HttpClient, _flight: &tokio::sync::MutexGuard<'_, ()>) -> Refresh {
        {
            let mut attempts = self.attempts();
            attempts.started += 1;
            attempts.last = Some(Instant::now());
        }
        let result = self.fetch(http).await;
        crate::metrics::jwks_fetch(&self.provider, result.is_ok());
        let mut attempts = self.attempts();
        match result {
            Ok(keys) => {
                *self.set.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(KeySet { keys, fetched_at: Some(Instant::now()) });
                attempts.failures = 0;
                attempts.last_error = None;
                Refresh::Fetched
            }
            Err(err) => {
                tracing::warn!(provider = %self.provider, jwks_uri = %self.uri, error = %err, "JWKS fetch failed; keeping the cached keys");
                attempts.failures = attempts.failures.saturating_add(1);
                attempts.last_error = Some(err.to_string());
                Refresh::Failed(err)
            }
        }
    }

    async fn fetch(&self, http: &HttpClient) -> Result<Vec<Arc<CachedKey>>, Error> {
        read_keys(&http.get_json(&self.uri, None, &self.provider, "jwks").await?)
    }
}

/// The signing keys of a JWKS document.
fn read_keys(doc: &serde_json::Value) -> Result<Vec<Arc<CachedKey>>, Error> {
    let keys = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| Error::Provider { endpoint: "jwks", reason: "no `keys` array".into() })?;
    // Keys of unknown types or for encryption are skipped, not fatal: a JWKS may hold keys
    // this library never uses.
    Ok(keys.iter().filter_map(parse_key).map(Arc::new).collect())
}

/// The error for requests that shared a failed fetch.
fn jwks_unavailable(reason: &str) -> Error {
    Error::Provider { endpoint: "jwks", reason: format!("the JWKS could not be fetched ({reason})") }
}

fn parse_key(value: &serde_json::Value) -> Option<CachedKey> {
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    // A key for an algorithm this library does not verify with (`RSA-OAEP`, `ES512`) is no
    // signing key here, whatever else it says.
    let alg = match field("alg") {
        Some(name) => Some(Algorithm::from_str(&name).ok()?),
        None => None,
    };
    let key = VerifyingKey::from_jwk(value)?;
    Some(CachedKey { kid: field("kid"), alg, kty: field("kty")?, crv: field("crv"), key })
}

/// Whether a key can verify `alg`: its type (and curve) fit, and its own `alg`, if any, is `alg`.
fn suits(key: &CachedKey, alg: Algorithm) -> bool {
    use Algorithm::*;
    let family_fits = match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => key.kty == "RSA",
        ES256 => key.kty == "EC" && key.crv.as_deref() == Some("P-256"),
        ES384 => key.kty == "EC" && key.crv.as_deref() == Some("P-384"),
        EdDSA => key.kty == "OKP" && key.crv.as_deref() == Some("Ed25519"),
        _ => false,
    };
    family_fits && key.alg.is_none_or(|a| a == alg)
}

/// Picks the key: by `kid`; without a `kid`, only when exactly one key suits (security rule 4).
fn pick(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Option<PickedKey> {
    let mut suitable = set.keys.iter().filter(|k| suits(k, alg));
    match kid {
        Some(kid) => suitable.find(|k| k.kid.as_deref() == Some(kid)).cloned().map(PickedKey),
        None => {
            let first = suitable.next()?;
            suitable.next().is_none().then(|| PickedKey(first.clone()))
        }
    }
}

/// A JWKS document as the cache reads it, for the fuzz targets (`fuzz/`; built by `cargo fuzz`
/// only): each signing key it keeps (`kid`, `alg`, `kty`, `crv`), the index of the one picked for
/// a token with `kid` and `alg`, and that key's verdict on `token`.
#[cfg(fuzzing)]
#[allow(clippy::type_complexity)]
pub(crate) fn fuzz_keys(
    doc: &serde_json::Value,
    kid: Option<&str>,
    alg: Algorithm,
    token: &str,
) -> Result<
    (
        Vec<(Option<String>, Option<Algorithm>, String, Option<String>)>,
        Option<(usize, Result<crate::id_token::Claims, TokenError>)>,
    ),
    Error,
> {
    let set = KeySet { keys: read_keys(doc)?, fetched_at: None };
    let keys = set.keys.iter().map(|k| (k.kid.clone(), k.alg, k.kty.clone(), k.crv.clone())).collect();
    let picked = pick(&set, kid, alg).map(|picked| {
        let index = set.keys.iter().position(|k| Arc::ptr_eq(k, &picked.0)).unwrap_or(usize::MAX);
        (index, picked.verify(token, alg))
    });
    Ok((keys, picked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa(kid: Option<&str>) -> Arc<CachedKey> {
        // Any RSA public components do for picking; they are never used to verify here.
        Arc::new(CachedKey {
            kid: kid.map(Into::into),
            alg: None,
            kty: "RSA".into(),
            crv: None,
            key: VerifyingKey::from_jwk(&serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})).unwrap(),
        })
    }

    #[test]
    fn keys_for_algorithms_we_do_not_verify_with_are_skipped() {
        let rsa = |alg: Option<&str>| {
            let mut jwk = serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "k"});
            if let Some(alg) = alg {
                jwk["alg"] = alg.into();
            }
            parse_key(&jwk)
        };
        assert!(rsa(None).is_some());
        assert!(rsa(Some("RS256")).is_some());
        assert!(rsa(Some("RSA-OAEP")).is_none(), "an encryption key verifies nothing");
        assert!(parse_key(&serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"})).is_none());
    }

    #[test]
    fn pick_by_kid_or_single_key() {
        let one = KeySet { keys: vec![rsa(Some("a"))], fetched_at: None };
        assert!(pick(&one, Some("a"), Algorithm::RS256).is_some());
        assert!(pick(&one, Some("b"), Algorithm::RS256).is_none());
        assert!(pick(&one, None, Algorithm::RS256).is_some(), "no kid, one key: use it");
        assert!(pick(&one, None, Algorithm::ES256).is_none(), "wrong family");
        let two = KeySet { keys: vec![rsa(Some("a")), rsa(Some("b"))], fetched_at: None };
        assert!(pick(&two, None, Algorithm::RS256).is_none(), "no kid, two keys: ambiguous");
    }

    #[test]
    fn failures_back_off_up_to_a_bound() {
        let cooldown = Duration::from_secs(30);
        let mut a = Attempts::default();
        assert_eq!(a.wait(cooldown), cooldown);
        a.failures = 1;
        assert_eq!(a.wait(cooldown), Duration::from_secs(60));
        a.failures = 3;
        assert_eq!(a.wait(cooldown), Duration::from_secs(240));
        a.failures = 40;
        assert_eq!(a.wait(cooldown), MAX_BACKOFF, "bounded, and no overflow");
        assert_eq!(a.wait(Duration::ZERO), Duration::ZERO, "a zero cooldown stays zero");
    }
}
