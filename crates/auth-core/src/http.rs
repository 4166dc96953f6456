//! A framework-neutral view of a request and a response.
//!
//! The core never sees an Axum, Actix or Rocket type: an adapter builds a [`RequestView`] from its
//! framework's request and turns an [`AuthResponse`] back into its framework's response. Nothing
//! else crosses the boundary.

use std::fmt;

use crate::Error;

/// The request method, as far as the core cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET` (and `HEAD`).
    Get,
    /// `POST`.
    Post,
    /// Anything else.
    Other,
}

impl Method {
    /// Maps a method name (`"GET"`, `"POST"`, …).
    pub fn from_name(name: &str) -> Self {
        match name {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// The headers [`RequestView::add_header`] keeps.
const KEPT_HEADERS: [&str; 8] =
    ["cookie", "dpop", "accept", "authorization", "content-type", "sec-fetch-mode", "sec-fetch-site", "origin"];

/// What the core reads of a request: method, path, query, and the few headers it needs.
///
/// ```
/// use auth_core::{Method, RequestView};
/// let req = RequestView::new(Method::Get, "/me", Some("a=1"))
///     .with_header("Accept", "text/html")
///     .with_header("Cookie", "a=b; c=d");
/// assert_eq!(req.cookie("c"), Some("d"));
/// assert!(req.wants_html());
/// ```
///
/// Its `Debug` names the cookies but shows none of their values, nor the `Authorization` or
/// `DPoP` header, nor the query (a callback's carries the authorization code): they are
/// credentials.
///
/// ```
/// use auth_core::{Method, RequestView};
/// let req = RequestView::new(Method::Get, "/auth/x/callback", Some("code=secret-code"))
///     .with_header("Cookie", "session=secret-cookie")
///     .with_header("Authorization", "Bearer secret-token");
/// let debug = format!("{req:?}");
/// assert!(debug.contains("/auth/x/callback") && debug.contains("session"), "{debug}");
/// assert!(!debug.contains("secret"), "{debug}");
/// ```
#[derive(Clone, Default)]
pub struct RequestView<'a> {
    method: Option<Method>,
    path: &'a str,
    query: Option<&'a str>,
    accept: Option<&'a str>,
    sec_fetch_mode: Option<&'a str>,
    sec_fetch_site: Option<&'a str>,
    origin: Option<&'a str>,
    authorization: Option<&'a str>,
    content_type: Option<&'a str>,
    /// The first `Cookie` header inline, the others (HTTP/2 may split them) in `more_cookies`: a
    /// view is built on every request, and a `Vec` of them all was its only allocation. (Not a
    /// `SmallVec`: its `Drop` would keep the request borrowed until the view goes out of scope,
    /// where a `Vec`'s does not.)
    cookie: Option<&'a str>,
    more_cookies: Vec<&'a str>,
    /// The method exactly as sent (`PUT`, `HEAD`, …), for a DPoP proof's `htm`.
    method_name: Option<&'a str>,
    /// The `DPoP` headers (RFC 9449 §4.3: exactly one is allowed; two are kept to tell).
    dpop: Vec<&'a str>,
}

impl fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies: Vec<&str> = self.cookies_iter().map(|(name, _)| name).collect();
        let redacted = |v: Option<&str>| v.map(|_| "[redacted]");
        f.debug_struct("RequestView")
            .field("method", &self.method_name())
            .field("path", &self.path)
            .field("query", &redacted(self.query))
            .field("cookies", &cookies)
            .field("authorization", &redacted(self.authorization))
            .field("dpop_proofs", &self.dpop.len())
            .field("accept", &self.accept)
            .field("content_type", &self.content_type)
            .field("origin", &self.origin)
            .field("sec_fetch_mode", &self.sec_fetch_mode)
            .field("sec_fetch_site", &self.sec_fetch_site)
            .finish()
    }
}

impl<'a> RequestView<'a> {
    /// A request with no headers yet.
    pub fn new(method: Method, path: &'a str, query: Option<&'a str>) -> Self {
        RequestView { method: Some(method), path, query: query.filter(|q| !q.is_empty()), ..Default::default() }
    }

