//! Sessions on every request: reading, starting and ending them, and the answers of the guards.

use std::sync::Arc;

use super::refresh::Refreshed;
use super::{Auth, COOKIE_LIMIT, Policy};
use crate::http::{AuthResponse, Method, RequestView};
use crate::session::Session;
use crate::{Error, now, now_ms};

/// The outcome of reading the session of a request.
#[derive(Debug, Default, Clone)]
pub struct SessionLookup {
    /// The session, when the request carries a valid one.
    pub session: Option<Arc<Session>>,
    /// `Set-Cookie` values to add to the response (for example clearing a stale cookie, or the
    /// session sealed again under the newest key of the ring).
    pub set_cookies: Vec<String>,
    /// The request carries a session cookie, but the session store could not be asked about it
    /// (down, timing out): a route that needs a login answers 503 ([`Auth::no_session`]), a
    /// public one serves the request as anonymous; the cookie is kept.
    pub unavailable: bool,
}

impl Auth {
    /// Stores a new session (new id: no fixation), drops the one the browser had, and returns the
    /// session cookie.
    pub(super) async fn start_session(&self, session: &Session, old_cookie: Option<&str>) -> Result<String, Error> {
        if let Some(old) = old_cookie.and_then(|c| self.inner.keys.open(b"session", c))
            && let Ok(Some(old)) = self.inner.store.load(&old).await
        {
            self.end_session(&old).await;
        }
        let payload = self.inner.store.save(session).await?;
        let sealed = self.inner.keys.seal(b"session", &payload)?;
        let cookie = self.cookie(&self.inner.session_cookie, &sealed, session.expires_at.saturating_sub(now()), false);
        if cookie.len() > COOKIE_LIMIT {
            self.inner.store.delete(session).await?;
            return Err(Error::SessionTooLarge { size: cookie.len(), limit: COOKIE_LIMIT });
        }
        Ok(cookie)
    }

    pub(super) async fn end_session(&self, session: &Session) {
        let key = session.id_key();
        if let Err(err) = self.inner.store.end_sessions(&key, now(), session.expires_at).await {
            tracing::error!(error = %err, "could not record the end of a session");
        }
        self.inner.cache.remove_session(&session.id);
        if let Err(err) = self.inner.store.delete(session).await {
            tracing::error!(error = %err, "could not delete a session from the store");
        }
    }

    /// Reads the request's session: decrypts the cookie, loads it from the store, checks expiry and
    /// logout. A stale or tampered cookie is cleared.
    pub async fn session(&self, req: &RequestView<'_>) -> SessionLookup {
        let Some(value) = req.cookie(&self.inner.session_cookie).filter(|v| !v.is_empty()) else {
            return SessionLookup::default();
        };
        let now_ms = now_ms();
        let now = now_ms / 1000;
        let cookie_only = self.inner.store.is_cookie_only();
        let cached = if cookie_only { self.inner.cache.get(value) } else { None };
        let was_cached = cached.is_some();
        // The store could not be asked: neither a session (it may have ended) nor a cleared
        // cookie (it may be fine): the guards answer 503.
        let unavailable = |err: &Error| {
            tracing::error!(error = %err, source = ?std::error::Error::source(err).map(ToString::to_string), "session store failed");
            SessionLookup { unavailable: true, ..SessionLookup::default() }
        };
        // What the cookie carries, when it was opened (not a cache hit), and whether it was
        // opened with an older key of the ring (then sealed again under the newest).
        let mut opened: Option<(Vec<u8>, bool)> = None;
        let found = match cached {
            Some(hit) => Some(hit),
            None => match self.inner.keys.open_noting_key(b"session", value) {
                None => None,
                Some((payload, old_key)) => match self.inner.store.load_shared(&payload).await {
                    Ok(found) => {
                        opened = Some((payload, old_key));
                        found.map(|s| {
                            let keys: Arc<[String]> = s.revocation_keys().into();
                            (s, keys)
                        })
                    }
                    Err(err) => return unavailable(&err),
                },
            },
        };
        let ended = match &found {
            Some((s, keys)) => match self.inner.store.ended_since(keys, s.created_at).await {
                Ok(ended) => ended,
                // Fail closed: a session that may have been logged out is not trusted.
                Err(err) => return unavailable(&err),
            },
            None => false,
        };
        let ended_lookup = || SessionLookup {
            session: None,
            set_cookies: vec![self.expired_cookie(&self.inner.session_cookie)],
            unavailable: false,
        };
        let Some((s, keys)) = found.filter(|(s, _)| s.expires_at > now && !ended) else {
            return ended_lookup();
        };
        if cookie_only && !was_cached {
            self.inner.cache.insert(value, s.clone(), keys);
        }
        let mut set_cookies: Vec<String> = opened
            .as_ref()
            .filter(|(_, old_key)| *old_key)
            .and_then(|(payload, _)| self.inner.keys.seal(b"session", payload).ok())
            .map(|sealed| self.cookie(&self.inner.session_cookie, &sealed, s.expires_at.saturating_sub(now), false))
            .into_iter()
            .collect();
        // Tokens due for a refresh are refreshed before the request is answered; a fresh
        // session pays one comparison here.
        let session =
            match self.refresh_if_due(&s, opened.as_ref().map(|(payload, _)| payload.as_slice()), now_ms).await {
                None | Some(Refreshed::Failed(_)) => s,
                Some(Refreshed::Fresh { session, cookie }) => {
                    if let Some(cookie) = cookie {
                        // The new cookie supersedes a resealed old one.
                        set_cookies = vec![cookie];
                    }
                    session
                }
                Some(Refreshed::Ended) => return ended_lookup(),
            };
        SessionLookup { session: Some(session), set_cookies, unavailable: false }
    }

