//! The provider's signing keys: fetched once, cached, refetched on an unknown `kid` with a cooldown,
//! one fetch in flight however many requests wait, stale keys served while the provider is down.

use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};

use crate::Error;
use crate::net::HttpClient;

/// How often the JWKS may be refetched because of an unknown `kid`, and how old it may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksConfig {
    /// Minimum time between two fetches triggered by unknown keys (default 30 s), so a flood of
    /// forged `kid`s cannot turn into a flood of requests to the provider.
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

#[derive(Debug)]
struct CachedKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    kty: String,
    crv: Option<String>,
    key: DecodingKey,
}

#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<CachedKey>>,
    generation: u64,
    fetched_at: Option<Instant>,
}

/// A provider's JWKS cache.
#[derive(Debug)]
pub(crate) struct JwksCache {
    uri: String,
    cfg: JwksConfig,
    set: RwLock<Arc<KeySet>>,
    /// Held while fetching: the single flight.
    fetching: tokio::sync::Mutex<()>,
    /// The last fetch caused by an unknown `kid`; the cooldown counts from it, so a rotation right
    /// after start-up still gets its refetch.
    last_forced: Mutex<Option<Instant>>,
}

/// A verification key picked for one token.
#[derive(Debug, Clone)]
pub(crate) struct PickedKey(Arc<CachedKey>);

impl PickedKey {
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.0.key
    }
}

impl JwksCache {
    pub(crate) fn new(uri: String, cfg: JwksConfig) -> Self {
        JwksCache {
            uri,
            cfg,
            set: RwLock::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(()),
            last_forced: Mutex::new(None),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key for a token signed with `alg` and carrying `kid`.
    pub(crate) async fn key_for(
        &self,
        http: &HttpClient,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<PickedKey, Error> {
        let set = self.current();
        let stale = set.fetched_at.is_none_or(|t| t.elapsed() > self.cfg.max_age);
        if !stale && let Some(key) = pick(&set, kid, alg) {
            return Ok(key);
        }
        // Unknown kid (rotation), first use, or keys too old: one refetch, shared by all waiters.
        let refreshed = self.refresh(http, set.generation, stale).await;
        let set = self.current();
        match pick(&set, kid, alg) {
            Some(key) => Ok(key),
            None => {
                refreshed?;
                Err(crate::TokenError::UnknownKey(kid.map(str::to_owned)).into())
            }
        }
    }

    /// Fetches the JWKS unless another task just did (`seen` is the generation the caller looked
    /// at) or the cooldown forbids it. A failed fetch keeps the old keys.
    async fn refresh(&self, http: &HttpClient, seen: u64, scheduled: bool) -> Result<(), Error> {
        let _flight = self.fetching.lock().await;
        if self.current().generation != seen {
            return Ok(()); // someone else fetched while we waited
        }
        if !scheduled {
            let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.cfg.refetch_cooldown) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        match self.fetch(http).await {
            Ok(keys) => {
                let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
                let generation = set.generation + 1;
                *set = Arc::new(KeySet { keys, generation, fetched_at: Some(Instant::now()) });
                Ok(())
            }
            Err(err) => {
                tracing::warn!(jwks_uri = %self.uri, error = %err, "JWKS fetch failed; keeping the cached keys");
                Err(err)
            }
        }
    }

    async fn fetch(&self, http: &HttpClient) -> Result<Vec<Arc<CachedKey>>, Error> {
        let doc = http.get_json(&self.uri, None, "jwks").await?;
        let keys = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| Error::Provider { endpoint: "jwks", reason: "no `keys` array".into() })?;
        // Keys of unknown types or for encryption are skipped, not fatal: a JWKS may hold keys
        // this library never uses.
        Ok(keys.iter().filter_map(parse_key).map(Arc::new).collect())
    }
}

fn parse_key(value: &serde_json::Value) -> Option<CachedKey> {
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(value.clone()).ok()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(CachedKey {
        kid: field("kid"),
        alg: field("alg").and_then(|a| Algorithm::from_str(&a).ok()),
        kty: field("kty")?,
        crv: field("crv"),
        key,
    })
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
            key: DecodingKey::from_rsa_components("AQAB", "AQAB").unwrap(),
        })
    }

    #[test]
    fn pick_by_kid_or_single_key() {
        let one = KeySet { keys: vec![rsa(Some("a"))], ..KeySet::default() };
        assert!(pick(&one, Some("a"), Algorithm::RS256).is_some());
        assert!(pick(&one, Some("b"), Algorithm::RS256).is_none());
        assert!(pick(&one, None, Algorithm::RS256).is_some(), "no kid, one key: use it");
        assert!(pick(&one, None, Algorithm::ES256).is_none(), "wrong family");
        let two = KeySet { keys: vec![rsa(Some("a")), rsa(Some("b"))], ..KeySet::default() };
        assert!(pick(&two, None, Algorithm::RS256).is_none(), "no kid, two keys: ambiguous");
    }
}
