//! The end of a login: the callback, the code exchange, the ID token and userinfo, the new session.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::client::TokenResponse;
use super::login::PendingLogin;
use super::{Auth, MAX_STATE_LEN, ProviderRuntime};
use crate::crypto::{constant_time_eq, random_token};
use crate::error::sanitize_code;
use crate::http::{AuthResponse, Method, RequestView};
use crate::id_token::{self, Expected};
use crate::jwks::Trust;
use crate::net::Credential;
use crate::provider::{ClaimMapping, Profile};
use crate::session::{Claims, Secret, Session, Tokens};
use crate::{Error, TokenError, now};

/// The result of [`Auth::complete_login`].
#[derive(Debug)]
pub struct LoginCompletion {
    /// The new session and where to send the browser, or why the login failed.
    pub outcome: Result<LoggedIn, Error>,
    /// `Set-Cookie` values to send either way (the spent pending login; the new session).
    pub set_cookies: Vec<String>,
}

/// A finished login.
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session.
    pub session: Session,
    /// The checked `next=` path.
    pub next: String,
}

impl Auth {
    /// `GET|POST {prefix}/{provider}/callback`: finishes the login and answers with a redirect to
    /// `next` (303) or an error page.
    ///
    /// A callback whose login is already finished (the back button after a login) sends a
    /// browser that holds a valid session on to the app instead of an error page.
    pub async fn callback(&self, provider: &str, req: &RequestView<'_>, body: &[u8]) -> AuthResponse {
        let span = tracing::info_span!("auth.callback", provider = self.provider_label(provider));
        async {
            let done = self.complete_login_counted(provider, req, body).await;
            let res = match &done.outcome {
                Ok(logged_in) => AuthResponse::redirect(303, logged_in.next.clone()),
                Err(Error::InvalidState(_)) if !req.prefers_json() && self.session(req).await.session.is_some() => {
                    tracing::info!("callback of a finished login, with a valid session: back to the app");
                    AuthResponse::redirect(303, "/")
                }
                Err(err) => self.error_response(err, !req.prefers_json()),
            };
            res.with_cookies(done.set_cookies)
        }
        .instrument(span)
        .await
    }

    /// Finishes a login from its callback request, like Authlib's `authorize_access_token()`: checks
    /// the pending login, the RFC 9207 `iss`, exchanges the code, validates the ID token and
    /// userinfo, and starts a new session. [`Auth::callback`] turns this into a response; call this
    /// directly to answer differently.
    pub async fn complete_login(&self, provider: &str, req: &RequestView<'_>, body: &[u8]) -> LoginCompletion {
        let span = tracing::info_span!("auth.callback", provider = self.provider_label(provider));
        self.complete_login_counted(provider, req, body).instrument(span).await
    }

    /// [`Auth::complete_login`], counted in the metrics.
    async fn complete_login_counted(&self, provider: &str, req: &RequestView<'_>, body: &[u8]) -> LoginCompletion {
        let done = self.callback_outcome(provider, req, body).await;
        let label = self.provider_label(provider);
        match &done.outcome {
            Ok(_) => crate::metrics::login_completed(label),
            Err(err) => crate::metrics::login_failed(label, err),
        }
        done
    }