    /// The answer to a request that needs a login and has no session: 503 when the session
    /// store could not be asked ([`SessionLookup::unavailable`]), else
    /// [`Auth::unauthenticated`]'s.
    pub fn no_session(&self, req: &RequestView<'_>, unavailable: bool) -> AuthResponse {
        if unavailable {
            let html = req.wants_html() || !req.prefers_json();
            return self.error_response(&Error::StoreUnavailable, html).with_header("retry-after", "5");
        }
        self.unauthenticated(req)
    }

    /// The answer to a request that needs a login and has none: a browser navigation is sent to the
    /// default provider's login with the current path as `next` (302); an API client gets 401 JSON
    /// with `WWW-Authenticate`.
    pub fn unauthenticated(&self, req: &RequestView<'_>) -> AuthResponse {
        let login = self.login_url(&req.path_and_query());
        if req.wants_html() && req.method() == Method::Get {
            return AuthResponse::redirect(302, login);
        }
        let realm = format!("Cookie realm=\"{}\", login=\"{login}\"", self.inner.base_url);
        let mut res =
            AuthResponse::error(&Error::Unauthenticated, req.wants_html()).with_header("www-authenticate", realm);
        if !req.wants_html() {
            res.body =
                serde_json::json!({ "error": "unauthenticated", "message": "You need to log in.", "login_url": login })
                    .to_string();
        }
        res
    }

    /// The 403 answer when a policy refuses a logged-in user.
    pub fn forbidden(&self, req: &RequestView<'_>, reason: &str) -> AuthResponse {
        AuthResponse::error(&Error::Forbidden(reason.to_owned()), req.wants_html())
    }

    /// Applies a [`Policy`] to the request's session: `Ok` with the session, or the response to
    /// send (302/401 without a session, 403 when the policy refuses).
    pub fn authorize<P: Policy>(
        &self,
        session: Option<&Arc<Session>>,
        req: &RequestView<'_>,
    ) -> Result<Arc<Session>, AuthResponse> {
        self.authorize_lookup::<P>(session, false, req)
    }

    /// [`Auth::authorize`] for a lookup that may have found the store unavailable (503 then).
    pub fn authorize_lookup<P: Policy>(
        &self,
        session: Option<&Arc<Session>>,
        unavailable: bool,
        req: &RequestView<'_>,
    ) -> Result<Arc<Session>, AuthResponse> {
        match session {
            None => Err(self.no_session(req, unavailable)),
            Some(s) if P::allows(s) => Ok(s.clone()),
            Some(_) => Err(self.forbidden(req, P::DESCRIPTION)),
        }
    }

    pub(super) fn cookie(&self, name: &str, value: &str, max_age: u64, cross_site: bool) -> String {
        use cookie::{Cookie, SameSite};
        let same_site = if cross_site && self.inner.secure { SameSite::None } else { SameSite::Lax };
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.inner.secure)
            .same_site(same_site)
            .max_age(cookie::time::Duration::seconds(i64::try_from(max_age).unwrap_or(i64::MAX)))
            .build()
            .to_string()
    }

    pub(super) fn expired_cookie(&self, name: &str) -> String {
        use cookie::{Cookie, SameSite};
        Cookie::build((name, ""))
            .path("/")
            .http_only(true)
            .secure(self.inner.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
            .build()
            .to_string()
    }
}
