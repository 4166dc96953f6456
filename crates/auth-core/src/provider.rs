//! Provider configuration: the equivalent of Authlib's `oauth.register(name, …)`.

use std::fmt;

use url::Url;

use crate::Error;

/// A client secret. `Debug` prints `[redacted]`; read it with [`ClientSecret::secret`].
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }

    /// The secret itself; every call site is a place where it leaves the process.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3, OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (the default).
    #[default]
    SecretBasic,
    /// `client_id` and `client_secret` in the form body.
    SecretPost,
    /// A public client: `client_id` only, protected by PKCE.
    None,
    /// `private_key_jwt`: a JWT signed with the client's own key ([`Provider::with_client_key`]).
    PrivateKeyJwt,
    /// `client_secret_jwt`: a JWT signed (HS256) with the client secret, which never leaves the app.
    SecretJwt,
}

impl ClientAuth {
    /// The method's registered name (`client_secret_basic`, `private_key_jwt`, …).
    ///
    /// ```
    /// assert_eq!(auth_core::ClientAuth::PrivateKeyJwt.as_str(), "private_key_jwt");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::SecretBasic => "client_secret_basic",
            ClientAuth::SecretPost => "client_secret_post",
            ClientAuth::None => "none",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::SecretJwt => "client_secret_jwt",
        }
    }
}

/// The `aud` of the client assertions of `private_key_jwt` and `client_secret_jwt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The issuer identifier, as current drafts (RFC 7523bis, FAPI 2.0) recommend; the token
    /// endpoint's URL for a provider without an issuer.
    #[default]
    Issuer,
    /// The token endpoint's URL, for providers that accept only that (RFC 7523 §3 allows it).
    TokenEndpoint,
}

/// How the provider's user data becomes the session's claims.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Profile {
    /// OpenID Connect: the ID token's claims, completed by the standard userinfo claims.
    #[default]
    Oidc,
    /// GitHub: `/user` (numeric `id` becomes `sub`, `avatar_url` becomes `picture`), and the
    /// verified primary address of `/user/emails` as `email`.
    Github,
    /// Facebook Graph API `/me?fields=id,name,email,picture`.
    Facebook,
    /// Any OAuth 2.0 userinfo JSON: JSON pointers (RFC 6901) to the standard claims.
    Custom(ClaimMapping),
}

/// JSON pointers from a userinfo document to `sub`, `email`, `name` and `picture`.
///
/// ```
/// use auth_core::ClaimMapping;
/// let mapping = ClaimMapping { sub: "/data/id".into(), ..ClaimMapping::default() };
/// let claims = mapping.apply(&serde_json::json!({"data": {"id": 7}, "email": "a@b.c"})).unwrap();
/// assert_eq!(claims["sub"], "7");
/// assert_eq!(claims["email"], "a@b.c");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Pointer to the user's stable id (numbers become strings).
    pub sub: String,
    /// Pointer to the e-mail address.
    pub email: String,
    /// Pointer to the display name.
    pub name: String,
    /// Pointer to the picture URL.
    pub picture: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping { sub: "/id".into(), email: "/email".into(), name: "/name".into(), picture: "/picture".into() }
    }
}

impl ClaimMapping {
    /// Maps a userinfo document to claims; `None` when there is no usable `sub`.
    pub fn apply(&self, doc: &serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
        let sub = match doc.pointer(&self.sub)? {
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), sub.into());
        for (claim, pointer) in [("email", &self.email), ("name", &self.name), ("picture", &self.picture)] {
            if let Some(v) = doc.pointer(pointer).filter(|v| v.is_string()) {
                claims.insert(claim.into(), v.clone());
            }
        }
        Some(claims)
    }
}

/// Where the provider's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoints {
    /// OpenID Connect discovery from the issuer (or an explicit metadata URL).
    Discovery { issuer: String, metadata_url: Option<String> },
    /// Plain OAuth 2.0: explicit endpoints, no ID token.
    Explicit { authorize: String, token: String, userinfo: Option<String> },
}

/// Reads a key file named by `{NAME}_CLIENT_KEY`, bounded in size.
fn read_key_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("is neither a PEM or JWK key nor a readable file ({e})"))?;
    let mut text = String::new();
    file.take(32 * 1024 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("names a file that could not be read as text ({e})"))?;
    Ok(text)
}

