//! Tokens that stay fresh (RFC 6749 §6): a request that reads a session whose access token is due
//! refreshes it first, one refresh per session at a time (per process through a single flight,
//! across instances through the store's [lock](crate::SessionStore::lock)), and a refreshed ID
//! token must match the login's (OpenID Connect Core §12.2).
//!
//! Failures: a refused grant (`invalid_grant`) or a mismatching ID token ends the session; a
//! provider that is down (or answers 5xx, or times out) does not: the session serves with its old
//! tokens, and the refresh is tried again after [`RETRY_AFTER`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::callback::{strip_protocol_claims, token_times};
use super::{Auth, COOKIE_LIMIT, ProviderRuntime};
use crate::id_token;
use crate::jwks::Trust;
use crate::session::{Claims, Secret, Session, Tokens};
use crate::{Error, TokenError, now, now_ms};

/// After a refresh failed for a reason that may pass, the next attempt waits this long.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How long a refresh's new tokens answer requests that still carry the tokens they replaced: a
/// browser sends its old cookie until a response with the new one arrives (a request that gave
/// up waiting for a slow refresh has none), and a rotated refresh token must not be spent twice.
const REMEMBERED: Duration = Duration::from_secs(3600);
/// How long an ended session's outcome is remembered (the store records the end anyway).
const ENDED_REMEMBERED: Duration = Duration::from_secs(300);
/// At most this many refreshes are remembered at once (each holds one session); when full, the
/// finished ones make room.
const MAX_FLIGHTS: usize = 4096;
/// How often the flights no request can join any more are dropped (before, only a full map
/// made room, so ended sessions' outcomes stayed until 4,096 had gathered).
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// How long a request waits for a refresh while its access token is still valid…
const WAIT_VALID: Duration = Duration::from_secs(2);
/// …and once it has expired.
const WAIT_EXPIRED: Duration = Duration::from_secs(5);
/// How often an instance that lost the store's lock looks for the winner's tokens.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// The outcome of a refresh, shared by every request that waited for it. (Not `Debug`: it holds
/// tokens and the sealed session cookie.)
#[derive(Clone)]
pub(super) enum Refreshed {
    /// New tokens: the session to serve, and the session cookie to send (cookie store).
    Fresh { session: Arc<Session>, cookie: Option<String> },
    /// The grant is over (`invalid_grant`), or the new ID token does not match the login: the
    /// session has ended.
    Ended,
    /// Not now (the provider down, a 5xx, a timeout, the store unavailable): the session serves
    /// with its old tokens. The reason, for a handler that needs a valid token.
    Failed(Arc<str>),
}

/// A refresh running in a task of its own (a client that goes away does not cancel it, so a
/// refresh token the provider has already rotated is never spent twice), shared by every
/// request that waits for it.
type Outcome = Shared<BoxFuture<'static, (Refreshed, Instant)>>;

struct Flight {
    outcome: Outcome,
    started: Instant,
}

impl Flight {
    fn finished(&self) -> Option<&(Refreshed, Instant)> {
        self.outcome.peek()
    }

    /// Whether a request for the same tokens joins this flight: in progress (and not past every
    /// time limit), failed less than [`RETRY_AFTER`] ago, or done less than [`REMEMBERED`] ago.
    fn is_current(&self, stuck_after: Duration) -> bool {
        match self.finished() {
            None => self.started.elapsed() < stuck_after,
            Some((Refreshed::Failed(_), done)) => done.elapsed() < RETRY_AFTER,
            Some((Refreshed::Ended, done)) => done.elapsed() < ENDED_REMEMBERED,
            Some((Refreshed::Fresh { .. }, done)) => done.elapsed() < REMEMBERED,
        }
    }
}

/// The refreshes in progress and recently done, by session id and access token.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<String, Flight>>,
    /// When the map was last pruned.
    pruned: Mutex<Option<Instant>>,
}

impl Flights {
    /// The outcome a request for `key` waits for: the current flight's, or a new flight's,
    /// started by `start`; `None` when [`MAX_FLIGHTS`] are in progress at once.
    fn join(&self, key: &str, stuck_after: Duration, start: impl FnOnce() -> Outcome) -> Option<Outcome> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = map.get(key).filter(|f| f.is_current(stuck_after)) {
            return Some(flight.outcome.clone());
        }
        let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            map.retain(|_, f| f.is_current(stuck_after));
            *pruned = Some(Instant::now());
        }
        drop(pruned);
        if map.len() >= MAX_FLIGHTS {
            map.retain(|_, f| f.is_current(stuck_after));
        }
        if map.len() >= MAX_FLIGHTS {
            map.retain(|_, f| f.finished().is_none());
        }
        if map.len() >= MAX_FLIGHTS {
            return None;
        }
        let outcome = start();
        map.insert(key.to_owned(), Flight { outcome: outcome.clone(), started: Instant::now() });
        Some(outcome)
    }
}

