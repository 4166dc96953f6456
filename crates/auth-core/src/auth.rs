//! [`Auth`]: the registry of providers and every decision of the login flow.

mod bearer;
mod logout;

pub use bearer::{Bearer, Principal, Scope};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::{KeyRing, constant_time_eq, pkce_challenge, random_token};
use crate::discovery::{ProviderMetadata, discover};
use crate::error::sanitize_code;
use crate::http::{AuthResponse, Method, RequestView};
use crate::id_token::{self, Expected};
use crate::jwks::{JwksCache, JwksConfig, Trust};
use crate::net::{HttpClient, HttpConfig};
use crate::provider::{ClaimMapping, ClientAuth, Profile, Provider};
use crate::session::{Claims, CookieStore, Secret, Session, SessionStore, Tokens};
use crate::state::SessionCache;
use crate::{Error, TokenError, now, safe_next};

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
/// The decoded-session cache holds at most this many sessions…
const SESSION_CACHE_ENTRIES: usize = 4096;
/// …and at most this many bytes of them (cookie values and decoded JSON, counted roughly).
const SESSION_CACHE_BYTES: usize = 32 * 1024 * 1024;
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

/// Builds an [`Auth`]: providers, the public base URL, cookie keys, the session store.
///
/// ```no_run
/// # async fn run() -> Result<(), auth_core::Error> {
/// use auth_core::{Auth, Provider};
/// let auth = Auth::builder()
///     .provider(Provider::from_env("google")?)
///     .provider(Provider::github("id", "secret"))
///     .base_url("https://app.example.com")
///     .session_keys_from_env()?
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct AuthBuilder {
    providers: Vec<Provider>,
    base_url: String,
    prefix: String,
    keys: Option<KeyRing>,
    store: Arc<dyn SessionStore>,
    http: HttpConfig,
    jwks: JwksConfig,
    session_ttl: Duration,
    login_ttl: Duration,
    leeway: Duration,
    default_provider: Option<String>,
    cookie_name: String,
    allow_random_key: bool,
    api_audience: Option<String>,
    bearer_provider: Option<String>,
}