/// The tenant of personal Microsoft accounts: the issuer of `consumers` tokens.
const MICROSOFT_CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// One login provider, registered under a name (`google`, `github`, `oidc`, …).
///
/// ```
/// use auth_core::{ClientAuth, Provider};
/// let google = Provider::google("client-id", "client-secret")
///     .with_auth_param("prompt", "select_account");
/// assert_eq!(google.name(), "google");
///
/// let corp = Provider::oidc("corp", "https://id.example.com", "app")
///     .with_client_secret("s3cret")
///     .with_client_auth(ClientAuth::SecretPost)
///     .with_scopes(["openid", "email", "groups"]);
/// assert!(!format!("{corp:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
pub struct Provider {
    pub(crate) name: String,
    pub(crate) endpoints: Endpoints,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) client_key: Option<crate::ClientKey>,
    pub(crate) assertion_audience: AssertionAudience,
    /// Pushed authorization requests (RFC 9126) even when the provider does not require them.
    pub(crate) par: bool,
    /// DPoP-bound tokens (RFC 9449): a key per session, proofs on its token requests and calls.
    pub(crate) dpop: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) auth_params: Vec<(String, String)>,
    pub(crate) profile: Profile,
    pub(crate) response_mode_form_post: bool,
    pub(crate) trusted_audiences: Vec<String>,
    pub(crate) max_age: Option<u64>,
    pub(crate) acr_values: Vec<String>,
    pub(crate) allow_hs256: bool,
    pub(crate) multi_tenant_issuer: bool,
    pub(crate) allow_insecure_http: bool,
    pub(crate) userinfo_extra: Option<String>,
    pub(crate) revoke_on_logout: bool,
    pub(crate) id_token_alg: Option<String>,
    pub(crate) issuer_aliases: Vec<String>,
    /// The prefix of the environment variables it was read from (`OIDC`), to name them in errors.
    pub(crate) env_prefix: Option<String>,
    pub(crate) untyped_access_tokens: bool,
    /// Where [`User::api`](crate::User::api) sends relative paths (`https://api.github.com/`).
    pub(crate) api_base_url: Option<url::Url>,
}

impl Provider {
    /// A generic OpenID Connect provider found through discovery at `issuer`.
    pub fn oidc(name: impl Into<String>, issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Provider {
            name: name.into(),
            endpoints: Endpoints::Discovery { issuer: issuer.into(), metadata_url: None },
            client_id: client_id.into(),
            client_secret: None,
            client_auth: ClientAuth::SecretBasic,
            client_key: None,
            assertion_audience: AssertionAudience::Issuer,
            par: false,
            dpop: false,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            auth_params: Vec::new(),
            profile: Profile::Oidc,
            response_mode_form_post: false,
            trusted_audiences: Vec::new(),
            max_age: None,
            acr_values: Vec::new(),
            allow_hs256: false,
            multi_tenant_issuer: false,
            allow_insecure_http: false,
            userinfo_extra: None,
            revoke_on_logout: false,
            id_token_alg: None,
            issuer_aliases: Vec::new(),
            env_prefix: None,
            untyped_access_tokens: false,
            api_base_url: None,
        }
    }

    /// A plain OAuth 2.0 provider with explicit endpoints and a userinfo mapping.
    pub fn oauth2(
        name: impl Into<String>,
        authorize_url: impl Into<String>,
        token_url: impl Into<String>,
        userinfo_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        let mut p = Provider::oidc(name, String::new(), client_id);
        p.endpoints = Endpoints::Explicit {
            authorize: authorize_url.into(),
            token: token_url.into(),
            userinfo: Some(userinfo_url.into()),
        };
        p.scopes = Vec::new();
        p.profile = Profile::Custom(ClaimMapping::default());
        p
    }

    /// Google (OpenID Connect). Google documents that its ID tokens' `iss` is
    /// `https://accounts.google.com` or `accounts.google.com`; both are accepted, nothing else.
    ///
    /// Refresh tokens: Google issues one only for `access_type=offline`, which this preset sends
    /// (and only at a user's first consent; add `.with_auth_param("prompt", "consent")` to get one
    /// at every login). [`User::api`](crate::User::api) calls `https://www.googleapis.com/`.
    pub fn google(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let mut p = Provider::oidc("google", "https://accounts.google.com", client_id)
            .with_client_secret(client_secret)
            .with_auth_param("access_type", "offline")
            .with_api_base_url("https://www.googleapis.com/");
        p.issuer_aliases.push("accounts.google.com".into());
        p
    }

    /// GitLab.com (OpenID Connect). Refresh tokens are issued without asking;
    /// [`User::api`](crate::User::api) calls `https://gitlab.com/api/v4/`.
    pub fn gitlab(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Provider::oidc("gitlab", "https://gitlab.com", client_id)
            .with_client_secret(client_secret)
            .with_api_base_url("https://gitlab.com/api/v4/")
    }

