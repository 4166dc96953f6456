//! Outbound HTTP to the provider: timeouts on every call, no redirects followed.

use std::time::Duration;

use base64::Engine as _;

use crate::Error;

/// Timeouts for calls to the provider.
///
/// ```
/// use std::time::Duration;
/// use auth_core::HttpConfig;
/// let cfg = HttpConfig::default();
/// assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
/// assert_eq!(cfg.timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time to open the connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time for the whole exchange (default 10 s).
    pub timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { connect_timeout: Duration::from_secs(5), timeout: Duration::from_secs(10) }
    }
}

/// The client every call to a provider goes through.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
}

/// A form POST's outcome: status and JSON body (`Null` when the body is not JSON).
pub(crate) struct FormReply {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

impl HttpClient {
    pub(crate) fn new(cfg: HttpConfig) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("auth-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| Error::Internal("the HTTP client could not be built"))?;
        Ok(HttpClient { client })
    }

    /// GETs a JSON document (with an optional bearer token); non-2xx and non-JSON are errors.
    pub(crate) async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        endpoint: &'static str,
    ) -> Result<serde_json::Value, Error> {
        let mut req = self.client.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.map_err(|source| Error::Unreachable { endpoint, source })?;
        let status = res.status();
        if !status.is_success() {
            return Err(Error::Provider { endpoint, reason: format!("HTTP status {}", status.as_u16()) });
        }
        res.json().await.map_err(|e| {
            if e.is_timeout() {
                Error::Unreachable { endpoint, source: e }
            } else {
                Error::Provider { endpoint, reason: "the body is not valid JSON".into() }
            }
        })
    }

    /// POSTs a form, optionally with HTTP Basic client authentication (RFC 6749 §2.3.1: id and
    /// secret form-urlencoded before base64).
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        endpoint: &'static str,
    ) -> Result<FormReply, Error> {
        let mut req = self.client.post(url).header("accept", "application/json").form(form);
        if let Some((id, secret)) = basic {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
            req = req.header("authorization", format!("Basic {credentials}"));
        }
        let res = req.send().await.map_err(|source| Error::Unreachable { endpoint, source })?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.map_err(|source| Error::Unreachable { endpoint, source })?;
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(FormReply { status, body })
    }
}
