//! Calls to the provider's token endpoint (and its siblings) with the client's authentication.

use serde::Deserialize;
use serde_json::Value;

use super::{Auth, ProviderRuntime};
use crate::Error;
use crate::client_key::{ASSERTION_TYPE, AssertionSigner, client_assertion};
use crate::error::sanitize_code;
use crate::provider::{AssertionAudience, ClientAuth, Provider};

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    #[serde(default)]
    pub(super) token_type: Option<String>,
    #[serde(default)]
    pub(super) expires_in: Option<Value>,
    #[serde(default)]
    pub(super) refresh_token: Option<String>,
    #[serde(default)]
    pub(super) id_token: Option<String>,
    #[serde(default)]
    pub(super) scope: Option<String>,
}

impl TokenResponse {
    /// Whether the access token is bound to the DPoP key of the request (RFC 9449 §5).
    pub(super) fn is_dpop(&self) -> bool {
        self.token_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("dpop"))
    }
}

impl Auth {
    /// POSTs a form to a provider endpoint with the provider's client authentication, and a
    /// DPoP proof by `dpop` if given.
    pub(super) async fn post_authenticated(
        &self,
        p: &ProviderRuntime,
        url: &str,
        form: &[(&str, &str)],
        dpop: Option<&crate::dpop::DpopKey>,
        endpoint: &'static str,
    ) -> Result<crate::net::FormReply, Error> {
        use std::borrow::Cow;
        let cfg = &p.config;
        let secret = cfg.client_secret.as_ref().map(|s| s.secret());
        let basic = match (cfg.client_auth, secret) {
            (ClientAuth::SecretBasic, Some(secret)) => Some((cfg.client_id.as_str(), secret)),
            _ => None,
        };
        let signer = match (cfg.client_auth, &cfg.client_key, secret) {
            (ClientAuth::PrivateKeyJwt, Some(key), _) => Some(AssertionSigner::Key(key)),
            (ClientAuth::SecretJwt, _, Some(secret)) => Some(AssertionSigner::Secret(secret)),
            (ClientAuth::PrivateKeyJwt | ClientAuth::SecretJwt, _, _) => {
                return Err(Error::config(format!(
                    "provider `{}` uses {} but has no {}",
                    cfg.name,
                    cfg.client_auth.as_str(),
                    if cfg.client_auth == ClientAuth::PrivateKeyJwt { "client key" } else { "client secret" }
                )));
            }
            _ => None,
        };
        // RFC 7523 §3: the token endpoint's URL, or (drafts, FAPI 2.0) the issuer.
        let audience = match cfg.assertion_audience {
            // A multi-tenant metadata's issuer is a template, not an audience.
            AssertionAudience::Issuer if !p.meta.issuer.is_empty() && !cfg.multi_tenant_issuer => &p.meta.issuer,
            _ => &p.meta.token_endpoint,
        };
        // A pushed authorization request carries `client_id` already; no parameter twice
        // (RFC 6749 §3.1).
        let has_client_id = form.iter().any(|(k, _)| *k == "client_id");
        // Made again for a retry with a DPoP nonce: an assertion is used once.
        let fields = || -> Result<Vec<(&str, Cow<'_, str>)>, Error> {
            let mut fields: Vec<(&str, Cow<'_, str>)> = form.iter().map(|(k, v)| (*k, Cow::Borrowed(*v))).collect();
            if basic.is_none() && !has_client_id {
                fields.push(("client_id", Cow::Borrowed(cfg.client_id.as_str())));
            }
            if let (ClientAuth::SecretPost, Some(secret)) = (cfg.client_auth, secret) {
                fields.push(("client_secret", Cow::Borrowed(secret)));
            }
            if let Some(signer) = &signer {
                fields.push(("client_assertion_type", Cow::Borrowed(ASSERTION_TYPE)));
                fields.push(("client_assertion", Cow::Owned(client_assertion(signer, &cfg.client_id, audience)?)));
            }
            Ok(fields)
        };
        self.inner.http.post_form(url, fields, basic, dpop, &cfg.name, endpoint).await
    }

    /// Calls the token endpoint with the provider's client authentication.
    /// With `dpop`, each request carries a proof by that key (RFC 9449 §5).
    pub(super) async fn token_request(
        &self,
        p: &ProviderRuntime,
        form: &[(&str, &str)],
        dpop: Option<&crate::dpop::DpopKey>,
    ) -> Result<TokenResponse, Error> {
        let reply = self.post_authenticated(p, &p.meta.token_endpoint, form, dpop, "token").await?;
        let tokens = read_token_response(&p.config, reply.status, reply.body)?;
        if tokens.is_dpop() && dpop.is_none() {
            return Err(Error::Provider { endpoint: "token", reason: "a DPoP token, but no proof was sent".into() });
        }
        Ok(tokens)
    }
}

/// The token endpoint's answer (RFC 6749 §5): the tokens, or the error it says.
pub(super) fn read_token_response(cfg: &Provider, status: u16, body: Value) -> Result<TokenResponse, Error> {
    // GitHub answers its errors with 200 and an `error` member instead of RFC 6749 §5.2's 400.
    let error_in_success = (200..300).contains(&status)
        && body.get("access_token").is_none()
        && body.get("error").is_some_and(Value::is_string);
    if !(200..300).contains(&status) || error_in_success {
        let code = body.get("error").and_then(Value::as_str).map(sanitize_code);
        return Err(match code {
            // GitHub's `bad_verification_code`: a code that is wrong, used or expired.
            Some(code) if code == "invalid_grant" || code == "invalid_request" || code == "bad_verification_code" => {
                Error::TokenRejected { code }
            }
            // The provider refused our own credentials: the app's configuration, not the
            // provider's fault (RFC 6749 §5.2; GitHub's `incorrect_client_credentials`).
            Some(code)
                if code == "invalid_client"
                    || code == "unauthorized_client"
                    || code == "incorrect_client_credentials" =>
            {
                client_rejected(cfg, &code)
            }
            None if status == 401 => client_rejected(cfg, "HTTP 401"),
            Some(code) => Error::Provider { endpoint: "token", reason: format!("OAuth error {code}") },
            None => Error::Provider { endpoint: "token", reason: format!("HTTP status {status}") },
        });
    }
    let invalid = || Error::Provider { endpoint: "token", reason: "the token response is not valid".into() };
    // RFC 6749 §5.1: a JSON object; a derived struct would also read an array, by position.
    if !body.is_object() {
        return Err(invalid());
    }
    let tokens: TokenResponse = serde_json::from_value(body).map_err(|_| invalid())?;
    if tokens.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) && !tokens.is_dpop() {
        return Err(Error::Provider { endpoint: "token", reason: "the token type is not Bearer or DPoP".into() });
    }
    Ok(tokens)
}

/// The error for a token endpoint that refused the app's client credentials: names the setting
/// to check.
pub(super) fn client_rejected(cfg: &Provider, code: &str) -> Error {
    let setting = match (cfg.client_auth, &cfg.client_secret) {
        (ClientAuth::PrivateKeyJwt, _) => format!(
            "{} (whether its public key, kid `{}`, is registered for the client) and {}",
            cfg.setting("CLIENT_KEY", "the client key"),
            cfg.client_key.as_ref().map_or("", |k| k.kid()),
            cfg.setting("CLIENT_ASSERTION_AUD", "the assertion audience")
        ),
        (ClientAuth::None, _) | (_, None) => {
            format!("{} (and whether the client is registered as public)", cfg.setting("CLIENT_ID", "the client id"))
        }
        _ => cfg.setting("CLIENT_SECRET", "the client secret"),
    };
    Error::ClientRejected { provider: cfg.name.clone(), setting, code: code.to_owned() }
}