    /// Microsoft Entra ID. `tenant` is a tenant id (a single-tenant app), or `common` or
    /// `organizations` for multi-tenant apps, whose tokens are checked against the issuer template
    /// `https://login.microsoftonline.com/{tenantid}/v2.0` with the token's own `tid`. `consumers`
    /// (personal Microsoft accounts only) is the fixed tenant
    /// `9188040d-6c67-4c5b-b112-36a304b66dad`, the issuer Microsoft's metadata names for it. Give a
    /// tenant by its id, not its domain name: the metadata names the issuer by id, and discovery
    /// refuses an issuer that differs from the configured one.
    ///
    /// Refresh tokens: Entra ID issues one only for the scope `offline_access`, which this preset
    /// requests. [`User::api`](crate::User::api) calls Microsoft Graph,
    /// `https://graph.microsoft.com/v1.0/`.
    pub fn microsoft(tenant: &str, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let tenant = if tenant == "consumers" { MICROSOFT_CONSUMERS_TENANT } else { tenant };
        let mut p = Provider::oidc("microsoft", format!("https://login.microsoftonline.com/{tenant}/v2.0"), client_id)
            .with_client_secret(client_secret)
            .with_scopes(["openid", "email", "profile", "offline_access"])
            .with_api_base_url("https://graph.microsoft.com/v1.0/");
        p.multi_tenant_issuer = matches!(tenant, "common" | "organizations");
        // Entra ID accepts only its token endpoint as a certificate credential's `aud`.
        p.assertion_audience = AssertionAudience::TokenEndpoint;
        p
    }

    /// GitHub (OAuth 2.0): `/user`, plus the verified primary e-mail from `/user/emails`.
    /// [`User::api`](crate::User::api) calls `https://api.github.com/` (`user/emails`, `user/repos`).
    /// GitHub's OAuth app tokens do not expire and come without a refresh token; a GitHub App's
    /// expiring tokens are refreshed like any other.
    pub fn github(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let mut p = Provider::oauth2(
            "github",
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            "https://api.github.com/user",
            client_id,
        )
        .with_client_secret(client_secret)
        .with_client_auth(ClientAuth::SecretPost)
        .with_scopes(["read:user", "user:email"]);
        p.profile = Profile::Github;
        p.userinfo_extra = Some("https://api.github.com/user/emails".into());
        p.with_api_base_url("https://api.github.com/")
    }

    /// Facebook (OAuth 2.0 with the Graph API `/me?fields=id,name,email,picture`).
    pub fn facebook(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let mut p = Provider::oauth2(
            "facebook",
            "https://www.facebook.com/v21.0/dialog/oauth",
            "https://graph.facebook.com/v21.0/oauth/access_token",
            "https://graph.facebook.com/me?fields=id,name,email,picture",
            client_id,
        )
        .with_client_secret(client_secret)
        .with_client_auth(ClientAuth::SecretPost)
        .with_scopes(["email", "public_profile"]);
        p.profile = Profile::Facebook;
        p.with_api_base_url("https://graph.facebook.com/v21.0/")
    }

    /// Reads a provider from the process environment by name, as Authlib reads `GOOGLE_CLIENT_ID`
    /// from the app config: `{NAME}_CLIENT_ID`, `{NAME}_CLIENT_SECRET`, `{NAME}_ISSUER` or
    /// `{NAME}_SERVER_METADATA_URL`, `{NAME}_SCOPE` (space-separated), `{NAME}_CLIENT_AUTH`
    /// (`client_secret_basic` (default), `client_secret_post`, `none`, `private_key_jwt` with
    /// `{NAME}_CLIENT_KEY`, the PEM or JWK text of the key or a path to it, and optionally
    /// `{NAME}_CLIENT_KEY_ID`, or `client_secret_jwt`), `{NAME}_CLIENT_ASSERTION_AUD` (`issuer`,
    /// the default, or `token_endpoint`), `{NAME}_PAR` (`true`: pushed authorization requests), `{NAME}_DPOP` (`true`: DPoP-bound tokens),
    /// `{NAME}_ID_TOKEN_SIGNING_ALG` (the one algorithm the provider signs this client's ID tokens
    /// with, `RS256`, `ES256`, …; `HS256` turns on HMAC ID tokens keyed with the client secret),
    /// `{NAME}_PROMPT` (`login`, `consent`, `select_account`, …) and `{NAME}_MAX_AGE` (seconds;
    /// `auth_time` is then checked). Known names (`google`, `github`, `facebook`, `microsoft` with
    /// `MICROSOFT_TENANT`, `gitlab`) start from their preset.
    pub fn from_env(name: &str) -> Result<Self, Error> {
        Provider::from_env_with(name, |key| std::env::var(key).ok())
    }