impl fmt::Debug for AuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthBuilder")
            .field("providers", &self.providers)
            .field("base_url", &self.base_url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AuthBuilder {
    fn new() -> Self {
        AuthBuilder {
            providers: Vec::new(),
            base_url: "http://127.0.0.1:3000".into(),
            prefix: "/auth".into(),
            keys: None,
            store: Arc::new(CookieStore::new()),
            http: HttpConfig::default(),
            jwks: JwksConfig::default(),
            session_ttl: Duration::from_secs(24 * 3600),
            login_ttl: Duration::from_secs(600),
            leeway: Duration::from_secs(60),
            default_provider: None,
            cookie_name: "auth".into(),
            allow_random_key: false,
            api_audience: None,
            bearer_provider: None,
        }
    }

    /// Applies the conventions every example follows, from the process environment:
    /// `APP_URL` (default `http://127.0.0.1:3000`) as the base URL, `AUTH_SESSION_KEY` as the cookie
    /// keys, a provider named `oidc` from `OIDC_ISSUER` (or `OIDC_SERVER_METADATA_URL`),
    /// `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`, … when any of them is set, and every preset
    /// (`google`, `github`, `facebook`, `microsoft`, `gitlab`) whose `{NAME}_CLIENT_ID` is set (see
    /// [`Provider::from_env`] for all the variables). With none of them set, [`AuthBuilder::build`]
    /// says which variables it looked for.
    pub fn from_env(self) -> Result<Self, Error> {
        self.from_env_with(|key| std::env::var(key).ok())
    }

    /// [`AuthBuilder::from_env`] with any lookup function.
    ///
    /// ```
    /// use auth_core::Auth;
    /// let builder = Auth::builder().from_env_with(|k| (k == "APP_URL").then(|| "https://app.example".into())).unwrap();
    /// assert!(!builder.has_providers());
    /// ```
    pub fn from_env_with(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        if let Some(url) = env("APP_URL").filter(|v| !v.trim().is_empty()) {
            url::Url::parse(url.trim())
                .map_err(|e| Error::Env { name: "APP_URL".into(), problem: format!("is not a URL ({e})") })?;
            self = self.base_url(url.trim());
        }
        if let Some(audience) = env("API_AUDIENCE").filter(|v| !v.trim().is_empty()) {
            self.api_audience = Some(audience.trim().to_owned());
        }
        if let Some(text) = env("AUTH_SESSION_KEY").filter(|v| !v.trim().is_empty()) {
            let keys = KeyRing::from_text(&text)
                .map_err(|e| Error::Env { name: "AUTH_SESSION_KEY".into(), problem: e.to_string() })?;
            self.keys = Some(keys);
        }
        let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
        if ["OIDC_ISSUER", "OIDC_SERVER_METADATA_URL", "OIDC_CLIENT_ID"].iter().any(|k| set(k)) {
            self = self.provider(Provider::from_env_with("oidc", &env)?);
        }
        for preset in PRESETS {
            let prefix = preset.to_ascii_uppercase();
            if set(&format!("{prefix}_CLIENT_ID")) && !self.providers.iter().any(|p| p.name == *preset) {
                self = self.provider(Provider::from_env_with(preset, &env)?);
            }
        }
        Ok(self)
    }

    /// Whether any provider is registered yet.
    pub fn has_providers(&self) -> bool {
        !self.providers.is_empty()
    }

    /// The names of the providers registered so far, in order.
    ///
    /// ```
    /// let builder = auth_core::Auth::builder()
    ///     .from_env_with(|k| (k == "GITHUB_CLIENT_ID").then(|| "id".into()))
    ///     .unwrap();
    /// assert_eq!(builder.provider_names().collect::<Vec<_>>(), ["github"]);
    /// ```
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().map(|p| p.name.as_str())
    }

    /// The base URL configured so far.
    pub fn base_url_str(&self) -> &str {
        &self.base_url
    }

    /// Where an app following the conventions listens: `HOST` (default `127.0.0.1`) and `PORT`
    /// (default: the port of the base URL).
    ///
    /// ```
    /// let builder = auth_core::Auth::builder().base_url("http://127.0.0.1:8080");
    /// # if std::env::var("PORT").is_err() && std::env::var("HOST").is_err() {
    /// assert_eq!(builder.listen_addr_from_env().unwrap(), ("127.0.0.1".to_string(), 8080));
    /// # }
    /// ```
    pub fn listen_addr_from_env(&self) -> Result<(String, u16), Error> {
        let host = std::env::var("HOST").ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "127.0.0.1".into());
        let port = match std::env::var("PORT") {
            Ok(port) => port
                .trim()
                .parse()
                .map_err(|_| Error::Env { name: "PORT".into(), problem: format!("`{port}` is not a port number") })?,
            Err(_) => url::Url::parse(&self.base_url)
                .ok()
                .and_then(|u| u.port_or_known_default())
                .ok_or_else(|| Error::config(format!("no port in the base URL `{}`", self.base_url)))?,
        };
        Ok((host, port))
    }

    /// Registers a provider under its name (the first one is the default login target).
    pub fn provider(mut self, provider: Provider) -> Self {
        self.providers.push(provider);
        self
    }

    /// The app's public base URL (`APP_URL`); redirect URIs are `{base_url}{prefix}/{provider}/callback`.
    /// An `https` URL turns on `Secure` and the `__Host-` cookie prefix.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Where the auth routes live (default `/auth`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.prefix = format!("/{}", prefix.trim_matches('/'));
        self
    }

    /// The cookie keys (newest first). Without keys, a debug build generates a random key at start,
    /// with a warning (sessions then end at every restart); a release build refuses to build unless
    /// [`AuthBuilder::allow_random_session_key`] is called.
    pub fn session_keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The audience a bearer access token must carry to be accepted by this API (`API_AUDIENCE`;
    /// default: the base URL).
    pub fn api_audience(mut self, audience: impl Into<String>) -> Self {
        self.api_audience = Some(audience.into());
        self
    }

    /// The provider whose access tokens the API accepts (default: the default provider).
    pub fn bearer_provider(mut self, name: impl Into<String>) -> Self {
        self.bearer_provider = Some(name.into());
        self
    }

    /// Lets a release build start without a session key, with a random one (and a warning): every
    /// restart then logs everyone out. Debug builds always may.
    pub fn allow_random_session_key(mut self) -> Self {
        self.allow_random_key = true;
        self
    }

    /// Reads the keys from `AUTH_SESSION_KEY` (comma-separated base64 keys, newest first), when set.
    pub fn session_keys_from_env(mut self) -> Result<Self, Error> {
        if let Ok(text) = std::env::var("AUTH_SESSION_KEY") {
            self.keys = Some(
                KeyRing::from_text(&text)
                    .map_err(|e| Error::Env { name: "AUTH_SESSION_KEY".into(), problem: e.to_string() })?,
            );
        }
        Ok(self)
    }

    /// Where sessions are kept (default: [`CookieStore`]).
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Timeouts for calls to providers.
    pub fn http(mut self, cfg: HttpConfig) -> Self {
        self.http = cfg;
        self
    }

    /// JWKS caching.
    pub fn jwks(mut self, cfg: JwksConfig) -> Self {
        self.jwks = cfg;
        self
    }

    /// How long a session lasts (default 24 h).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// How long a started login may take (default 10 min).
    pub fn login_ttl(mut self, ttl: Duration) -> Self {
        self.login_ttl = ttl;
        self
    }

    /// Clock skew tolerated on `exp`, `iat`, `nbf` (default 60 s).
    pub fn clock_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The provider that protected routes send browsers to (default: the first registered).
    pub fn default_provider(mut self, name: impl Into<String>) -> Self {
        self.default_provider = Some(name.into());
        self
    }

    /// The base name of the cookies (default `auth`: `auth_session`, `auth_login.*`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Checks the configuration and runs discovery for every OIDC provider.
    pub async fn build(self) -> Result<Auth, Error> {
        let base =
            url::Url::parse(&self.base_url).map_err(|e| Error::config(format!("base URL `{}`: {e}", self.base_url)))?;
        let secure = base.scheme() == "https";
        if !secure && !crate::provider::is_loopback(&base) {
            tracing::warn!(base_url = %self.base_url, "the app's base URL is not https: cookies travel unprotected");
        }
        if self.providers.is_empty() {
            return Err(Error::config(
                "no provider registered: call AuthBuilder::provider, or set OIDC_ISSUER and OIDC_CLIENT_ID (any \
                 OpenID provider), or GOOGLE_CLIENT_ID, GITHUB_CLIENT_ID, FACEBOOK_CLIENT_ID, MICROSOFT_CLIENT_ID or \
                 GITLAB_CLIENT_ID (with its _CLIENT_SECRET) and use AuthBuilder::from_env",
            ));
        }
        let http = HttpClient::new(self.http)?;
        let mut providers: Vec<Arc<ProviderSlot>> = Vec::with_capacity(self.providers.len());
        for config in self.providers {
            if !config.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || config.name.is_empty()
            {
                return Err(Error::config(format!("provider name `{}` must be [A-Za-z0-9_-]+", config.name)));
            }
            if config.name == "logout" {
                return Err(Error::config("`logout` is a route, not a provider name"));
            }
            if providers.iter().any(|p| p.name == config.name) {
                return Err(Error::config(format!("provider `{}` registered twice", config.name)));
            }
            let id_token_alg = match &config.id_token_alg {
                Some(name) => Some(checked_id_token_alg(&config, name)?),
                None => None,
            };
            let slot = Arc::new(ProviderSlot {
                name: config.name.clone(),
                redirect_uri: format!("{}{}/{}/callback", self.base_url, self.prefix, config.name),
                config,
                id_token_alg,
                jwks: self.jwks,
                ready: std::sync::RwLock::new(None),
            });
            match discover(&slot.config, &http).await {
                Ok(meta) => slot.install(meta),
                // A provider that is down must not stop the app: its logins answer 503 until a
                // retry in the background succeeds. A wrong configuration still fails here.
                Err(err) if err.is_transient() => {
                    tracing::warn!(provider = %slot.name, error = %err, "provider unreachable at start; its logins answer 503 until discovery succeeds");
                    spawn_discovery_retry(Arc::downgrade(&slot), http.clone());
                }
                Err(err) => return Err(err),
            }
            providers.push(slot);
        }
        let default_provider = match self.default_provider {
            Some(name) if providers.iter().any(|p| p.name == name) => name,
            Some(name) => return Err(Error::config(format!("default provider `{name}` is not registered"))),
            None => providers[0].name.clone(),
        };
        let bearer_provider = match self.bearer_provider {
            Some(name) if providers.iter().any(|p| p.name == name) => name,
            Some(name) => return Err(Error::config(format!("bearer provider `{name}` is not registered"))),
            None => default_provider.clone(),
        };
        let keys = match self.keys {
            Some(keys) => keys,
            // Rocket's rule for its `secret_key`: a random key silently logs everyone out at every
            // restart, so only a debug build (or an explicit opt-in) may run with one.
            None if random_key_allowed(cfg!(debug_assertions), self.allow_random_key) => {
                tracing::warn!(
                    "no session key configured (AUTH_SESSION_KEY): using a random one; every restart logs everyone out. \
                     Set AUTH_SESSION_KEY to the output of `openssl rand -base64 32`"
                );
                KeyRing::new(crate::SessionKey::generate())
            }
            None => {
                return Err(Error::config(
                    "no session key configured: set AUTH_SESSION_KEY (`openssl rand -base64 32`) or call \
                     AuthBuilder::session_keys; a release build refuses a random key, which would log everyone out \
                     at every restart, unless AuthBuilder::allow_random_session_key() is called",
                ));
            }
        };
        if self.store.is_cookie_only() {
            tracing::warn!(
                "sessions live in cookies and logouts are remembered by this process only: after a restart, a \
                 logged-out session cookie is accepted again until it expires (at most the session lifetime). Use a \
                 shared store (AUTH_STORE=redis://…) for logouts that survive restarts and reach every instance"
            );
        }
        let host_prefix = if secure { "__Host-" } else { "" };
        let api_audience = self.api_audience.unwrap_or_else(|| self.base_url.clone());
        Ok(Auth {
            inner: Arc::new(Inner {
                session_cookie: format!("{host_prefix}{}_session", self.cookie_name),
                login_cookie_prefix: format!("{host_prefix}{}_login.", self.cookie_name),
                providers,
                default_provider,
                origin: base.origin().ascii_serialization(),
                base_url: self.base_url,
                prefix: self.prefix,
                secure,
                keys,
                store: self.store,
                http,
                session_ttl: self.session_ttl.as_secs(),
                login_ttl: self.login_ttl.as_secs(),
                leeway: self.leeway.as_secs(),
                cache: SessionCache::new(SESSION_CACHE_ENTRIES, SESSION_CACHE_BYTES),
                login_order: std::sync::atomic::AtomicU64::new(0),
                api_audience,
                bearer_provider,
                bearer_cache: bearer::BearerCache::default(),
            }),
        })
    }
}

