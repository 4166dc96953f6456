//! The start of a login: the authorization request, and the pending login in its own cookie.

use serde::{Deserialize, Serialize};

use tracing::Instrument;

use super::{Auth, MAX_PENDING_LOGINS, PENDING_LOGINS_CLEARED, PENDING_LOGINS_EXAMINED, RESERVED_PARAMS};
use crate::crypto::{pkce_challenge, random_token};
use crate::http::{AuthResponse, RequestView};
use crate::{Error, now, safe_next};

/// A pending login, sealed into its own short-lived cookie.
#[derive(Serialize, Deserialize)]
pub(super) struct PendingLogin {
    /// Provider the login went to (mix-up defence).
    pub(super) p: String,
    /// State.
    pub(super) s: String,
    /// Nonce.
    pub(super) n: String,
    /// PKCE verifier.
    pub(super) v: String,
    /// Where to go afterwards.
    pub(super) r: String,
    /// Created, Unix seconds.
    pub(super) t: u64,
    /// Creation order (Unix milliseconds, strictly increasing in this process), so the oldest of
    /// several logins started within one second is the one dropped.
    #[serde(default)]
    pub(super) o: u64,
}

impl Auth {
    /// `GET {prefix}/{provider}/login?next=/path`: redirects the browser to the provider, after
    /// pushing the request to its PAR endpoint (RFC 9126) when the provider requires it or the
    /// configuration asks for it.
    pub async fn login(&self, provider: &str, req: &RequestView<'_>) -> Result<AuthResponse, Error> {
        let label = self.provider_label(provider);
        let span = tracing::info_span!("auth.login", provider = label);
        let outcome = self.authorization_redirect(provider, req).instrument(span).await;
        match &outcome {
            Ok(_) => crate::metrics::login_started(label),
            Err(err) => crate::metrics::login_failed(label, err),
        }
        outcome
    }

    /// A provider's name as a metric label or span field: a configured provider's name, or
    /// `unknown` (a name from a request path is never recorded as such).
    pub(super) fn provider_label(&self, name: &str) -> &str {
        self.slot(name).map_or("unknown", |slot| slot.name.as_str())
    }

    async fn authorization_redirect(&self, provider: &str, req: &RequestView<'_>) -> Result<AuthResponse, Error> {
        let p = self.provider(provider)?;
        let next = req.query_param("next");
        let next = next.as_deref().and_then(safe_next).unwrap_or("/").to_owned();
        let pending = PendingLogin {
            p: p.config.name.clone(),
            s: random_token(32),
            n: random_token(32),
            v: random_token(48),
            r: next,
            t: now(),
            o: self.login_order(),
        };
        let mut url = url::Url::parse(&p.meta.authorization_endpoint)
            .map_err(|_| Error::config("authorization endpoint is not a URL"))?;
        let params = {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("response_type", "code")
                .append_pair("client_id", &p.config.client_id)
                .append_pair("redirect_uri", &p.redirect_uri);
            if !p.config.scopes.is_empty() {
                q.append_pair("scope", &p.config.scopes.join(" "));
            }
            q.append_pair("state", &pending.s);
            if p.config.is_oidc() {
                q.append_pair("nonce", &pending.n);
            }
            q.append_pair("code_challenge", &pkce_challenge(&pending.v)).append_pair("code_challenge_method", "S256");
            if p.config.response_mode_form_post {
                q.append_pair("response_mode", "form_post");
            }
            if let Some(max_age) = p.config.max_age {
                q.append_pair("max_age", &max_age.to_string());
            }
            if !p.config.acr_values.is_empty() {
                q.append_pair("acr_values", &p.config.acr_values.join(" "));
            }
            for (k, v) in &p.config.auth_params {
                if !RESERVED_PARAMS.contains(&k.as_str()) {
                    q.append_pair(k, v);
                }
            }
            q.finish()
        };
        match p.meta.pushed_authorization_request_endpoint.as_deref() {
            Some(endpoint) if p.config.par || p.meta.require_pushed_authorization_requests => {
                let request_uri = self.push_authorization_request(&p, endpoint, &params).await?;
                url.query_pairs_mut()
                    .append_pair("client_id", &p.config.client_id)
                    .append_pair("request_uri", &request_uri);
            }
            _ => url.set_query(Some(&params)),
        }
        let sealed =
            self.inner.keys.seal(b"login", &serde_json::to_vec(&pending).map_err(|_| Error::Internal("encode"))?)?;
        let mut cookies = self.prune_pending_logins(req);
        cookies.push(self.cookie(
            &self.login_cookie(&pending.s),
            &sealed,
            self.inner.login_ttl,
            p.config.response_mode_form_post,
        ));
        Ok(AuthResponse::redirect(302, url.to_string()).with_cookies(cookies))
    }

