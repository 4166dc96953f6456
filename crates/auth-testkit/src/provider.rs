//! The provider handle and its builder.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::fault::Fault;
use crate::keys::{SigningAlg, SigningKey};
use crate::model::{TestClient, TestUser};
use crate::server::{self, Config, Counters, Grant, Shared, State, TokenGrant};
use crate::util::{now, random_token};

/// The id of the client every provider has unless replaced.
pub const DEFAULT_CLIENT_ID: &str = "test-client";
/// The secret of the default client.
pub const DEFAULT_CLIENT_SECRET: &str = "test-secret";

/// A running in-process OpenID Provider, and the handle to control it.
///
/// The provider serves HTTP on `127.0.0.1` (a random port unless
/// [`bind`](TestProviderBuilder::bind) says otherwise) from a task on the current Tokio runtime.
/// The handle is cheap to clone; the server stops when the last clone is dropped, or at
/// [`shutdown`](Self::shutdown).
///
/// Endpoints, all under [`issuer`](Self::issuer): `/.well-known/openid-configuration`, `/jwks`,
/// `/authorize` (GET and POST), `/token`, `/userinfo`, `/end_session`, `/revoke` and
/// `/introspect`.
///
/// Outside [dev mode](TestProviderBuilder::dev_mode), `/authorize` approves at once, as the user
/// set by [`set_user`](Self::set_user) (or the user whose `sub` or e-mail a `login_hint` names),
/// so a test needs no browser. The ID token carries `iss`, `sub`, `aud`, `azp`, `exp`, `iat`,
/// `auth_time`, `sid`, `at_hash`, `nonce` (when sent), `acr` (when `acr_values` was sent), and
/// the user's claims by scope.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_testkit::TestProvider;
///
/// let op = TestProvider::start().await?;
/// let doc: serde_json::Value =
///     reqwest::get(format!("{}/.well-known/openid-configuration", op.issuer()))
///         .await?
///         .json()
///         .await?;
/// assert_eq!(doc["issuer"], op.issuer());
/// assert_eq!(doc["token_endpoint"], format!("{}/token", op.issuer()));
/// assert_eq!(op.client_id(), "test-client");
/// # Ok(())
/// # }
/// ```
///
/// # Caveats
///
/// - Tokens, codes and faults live in memory; nothing persists.
/// - Access tokens are opaque; `/userinfo` and `/introspect` know them.
/// - `/jwks` answers with `Cache-Control: public, max-age=300`, as real providers send a
///   max-age; a client that honours it still has to refetch on an unknown `kid`.
/// - Providers in one process share their default private key (it is generated once, for speed),
///   each under its own `kid`. Keys from [`rotate_keys`](Self::rotate_keys) are fresh.
/// - `/end_session` keeps no session state; it checks the client and the redirect URI, and
///   records the call.
#[derive(Clone)]
pub struct TestProvider {
    shared: Arc<Shared>,
    _guard: Arc<ShutdownOnDrop>,
}

/// Stops the server when the last [`TestProvider`] clone goes away.
struct ShutdownOnDrop(Arc<Shared>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown.send_replace(true);
    }
}

impl fmt::Debug for TestProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestProvider")
            .field("issuer", &self.shared.issuer)
            .field("clients", &self.shared.config.clients)
            .field("signing_alg", &self.shared.config.alg)
            .field("dev_mode", &self.shared.config.dev_mode)
            .finish_non_exhaustive()
    }
}

impl TestProvider {
    /// Starts a provider with the defaults on a random port of `127.0.0.1`.
    ///
    /// # Errors
    ///
    /// If the listener cannot be bound.
    pub async fn start() -> io::Result<TestProvider> {
        Self::builder().start().await
    }