/// A registered provider: its configuration, and its discovered state once discovery succeeded.
struct ProviderSlot {
    name: String,
    config: Provider,
    redirect_uri: String,
    /// The configured algorithm of the provider's ID tokens (`id_token_signed_response_alg`).
    id_token_alg: Option<Algorithm>,
    jwks: JwksConfig,
    ready: std::sync::RwLock<Option<Arc<ProviderRuntime>>>,
}

impl ProviderSlot {
    /// Installs the provider's metadata: from now on its logins work.
    fn install(&self, meta: ProviderMetadata) {
        let cfg = &self.config;
        let algs = match self.id_token_alg {
            Some(alg) => vec![alg],
            None => id_token::allowed_algorithms(&meta.id_token_signing_alg_values_supported, cfg.allow_hs256),
        };
        // Back-Channel Logout 1.0 §2.6: the algorithm of the provider's ID tokens, from the
        // configuration or else from the metadata (asymmetric ones only: a symmetric logout token
        // would be keyed with our own secret), never from the logins this process happened to see.
        let logout_algs = match self.id_token_alg {
            Some(alg) => vec![alg],
            None => id_token::logout_algorithms(&meta.id_token_signing_alg_values_supported),
        };
        let runtime = ProviderRuntime {
            config: cfg.clone(),
            jwks: meta.jwks_uri.clone().map(|uri| JwksCache::new(uri, self.jwks)),
            meta,
            algs,
            logout_algs,
            redirect_uri: self.redirect_uri.clone(),
        };
        *self.ready.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(runtime));
    }

    /// The provider after discovery, or 503 while discovery has not succeeded yet.
    fn runtime(&self) -> Result<Arc<ProviderRuntime>, Error> {
        self.ready
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::ProviderUnavailable { provider: self.name.clone() })
    }
}

/// Retries the discovery of a provider that was down at start, with backoff (1 s doubling to a
/// minute), until it succeeds or the [`Auth`] is dropped.
fn spawn_discovery_retry(slot: std::sync::Weak<ProviderSlot>, http: HttpClient) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no Tokio runtime to retry discovery in; the provider stays unavailable");
        return;
    };
    runtime.spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            tokio::time::sleep(delay).await;
            let Some(slot) = slot.upgrade() else { return };
            delay = (delay * 2).min(Duration::from_secs(60));
            match discover(&slot.config, &http).await {
                Ok(meta) => {
                    slot.install(meta);
                    tracing::info!(provider = %slot.name, "provider discovered; its logins work now");
                    return;
                }
                Err(err) => {
                    tracing::warn!(provider = %slot.name, error = %err, retry_in = ?delay, "discovery failed again");
                }
            }
        }
    });
}

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

/// The outcome of reading the session of a request.
#[derive(Debug, Default, Clone)]
pub struct SessionLookup {
    /// The session, when the request carries a valid one.
    pub session: Option<Arc<Session>>,
    /// `Set-Cookie` values to add to the response (for example clearing a stale cookie, or the
    /// session sealed again under the newest key of the ring).
    pub set_cookies: Vec<String>,
    /// The request carries a session cookie, but the session store could not be asked about it
    /// (down, timing out): a route that needs a login answers 503 ([`Auth::no_session`]), a
    /// public one serves the request as anonymous; the cookie is kept.
    pub unavailable: bool,
}

