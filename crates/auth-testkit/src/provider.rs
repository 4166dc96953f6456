//! The provider handle and its builder.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::backchannel;
use crate::fault::{Fault, LogoutTokenFault};
use crate::keys::{KeyError, SigningAlg, SigningKey};
use crate::model::{ClientAuthMethod, TestClient, TestUser};
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
/// `/authorize` (GET and POST), `/token`, `/userinfo`, `/end_session`, `/revoke`,
/// `/introspect` and `/par` (pushed authorization requests, RFC 9126; see
/// [`par_requests`](Self::par_requests)). `/token` and `/userinfo` take DPoP proofs (RFC 9449;
/// see [`dpop_proofs_accepted`](Self::dpop_proofs_accepted)). The provider also acts as the sender of OpenID Connect Back-Channel Logout 1.0:
/// [`logout_token`](Self::logout_token), [`logout_token_with`](Self::logout_token_with) and
/// [`send_backchannel_logout`](Self::send_backchannel_logout) by hand, and a POST to a client's
/// [back-channel logout URI](TestClient::with_backchannel_logout_uri) when `/end_session` ends
/// one of its sessions.
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
/// - Sessions are no more than a record of each login through `/authorize` (client, `sub`,
///   `sid`), kept for `/end_session` to end and announce by back-channel logout; the provider
///   sets no cookie, and ending a session revokes no token.
/// - `/jwks` publishes, beside the ID-token key, a key of the other family (ES256 beside RS256
///   and PS256, RS256 beside ES256) for [`LogoutTokenFault::OtherAlgorithm`].
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

    /// The development provider the examples start when no real one is configured: development
    /// mode (a page to pick a user), with `alice` and `bob` (whose `groups` claim holds `admin`).
    /// In development mode the provider also answers `GET /dev/access-token?audience=…&scope=…`
    /// (and `&user=bob`) with a JWT access token (RFC 9068) for the first user, or the one named,
    /// so that an app's bearer-protected routes can be tried with `curl` (see `DevHomePage`, with
    /// the `auth-core` feature).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let op = auth_testkit::TestProvider::start_dev().await?;
    /// assert!(op.issuer().starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub async fn start_dev() -> io::Result<TestProvider> {
        TestProvider::builder()
            .dev_mode(true)
            .users(vec![TestUser::new("alice"), TestUser::new("bob").with_claim("groups", json!(["admin"]))])
            .start()
            .await
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
    /// from now on and is the only key for the ID-token algorithm in the JWKS: tokens signed
    /// before no longer verify. (The key of the other family, published for
    /// [`LogoutTokenFault::OtherAlgorithm`], stays.) The replaced key is kept, unpublished, for
    /// [`Fault::IdTokenRetiredKey`].
    ///
    /// Generating an RSA key takes a moment; this blocks the calling thread meanwhile.
    ///
    /// # Panics
    ///
    /// If aws-lc-rs cannot generate a key (an internal failure of the library).
    pub fn rotate_keys(&self) {
        let key = SigningKey::generate(self.shared.config.alg).expect("generate a signing key");
        let mut st = self.shared.lock();
        let old = std::mem::replace(&mut st.key, Arc::new(key));
        st.retired.get_or_insert(old);
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        self.shared.lock().key.kid().to_owned()
    }

    /// The JWK Set the provider publishes now: first the ID-token key (`kid` [`kid`](Self::kid),
    /// `alg` [`signing_alg`](Self::signing_alg)), then a key of the other family, which signs
    /// only [`LogoutTokenFault::OtherAlgorithm`] tokens. Each key has `kid`, `use: sig` and
    /// `alg`; the second one never suits the ID-token algorithm (another `kty`), so a token
    /// without a `kid` still has exactly one suitable key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let jwks = op.jwks();
    /// assert_eq!(jwks["keys"][0]["kid"], op.kid());
    /// assert_eq!((jwks["keys"][0]["kty"].as_str(), jwks["keys"][0]["alg"].as_str()), (Some("RSA"), Some("RS256")));
    /// assert_eq!((jwks["keys"][1]["kty"].as_str(), jwks["keys"][1]["alg"].as_str()), (Some("EC"), Some("ES256")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn jwks(&self) -> Value {
        self.shared.lock().jwks()
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

    /// How many token requests with `grant_type=refresh_token` arrived (valid or not, and
    /// whatever fault answered them).
    pub fn refresh_requests(&self) -> usize {
        self.shared.counters.refresh.load(Ordering::SeqCst)
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

    /// How many requests arrived at the pushed authorization request endpoint `/par` (RFC 9126),
    /// valid or not, and whatever fault answered them.
    ///
    /// `/par` authenticates the client as `/token` does (every method, `none` for a public
    /// client), validates the authorization request in its body as `/authorize` does (a
    /// `request_uri` in it is refused; errors are `400` with an OAuth error JSON, never a
    /// redirect) and answers `201` with `{"request_uri": "urn:ietf:params:oauth:request_uri:…",
    /// "expires_in": 60}`. `/authorize?client_id=…&request_uri=…` then runs that request: once,
    /// within the 60 seconds, for the same `client_id`; its other parameters are ignored (RFC
    /// 9126 §4). At most 10,000 pushed requests wait at a time; beyond that `/par` answers `503`
    /// until some expire or are used. See also
    /// [`TestProviderBuilder::require_pushed_authorization_requests`] and
    /// [`Fault::ParEndpointDown`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_testkit::{TestClient, TestProvider};
    ///
    /// let op = TestProvider::builder().client(TestClient::public("spa")).start().await?;
    /// let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    /// let pushed: serde_json::Value = http
    ///     .post(format!("{}/par", op.issuer()))
    ///     .form(&[
    ///         ("client_id", "spa"),
    ///         ("response_type", "code"),
    ///         ("redirect_uri", "http://127.0.0.1:9/callback"),
    ///         ("scope", "openid"),
    ///         ("state", "s1"),
    ///         ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    ///         ("code_challenge_method", "S256"),
    ///     ])
    ///     .send()
    ///     .await?
    ///     .json()
    ///     .await?;
    /// assert_eq!(pushed["expires_in"], 60);
    /// let request_uri = pushed["request_uri"].as_str().expect("request_uri");
    ///
    /// let login = http
    ///     .get(format!("{}/authorize", op.issuer()))
    ///     .query(&[("client_id", "spa"), ("request_uri", request_uri)])
    ///     .send()
    ///     .await?;
    /// assert_eq!(login.status(), 302);
    /// assert!(login.headers()["location"].to_str()?.contains("state=s1"));
    /// assert_eq!(op.par_requests(), 1);
    /// assert_eq!(op.last_par_param("state").as_deref(), Some("s1"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn par_requests(&self) -> usize {
        self.shared.counters.par.load(Ordering::SeqCst)
    }

    /// The authorization request parameters of the last pushed authorization request `/par`
    /// accepted, in order (without the client authentication parameters `client_secret`,
    /// `client_assertion` and `client_assertion_type`).
    pub fn last_par_params(&self) -> Option<Vec<(String, String)>> {
        self.shared.lock().last_par_params.clone()
    }

    /// The value of one parameter of the last accepted pushed authorization request.
    pub fn last_par_param(&self, name: &str) -> Option<String> {
        let st = self.shared.lock();
        st.last_par_params.as_ref()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// How many JWT client assertions (`private_key_jwt`, `client_secret_jwt`, RFC 7523) the
    /// provider accepted, at `/token`, `/introspect`, `/revoke` and `/par`: proof that a client
    /// really authenticated with one.
    ///
    /// A client assertion is a form body with
    /// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
    /// `client_assertion=<JWT>` (a `client_id` beside them must be the assertion's). It is
    /// accepted when
    ///
    /// - `iss` and `sub` are both the id of a client registered for that method
    ///   ([`ClientAuthMethod::PrivateKeyJwt`](crate::ClientAuthMethod::PrivateKeyJwt) or
    ///   [`ClientAuthMethod::SecretJwt`](crate::ClientAuthMethod::SecretJwt));
    /// - the signature verifies: for `private_key_jwt` by RS256, PS256, ES256 or EdDSA with a
    ///   [registered key](TestClient::with_jwk) (the one of the header's `kid`, or without a
    ///   `kid` any that suits the `alg`); for `client_secret_jwt` by HS256, HS384 or HS512 keyed
    ///   with the client secret;
    /// - `aud` (a string or an array) contains the issuer or the URL of the endpoint called
    ///   (only `{issuer}/token` under [`Fault::AssertionAudienceTokenEndpointOnly`]);
    /// - `exp` is after the provider's clock and at most 10 minutes ahead of it; `iat` and `nbf`,
    ///   if present, at most 30 seconds ahead ([`Fault::ClockSkew`] moves the clock);
    /// - `jti` is present and was not accepted before from this client while unexpired. The
    ///   provider remembers up to 10,000 unexpired `jti`s and refuses new assertions while full.
    ///
    /// Every failure is `401 invalid_client` with an `error_description` naming the check that
    /// failed (`wrong aud …`, `replayed jti …`, `… expired …`, `bad signature …`, `unknown kid
    /// …`, `wrong iss …`). See [`TestClientKey`](crate::TestClientKey) for an example.
    pub fn client_assertions_accepted(&self) -> usize {
        self.shared.counters.assertions_accepted.load(Ordering::SeqCst)
    }

    /// How many DPoP proofs (RFC 9449) the provider accepted, at `/token` and `/userinfo`: proof
    /// that a client really sent one. A proof counts once it passed every check (whatever
    /// became of the request after).
    ///
    /// A `DPoP` header on a token request (`authorization_code` or `refresh_token` grant) must
    /// be exactly one proof: a JWS with header `typ` `dpop+jwt`, `alg` ES256, RS256, PS256 or
    /// EdDSA (never `none` or HS*), and a public `jwk` (no private members) that verifies the
    /// signature; claims `htm` `POST`, `htu` the token endpoint URL (compared without query and
    /// fragment), `iat` within 60 s of the provider's clock ([`Fault::ClockSkew`] moves it),
    /// a `jti` not seen from that key before (up to 10,000 remembered; new proofs are refused
    /// while full), and a valid `nonce` when [nonces are
    /// required](TestProviderBuilder::require_dpop_nonce). A refused proof gets
    /// `400 {"error":"invalid_dpop_proof","error_description":…}` naming the check.
    ///
    /// Then the tokens are bound to the key: the answer says `"token_type": "DPoP"`, and
    /// introspection of the access token says `"token_type": "DPoP"` and `"cnf": {"jkt": …}`
    /// (the key's RFC 7638 thumbprint). The refresh token is bound too, for confidential
    /// clients as well (stricter than RFC 9449 §5 asks): refreshing it needs a proof by the same
    /// key, else `400 invalid_dpop_proof`. A refresh with a proof binds the new tokens to the
    /// proof's key even when the old ones were bearer tokens.
    ///
    /// At `/userinfo`, a bound token goes as `Authorization: DPoP <token>` with a proof (`htm`
    /// the request's method, `htu` the UserInfo URL, `ath` the base64url SHA-256 of the token,
    /// by the bound key). Refusals are `401` with `WWW-Authenticate: DPoP error="…"`:
    /// `invalid_token` for a bound token sent as `Bearer` (or an unknown one), `invalid_dpop_proof`
    /// for a missing or bad proof or another key, `use_dpop_nonce` for a missing nonce.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_testkit::{TestDpopKey, TestProvider};
    ///
    /// let op = TestProvider::start().await?;
    /// let key = TestDpopKey::generate();
    /// let token_endpoint = format!("{}/token", op.issuer());
    /// let answer = reqwest::Client::new()
    ///     .post(&token_endpoint)
    ///     .header("DPoP", key.proof("GET", &token_endpoint, None, None))
    ///     .basic_auth(op.client_id(), Some(op.client_secret()))
    ///     .form(&[("grant_type", "refresh_token"), ("refresh_token", "unknown")])
    ///     .send()
    ///     .await?;
    /// assert_eq!(answer.status(), 400);
    /// let body: serde_json::Value = answer.json().await?;
    /// assert_eq!(body["error"], "invalid_dpop_proof");
    /// assert!(body["error_description"].as_str().unwrap().contains("htm"));
    /// assert_eq!(op.dpop_proofs_accepted(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn dpop_proofs_accepted(&self) -> usize {
        self.shared.counters.dpop_accepted.load(Ordering::SeqCst)
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

    /// [`sign_jwt`](Self::sign_jwt) with another header `typ` (`logout+jwt`, `at+jwt`, …).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use base64::Engine as _;
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let jwt = op.sign_jwt_with_type(&serde_json::json!({"sub": "alice"}), "at+jwt");
    /// let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap();
    /// assert!(String::from_utf8(header).unwrap().contains("at+jwt"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`sign_jwt`](Self::sign_jwt).
    pub fn sign_jwt_with_type(&self, claims: &Value, typ: &str) -> String {
        self.sign_typed(claims, typ)
    }

    fn sign_typed(&self, claims: &Value, typ: &str) -> String {
        let key = Arc::clone(&self.shared.lock().key);
        key.sign(claims, typ, true).expect("sign with a generated key")
    }

    /// A valid back-channel logout token (OIDC Back-Channel Logout 1.0 §2.4) for the default
    /// client: `iss`, `aud`, `iat`, `exp` (two minutes), a fresh `jti`, the logout `events`
    /// member, `sub` and/or `sid` as given; header `typ: logout+jwt`, `alg` and `kid` of the
    /// current ID-token key. The same as [`logout_token_with`](Self::logout_token_with) without a
    /// fault. Change or remove claims with [`sign_jwt`](Self::sign_jwt) to build other invalid
    /// ones.
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
        self.logout_token_with(sub, sid, None)
    }

    /// A back-channel logout token for the default client, valid as
    /// [`logout_token`](Self::logout_token)'s with `fault` `None`, otherwise with the one defect
    /// `fault` names (see [`LogoutTokenFault`]). Every call makes a new `jti`.
    ///
    /// Passing neither `sub` nor `sid` makes a token without either, which is itself invalid
    /// (the same defect as [`LogoutTokenFault::NoSubNoSid`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use auth_testkit::{LogoutTokenFault, TestProvider};
    /// use base64::Engine as _;
    ///
    /// let claims = |jwt: &str| -> serde_json::Value {
    ///     let payload = jwt.split('.').nth(1).expect("a JWT");
    ///     let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    ///     serde_json::from_slice(&bytes).expect("JSON")
    /// };
    /// let op = TestProvider::start().await?;
    ///
    /// let valid = claims(&op.logout_token_with(Some("alice"), Some("sid-1"), None));
    /// assert_eq!(valid["iss"], op.issuer());
    /// assert_eq!(valid["aud"], op.client_id());
    /// assert_eq!((valid["sub"].as_str(), valid["sid"].as_str()), (Some("alice"), Some("sid-1")));
    /// assert!(valid["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    ///
    /// let expired = claims(&op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::Expired)));
    /// assert!(expired["exp"].as_u64() < valid["iat"].as_u64());
    ///
    /// let anonymous = claims(&op.logout_token_with(Some("alice"), Some("sid-1"), Some(LogoutTokenFault::NoSubNoSid)));
    /// assert!(anonymous.get("sub").is_none() && anonymous.get("sid").is_none());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`sign_jwt`](Self::sign_jwt).
    pub fn logout_token_with(&self, sub: Option<&str>, sid: Option<&str>, fault: Option<LogoutTokenFault>) -> String {
        backchannel::logout_token(&self.shared, self.client_id(), sub, sid, fault).expect("sign with a generated key")
    }

    /// POSTs `logout_token=<token>`, form-encoded, to a client's back-channel logout endpoint
    /// `url`, as a provider does (OIDC Back-Channel Logout 1.0 §2.5), and returns the status and
    /// body of the answer. Redirects are not followed; the request times out after ten seconds.
    ///
    /// The request counts in [`backchannel_requests`](Self::backchannel_requests) and is
    /// recorded for [`last_backchannel_response`](Self::last_backchannel_response).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_testkit::TestProvider;
    /// use axum::http::StatusCode;
    /// use axum::routing::post;
    ///
    /// // A stand-in for a client's endpoint: 200 for a form with a logout_token, else 400.
    /// let endpoint = axum::Router::new().route(
    ///     "/backchannel-logout",
    ///     post(|body: String| async move {
    ///         if body.starts_with("logout_token=") { StatusCode::OK } else { StatusCode::BAD_REQUEST }
    ///     }),
    /// );
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let url = format!("http://{}/backchannel-logout", listener.local_addr()?);
    /// tokio::spawn(async move { axum::serve(listener, endpoint).await });
    ///
    /// let op = TestProvider::start().await?;
    /// let token = op.logout_token(Some("alice"), None);
    /// let (status, _body) = op.send_backchannel_logout(&url, &token).await?;
    /// assert_eq!(status, 200);
    /// assert_eq!(op.backchannel_requests(), 1);
    /// assert_eq!(op.last_backchannel_token().as_deref(), Some(token.as_str()));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// If no answer came: the connection failed, the request timed out, or the body could not be
    /// read. The attempt is still counted, and [`last_backchannel_response`](
    /// Self::last_backchannel_response) becomes `None`.
    pub async fn send_backchannel_logout(&self, url: &str, token: &str) -> Result<(u16, String), reqwest::Error> {
        backchannel::send(&self.shared, url, token).await
    }

    /// How many back-channel logout requests the provider sent: by
    /// [`send_backchannel_logout`](Self::send_backchannel_logout), and by `/end_session`, which
    /// POSTs a valid logout token to the client's
    /// [back-channel logout URI](TestClient::with_backchannel_logout_uri) when it ends a session
    /// of a client that has one. Attempts that got no answer count too.
    ///
    /// Which session `/end_session` ends (each login through `/authorize` opens one, with the
    /// `sid` of its ID tokens; an ended session is gone): with an `id_token_hint`, the newest
    /// open session of the hint's `aud` whose `sid` and `sub` equal the hint's (those it has);
    /// without one, the newest open session of the `client_id` given, or the newest of all
    /// without a `client_id`. The logout token then has that session's `sub` and `sid`, and
    /// `aud` that client. A request that fails (for example with an unregistered
    /// `post_logout_redirect_uri`) ends no session.
    ///
    /// See [`TestClient::with_backchannel_logout_uri`] for an example.
    pub fn backchannel_requests(&self) -> usize {
        self.shared.counters.backchannel.load(Ordering::SeqCst)
    }

    /// The HTTP status the last back-channel logout request got; `None` if none was sent yet or
    /// the last one got no answer.
    pub fn last_backchannel_status(&self) -> Option<u16> {
        self.last_backchannel_response().map(|(status, _)| status)
    }

    /// The status and body the last back-channel logout request got; `None` if none was sent yet
    /// or the last one got no answer.
    pub fn last_backchannel_response(&self) -> Option<(u16, String)> {
        self.shared.lock().last_backchannel.as_ref().and_then(|r| r.response.clone())
    }

    /// The logout token of the last back-channel logout request (answered or not), to check
    /// what `/end_session` sent.
    pub fn last_backchannel_token(&self) -> Option<String> {
        self.shared.lock().last_backchannel.as_ref().map(|r| r.token.clone())
    }

    /// Issues an opaque access token for the current user and the default client, as if after a
    /// login with `scope`: `/userinfo` and `/introspect` accept it. For tests of APIs that take
    /// bearer tokens.
    pub fn mint_access_token(&self, scope: &str) -> String {
        self.mint_opaque(scope, None, None)
    }

    /// An opaque access token for the resource `audience` (RFC 8707): as
    /// [`mint_access_token`](Self::mint_access_token), and introspected with that `aud`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let token = op.mint_access_token_for("https://api.example.com", "read");
    /// assert_ne!(token, op.mint_access_token_for("https://api.example.com", "read"));
    /// # Ok(()) }
    /// ```
    pub fn mint_access_token_for(&self, audience: &str, scope: &str) -> String {
        self.mint_opaque(scope, Some(audience.to_owned()), None)
    }

    /// An opaque access token for the resource `audience`, bound to the DPoP key with the
    /// RFC 7638 thumbprint `jkt` (RFC 9449; see [`TestDpopKey::jkt`](crate::TestDpopKey::jkt)):
    /// as [`mint_access_token_for`](Self::mint_access_token_for), and introspected with
    /// `"token_type": "DPoP"` and `"cnf": {"jkt": jkt}`. `/userinfo` takes it only as
    /// `Authorization: DPoP <token>` with a proof by that key. See
    /// [`TestDpopKey`](crate::TestDpopKey) for an example.
    pub fn mint_dpop_access_token_for(&self, audience: &str, scope: &str, jkt: &str) -> String {
        self.mint_opaque(scope, Some(audience.to_owned()), Some(jkt.to_owned()))
    }

    fn mint_opaque(&self, scope: &str, audience: Option<String>, jkt: Option<String>) -> String {
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
            TokenGrant {
                grant,
                expires_at: now() + self.shared.config.token_ttl.as_secs(),
                revoked: false,
                audience,
                jkt,
            },
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

    /// A DPoP-bound JWT access token (RFC 9449 §6.1): as
    /// [`mint_jwt_access_token`](Self::mint_jwt_access_token) (header `typ: at+jwt`), plus
    /// `"cnf": {"jkt": jkt}`, the RFC 7638 thumbprint of the client's DPoP key (see
    /// [`TestDpopKey::jkt`](crate::TestDpopKey::jkt)). For tests of resource servers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use base64::Engine as _;
    /// let op = auth_testkit::TestProvider::start().await?;
    /// let key = auth_testkit::TestDpopKey::generate();
    /// let jwt = op.mint_dpop_jwt_access_token("https://api.example", "read", key.jkt());
    /// let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap();
    /// let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    /// assert_eq!(claims["cnf"]["jkt"], key.jkt());
    /// assert_eq!(claims["aud"], "https://api.example");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`sign_jwt`](Self::sign_jwt).
    pub fn mint_dpop_jwt_access_token(&self, audience: &str, scope: &str, jkt: &str) -> String {
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
            "cnf": { "jkt": jkt },
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
    require_par: bool,
    require_dpop_nonce: bool,
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
            require_par: false,
            require_dpop_nonce: false,
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

    /// Whether `/authorize` takes only pushed authorization requests (RFC 9126 §5; default
    /// false): discovery then says `"require_pushed_authorization_requests": true`, and an
    /// authorization request without a `request_uri` is refused with `400 invalid_request`
    /// (JSON, no redirect).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let op = auth_testkit::TestProvider::builder().require_pushed_authorization_requests(true).start().await?;
    /// let doc: serde_json::Value = reqwest::get(op.discovery_url()).await?.json().await?;
    /// assert_eq!(doc["require_pushed_authorization_requests"], true);
    /// assert_eq!(doc["pushed_authorization_request_endpoint"], format!("{}/par", op.issuer()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn require_pushed_authorization_requests(mut self, on: bool) -> Self {
        self.require_par = on;
        self
    }

    /// Whether DPoP proofs (RFC 9449) must carry a server nonce (§8; default false), at the
    /// token endpoint and at UserInfo; the same as [`Fault::DpopNonceRequired`], from the start.
    ///
    /// A proof without a valid nonce gets `400 {"error":"use_dpop_nonce"}` at `/token` (`401`
    /// with `WWW-Authenticate: DPoP error="use_dpop_nonce"` at `/userinfo`), and every answer of
    /// these two endpoints carries a fresh `DPoP-Nonce` header. A nonce stays valid for at least
    /// 5 minutes (up to 10); nonces are stateless (an HMAC of their time window), so any number
    /// may be handed out, and one may be used many times.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_testkit::{TestDpopKey, TestProvider};
    ///
    /// let op = TestProvider::builder().require_dpop_nonce(true).start().await?;
    /// let key = TestDpopKey::generate();
    /// let token_endpoint = format!("{}/token", op.issuer());
    /// let first = reqwest::Client::new()
    ///     .post(&token_endpoint)
    ///     .header("DPoP", key.proof("POST", &token_endpoint, None, None))
    ///     .basic_auth(op.client_id(), Some(op.client_secret()))
    ///     .form(&[("grant_type", "refresh_token"), ("refresh_token", "unknown")])
    ///     .send()
    ///     .await?;
    /// assert_eq!(first.status(), 400);
    /// let nonce = first.headers()["dpop-nonce"].to_str()?.to_owned();
    /// let body: serde_json::Value = first.json().await?;
    /// assert_eq!(body["error"], "use_dpop_nonce");
    ///
    /// let retry = reqwest::Client::new()
    ///     .post(&token_endpoint)
    ///     .header("DPoP", key.proof("POST", &token_endpoint, None, Some(&nonce)))
    ///     .basic_auth(op.client_id(), Some(op.client_secret()))
    ///     .form(&[("grant_type", "refresh_token"), ("refresh_token", "unknown")])
    ///     .send()
    ///     .await?;
    /// // The proof is accepted now; the (made-up) refresh token is not.
    /// let body: serde_json::Value = retry.json().await?;
    /// assert_eq!(body["error"], "invalid_grant");
    /// assert_eq!(op.dpop_proofs_accepted(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn require_dpop_nonce(mut self, on: bool) -> Self {
        self.require_dpop_nonce = on;
        self
    }

    /// Starts the provider on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] for an invalid configuration (two clients with one id, a
    /// `client_secret_*` client without a secret, a `private_key_jwt` client without keys, a
    /// registered JWK that is private or not an RSA, EC P-256 or Ed25519 key); otherwise if
    /// the listener cannot be bound.
    pub async fn start(self) -> io::Result<TestProvider> {
        let mut clients = self.clients;
        if !clients.iter().any(|c| c.id == DEFAULT_CLIENT_ID) {
            clients.insert(0, TestClient::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET));
        }
        for (i, client) in clients.iter().enumerate() {
            if clients[..i].iter().any(|c| c.id == client.id) {
                return Err(invalid(format!("client {:?} is registered twice", client.id)));
            }
            let needs_secret = !matches!(client.auth_method, ClientAuthMethod::None | ClientAuthMethod::PrivateKeyJwt);
            if needs_secret && client.secret.is_none() {
                return Err(invalid(format!("client {:?} uses {} but has no secret", client.id, client.auth_method)));
            }
            if client.auth_method == ClientAuthMethod::PrivateKeyJwt && client.jwks.is_empty() {
                return Err(invalid(format!("client {:?} uses private_key_jwt but has no key", client.id)));
            }
            for (n, jwk) in client.jwks.iter().enumerate() {
                if let Err(why) = crate::assertion::check_client_jwk(jwk) {
                    return Err(invalid(format!("key {n} of client {:?} {why}", client.id)));
                }
            }
        }

        let alg = self.alg;
        let (key, other_key) = tokio::task::spawn_blocking(move || {
            Ok::<_, KeyError>((SigningKey::shared(alg)?, SigningKey::shared(alg.other_family())?))
        })
        .await
        .map_err(io::Error::other)??;

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
                require_par: self.require_par,
                require_dpop_nonce: self.require_dpop_nonce,
            },
            state: Mutex::new(State::new(user, user_explicit, key, other_key)),
            counters: Counters::default(),
            shutdown,
            http: OnceLock::new(),
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
