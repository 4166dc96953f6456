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
    /// The last `DPoP-Nonce` of each server (RFC 9449 §8), by origin. Only configured providers
    /// and their APIs are called, so there are few; it is cleared past [`MAX_NONCE_ORIGINS`].
    nonces: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

/// The most origins whose DPoP nonce is remembered.
const MAX_NONCE_ORIGINS: usize = 64;

/// How a request carries an access token.
#[derive(Clone, Copy)]
pub(crate) enum Credential<'a> {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer(&'a str),
    /// `Authorization: DPoP` and a proof by the token's key (RFC 9449 §7).
    Dpop(&'a str, &'a crate::dpop::DpopKey),
}

/// A form POST's outcome: status and JSON body (`Null` when the body is not JSON).
pub(crate) struct FormReply {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

impl<'a> Credential<'a> {
    /// `token`, bound to `dpop` if the session has a DPoP key.
    pub(crate) fn new(token: &'a str, dpop: Option<&'a crate::dpop::DpopKey>) -> Self {
        match dpop {
            Some(key) => Credential::Dpop(token, key),
            None => Credential::Bearer(token),
        }
    }
}

/// The origin of a URL, the key of its server's DPoP nonce.
fn origin_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
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
        Ok(HttpClient { client, max_bytes: cfg.max_response_bytes, nonces: Default::default() })
    }

    /// The DPoP nonce `url`'s server gave last, if any.
    fn nonce(&self, url: &str) -> Option<String> {
        self.nonces.lock().ok()?.get(&origin_of(url)).cloned()
    }

    /// Remembers a `DPoP-Nonce` the server at `url` sent; whether it is new (a retry may help).
    fn keep_nonce(&self, url: &str, headers: &reqwest::header::HeaderMap) -> bool {
        let Some(nonce) = crate::dpop::nonce_from(headers.get("dpop-nonce")) else { return false };
        let Ok(mut nonces) = self.nonces.lock() else { return false };
        if nonces.len() >= MAX_NONCE_ORIGINS {
            nonces.clear();
        }
        nonces.insert(origin_of(url), nonce.clone()).as_deref() != Some(nonce.as_str())
    }

    /// Adds a credential's headers to a request to `url` made with `method`, with the nonce
    /// `url`'s server gave last.
    fn authorize(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        url: &str,
        credential: Credential<'_>,
    ) -> Result<reqwest::RequestBuilder, Error> {
        Ok(match credential {
            Credential::Bearer(token) => req.bearer_auth(token),
            Credential::Dpop(token, key) => {
                let proof = key.proof(method, url, Some(token), self.nonce(url).as_deref())?;
                req.header("authorization", format!("DPoP {token}")).header("dpop", proof)
            }
        })
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

    /// GETs a URL (with an optional access token) of `provider`: its status and capped body.
    pub(crate) async fn get(
        &self,
        url: &str,
        credential: Option<Credential<'_>>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<Reply, Error> {
        let Some(credential) = credential else {
            let req = self.client.get(url).header("accept", "application/json");
            return self.reply(req, url, provider, endpoint).await.map(|(reply, _)| reply);
        };
        let url = url::Url::parse(url).map_err(|_| Error::config(format!("the {endpoint} URL is not a URL")))?;
        self.send(reqwest::Method::GET, url, credential, None, provider, endpoint).await
    }

    /// Sends a request with an access token and an optional JSON body (the app's calls to the
    /// provider's API for a user): its status, content type and capped body. A DPoP call the
    /// server answers 401 with a new `DPoP-Nonce` is sent once more, with that nonce (RFC 9449 §9).
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        credential: Credential<'_>,
        json: Option<&serde_json::Value>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<Reply, Error> {
        let build = || {
            let mut req = self.client.request(method.clone(), url.clone()).header("accept", "application/json");
            if let Some(body) = json {
                req = req.json(body);
            }
            self.authorize(req, method.as_str(), url.as_str(), credential)
        };
        let (reply, new_nonce) = self.reply(build()?, url.as_str(), provider, endpoint).await?;
        if reply.status == 401 && new_nonce && matches!(credential, Credential::Dpop(..)) {
            return self.reply(build()?, url.as_str(), provider, endpoint).await.map(|(reply, _)| reply);
        }
        Ok(reply)
    }

    /// Sends `req` to `url`: the reply, and whether it brought a new DPoP nonce.
    async fn reply(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<(Reply, bool), Error> {
        let start = Instant::now();
        let reply = async {
            let res = req.send().await.map_err(|source| Error::Unreachable { endpoint, source })?;
            let status = res.status().as_u16();
            let new_nonce = self.keep_nonce(url, res.headers());
            let content_type =
                res.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = self.read_capped(res, endpoint).await?;
            Ok((Reply { status, content_type, body }, new_nonce))
        }
        .await;
        crate::metrics::provider_request(provider, endpoint, start.elapsed());
        reply
    }

    /// GETs a JSON document (with an optional bearer token); non-2xx and non-JSON are errors.
    pub(crate) async fn get_json(
        &self,
        url: &str,
        credential: Option<Credential<'_>>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<serde_json::Value, Error> {
        let reply = self.get(url, credential, provider, endpoint).await?;
        if !(200..300).contains(&reply.status) {
            return Err(Error::Provider { endpoint, reason: format!("HTTP status {}", reply.status) });
        }
        serde_json::from_slice(&reply.body)
            .map_err(|_| Error::Provider { endpoint, reason: "the body is not valid JSON".into() })
    }

    /// POSTs a form to `provider`, optionally with HTTP Basic client authentication (RFC 6749 §2.3.1: id and
    /// secret form-urlencoded before base64) and a DPoP proof by `dpop` (RFC 9449 §5). When the
    /// server asks for a DPoP nonce (`use_dpop_nonce` with a new `DPoP-Nonce`), the form is sent
    /// once more with it; `form` is made again for that (a client assertion must not be reused).
    pub(crate) async fn post_form<'f>(
        &self,
        url: &str,
        form: impl Fn() -> Result<Vec<(&'f str, std::borrow::Cow<'f, str>)>, Error>,
        basic: Option<(&str, &str)>,
        dpop: Option<&crate::dpop::DpopKey>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<FormReply, Error> {
        let (reply, new_nonce) = self.post_form_once(url, &form()?, basic, dpop, provider, endpoint).await?;
        let nonce_asked =
            reply.status == 400 && reply.body.get("error").and_then(|e| e.as_str()) == Some("use_dpop_nonce");
        if dpop.is_some() && nonce_asked && new_nonce {
            return Ok(self.post_form_once(url, &form()?, basic, dpop, provider, endpoint).await?.0);
        }
        Ok(reply)
    }

    async fn post_form_once(
        &self,
        url: &str,
        form: &[(&str, std::borrow::Cow<'_, str>)],
        basic: Option<(&str, &str)>,
        dpop: Option<&crate::dpop::DpopKey>,
        provider: &str,
        endpoint: &'static str,
    ) -> Result<(FormReply, bool), Error> {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        let mut req = self.client.post(url).header("accept", "application/json").form(&form);
        if let Some((id, secret)) = basic {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
            req = req.header("authorization", format!("Basic {credentials}"));
        }
        if let Some(key) = dpop {
            req = req.header("dpop", key.proof("POST", url, None, self.nonce(url).as_deref())?);
        }
        let start = Instant::now();
        let reply = async {
            let res = req.send().await.map_err(|source| Error::Unreachable { endpoint, source })?;
            let status = res.status().as_u16();
            let new_nonce = self.keep_nonce(url, res.headers());
            let bytes = self.read_capped(res, endpoint).await?;
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            Ok((FormReply { status, body }, new_nonce))
        }
        .await;
        crate::metrics::provider_request(provider, endpoint, start.elapsed());
        reply
    }
}
