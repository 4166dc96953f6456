//! Registered clients and test users.

use std::fmt;

use serde_json::{Map, Value};

/// How a client authenticates at the token, revocation and introspection endpoints
/// (OIDC Core §9, RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret.
    #[default]
    SecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    SecretPost,
    /// `none`: a public client sends only its `client_id` (and relies on PKCE).
    None,
    /// `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9): a JWT assertion signed with one of the
    /// client's [registered keys](TestClient::with_jwk), by RS256, PS256, ES256 or EdDSA.
    PrivateKeyJwt,
    /// `client_secret_jwt` (RFC 7523 §2.2, OIDC Core §9): a JWT assertion signed by HS256 (or
    /// HS384, HS512) keyed with the client secret.
    SecretJwt,
}

impl ClientAuthMethod {
    /// The registered name, as in `token_endpoint_auth_methods_supported`.
    ///
    /// ```
    /// assert_eq!(auth_testkit::ClientAuthMethod::SecretBasic.as_str(), "client_secret_basic");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretBasic => "client_secret_basic",
            Self::SecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::SecretJwt => "client_secret_jwt",
        }
    }
}

impl fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client (relying party) registered at the [`TestProvider`](crate::TestProvider).
///
/// The provider always has the default client `test-client` / `test-secret`
/// (`client_secret_basic`, any loopback redirect URI). Register more with
/// [`TestProviderBuilder::client`](crate::TestProviderBuilder::client); registering one with the
/// id `test-client` replaces the default.
///
/// ```
/// use auth_testkit::{ClientAuthMethod, TestClient};
///
/// let spa = TestClient::public("spa").with_redirect_uri("http://127.0.0.1:3000/auth/oidc/callback");
/// assert_eq!(spa.auth_method, ClientAuthMethod::None);
///
/// let web = TestClient::new("web", "s3cret").with_auth_method(ClientAuthMethod::SecretPost);
/// assert!(!format!("{web:?}").contains("s3cret"), "Debug output redacts the secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestClient {
    /// The `client_id`.
    pub id: String,
    /// The client secret; `None` for a public client.
    pub secret: Option<String>,
    /// How the client authenticates at the token endpoint.
    pub auth_method: ClientAuthMethod,
    /// Registered redirect URIs, matched exactly. Empty: any `http`/`https` URI on a loopback
    /// host (`127.0.0.1`, `[::1]`, `localhost`) is accepted.
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs, matched exactly. Empty: any loopback URI.
    pub post_logout_redirect_uris: Vec<String>,
    /// The client's back-channel logout URI (OIDC Back-Channel Logout 1.0 §2.2), if any: when
    /// `/end_session` ends a session of this client, the provider POSTs a logout token there.
    pub backchannel_logout_uri: Option<String>,
    /// The client's public keys (JWKs) for `private_key_jwt`; see [`with_jwk`](Self::with_jwk).
    pub jwks: Vec<Value>,
}