    /// Adds a header; the core keeps those it uses (`Accept`, `Cookie`, `Authorization`,
    /// `Content-Type`, `Origin`, `Sec-Fetch-Mode`, `Sec-Fetch-Site`) and ignores the rest. Names are case-insensitive; several
    /// `Cookie` headers (HTTP/2) are all kept.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &'a str) -> Self {
        self.add_header(name, value);
        self
    }

    /// Adds a header in place (see [`RequestView::with_header`]).
    pub fn add_header(&mut self, name: &str, value: &'a str) {
        let slot = if name.eq_ignore_ascii_case("cookie") {
            if self.cookie.is_none() {
                self.cookie = Some(value);
            } else {
                self.more_cookies.push(value);
            }
            return;
        } else if name.eq_ignore_ascii_case("dpop") {
            if self.dpop.len() < 2 {
                self.dpop.push(value);
            }
            return;
        } else if name.eq_ignore_ascii_case("accept") {
            &mut self.accept
        } else if name.eq_ignore_ascii_case("authorization") {
            &mut self.authorization
        } else if name.eq_ignore_ascii_case("content-type") {
            &mut self.content_type
        } else if name.eq_ignore_ascii_case("sec-fetch-mode") {
            &mut self.sec_fetch_mode
        } else if name.eq_ignore_ascii_case("sec-fetch-site") {
            &mut self.sec_fetch_site
        } else if name.eq_ignore_ascii_case("origin") {
            &mut self.origin
        } else {
            return;
        };
        *slot = Some(value);
    }

    /// Builds a view from any header iterator; values that are not UTF-8 are skipped.
    pub fn from_parts<I>(method: Method, path: &'a str, query: Option<&'a str>, headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut view = RequestView::new(method, path, query);
        for (name, value) in headers {
            // Only the values of headers the core keeps are checked (the `Cookie` header, a KiB
            // or more, on every request), with SIMD: std's check was 2% of a guarded request
            // under load.
            if KEPT_HEADERS.iter().any(|kept| name.eq_ignore_ascii_case(kept))
                && let Ok(value) = simdutf8::basic::from_utf8(value)
            {
                view.add_header(name, value);
            }
        }
        view
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Other)
    }

    /// Sets the method's exact name (`PUT`, `HEAD`, …), which [`RequestView::method`] folds
    /// into `Get`, `Post` or `Other`: a DPoP proof names it (the adapters set it).
    ///
    /// ```
    /// use auth_core::{Method, RequestView};
    /// let req = RequestView::new(Method::Other, "/api/items/7", None).with_method_name("PUT");
    /// assert_eq!(req.method_name(), "PUT");
    /// assert_eq!(RequestView::new(Method::Post, "/", None).method_name(), "POST");
    /// ```
    #[must_use]
    pub fn with_method_name(mut self, name: &'a str) -> Self {
        self.method_name = Some(name);
        self
    }

    /// The method's exact name: as set with [`RequestView::with_method_name`], else `GET`,
    /// `POST` or empty (for `Other`).
    pub fn method_name(&self) -> &'a str {
        self.method_name.unwrap_or(match self.method() {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Other => "",
        })
    }

    /// The `DPoP` proof headers (RFC 9449), at most two kept: one is allowed.
    pub fn dpop_proofs(&self) -> &[&'a str] {
        &self.dpop
    }

    /// The path (without the query).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The path and query, as the browser asked for it (for `next=`).
    pub fn path_and_query(&self) -> String {
        match self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.to_owned(),
        }
    }

    /// The `Authorization` header.
    pub fn authorization(&self) -> Option<&'a str> {
        self.authorization
    }

    /// The `Origin` header (browsers send it on every `POST`).
    pub fn origin(&self) -> Option<&'a str> {
        self.origin
    }

    /// The `Sec-Fetch-Site` header (`same-origin`, `same-site`, `cross-site`, `none`).
    pub fn sec_fetch_site(&self) -> Option<&'a str> {
        self.sec_fetch_site
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> Option<&'a str> {
        self.content_type
    }

    /// The value of the first cookie with this name.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.cookies_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every cookie as `(name, value)`.
    ///
    /// Parsed by hand: RFC 6265 §5.4 pairs split on `;` and the first `=`, which the `cookie` crate's
    /// parser also does, but it allocates a `Cookie` per pair on this per-request path.
    pub fn cookies_iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.cookie.iter().chain(&self.more_cookies).flat_map(|h| pairs(h)).filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            Some((name.trim(), value))
        })
    }

    /// Whether the client is a browser navigating (it gets redirects and HTML) rather than an API
    /// client (it gets status codes and JSON).
    ///
    /// A request is an API request when its `Accept` prefers JSON, or it is a `fetch`/XHR
    /// (`Sec-Fetch-Mode` other than `navigate`); a browser navigation sends `Accept: text/html…`.
    pub fn wants_html(&self) -> bool {
        if let Some(mode) = self.sec_fetch_mode
            && mode != "navigate"
        {
            return false;
        }
        match self.accept {
            None => false,
            Some(accept) => {
                let html = accept.find("text/html");
                let json = accept.find("application/json");
                match (html, json) {
                    (Some(h), Some(j)) => h < j,
                    (Some(_), None) => true,
                    _ => false,
                }
            }
        }
    }

    /// Whether `Accept` asks for JSON rather than HTML (errors of browser-facing routes are HTML
    /// unless the client says so).
    pub fn prefers_json(&self) -> bool {
        self.accept.is_some_and(|a| a.contains("application/json")) && !self.wants_html()
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query?;
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// A response the core wants sent: status, headers (`Set-Cookie` among them) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResponse {
    /// The HTTP status.
    pub status: u16,
    /// Headers, in order; `Set-Cookie` may repeat.
    pub headers: Vec<(&'static str, String)>,
    /// The body (HTML, JSON or empty).
    pub body: String,
}

impl AuthResponse {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        AuthResponse { status, headers: Vec::new(), body: String::new() }
    }

    /// A `303 See Other` (or other 3xx) redirect, never cached, never leaking a referrer.
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        let mut res = AuthResponse::new(status).no_store();
        res.headers.push(("location", location.into()));
        res
    }

    /// Adds `Cache-Control: no-store` and `Referrer-Policy: no-referrer` (security rules 8).
    #[must_use]
    pub fn no_store(mut self) -> Self {
        self.headers.push(("cache-control", "no-store".into()));
        self.headers.push(("referrer-policy", "no-referrer".into()));
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `Set-Cookie` headers.
    #[must_use]
    pub fn with_cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Self {
        self.headers.extend(cookies.into_iter().map(|c| ("set-cookie", c)));
        self
    }

    /// A JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        AuthResponse { status, headers: vec![("content-type", "application/json".into())], body: value.to_string() }
    }

    /// An error as the client wants it: a small HTML page for a browser, JSON for an API client.
    /// The body carries only [`Error::public_message`], never `Debug` output.
    pub fn error(err: &Error, html: bool) -> Self {
        let status = err.status();
        let message = err.public_message();
        let res = if html {
            AuthResponse {
                status,
                headers: vec![("content-type", "text/html; charset=utf-8".into())],
                body: error_page(status, &message),
            }
        } else {
            AuthResponse::json(status, &serde_json::json!({ "error": err.code(), "message": message }))
        };
        res.no_store()
    }

    /// The header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A handler's error (from [`User::userinfo`](crate::User::userinfo), [`User::api`](crate::User::api),
