//! Logout: local, RP-initiated at the provider (OIDC RP-Initiated Logout 1.0) with token revocation
//! (RFC 7009), and back-channel (OIDC Back-Channel Logout 1.0).

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{Auth, ProviderRuntime};
use crate::crypto::{constant_time_eq, random_token};
use crate::http::{AuthResponse, RequestView};
use crate::id_token::{self};
use crate::jwks::Trust;
use crate::session::Session;
use crate::{Error, TokenError, now};

/// A logout at the provider in progress, sealed into a short-lived cookie so the `state` can be
/// checked when the browser comes back.
#[derive(Serialize, Deserialize)]
pub(super) struct PendingLogout {
    /// State.
    pub(super) s: String,
    /// Created, Unix seconds.
    pub(super) t: u64,
}

impl Auth {
    fn logout_cookie(&self) -> String {
        format!("{}logout", self.inner.login_cookie_prefix.trim_end_matches("login."))
    }

    /// `POST {prefix}/logout`: ends the local session (the cookie is cleared, the store forgets it,
    /// and a copy of the cookie is refused from now on). When the provider has an
    /// `end_session_endpoint`, a browser is then sent there with `id_token_hint`,
    /// `post_logout_redirect_uri` and a `state` checked on return; otherwise to `/`. An API client
    /// gets 204, or 200 with `{"redirect": url}` when the provider's logout page should be visited.
    ///
    /// A cross-site request (`Sec-Fetch-Site: cross-site`, or an `Origin` other than the app's)
    /// is refused with 403 and changes nothing, so another site cannot log a user out with an
    /// auto-submitting form. Requests without these headers (non-browser clients) are served.
    pub async fn logout(&self, req: &RequestView<'_>) -> AuthResponse {
        let span = tracing::info_span!("auth.logout", provider = tracing::field::Empty);
        self.local_logout(req).instrument(span).await
    }

    async fn local_logout(&self, req: &RequestView<'_>) -> AuthResponse {
        if let Err(err) = self.same_origin(req) {
            return self.error_response(&err, !req.prefers_json());
        }
        let lookup = self.session(req).await;
        let mut cookies = vec![self.expired_cookie(&self.inner.session_cookie)];
        let mut redirect = None;
        if let Some(session) = &lookup.session {
            tracing::Span::current().record("provider", session.provider.as_str());
            self.end_session(session).await;
            tracing::info!(provider = %session.provider, "logout");
            if let Ok(p) = self.provider(&session.provider) {
                if p.config.revoke_on_logout {
                    self.revoke_tokens(&p, session).await;
                }
                if let Some(url) = self.end_session_url(&p, session, &mut cookies) {
                    redirect = Some(url);
                }
            }
            crate::metrics::logout(&session.provider, if redirect.is_some() { "rp" } else { "local" });
        }
        let res = match (req.prefers_json(), redirect) {
            (true, None) => AuthResponse::new(204).no_store(),
            (true, Some(url)) => AuthResponse::json(200, &serde_json::json!({ "redirect": url })).no_store(),
            (false, url) => AuthResponse::redirect(303, url.unwrap_or_else(|| "/".into())),
        };
        res.with_cookies(cookies)
    }

    fn end_session_url(&self, p: &ProviderRuntime, session: &Session, cookies: &mut Vec<String>) -> Option<String> {
        let endpoint = p.meta.end_session_endpoint.as_ref()?;
        let mut url = url::Url::parse(endpoint).ok()?;
        let pending = PendingLogout { s: random_token(32), t: now() };
        let sealed = self.inner.keys.seal(b"logout", &serde_json::to_vec(&pending).ok()?).ok()?;
        cookies.push(self.cookie(&self.logout_cookie(), &sealed, self.inner.login_ttl, false));
        {
            let mut q = url.query_pairs_mut();
            if let Some(id_token) = &session.tokens.id_token {
                q.append_pair("id_token_hint", id_token.secret());
            }
            q.append_pair("client_id", &p.config.client_id)
                .append_pair("post_logout_redirect_uri", &self.post_logout_redirect_uri())
                .append_pair("state", &pending.s);
        }
        Some(url.to_string())
    }

