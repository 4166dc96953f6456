//! A scripted browser for tests of apps that log in through the provider.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode, Url};

/// Response header that marks the provider's `response_mode=form_post` page, so that
/// [`Browser`] can submit it as a browser's script would.
pub(crate) const FORM_POST_MARKER: &str = "x-auth-testkit-form-post";

/// How many redirects [`Browser::get_following`] follows before giving up.
pub const MAX_REDIRECTS: usize = 10;

/// Why a [`Browser`] request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// The request failed (connection refused, timeout, invalid response …).
    #[error("HTTP request failed")]
    Http(#[from] reqwest::Error),
    /// A URL, given or taken from a `Location` header, does not parse.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        /// The text that does not parse.
        url: String,
        /// Why.
        #[source]
        source: url::ParseError,
    },
    /// [`Browser::follow`] was given a response that is not a redirect.
    #[error("{status} from {url} is not a redirect")]
    NotARedirect {
        /// The response's status.
        status: StatusCode,
        /// The URL that gave it.
        url: Url,
    },
    /// A redirect without a usable `Location` header.
    #[error("redirect from {url} has no usable Location header")]
    MissingLocation {
        /// The URL that gave it.
        url: Url,
    },
    /// The provider's form_post page could not be read.
    #[error("malformed form_post page from {url}")]
    MalformedFormPost {
        /// The URL that gave it.
        url: Url,
    },
    /// More than [`MAX_REDIRECTS`] redirects in a row.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects {
        /// The URLs visited, in order.
        visited: Vec<Url>,
    },
}

/// A cookie-keeping HTTP client that follows redirects only when asked, for driving an app's
/// login through the [`TestProvider`](crate::TestProvider) over real sockets, whatever the web
/// framework.
///
/// Cookies are kept as a browser keeps them: per host, not per port (an app and the provider both
/// on `127.0.0.1` see each other's cookies), and `Secure` cookies go over https only. A request
/// times out after 30 seconds.
///
/// # Example
///
/// A complete, if tiny, "app" that sends the browser to the provider and accepts any callback:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_testkit::{Browser, TestProvider};
/// use axum::{Router, extract::RawQuery, response::Redirect, routing::get};
///
/// let op = TestProvider::start().await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app_base = format!("http://{}", listener.local_addr()?);
///
/// let login_url = format!(
///     "{}/authorize?response_type=code&client_id={}&redirect_uri={app_base}/auth/test/callback\
///      &scope=openid&state=xyz&code_challenge={}&code_challenge_method=S256",
///     op.issuer(), op.client_id(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
/// );
/// let app = Router::new()
///     .route("/auth/test/login", get(move || async move { Redirect::to(&login_url) }))
///     .route("/auth/test/callback", get(|RawQuery(q): RawQuery| async move { q.unwrap_or_default() }));
/// tokio::spawn(async move { axum::serve(listener, app).await });
///
/// let browser = Browser::new();
/// let response = browser.login(&app_base, "test").await?;
/// assert_eq!(response.status(), 200);
/// assert!(response.url().path().ends_with("/auth/test/callback"));
/// let query = response.text().await?;
/// assert!(query.contains("code=") && query.contains("state=xyz"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cookie jar holds session cookies: not for logs.
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    ///
    /// # Panics
    ///
    /// As [`reqwest::Client::new`], if the TLS backend cannot be initialised; see
    /// [`try_new`](Self::try_new).
    pub fn new() -> Self {
        match Self::try_new() {
            Ok(browser) => browser,
            Err(e) => panic!("cannot build the HTTP client: {e}"),
        }
    }

    /// A browser with an empty cookie jar.
    ///
    /// # Errors
    ///
    /// If the HTTP client cannot be built (the TLS backend cannot be initialised).
    pub fn try_new() -> Result<Self, BrowserError> {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, jar })
    }

    /// The underlying client (it shares this browser's cookie jar and redirect policy), for
    /// requests with other methods or headers, such as `Accept: application/json`.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET url`, without following redirects.
    ///
    /// # Errors
    ///
    /// If `url` does not parse or the request fails.
    pub async fn get(&self, url: &str) -> Result<Response, BrowserError> {
        Ok(self.client.get(parse(url)?).send().await?)
    }

    /// `POST url` with a form body, without following redirects.
    ///
    /// # Errors
    ///
    /// If `url` does not parse or the request fails.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Response, BrowserError> {
        Ok(self.client.post(parse(url)?).form(form).send().await?)
    }

    /// Follows one redirect: `GET` of the response's `Location`, resolved against its URL (for
    /// every 3xx status, so a 307/308 after a POST becomes a GET).
    ///
    /// # Errors
    ///
    /// [`BrowserError::NotARedirect`] if `response` is not a 3xx,
    /// [`BrowserError::MissingLocation`] if it has no usable `Location`, or if the request fails.
    pub async fn follow(&self, response: Response) -> Result<Response, BrowserError> {
        let next = redirect_target(&response)?;
        Ok(self.client.get(next).send().await?)
    }

    /// `GET url` and follow redirects (at most [`MAX_REDIRECTS`]) as a browser would, also
    /// submitting the provider's `response_mode=form_post` page. Returns the final response and
    /// every URL requested, in order, starting with `url`.
    ///
    /// # Errors
    ///
    /// [`BrowserError::TooManyRedirects`], or as [`get`](Self::get).
    pub async fn get_following(&self, url: &str) -> Result<(Response, Vec<Url>), BrowserError> {
        let first = parse(url)?;
        let mut visited = vec![first.clone()];
        let mut response = self.client.get(first).send().await?;
        loop {
            let next = if response.status().is_redirection() {
                let target = redirect_target(&response)?;
                visited.push(target.clone());
                self.client.get(target).send().await?
            } else if response.headers().contains_key(FORM_POST_MARKER) {
                let page_url = response.url().clone();
                let (action, fields) = parse_form_post(&response.text().await?)
                    .ok_or_else(|| BrowserError::MalformedFormPost { url: page_url.clone() })?;
                let action = page_url
                    .join(&action)
                    .map_err(|source| BrowserError::InvalidUrl { url: action.clone(), source })?;
                visited.push(action.clone());
                self.client.post(action).form(&fields).send().await?
            } else {
                return Ok((response, visited));
            };
            if visited.len() > MAX_REDIRECTS {
                return Err(BrowserError::TooManyRedirects { visited });
            }
            response = next;
        }
    }

    /// Logs in to an app that follows the workspace's route conventions: `GET
    /// {app_base}/auth/{provider}/login`, then follows the redirects through the provider's
    /// auto-approval back to the app's callback and on, and returns the final response.
    ///
    /// # Errors
    ///
    /// As [`get_following`](Self::get_following).
    pub async fn login(&self, app_base: &str, provider: &str) -> Result<Response, BrowserError> {
        let url = format!("{}/auth/{provider}/login", app_base.trim_end_matches('/'));
        Ok(self.get_following(&url).await?.0)
    }

    /// The `Cookie` header this browser would send to `url`, if any.
    pub fn cookie_header(&self, url: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        let value = self.jar.cookies(&url)?;
        value.to_str().ok().map(str::to_owned)
    }

    /// Stores a cookie as if `url` had sent `Set-Cookie: {cookie}` (to plant a stale or forged
    /// cookie).
    ///
    /// # Errors
    ///
    /// If `url` does not parse.
    pub fn set_cookie(&self, url: &str, cookie: &str) -> Result<(), BrowserError> {
        self.jar.add_cookie_str(cookie, &parse(url)?);
        Ok(())
    }
}