    /// Pushes the authorization request's parameters (RFC 9126 §2.1) with the client's
    /// authentication; the `request_uri` the browser then carries.
    async fn push_authorization_request(
        &self,
        p: &super::ProviderRuntime,
        endpoint: &str,
        params: &str,
    ) -> Result<String, Error> {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(params.as_bytes()).into_owned().collect();
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = self.post_authenticated(p, endpoint, &form, None, "par").await?;
        read_par_response(&p.config, reply.status, &reply.body)
    }

    pub(super) fn login_cookie(&self, state: &str) -> String {
        // The name carries a prefix of the state, so each tab's login has its own cookie and two
        // logins started at once cannot overwrite each other.
        let suffix: String = state.chars().take(16).collect();
        format!("{}{suffix}", self.inner.login_cookie_prefix)
    }

    /// A strictly increasing creation order for pending logins: Unix milliseconds, bumped past the
    /// last value handed out.
    fn login_order(&self) -> u64 {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = &self.inner.login_order;
        let mut current = last.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let next = now_ms.max(current.saturating_add(1));
            match last.compare_exchange_weak(
                current,
                next,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }

    /// Expires the oldest pending-login cookies beyond the limit, and unreadable ones.
    ///
    /// Bounded whatever the request carries: at most [`PENDING_LOGINS_EXAMINED`] cookies are
    /// decrypted and at most [`PENDING_LOGINS_CLEARED`] are expired per response (junk beyond that
    /// goes on later requests), so a thousand junk cookies cost a short answer.
    fn prune_pending_logins(&self, req: &RequestView<'_>) -> Vec<String> {
        let mut pending: Vec<((u64, u64), &str)> = req
            .cookies_iter()
            .filter(|(name, _)| name.starts_with(self.inner.login_cookie_prefix.as_str()))
            .take(PENDING_LOGINS_EXAMINED)
            .map(|(name, value)| {
                let created = self
                    .inner
                    .keys
                    .open(b"login", value)
                    .and_then(|b| serde_json::from_slice::<PendingLogin>(&b).ok())
                    .map_or((0, 0), |p| (p.t, p.o));
                (created, name)
            })
            .collect();
        if pending.len() < MAX_PENDING_LOGINS && pending.iter().all(|(t, _)| t.0 > 0) {
            return Vec::new();
        }
        // One entry per name (a browser may send a name twice), then oldest first: unreadable ones
        // (0), then by creation second and order.
        let mut names = std::collections::HashSet::new();
        pending.retain(|(_, name)| names.insert(*name));
        pending.sort_unstable();
        let readable = pending.iter().filter(|(t, _)| t.0 > 0).count();
        let excess = (readable + 1).saturating_sub(MAX_PENDING_LOGINS);
        let unreadable = pending.len() - readable;
        pending
            .iter()
            .take(unreadable + excess)
            .take(PENDING_LOGINS_CLEARED)
            .map(|(_, name)| self.expired_cookie(name))
            .collect()
    }
}

/// The PAR endpoint's answer (RFC 9126 §2.2, §2.3): the `request_uri`, or an error page (never a
/// redirect to the provider with a request it refused).
pub(super) fn read_par_response(cfg: &crate::Provider, status: u16, body: &serde_json::Value) -> Result<String, Error> {
    if !(200..300).contains(&status) {
        let code = body.get("error").and_then(serde_json::Value::as_str).map(crate::error::sanitize_code);
        return Err(match code.as_deref() {
            Some(code @ ("invalid_client" | "unauthorized_client")) => super::client::client_rejected(cfg, code),
            None if status == 401 => super::client::client_rejected(cfg, "HTTP 401"),
            Some(code) => Error::Provider { endpoint: "par", reason: format!("OAuth error {code}") },
            None => Error::Provider { endpoint: "par", reason: format!("HTTP status {status}") },
        });
    }
    // §2.2: an absolute URI, short-lived; a bound on its length keeps the redirect sane.
    match body.get("request_uri").and_then(serde_json::Value::as_str) {
        Some(uri) if !uri.is_empty() && uri.len() <= 2048 && !uri.chars().any(char::is_control) => Ok(uri.to_owned()),
        _ => Err(Error::Provider { endpoint: "par", reason: "the PAR response has no valid request_uri".into() }),
    }
}