impl TestClient {
    /// A confidential client using `client_secret_basic`, accepting any loopback redirect URI.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: Some(secret.into()),
            auth_method: ClientAuthMethod::SecretBasic,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            jwks: Vec::new(),
        }
    }

    /// A public client (token endpoint auth method `none`, no secret).
    pub fn public(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: None,
            auth_method: ClientAuthMethod::None,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            jwks: Vec::new(),
        }
    }

    /// A client using `private_key_jwt` (RFC 7523 §2.2) with the public key `public_jwk` (no
    /// secret), accepting any loopback redirect URI. Register more keys with
    /// [`with_jwk`](Self::with_jwk).
    ///
    /// ```
    /// use auth_testkit::{ClientAuthMethod, TestClient, TestClientKey};
    ///
    /// let key = TestClientKey::ed25519();
    /// let client = TestClient::private_key_jwt("svc", key.public_jwk());
    /// assert_eq!(client.auth_method, ClientAuthMethod::PrivateKeyJwt);
    /// assert_eq!(client.jwks, vec![key.public_jwk()]);
    /// assert!(client.secret.is_none());
    /// ```
    pub fn private_key_jwt(id: impl Into<String>, public_jwk: Value) -> Self {
        let mut client = Self::public(id).with_auth_method(ClientAuthMethod::PrivateKeyJwt);
        client.jwks.push(public_jwk);
        client
    }

    /// A confidential client using `client_secret_jwt` (RFC 7523 §2.2): its assertions are
    /// signed by HS256 (or HS384, HS512) keyed with `secret`.
    pub fn secret_jwt(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::new(id, secret).with_auth_method(ClientAuthMethod::SecretJwt)
    }

    /// Registers a public key (a JWK: RSA, EC P-256 or OKP Ed25519) for `private_key_jwt`; call
    /// it once per key. An assertion whose header has a `kid` is verified with the key of that
    /// `kid` only; one without a `kid` with each registered key that suits its `alg` in turn.
    /// A key with an `alg` member verifies only that algorithm (so an RSA key with `alg` RS256
    /// does not verify PS256; leave `alg` out to allow both).
    ///
    /// [`TestProviderBuilder::start`](crate::TestProviderBuilder::start) refuses a JWK it
    /// cannot read, a private one (with `d` or `k`), and a `private_key_jwt` client without keys.
    #[must_use]
    pub fn with_jwk(mut self, public_jwk: Value) -> Self {
        self.jwks.push(public_jwk);
        self
    }

    /// Sets the token endpoint authentication method.
    #[must_use]
    pub fn with_auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Registers a redirect URI (after which only registered URIs are accepted, exactly).
    #[must_use]
    pub fn with_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Registers a post-logout redirect URI (after which only registered ones are accepted).
    #[must_use]
    pub fn with_post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.post_logout_redirect_uris.push(uri.into());
        self
    }

    /// Registers the back-channel logout URI (OIDC Back-Channel Logout 1.0 §2.2).
    ///
    /// When `/end_session` ends a session of this client (a login through `/authorize`), the
    /// provider POSTs a valid logout token (`sub` and `sid` of that login) to `uri`, form-encoded
    /// as `logout_token=…`, and waits for the answer before it redirects the browser. See
    /// [`TestProvider::backchannel_requests`](crate::TestProvider::backchannel_requests) for
    /// which session `/end_session` ends.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::{Arc, Mutex};
    ///
    /// use auth_testkit::{TestClient, TestProvider, reqwest};
    /// use axum::routing::post;
    ///
    /// // The client's back-channel logout endpoint: records the form bodies it receives.
    /// let received = Arc::new(Mutex::new(Vec::<String>::new()));
    /// let log = Arc::clone(&received);
    /// let app = axum::Router::new().route(
    ///     "/backchannel-logout",
    ///     post(move |body: String| async move { log.lock().expect("lock").push(body) }),
    /// );
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let uri = format!("http://{}/backchannel-logout", listener.local_addr()?);
    /// tokio::spawn(async move { axum::serve(listener, app).await });
    ///
    /// let op = TestProvider::builder()
    ///     .client(TestClient::new("web", "s3cret").with_backchannel_logout_uri(uri))
    ///     .start()
    ///     .await?;
    /// let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    ///
    /// // A login (the authorization request is enough to open a session) …
    /// let login = http
    ///     .get(format!("{}/authorize", op.issuer()))
    ///     .query(&[
    ///         ("response_type", "code"),
    ///         ("client_id", "web"),
    ///         ("redirect_uri", "http://127.0.0.1:9/callback"),
    ///         ("scope", "openid"),
    ///         ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    ///         ("code_challenge_method", "S256"),
    ///     ])
    ///     .send()
    ///     .await?;
    /// assert_eq!(login.status(), 302);
    ///
    /// // … and its logout: the provider notifies the client before redirecting.
    /// let logout = http
    ///     .get(format!("{}/end_session", op.issuer()))
    ///     .query(&[("client_id", "web"), ("post_logout_redirect_uri", "http://127.0.0.1:9/bye")])
    ///     .send()
    ///     .await?;
    /// assert_eq!(logout.status(), 302);
    /// assert_eq!(op.backchannel_requests(), 1);
    /// assert_eq!(op.last_backchannel_status(), Some(200));
    /// let body = received.lock().expect("lock").pop().expect("a POST");
    /// assert!(body.starts_with("logout_token="));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_backchannel_logout_uri(mut self, uri: impl Into<String>) -> Self {
        self.backchannel_logout_uri = Some(uri.into());
        self
    }

    pub(crate) fn accepts_redirect_uri(&self, uri: &str) -> bool {
        accepts(&self.redirect_uris, uri)
    }

    pub(crate) fn accepts_post_logout_redirect_uri(&self, uri: &str) -> bool {
        accepts(&self.post_logout_redirect_uris, uri)
    }
}