fn parse(url: &str) -> Result<Url, BrowserError> {
    Url::parse(url).map_err(|source| BrowserError::InvalidUrl { url: url.to_owned(), source })
}

fn redirect_target(response: &Response) -> Result<Url, BrowserError> {
    if !response.status().is_redirection() {
        return Err(BrowserError::NotARedirect { status: response.status(), url: response.url().clone() });
    }
    let missing = || BrowserError::MissingLocation { url: response.url().clone() };
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(missing)?;
    response.url().join(location).map_err(|_| missing())
}

/// Reads the provider's own form_post page: the form's `action` and its hidden inputs.
fn parse_form_post(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let form = &page[page.find("<form ")?..];
    let action = attribute(&form[..form.find('>')?], "action")?;
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(start) = rest.find("<input ") {
        let tag_end = start + rest[start..].find('>')?;
        let tag = &rest[start..tag_end];
        fields.push((attribute(tag, "name")?, attribute(tag, "value")?));
        rest = &rest[tag_end..];
    }
    Some((action, fields))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = start + tag[start..].find('"')?;
    Some(html_unescape(&tag[start..end]))
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_post_page_roundtrip() {
        let fields = vec![("code".to_owned(), "a&b\"c<d>'".to_owned()), ("state".to_owned(), "s".to_owned())];
        let page = crate::html::form_post_page("http://127.0.0.1:1/cb?x=1&y=2", &fields);
        let (action, parsed) = parse_form_post(&page).expect("parse");
        assert_eq!(action, "http://127.0.0.1:1/cb?x=1&y=2");
        assert_eq!(parsed, fields);
    }
}