    async fn callback_outcome(&self, provider: &str, req: &RequestView<'_>, body: &[u8]) -> LoginCompletion {
        let params: Vec<(String, String)> = if req.method() == Method::Post {
            url::form_urlencoded::parse(body).into_owned().collect()
        } else {
            url::form_urlencoded::parse(req.query().unwrap_or_default().as_bytes()).into_owned().collect()
        };
        let refused = |err| LoginCompletion { outcome: Err(err), set_cookies: Vec::new() };
        let Some(state) = param(&params, "state") else {
            // A provider may answer an `error=` without the state (a cancelled login).
            return refused(match param(&params, "error") {
                Some(code) => Error::Authorization { code: sanitize_code(code) },
                None => Error::InvalidState("the callback has no state"),
            });
        };
        // The state names a cookie: only the characters we generate, before it goes near a header.
        if !(16..=MAX_STATE_LEN).contains(&state.len())
            || !state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return refused(Error::InvalidState("the callback's state is malformed"));
        }
        // Single use: the pending login's cookie goes, whatever happens next.
        let cookie_name = self.login_cookie(state);
        let mut set_cookies = vec![self.expired_cookie(&cookie_name)];
        let old_session = req.cookie(&self.inner.session_cookie);
        let outcome = match self.finish_login(provider, &params, state, req.cookie(&cookie_name)).await {
            Ok((next, session)) => match self.start_session(&session, old_session).await {
                Ok(cookie) => {
                    set_cookies.push(cookie);
                    Ok(LoggedIn { session, next })
                }
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        LoginCompletion { outcome, set_cookies }
    }

    async fn finish_login(
        &self,
        provider: &str,
        params: &[(String, String)],
        state: &str,
        sealed: Option<&str>,
    ) -> Result<(String, Session), Error> {
        let sealed = sealed.ok_or(Error::InvalidState("no pending login in this browser"))?;
        let pending: PendingLogin = self
            .inner
            .keys
            .open(b"login", sealed)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::InvalidState("the pending login cookie is unreadable"))?;
        if !constant_time_eq(&pending.s, state) {
            return Err(Error::InvalidState("state mismatch"));
        }
        let expires = pending.t.saturating_add(self.inner.login_ttl);
        if expires < now() {
            return Err(Error::InvalidState("the login has expired"));
        }
        if pending.p != provider {
            return Err(Error::InvalidState("the login was started with another provider"));
        }
        let p = self.provider(provider)?;
        if !self.inner.store.use_once(&format!("state:{state}"), expires).await? {
            return Err(Error::InvalidState("this login was already finished"));
        }
        // RFC 9207 mix-up defence. A plain OAuth 2.0 provider without metadata has no known issuer
        // to compare with; its per-provider redirect URI and the provider bound to the pending
        // login are the mix-up defence there.
        match param(params, "iss") {
            Some(iss) if !p.meta.issuer.is_empty() && iss != p.meta.issuer => return Err(Error::IssuerMismatch),
            None if p.meta.authorization_response_iss_parameter_supported => return Err(Error::IssuerMismatch),
            _ => {}
        }
        if let Some(code) = param(params, "error") {
            return Err(Error::Authorization { code: sanitize_code(code) });
        }
        let code = param(params, "code").filter(|c| !c.is_empty()).ok_or(Error::MissingCode)?;
        // RFC 9449: the session's own key, made for the code exchange and kept with the tokens.
        let dpop = if p.config.dpop { Some(crate::dpop::DpopKey::generate()?) } else { None };
        let tokens = self
            .token_request(
                &p,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &p.redirect_uri),
                    ("code_verifier", &pending.v),
                ],
                dpop.as_ref(),
            )
            .await?;
        // A provider may answer a proof with a Bearer token (RFC 9449 §5): then the key is not kept.
        let dpop = dpop.filter(|_| tokens.is_dpop());
        let claims = self.identify(&p, &tokens, &pending.n, dpop.as_ref()).await?;
        let now = now();
        let (expires_at, received_ms) = token_times(tokens.expires_in.as_ref());
        let session = Session {
            id: random_token(32),
            provider: p.config.name.clone(),
            claims,
            tokens: Tokens {
                access_token: Secret::new(tokens.access_token),
                refresh_token: tokens.refresh_token.map(Secret::new),
                id_token: tokens.id_token.map(Secret::new),
                expires_at,
                received_ms,
                scope: tokens.scope,
                dpop_key: dpop.as_ref().map(Tokens::keep_dpop_key),
            },
            created_at: now,
            expires_at: now.saturating_add(self.inner.session_ttl),
        };
        tracing::info!(provider = %p.config.name, "login finished");
        Ok((pending.r, session))
    }

    /// Who logged in: the validated ID token's claims completed by userinfo (OIDC), or the mapped
    /// userinfo (OAuth 2.0).
    async fn identify(
        &self,
        p: &ProviderRuntime,
        tokens: &TokenResponse,
        nonce: &str,
        dpop: Option<&crate::dpop::DpopKey>,
    ) -> Result<Claims, Error> {
        let mut claims = match &tokens.id_token {
            Some(id_token) => self.validate_id_token(p, id_token, Some(nonce), Some(&tokens.access_token)).await?,
            None if p.config.is_oidc() => {
                return Err(Error::Provider { endpoint: "token", reason: "no id_token in the token response".into() });
            }
            None => Map::new(),
        };
        strip_protocol_claims(&mut claims);
        self.add_userinfo(p, Credential::new(&tokens.access_token, dpop), &mut claims).await?;
        Claims::from_value(Value::Object(claims))
            .ok_or(Error::Provider { endpoint: "userinfo", reason: "no subject for the user".into() })
    }

    /// Completes `claims` with the provider's userinfo, when it has an endpoint (mapped for the
    /// OAuth 2.0 profiles): the ID token's claims win, and the userinfo `sub` must be the ID
    /// token's (OIDC Core §5.3.2).
    pub(super) async fn add_userinfo(
        &self,
        p: &ProviderRuntime,
        credential: Credential<'_>,
        claims: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        let http = &self.inner.http;
        if let Some(userinfo) = &p.meta.userinfo_endpoint {
            let info = http.get_json(userinfo, Some(credential), &p.config.name, "userinfo").await?;
            let mut info = userinfo_claims(&p.config.profile, &info)?;
            if let (Profile::Github, Some(emails_url)) = (&p.config.profile, &p.config.userinfo_extra) {
                let emails = http.get_json(emails_url, Some(credential), &p.config.name, "userinfo").await?;
                github_email(&mut info, &emails);
            }
            merge_userinfo(claims, info)?;
        }
        Ok(())
    }

    /// Validates an ID token from the token endpoint by every rule of OIDC Core §3.1.3.7; returns
    /// its claims.
    async fn validate_id_token(
        &self,
        p: &ProviderRuntime,
        token: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<Map<String, Value>, Error> {
        let header = id_token::header(token, &p.algs)?;
        let claims = self.verify_jws(p, token, &header, Trust::TokenEndpoint).await?;
        let expected = Expected {
            nonce,
            access_token,
            max_age: p.config.max_age,
            acr_values: &p.config.acr_values,
            ..p.expected(self.inner.leeway)
        };
        id_token::check_claims(&claims, header.alg, &expected)?;
        Ok(claims)
    }

    /// Verifies a JWS from the provider: HS256 with the client secret when allowed, otherwise with
    /// the JWKS key for `kid` (refetched for an unknown `kid` as `trust` allows).
    pub(super) async fn verify_jws(
        &self,
        p: &ProviderRuntime,
        token: &str,
        header: &id_token::Header,
        trust: Trust,
    ) -> Result<Map<String, Value>, Error> {
        let alg = header.alg;
        if alg == Algorithm::HS256 {
            let secret = p.config.client_secret.as_ref().ok_or(TokenError::AlgorithmNotAllowed("HS256".into()))?;
            return Ok(id_token::verify_signature(token, alg, &DecodingKey::from_secret(secret.secret().as_bytes()))?);
        }
        let jwks = p.jwks.as_ref().ok_or(Error::Provider { endpoint: "jwks", reason: "no jwks_uri".into() })?;
        let key = jwks.key_for(&self.inner.http, header.kid.as_deref(), alg, trust).await?;
        Ok(key.verify(token, alg)?)
    }
}