/// A claims policy for guards: "e-mail verified", "member of admin", …
///
/// ```
/// use auth_core::{Policy, Session};
/// struct Admin;
/// impl Policy for Admin {
///     const DESCRIPTION: &'static str = "administrators only";
///     fn allows(session: &Session) -> bool {
///         session.claims().contains("groups", "admin")
///     }
/// }
/// ```
pub trait Policy: Send + Sync + 'static {
    /// Shown on the 403 page when the policy refuses.
    const DESCRIPTION: &'static str;
    /// Whether the session may pass.
    fn allows(session: &Session) -> bool;
}

/// Only users whose provider says their e-mail address is verified.
#[derive(Debug, Clone, Copy)]
pub struct EmailVerified;

impl Policy for EmailVerified {
    const DESCRIPTION: &'static str = "a verified e-mail address is required";
    fn allows(session: &Session) -> bool {
        session.claims().email_verified()
    }
}

/// The result of [`Auth::complete_login`].
#[derive(Debug)]
pub struct LoginCompletion {
    /// The new session and where to send the browser, or why the login failed.
    pub outcome: Result<LoggedIn, Error>,
    /// `Set-Cookie` values to send either way (the spent pending login; the new session).
    pub set_cookies: Vec<String>,
}

/// A finished login.
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session.
    pub session: Session,
    /// The checked `next=` path.
    pub next: String,
}