    /// A builder for a provider with other clients, keys, users or options.
    pub fn builder() -> TestProviderBuilder {
        TestProviderBuilder::default()
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The discovery URL, `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer)
    }

    /// The default client's id, `test-client`.
    pub fn client_id(&self) -> &str {
        &self.shared.config.default_client_id
    }

    /// The default client's secret (`test-secret` unless the default client was replaced; an
    /// empty string if it was replaced by a public client).
    pub fn client_secret(&self) -> &str {
        self.shared.client(&self.shared.config.default_client_id).and_then(|c| c.secret.as_deref()).unwrap_or_default()
    }

    /// The ID token signing algorithm.
    pub fn signing_alg(&self) -> SigningAlg {
        self.shared.config.alg
    }

    /// Sets who the next auto-approved login is (in dev mode, also lists the user on the page).
    pub fn set_user(&self, user: TestUser) {
        let mut st = self.shared.lock();
        st.user = user;
        st.user_explicit = true;
    }

    /// The user the next auto-approved login will be.
    pub fn user(&self) -> TestUser {
        self.shared.lock().user.clone()
    }

    /// Adds a fault. It stays until [`clear_faults`](Self::clear_faults); injecting the same
    /// fault twice has no further effect.
    pub fn inject(&self, fault: Fault) {
        let mut st = self.shared.lock();
        if !st.faults.contains(&fault) {
            st.faults.push(fault);
        }
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// The active faults, in the order they were injected.
    pub fn faults(&self) -> Vec<Fault> {
        self.shared.lock().faults.clone()
    }

    /// Replaces the signing key with a freshly generated one under a new `kid`. The new key signs
    /// from now on and is the only key in the JWKS: tokens signed before no longer verify.
    ///
    /// Generating an RSA key takes a moment; this blocks the calling thread meanwhile.
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (an internal failure of the library).
    pub fn rotate_keys(&self) {
        let key = SigningKey::generate(self.shared.config.alg).expect("generate a signing key");
        self.shared.lock().key = Arc::new(key);
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        self.shared.lock().key.kid().to_owned()
    }

    /// The JWK Set the provider publishes now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let jwks = op.jwks();
    /// assert_eq!(jwks["keys"][0]["kid"], op.kid());
    /// assert_eq!(jwks["keys"][0]["alg"], "RS256");
    /// # Ok(())
    /// # }
    /// ```
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.shared.lock().key.jwk()] })
    }

    /// How many times discovery was fetched.
    pub fn discovery_requests(&self) -> usize {
        self.shared.counters.discovery.load(Ordering::SeqCst)
    }

    /// How many times `/jwks` was fetched (to test caching and single-flight fetching).
    pub fn jwks_requests(&self) -> usize {
        self.shared.counters.jwks.load(Ordering::SeqCst)
    }

    /// How many authorization requests arrived (valid or not).
    pub fn authorize_requests(&self) -> usize {
        self.shared.counters.authorize.load(Ordering::SeqCst)
    }

    /// How many token requests arrived (valid or not).
    pub fn token_requests(&self) -> usize {
        self.shared.counters.token.load(Ordering::SeqCst)
    }

    /// How many UserInfo requests arrived.
    pub fn userinfo_requests(&self) -> usize {
        self.shared.counters.userinfo.load(Ordering::SeqCst)
    }

    /// How many times `/end_session` was called.
    pub fn end_session_requests(&self) -> usize {
        self.shared.counters.end_session.load(Ordering::SeqCst)
    }

    /// How many revocation requests arrived.
    pub fn revoke_requests(&self) -> usize {
        self.shared.counters.revoke.load(Ordering::SeqCst)
    }

    /// How many introspection requests arrived.
    pub fn introspect_requests(&self) -> usize {
        self.shared.counters.introspect.load(Ordering::SeqCst)
    }

    /// The parameters of the last authorization request, in order, as received (to assert what
    /// the client sent: `state`, `nonce`, `code_challenge`, `prompt` …).
    pub fn last_authorize_params(&self) -> Option<Vec<(String, String)>> {
        self.shared.lock().last_authorize_params.clone()
    }

    /// The value of one parameter of the last authorization request.
    pub fn last_authorize_param(&self, name: &str) -> Option<String> {
        let st = self.shared.lock();
        st.last_authorize_params.as_ref()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// The parameters of the last `/end_session` request.
    pub fn last_end_session_params(&self) -> Option<Vec<(String, String)>> {
        self.shared.lock().last_end_session_params.clone()
    }

    /// The `sid` of the last login (to build a back-channel logout token for that session).
    pub fn last_sid(&self) -> Option<String> {
        self.shared.lock().last_sid.clone()
    }

    /// Whether `token` (an access or refresh token) was revoked, at `/revoke`, by rotation, or
    /// by a replayed code.
    pub fn is_revoked(&self, token: &str) -> bool {
        let st = self.shared.lock();
        st.access_tokens.get(token).or_else(|| st.refresh_tokens.get(token)).is_some_and(|t| t.revoked)
    }

    /// Signs arbitrary claims with the current key (header `typ: JWT`, `alg`, `kid`), for
    /// back-channel logout tokens, JWT access tokens and unit tests. Nothing is added.
    ///
    /// # Panics
    ///
    /// If signing fails, which the keys this crate generates do not.
    pub fn sign_jwt(&self, claims: &Value) -> String {
        self.sign_typed(claims, "JWT")
    }

    fn sign_typed(&self, claims: &Value, typ: &str) -> String {
        let key = Arc::clone(&self.shared.lock().key);
        key.sign(claims, typ, true).expect("sign with a generated key")
    }

    /// A valid back-channel logout token (OIDC Back-Channel Logout 1.0 §2.4) for the default
    /// client: `iss`, `aud`, `iat`, `exp` (two minutes), a fresh `jti`, the logout `events`
    /// member, `sub` and/or `sid` as given; header `typ: logout+jwt`. Change or remove claims
    /// with [`sign_jwt`](Self::sign_jwt) to build invalid ones.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let token = op.logout_token(Some("alice"), None);
    /// assert_eq!(token.split('.').count(), 3);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`sign_jwt`](Self::sign_jwt).
    pub fn logout_token(&self, sub: Option<&str>, sid: Option<&str>) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.shared.issuer,
            "aud": self.client_id(),
            "iat": now,
            "exp": now + 120,
            "jti": random_token(16),
            "events": { server::BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        if let Some(sub) = sub {
            claims["sub"] = sub.into();
        }
        if let Some(sid) = sid {
            claims["sid"] = sid.into();
        }
        self.sign_typed(&claims, "logout+jwt")
    }

    /// Issues an opaque access token for the current user and the default client, as if after a
    /// login with `scope`: `/userinfo` and `/introspect` accept it. For tests of APIs that take
    /// bearer tokens.
    pub fn mint_access_token(&self, scope: &str) -> String {
        let mut st = self.shared.lock();
        let token = random_token(32);
        let grant = Grant {
            client_id: self.shared.config.default_client_id.clone(),
            user: st.user.clone(),
            scope: scope.to_owned(),
            sid: random_token(16),
            auth_time: now(),
            acr: None,
        };
        st.access_tokens.insert(
            token.clone(),
            TokenGrant { grant, expires_at: now() + self.shared.config.token_ttl.as_secs(), revoked: false },
        );
        token
    }

    /// A signed JWT access token (RFC 9068: header `typ: at+jwt`) for the current user:
    /// `iss`, `sub`, `aud` (as given), `client_id` (the default client), `scope`, `iat`, `exp`,
    /// `jti`.
    ///
    /// # Panics
    ///
    /// As [`sign_jwt`](Self::sign_jwt).
    pub fn mint_jwt_access_token(&self, audience: &str, scope: &str) -> String {
        let now = now();
        let claims = json!({
            "iss": self.shared.issuer,
            "sub": self.user().sub,
            "aud": audience,
            "client_id": self.client_id(),
            "scope": scope,
            "iat": now,
            "exp": now + self.shared.config.token_ttl.as_secs(),
            "jti": random_token(16),
        });
        self.sign_typed(&claims, "at+jwt")
    }

    /// Stops the server now (also for the other clones of this handle). Requests in flight,
    /// including one held by [`Fault::TokenEndpointHang`], finish or fail; new connections are
    /// refused.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// Configures and starts a [`TestProvider`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use auth_testkit::{SigningAlg, TestClient, TestProvider, TestUser};
///
/// let op = TestProvider::builder()
///     .client(TestClient::public("spa"))
///     .signing_alg(SigningAlg::ES256)
///     .user(TestUser::new("bob"))
///     .token_ttl(Duration::from_secs(60))
///     .start()
///     .await?;
/// assert_eq!(op.user().sub, "bob");
/// assert_eq!(op.jwks()["keys"][0]["crv"], "P-256");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TestProviderBuilder {
    clients: Vec<TestClient>,
    alg: SigningAlg,
    dev_mode: bool,
    user: Option<TestUser>,
    users: Vec<TestUser>,
    iss_parameter: bool,
    token_ttl: Duration,
    bind: Option<SocketAddr>,
}