    /// [`Provider::from_env`] with any lookup function (for tests and other configuration sources).
    ///
    /// ```
    /// use auth_core::Provider;
    /// let env = |k: &str| match k {
    ///     "CORP_CLIENT_ID" => Some("app".to_string()),
    ///     "CORP_ISSUER" => Some("https://id.example.com".to_string()),
    ///     _ => None,
    /// };
    /// let corp = Provider::from_env_with("corp", env).unwrap();
    /// assert_eq!(corp.name(), "corp");
    /// let err = Provider::from_env_with("corp", |_| None).unwrap_err();
    /// assert!(err.to_string().contains("CORP_CLIENT_ID"));
    /// ```
    pub fn from_env_with(name: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let prefix: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        let var = |suffix: &str| {
            let key = format!("{prefix}_{suffix}");
            let value = env(&key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
            (key, value)
        };
        let (id_key, client_id) = var("CLIENT_ID");
        let client_id = client_id.ok_or_else(|| Error::Env { name: id_key, problem: "is not set".into() })?;
        let secret = var("CLIENT_SECRET").1;
        let (issuer_key, issuer) = var("ISSUER");
        let (metadata_key, metadata_url) = var("SERVER_METADATA_URL");
        for (key, value) in [(&issuer_key, &issuer), (&metadata_key, &metadata_url)] {
            if let Some(v) = value {
                Url::parse(v).map_err(|e| Error::Env { name: key.clone(), problem: format!("is not a URL ({e})") })?;
            }
        }
        let lower = name.to_ascii_lowercase();
        let mut provider = match (lower.as_str(), &issuer, &metadata_url) {
            ("google", None, None) => Provider::google(client_id, ""),
            ("gitlab", None, None) => Provider::gitlab(client_id, ""),
            ("github", None, None) => Provider::github(client_id, ""),
            ("facebook", None, None) => Provider::facebook(client_id, ""),
            ("microsoft", None, None) => {
                let tenant = var("TENANT").1.unwrap_or_else(|| "common".into());
                Provider::microsoft(&tenant, client_id, "")
            }
            (_, None, None) => {
                return Err(Error::Env {
                    name: issuer_key,
                    problem: format!("is not set (nor {metadata_key}); one of them is needed for provider `{name}`"),
                });
            }
            (_, Some(issuer), _) => Provider::oidc(name, issuer.clone(), client_id),
            (_, None, Some(_)) => Provider::oidc(name, String::new(), client_id),
        };
        provider.name = name.to_owned();
        provider.env_prefix = Some(prefix.clone());
        if let Some(url) = metadata_url {
            provider = provider.with_server_metadata_url(url);
        }
        provider.client_secret = secret.map(ClientSecret::new);
        if provider.client_secret.is_none() {
            provider.client_auth = ClientAuth::None;
        }
        let (auth_key, auth_method) = var("CLIENT_AUTH");
        if let Some(method) = auth_method {
            provider.client_auth = match method.as_str() {
                "client_secret_basic" => ClientAuth::SecretBasic,
                "client_secret_post" => ClientAuth::SecretPost,
                "none" => ClientAuth::None,
                "private_key_jwt" => ClientAuth::PrivateKeyJwt,
                "client_secret_jwt" => ClientAuth::SecretJwt,
                other => {
                    return Err(Error::Env {
                        name: auth_key,
                        problem: format!(
                            "`{other}` is not one of client_secret_basic, client_secret_post, none, \
                             private_key_jwt, client_secret_jwt"
                        ),
                    });
                }
            };
        }
        let (key_key, key_text) = var("CLIENT_KEY");
        match (provider.client_auth, key_text) {
            (ClientAuth::PrivateKeyJwt, Some(text)) => {
                let env_err = |problem: String| Error::Env { name: key_key.clone(), problem };
                let text = if text.starts_with("-----") || text.starts_with('{') {
                    text
                } else {
                    read_key_file(&text).map_err(env_err)?
                };
                let mut key = crate::ClientKey::parse(&text).map_err(|e| env_err(e.to_string()))?;
                if let Some(kid) = var("CLIENT_KEY_ID").1 {
                    key = key.with_kid(kid);
                }
                provider.client_key = Some(key);
            }
            (ClientAuth::PrivateKeyJwt, None) => {
                return Err(Error::Env {
                    name: key_key,
                    problem: format!(
                        "is not set; {auth_key}=private_key_jwt needs the client's private key (PEM or JWK text, \
                         or a path to a file holding it)"
                    ),
                });
            }
            (_, Some(_)) => {
                return Err(Error::Env {
                    name: key_key,
                    problem: format!("is only used with {auth_key}=private_key_jwt"),
                });
            }
            (_, None) => {}
        }
        if provider.client_auth == ClientAuth::SecretJwt && provider.client_secret.is_none() {
            return Err(Error::Env {
                name: format!("{prefix}_CLIENT_SECRET"),
                problem: format!("is not set; {auth_key}=client_secret_jwt signs with the client secret"),
            });
        }
        let (aud_key, aud) = var("CLIENT_ASSERTION_AUD");
        if let Some(aud) = aud {
            provider.assertion_audience = match aud.as_str() {
                "issuer" => AssertionAudience::Issuer,
                "token_endpoint" => AssertionAudience::TokenEndpoint,
                other => {
                    return Err(Error::Env {
                        name: aud_key,
                        problem: format!("`{other}` is not one of issuer, token_endpoint"),
                    });
                }
            };
        }
        for (suffix, setting) in [("PAR", &mut provider.par), ("DPOP", &mut provider.dpop)] {
            let (key, value) = var(suffix);
            if let Some(value) = value {
                *setting = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => {
                        return Err(Error::Env { name: key, problem: format!("`{other}` is not true or false") });
                    }
                };
            }
        }
        if let Some(scope) = var("SCOPE").1 {
            provider.scopes = scope.split_whitespace().map(str::to_owned).collect();
        }
        let (alg_key, alg) = var("ID_TOKEN_SIGNING_ALG");
        if let Some(alg) = alg {
            let parsed: jsonwebtoken::Algorithm = alg.parse().map_err(|_| Error::Env {
                name: alg_key.clone(),
                problem: format!("`{alg}` is not a JWS algorithm (RS256, ES256, PS256, EdDSA, HS256, …)"),
            })?;
            if parsed == jsonwebtoken::Algorithm::HS256 {
                if provider.client_secret.is_none() {
                    return Err(Error::Env {
                        name: alg_key,
                        problem: format!(
                            "HS256 ID tokens are keyed with the client secret: set {prefix}_CLIENT_SECRET"
                        ),
                    });
                }
                provider.allow_hs256 = true;
            }
            provider.id_token_alg = Some(alg);
        }
        if let Some(prompt) = var("PROMPT").1 {
            provider.auth_params.retain(|(k, _)| k != "prompt");
            provider.auth_params.push(("prompt".into(), prompt));
        }
        let (max_age_key, max_age) = var("MAX_AGE");
        if let Some(max_age) = max_age {
            let seconds = max_age.parse().map_err(|_| Error::Env {
                name: max_age_key,
                problem: format!("`{max_age}` is not a number of seconds"),
            })?;
            provider.max_age = Some(seconds);
        }
        Ok(provider)
    }

