//! The logged-in user as a handler sees it, and calls to the provider's APIs with the user's
//! (fresh) access token, as Authlib's `oauth.github.get("user/emails")`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::Value;

use super::Auth;
use crate::Error;
use crate::net::HttpClient;
use crate::session::{Secret, Session};

/// A logged-in user: the [`Session`] (it derefs to it), and what it takes to use its tokens.
/// The adapters' `AuthUser` and `Authorized` deref to it.
///
/// ```
/// # async fn demo(user: auth_core::User) -> Result<(), auth_core::Error> {
/// println!("{} logged in with {}", user.sub(), user.provider());
/// let token = user.access_token().await?; // refreshed first when it is due
/// let profile = user.userinfo().await?; // the provider's userinfo, with that token
/// let emails = user.api().await?.get_json("user/emails").await?; // GitHub's API
/// # let _ = (token, profile, emails);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct User {
    session: Arc<Session>,
    auth: Auth,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("User").field(&self.session).finish()
    }
}

impl Deref for User {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl User {
    /// The user of a session (for adapters: their extractors build it from the request's
    /// [`SessionLookup`](crate::SessionLookup)).
    pub fn new(auth: Auth, session: Arc<Session>) -> Self {
        User { session, auth }
    }

    /// The session, shared.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// A valid access token ([`Auth::access_token`]): refreshed first when it is due.
    ///
    /// # Errors
    /// As [`Auth::access_token`].
    pub async fn access_token(&self) -> Result<Secret, Error> {
        self.auth.access_token(&self.session).await
    }

    /// The provider's userinfo for this user, fetched now with a valid access token: the
    /// provider's JSON as it sent it.
    ///
    /// # Errors
    /// As [`Auth::access_token`]; [`Error::Provider`] (502) when the provider has no userinfo
    /// endpoint or answers with an error or no JSON, [`Error::Unreachable`] (502, 504 on a
    /// timeout) when it does not answer.
    pub async fn userinfo(&self) -> Result<Value, Error> {
        let p = self.auth.provider(&self.session.provider)?;
        let url = p
            .meta
            .userinfo_endpoint
            .as_deref()
            .ok_or(Error::Provider { endpoint: "userinfo", reason: "the provider has no userinfo endpoint".into() })?;
        let token = self.access_token().await?;
        let dpop = self.session.tokens.dpop_key();
        let credential = crate::net::Credential::new(token.secret(), dpop.as_ref());
        self.auth.inner.http.get_json(url, Some(credential), &p.config.name, "userinfo").await
    }

    /// A client for the provider's API ([`Provider::with_api_base_url`](crate::Provider::with_api_base_url))
    /// that sends a valid access token of this user.
    ///
    /// # Errors
    /// As [`Auth::access_token`]; [`Error::Config`] when the provider has no API base URL, or
    /// one over plain http that is not a loopback address.
    pub async fn api(&self) -> Result<ApiClient, Error> {
        let p = self.auth.provider(&self.session.provider)?;
        let base = p.config.api_base_url.clone().ok_or_else(|| {
            Error::config(format!(
                "provider `{}` has no API base URL: set it with Provider::with_api_base_url",
                p.config.name
            ))
        })?;
        let base = p.config.check_url("API base URL", base.as_str())?;
        let token = self.access_token().await?;
        let dpop = self.session.tokens.dpop_key().map(std::sync::Arc::new);
        Ok(ApiClient { http: self.auth.inner.http.clone(), base, token, dpop, provider: p.config.name.clone() })
    }
}

/// Calls a provider's API with a user's access token ([`User::api`]). Paths are resolved against
/// the provider's API base URL; one that leads to another origin is refused, so the token goes
/// nowhere else. Every call has the provider calls' timeouts and byte cap
/// ([`HttpConfig`](crate::HttpConfig)).
///
/// ```
/// # async fn demo(user: auth_core::User) -> Result<(), auth_core::Error> {
/// let github = user.api().await?;
/// let repos = github.get_json("user/repos?per_page=5").await?;
/// let res = github.post_json("user/repos", &serde_json::json!({"name": "hello"})).await?;
/// if !res.is_success() {
///     eprintln!("GitHub answered {}", res.status);
/// }
/// # let _ = repos;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApiClient {
    http: HttpClient,
    base: url::Url,
    token: Secret,
    /// The session's DPoP key, when the token is bound to it: every call then carries a proof.
    dpop: Option<std::sync::Arc<crate::dpop::DpopKey>>,
    /// The provider's name, for the metrics.
    provider: String,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

/// An API's answer: status, content type and body (at most
/// [`HttpConfig::max_response_bytes`](crate::HttpConfig::max_response_bytes)).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`Error::Provider`] when it is not JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|_| Error::Provider { endpoint: "api", reason: "the body is not valid JSON".into() })
    }
}

impl ApiClient {
    /// The URL a path leads to: resolved against the API base URL, and refused when it leaves
    /// the API's origin (`https://evil.example/`, `//evil.example`).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a path that is not a URL or leaves the origin.
    pub fn url(&self, path: &str) -> Result<url::Url, Error> {
        let url = self.base.join(path).map_err(|_| Error::BadRequest("the API path is not a valid URL"))?;
        if url.origin() != self.base.origin() {
            return Err(Error::BadRequest("the API path leads outside the provider's API"));
        }
        Ok(url)
    }

    /// `GET path`.
    ///
    /// # Errors
    /// As [`ApiClient::url`]; [`Error::Unreachable`] when the API does not answer, and
    /// [`Error::Provider`] when its answer is over the byte cap.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, Error> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `GET path`, expecting a 2xx JSON answer.
    ///
    /// # Errors
    /// As [`ApiClient::get`]; [`Error::Provider`] (502) for another status or a body that is not
    /// JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, Error> {
        let res = self.get(path).await?;
        if !res.is_success() {
            return Err(Error::Provider { endpoint: "api", reason: format!("HTTP status {}", res.status) });
        }
        res.json()
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<ApiResponse, Error> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn delete(&self, path: &str) -> Result<ApiResponse, Error> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, json: Option<&Value>) -> Result<ApiResponse, Error> {
        let url = self.url(path)?;
        let credential = crate::net::Credential::new(self.token.secret(), self.dpop.as_deref());
        let reply = self.http.send(method, url, credential, json, &self.provider, "api").await?;
        Ok(ApiResponse { status: reply.status, content_type: reply.content_type, body: reply.body })
    }
}