/// A refresh's outcome, shared, and driven to its end whoever waits for it (or nobody: every
/// request may have given up waiting), so that its flight knows the outcome, and when it came.
fn driven(refresh: impl std::future::Future<Output = Refreshed> + Send + 'static) -> Outcome {
    let outcome: BoxFuture<'static, (Refreshed, Instant)> = Box::pin(async move { (refresh.await, Instant::now()) });
    let outcome = outcome.shared();
    tokio::spawn(outcome.clone());
    outcome
}

/// The flight of a session's current tokens: its id, and a digest of its access token (which
/// every refresh replaces).
fn flight_key(session: &Session) -> String {
    let digest = crate::crypto::sha256(session.tokens.access_token.secret().as_bytes());
    format!("{}:{}", session.id, URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// When the access token expires and how long it lives, in milliseconds (its lifetime unknown
/// for tokens sealed without their time of receipt).
fn expiry_ms(tokens: &Tokens) -> Option<(u64, Option<u64>)> {
    let exp = tokens.expires_at?;
    Some(match tokens.received_ms {
        // `expires_at` is the second of receipt plus `expires_in`: the lifetime, exactly.
        Some(received) => {
            let lifetime = exp.saturating_sub(received / 1000).saturating_mul(1000);
            (received.saturating_add(lifetime), Some(lifetime))
        }
        None => (exp.saturating_mul(1000), None),
    })
}

/// Whether the access token has expired.
fn expired(tokens: &Tokens) -> bool {
    expiry_ms(tokens).is_some_and(|(expiry, _)| now_ms() >= expiry)
}

/// What the provider's answer to a refresh grant means for the session.
fn ends_session(err: &Error) -> bool {
    match err {
        Error::TokenRejected { code } => code == "invalid_grant",
        // The new ID token failed a check (any: its signature unverifiable is no better).
        Error::Token { .. } | Error::UserinfoSubjectMismatch => true,
        _ => false,
    }
}

impl Auth {
    /// Whether the access token expires within the refresh leeway, capped at a quarter of its
    /// lifetime (a 2-second token is due in its last half second, not on every request), at
    /// `now_ms` (milliseconds since the epoch).
    pub(super) fn expiring(&self, tokens: &Tokens, now_ms: u64) -> bool {
        let Some((expiry, lifetime)) = expiry_ms(tokens) else { return false };
        let mut leeway = u64::try_from(self.inner.refresh_leeway.as_millis()).unwrap_or(u64::MAX);
        if let Some(lifetime) = lifetime {
            leeway = leeway.min(lifetime / 4);
        }
        now_ms.saturating_add(leeway) >= expiry
    }

    /// Refreshes the session's tokens when they are due and a refresh token is held; `None`
    /// when they are not due. `payload` is what the request's cookie carried (for a
    /// server-side store, to read the session again while another instance refreshes it). `now_ms`
    /// is the request's clock reading (one per request: it is on every request's path).
    pub(super) async fn refresh_if_due(
        &self,
        session: &Arc<Session>,
        payload: Option<&[u8]>,
        now_ms: u64,
    ) -> Option<Refreshed> {
        if session.tokens.refresh_token.is_none() || !self.expiring(&session.tokens, now_ms) {
            return None;
        }
        Some(self.refresh(session, payload).await)
    }

    /// Refreshes the session's tokens, or joins the refresh of the same tokens in progress (or
    /// just done): the single flight.
    async fn refresh(&self, session: &Arc<Session>, payload: Option<&[u8]>) -> Refreshed {
        let limit = self.inner.refresh_lock_ttl;
        let start = || {
            let (auth, session) = (self.clone(), session.clone());
            let payload = payload.map_or_else(|| session.id.as_bytes().to_vec(), <[u8]>::to_vec);
            let span = tracing::info_span!("auth.refresh", provider = session.provider.as_str());
            let refresh = async move {
                // Within the lock's lifetime, so that no other instance can take it meanwhile.
                let deadline = limit.saturating_sub(Duration::from_secs(1));
                match tokio::time::timeout(deadline, auth.refresh_exclusively(&session, &payload)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::warn!(provider = %session.provider, "refreshing the tokens took too long; retrying later");
                        crate::metrics::refresh(&session.provider, "unavailable");
                        Refreshed::Failed("the refresh took too long".into())
                    }
                }
            };
            let task = tokio::spawn(refresh.instrument(span));
            driven(async move { task.await.unwrap_or_else(|_| Refreshed::Failed("the refresh failed".into())) })
        };
        match self.inner.flights.join(&flight_key(session), limit, start) {
            Some(outcome) => {
                // A slow provider does not hold the request up for long: past the wait, it is
                // served with the tokens it has (the refresh goes on, and its outcome answers
                // the next requests).
                let wait = if expired(&session.tokens) { WAIT_EXPIRED } else { WAIT_VALID };
                match tokio::time::timeout(wait, outcome).await {
                    Ok((outcome, _)) => outcome,
                    Err(_) => {
                        tracing::warn!(provider = %session.provider, ?wait, "the provider is slow to refresh the tokens; serving the session as it is");
                        Refreshed::Failed("the provider is slow to refresh the tokens".into())
                    }
                }
            }
            None => {
                tracing::warn!("too many token refreshes at once; serving the session with its old tokens");
                Refreshed::Failed("too many refreshes at once".into())
            }
        }
    }

    /// Refreshes under the store's lock: an instance that cannot take it waits for the holder's
    /// tokens (at most as long as the lock lives) and uses them.
    async fn refresh_exclusively(&self, session: &Arc<Session>, payload: &[u8]) -> Refreshed {
        let store = &self.inner.store;
        let lock = format!("refresh:{}", session.id);
        let owner = crate::crypto::random_token(16);
        let ttl = self.inner.refresh_lock_ttl;
        let deadline = Instant::now().checked_add(ttl).unwrap_or_else(Instant::now);
        loop {
            match store.lock(&lock, &owner, ttl).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "session store unavailable: the tokens cannot be refreshed now");
                    return Refreshed::Failed("the session store is unavailable".into());
                }
            }
            tokio::time::sleep(LOCK_POLL).await;
            if let Some(done) = self.refreshed_elsewhere(session, payload).await {
                return done;
            }
            if Instant::now() >= deadline {
                return Refreshed::Failed("another instance did not finish refreshing in time".into());
            }
        }
        // Another instance may have finished just before the lock was free.
        let outcome = match self.refreshed_elsewhere(session, payload).await {
            Some(done) => done,
            None => self.refresh_and_store(session).await,
        };
        if let Err(err) = store.unlock(&lock, &owner).await {
            tracing::warn!(error = %err, "could not release a refresh lock; it expires by itself");
        }
        outcome
    }

    /// What another instance made of the session, read again from a server-side store (past any
    /// cache): new tokens, or the session gone. `None` while it holds the old tokens (and always
    /// for a cookie store, which has nothing to read again).
    async fn refreshed_elsewhere(&self, session: &Session, payload: &[u8]) -> Option<Refreshed> {
        if self.inner.store.is_cookie_only() {
            return None;
        }
        match self.inner.store.load_current(payload).await {
            Ok(Some(now)) if now.id == session.id && now.tokens.access_token != session.tokens.access_token => {
                Some(Refreshed::Fresh { session: Arc::new(now), cookie: None })
            }
            Ok(None) => Some(Refreshed::Ended),
            _ => None,
        }
    }

    async fn refresh_and_store(&self, session: &Arc<Session>) -> Refreshed {
        let provider = session.provider.as_str();
        let refreshed = match self.provider(provider) {
            Ok(p) => self.refresh_tokens(&p, session).await,
            Err(err) => Err(err),
        };
        match refreshed {
            Ok(new) => {
                let new = Arc::new(new);
                // The provider has the new tokens now (and may have revoked the old refresh
                // token): they are used even when they cannot be stored.
                let cookie = match self.store_refreshed(&new).await {
                    Ok(cookie) => cookie,
                    Err(err) => {
                        tracing::error!(provider, error = %err, "refreshed tokens could not be stored; this instance serves them from memory");
                        None
                    }
                };
                tracing::info!(provider, "tokens refreshed");
                crate::metrics::refresh(provider, "ok");
                Refreshed::Fresh { session: new, cookie }
            }
            Err(err) if ends_session(&err) => {
                tracing::warn!(provider, error = %err, "the provider refused to refresh the tokens: the session ends");
                crate::metrics::refresh(provider, "refused");
                // A server-side session is one record: it ends everywhere. A cookie is a copy of
                // the session at one point of time: a newer copy may hold newer tokens (a stale
                // cookie spent a rotated refresh token), so only this cookie is cleared.
                if !self.inner.store.is_cookie_only() {
                    self.end_session(session).await;
                }
                Refreshed::Ended
            }
            Err(err) => {
                tracing::warn!(
                    provider,
                    error = %err,
                    retry_in = ?RETRY_AFTER,
                    "could not refresh the tokens; the session serves with its old ones"
                );
                crate::metrics::refresh(provider, "unavailable");
                Refreshed::Failed(err.public_message().into())
            }
        }
    }

    /// Stores the refreshed session; for a cookie store, the new cookie (also cached, so the
    /// browser's next request costs no decryption).
    async fn store_refreshed(&self, session: &Arc<Session>) -> Result<Option<String>, Error> {
        let store = &self.inner.store;
        let payload = store.save(session).await?;
        if !store.is_cookie_only() {
            return Ok(None);
        }
        let sealed = self.inner.keys.seal(b"session", &payload)?;
        let cookie = self.cookie(&self.inner.session_cookie, &sealed, session.expires_at.saturating_sub(now()), false);
        if cookie.len() > COOKIE_LIMIT {
            return Err(Error::SessionTooLarge { size: cookie.len(), limit: COOKIE_LIMIT });
        }
        self.inner.cache.insert(&sealed, session.clone(), session.revocation_keys().into());
        Ok(Some(cookie))
    }

    /// The refresh grant, and the session it makes: new tokens (a rotated refresh token replaces
    /// the old one), claims as at login (the new ID token's, completed by userinfo), the same
    /// id, creation and end.
    async fn refresh_tokens(&self, p: &ProviderRuntime, session: &Session) -> Result<Session, Error> {
        let old = &session.tokens;
        let refresh_token = old.refresh_token.as_ref().ok_or(Error::AccessTokenExpired)?;
        // A DPoP-bound session refreshes with a proof by its key (RFC 9449 §5).
        let dpop = old.dpop_key();
        let reply = self
            .token_request(
                p,
                &[("grant_type", "refresh_token"), ("refresh_token", refresh_token.secret())],
                dpop.as_ref(),
            )
            .await?;
        if dpop.is_some() && !reply.is_dpop() {
            return Err(Error::Provider {
                endpoint: "token",
                reason: "a refresh of a DPoP-bound session gave a Bearer token".into(),
            });
        }
        let (expires_at, received_ms) = token_times(reply.expires_in.as_ref());
        let claims = self.refreshed_claims(p, session, &reply, dpop.as_ref()).await?;
        Ok(Session {
            claims,
            tokens: Tokens {
                access_token: Secret::new(reply.access_token),
                refresh_token: reply.refresh_token.map(Secret::new).or_else(|| old.refresh_token.clone()),
                id_token: reply.id_token.map(Secret::new).or_else(|| old.id_token.clone()),
                expires_at,
                received_ms,
                scope: reply.scope.or_else(|| old.scope.clone()),
                dpop_key: old.dpop_key.clone(),
            },
            ..session.clone()
        })
    }

    /// The claims after a refresh. With a new ID token, made as at login: its claims (checked
    /// against the session's), completed by userinfo; a claim both leave out is gone (a group
    /// the user left), but for `sid` and `iss`, which back-channel logouts find the session by.
    /// Without one, the session's claims with userinfo's answers over them. A userinfo endpoint
    /// that fails leaves the claims as the ID token (or the session) has them: the tokens are new
    /// either way.
    async fn refreshed_claims(
        &self,
        p: &ProviderRuntime,
        session: &Session,
        reply: &super::client::TokenResponse,
        dpop: Option<&crate::dpop::DpopKey>,
    ) -> Result<Claims, Error> {
        let old = session.claims.as_map();
        let mut claims = match &reply.id_token {
            Some(id_token) => self.check_refreshed_id_token(p, session, id_token, &reply.access_token).await?,
            None => Map::from_iter([("sub".to_owned(), Value::from(session.sub()))]),
        };
        if p.meta.userinfo_endpoint.is_some() {
            let before = claims.clone();
            match self.add_userinfo(p, crate::net::Credential::new(&reply.access_token, dpop), &mut claims).await {
                Ok(()) => {}
                Err(Error::UserinfoSubjectMismatch) => return Err(Error::UserinfoSubjectMismatch),
                Err(err) => {
                    tracing::warn!(provider = %p.config.name, error = %err, "userinfo failed after a refresh; the other claims stay as they were");
                    claims = before;
                }
            }
        }
        if reply.id_token.is_none() {
            let mut merged = old.clone();
            merged.extend(claims);
            claims = merged;
        }
        for kept in ["sid", "iss"] {
            if let Some(value) = old.get(kept) {
                claims.entry(kept).or_insert_with(|| value.clone());
            }
        }
        let claims = Claims::from_value(Value::Object(claims)).ok_or(Error::Internal("refreshed claims"))?;
        if claims.sub() != session.sub() {
            return Err(Error::token("refreshed ID token", TokenError::RefreshMismatch));
        }
        Ok(claims)
    }

    /// A refreshed ID token: checked like a new one (signature, `iss`, `aud`, `exp`, `at_hash`;
    /// no nonce is expected), and against the session's last one (§12.2). Its claims, protocol
    /// claims dropped.
    async fn check_refreshed_id_token(
        &self,
        p: &ProviderRuntime,
        session: &Session,
        token: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, Error> {
        let refused = |source| Error::token("refreshed ID token", source);
        let header = id_token::header(token, &p.algs).map_err(refused)?;
        let mut claims = self.verify_jws(p, token, &header, Trust::TokenEndpoint).await?;
        let expected = id_token::Expected { access_token: Some(access_token), ..p.expected(self.inner.leeway) };
        id_token::check_claims(&claims, header.alg, &expected).map_err(refused)?;
        // The session's ID token was checked when it arrived and sealed since. A session that
        // had none (a plain OAuth 2.0 login) is held to its subject.
        match session.tokens.id_token.as_ref().and_then(|t| id_token::unverified_claims(t.secret())) {
            Some(original) => id_token::check_refreshed(&claims, &original, &expected).map_err(refused)?,
            None if claims.get("sub").and_then(Value::as_str) != Some(session.sub()) => {
                return Err(refused(TokenError::RefreshMismatch));
            }
            None => {}
        }
        strip_protocol_claims(&mut claims);
        Ok(claims)
    }

    /// A valid access token for the session's provider: the session's own, or a refreshed one
    /// when it is due (sharing a refresh in progress). A refresh made here reaches the browser's
    /// cookie on its next request.
    ///
    /// # Errors
    /// [`Error::AccessTokenExpired`] (401) when the token has expired and cannot be refreshed
    /// (no refresh token; the grant refused, which also ends the session);
    /// [`Error::RefreshUnavailable`] (502) when it has expired and the provider cannot refresh it
    /// now. A token that is due but
    /// not yet expired is returned when the refresh fails for now.
    pub async fn access_token(&self, session: &Arc<Session>) -> Result<Secret, Error> {
        let tokens = &session.tokens;
        if !self.expiring(tokens, now_ms()) {
            return Ok(tokens.access_token.clone());
        }
        if tokens.refresh_token.is_none() {
            return if expired(tokens) { Err(Error::AccessTokenExpired) } else { Ok(tokens.access_token.clone()) };
        }
        match self.refresh(session, None).await {
            Refreshed::Fresh { session, .. } => Ok(session.tokens.access_token.clone()),
            Refreshed::Ended => Err(Error::AccessTokenExpired),
            Refreshed::Failed(_) if !expired(tokens) => Ok(tokens.access_token.clone()),
            Refreshed::Failed(why) => Err(Error::RefreshUnavailable(why.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flight_nobody_waits_for_still_records_its_outcome() {
        let flights = Flights::default();
        let start = || {
            driven(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Refreshed::Ended
            })
        };
        let waiter = flights.join("s:t", Duration::from_secs(35), start).unwrap();
        drop(waiter); // the request gave up
        tokio::time::sleep(Duration::from_millis(150)).await;
        let map = flights.map.lock().unwrap();
        let (outcome, _) = map["s:t"].finished().expect("finished, though nobody polled it");
        assert!(matches!(outcome, Refreshed::Ended));
        assert!(map["s:t"].is_current(Duration::ZERO), "remembered by its end time, not by a time limit");
    }

    #[tokio::test]
    async fn flights_no_request_can_join_are_dropped_before_the_map_is_full() {
        let flights = Flights::default();
        let failed = || driven(async { Refreshed::Failed("down".into()) });
        let _driven = flights.join("a:1", Duration::from_secs(35), failed).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(flights.map.lock().unwrap().len(), 1);
        // Past the retry delay and the prune interval: the next join drops it.
        *flights.pruned.lock().unwrap() = Instant::now().checked_sub(PRUNE_EVERY);
        tokio::time::sleep(RETRY_AFTER + Duration::from_millis(50)).await;
        let _driven = flights.join("b:2", Duration::from_secs(35), failed).unwrap();
        let map = flights.map.lock().unwrap();
        assert!(!map.contains_key("a:1"), "a failed flight past its retry delay is gone");
        assert!(map.contains_key("b:2"));
    }
}
