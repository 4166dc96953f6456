//! Zero-config development for an app built on auth-core (feature `auth-core`).

use auth_core::{AuthBuilder, Provider};

use crate::TestProvider;

/// The examples' zero-config mode for your own app: when `builder` has no provider yet (no
/// `OIDC_*`, `GOOGLE_*`, … variables read by [`AuthBuilder::from_env`]), starts the development
/// provider in-process ([`TestProvider::start_dev`]: a page to pick `alice` or `bob`) and
/// registers it as the provider `oidc`, with a loud warning. Keep the returned provider alive as
/// long as the app runs.
///
/// Anyone can log in as anyone through it, so a release build refuses it: configure a real
/// provider there.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_core::Auth;
/// let (builder, _dev) = auth_testkit::dev_provider_unless_configured(Auth::builder()).await?;
/// let auth = builder.build().await?;
/// assert_eq!(auth.provider_names().collect::<Vec<_>>(), ["oidc"]);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// In a release build without a configured provider, and when the provider cannot bind a
/// loopback port.
pub async fn dev_provider_unless_configured(
    builder: AuthBuilder,
) -> std::io::Result<(AuthBuilder, Option<TestProvider>)> {
    if builder.has_providers() {
        return Ok((builder, None));
    }
    if !cfg!(debug_assertions) {
        return Err(std::io::Error::other(
            "no login provider is configured (OIDC_ISSUER and OIDC_CLIENT_ID, GOOGLE_CLIENT_ID, …), and a release \
             build refuses the development provider, through which anyone logs in as anyone",
        ));
    }
    let op = TestProvider::start_dev().await?;
    let warning = format!(
        "WARNING: no login provider configured; using the built-in DEVELOPMENT provider at {} (anyone can log \
         in as anyone). Set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET for a real one.",
        op.issuer()
    );
    tracing::warn!("{warning}");
    // Also on stderr: an app without a tracing subscriber must not miss this.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{warning}");
    }
    let provider = Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret());
    Ok((builder.provider(provider), Some(op)))
}

/// The examples' home page (`GET /`): who is logged in, their claims, a logout button, and what
/// to try next (`/me`, `/me/userinfo`, `/admin`, and `/api/whoami` with a `curl` line to copy).
/// Built once from the [`Auth`](auth_core::Auth); [`render`](Self::render) it for each request.
///
/// When the provider `oidc` is on a loopback `http` address (the development provider of
/// [`dev_provider_unless_configured`]), the page also shows how to get an access token for the
/// app's API from it: `GET {issuer}/dev/access-token?audience=…&scope=…&user=…`, which the
/// development provider answers with a JWT access token (RFC 9068). Every value on the page is
/// HTML-escaped; the page never shows a token, a secret or a cookie.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_core::Auth;
/// let (builder, _dev) = auth_testkit::dev_provider_unless_configured(Auth::builder()).await?;
/// let auth = builder.build().await?;
/// let page = auth_testkit::DevHomePage::new(&auth, "my-app");
/// let html = page.render(None);
/// assert!(html.contains("Not logged in"));
/// assert!(html.contains("/dev/access-token?audience=http%3A%2F%2F127.0.0.1%3A3000"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DevHomePage {
    title: String,
    login_url: String,
    logout_url: String,
    whoami_url: String,
    audience: String,
    /// `{issuer}/dev/access-token?…` when the provider is the development one.
    dev_token_url: Option<String>,
}

impl DevHomePage {
    /// The page for `auth`'s app, titled `title`.
    pub fn new(auth: &auth_core::Auth, title: &str) -> Self {
        let audience = auth.api_audience().to_owned();
        let dev_token_url = auth.issuer("oidc").filter(|issuer| crate::util::is_loopback_uri(issuer)).map(|issuer| {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("audience", &audience)
                .append_pair("scope", "admin")
                .finish();
            format!("{}/dev/access-token?{query}", issuer.trim_end_matches('/'))
        });
        DevHomePage {
            title: title.to_owned(),
            login_url: auth.login_url("/"),
            logout_url: format!("{}/logout", auth.prefix()),
            whoami_url: format!("{}/api/whoami", auth.base_url().trim_end_matches('/')),
            audience,
            dev_token_url,
        }
    }

    /// The page's HTML, for the request's session (`None`: not logged in).
    pub fn render(&self, session: Option<&auth_core::Session>) -> String {
        use auth_core::html_escape as esc;
        let who = match session {
            Some(s) => {
                let claims = serde_json::to_string_pretty(s.claims().as_map()).unwrap_or_default();
                format!(
                    "<p>Logged in as <b id=\"user\">{name}</b> (<code>sub</code> <code id=\"sub\">{sub}</code>, \
                     through <code>{provider}</code>).</p>\
                     <form method=\"post\" action=\"{logout}\"><button id=\"logout\">Log out</button></form>\
                     <h2>Your claims</h2><pre id=\"claims\">{claims}</pre>",
                    name = esc(s.claims().name().unwrap_or(s.sub())),
                    sub = esc(s.sub()),
                    provider = esc(s.provider()),
                    logout = esc(&self.logout_url),
                    claims = esc(&claims),
                )
            }
            None => format!("<p>Not logged in.</p><p><a id=\"login\" href=\"{}\">Log in</a></p>", esc(&self.login_url)),
        };
        let token_hint = match &self.dev_token_url {
            Some(url) => format!(
                "<p>With the development provider, get one (for the first user, with the scope <code>admin</code>; \
                 add <code>&amp;user=bob</code> for another) and call the API:</p>\
                 <pre id=\"curl\">ACCESS_TOKEN=$(curl -s '{url}')\ncurl -H \"Authorization: Bearer $ACCESS_TOKEN\" {whoami}</pre>",
                url = esc(url),
                whoami = esc(&self.whoami_url),
            ),
            None => format!(
                "<pre id=\"curl\">curl -H \"Authorization: Bearer $ACCESS_TOKEN\" {}</pre>",
                esc(&self.whoami_url)
            ),
        };
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\
             <h1>{title}</h1>{who}<h2>Try</h2><ul>\
             <li><a href=\"/me\">/me</a>: your claims as JSON (a browser without a session is sent to the login; \
             an API client gets 401)</li>\
             <li><a href=\"/me/userinfo\">/me/userinfo</a>: the provider's userinfo, asked now with your access \
             token (refreshed first when it is due)</li>\
             <li><a href=\"/admin\">/admin</a>: only for members of the group <code>admin</code> (403 for \
             others)</li>\
             <li><code>/api/whoami</code> and <code>/api/admin</code>: a bearer access token only, whose audience \
             is <code>{audience}</code>; <code>/api/admin</code> also needs the scope <code>admin</code>.{token_hint}</li>\
             </ul></body></html>",
            title = esc(&self.title),
            audience = esc(&self.audience),
        )
    }
}
