//! [`Auth`]: the registry of providers and every decision of the login flow, one file per flow:
//!
//! - `builder.rs`: [`AuthBuilder`], the environment conventions, discovery (and its retry);
//! - `login.rs`: the authorization request and the pending login;
//! - `callback.rs`: the callback, the code exchange, ID token and userinfo checks;
//! - `client.rs`: calls to the token endpoint with the client's authentication;
//! - `lookup.rs`: reading, starting and ending sessions, and the guards' answers;
//! - `refresh.rs`: refreshing a session's tokens when they are due;
//! - `user.rs`: [`User`], and calls to the provider's API with the user's token;
//! - `logout.rs`: local, RP-initiated and back-channel logout;
//! - `bearer.rs`: bearer access tokens for APIs;
//! - `policy.rs`: [`Policy`].
//!
//! This file keeps [`Auth`] itself, its shared state, and the dispatch of the auth routes.

mod bearer;
mod builder;
mod callback;
mod client;
mod dpop_check;
#[cfg(fuzzing)]
pub(crate) mod fuzzing;
mod login;
mod logout;
mod lookup;
mod policy;
mod refresh;
mod user;

pub use bearer::{Bearer, Principal, Scope};
pub use builder::AuthBuilder;
use builder::ProviderSlot;
pub use callback::{LoggedIn, LoginCompletion};
pub use lookup::SessionLookup;
pub use policy::{EmailVerified, Policy};
pub use user::{ApiClient, ApiResponse, User};

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;

use crate::crypto::KeyRing;
use crate::discovery::ProviderMetadata;
use crate::http::{AuthResponse, Method, RequestView};
use crate::jwks::JwksCache;
use crate::net::HttpClient;
use crate::provider::Provider;
use crate::session::SessionStore;
use crate::state::SessionCache;
use crate::{Error, safe_next};

/// The presets [`AuthBuilder::from_env`] registers when their `{NAME}_CLIENT_ID` is set.
const PRESETS: &[&str] = &["google", "github", "facebook", "microsoft", "gitlab"];

/// Browsers drop cookies whose name, value and attributes pass 4096 bytes (RFC 6265 §6.1).
const COOKIE_LIMIT: usize = 4096;
/// At most this many logins may be pending in one browser at once (tabs); older ones are dropped.
const MAX_PENDING_LOGINS: usize = 5;
/// At most this many pending-login cookies of a request are looked at when starting a login.
const PENDING_LOGINS_EXAMINED: usize = 16;
/// At most this many stale pending-login cookies are expired by one response.
const PENDING_LOGINS_CLEARED: usize = 8;
/// The decoded-session cache is sized for about this many sessions (quick_cache's estimate,
/// which lays out its shards)…
const SESSION_CACHE_ENTRIES: usize = 4096;
/// …and holds at most this many bytes of them (cookie values and decoded JSON, counted roughly):
/// the bound.
pub(crate) const SESSION_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// The longest `state` accepted on a callback (we send 43 characters).
const MAX_STATE_LEN: usize = 128;
/// Authorization request parameters the library sets itself and a user may not override.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

/// A provider after discovery.
struct ProviderRuntime {
    config: Provider,
    meta: ProviderMetadata,
    jwks: Option<JwksCache>,
    /// The algorithms accepted for ID tokens.
    algs: Vec<Algorithm>,
    /// The algorithms accepted for back-channel logout tokens.
    logout_algs: Vec<Algorithm>,
    redirect_uri: String,
}

impl ProviderRuntime {
    /// What this provider's tokens (ID tokens, logout tokens) are checked against, for a token
    /// without login-specific expectations (no nonce, access token, `max_age` or `acr`): the
    /// callback adds those.
    fn expected(&self, leeway: u64) -> crate::id_token::Expected<'_> {
        crate::id_token::Expected {
            issuer: &self.meta.issuer,
            issuer_template: self.config.multi_tenant_issuer,
            issuer_aliases: &self.config.issuer_aliases,
            client_id: &self.config.client_id,
            trusted_audiences: &self.config.trusted_audiences,
            nonce: None,
            access_token: None,
            max_age: None,
            acr_values: &[],
            leeway,
            now: crate::now(),
        }
    }
}

struct Inner {
    providers: Vec<Arc<ProviderSlot>>,
    default_provider: String,
    base_url: String,
    /// The app's origin (`https://app.example.com`), to refuse cross-site logouts.
    origin: String,
    prefix: String,
    secure: bool,
    keys: KeyRing,
    store: Arc<dyn SessionStore>,
    http: HttpClient,
    session_cookie: String,
    login_cookie_prefix: String,
    session_ttl: u64,
    login_ttl: u64,
    leeway: u64,
    cache: SessionCache,
    /// The last creation order handed to a pending login.
    login_order: std::sync::atomic::AtomicU64,
    /// What a bearer token's `aud` must name.
    api_audience: String,
    /// The provider whose access tokens are accepted.
    bearer_provider: String,
    bearer_cache: bearer::BearerCache,
    /// Access tokens are refreshed this long before they expire (at most a quarter of their
    /// lifetime).
    refresh_leeway: std::time::Duration,
    /// How long one instance may hold a session's refresh lock.
    refresh_lock_ttl: std::time::Duration,
    flights: refresh::Flights,
}

