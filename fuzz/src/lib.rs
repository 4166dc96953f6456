//! What the fuzz targets share: the fixed session key, clock and expectations, the check of a
//! redirect target, and the request format of the `routes` target.
//!
//! The targets live in `fuzz_targets/`, their seed corpora in `seeds/<target>/` (made by
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`), and `cargo xtask fuzz` runs
//! them. The wrappers they call are `auth_core::fuzzing`, built only under `--cfg fuzzing`.

use auth_core::{KeyRing, SessionKey};

/// The session key of every sealed cookie in the seeds and in the targets.
pub const SESSION_KEY: [u8; 32] = *b"auth-fuzz fixed session key 0001";

/// The key ring of [`SESSION_KEY`].
pub fn ring() -> KeyRing {
    KeyRing::new(SessionKey::from_bytes(SESSION_KEY))
}

/// The clock of the token checks (Unix seconds): fixed, so that a seed stays valid.
pub const NOW: u64 = 1_800_000_000;
/// The issuer the token checks expect.
pub const ISSUER: &str = "https://op.example";
/// The client id the token checks expect.
pub const CLIENT_ID: &str = "app";
/// The nonce the ID token checks expect.
pub const NONCE: &str = "n-0S6_WzA2Mj";
/// The access token the ID token checks hash (`at_hash`).
pub const ACCESS_TOKEN: &str = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
/// The audience of the app's API (bearer tokens).
pub const API_AUDIENCE: &str = "https://api.example";

/// Splits `data` at its first byte `sep`: before and after (after is empty without one).
pub fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Asserts that a redirect the app sends stays on the app: resolved against any of its pages,
/// `location` has the app's origin, also after one round of percent-decoding (which some proxies
/// and servers apply). `providers` are the origins the app may send a browser to (its providers'
/// login and logout pages).
pub fn assert_same_site_redirect(location: &str, providers: &[&str]) {
    if providers.iter().any(|p| location.starts_with(p) && location[p.len()..].starts_with('/')) {
        return;
    }
    let base = url::Url::parse("https://app.example/some/page?q=1").expect("a URL");
    let resolved = base.join(location).unwrap_or_else(|e| panic!("{location:?} does not resolve: {e}"));
    assert_eq!(resolved.origin(), base.origin(), "{location:?} leaves the app: {resolved}");
    let decoded: Vec<u8> = url::form_urlencoded::parse(format!("x={}", location.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    if let Ok(decoded) = String::from_utf8(decoded)
        && let Ok(resolved) = base.join(&decoded)
    {
        assert_eq!(resolved.origin(), base.origin(), "{location:?}, percent-decoded once, leaves the app: {resolved}");
    }
}

/// One request of the `routes` target, in a line-based text format (so that seeds read like the
/// requests they are, and mutations stay meaningful):
///
/// ```text
/// GET /auth/oidc/callback?code=…&state=…
/// cookie: a=b
/// accept: text/html
/// x-seal-login: {"p":"oidc","s":"…",…}      the payload of a pending-login cookie, sealed for it
/// x-seal-session: <base64url>               a session cookie's payload (the compact encoding)
/// x-seal-logout: {"s":"…","t":…}            a pending-logout cookie's payload
/// x-sign-bearer: {"iss":…}                  claims, signed by the provider as an at+jwt bearer token
/// x-sign-logout: {"iss":…}                  claims, signed as a logout token, posted as the body
/// body: logout_token=…                      the form body (lines are joined with `\n`)
/// ```
///
/// Any other `name: value` line is a request header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path.
    pub path: String,
    /// The raw query, without `?`.
    pub query: Option<String>,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// `x-seal-*` lines: the cookie's role (`login`, `session`, `logout`) and its payload.
    pub sealed: Vec<(String, Vec<u8>)>,
    /// `x-sign-*` lines: the token's role (`bearer`, `logout`) and its claims.
    pub signed: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RouteRequest {
    /// Parses the text format; `None` without a request line.
    pub fn parse(text: &str) -> Option<RouteRequest> {
        use base64::Engine as _;
        let mut lines = text.split('\n');
        let (method, target) = lines.next()?.split_once(' ')?;
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        let mut req = RouteRequest { method: method.to_owned(), path: path.to_owned(), query, ..Default::default() };
        let mut body_lines: Vec<&str> = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(": ") else { continue };
            match name {
                "body" => body_lines.push(value),
                "x-seal-session" => {
                    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim()).ok()?;
                    req.sealed.push(("session".into(), payload));
                }
                "x-seal-login" | "x-seal-logout" => {
                    req.sealed.push((name["x-seal-".len()..].to_owned(), value.as_bytes().to_vec()));
                }
                "x-sign-bearer" | "x-sign-logout" => {
                    req.signed.push((name["x-sign-".len()..].to_owned(), value.to_owned()));
                }
                _ => req.headers.push((name.to_owned(), value.to_owned())),
            }
        }
        req.body = body_lines.join("\n").into_bytes();
        Some(req)
    }

    /// The text format of this request.
    pub fn to_text(&self) -> String {
        use base64::Engine as _;
        let mut out = format!("{} {}", self.method, self.path);
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(q);
        }
        for (name, value) in &self.headers {
            out.push_str(&format!("\n{name}: {value}"));
        }
        for (role, payload) in &self.sealed {
            let value = match role.as_str() {
                "session" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload),
                _ => String::from_utf8_lossy(payload).into_owned(),
            };
            out.push_str(&format!("\nx-seal-{role}: {value}"));
        }
        for (role, claims) in &self.signed {
            out.push_str(&format!("\nx-sign-{role}: {claims}"));
        }
        if !self.body.is_empty() {
            for line in String::from_utf8_lossy(&self.body).split('\n') {
                out.push_str(&format!("\nbody: {line}"));
            }
        }
        out.push('\n');
        out
    }
}
