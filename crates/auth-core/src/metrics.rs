//! Metrics for dashboards, through the [`metrics`](https://docs.rs/metrics) crate's facade: install
//! any recorder (`metrics-exporter-prometheus`, StatsD, OpenTelemetry) and these appear; without
//! one they cost next to nothing.
//!
//! | metric | type | labels | counts |
//! |--------|------|--------|--------|
//! | [`LOGINS_STARTED`] `auth_logins_started_total` | counter | `provider` | browsers sent to the provider's login |
//! | [`LOGINS_COMPLETED`] `auth_logins_completed_total` | counter | `provider` | callbacks that started a session |
//! | [`LOGINS_FAILED`] `auth_logins_failed_total` | counter | `provider`, `reason` | logins that could not start (provider not discovered) or whose callback was refused |
//! | [`REFRESHES`] `auth_refreshes_total` | counter | `provider`, `outcome` | token refreshes: `ok`, `refused` (the session ends), `unavailable` (retried later) |
//! | [`JWKS_FETCHES`] `auth_jwks_fetches_total` | counter | `provider`, `outcome` | fetches of the provider's signing keys: `ok`, `error` |
//! | [`BEARER_TOKENS`] `auth_bearer_tokens_total` | counter | `provider`, `outcome`, `reason` | bearer tokens checked: `accepted` (reason `ok`) or `refused` |
//! | [`LOGOUTS`] `auth_logouts_total` | counter | `provider`, `kind` | sessions ended: `local`, `rp` (sent on to the provider's logout page), `backchannel` |
//! | [`STORE_ERRORS`] `auth_store_errors_total` | counter | `op` | failed calls to a server-side [`SessionStore`] |
//! | [`STORE_SECONDS`] `auth_store_seconds` | histogram | `op` | the latency of calls to a server-side store, in seconds |
//! | [`PROVIDER_REQUEST_SECONDS`] `auth_provider_request_seconds` | histogram | `provider`, `endpoint` | the latency of calls to the provider, in seconds |
//!
//! Every label has a bounded set of values, so no request can make a recorder grow:
//! - `provider`: a configured provider's name (a login or callback for an unknown name counts as
//!   `unknown`);
//! - `reason` of a failed login or refused bearer token: a fixed string of this crate, never text
//!   from the request or the network: the rule a refused token broke (`bad_signature`, `expired`,
//!   `wrong_audience`, `wrong_nonce`, `unknown_key`, …), else [`Error::code`](crate::Error::code)
//!   (`invalid_state`, `access_denied`, `provider_unreachable`, …); for bearer tokens also
//!   `missing`, `malformed`, `inactive`, `sender_constrained`, `invalid`, `unavailable`;
//! - `endpoint`: `discovery`, `jwks`, `token`, `userinfo`, `revocation`, `introspection`, `api`;
//! - `op`: the [`SessionStore`] method (`load`, `save`, `ended_since`, …).
//!
//! A token-refresh that many requests wait for counts once; a valid bearer token served from the
//! cache counts as accepted each time. The cookie store's calls never leave the process and are
//! not timed.
//!
//! ```
//! // With a recorder installed, give the metrics their help texts and units:
//! auth_core::metrics::describe();
//! assert_eq!(auth_core::metrics::LOGINS_STARTED, "auth_logins_started_total");
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

use crate::session::{Session, SessionStore};
use crate::{Error, TokenError};

/// Counter `{provider}`: browsers sent to the provider's login.
pub const LOGINS_STARTED: &str = "auth_logins_started_total";
/// Counter `{provider}`: callbacks that ended in a new session.
pub const LOGINS_COMPLETED: &str = "auth_logins_completed_total";
/// Counter `{provider, reason}`: logins that could not start or whose callback was refused.
pub const LOGINS_FAILED: &str = "auth_logins_failed_total";
/// Counter `{provider, outcome}`: token refreshes, `ok`, `refused` or `unavailable`.
pub const REFRESHES: &str = "auth_refreshes_total";
/// Counter `{provider, outcome}`: JWKS fetches, `ok` or `error`.
pub const JWKS_FETCHES: &str = "auth_jwks_fetches_total";
/// Counter `{provider, outcome, reason}`: bearer tokens `accepted` or `refused`.
pub const BEARER_TOKENS: &str = "auth_bearer_tokens_total";
/// Counter `{provider, kind}`: logouts, `local`, `rp` or `backchannel`.
pub const LOGOUTS: &str = "auth_logouts_total";
/// Counter `{op}`: failed calls to a server-side session store.
pub const STORE_ERRORS: &str = "auth_store_errors_total";
/// Histogram `{op}`: seconds per call to a server-side session store.
pub const STORE_SECONDS: &str = "auth_store_seconds";
/// Histogram `{provider, endpoint}`: seconds per call to the provider.
pub const PROVIDER_REQUEST_SECONDS: &str = "auth_provider_request_seconds";