    /// The name the provider is registered under (the `{provider}` of the routes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Renames the provider.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the client secret (a confidential client).
    #[must_use]
    pub fn with_client_secret(mut self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        self.client_secret = (!secret.is_empty()).then(|| ClientSecret::new(secret));
        self
    }

    /// Sets the client authentication method.
    #[must_use]
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Authenticates with `private_key_jwt` (RFC 7523, OIDC Core §9): every call to the token,
    /// introspection, revocation and PAR endpoints carries a fresh assertion signed with `key`.
    ///
    /// ```
    /// use auth_core::{ClientAuth, ClientKey, Provider};
    /// # let pem = ClientKey::example_pem();
    /// let key = ClientKey::from_pem(&pem).unwrap();
    /// println!("register this key at the provider: {}", key.public_jwk());
    /// let corp = Provider::oidc("corp", "https://id.example.com", "app").with_client_key(key);
    /// assert!(!format!("{corp:?}").contains("PRIVATE KEY"));
    /// ```
    #[must_use]
    pub fn with_client_key(mut self, key: crate::ClientKey) -> Self {
        self.client_key = Some(key);
        self.client_auth = ClientAuth::PrivateKeyJwt;
        self
    }

    /// Sets the `aud` of client assertions (default: the issuer).
    #[must_use]
    pub fn with_assertion_audience(mut self, audience: AssertionAudience) -> Self {
        self.assertion_audience = audience;
        self
    }

    /// Sends authorization requests through the provider's PAR endpoint (RFC 9126) even when its
    /// metadata does not say `require_pushed_authorization_requests` (then they always are): the
    /// browser carries only `client_id` and `request_uri`.
    #[must_use]
    pub fn with_pushed_authorization_requests(mut self) -> Self {
        self.par = true;
        self
    }

    /// Asks for DPoP-bound tokens (RFC 9449): each session gets its own key pair (kept in the
    /// session, sealed like its tokens), its token requests carry proofs by it (with the
    /// provider's `DPoP-Nonce` when it asks for one), and [`User::api`](crate::User::api) and
    /// [`User::userinfo`](crate::User::userinfo) send the token as `Authorization: DPoP` with a
    /// proof. A stolen access or refresh token is then useless without the key.
    #[must_use]
    pub fn with_dpop(mut self) -> Self {
        self.dpop = true;
        self
    }

