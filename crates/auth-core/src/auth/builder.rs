//! [`AuthBuilder`]: the configuration of an [`Auth`], and the discovery of its providers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{Auth, Inner, PRESETS, ProviderRuntime, SESSION_CACHE_BYTES, SESSION_CACHE_ENTRIES};
use crate::Error;
use crate::crypto::KeyRing;
use crate::discovery::{ProviderMetadata, discover};
use crate::id_token;
use crate::jwks::{JwksCache, JwksConfig};
use crate::net::{HttpClient, HttpConfig};
use crate::provider::Provider;
use crate::session::{CookieStore, SessionStore};
use crate::state::SessionCache;

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
    refresh_leeway: Duration,
    bearer_cache_entries: usize,
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
    pub(super) fn new() -> Self {
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
            refresh_leeway: Duration::from_secs(60),
            bearer_cache_entries: super::bearer::BEARER_CACHE_ENTRIES,
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

    /// How long before its access token expires a session's tokens are refreshed (default
    /// 60 s), capped at a quarter of the token's lifetime: a 2-second token is refreshed in its
    /// last half second, not on every request. A request that reads a session whose token is
    /// due refreshes it before it is answered (when the session holds a refresh token).
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = auth_core::Auth::builder().refresh_leeway(Duration::from_secs(120));
    /// # let _ = builder;
    /// ```
    pub fn refresh_leeway(mut self, leeway: Duration) -> Self {
        self.refresh_leeway = leeway;
        self
    }

    /// How many verified bearer tokens are remembered, each until its `exp` (default 10,000),
    /// and, apart, how many opaque tokens the provider said are not active (as many, briefly).
    /// A remembered token costs about a microsecond instead of a signature check or an
    /// introspection call; past the bound, the tokens least likely to come back go first. `0`
    /// remembers none.
    ///
    /// ```
    /// let builder = auth_core::Auth::builder().bearer_cache(50_000);
    /// # let _ = builder;
    /// ```
    pub fn bearer_cache(mut self, entries: usize) -> Self {
        self.bearer_cache_entries = entries;
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
                store: crate::metrics::MeteredStore::wrap(self.store),
                http,
                session_ttl: self.session_ttl.as_secs(),
                login_ttl: self.login_ttl.as_secs(),
                leeway: self.leeway.as_secs(),
                cache: SessionCache::new(SESSION_CACHE_ENTRIES, SESSION_CACHE_BYTES),
                login_order: std::sync::atomic::AtomicU64::new(0),
                api_audience,
                bearer_provider,
                bearer_cache: super::bearer::BearerCache::new(self.bearer_cache_entries),
                refresh_leeway: self.refresh_leeway,
                // Longer than one refresh may take: the token request, a JWKS refetch for the
                // new ID token, userinfo.
                refresh_lock_ttl: self.http.timeout.saturating_mul(3).saturating_add(Duration::from_secs(5)),
                flights: super::refresh::Flights::default(),
            }),
        })
    }
}

/// A registered provider: its configuration, and its discovered state once discovery succeeded.
pub(super) struct ProviderSlot {
    pub(super) name: String,
    pub(super) config: Provider,
    pub(super) redirect_uri: String,
    /// The configured algorithm of the provider's ID tokens (`id_token_signed_response_alg`).
    pub(super) id_token_alg: Option<Algorithm>,
    pub(super) jwks: JwksConfig,
    pub(super) ready: std::sync::RwLock<Option<Arc<ProviderRuntime>>>,
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
            jwks: meta.jwks_uri.clone().map(|uri| JwksCache::new(uri, self.jwks, cfg.name.clone())),
            meta,
            algs,
            logout_algs,
            redirect_uri: self.redirect_uri.clone(),
        };
        *self.ready.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(runtime));
    }

    /// The provider after discovery, or 503 while discovery has not succeeded yet.
    pub(super) fn runtime(&self) -> Result<Arc<ProviderRuntime>, Error> {
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
}