/// Bucket bounds (seconds) for the two histograms, from a fast Redis call to a provider's 10 s
/// timeout. With an exporter's fixed buckets the histograms cost a few counters each, where
/// its default summaries keep a sketch per label set that grows and is replaced every few
/// seconds (the soak saw 5 MiB of them).
///
/// ```
/// let buckets = auth_core::metrics::LATENCY_BUCKETS;
/// assert!(buckets.windows(2).all(|w| w[0] < w[1]));
/// assert_eq!(buckets.last(), Some(&10.0), "the outbound timeout");
/// ```
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Describes every metric (help text, unit) to the installed recorder: call it once after
/// installing one. Optional: the metrics are recorded either way.
pub fn describe() {
    describe_counter!(LOGINS_STARTED, Unit::Count, "Logins started: browsers sent to the provider.");
    describe_counter!(LOGINS_COMPLETED, Unit::Count, "Logins completed: callbacks that started a session.");
    describe_counter!(LOGINS_FAILED, Unit::Count, "Logins that could not start or whose callback was refused.");
    describe_counter!(REFRESHES, Unit::Count, "Token refreshes, by outcome.");
    describe_counter!(JWKS_FETCHES, Unit::Count, "Fetches of the provider's signing keys, by outcome.");
    describe_counter!(BEARER_TOKENS, Unit::Count, "Bearer access tokens checked, by outcome and reason.");
    describe_counter!(LOGOUTS, Unit::Count, "Sessions ended, by kind of logout.");
    describe_counter!(STORE_ERRORS, Unit::Count, "Failed calls to the session store.");
    describe_histogram!(STORE_SECONDS, Unit::Seconds, "Latency of calls to the session store.");
    describe_histogram!(PROVIDER_REQUEST_SECONDS, Unit::Seconds, "Latency of calls to the provider.");
}

pub(crate) fn login_started(provider: &str) {
    counter!(LOGINS_STARTED, "provider" => provider.to_owned()).increment(1);
}

pub(crate) fn login_completed(provider: &str) {
    counter!(LOGINS_COMPLETED, "provider" => provider.to_owned()).increment(1);
}

pub(crate) fn login_failed(provider: &str, err: &Error) {
    counter!(LOGINS_FAILED, "provider" => provider.to_owned(), "reason" => reason(err)).increment(1);
}