    /// Replaces the scopes.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an authorization request parameter (`prompt`, `login_hint`, `access_type`, `hd`, …).
    /// The protocol's own parameters (`state`, `nonce`, `redirect_uri`, PKCE) cannot be overridden.
    #[must_use]
    pub fn with_auth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.auth_params.push((name.into(), value.into()));
        self
    }

    /// Uses an explicit discovery document URL instead of `{issuer}/.well-known/openid-configuration`.
    #[must_use]
    pub fn with_server_metadata_url(mut self, url: impl Into<String>) -> Self {
        if let Endpoints::Discovery { metadata_url, .. } = &mut self.endpoints {
            *metadata_url = Some(url.into());
        }
        self
    }

    /// Sets how userinfo becomes claims.
    #[must_use]
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Asks for `response_mode=form_post`: the provider POSTs the callback. The pending-login cookie
    /// must then be `SameSite=None`, which browsers only accept over https.
    #[must_use]
    pub fn with_form_post(mut self) -> Self {
        self.response_mode_form_post = true;
        self
    }

    /// Accepts ID tokens whose `aud` also names this other party.
    #[must_use]
    pub fn with_trusted_audience(mut self, audience: impl Into<String>) -> Self {
        self.trusted_audiences.push(audience.into());
        self
    }

    /// Sends `max_age` and checks the ID token's `auth_time` against it.
    #[must_use]
    pub fn with_max_age(mut self, seconds: u64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// Sends `acr_values` and requires the ID token's `acr` to be one of them.
    #[must_use]
    pub fn with_acr_values<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.acr_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// Also accepts HS256 ID tokens, keyed with the client secret (off by default).
    #[must_use]
    pub fn with_hs256_id_tokens(mut self) -> Self {
        self.allow_hs256 = true;
        self
    }

    /// Revokes the session's tokens at the provider (RFC 7009) at logout, when it has a
    /// revocation endpoint.
    #[must_use]
    pub fn with_token_revocation(mut self) -> Self {
        self.revoke_on_logout = true;
        self
    }

    /// The algorithm the provider signs this client's ID tokens with (`id_token_signed_response_alg`,
    /// for example `ES256`): ID tokens and back-channel logout tokens must then use exactly this
    /// one. Without it, ID tokens may use RS256 or any asymmetric algorithm the provider's metadata
    /// advertises, and logout tokens any asymmetric one it advertises (RS256 when it lists none).
    /// `HS256` needs [`Provider::with_hs256_id_tokens`] too.
    #[must_use]
    pub fn with_id_token_signing_alg(mut self, alg: impl Into<String>) -> Self {
        self.id_token_alg = Some(alg.into());
        self
    }

    /// Accepts JWT access tokens without the RFC 9068 type `at+jwt` (for providers that issue
    /// `typ: JWT`: Keycloak, Auth0, Entra ID). ID tokens are still refused (they carry a `nonce`,
    /// and another audience).
    #[must_use]
    pub fn with_untyped_access_tokens(mut self) -> Self {
        self.untyped_access_tokens = true;
        self
    }

    /// Where [`User::api`](crate::User::api) sends the user's access token: its paths are
    /// resolved against this URL (`user/emails` → `https://api.github.com/user/emails`), and a
    /// path that leads to another origin is refused, so the token never leaves for another host.
    /// The presets set their provider's. A URL that does not parse is logged, and the
    /// API client then answers with a configuration error; an http URL is refused as the
    /// provider's other URLs are (loopback hosts aside).
    ///
    /// ```
    /// use auth_core::Provider;
    /// let corp = Provider::oidc("corp", "https://id.example.com", "app").with_api_base_url("https://api.example.com/v2/");
    /// assert_eq!(corp.api_base_url(), Some("https://api.example.com/v2/"));
    /// assert_eq!(Provider::github("id", "secret").api_base_url(), Some("https://api.github.com/"));
    /// ```
    #[must_use]
    pub fn with_api_base_url(mut self, url: impl AsRef<str>) -> Self {
        let mut text = url.as_ref().trim().to_owned();
        // A base without a trailing slash would lose its last segment when a path is joined.
        if !text.ends_with('/') {
            text.push('/');
        }
        self.api_base_url = Url::parse(&text).ok();
        if self.api_base_url.is_none() {
            tracing::error!(provider = %self.name, "with_api_base_url: not a URL; the provider's API client is off");
        }
        self
    }

    /// The base URL of the provider's API, if set ([`Provider::with_api_base_url`]).
    pub fn api_base_url(&self) -> Option<&str> {
        self.api_base_url.as_ref().map(Url::as_str)
    }

    /// Allows plain-http provider URLs on hosts other than loopback. Never do this in production:
    /// tokens and codes travel in clear text.
    #[must_use]
    pub fn dangerously_allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// How to name a setting in an error message: the environment variable it came from
    /// (`OIDC_ISSUER`), or what it is in code.
    pub(crate) fn setting(&self, env_suffix: &str, in_code: &str) -> String {
        match &self.env_prefix {
            Some(prefix) => format!("{prefix}_{env_suffix}"),
            None => in_code.to_owned(),
        }
    }

    pub(crate) fn is_oidc(&self) -> bool {
        matches!(self.endpoints, Endpoints::Discovery { .. })
    }

    /// Checks a provider URL: https, or http on a loopback host (or with the explicit opt-in).
    pub(crate) fn check_url(&self, what: &str, url: &str) -> Result<Url, Error> {
        let parsed = Url::parse(url)
            .map_err(|e| Error::config(format!("provider `{}`: {what} `{url}` is not a URL: {e}", self.name)))?;
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if is_loopback(&parsed) || self.allow_insecure_http => Ok(parsed),
            _ => Err(Error::config(format!(
                "provider `{}`: {what} `{url}` must use https (http is only allowed for loopback hosts, or with dangerously_allow_insecure_http)",
                self.name
            ))),
        }
    }
}