/// …) as JSON for its client, which is what the adapters' `AuthError` sends. A fault of the
/// server or the provider (5xx) is logged here, with its cause.
///
/// ```
/// let res = auth_core::AuthResponse::from(auth_core::Error::AccessTokenExpired);
/// assert_eq!(res.status, 401);
/// assert!(res.body.contains("token_expired"));
/// ```
impl From<Error> for AuthResponse {
    fn from(err: Error) -> Self {
        AuthResponse::handler_error(&err)
    }
}

impl AuthResponse {
    /// [`AuthResponse::from`] an error a handler returns, by reference.
    pub fn handler_error(err: &Error) -> Self {
        if err.status() >= 500 {
            tracing::error!(error = %err, source = ?std::error::Error::source(err).map(ToString::to_string), "handler error");
        } else {
            tracing::info!(error = %err, "handler refused");
        }
        AuthResponse::error(err, false)
    }
}

fn error_page(status: u16, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
         <h1>Login problem</h1><p>{}</p><p><a href=\"/\">Back to the start page</a></p></body></html>",
        html_escape(message)
    )
}

/// The `Set-Cookie` values of a session lookup ([`SessionLookup::set_cookies`](crate::SessionLookup))
/// that a response does not set itself: when the response sets a cookie of the same name (a login
/// starting a new session, a logout clearing it), the response's wins. Adapters call this before
/// appending the lookup's cookies to a response.
///
/// ```
/// let response = ["auth_session=new; Path=/; HttpOnly"];
/// let lookup = vec!["auth_session=; Max-Age=0".to_string(), "other=1".to_string()];
/// assert_eq!(auth_core::cookies_not_set_by(response, lookup), ["other=1"]);
/// ```
pub fn cookies_not_set_by<'a>(response: impl IntoIterator<Item = &'a str>, lookup: Vec<String>) -> Vec<String> {
    if lookup.is_empty() {
        return lookup;
    }
    let name = |c: &str| c.split_once('=').map_or(c, |(n, _)| n).trim().to_owned();
    let set: Vec<String> = response.into_iter().map(name).collect();
    lookup.into_iter().filter(|c| !set.contains(&name(c))).collect()
}