/// A pending login, sealed into its own short-lived cookie.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    /// Provider the login went to (mix-up defence).
    p: String,
    /// State.
    s: String,
    /// Nonce.
    n: String,
    /// PKCE verifier.
    v: String,
    /// Where to go afterwards.
    r: String,
    /// Created, Unix seconds.
    t: u64,
    /// Creation order (Unix milliseconds, strictly increasing in this process), so the oldest of
    /// several logins started within one second is the one dropped.
    #[serde(default)]
    o: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
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
            [provider, "login"] if method == Method::Get => self.login(provider, req),
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

    /// `GET {prefix}/{provider}/login?next=/path`: redirects the browser to the provider.
    pub fn login(&self, provider: &str, req: &RequestView<'_>) -> Result<AuthResponse, Error> {
        let p = self.provider(provider)?;
        let next = req.query_param("next");
        let next = next.as_deref().and_then(safe_next).unwrap_or("/").to_owned();
        let pending = PendingLogin {
            p: p.config.name.clone(),
            s: random_token(32),
            n: random_token(32),
            v: random_token(48),
            r: next,
            t: now(),
            o: self.login_order(),
        };
        let mut url = url::Url::parse(&p.meta.authorization_endpoint)
            .map_err(|_| Error::config("authorization endpoint is not a URL"))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &p.config.client_id)
                .append_pair("redirect_uri", &p.redirect_uri);
            if !p.config.scopes.is_empty() {
                q.append_pair("scope", &p.config.scopes.join(" "));
            }
            q.append_pair("state", &pending.s);
            if p.config.is_oidc() {
                q.append_pair("nonce", &pending.n);
            }
            q.append_pair("code_challenge", &pkce_challenge(&pending.v)).append_pair("code_challenge_method", "S256");
            if p.config.response_mode_form_post {
                q.append_pair("response_mode", "form_post");
            }
            if let Some(max_age) = p.config.max_age {
                q.append_pair("max_age", &max_age.to_string());
            }
            if !p.config.acr_values.is_empty() {
                q.append_pair("acr_values", &p.config.acr_values.join(" "));
            }
            for (k, v) in &p.config.auth_params {
                if !RESERVED_PARAMS.contains(&k.as_str()) {
                    q.append_pair(k, v);
                }
            }
        }
        let sealed =
            self.inner.keys.seal(b"login", &serde_json::to_vec(&pending).map_err(|_| Error::Internal("encode"))?)?;
        let mut cookies = self.prune_pending_logins(req);
        cookies.push(self.cookie(
            &self.login_cookie(&pending.s),
            &sealed,
            self.inner.login_ttl,
            p.config.response_mode_form_post,
        ));
        Ok(AuthResponse::redirect(302, url.to_string()).with_cookies(cookies))
    }

    fn login_cookie(&self, state: &str) -> String {
        // The name carries a prefix of the state, so each tab's login has its own cookie and two
        // logins started at once cannot overwrite each other.
        let suffix: String = state.chars().take(16).collect();
        format!("{}{suffix}", self.inner.login_cookie_prefix)
    }

    /// A strictly increasing creation order for pending logins: Unix milliseconds, bumped past the
    /// last value handed out.
    fn login_order(&self) -> u64 {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let last = &self.inner.login_order;
        let mut current = last.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let next = now_ms.max(current.saturating_add(1));
            match last.compare_exchange_weak(
                current,
                next,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }

    /// Expires the oldest pending-login cookies beyond the limit, and unreadable ones.
    ///
    /// Bounded whatever the request carries: at most [`PENDING_LOGINS_EXAMINED`] cookies are
    /// decrypted and at most [`PENDING_LOGINS_CLEARED`] are expired per response (junk beyond that
    /// goes on later requests), so a thousand junk cookies cost a short answer.
    fn prune_pending_logins(&self, req: &RequestView<'_>) -> Vec<String> {
        let mut pending: Vec<((u64, u64), &str)> = req
            .cookies_iter()
            .filter(|(name, _)| name.starts_with(self.inner.login_cookie_prefix.as_str()))
            .take(PENDING_LOGINS_EXAMINED)
            .map(|(name, value)| {
                let created = self
                    .inner
                    .keys
                    .open(b"login", value)
                    .and_then(|b| serde_json::from_slice::<PendingLogin>(&b).ok())
                    .map_or((0, 0), |p| (p.t, p.o));
                (created, name)
            })
            .collect();
        if pending.len() < MAX_PENDING_LOGINS && pending.iter().all(|(t, _)| t.0 > 0) {
            return Vec::new();
        }
        // One entry per name (a browser may send a name twice), then oldest first: unreadable ones
        // (0), then by creation second and order.
        let mut names = std::collections::HashSet::new();
        pending.retain(|(_, name)| names.insert(*name));
        pending.sort_unstable();
        let readable = pending.iter().filter(|(t, _)| t.0 > 0).count();
        let excess = (readable + 1).saturating_sub(MAX_PENDING_LOGINS);
        let unreadable = pending.len() - readable;
        pending
            .iter()
            .take(unreadable + excess)
            .take(PENDING_LOGINS_CLEARED)
            .map(|(_, name)| self.expired_cookie(name))
            .collect()
    }

    /// `GET|POST {prefix}/{provider}/callback`: finishes the login and answers with a redirect to
    /// `next` (303) or an error page.
    ///
    /// A callback whose login is already finished (the back button after a login) sends a
    /// browser that holds a valid session on to the app instead of an error page.
    pub async fn callback(&self, provider: &str, req: &RequestView<'_>, body: &[u8]) -> AuthResponse {
        let done = self.complete_login(provider, req, body).await;
        let res = match &done.outcome {
            Ok(logged_in) => AuthResponse::redirect(303, logged_in.next.clone()),
            Err(Error::InvalidState(_)) if !req.prefers_json() && self.session(req).await.session.is_some() => {
                tracing::info!(provider, "callback of a finished login, with a valid session: back to the app");
                AuthResponse::redirect(303, "/")
            }
            Err(err) => self.error_response(err, !req.prefers_json()),
        };
        res.with_cookies(done.set_cookies)
    }

    /// Finishes a login from its callback request, like Authlib's `authorize_access_token()`: checks
    /// the pending login, the RFC 9207 `iss`, exchanges the code, validates the ID token and
    /// userinfo, and starts a new session. [`Auth::callback`] turns this into a response; call this
    /// directly to answer differently.
    pub async fn complete_login(&self, provider: &str, req: &RequestView<'_>, body: &[u8]) -> LoginCompletion {
        let params: Vec<(String, String)> = if req.method() == Method::Post {
            url::form_urlencoded::parse(body).into_owned().collect()
        } else {
            url::form_urlencoded::parse(req.query().unwrap_or_default().as_bytes()).into_owned().collect()
        };
        let refused = |err| LoginCompletion { outcome: Err(err), set_cookies: Vec::new() };
        let Some(state) = param(&params, "state") else {
            // A provider may answer an `error=` without the state (a cancelled login).
            return refused(match param(&params, "error") {
                Some(code) => Error::Authorization { code: sanitize_code(code) },
                None => Error::InvalidState("the callback has no state"),
            });
        };
        // The state names a cookie: only the characters we generate, before it goes near a header.
        if !(16..=MAX_STATE_LEN).contains(&state.len())
            || !state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return refused(Error::InvalidState("the callback's state is malformed"));
        }
        // Single use: the pending login's cookie goes, whatever happens next.
        let cookie_name = self.login_cookie(state);
        let mut set_cookies = vec![self.expired_cookie(&cookie_name)];
        let old_session = req.cookie(&self.inner.session_cookie);
        let outcome = match self.finish_login(provider, &params, state, req.cookie(&cookie_name)).await {
            Ok((next, session)) => match self.start_session(&session, old_session).await {
                Ok(cookie) => {
                    set_cookies.push(cookie);
                    Ok(LoggedIn { session, next })
                }
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        LoginCompletion { outcome, set_cookies }
    }

    async fn finish_login(
        &self,
        provider: &str,
        params: &[(String, String)],
        state: &str,
        sealed: Option<&str>,
    ) -> Result<(String, Session), Error> {
        let sealed = sealed.ok_or(Error::InvalidState("no pending login in this browser"))?;
        let pending: PendingLogin = self
            .inner
            .keys
            .open(b"login", sealed)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::InvalidState("the pending login cookie is unreadable"))?;
        if !constant_time_eq(&pending.s, state) {
            return Err(Error::InvalidState("state mismatch"));
        }
        let expires = pending.t.saturating_add(self.inner.login_ttl);
        if expires < now() {
            return Err(Error::InvalidState("the login has expired"));
        }
        if pending.p != provider {
            return Err(Error::InvalidState("the login was started with another provider"));
        }
        let p = self.provider(provider)?;
        if !self.inner.store.use_once(&format!("state:{state}"), expires).await? {
            return Err(Error::InvalidState("this login was already finished"));
        }
        // RFC 9207 mix-up defence. A plain OAuth 2.0 provider without metadata has no known issuer
        // to compare with; its per-provider redirect URI and the provider bound to the pending
        // login are the mix-up defence there.
        match param(params, "iss") {
            Some(iss) if !p.meta.issuer.is_empty() && iss != p.meta.issuer => return Err(Error::IssuerMismatch),
            None if p.meta.authorization_response_iss_parameter_supported => return Err(Error::IssuerMismatch),
            _ => {}
        }
        if let Some(code) = param(params, "error") {
            return Err(Error::Authorization { code: sanitize_code(code) });
        }
        let code = param(params, "code").filter(|c| !c.is_empty()).ok_or(Error::MissingCode)?;
        let tokens = self
            .token_request(
                &p,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &p.redirect_uri),
                    ("code_verifier", &pending.v),
                ],
            )
            .await?;
        let claims = self.identify(&p, &tokens, &pending.n).await?;
        let now = now();
        let expires_at = access_token_expiry(now, tokens.expires_in.as_ref());
        let session = Session {
            id: random_token(32),
            provider: p.config.name.clone(),
            claims,
            tokens: Tokens {
                access_token: Secret::new(tokens.access_token),
                refresh_token: tokens.refresh_token.map(Secret::new),
                id_token: tokens.id_token.map(Secret::new),
                expires_at,
                scope: tokens.scope,
            },
            created_at: now,
            expires_at: now.saturating_add(self.inner.session_ttl),
        };
        tracing::info!(provider = %p.config.name, "login finished");
        Ok((pending.r, session))
    }

    /// POSTs a form to a provider endpoint with the provider's client authentication.
    async fn post_authenticated(
        &self,
        p: &ProviderRuntime,
        url: &str,
        form: &[(&str, &str)],
        endpoint: &'static str,
    ) -> Result<crate::net::FormReply, Error> {
        let cfg = &p.config;
        let secret = cfg.client_secret.as_ref().map(|s| s.secret());
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let basic = match (cfg.client_auth, secret) {
            (ClientAuth::SecretBasic, Some(secret)) => Some((cfg.client_id.as_str(), secret)),
            (ClientAuth::SecretPost, Some(secret)) => {
                fields.push(("client_id", &cfg.client_id));
                fields.push(("client_secret", secret));
                None
            }
            _ => {
                fields.push(("client_id", &cfg.client_id));
                None
            }
        };
        self.inner.http.post_form(url, &fields, basic, endpoint).await
    }

    /// Calls the token endpoint with the provider's client authentication.
    async fn token_request(&self, p: &ProviderRuntime, form: &[(&str, &str)]) -> Result<TokenResponse, Error> {
        let reply = self.post_authenticated(p, &p.meta.token_endpoint, form, "token").await?;
        if !(200..300).contains(&reply.status) {
            let code = reply.body.get("error").and_then(Value::as_str).map(sanitize_code);
            return Err(match code {
                Some(code) if code == "invalid_grant" || code == "invalid_request" => Error::TokenRejected { code },
                // The provider refused our own credentials: the app's configuration, not the
                // provider's fault (RFC 6749 §5.2).
                Some(code) if code == "invalid_client" || code == "unauthorized_client" => {
                    client_rejected(&p.config, &code)
                }
                None if reply.status == 401 => client_rejected(&p.config, "HTTP 401"),
                Some(code) => Error::Provider { endpoint: "token", reason: format!("OAuth error {code}") },
                None => Error::Provider { endpoint: "token", reason: format!("HTTP status {}", reply.status) },
            });
        }
        let tokens: TokenResponse = serde_json::from_value(reply.body)
            .map_err(|_| Error::Provider { endpoint: "token", reason: "the token response is not valid".into() })?;
        if tokens.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(Error::Provider { endpoint: "token", reason: "the token type is not Bearer".into() });
        }
        Ok(tokens)
    }

    /// Who logged in: the validated ID token's claims completed by userinfo (OIDC), or the mapped
    /// userinfo (OAuth 2.0).
    async fn identify(&self, p: &ProviderRuntime, tokens: &TokenResponse, nonce: &str) -> Result<Claims, Error> {
        let http = &self.inner.http;
        let mut claims = match &tokens.id_token {
            Some(id_token) => self.validate_id_token(p, id_token, Some(nonce), Some(&tokens.access_token)).await?,
            None if p.config.is_oidc() => {
                return Err(Error::Provider { endpoint: "token", reason: "no id_token in the token response".into() });
            }
            None => Map::new(),
        };
        for protocol_claim in ["nonce", "at_hash", "c_hash"] {
            claims.remove(protocol_claim);
        }
        if let Some(userinfo) = &p.meta.userinfo_endpoint {
            let info = http.get_json(userinfo, Some(&tokens.access_token), "userinfo").await?;
            let mut info = match &p.config.profile {
                Profile::Oidc => info.as_object().cloned().unwrap_or_default(),
                Profile::Github => ClaimMapping { picture: "/avatar_url".into(), ..ClaimMapping::default() }
                    .apply(&info)
                    .ok_or(Error::Provider { endpoint: "userinfo", reason: "no user id".into() })?,
                Profile::Facebook => ClaimMapping { picture: "/picture/data/url".into(), ..ClaimMapping::default() }
                    .apply(&info)
                    .ok_or(Error::Provider { endpoint: "userinfo", reason: "no user id".into() })?,
                Profile::Custom(mapping) => {
                    mapping.apply(&info).ok_or(Error::Provider { endpoint: "userinfo", reason: "no user id".into() })?
                }
            };
            if let (Profile::Github, Some(emails_url)) = (&p.config.profile, &p.config.userinfo_extra) {
                info.remove("email");
                let emails = http.get_json(emails_url, Some(&tokens.access_token), "userinfo").await?;
                if let Some(email) = github_verified_primary_email(&emails) {
                    info.insert("email".into(), email);
                    info.insert("email_verified".into(), Value::Bool(true));
                }
            }
            // OIDC Core §5.3.2: the userinfo `sub` must be the ID token's.
            if let Some(sub) = claims.get("sub")
                && info.get("sub") != Some(sub)
            {
                return Err(Error::UserinfoSubjectMismatch);
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        Claims::from_value(Value::Object(claims))
            .ok_or(Error::Provider { endpoint: "userinfo", reason: "no subject for the user".into() })
    }

    /// Validates an ID token from the token endpoint by every rule of OIDC Core §3.1.3.7; returns
    /// its claims.
    async fn validate_id_token(
        &self,
        p: &ProviderRuntime,
        token: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<Map<String, Value>, Error> {
        let header = id_token::header(token, &p.algs)?;
        let claims = self.verify_jws(p, token, &header, Trust::TokenEndpoint).await?;
        let expected = Expected {
            issuer: &p.meta.issuer,
            issuer_template: p.config.multi_tenant_issuer,
            issuer_aliases: &p.config.issuer_aliases,
            client_id: &p.config.client_id,
            trusted_audiences: &p.config.trusted_audiences,
            nonce,
            access_token,
            max_age: p.config.max_age,
            acr_values: &p.config.acr_values,
            leeway: self.inner.leeway,
            now: now(),
        };
        id_token::check_claims(&claims, header.alg, &expected)?;
        Ok(claims)
    }

    /// Verifies a JWS from the provider: HS256 with the client secret when allowed, otherwise with
    /// the JWKS key for `kid` (refetched for an unknown `kid` as `trust` allows).
    async fn verify_jws(
        &self,
        p: &ProviderRuntime,
        token: &str,
        header: &id_token::Header,
        trust: Trust,
    ) -> Result<Map<String, Value>, Error> {
        let alg = header.alg;
        if alg == Algorithm::HS256 {
            let secret = p.config.client_secret.as_ref().ok_or(TokenError::AlgorithmNotAllowed("HS256".into()))?;
            return Ok(id_token::verify_signature(token, alg, &DecodingKey::from_secret(secret.secret().as_bytes()))?);
        }
        let jwks = p.jwks.as_ref().ok_or(Error::Provider { endpoint: "jwks", reason: "no jwks_uri".into() })?;
        let key = jwks.key_for(&self.inner.http, header.kid.as_deref(), alg, trust).await?;
        Ok(id_token::verify_signature(token, alg, key.decoding_key())?)
    }

    /// Stores a new session (new id: no fixation), drops the one the browser had, and returns the
    /// session cookie.
    async fn start_session(&self, session: &Session, old_cookie: Option<&str>) -> Result<String, Error> {
        if let Some(old) = old_cookie.and_then(|c| self.inner.keys.open(b"session", c))
            && let Ok(Some(old)) = self.inner.store.load(&old).await
        {
            self.end_session(&old).await;
        }
        let payload = self.inner.store.save(session).await?;
        let sealed = self.inner.keys.seal(b"session", &payload)?;
        let cookie = self.cookie(&self.inner.session_cookie, &sealed, session.expires_at.saturating_sub(now()), false);
        if cookie.len() > COOKIE_LIMIT {
            self.inner.store.delete(session).await?;
            return Err(Error::SessionTooLarge { size: cookie.len(), limit: COOKIE_LIMIT });
        }
        Ok(cookie)
    }

    async fn end_session(&self, session: &Session) {
        let key = session.id_key();
        if let Err(err) = self.inner.store.end_sessions(&key, now(), session.expires_at).await {
            tracing::error!(error = %err, "could not record the end of a session");
        }
        self.inner.cache.remove_session(&session.id);
        if let Err(err) = self.inner.store.delete(session).await {
            tracing::error!(error = %err, "could not delete a session from the store");
        }
    }

    /// Reads the request's session: decrypts the cookie, loads it from the store, checks expiry and
    /// logout. A stale or tampered cookie is cleared.
    pub async fn session(&self, req: &RequestView<'_>) -> SessionLookup {
        let Some(value) = req.cookie(&self.inner.session_cookie).filter(|v| !v.is_empty()) else {
            return SessionLookup::default();
        };
        let now = now();
        let cookie_only = self.inner.store.is_cookie_only();
        let cached = if cookie_only { self.inner.cache.get(value) } else { None };
        let was_cached = cached.is_some();
        // The store could not be asked: neither a session (it may have ended) nor a cleared
        // cookie (it may be fine): the guards answer 503.
        let unavailable = |err: &Error| {
            tracing::error!(error = %err, source = ?std::error::Error::source(err).map(ToString::to_string), "session store failed");
            SessionLookup { unavailable: true, ..SessionLookup::default() }
        };
        let mut reseal = None;
        let found = match cached {
            Some(hit) => Some(hit),
            None => match self.inner.keys.open_noting_key(b"session", value) {
                None => None,
                Some((payload, old_key)) => match self.inner.store.load(&payload).await {
                    Ok(found) => {
                        // Opened with an older key of the ring: sealed again under the newest.
                        if old_key {
                            reseal = Some(payload);
                        }
                        found.map(|s| {
                            let keys: Arc<[String]> = s.revocation_keys().into();
                            (Arc::new(s), keys)
                        })
                    }
                    Err(err) => return unavailable(&err),
                },
            },
        };
        let ended = match &found {
            Some((s, keys)) => match self.inner.store.ended_since(keys, s.created_at).await {
                Ok(ended) => ended,
                // Fail closed: a session that may have been logged out is not trusted.
                Err(err) => return unavailable(&err),
            },
            None => false,
        };
        match found {
            Some((s, keys)) if s.expires_at > now && !ended => {
                if cookie_only && !was_cached {
                    self.inner.cache.insert(value, s.clone(), keys);
                }
                let set_cookies = reseal
                    .and_then(|payload| self.inner.keys.seal(b"session", &payload).ok())
                    .map(|sealed| {
                        self.cookie(&self.inner.session_cookie, &sealed, s.expires_at.saturating_sub(now), false)
                    })
                    .into_iter()
                    .collect();
                SessionLookup { session: Some(s), set_cookies, unavailable: false }
            }
            _ => SessionLookup {
                session: None,
                set_cookies: vec![self.expired_cookie(&self.inner.session_cookie)],
                unavailable: false,
            },
        }
    }

    /// The answer to a request that needs a login and has no session: 503 when the session
    /// store could not be asked ([`SessionLookup::unavailable`]), else
    /// [`Auth::unauthenticated`]'s.
    pub fn no_session(&self, req: &RequestView<'_>, unavailable: bool) -> AuthResponse {
        if unavailable {
            let html = req.wants_html() || !req.prefers_json();
            return self.error_response(&Error::StoreUnavailable, html).with_header("retry-after", "5");
        }
        self.unauthenticated(req)
    }

    /// The answer to a request that needs a login and has none: a browser navigation is sent to the
    /// default provider's login with the current path as `next` (302); an API client gets 401 JSON
    /// with `WWW-Authenticate`.
    pub fn unauthenticated(&self, req: &RequestView<'_>) -> AuthResponse {
        let login = self.login_url(&req.path_and_query());
        if req.wants_html() && req.method() == Method::Get {
            return AuthResponse::redirect(302, login);
        }
        let realm = format!("Cookie realm=\"{}\", login=\"{login}\"", self.inner.base_url);
        let mut res =
            AuthResponse::error(&Error::Unauthenticated, req.wants_html()).with_header("www-authenticate", realm);
        if !req.wants_html() {
            res.body =
                serde_json::json!({ "error": "unauthenticated", "message": "You need to log in.", "login_url": login })
                    .to_string();
        }
        res
    }

    /// The 403 answer when a policy refuses a logged-in user.
    pub fn forbidden(&self, req: &RequestView<'_>, reason: &str) -> AuthResponse {
        AuthResponse::error(&Error::Forbidden(reason.to_owned()), req.wants_html())
    }

    /// Applies a [`Policy`] to the request's session: `Ok` with the session, or the response to
    /// send (302/401 without a session, 403 when the policy refuses).
    pub fn authorize<P: Policy>(
        &self,
        session: Option<&Arc<Session>>,
        req: &RequestView<'_>,
    ) -> Result<Arc<Session>, AuthResponse> {
        self.authorize_lookup::<P>(session, false, req)
    }

    /// [`Auth::authorize`] for a lookup that may have found the store unavailable (503 then).
    pub fn authorize_lookup<P: Policy>(
        &self,
        session: Option<&Arc<Session>>,
        unavailable: bool,
        req: &RequestView<'_>,
    ) -> Result<Arc<Session>, AuthResponse> {
        match session {
            None => Err(self.no_session(req, unavailable)),
            Some(s) if P::allows(s) => Ok(s.clone()),
            Some(_) => Err(self.forbidden(req, P::DESCRIPTION)),
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64, cross_site: bool) -> String {
        use cookie::{Cookie, SameSite};
        let same_site = if cross_site && self.inner.secure { SameSite::None } else { SameSite::Lax };
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.inner.secure)
            .same_site(same_site)
            .max_age(cookie::time::Duration::seconds(i64::try_from(max_age).unwrap_or(i64::MAX)))
            .build()
            .to_string()
    }

    fn expired_cookie(&self, name: &str) -> String {
        use cookie::{Cookie, SameSite};
        Cookie::build((name, ""))
            .path("/")
            .http_only(true)
            .secure(self.inner.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
            .build()
            .to_string()
    }
}

/// GitHub's `/user/emails`: the address that is both primary and verified, if any. An unverified
/// address is never reported as the user's e-mail.
fn github_verified_primary_email(emails: &Value) -> Option<Value> {
    emails
        .as_array()?
        .iter()
        .find(|e| {
            e.get("primary").and_then(Value::as_bool) == Some(true)
                && e.get("verified").and_then(Value::as_bool) == Some(true)
        })
        .and_then(|e| e.get("email"))
        .filter(|e| e.is_string())
        .cloned()
}

/// Whether a build may run with a random session key: debug builds may, release builds only when
/// told so ([`AuthBuilder::allow_random_session_key`]).
fn random_key_allowed(debug_build: bool, opted_in: bool) -> bool {
    debug_build || opted_in
}

/// A configured ID token algorithm, if this library can verify it: an asymmetric one (through the
/// JWKS) or HS256 with its explicit opt-in.
fn checked_id_token_alg(cfg: &Provider, name: &str) -> Result<Algorithm, Error> {
    let fail = |why: &str| Error::config(format!("provider `{}`: ID token algorithm `{name}`: {why}", cfg.name));
    let alg = name.parse::<Algorithm>().map_err(|_| fail("not a JWS algorithm"))?;
    match alg {
        Algorithm::HS256 if cfg.allow_hs256 => Ok(alg),
        Algorithm::HS256 => Err(fail("HMAC ID tokens need Provider::with_hs256_id_tokens() as well")),
        Algorithm::HS384 | Algorithm::HS512 => Err(fail("only HS256 is supported among the HMAC algorithms")),
        _ => Ok(alg),
    }
}

/// The error for a token endpoint that refused the app's client credentials: names the setting
/// to check.
fn client_rejected(cfg: &Provider, code: &str) -> Error {
    let setting = match (cfg.client_auth, &cfg.client_secret) {
        (ClientAuth::None, _) | (_, None) => {
            format!("{} (and whether the client is registered as public)", cfg.setting("CLIENT_ID", "the client id"))
        }
        _ => cfg.setting("CLIENT_SECRET", "the client secret"),
    };
    Error::ClientRejected { provider: cfg.name.clone(), setting, code: code.to_owned() }
}

/// When an access token expires: `now` plus `expires_in` (a number, or a numeric string as some
/// providers send), saturating; `None` when the provider did not say.
fn access_token_expiry(now: u64, expires_in: Option<&Value>) -> Option<u64> {
    let seconds = expires_in?.as_u64().or_else(|| expires_in?.as_str()?.trim().parse().ok())?;
    Some(now.saturating_add(seconds))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_builds_refuse_a_random_session_key_unless_told() {
        assert!(random_key_allowed(true, false), "debug: a random key, with a warning");
        assert!(!random_key_allowed(false, false), "release: refused");
        assert!(random_key_allowed(false, true), "release with allow_random_session_key()");
    }

    #[test]
    fn only_verifiable_id_token_algorithms_are_configurable() {
        let p = Provider::oidc("x", "https://id.example.com", "c").with_client_secret("s");
        assert_eq!(checked_id_token_alg(&p, "ES256").unwrap(), Algorithm::ES256);
        let err = checked_id_token_alg(&p, "HS256").unwrap_err();
        assert!(err.to_string().contains("with_hs256_id_tokens"), "{err}");
        assert_eq!(checked_id_token_alg(&p.clone().with_hs256_id_tokens(), "HS256").unwrap(), Algorithm::HS256);
        assert!(checked_id_token_alg(&p, "HS512").is_err());
        assert!(checked_id_token_alg(&p, "none").is_err());
    }

    #[test]
    fn access_token_expiry_saturates() {
        assert_eq!(access_token_expiry(100, Some(&Value::from(60))), Some(160));
        assert_eq!(access_token_expiry(100, Some(&Value::from("60"))), Some(160));
        assert_eq!(access_token_expiry(100, Some(&Value::from(u64::MAX))), Some(u64::MAX), "no overflow panic");
        assert_eq!(access_token_expiry(100, Some(&Value::from(-5))), None);
        assert_eq!(access_token_expiry(100, None), None);
    }

    #[test]
    fn github_email_must_be_primary_and_verified() {
        let emails = serde_json::json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "main@example.com", "primary": true, "verified": true},
        ]);
        assert_eq!(github_verified_primary_email(&emails), Some(Value::from("main@example.com")));
        let unverified = serde_json::json!([{"email": "main@example.com", "primary": true, "verified": false}]);
        assert_eq!(github_verified_primary_email(&unverified), None);
        assert_eq!(github_verified_primary_email(&serde_json::json!({"message": "Bad credentials"})), None);
    }
}