/// Whether a URL's host is a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn presets_from_env() {
        let g = Provider::from_env_with("google", env(&[("GOOGLE_CLIENT_ID", "id"), ("GOOGLE_CLIENT_SECRET", "s")]))
            .unwrap();
        assert!(matches!(&g.endpoints, Endpoints::Discovery { issuer, .. } if issuer == "https://accounts.google.com"));
        assert_eq!(g.client_auth, ClientAuth::SecretBasic);
        assert_eq!(g.issuer_aliases, ["accounts.google.com"], "Google's documented second issuer spelling");
        let gh = Provider::from_env_with("github", env(&[("GITHUB_CLIENT_ID", "id"), ("GITHUB_CLIENT_SECRET", "s")]))
            .unwrap();
        assert_eq!(gh.profile, Profile::Github);
        let ms = Provider::from_env_with("microsoft", env(&[("MICROSOFT_CLIENT_ID", "id")])).unwrap();
        assert!(ms.multi_tenant_issuer);
        assert_eq!(ms.client_auth, ClientAuth::None, "no secret means a public client");
    }

    #[test]
    fn microsoft_tenants() {
        let issuer = |p: &Provider| match &p.endpoints {
            Endpoints::Discovery { issuer, .. } => issuer.clone(),
            Endpoints::Explicit { .. } => String::new(),
        };
        for multi in ["common", "organizations"] {
            let p = Provider::microsoft(multi, "id", "s");
            assert!(p.multi_tenant_issuer, "{multi}");
            assert_eq!(issuer(&p), format!("https://login.microsoftonline.com/{multi}/v2.0"));
        }
        let consumers = Provider::microsoft("consumers", "id", "s");
        assert!(!consumers.multi_tenant_issuer, "one tenant: the one of personal accounts");
        assert_eq!(issuer(&consumers), "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0");
        let single = Provider::microsoft("0a1b2c3d-0000-1111-2222-333344445555", "id", "s");
        assert!(!single.multi_tenant_issuer);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = Provider::from_env_with("my-idp", env(&[("MY_IDP_CLIENT_ID", "x")])).unwrap_err();
        assert!(err.to_string().contains("MY_IDP_ISSUER"), "{err}");
        let err = Provider::from_env_with("x", env(&[("X_CLIENT_ID", "a"), ("X_ISSUER", "not a url")])).unwrap_err();
        assert!(err.to_string().contains("X_ISSUER"), "{err}");
        let p = Provider::from_env_with(
            "x",
            env(&[("X_CLIENT_ID", "a"), ("X_ISSUER", "https://i"), ("X_SCOPE", "openid  a")]),
        )
        .unwrap();
        assert_eq!(p.scopes, ["openid", "a"]);
        let post = Provider::from_env_with(
            "x",
            env(&[
                ("X_CLIENT_ID", "a"),
                ("X_ISSUER", "https://i"),
                ("X_CLIENT_SECRET", "s"),
                ("X_CLIENT_AUTH", "client_secret_post"),
            ]),
        )
        .unwrap();
        assert_eq!(post.client_auth, ClientAuth::SecretPost);
        let err = Provider::from_env_with(
            "x",
            env(&[("X_CLIENT_ID", "a"), ("X_ISSUER", "https://i"), ("X_CLIENT_AUTH", "jwt")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("X_CLIENT_AUTH"), "{err}");
    }

    #[test]
    fn client_assertions_and_par_from_env() {
        let pem = crate::ClientKey::example_pem();
        let dir = std::env::temp_dir().join(format!("auth-core-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("client.pem");
        std::fs::write(&path, &pem).unwrap();
        let base = [("OIDC_CLIENT_ID", "app"), ("OIDC_ISSUER", "https://id.example.com")];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Provider::from_env_with("oidc", env(&all))
        };
        let path = path.to_string_lossy().into_owned();
        for key in [pem.as_str(), path.as_str()] {
            let p = with(&[("OIDC_CLIENT_AUTH", "private_key_jwt"), ("OIDC_CLIENT_KEY", key), ("OIDC_PAR", "true")])
                .unwrap();
            assert_eq!(p.client_auth, ClientAuth::PrivateKeyJwt);
            assert!(p.par);
            assert_eq!(p.assertion_audience, AssertionAudience::Issuer);
            assert_eq!(p.client_key.as_ref().unwrap().algorithm(), "ES256");
            let debug = format!("{p:?}");
            assert!(!debug.contains("PRIVATE KEY") && !debug.contains(&pem[30..60]), "{debug}");
        }
        let p = with(&[
            ("OIDC_CLIENT_AUTH", "private_key_jwt"),
            ("OIDC_CLIENT_KEY", &pem),
            ("OIDC_CLIENT_KEY_ID", "key-2026"),
            ("OIDC_CLIENT_ASSERTION_AUD", "token_endpoint"),
        ])
        .unwrap();
        assert_eq!(p.client_key.as_ref().unwrap().kid(), "key-2026");
        assert_eq!(p.assertion_audience, AssertionAudience::TokenEndpoint);
        let p = with(&[("OIDC_CLIENT_AUTH", "client_secret_jwt"), ("OIDC_CLIENT_SECRET", "s3cret")]).unwrap();
        assert_eq!(p.client_auth, ClientAuth::SecretJwt);

        let err = |extra: &[(&str, &str)]| with(extra).unwrap_err().to_string();
        let e = err(&[("OIDC_CLIENT_AUTH", "private_key_jwt")]);
        assert!(e.contains("OIDC_CLIENT_KEY") && e.contains("is not set"), "{e}");
        let e = err(&[("OIDC_CLIENT_AUTH", "private_key_jwt"), ("OIDC_CLIENT_KEY", "/no/such/key.pem")]);
        assert!(e.contains("OIDC_CLIENT_KEY") && e.contains("readable file"), "{e}");
        let e =
            err(&[("OIDC_CLIENT_AUTH", "private_key_jwt"), ("OIDC_CLIENT_KEY", "-----BEGIN PRIVATE KEY-----\nAAAA")]);
        assert!(e.contains("OIDC_CLIENT_KEY") && !e.contains("AAAA"), "{e}");
        let e = err(&[("OIDC_CLIENT_SECRET", "s"), ("OIDC_CLIENT_KEY", &pem)]);
        assert!(e.contains("only used with OIDC_CLIENT_AUTH=private_key_jwt"), "{e}");
        let e = err(&[("OIDC_CLIENT_AUTH", "client_secret_jwt")]);
        assert!(e.contains("OIDC_CLIENT_SECRET"), "{e}");
        assert!(err(&[("OIDC_CLIENT_ASSERTION_AUD", "everyone")]).contains("issuer, token_endpoint"));
        assert!(err(&[("OIDC_PAR", "maybe")]).contains("OIDC_PAR"));
        assert!(err(&[("OIDC_DPOP", "sometimes")]).contains("OIDC_DPOP"));
        assert!(with(&[("OIDC_DPOP", "TRUE")]).unwrap().dpop);
        assert_eq!(
            Provider::microsoft("contoso", "id", "").assertion_audience,
            AssertionAudience::TokenEndpoint,
            "Entra ID wants its token endpoint"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn id_token_alg_prompt_and_max_age_from_env() {
        let base = [("OIDC_CLIENT_ID", "app"), ("OIDC_ISSUER", "https://id.example.com")];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Provider::from_env_with("oidc", env(&all))
        };
        let p =
            with(&[("OIDC_ID_TOKEN_SIGNING_ALG", "ES256"), ("OIDC_PROMPT", "login"), ("OIDC_MAX_AGE", "300")]).unwrap();
        assert_eq!(p.id_token_alg.as_deref(), Some("ES256"));
        assert!(!p.allow_hs256);
        assert_eq!(p.auth_params, [("prompt".to_string(), "login".to_string())]);
        assert_eq!(p.max_age, Some(300));
        let hs = with(&[("OIDC_ID_TOKEN_SIGNING_ALG", "HS256"), ("OIDC_CLIENT_SECRET", "s")]).unwrap();
        assert!(hs.allow_hs256, "HS256 is an explicit opt-in");
        let err = with(&[("OIDC_ID_TOKEN_SIGNING_ALG", "HS256")]).unwrap_err();
        assert!(err.to_string().contains("OIDC_CLIENT_SECRET"), "{err}");
        let err = with(&[("OIDC_ID_TOKEN_SIGNING_ALG", "none")]).unwrap_err();
        assert!(err.to_string().contains("OIDC_ID_TOKEN_SIGNING_ALG"), "{err}");
        let err = with(&[("OIDC_MAX_AGE", "5m")]).unwrap_err();
        assert!(err.to_string().contains("OIDC_MAX_AGE"), "{err}");
    }

    #[test]
    fn http_only_on_loopback() {
        let p = Provider::oidc("x", "", "c");
        assert!(p.check_url("issuer", "http://127.0.0.1:9/").is_ok());
        assert!(p.check_url("issuer", "http://localhost/").is_ok());
        assert!(p.check_url("issuer", "http://[::1]:8/").is_ok());
        assert!(p.check_url("issuer", "http://example.com/").is_err());
        assert!(p.check_url("issuer", "ftp://example.com/").is_err());
        assert!(p.dangerously_allow_insecure_http().check_url("issuer", "http://example.com/").is_ok());
    }

    #[test]
    fn github_and_facebook_mappings() {
        let gh = ClaimMapping { picture: "/avatar_url".into(), ..ClaimMapping::default() };
        let c = gh.apply(&serde_json::json!({"id": 42, "name": "Octo", "avatar_url": "https://a"})).unwrap();
        assert_eq!(c["sub"], "42");
        assert_eq!(c["picture"], "https://a");
        assert!(ClaimMapping::default().apply(&serde_json::json!({"name": "no id"})).is_none());
    }
}