/// A `Cookie` header's `;`-separated pairs. The `memchr` crate finds the separators with SIMD:
/// a session cookie is a KiB or more, and std's `split(';')` scanning it was 1% of a guarded
/// request under load.
fn pairs(header: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b';', header.as_bytes()).chain(std::iter::once(header.len()));
    // `;` is ASCII, so every cut falls on a character boundary.
    ends.map(move |end| {
        let pair = header.get(start..end).unwrap_or_default();
        start = end + 1;
        pair
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_keeps_what_add_header_keeps() {
        let headers = [
            ("Cookie", "a=b"),
            ("DPoP", "proof"),
            ("Accept", "application/json"),
            ("Authorization", "Bearer t"),
            ("Content-Type", "application/json"),
            ("Sec-Fetch-Mode", "cors"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", "https://app.example"),
            ("User-Agent", "curl"),
        ];
        let mut added = RequestView::new(Method::Get, "/", None);
        headers.iter().for_each(|(n, v)| added.add_header(n, v));
        let parts = RequestView::from_parts(Method::Get, "/", None, headers.iter().map(|(n, v)| (*n, v.as_bytes())));
        assert_eq!(format!("{parts:?}"), format!("{added:?}"));
        assert_eq!(parts.cookie("a"), Some("b"));
        assert_eq!((parts.authorization(), parts.dpop_proofs()), (Some("Bearer t"), ["proof"].as_slice()));
        let bad = RequestView::from_parts(Method::Get, "/", None, [("cookie", b"a=\xff".as_slice())]);
        assert_eq!(bad.cookie("a"), None, "a value that is not UTF-8 is skipped");
    }

    #[test]
    fn html_versus_api() {
        let nav = RequestView::new(Method::Get, "/", None).with_header("accept", "text/html,application/xhtml+xml,*/*");
        assert!(nav.wants_html());
        let api = RequestView::new(Method::Get, "/", None).with_header("accept", "application/json");
        assert!(!api.wants_html());
        let fetch = RequestView::new(Method::Get, "/", None)
            .with_header("accept", "text/html")
            .with_header("sec-fetch-mode", "cors");
        assert!(!fetch.wants_html());
        assert!(!RequestView::new(Method::Get, "/", None).wants_html());
    }

    #[test]
    fn cookies_across_headers() {
        let req =
            RequestView::new(Method::Get, "/", None).with_header("cookie", "a=1; b=\"2\"").with_header("Cookie", "c=3");
        assert_eq!(req.cookie("b"), Some("2"));
        assert_eq!(req.cookie("c"), Some("3"));
        assert_eq!(req.cookie("d"), None);
        let third = req.clone().with_header("cookie", "d=4;;e ;=f; g = 5 ;");
        assert_eq!(third.cookie("d"), Some("4"));
        assert_eq!(third.cookie("g"), Some("5"));
        assert_eq!(third.cookie(""), Some("f"));
        let names: Vec<&str> = third.cookies_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c", "d", "", "g"]);
    }

    proptest::proptest! {
        /// The SIMD split of a `Cookie` header cuts it where `str::split(';')` does.
        #[test]
        fn pairs_split_as_std_does(header in "[a-z=; \"\u{e9}]{0,40}") {
            proptest::prop_assert_eq!(pairs(&header).collect::<Vec<_>>(), header.split(';').collect::<Vec<_>>());
        }
    }

    #[test]
    fn error_pages_escape() {
        let res = AuthResponse::error(&Error::Forbidden("<b>".into()), true);
        assert!(res.body.contains("&lt;b&gt;"));
        assert_eq!(res.status, 403);
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }
}
