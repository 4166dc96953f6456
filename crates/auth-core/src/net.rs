//! Outbound HTTP to the provider: timeouts on every call, no redirects followed.

use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::Error;

/// Limits on calls to the provider: timeouts, and the most bytes read of an answer.
///
/// ```
/// use std::time::Duration;
/// use auth_core::HttpConfig;
/// let cfg = HttpConfig::default();
/// assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
/// assert_eq!(cfg.timeout, Duration::from_secs(10));
/// assert_eq!(cfg.max_response_bytes, 1024 * 1024);
/// let small = HttpConfig { max_response_bytes: 64 * 1024, ..HttpConfig::default() };
/// # let _ = small;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time to open the connection (default 5 s).
    pub connect_timeout: Duration,
    /// Time for the whole exchange (default 10 s).
    pub timeout: Duration,
    /// The largest answer read from a provider (discovery, JWKS, token, userinfo, revocation,
    /// introspection; default 1 MiB). A larger one is refused with
    /// [`Error::Provider`](crate::Error::Provider) before it is held in memory whole.
    pub max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// The client every call to a provider goes through.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    max_bytes: usize,
}

/// A form POST's outcome: status and JSON body (`Null` when the body is not JSON).
pub(crate) struct FormReply {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

/// A GET's outcome: status, content type and body bytes (at most the configured cap).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
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
        Ok(HttpClient { client, max_bytes: cfg.max_response_bytes })
    }

    /// Reads a response's body, refusing one larger than the cap (by its `Content-Length`, or
    /// as soon as the chunks read pass it).
    async fn read_capped(&self, mut res: reqwest::Response, endpoint: &'static str) -> Result<Vec<u8>, Error> {
        let too_large = || Error::Provider {
            endpoint,
            reason: format!("the response is larger than {} bytes (HttpConfig::max_response_bytes)", self.max_bytes),
        };
        if res.content_length().is_some_and(|n| n > self.max_bytes as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|source| Error::Unreachable { endpoint, source })? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// GETs a URL (with an optional bearer token) of `provider`: its status and capped body.
    pub(crate) async fn get(
        &self,
        url: &str,
        bearer: Option<&str>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<Reply, Error> {
        let mut req = self.client.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.reply(req, provider, endpoint).await
    }

    /// Sends a request with a bearer token and an optional JSON body (the app's calls to the
    /// provider's API for a user): its status, content type and capped body.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        bearer: &str,
        json: Option<&serde_json::Value>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<Reply, Error> {
        let mut req = self.client.request(method, url).header("accept", "application/json").bearer_auth(bearer);
        if let Some(body) = json {
            req = req.json(body);
        }
        self.reply(req, provider, endpoint).await
    }

    async fn reply(
        &self,
        req: reqwest::RequestBuilder,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<Reply, Error> {
        let start = Instant::now();
        let reply = async {
            let res = req.send().await.map_err(|source| Error::Unreachable { endpoint, source })?;
            let status = res.status().as_u16();
            let content_type =
                res.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = self.read_capped(res, endpoint).await?;
            Ok(Reply { status, content_type, body })
        }
        .await;
        crate::metrics::provider_request(provider, endpoint, start.elapsed());
        reply
    }

    /// GETs a JSON document (with an optional bearer token); non-2xx and non-JSON are errors.
    pub(crate) async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<serde_json::Value, Error> {
        let reply = self.get(url, bearer, provider, endpoint).await?;
        if !(200..300).contains(&reply.status) {
            return Err(Error::Provider { endpoint, reason: format!("HTTP status {}", reply.status) });
        }
        serde_json::from_slice(&reply.body)
            .map_err(|_| Error::Provider { endpoint, reason: "the body is not valid JSON".into() })
    }

    /// POSTs a form to `provider`, optionally with HTTP Basic client authentication (RFC 6749 §2.3.1: id and
    /// secret form-urlencoded before base64).
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<FormReply, Error> {
        let mut req = self.client.post(url).header("accept", "application/json").form(form);
        if let Some((id, secret)) = basic {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
            req = req.header("authorization", format!("Basic {credentials}"));
        }
        let start = Instant::now();
        let reply = async {
            let res = req.send().await.map_err(|source| Error::Unreachable { endpoint, source })?;
            let status = res.status().as_u16();
            let bytes = self.read_capped(res, endpoint).await?;
            Ok(FormReply { status, body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null) })
        }
        .await;
        crate::metrics::provider_request(provider, endpoint, start.elapsed());
        reply
    }
}