    /// Refuses a request another site made a browser send (a CSRF defence for state-changing
    /// routes): `Sec-Fetch-Site: cross-site`, or an `Origin` that is not the app's (`null`
    /// included). A request with neither header passes.
    fn same_origin(&self, req: &RequestView<'_>) -> Result<(), Error> {
        if req.sec_fetch_site().is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
            return Err(Error::CrossSiteRequest);
        }
        match req.origin() {
            Some(origin) if !origin.eq_ignore_ascii_case(&self.inner.origin) => Err(Error::CrossSiteRequest),
            _ => Ok(()),
        }
    }

    /// Where the provider sends the browser back after logging out: register it at the provider.
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}{}/logout/callback", self.inner.base_url, self.inner.prefix)
    }

    /// RFC 7009: revokes the refresh and access tokens; failures are logged, never fatal.
    async fn revoke_tokens(&self, p: &ProviderRuntime, session: &Session) {
        let Some(endpoint) = &p.meta.revocation_endpoint else { return };
        let tokens = &session.tokens;
        let pairs =
            [tokens.refresh_token.as_ref().map(|t| (t, "refresh_token")), Some((&tokens.access_token, "access_token"))];
        for (token, hint) in pairs.into_iter().flatten() {
            let form = [("token", token.secret()), ("token_type_hint", hint)];
            match self.post_authenticated(p, endpoint, &form, None, "revocation").await {
                Ok(reply) if (200..300).contains(&reply.status) => {}
                Ok(reply) => tracing::warn!(status = reply.status, "token revocation refused"),
                Err(err) => tracing::warn!(error = %err, "token revocation failed"),
            }
        }
    }

    /// `GET {prefix}/logout/callback?state=…`: the browser is back from the provider's logout.
    pub(super) fn logout_callback(&self, req: &RequestView<'_>) -> Result<AuthResponse, Error> {
        let clear = self.expired_cookie(&self.logout_cookie());
        let state = req.query_param("state").ok_or(Error::InvalidState("the logout callback has no state"))?;
        let pending: PendingLogout = req
            .cookie(&self.logout_cookie())
            .and_then(|sealed| self.inner.keys.open(b"logout", sealed))
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(Error::InvalidState("no logout in progress in this browser"))?;
        if !constant_time_eq(&pending.s, &state) || pending.t.saturating_add(self.inner.login_ttl) < now() {
            return Err(Error::InvalidState("the logout state does not match"));
        }
        Ok(AuthResponse::redirect(303, "/").with_cookies([clear]))
    }

    /// `POST {prefix}/{provider}/backchannel-logout`: the provider says a user's session ended.
    /// 200 and every matching session ends on its next request; 400 for an invalid logout token.
    pub async fn backchannel_logout(&self, provider: &str, body: &[u8]) -> AuthResponse {
        let span = tracing::info_span!("auth.logout", provider = self.provider_label(provider), kind = "backchannel");
        self.backchannel_outcome(provider, body).instrument(span).await
    }

    async fn backchannel_outcome(&self, provider: &str, body: &[u8]) -> AuthResponse {
        let token = url::form_urlencoded::parse(body).find(|(k, _)| k == "logout_token").map(|(_, v)| v.into_owned());
        let outcome = match token {
            None => Err(Error::BadRequest("no logout_token")),
            Some(token) => self.accept_logout_token(provider, &token).await,
        };
        match outcome {
            Ok(()) => AuthResponse::new(200).no_store(),
            Err(err) => {
                tracing::warn!(error = %err, provider, "back-channel logout refused");
                // §2.8: 400 for a bad token. Not ours to judge yet (provider not discovered, store
                // down): a 5xx, so the provider may retry.
                let (status, code) = match &err {
                    Error::UnknownProvider(_) => (404, "invalid_request"),
                    // We could not check the token (the JWKS is down, or an unknown key may not
                    // be fetched yet): the provider should retry, not drop the logout.
                    Error::ProviderUnavailable { .. } | Error::Provider { .. } | Error::Unreachable { .. } => {
                        (503, "temporarily_unavailable")
                    }
                    Error::Store(_) => (503, "temporarily_unavailable"),
                    _ => (400, "invalid_request"),
                };
                AuthResponse::json(status, &serde_json::json!({ "error": code })).no_store()
            }
        }
    }

    async fn accept_logout_token(&self, provider: &str, token: &str) -> Result<(), Error> {
        let p = self.provider(provider)?;
        let fail = |rule: TokenError| Error::token("logout token", rule);
        // §2.6: signed with the algorithm the provider uses for ID tokens (configured, or what its
        // metadata advertises). §2.4 recommends the type `logout+jwt`; the generic `JWT` stays
        // accepted because widely deployed providers sent it until 2024 (Keycloak before 25), and
        // the `events` claim and the nonce ban keep other tokens out. Any other type is refused.
        let header = id_token::header(token, &p.logout_algs).map_err(fail)?;
        if let Some(typ) = &header.typ
            && !["logout+jwt", "application/logout+jwt", "JWT"].iter().any(|t| typ.eq_ignore_ascii_case(t))
        {
            return Err(fail(TokenError::LogoutToken("the token type (typ) is not logout+jwt")));
        }
        // Anyone can post here: an unknown kid refetches the JWKS only as the cooldown allows.
        let claims = self.verify_jws(&p, token, &header, Trust::Anyone).await.map_err(|e| match e {
            // Maybe a key the provider just rotated in: not ours to judge yet, so a 503 (retry).
            Error::Token { source: TokenError::UnknownKeyCoolingDown(_), .. } => {
                Error::Provider { endpoint: "jwks", reason: "an unknown key, within the JWKS cooldown".into() }
            }
            Error::Token { source, .. } => fail(source),
            other => other,
        })?;
        let expected = p.expected(self.inner.leeway);
        let logout = id_token::check_logout_claims(&claims, &expected).map_err(fail)?;
        // §2.6 item 10: refuse replays of a jti.
        let jti_key = format!("jti:{}|{}", logout.iss, logout.jti);
        if !self.inner.store.use_once(&jti_key, logout.exp.saturating_add(self.inner.leeway)).await? {
            return Err(fail(TokenError::LogoutToken("the jti was already used")));
        }
        // §2.7: a sid ends that session; a sub alone ends every session of the user.
        let key = match (&logout.sid, &logout.sub) {
            (Some(sid), _) => format!("sid:{}|{sid}", logout.iss),
            (None, Some(sub)) => format!("sub:{}|{sub}", logout.iss),
            (None, None) => return Err(fail(TokenError::LogoutToken("neither sub nor sid"))),
        };
        // The sessions the provider ended are those that existed when it issued the token: a login
        // made after its `iat` (plus the clock leeway; in another tab, while the token was on its
        // way) survives.
        // The leeway covers a provider whose clock lags ours.
        let now = now();
        let at = logout.iat.saturating_add(self.inner.leeway).min(now);
        self.inner.store.end_sessions(&key, at, now.saturating_add(self.inner.session_ttl)).await?;
        tracing::info!(provider, by_sid = logout.sid.is_some(), "back-channel logout");
        crate::metrics::logout(&p.config.name, "backchannel");
        Ok(())
    }
}