/// A userinfo document's claims, as the provider's profile maps them (OIDC's are taken as they
/// are); an error when a mapped profile finds no user id.
pub(super) fn userinfo_claims(profile: &Profile, info: &Value) -> Result<Map<String, Value>, Error> {
    let no_id = || Error::Provider { endpoint: "userinfo", reason: "no user id".into() };
    Ok(match profile {
        Profile::Oidc => info.as_object().cloned().unwrap_or_default(),
        Profile::Github => {
            ClaimMapping { picture: "/avatar_url".into(), ..ClaimMapping::default() }.apply(info).ok_or_else(no_id)?
        }
        Profile::Facebook => ClaimMapping { picture: "/picture/data/url".into(), ..ClaimMapping::default() }
            .apply(info)
            .ok_or_else(no_id)?,
        Profile::Custom(mapping) => mapping.apply(info).ok_or_else(no_id)?,
    })
}

/// GitHub's e-mail: the profile's is replaced by the primary and verified address of
/// `/user/emails`, or dropped when there is none.
pub(super) fn github_email(info: &mut Map<String, Value>, emails: &Value) {
    info.remove("email");
    if let Some(email) = github_verified_primary_email(emails) {
        info.insert("email".into(), email);
        info.insert("email_verified".into(), Value::Bool(true));
    }
}