fn accepts(registered: &[String], uri: &str) -> bool {
    if registered.is_empty() { crate::util::is_loopback_uri(uri) } else { registered.iter().any(|r| r == uri) }
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("auth_method", &self.auth_method)
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("backchannel_logout_uri", &self.backchannel_logout_uri)
            .field("jwks", &self.jwks)
            .finish()
    }
}

/// The end-user whom the provider logs in.
///
/// Standard claims go into the ID token and the UserInfo response by scope (`email` →
/// `email`, `email_verified`; `profile` → `name`, `picture`); extra claims always go into both.
///
/// ```
/// use auth_testkit::TestUser;
///
/// let alice = TestUser::new("alice").with_claim("groups", serde_json::json!(["admin"]));
/// assert_eq!(alice.sub, "alice");
/// assert_eq!(alice.email, "alice@example.test");
/// assert!(alice.email_verified);
/// assert_eq!(alice.name, "Alice");
/// assert_eq!(alice.claims["groups"][0], "admin");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TestUser {
    /// The subject identifier (`sub`).
    pub sub: String,
    /// `email`.
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// `name`.
    pub name: String,
    /// `picture`, if any.
    pub picture: Option<String>,
    /// Extra claims, added to the ID token and the UserInfo response as they are. A standard
    /// claim set here (for example `name`) overrides the field; `sub`, `iss`, `aud` and the other
    /// protocol claims cannot be overridden (use [`Fault`](crate::Fault)s for that).
    pub claims: Map<String, Value>,
}

impl TestUser {
    /// A user with `sub` = `id`, e-mail `{id}@example.test` (verified) and name `id` with its
    /// first letter upper-cased.
    pub fn new(id: impl Into<String>) -> Self {
        let sub: String = id.into();
        let mut chars = sub.chars();
        let name = match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        };
        Self {
            email: format!("{sub}@example.test"),
            email_verified: true,
            name,
            picture: None,
            claims: Map::new(),
            sub,
        }
    }

    /// Sets `email`.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets `email_verified`.
    #[must_use]
    pub fn with_email_verified(mut self, verified: bool) -> Self {
        self.email_verified = verified;
        self
    }

    /// Sets `name`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `picture`.
    #[must_use]
    pub fn with_picture(mut self, url: impl Into<String>) -> Self {
        self.picture = Some(url.into());
        self
    }

    /// Adds an extra claim.
    #[must_use]
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// The user's claims for `scope`: `sub`, then `email`/`email_verified` for `email`,
    /// `name`/`picture` for `profile`, then the extra claims.
    pub(crate) fn claims_for(&self, scope: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let has = |s: &str| scope.split(' ').any(|x| x == s);
        if has("email") {
            out.insert("email".into(), Value::String(self.email.clone()));
            out.insert("email_verified".into(), Value::Bool(self.email_verified));
        }
        if has("profile") {
            out.insert("name".into(), Value::String(self.name.clone()));
            if let Some(picture) = &self.picture {
                out.insert("picture".into(), Value::String(picture.clone()));
            }
        }
        for (k, v) in &self.claims {
            out.insert(k.clone(), v.clone());
        }
        out.insert("sub".into(), Value::String(self.sub.clone()));
        out
    }
}

impl Default for TestUser {
    /// `TestUser::new("alice")`.
    fn default() -> Self {
        Self::new("alice")
    }
}