/// The library's state, shared by every request: cheap to clone.
///
/// Adapters call [`Auth::handle`] for the auth routes, [`Auth::session`] on every request, and
/// [`Auth::unauthenticated`] / [`Auth::forbidden`] when a guard refuses.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.providers.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Auth").field("providers", &names).field("prefix", &self.inner.prefix).finish_non_exhaustive()
    }
}

impl Auth {
    /// Starts configuring.
    pub fn builder() -> AuthBuilder {
        AuthBuilder::new()
    }

    /// The route prefix (`/auth`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The app's public base URL (`APP_URL`), without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Checks that a server listening on `port` is the one the base URL names, when the base URL is
    /// a loopback address (behind a proxy, with a public host, it is not ours to judge): otherwise
    /// the provider would send every browser back to a dead port. `port_setting` names the
    /// server's own setting for the message (`ROCKET_PORT`, `PORT`).
    ///
    /// ```
    /// # async fn demo(auth: auth_core::Auth) {
    /// // With APP_URL=http://127.0.0.1:3000:
    /// assert!(auth.check_listen_port(3000, "PORT").is_ok());
    /// let err = auth.check_listen_port(8000, "ROCKET_PORT").unwrap_err();
    /// assert!(err.to_string().contains("ROCKET_PORT=3000"));
    /// # }
    /// ```
    pub fn check_listen_port(&self, port: u16, port_setting: &str) -> Result<(), Error> {
        let Ok(url) = url::Url::parse(&self.inner.base_url) else { return Ok(()) };
        let Some(app_port) = url.port_or_known_default() else { return Ok(()) };
        if !crate::provider::is_loopback(&url) || app_port == port {
            return Ok(());
        }
        Err(Error::config(format!(
            "the app's base URL (APP_URL) is {}, port {app_port}, but the server listens on port {port}: set \
             APP_URL={}://{}:{port} or {port_setting}={app_port}",
            self.inner.base_url,
            url.scheme(),
            url.host_str().unwrap_or("127.0.0.1"),
        )))
    }

    /// Checks where an adapter's auth routes are mounted: `mounted` is the path prefix its routes
    /// actually answer under (the framework's mount point and the routes' own prefix). `Err` with
    /// the exact fix when it is not this `Auth`'s [prefix](AuthBuilder::prefix): its login URLs
    /// and redirect URIs would then lead to no route. `routes` names the adapter's function for
    /// the message (`auth_axum::routes_at`).
    ///
    /// ```
    /// # async fn demo(auth: auth_core::Auth) {
    /// assert!(auth.check_routes_prefix("/auth", "auth_axum::routes_at").is_ok());
    /// let err = auth.check_routes_prefix("/account/auth", "auth_axum::routes_at").unwrap_err();
    /// assert!(err.to_string().contains(".prefix(\"/account/auth\")"));
    /// # }
    /// ```
    pub fn check_routes_prefix(&self, mounted: &str, routes: &str) -> Result<(), Error> {
        let mounted = mounted.trim_end_matches('/');
        let prefix = &self.inner.prefix;
        if mounted == prefix {
            return Ok(());
        }
        Err(Error::RoutesMisplaced(format!(
            "the auth routes answer under `{mounted}`, but this Auth's prefix is `{prefix}`, so its login URLs and \
             redirect URIs lead nowhere: mount {routes}(\"{prefix}\") at the root, or build the Auth with \
             .prefix(\"{mounted}\")"
        )))
    }