/// Adds userinfo's claims to the ID token's (whose own win); OIDC Core §5.3.2: the userinfo
/// `sub` must be the ID token's.
pub(super) fn merge_userinfo(claims: &mut Map<String, Value>, info: Map<String, Value>) -> Result<(), Error> {
    if let Some(sub) = claims.get("sub")
        && info.get("sub") != Some(sub)
    {
        return Err(Error::UserinfoSubjectMismatch);
    }
    for (k, v) in info {
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

/// GitHub's `/user/emails`: the address that is both primary and verified, if any. An unverified
/// address is never reported as the user's e-mail.
fn github_verified_primary_email(emails: &Value) -> Option<Value> {
    emails
        .as_array()?
        .iter()
        .find(|e| {
            e.get("primary").and_then(Value::as_bool) == Some(true)
                && e.get("verified").and_then(Value::as_bool) == Some(true)
        })
        .and_then(|e| e.get("email"))
        .filter(|e| e.is_string())
        .cloned()
}

/// Drops the claims that only prove one token (`nonce`, `at_hash`, `c_hash`): not the user's.
pub(super) fn strip_protocol_claims(claims: &mut Map<String, Value>) {
    for protocol_claim in ["nonce", "at_hash", "c_hash"] {
        claims.remove(protocol_claim);
    }
}

/// When tokens just received expire (Unix seconds, from `expires_in`) and when they were received
/// (Unix milliseconds).
pub(super) fn token_times(expires_in: Option<&Value>) -> (Option<u64>, Option<u64>) {
    let received = crate::now_ms();
    (access_token_expiry(received / 1000, expires_in), Some(received))
}

/// When an access token expires: `now` plus `expires_in` (a number, or a numeric string as some
/// providers send), saturating; `None` when the provider did not say.
pub(super) fn access_token_expiry(now: u64, expires_in: Option<&Value>) -> Option<u64> {
    let seconds = expires_in?.as_u64().or_else(|| expires_in?.as_str()?.trim().parse().ok())?;
    Some(now.saturating_add(seconds))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_expiry_saturates() {
        assert_eq!(access_token_expiry(100, Some(&Value::from(60))), Some(160));
        assert_eq!(access_token_expiry(100, Some(&Value::from("60"))), Some(160));
        assert_eq!(access_token_expiry(100, Some(&Value::from(u64::MAX))), Some(u64::MAX), "no overflow panic");
        assert_eq!(access_token_expiry(100, Some(&Value::from(-5))), None);
        assert_eq!(access_token_expiry(100, None), None);
    }

    #[test]
    fn github_email_must_be_primary_and_verified() {
        let emails = serde_json::json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "main@example.com", "primary": true, "verified": true},
        ]);
        assert_eq!(github_verified_primary_email(&emails), Some(Value::from("main@example.com")));
        let unverified = serde_json::json!([{"email": "main@example.com", "primary": true, "verified": false}]);
        assert_eq!(github_verified_primary_email(&unverified), None);
        assert_eq!(github_verified_primary_email(&serde_json::json!({"message": "Bad credentials"})), None);
    }
}