impl Default for TestProviderBuilder {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            alg: SigningAlg::default(),
            dev_mode: false,
            user: None,
            users: Vec::new(),
            iss_parameter: true,
            token_ttl: Duration::from_secs(3600),
            bind: None,
        }
    }
}

impl TestProviderBuilder {
    /// Registers a client. One with the id `test-client` replaces the default client.
    pub fn client(mut self, client: TestClient) -> Self {
        self.clients.push(client);
        self
    }

    /// The ID token signing algorithm (default RS256).
    pub fn signing_alg(mut self, alg: SigningAlg) -> Self {
        self.alg = alg;
        self
    }

    /// Dev mode: `/authorize` shows a page with one button per user and a Deny button, instead
    /// of approving at once (default off). For running example apps by hand.
    pub fn dev_mode(mut self, on: bool) -> Self {
        self.dev_mode = on;
        self
    }

    /// The user logged in by auto-approval (default `TestUser::new("alice")`).
    pub fn user(mut self, user: TestUser) -> Self {
        self.user = Some(user);
        self
    }

    /// The users listed on the dev-mode page (and matched by `login_hint`).
    pub fn users(mut self, users: Vec<TestUser>) -> Self {
        self.users = users;
        self
    }

    /// Whether the provider sends `iss` in authorization responses and advertises
    /// `authorization_response_iss_parameter_supported` (RFC 9207; default true).
    pub fn iss_parameter(mut self, on: bool) -> Self {
        self.iss_parameter = on;
        self
    }