    /// For a middleware that saw its app answer 404 to a request under this `Auth`'s prefix which
    /// no auth route served: the error naming the fix (the auth routes are not mounted where the
    /// `Auth` sends browsers). `None` for paths outside the prefix.
    pub fn routes_missing(&self, path: &str, routes: &str) -> Option<Error> {
        let prefix = &self.inner.prefix;
        let under = path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with('/'));
        under.then(|| {
            Error::RoutesMisplaced(format!(
                "no auth route answered `{path}`, under this Auth's prefix `{prefix}`: add {routes} to the app at \
                 the root (merged, not nested), or give the Auth the prefix the routes are mounted at"
            ))
        })
    }

    /// The session cookie's name.
    pub fn session_cookie_name(&self) -> &str {
        &self.inner.session_cookie
    }

    /// The registered providers' names.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.inner.providers.iter().map(|p| p.name.as_str())
    }

    /// The redirect URI registered for a provider.
    pub fn redirect_uri(&self, provider: &str) -> Option<&str> {
        self.slot(provider).ok().map(|p| p.redirect_uri.as_str())
    }

    /// The issuer a provider was configured with (`{NAME}_ISSUER`, or the preset's), where
    /// discovery starts; `None` for an unknown provider and for plain OAuth 2.0 providers with
    /// explicit endpoints (GitHub, Facebook). A multi-tenant Microsoft issuer is its template.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_core::{Auth, Provider};
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let auth = Auth::builder()
    ///     .provider(Provider::oidc("corp", op.issuer(), op.client_id()))
    ///     .provider(Provider::github("id", "secret"))
    ///     .build()
    ///     .await?;
    /// assert_eq!(auth.issuer("corp"), Some(op.issuer()));
    /// assert_eq!(auth.issuer("github"), None);
    /// assert_eq!(auth.api_audience(), "http://127.0.0.1:3000");
    /// # Ok(()) }
    /// ```
    pub fn issuer(&self, provider: &str) -> Option<&str> {
        match &self.slot(provider).ok()?.config.endpoints {
            crate::provider::Endpoints::Discovery { issuer, .. } => Some(issuer),
            crate::provider::Endpoints::Explicit { .. } => None,
        }
    }

    /// The audience a bearer access token must carry to be accepted by this app's API routes
    /// ([`AuthBuilder::api_audience`], `API_AUDIENCE`; by default the app's base URL).
    pub fn api_audience(&self) -> &str {
        &self.inner.api_audience
    }

    /// Whether a provider's discovery has succeeded (a provider that was down at start answers
    /// its logins with 503 until then).
    pub fn is_provider_ready(&self, provider: &str) -> bool {
        self.provider(provider).is_ok()
    }

    /// The login URL for the default provider, returning to `next`.
    pub fn login_url(&self, next: &str) -> String {
        let next = safe_next(next).unwrap_or("/");
        let enc: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        format!("{}/{}/login?next={enc}", self.inner.prefix, self.inner.default_provider)
    }

    fn slot(&self, name: &str) -> Result<&Arc<ProviderSlot>, Error> {
        self.inner.providers.iter().find(|p| p.name == name).ok_or_else(|| Error::UnknownProvider(name.to_owned()))
    }

    /// A provider after discovery: 404 when it is not registered, 503 while it is not discovered.
    fn provider(&self, name: &str) -> Result<Arc<ProviderRuntime>, Error> {
        self.slot(name)?.runtime()
    }

    /// Answers an auth route (`{prefix}/{provider}/login`, `…/callback`, `{prefix}/logout`,
    /// `{prefix}/logout/callback`, `{prefix}/{provider}/backchannel-logout`); any other path is a
    /// 404 (logged as a misconfiguration when it is not even under the prefix: the adapter's routes
    /// are then mounted somewhere else than the `Auth` expects). `body` is the request body (form
    /// posts), read up to [`FORM_BODY_LIMIT`](crate::FORM_BODY_LIMIT) bytes by the adapter.
    pub async fn handle(&self, req: &RequestView<'_>, body: &[u8]) -> AuthResponse {
        let html = !req.prefers_json();
        let path = req.path();
        let Some(rest) = path.strip_prefix(self.inner.prefix.as_str()).and_then(|r| r.strip_prefix('/')) else {
            // A path the router matched only after decoding it (`/%61uth/…`) or collapsing slashes
            // (`//auth/…`) is just not found; a plain path outside the prefix means the routes are
            // mounted elsewhere than the `Auth` expects.
            if path.contains('%') || path.contains("//") {
                tracing::debug!(path, "not an auth route (non-canonical path)");
            } else {
                tracing::error!(path, prefix = %self.inner.prefix, "auth routes mounted at another prefix than the Auth's");
            }
            return self.error_response(&Error::NotFound, html);
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let method = req.method();
        let not_allowed = |allow| Err(Error::MethodNotAllowed { allow });
        let outcome = match segments.as_slice() {
            ["logout"] if method == Method::Post => Ok(self.logout(req).await),
            ["logout"] => not_allowed("POST"),
            ["logout", "callback"] if method == Method::Get => self.logout_callback(req),
            ["logout", "callback"] => not_allowed("GET, HEAD"),
            [provider, "backchannel-logout"] if method == Method::Post => {
                Ok(self.backchannel_logout(provider, body).await)
            }
            [_, "backchannel-logout"] => not_allowed("POST"),
            [provider, "login"] if method == Method::Get => self.login(provider, req).await,
            [_, "login"] => not_allowed("GET, HEAD"),
            [provider, "callback"] if matches!(method, Method::Get | Method::Post) => {
                Ok(self.callback(provider, req, body).await)
            }
            [_, "callback"] => not_allowed("GET, HEAD, POST"),
            _ => Err(Error::NotFound),
        };
        outcome.unwrap_or_else(|err| self.error_response(&err, html))
    }

    /// The error response for `err`, as HTML or JSON. Server-side errors are logged here, once.
    pub fn error_response(&self, err: &Error, html: bool) -> AuthResponse {
        if err.status() >= 500 {
            tracing::error!(error = %err, source = ?std::error::Error::source(err).map(ToString::to_string), "auth error");
        } else {
            tracing::info!(error = %err, "auth request refused");
        }
        let mut res = AuthResponse::error(err, html);
        match err {
            Error::MethodNotAllowed { allow } => res.headers.push(("allow", (*allow).into())),
            Error::ProviderUnavailable { .. } => res.headers.push(("retry-after", "30".into())),
            _ => {}
        }
        res
    }
}