/// `outcome`: `ok`, `refused` or `unavailable`.
pub(crate) fn refresh(provider: &str, outcome: &'static str) {
    counter!(REFRESHES, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

pub(crate) fn jwks_fetch(provider: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(JWKS_FETCHES, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

/// `reason`: `ok` for an accepted token, else one of a fixed set.
pub(crate) fn bearer(provider: &str, accepted: bool, reason: &'static str) {
    let outcome = if accepted { "accepted" } else { "refused" };
    counter!(BEARER_TOKENS, "provider" => provider.to_owned(), "outcome" => outcome, "reason" => reason).increment(1);
}

/// `kind`: `local`, `rp` or `backchannel`.
pub(crate) fn logout(provider: &str, kind: &'static str) {
    counter!(LOGOUTS, "provider" => provider.to_owned(), "kind" => kind).increment(1);
}

pub(crate) fn provider_request(provider: &str, endpoint: &'static str, took: Duration) {
    histogram!(PROVIDER_REQUEST_SECONDS, "provider" => provider.to_owned(), "endpoint" => endpoint)
        .record(took.as_secs_f64());
}

/// A failure's `reason` label: the rule a refused token broke, else the error's code. Always one
/// of a fixed set of this crate's strings.
pub(crate) fn reason(err: &Error) -> &'static str {
    match err {
        Error::Token { source, .. } => token_reason(source),
        other => other.code(),
    }
}

/// The rule a token broke, as a label value.
pub(crate) fn token_reason(err: &TokenError) -> &'static str {
    match err {
        TokenError::Malformed => "malformed",
        TokenError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
        TokenError::UnknownKey(_) | TokenError::UnknownKeyCoolingDown(_) => "unknown_key",
        TokenError::BadSignature => "bad_signature",
        TokenError::MissingClaim(_) => "missing_claim",
        TokenError::WrongIssuer => "wrong_issuer",
        TokenError::WrongAudience => "wrong_audience",
        TokenError::UntrustedAudience => "untrusted_audience",
        TokenError::WrongAuthorizedParty => "wrong_authorized_party",
        TokenError::Expired => "expired",
        TokenError::IssuedInFuture => "issued_in_future",
        TokenError::NotYetValid => "not_yet_valid",
        TokenError::WrongNonce => "wrong_nonce",
        TokenError::AccessTokenHashMismatch => "at_hash_mismatch",
        TokenError::AuthTooOld => "auth_too_old",
        TokenError::WrongAcr => "wrong_acr",
        TokenError::RefreshMismatch => "refresh_mismatch",
        TokenError::LogoutToken(_) => "logout_token",
    }
}

/// A server-side [`SessionStore`] with every call timed and its failures counted.
#[derive(Debug)]
pub(crate) struct MeteredStore(pub(crate) Arc<dyn SessionStore>);

impl MeteredStore {
    /// `store`, timed, unless it is the cookie store (whose calls never leave the process).
    pub(crate) fn wrap(store: Arc<dyn SessionStore>) -> Arc<dyn SessionStore> {
        if store.is_cookie_only() { store } else { Arc::new(MeteredStore(store)) }
    }
}

impl MeteredStore {
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let start = Instant::now();
        let outcome = call.await;
        histogram!(STORE_SECONDS, "op" => op).record(start.elapsed().as_secs_f64());
        if outcome.is_err() {
            counter!(STORE_ERRORS, "op" => op).increment(1);
        }
        outcome
    }
}

#[async_trait::async_trait]
impl SessionStore for MeteredStore {
    async fn save(&self, session: &Session) -> Result<Vec<u8>, Error> {
        self.timed("save", self.0.save(session)).await
    }

    async fn load(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        self.timed("load", self.0.load(payload)).await
    }

    async fn load_shared(&self, payload: &[u8]) -> Result<Option<Arc<Session>>, Error> {
        self.timed("load", self.0.load_shared(payload)).await
    }

    async fn delete(&self, session: &Session) -> Result<(), Error> {
        self.timed("delete", self.0.delete(session)).await
    }

    fn is_cookie_only(&self) -> bool {
        self.0.is_cookie_only()
    }

    async fn use_once(&self, key: &str, until: u64) -> Result<bool, Error> {
        self.timed("use_once", self.0.use_once(key, until)).await
    }

    async fn end_sessions(&self, key: &str, at: u64, until: u64) -> Result<(), Error> {
        self.timed("end_sessions", self.0.end_sessions(key, at, until)).await
    }

    async fn ended_since(&self, keys: &[String], created_at: u64) -> Result<bool, Error> {
        self.timed("ended_since", self.0.ended_since(keys, created_at)).await
    }

    async fn lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, Error> {
        self.timed("lock", self.0.lock(key, owner, ttl)).await
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<(), Error> {
        self.timed("unlock", self.0.unlock(key, owner)).await
    }

    async fn load_current(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        self.timed("load_current", self.0.load_current(payload)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_fixed_strings() {
        assert_eq!(reason(&Error::token("ID token", TokenError::BadSignature)), "bad_signature");
        assert_eq!(reason(&Error::Authorization { code: "made_up_by_the_network".into() }), "authorization_error");
        assert_eq!(reason(&Error::InvalidState("expired")), "invalid_state");
    }
}