    /// Lifetime of access tokens and ID tokens (default one hour).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a random port). When it is an
    /// unspecified address (`0.0.0.0`), the issuer still names the loopback address.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Starts the provider on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for an invalid configuration (two clients with one id, a
    /// `client_secret_*` client without a secret); otherwise if the listener cannot be bound.
    pub async fn start(self) -> io::Result<TestProvider> {
        let mut clients = self.clients;
        if !clients.iter().any(|c| c.id == DEFAULT_CLIENT_ID) {
            clients.insert(0, TestClient::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET));
        }
        for (i, client) in clients.iter().enumerate() {
            if clients[..i].iter().any(|c| c.id == client.id) {
                return Err(invalid(format!("client {:?} is registered twice", client.id)));
            }
            if client.auth_method != crate::ClientAuthMethod::None && client.secret.is_none() {
                return Err(invalid(format!("client {:?} uses {} but has no secret", client.id, client.auth_method)));
            }
        }

        let alg = self.alg;
        let key = tokio::task::spawn_blocking(move || SigningKey::shared(alg)).await.map_err(io::Error::other)??;

        let listener = TcpListener::bind(self.bind.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let issuer = format!("http://{addr}");

        let user_explicit = self.user.is_some();
        let user = self.user.unwrap_or_default();
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            issuer,
            config: Config {
                clients,
                default_client_id: DEFAULT_CLIENT_ID.to_owned(),
                dev_mode: self.dev_mode,
                iss_parameter: self.iss_parameter,
                token_ttl: self.token_ttl,
                alg,
                users: self.users,
            },
            state: Mutex::new(State::new(user, user_explicit, key)),
            counters: Counters::default(),
            shutdown,
        });

        let app = server::router(Arc::clone(&shared));
        let signal = Arc::clone(&shared);
        tokio::spawn(async move {
            let served =
                axum::serve(listener, app).with_graceful_shutdown(async move { signal.shutdown_signal().await }).await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "auth-testkit provider stopped");
            }
        });
        tracing::debug!(issuer = %shared.issuer, "auth-testkit provider started");
        Ok(TestProvider { _guard: Arc::new(ShutdownOnDrop(Arc::clone(&shared))), shared })
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
