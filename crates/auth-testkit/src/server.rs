//! The provider's state and its HTTP endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::assertion::{self, ReplayCache};
use crate::backchannel;
use crate::dpop;
use crate::fault::Fault;
use crate::html;
use crate::keys::{self, SigningAlg, SigningKey};
use crate::model::{ClientAuthMethod, TestClient, TestUser};
use crate::util::{self, Params, now, random_token};

/// How long an authorization code, and a pending dev-mode login, stay valid.
const CODE_TTL: u64 = 600;
/// How long a pushed authorization request stays valid (RFC 9126 §2.2 `expires_in`).
pub(crate) const PAR_TTL: u64 = 60;
/// How many unexpired pushed authorization requests the provider holds; beyond that `/par`
/// refuses new ones (503) until some expire or are used.
pub(crate) const MAX_PUSHED: usize = 10_000;
/// The prefix of the `request_uri`s `/par` hands out (RFC 9126 §2.2).
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// The audience / `azp` used by the audience faults.
pub(crate) const OTHER_CLIENT: &str = "other-client";
/// The event member of a back-channel logout token.
pub(crate) const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Fixed configuration, from the builder.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) clients: Vec<TestClient>,
    pub(crate) default_client_id: String,
    pub(crate) dev_mode: bool,
    pub(crate) iss_parameter: bool,
    pub(crate) token_ttl: Duration,
    pub(crate) alg: SigningAlg,
    pub(crate) users: Vec<TestUser>,
    /// `/authorize` takes only pushed authorization requests (RFC 9126 §5).
    pub(crate) require_par: bool,
    /// DPoP proofs must carry a server nonce (RFC 9449 §8).
    pub(crate) require_dpop_nonce: bool,
}

/// Request counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) discovery: AtomicUsize,
    pub(crate) jwks: AtomicUsize,
    pub(crate) authorize: AtomicUsize,
    pub(crate) token: AtomicUsize,
    pub(crate) userinfo: AtomicUsize,
    pub(crate) end_session: AtomicUsize,
    pub(crate) revoke: AtomicUsize,
    pub(crate) introspect: AtomicUsize,
    pub(crate) refresh: AtomicUsize,
    pub(crate) backchannel: AtomicUsize,
    pub(crate) par: AtomicUsize,
    pub(crate) assertions_accepted: AtomicUsize,
    pub(crate) dpop_accepted: AtomicUsize,
}

/// Everything the handle and the server share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) issuer: String,
    pub(crate) config: Config,
    pub(crate) state: Mutex<State>,
    pub(crate) counters: Counters,
    pub(crate) shutdown: watch::Sender<bool>,
    /// The HTTP client for back-channel logout requests, made on first use.
    pub(crate) http: OnceLock<reqwest::Client>,
}

/// Mutable state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) user: TestUser,
    /// Whether `user` was chosen explicitly (then the dev-mode page lists it too).
    pub(crate) user_explicit: bool,
    pub(crate) faults: Vec<Fault>,
    pub(crate) key: Arc<SigningKey>,
    /// A key of the other family, published beside `key` (for
    /// [`LogoutTokenFault::OtherAlgorithm`](crate::LogoutTokenFault::OtherAlgorithm)).
    pub(crate) other_key: Arc<SigningKey>,
    /// The first signing key [`rotate_keys`](crate::TestProvider::rotate_keys) replaced (for
    /// [`Fault::IdTokenRetiredKey`]); only the oldest is kept, however often keys rotate.
    pub(crate) retired: Option<Arc<SigningKey>>,
    /// Logins through `/authorize` that `/end_session` has not ended, oldest first.
    pub(crate) sessions: Vec<Session>,
    pub(crate) last_backchannel: Option<BackchannelRecord>,
    pub(crate) pending: HashMap<String, Pending>,
    pub(crate) codes: HashMap<String, CodeGrant>,
    pub(crate) access_tokens: HashMap<String, TokenGrant>,
    pub(crate) refresh_tokens: HashMap<String, TokenGrant>,
    pub(crate) last_authorize_params: Option<Vec<(String, String)>>,
    pub(crate) last_end_session_params: Option<Vec<(String, String)>>,
    pub(crate) last_sid: Option<String>,
    /// The authorization request parameters of the last accepted pushed request.
    pub(crate) last_par_params: Option<Vec<(String, String)>>,
    /// The `jti`s of accepted client assertions.
    pub(crate) replay: ReplayCache,
    /// Pushed authorization requests by `request_uri`.
    pub(crate) pushed: HashMap<String, Pushed>,
    /// The `jti`s of accepted DPoP proofs, per key thumbprint.
    pub(crate) dpop_replay: ReplayCache,
    /// The HMAC key of the stateless DPoP nonces.
    pub(crate) dpop_nonce_secret: [u8; 32],
}

/// A pushed authorization request (RFC 9126), waiting for `/authorize?request_uri=…`.
#[derive(Debug)]
pub(crate) struct Pushed {
    client_id: String,
    params: Params,
    expires_at: u64,
}

impl State {
    pub(crate) fn new(user: TestUser, user_explicit: bool, key: SigningKey, other_key: SigningKey) -> Self {
        Self {
            user,
            user_explicit,
            faults: Vec::new(),
            key: Arc::new(key),
            other_key: Arc::new(other_key),
            retired: None,
            sessions: Vec::new(),
            last_backchannel: None,
            pending: HashMap::new(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            last_authorize_params: None,
            last_end_session_params: None,
            last_sid: None,
            last_par_params: None,
            replay: ReplayCache::default(),
            pushed: HashMap::new(),
            dpop_replay: ReplayCache::default(),
            dpop_nonce_secret: {
                let mut secret = [0u8; 32];
                aws_lc_rs::rand::fill(&mut secret).expect("the system random number generator failed");
                secret
            },
        }
    }

    /// The published JWK Set: the ID-token key first, then the key of the other family.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.key.jwk(), self.other_key.jwk()] })
    }

    fn has(&self, fault: &Fault) -> bool {
        self.faults.contains(fault)
    }

    /// Drops expired codes, pending logins and access tokens.
    fn prune(&mut self, now: u64) {
        self.codes.retain(|_, c| c.expires_at > now);
        self.pending.retain(|_, p| p.expires_at > now);
        self.access_tokens.retain(|_, t| t.expires_at > now);
        self.pushed.retain(|_, p| p.expires_at > now);
    }

    /// The sum of the active [`Fault::ClockSkew`]s, in seconds.
    fn skew(&self) -> i64 {
        self.faults.iter().fold(0i64, |sum, f| match f {
            Fault::ClockSkew(seconds) => sum.saturating_add(*seconds),
            _ => sum,
        })
    }
}

/// How many open sessions the provider remembers; the oldest are forgotten beyond that.
const MAX_SESSIONS: usize = 10_000;

/// A login through `/authorize` (in dev mode: an approved one).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) client_id: String,
    pub(crate) sub: String,
    pub(crate) sid: String,
}

/// The last back-channel logout request the provider sent, and its answer.
#[derive(Debug, Clone)]
pub(crate) struct BackchannelRecord {
    pub(crate) token: String,
    /// Status and body; `None` if no answer came (connection refused, timeout …).
    pub(crate) response: Option<(u16, String)>,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    client_id: String,
    target: Target,
    nonce: Option<String>,
    scope: String,
    code_challenge: String,
    acr: Option<String>,
    login_hint: Option<String>,
    prompt_none: bool,
}

/// Where and how the authorization response goes.
#[derive(Debug, Clone)]
struct Target {
    redirect_uri: url::Url,
    state: Option<String>,
    form_post: bool,
}

/// A dev-mode login waiting for the user's choice.
#[derive(Debug)]
pub(crate) struct Pending {
    request: AuthRequest,
    expires_at: u64,
}

/// What a login granted: the basis of every token issued from it.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) user: TestUser,
    pub(crate) scope: String,
    pub(crate) sid: String,
    pub(crate) auth_time: u64,
    pub(crate) acr: Option<String>,
}

impl Grant {
    fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// An authorization code.
#[derive(Debug)]
pub(crate) struct CodeGrant {
    grant: Grant,
    nonce: Option<String>,
    redirect_uri: String,
    code_challenge: String,
    expires_at: u64,
    used: bool,
    /// Tokens issued from this code, revoked if the code is replayed (RFC 6749 §4.1.2).
    issued: Vec<String>,
}

/// An access or refresh token.
#[derive(Debug)]
pub(crate) struct TokenGrant {
    pub(crate) grant: Grant,
    pub(crate) expires_at: u64,
    pub(crate) revoked: bool,
    /// The resource the token is for (its introspected `aud`), when it was minted for one.
    pub(crate) audience: Option<String>,
    /// The RFC 7638 thumbprint of the DPoP key the token is bound to (RFC 9449), if it is.
    pub(crate) jkt: Option<String>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn client(&self, id: &str) -> Option<&TestClient> {
        self.config.clients.iter().find(|c| c.id == id)
    }

    pub(crate) fn wrong_issuer(&self) -> String {
        format!("{}/wrong-issuer", self.issuer)
    }

    /// Resolves when the provider shuts down.
    pub(crate) async fn shutdown_signal(&self) {
        let mut rx = self.shutdown.subscribe();
        // An error means the sender is gone, which also means shutting down.
        let _ = rx.wait_for(|&stop| stop).await;
    }

    /// Sleeps for `duration`, or less if the provider shuts down meanwhile.
    async fn delay(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.shutdown_signal() => {}
        }
    }

    /// The users shown on the dev-mode page and matched by `login_hint`.
    pub(crate) fn known_users(&self, st: &State) -> Vec<TestUser> {
        let mut users = self.config.users.clone();
        if (users.is_empty() || st.user_explicit) && !users.iter().any(|u| u.sub == st.user.sub) {
            users.insert(0, st.user.clone());
        }
        users
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// An OAuth error response: JSON `{"error", "error_description"}` (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    www_authenticate: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self { status, code, description: description.into(), www_authenticate: None }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if basic {
            e.www_authenticate = Some("Basic realm=\"auth-testkit\"".into());
        }
        e
    }

    fn invalid_token(description: &str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description);
        e.www_authenticate = Some(format!(
            "Bearer realm=\"auth-testkit\", error=\"invalid_token\", error_description=\"{description}\""
        ));
        e
    }

    fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// A `401` with a `DPoP` challenge (RFC 9449 §7.1) for a protected resource.
    fn dpop_challenge(code: &'static str, description: &str) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, description);
        let safe: String = description
            .chars()
            .map(|c| if c == '"' || c == '\\' || !(' '..='~').contains(&c) { '\'' } else { c })
            .collect();
        e.www_authenticate = Some(format!(
            "DPoP error=\"{code}\", error_description=\"{safe}\", algs=\"{}\"",
            dpop::DPOP_ALGS.join(" ")
        ));
        e
    }

    fn signing(e: &jsonwebtoken::errors::Error) -> Self {
        tracing::error!(error = %e, "auth-testkit could not sign a token");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "could not sign the token")
    }

    /// The response for an injected status fault.
    fn injected(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match status {
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            StatusCode::UNAUTHORIZED => "invalid_client",
            s if s.is_client_error() => "invalid_request",
            _ => "server_error",
        };
        Self::new(status, code, "fault injected by auth-testkit")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = json_response(self.status, &body);
        if let Some(challenge) = self.www_authenticate
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1).
fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
        body.to_string(),
    )
        .into_response()
}

fn html_response(status: StatusCode, body: String, csp: &str) -> Response {
    let csp = HeaderValue::from_str(csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        body,
    )
        .into_response()
}

const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html_response(status, html::message_page(title, text), PAGE_CSP)
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, value),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            ],
        )
            .into_response(),
        Err(_) => OAuthError::invalid_request("the redirect URI is not a valid header value").into_response(),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Parses a form body, refusing other content types and repeated parameters.
fn form_params(headers: &HeaderMap, body: &Bytes) -> Result<Params, OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let params = Params::parse(body);
    if let Some(name) = params.duplicate() {
        return Err(OAuthError::invalid_request(format!("parameter {name} is repeated")));
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------------

type S = AxumState<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/authorize/approve", post(approve))
        .route("/authorize/deny", post(deny))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/end_session", get(end_session_get).post(end_session_post))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
        .route("/par", post(par))
        .route("/dev/access-token", get(dev_access_token))
        .fallback(not_found)
        .with_state(shared)
}

/// The longest `audience`, `scope` or `user` the development token endpoint takes.
const DEV_PARAM_MAX: usize = 1024;

/// `GET /dev/access-token?audience=…&scope=…&user=…`, development mode only (404 otherwise): a
/// JWT access token (RFC 9068) for `user` (a known user's `sub` or email; default: the first
/// known user) and the default client, so that a developer can call the app's bearer-protected
/// routes with `curl`. Anyone can log in as anyone through the development provider anyway; this
/// only saves the login.
async fn dev_access_token(AxumState(s): S, RawQuery(query): RawQuery) -> Response {
    if !s.config.dev_mode {
        return not_found().await;
    }
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    if let Some(name) = params.duplicate() {
        return OAuthError::invalid_request(format!("{name} is repeated")).into_response();
    }
    let Some(audience) = params.get("audience").filter(|a| !a.is_empty()) else {
        return OAuthError::invalid_request("audience is missing: the app's API audience (API_AUDIENCE or APP_URL)")
            .into_response();
    };
    let scope = params.get("scope").unwrap_or("");
    let wanted = params.get("user");
    if [Some(audience), Some(scope), wanted].into_iter().flatten().any(|v| v.len() > DEV_PARAM_MAX) {
        return OAuthError::invalid_request(format!("a parameter is longer than {DEV_PARAM_MAX} bytes"))
            .into_response();
    }
    let (user, key) = {
        let st = s.lock();
        let users = s.known_users(&st);
        let user = match wanted {
            Some(w) => users.into_iter().find(|u| u.sub == w || u.email == w),
            None => users.into_iter().next(),
        };
        (user, Arc::clone(&st.key))
    };
    let Some(user) = user else {
        return OAuthError::invalid_request("no such user").into_response();
    };
    let now = now();
    let claims = json!({
        "iss": s.issuer,
        "sub": user.sub,
        "aud": audience,
        "client_id": s.config.default_client_id,
        "scope": scope,
        "iat": now,
        "exp": now + s.config.token_ttl.as_secs(),
        "jti": random_token(16),
    });
    match key.sign(&claims, "at+jwt", true) {
        Ok(token) => {
            let mut res = (StatusCode::OK, token).into_response();
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(_) => OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed".to_owned())
            .into_response(),
    }
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" }))
}

// ---------------------------------------------------------------------------------------------
// Discovery and JWKS
// ---------------------------------------------------------------------------------------------

async fn discovery(AxumState(s): S) -> Response {
    s.counters.discovery.fetch_add(1, Ordering::SeqCst);
    let faults = s.lock().faults.clone();
    if let Some(status) = faults.iter().find_map(|f| match f {
        Fault::DiscoveryStatus(code) => Some(*code),
        _ => None,
    }) {
        return OAuthError::injected(status).into_response();
    }
    let issuer = if faults.contains(&Fault::DiscoveryIssuerMismatch) { s.wrong_issuer() } else { s.issuer.clone() };
    json_response(StatusCode::OK, &discovery_document(&s, &issuer))
}

/// The client authentication methods every authenticated endpoint takes, as advertised.
const AUTH_METHODS: [&str; 5] =
    ["client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"];
/// The client assertion algorithms advertised (HS384 and HS512 are accepted too).
const ASSERTION_ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "EdDSA", "HS256"];

pub(crate) fn discovery_document(s: &Shared, issuer: &str) -> Value {
    let base = &s.issuer;
    let mut claims: Vec<String> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "azp",
        "sid",
        "at_hash",
        "email",
        "email_verified",
        "name",
        "picture",
    ]
    .iter()
    .map(|c| (*c).to_owned())
    .collect();
    for user in &s.config.users {
        for name in user.claims.keys() {
            if !claims.contains(name) {
                claims.push(name.clone());
            }
        }
    }
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "end_session_endpoint": format!("{base}/end_session"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [s.config.alg.as_str()],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "pushed_authorization_request_endpoint": format!("{base}/par"),
        "require_pushed_authorization_requests": s.config.require_par,
        "dpop_signing_alg_values_supported": dpop::DPOP_ALGS,
        "authorization_response_iss_parameter_supported": s.config.iss_parameter,
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "claims_supported": claims,
        "prompt_values_supported": ["none", "login", "consent"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}

async fn jwks(AxumState(s): S) -> Response {
    s.counters.jwks.fetch_add(1, Ordering::SeqCst);
    let (faults, jwks) = {
        let st = s.lock();
        (st.faults.clone(), st.jwks())
    };
    for fault in &faults {
        if let Fault::JwksDelay(d) = fault {
            s.delay(*d).await;
        }
    }
    if let Some(status) = faults.iter().find_map(|f| match f {
        Fault::JwksStatus(code) => Some(*code),
        _ => None,
    }) {
        return OAuthError::injected(status).into_response();
    }
    let mut body = jwks.to_string();
    if let Some(padding) = faults.iter().find_map(|f| match f {
        Fault::JwksPadding(n) => Some(*n),
        _ => None,
    }) {
        body.insert_str(1, &" ".repeat(padding));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/jwk-set+json"), (header::CACHE_CONTROL, "public, max-age=300")],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint
// ---------------------------------------------------------------------------------------------

async fn authorize_get(AxumState(s): S, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&s, &params)
}

async fn authorize_post(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return OAuthError::invalid_request("the body must be application/x-www-form-urlencoded").into_response();
    }
    authorize(&s, &Params::parse(&body))
}

/// An authorization request that cannot be answered by redirecting.
enum AuthorizeError {
    /// Shown to the user (400): the client or redirect URI is not trustworthy.
    NoRedirect(OAuthError),
    /// Sent back to the client (RFC 6749 §4.1.2.1).
    Redirect(Box<Target>, &'static str, String),
}

fn authorize(s: &Shared, params: &Params) -> Response {
    s.counters.authorize.fetch_add(1, Ordering::SeqCst);
    s.lock().last_authorize_params = Some(params.0.clone());
    let pushed;
    let params = if params.0.iter().any(|(k, _)| k == "request_uri") {
        match take_pushed(s, params) {
            Ok(p) => {
                pushed = p;
                &pushed
            }
            Err(e) => return e.into_response(),
        }
    } else if s.config.require_par {
        return OAuthError::invalid_request(
            "this provider requires pushed authorization requests (RFC 9126 §5): POST the request to \
             the pushed_authorization_request_endpoint first, then send only client_id and request_uri here",
        )
        .into_response();
    } else {
        params
    };
    let request = match validate_authorize(s, params) {
        Ok(request) => request,
        Err(AuthorizeError::NoRedirect(e)) => return e.into_response(),
        Err(AuthorizeError::Redirect(target, code, description)) => {
            return error_response(s, &target, code, &description);
        }
    };
    let mut st = s.lock();
    if st.has(&Fault::DenyConsent) {
        drop(st);
        return error_response(s, &request.target, "access_denied", "the user denied the request");
    }
    let users = s.known_users(&st);
    if s.config.dev_mode {
        if request.prompt_none {
            drop(st);
            return error_response(
                s,
                &request.target,
                "login_required",
                "the development provider always asks the user",
            );
        }
        let id = random_token(16);
        let page = html::login_page(&id, &request.client_id, &request.scope, &users);
        let now = now();
        st.prune(now);
        st.pending.insert(id, Pending { request, expires_at: now + CODE_TTL });
        return html_response(StatusCode::OK, page, PAGE_CSP);
    }
    let user = request
        .login_hint
        .as_deref()
        .and_then(|hint| users.into_iter().find(|u| u.sub == hint || u.email == hint))
        .unwrap_or_else(|| st.user.clone());
    grant_code(s, &mut st, request, user)
}

/// The parameters of the pushed authorization request that `params` (`client_id` and
/// `request_uri`) name, taken out of the store: a `request_uri` is good once (RFC 9126 §4).
/// Other parameters in `params` are ignored.
fn take_pushed(s: &Shared, params: &Params) -> Result<Params, OAuthError> {
    for name in ["client_id", "request_uri"] {
        if params.0.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(OAuthError::invalid_request(format!("parameter {name} is repeated")));
        }
    }
    let Some(client_id) = params.get("client_id") else {
        return Err(OAuthError::invalid_request("client_id is missing (RFC 9126 §4: it goes with request_uri)"));
    };
    let unknown = || {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_uri",
            "the request_uri is unknown, expired or already used (a pushed request is good once, for 60 s)",
        )
    };
    let uri = params.get("request_uri").ok_or_else(unknown)?;
    let mut st = s.lock();
    let now = now();
    let Some(entry) = st.pushed.get(uri) else {
        return Err(unknown());
    };
    if entry.expires_at <= now {
        st.pushed.remove(uri);
        return Err(unknown());
    }
    if entry.client_id != client_id {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_uri",
            format!("the request_uri was pushed by another client than {client_id:?}"),
        ));
    }
    Ok(st.pushed.remove(uri).map(|p| p.params).unwrap_or_default())
}

fn validate_authorize(s: &Shared, params: &Params) -> Result<AuthRequest, AuthorizeError> {
    let no_redirect = |e| Err(AuthorizeError::NoRedirect(e));
    let Some(client_id) = params.get("client_id") else {
        return no_redirect(OAuthError::invalid_request("client_id is missing"));
    };
    let Some(client) = s.client(client_id) else {
        return no_redirect(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            format!("unknown client_id {client_id:?}"),
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return no_redirect(OAuthError::invalid_request("redirect_uri is missing"));
    };
    let parsed = match url::Url::parse(redirect_uri) {
        Ok(url) if url.fragment().is_none() && client.accepts_redirect_uri(redirect_uri) => url,
        _ => {
            return no_redirect(OAuthError::invalid_request(format!(
                "redirect_uri {redirect_uri:?} is not registered for client {client_id:?}"
            )));
        }
    };
    let mut target = Target { redirect_uri: parsed, state: params.get("state").map(str::to_owned), form_post: false };
    let fail = |target: Target, code, description: &str| {
        Err(AuthorizeError::Redirect(Box::new(target), code, description.to_owned()))
    };
    match params.get("response_mode") {
        None | Some("query") => {}
        Some("form_post") => target.form_post = true,
        Some(_) => return fail(target, "invalid_request", "unsupported response_mode"),
    }
    if let Some(name) = params.duplicate() {
        let description = format!("parameter {name} is repeated");
        return fail(target, "invalid_request", &description);
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return fail(target, "invalid_request", "response_type is missing"),
        Some(_) => {
            return fail(target, "unsupported_response_type", "only response_type=code is supported");
        }
    }
    if params.get("request").is_some() {
        return fail(target, "request_not_supported", "request objects are not supported");
    }
    if params.get("request_uri").is_some() {
        return fail(target, "request_uri_not_supported", "request_uri is not supported");
    }
    if params.get("code_challenge_method") != Some("S256") {
        return fail(target, "invalid_request", "PKCE is required: code_challenge_method must be S256");
    }
    let Some(code_challenge) = params.get("code_challenge").filter(|c| util::is_pkce_value(c)) else {
        return fail(target, "invalid_request", "PKCE is required: code_challenge is missing or malformed");
    };
    if params.get("max_age").is_some_and(|m| m.parse::<u64>().is_err()) {
        return fail(target, "invalid_request", "max_age must be a number");
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        nonce: params.get("nonce").map(str::to_owned),
        scope: params.get("scope").unwrap_or("").to_owned(),
        code_challenge: code_challenge.to_owned(),
        acr: params.get("acr_values").and_then(|v| v.split(' ').next()).map(str::to_owned),
        login_hint: params.get("login_hint").map(str::to_owned),
        prompt_none: params.get("prompt").is_some_and(|p| p.split(' ').any(|v| v == "none")),
        target,
    })
}

/// Issues a code for `user` and redirects back to the client.
fn grant_code(s: &Shared, st: &mut State, request: AuthRequest, user: TestUser) -> Response {
    let now = now();
    st.prune(now);
    let code = random_token(32);
    let sid = random_token(16);
    st.last_sid = Some(sid.clone());
    if st.sessions.len() >= MAX_SESSIONS {
        st.sessions.remove(0);
    }
    st.sessions.push(Session { client_id: request.client_id.clone(), sub: user.sub.clone(), sid: sid.clone() });
    st.codes.insert(
        code.clone(),
        CodeGrant {
            grant: Grant {
                client_id: request.client_id,
                user,
                scope: request.scope,
                sid,
                auth_time: now,
                acr: request.acr,
            },
            nonce: request.nonce,
            redirect_uri: request.target.redirect_uri.to_string(),
            code_challenge: request.code_challenge,
            expires_at: now + CODE_TTL,
            used: false,
            issued: Vec::new(),
        },
    );
    authorization_response(s, st, &request.target, vec![("code".into(), code)])
}

fn error_response(s: &Shared, target: &Target, code: &str, description: &str) -> Response {
    let st = s.lock();
    authorization_response(
        s,
        &st,
        target,
        vec![("error".into(), code.into()), ("error_description".into(), description.into())],
    )
}

/// Sends `fields` (plus `state` and `iss`) to the client: a 302 with a query, or a form_post page.
fn authorization_response(s: &Shared, st: &State, target: &Target, mut fields: Vec<(String, String)>) -> Response {
    let state = if st.has(&Fault::CallbackStateWrong) {
        Some(format!("{}-wrong", target.state.as_deref().unwrap_or("state")))
    } else {
        target.state.clone()
    };
    if let Some(state) = state {
        fields.push(("state".into(), state));
    }
    let iss = if st.has(&Fault::CallbackIssWrong) {
        Some(s.wrong_issuer())
    } else if st.has(&Fault::CallbackIssMissing) || !s.config.iss_parameter {
        None
    } else {
        Some(s.issuer.clone())
    };
    if let Some(iss) = iss {
        fields.push(("iss".into(), iss));
    }
    if target.form_post {
        let hash = base64::engine::general_purpose::STANDARD.encode(util::sha256(html::FORM_POST_SCRIPT.as_bytes()));
        let csp = format!("default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'");
        let mut response =
            html_response(StatusCode::OK, html::form_post_page(target.redirect_uri.as_str(), &fields), &csp);
        response.headers_mut().insert(crate::browser::FORM_POST_MARKER, HeaderValue::from_static("1"));
        return response;
    }
    let mut url = target.redirect_uri.clone();
    url.query_pairs_mut().extend_pairs(fields);
    redirect(url.as_str())
}

async fn approve(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_params(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut st = s.lock();
    let Some(pending) = take_pending(&mut st, &params) else {
        return expired_page();
    };
    let users = s.known_users(&st);
    let Some(user) = params.get("sub").and_then(|sub| users.into_iter().find(|u| u.sub == sub)) else {
        return message(StatusCode::BAD_REQUEST, "Unknown user", "Choose one of the listed users.");
    };
    grant_code(&s, &mut st, pending.request, user)
}

async fn deny(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_params(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let pending = take_pending(&mut s.lock(), &params);
    match pending {
        Some(p) => error_response(&s, &p.request.target, "access_denied", "the user denied the request"),
        None => expired_page(),
    }
}

fn take_pending(st: &mut State, params: &Params) -> Option<Pending> {
    let pending = st.pending.remove(params.get("request_id")?)?;
    (pending.expires_at > now()).then_some(pending)
}

fn expired_page() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Login request expired",
        "This login request has expired or was already answered. Start the login again.",
    )
}

// ---------------------------------------------------------------------------------------------
// Pushed authorization requests (RFC 9126)
// ---------------------------------------------------------------------------------------------

/// The client authentication parameters, which are no part of the pushed authorization request.
const CLIENT_AUTH_PARAMS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

async fn par(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    s.counters.par.fetch_add(1, Ordering::SeqCst);
    if s.lock().has(&Fault::ParEndpointDown) {
        return OAuthError::injected(503).into_response();
    }
    match par_inner(&s, &headers, &body) {
        Ok(body) => json_response(StatusCode::CREATED, &body),
        Err(e) => e.into_response(),
    }
}

/// RFC 9126 §2: authenticates the client as the token endpoint does, validates the
/// authorization request as `/authorize` does (errors as JSON, never a redirect) and stores it.
fn par_inner(s: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Value, OAuthError> {
    let params = form_params(headers, body)?;
    let client = authenticate_client(s, headers, &params, "/par")?;
    if params.0.iter().any(|(k, _)| k == "request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be sent to the pushed authorization request endpoint (RFC 9126 §2.1)",
        ));
    }
    if params.get("client_id").is_none() {
        return Err(OAuthError::invalid_request(
            "client_id is missing: a pushed authorization request carries it as /authorize does (RFC 9126 §2.1)",
        ));
    }
    let request = Params(params.0.into_iter().filter(|(k, _)| !CLIENT_AUTH_PARAMS.contains(&k.as_str())).collect());
    match validate_authorize(s, &request) {
        Ok(_) => {}
        Err(AuthorizeError::NoRedirect(mut e)) => {
            e.status = StatusCode::BAD_REQUEST;
            return Err(e);
        }
        Err(AuthorizeError::Redirect(_, code, description)) => {
            return Err(OAuthError::new(StatusCode::BAD_REQUEST, code, description));
        }
    }
    let mut st = s.lock();
    let now = now();
    st.prune(now);
    if st.pushed.len() >= MAX_PUSHED {
        return Err(OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            format!("the provider holds {MAX_PUSHED} unexpired pushed authorization requests already; retry later"),
        ));
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token(24));
    st.last_par_params = Some(request.0.clone());
    st.pushed.insert(
        request_uri.clone(),
        Pushed { client_id: client.id.clone(), params: request, expires_at: now + PAR_TTL },
    );
    Ok(json!({ "request_uri": request_uri, "expires_in": PAR_TTL }))
}

// ---------------------------------------------------------------------------------------------
// Client authentication
// ---------------------------------------------------------------------------------------------

/// Authenticates the client by its registered method (RFC 6749 §2.3.1, OIDC Core §9, RFC 7523
/// §2.2) at the endpoint `path` (`/token`, `/introspect`, `/revoke`, `/par`).
fn authenticate_client<'a>(
    s: &'a Shared,
    headers: &HeaderMap,
    params: &Params,
    path: &str,
) -> Result<&'a TestClient, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, credentials)| credentials.trim());
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion_type = params.get("client_assertion_type");
    let client_assertion = params.get("client_assertion");

    if assertion_type.is_some() || client_assertion.is_some() {
        if basic.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request("use one client authentication method, not several"));
        }
        let (Some(assertion_type), Some(client_assertion)) = (assertion_type, client_assertion) else {
            return Err(OAuthError::invalid_request(
                "client_assertion_type and client_assertion go together (RFC 7521 §4.2)",
            ));
        };
        if assertion_type != assertion::ASSERTION_TYPE {
            return Err(OAuthError::invalid_client(
                format!("unsupported client_assertion_type {assertion_type:?}: only {}", assertion::ASSERTION_TYPE),
                false,
            ));
        }
        return authenticate_assertion(s, client_assertion, body_id, path);
    }

    if let Some(credentials) = basic {
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request("use one client authentication method, not several"));
        }
        let bad = || OAuthError::invalid_client("malformed Basic credentials", true);
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        let (id, secret) = (util::form_decode(id).ok_or_else(bad)?, util::form_decode(secret).ok_or_else(bad)?);
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request("client_id in the body differs from the Basic credentials"));
        }
        let client = s.client(&id).ok_or_else(|| OAuthError::invalid_client("unknown client", true))?;
        if client.auth_method != ClientAuthMethod::SecretBasic {
            return Err(OAuthError::invalid_client(
                format!("client {id:?} is registered for {}, not client_secret_basic", client.auth_method),
                true,
            ));
        }
        return check_secret(client, &secret, true);
    }

    let Some(id) = body_id else {
        return Err(OAuthError::invalid_client("no client authentication", false));
    };
    let client = s.client(id).ok_or_else(|| OAuthError::invalid_client("unknown client", false))?;
    match (client.auth_method, body_secret) {
        (ClientAuthMethod::SecretPost, Some(secret)) => check_secret(client, secret, false),
        (ClientAuthMethod::None, None) => Ok(client),
        (ClientAuthMethod::None, Some(_)) => {
            Err(OAuthError::invalid_client("a public client must not send a secret", false))
        }
        (method, _) => Err(OAuthError::invalid_client(
            format!("client {id:?} must authenticate with {method}"),
            method == ClientAuthMethod::SecretBasic,
        )),
    }
}

/// Verifies a JWT client assertion (RFC 7523 §3) for the endpoint `path`, by the provider's
/// (possibly skewed) clock, and records its `jti`.
fn authenticate_assertion<'a>(
    s: &'a Shared,
    client_assertion: &str,
    body_id: Option<&str>,
    path: &str,
) -> Result<&'a TestClient, OAuthError> {
    let (skew, token_endpoint_only) = {
        let st = s.lock();
        (st.skew(), st.has(&Fault::AssertionAudienceTokenEndpointOnly))
    };
    let token_endpoint = format!("{}/token", s.issuer);
    let audiences =
        if token_endpoint_only { vec![token_endpoint] } else { vec![s.issuer.clone(), format!("{}{path}", s.issuer)] };
    let real_now = i64::try_from(now()).unwrap_or(i64::MAX);
    let clock = real_now.saturating_add(skew);
    let refuse = |e: assertion::AssertionError| OAuthError::invalid_client(e.to_string(), false);
    let verified = assertion::verify(
        &s.config.clients,
        client_assertion,
        body_id,
        &assertion::Expect { audiences: &audiences, now: clock },
    )
    .map_err(refuse)?;
    s.lock().replay.insert(&verified.client.id, &verified.jti, verified.exp, real_now.min(clock)).map_err(refuse)?;
    s.counters.assertions_accepted.fetch_add(1, Ordering::SeqCst);
    Ok(verified.client)
}

fn check_secret<'a>(client: &'a TestClient, secret: &str, basic: bool) -> Result<&'a TestClient, OAuthError> {
    match &client.secret {
        Some(expected) if util::secure_eq(expected, secret) => Ok(client),
        _ => Err(OAuthError::invalid_client("wrong client secret", basic)),
    }
}

// ---------------------------------------------------------------------------------------------
// DPoP (RFC 9449)
// ---------------------------------------------------------------------------------------------

/// The `DPoP` request header (a proof) and the `DPoP-Nonce` response header.
const DPOP: HeaderName = HeaderName::from_static("dpop");
const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Why a request's DPoP proof was refused.
#[derive(Debug)]
enum DpopRefusal {
    /// The proof fails a check (`invalid_dpop_proof`).
    Invalid(dpop::DpopError),
    /// The proof lacks a valid server nonce (`use_dpop_nonce`).
    UseNonce,
}

/// Whether DPoP proofs must carry a server nonce now (the builder option or the fault).
fn dpop_nonce_required(s: &Shared, st: &State) -> bool {
    s.config.require_dpop_nonce || st.has(&Fault::DpopNonceRequired)
}

/// Verifies the request's DPoP proof, if it has a `DPoP` header, for the endpoint `path` and
/// method `htm` (and `access_token`'s `ath`), by the provider's (possibly skewed) clock; checks
/// the nonce when one is required and records the `jti`. `Ok(None)` without a proof, else the
/// thumbprint of the proof's key.
fn dpop_proof(
    s: &Shared,
    headers: &HeaderMap,
    htm: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<String>, DpopRefusal> {
    let mut values = headers.get_all(DPOP).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DpopRefusal::Invalid(dpop::DpopError::Multiple));
    }
    let proof = first.to_str().map_err(|_| DpopRefusal::Invalid(dpop::DpopError::NotAscii))?;
    let (skew, nonce_required, secret) = {
        let st = s.lock();
        (st.skew(), dpop_nonce_required(s, &st), st.dpop_nonce_secret)
    };
    let real_now = i64::try_from(now()).unwrap_or(i64::MAX);
    let clock = real_now.saturating_add(skew);
    let htu = format!("{}{path}", s.issuer);
    let verified = dpop::verify(proof, &dpop::Expect { htm, htu: &htu, access_token, now: clock })
        .map_err(DpopRefusal::Invalid)?;
    if nonce_required && !verified.nonce.as_deref().is_some_and(|n| dpop::nonce_valid(&secret, n, now())) {
        return Err(DpopRefusal::UseNonce);
    }
    dpop::record(&mut s.lock().dpop_replay, &verified, real_now, clock).map_err(DpopRefusal::Invalid)?;
    s.counters.dpop_accepted.fetch_add(1, Ordering::SeqCst);
    Ok(Some(verified.jkt))
}

/// Adds a fresh `DPoP-Nonce` header (RFC 9449 §8) when nonces are required.
fn with_dpop_nonce(s: &Shared, mut response: Response) -> Response {
    let nonce = {
        let st = s.lock();
        dpop_nonce_required(s, &st).then(|| dpop::new_nonce(&st.dpop_nonce_secret, now()))
    };
    if let Some(nonce) = nonce
        && let Ok(value) = HeaderValue::from_str(&nonce)
    {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

async fn token(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    s.counters.token.fetch_add(1, Ordering::SeqCst);
    if url::form_urlencoded::parse(&body).any(|(k, v)| k == "grant_type" && v == "refresh_token") {
        s.counters.refresh.fetch_add(1, Ordering::SeqCst);
    }
    let faults = s.lock().faults.clone();
    for fault in &faults {
        match fault {
            Fault::TokenEndpointHang => {
                s.shutdown_signal().await;
                return OAuthError::injected(503).into_response();
            }
            Fault::TokenEndpointDelay(d) => s.delay(*d).await,
            _ => {}
        }
    }
    if let Some(status) = faults.iter().find_map(|f| match f {
        Fault::TokenEndpointStatus(code) => Some(*code),
        _ => None,
    }) {
        return OAuthError::injected(status).into_response();
    }
    let response = match token_inner(&s, &headers, &body) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(mut e) if faults.contains(&Fault::TokenErrorsAsGitHub) => {
            e.status = StatusCode::OK;
            e.www_authenticate = None;
            e.code = match e.code {
                "invalid_client" => "incorrect_client_credentials",
                "invalid_grant" => "bad_verification_code",
                other => other,
            };
            e.into_response()
        }
        Err(e) => e.into_response(),
    };
    with_dpop_nonce(&s, response)
}

fn token_inner(s: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Value, OAuthError> {
    let params = form_params(headers, body)?;
    let client = authenticate_client(s, headers, &params, "/token")?;
    // Fetch (or generate, once per process) the rogue key before taking the lock.
    let rogue = if s.lock().has(&Fault::IdTokenUnknownKid) {
        Some(SigningKey::rogue(s.config.alg).map_err(|e| {
            tracing::error!(error = %e, "auth-testkit could not make a key");
            OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no key")
        })?)
    } else {
        None
    };
    // RFC 9449 §5: a proof binds the tokens issued to its key. It is checked before the grant,
    // so that a refused proof (or a missing nonce) does not use up the code.
    let jkt = dpop_proof(s, headers, "POST", "/token", None).map_err(|refusal| match refusal {
        DpopRefusal::Invalid(e) => OAuthError::invalid_dpop_proof(e.to_string()),
        DpopRefusal::UseNonce => OAuthError::new(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "this provider requires a server nonce in DPoP proofs (RFC 9449 §8): retry with the DPoP-Nonce header's value as nonce",
        ),
    })?;
    match params.get("grant_type") {
        Some("authorization_code") => code_grant(s, client, &params, rogue.as_ref(), jkt),
        Some("refresh_token") => refresh_grant(s, client, &params, rogue.as_ref(), jkt),
        Some(_) => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "supported: authorization_code, refresh_token",
        )),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
    }
}

fn code_grant(
    s: &Shared,
    client: &TestClient,
    params: &Params,
    rogue: Option<&SigningKey>,
    jkt: Option<String>,
) -> Result<Value, OAuthError> {
    let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let mut st = s.lock();
    let now = now();
    let Some(entry) = st.codes.get_mut(code) else {
        return Err(OAuthError::invalid_grant("unknown or expired authorization code"));
    };
    if entry.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if entry.used {
        // RFC 6749 §4.1.2: a replayed code revokes what it granted.
        let issued = std::mem::take(&mut entry.issued);
        for token in issued {
            revoke_token(&mut st, &token);
        }
        return Err(OAuthError::invalid_grant("the authorization code was already used"));
    }
    // Single use, whatever happens next: a failed attempt burns the code too.
    entry.used = true;
    if entry.expires_at <= now {
        return Err(OAuthError::invalid_grant("the authorization code expired"));
    }
    if params.get("redirect_uri") != Some(entry.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request"));
    }
    let verifier =
        params.get("code_verifier").ok_or_else(|| OAuthError::invalid_request("code_verifier is missing"))?;
    if !util::is_pkce_value(verifier) {
        return Err(OAuthError::invalid_request("code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"));
    }
    if !util::secure_eq(&util::pkce_s256(verifier), &entry.code_challenge) {
        return Err(OAuthError::invalid_grant("PKCE verification failed: S256(code_verifier) != code_challenge"));
    }
    let grant = entry.grant.clone();
    let nonce = entry.nonce.clone();
    let issued = issue(s, &mut st, client, &grant, nonce.as_deref(), rogue, false, jkt)?;
    if let Some(entry) = st.codes.get_mut(code) {
        entry.issued = issued.tokens;
    }
    Ok(issued.body)
}

fn refresh_grant(
    s: &Shared,
    client: &TestClient,
    params: &Params,
    rogue: Option<&SigningKey>,
    jkt: Option<String>,
) -> Result<Value, OAuthError> {
    let token = params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let mut st = s.lock();
    let Some(entry) = st.refresh_tokens.get(token).filter(|t| !t.revoked) else {
        return Err(OAuthError::invalid_grant("unknown, rotated or revoked refresh token"));
    };
    if entry.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    // RFC 9449 §5 binds a public client's refresh token to its DPoP key; this provider binds
    // every client's (stricter): a refresh needs a proof by the same key.
    if let Some(bound) = &entry.jkt {
        match jkt.as_deref() {
            None => {
                return Err(OAuthError::invalid_dpop_proof(format!(
                    "the refresh token is DPoP-bound (RFC 9449 §5): the refresh request needs a DPoP proof by the key with jkt {bound}"
                )));
            }
            Some(found) if found != bound => {
                return Err(OAuthError::invalid_dpop_proof(format!(
                    "the DPoP proof's key (jkt {found}) is not the key the refresh token is bound to (jkt {bound})"
                )));
            }
            Some(_) => {}
        }
    }
    if st.has(&Fault::RefreshDenied) {
        return Err(OAuthError::invalid_grant("the grant was revoked (fault injected by auth-testkit)"));
    }
    let mut grant = entry.grant.clone();
    if let Some(requested) = params.get("scope") {
        // RFC 6749 §6: the new scope must not exceed the original.
        if let Some(extra) = requested.split(' ').find(|s| !grant.has_scope(s)) {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!("scope {extra:?} was not granted originally"),
            ));
        }
        grant.scope = requested.to_owned();
    }
    let rotate = !st.has(&Fault::RefreshTokenNotRotated);
    if rotate && let Some(old) = st.refresh_tokens.get_mut(token) {
        old.revoked = true;
    }
    let mut issued = issue(s, &mut st, client, &grant, None, rogue, true, jkt)?;
    if let Some(seconds) = st.faults.iter().find_map(|f| match f {
        Fault::RefreshExpiresIn(seconds) => Some(*seconds),
        _ => None,
    }) {
        issued.body["expires_in"] = seconds.into();
    }
    if !rotate && let Some(object) = issued.body.as_object_mut() {
        // Keep the old refresh token valid and drop the new one.
        if let Some(Value::String(new)) = object.remove("refresh_token") {
            st.refresh_tokens.remove(&new);
        }
    }
    Ok(issued.body)
}

struct Issued {
    body: Value,
    tokens: Vec<String>,
}

/// Issues an access token, a refresh token and (with scope `openid`) an ID token; both tokens
/// bound to the DPoP key `jkt` when given.
#[allow(clippy::too_many_arguments)]
fn issue(
    s: &Shared,
    st: &mut State,
    client: &TestClient,
    grant: &Grant,
    nonce: Option<&str>,
    rogue: Option<&SigningKey>,
    refresh: bool,
    jkt: Option<String>,
) -> Result<Issued, OAuthError> {
    let now = now();
    st.prune(now);
    let ttl = s.config.token_ttl.as_secs();
    let access_token = random_token(32);
    let refresh_token = random_token(32);
    let mut body = json!({
        "access_token": access_token,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": ttl,
        "refresh_token": refresh_token,
        "scope": grant.scope,
    });
    let wants_id_token = grant.has_scope("openid") && !(refresh && st.has(&Fault::RefreshWithoutIdToken));
    if wants_id_token {
        let id_token = id_token(s, st, client, grant, nonce, &access_token, rogue, refresh)?;
        body["id_token"] = Value::String(id_token);
    }
    st.access_tokens.insert(
        access_token.clone(),
        TokenGrant { grant: grant.clone(), expires_at: now + ttl, revoked: false, audience: None, jkt: jkt.clone() },
    );
    st.refresh_tokens.insert(
        refresh_token.clone(),
        TokenGrant { grant: grant.clone(), expires_at: u64::MAX, revoked: false, audience: None, jkt },
    );
    Ok(Issued { body, tokens: vec![access_token, refresh_token] })
}

/// Builds and signs an ID token, applying the active faults.
#[allow(clippy::too_many_arguments)]
fn id_token(
    s: &Shared,
    st: &State,
    client: &TestClient,
    grant: &Grant,
    nonce: Option<&str>,
    access_token: &str,
    rogue: Option<&SigningKey>,
    refresh: bool,
) -> Result<String, OAuthError> {
    let now = now();
    let ttl = s.config.token_ttl.as_secs();
    let mut claims: Map<String, Value> = grant.user.claims_for(&grant.scope);
    let mut set = |k: &str, v: Value| {
        claims.insert(k.to_owned(), v);
    };
    set("iss", s.issuer.clone().into());
    set("aud", client.id.clone().into());
    set("azp", client.id.clone().into());
    set("iat", now.into());
    set("exp", (now + ttl).into());
    set("auth_time", grant.auth_time.into());
    set("sid", grant.sid.clone().into());
    set("at_hash", util::half_sha256(access_token).into());
    if let Some(nonce) = nonce {
        set("nonce", nonce.into());
    }
    if let Some(acr) = &grant.acr {
        set("acr", acr.clone().into());
    }

    let mut missing: Vec<&str> = Vec::new();
    let mut skew = 0i64;
    for fault in &st.faults {
        match fault {
            Fault::IdTokenWrongIssuer => set("iss", s.wrong_issuer().into()),
            Fault::IdTokenWrongAudience => set("aud", OTHER_CLIENT.into()),
            Fault::IdTokenExtraAudience => set("aud", json!([client.id, OTHER_CLIENT])),
            Fault::IdTokenWrongAzp => set("azp", OTHER_CLIENT.into()),
            Fault::IdTokenWrongNonce => set("nonce", format!("{}-wrong", nonce.unwrap_or("nonce")).into()),
            Fault::IdTokenMissingNonce => missing.push("nonce"),
            Fault::IdTokenExpired => {
                set("iat", now.saturating_sub(7200).into());
                set("exp", now.saturating_sub(3600).into());
            }
            Fault::IdTokenIatInFuture => {
                set("iat", (now + 3600).into());
                set("exp", (now + 3600 + ttl).into());
            }
            Fault::IdTokenMissingClaim(name) => missing.push(*name),
            Fault::AtHashMismatch => {
                set("at_hash", util::half_sha256(&format!("{access_token}x")).into());
            }
            Fault::IdTokenAuthTimeStale => set("auth_time", now.saturating_sub(86_400).into()),
            Fault::ClockSkew(seconds) => skew = skew.saturating_add(*seconds),
            Fault::RefreshIdTokenSubChanged if refresh => {
                set("sub", format!("{}-other", grant.user.sub).into());
            }
            _ => {}
        }
    }
    if skew != 0 {
        // The provider's clock is off: every time it writes is, after the other faults.
        let iat = claims.get("iat").and_then(Value::as_u64);
        claims.insert("nbf".to_owned(), iat.unwrap_or(now).into());
        for name in ["iat", "exp", "auth_time", "nbf"] {
            if let Some(t) = claims.get(name).and_then(Value::as_u64) {
                claims.insert(name.to_owned(), t.saturating_add_signed(skew).into());
            }
        }
    }
    for name in missing {
        claims.remove(name);
    }
    let claims = Value::Object(claims);

    let token = if st.has(&Fault::IdTokenAlgNone) {
        keys::unsigned(&claims, "JWT")
    } else if st.has(&Fault::IdTokenHs256) {
        let secret = client.secret.as_deref().unwrap_or_default();
        keys::sign_hs256(&claims, secret.as_bytes()).map_err(|e| OAuthError::signing(&e))?
    } else {
        let key = match rogue {
            Some(rogue) if st.has(&Fault::IdTokenUnknownKid) => rogue,
            _ if st.has(&Fault::IdTokenRetiredKey) => st.retired.as_deref().unwrap_or(&*st.key),
            _ => &*st.key,
        };
        key.sign(&claims, "JWT", !st.has(&Fault::IdTokenNoKid)).map_err(|e| OAuthError::signing(&e))?
    };
    Ok(if st.has(&Fault::IdTokenBadSignature) { keys::corrupt_signature(&token) } else { token })
}

fn revoke_token(st: &mut State, token: &str) -> bool {
    if let Some(t) = st.access_tokens.get_mut(token) {
        t.revoked = true;
        true
    } else if let Some(t) = st.refresh_tokens.get_mut(token) {
        t.revoked = true;
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// UserInfo, revocation, introspection
// ---------------------------------------------------------------------------------------------

async fn userinfo(AxumState(s): S, method: Method, headers: HeaderMap) -> Response {
    s.counters.userinfo.fetch_add(1, Ordering::SeqCst);
    let injected = s.lock().faults.iter().find_map(|f| match f {
        Fault::UserinfoStatus(code) => Some(*code),
        _ => None,
    });
    if let Some(status) = injected {
        return OAuthError::injected(status).into_response();
    }
    let response = match userinfo_inner(&s, &method, &headers) {
        Ok(claims) => json_response(StatusCode::OK, &claims),
        Err(e) => e.into_response(),
    };
    with_dpop_nonce(&s, response)
}

/// RFC 6750 Bearer and RFC 9449 §7 DPoP access to the UserInfo claims.
fn userinfo_inner(s: &Shared, method: &Method, headers: &HeaderMap) -> Result<Value, OAuthError> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(scheme, token)| (scheme, token.trim()));
    let (dpop_scheme, token) = match credentials {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => (false, token),
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => (true, token),
        _ => {
            // RFC 6750 §3.1: no error code when the request had no credentials.
            let mut e =
                OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_request", "a Bearer access token is required");
            e.www_authenticate = Some("Bearer realm=\"auth-testkit\"".into());
            return Err(e);
        }
    };
    let jkt = if dpop_scheme {
        match dpop_proof(s, headers, method.as_str(), "/userinfo", Some(token)) {
            Ok(Some(jkt)) => Some(jkt),
            Ok(None) => {
                return Err(OAuthError::dpop_challenge(
                    "invalid_dpop_proof",
                    "a DPoP access token needs a DPoP header with a proof (RFC 9449 §7.1)",
                ));
            }
            Err(DpopRefusal::Invalid(e)) => {
                return Err(OAuthError::dpop_challenge("invalid_dpop_proof", &e.to_string()));
            }
            Err(DpopRefusal::UseNonce) => {
                return Err(OAuthError::dpop_challenge(
                    "use_dpop_nonce",
                    "this provider requires a server nonce in DPoP proofs: retry with the DPoP-Nonce header's value",
                ));
            }
        }
    } else {
        None
    };
    let st = s.lock();
    let now = now();
    let unknown = "the access token is unknown, expired or revoked";
    let Some(grant) = st.access_tokens.get(token).filter(|t| !t.revoked && t.expires_at > now) else {
        return Err(if dpop_scheme {
            OAuthError::dpop_challenge("invalid_token", unknown)
        } else {
            OAuthError::invalid_token(unknown)
        });
    };
    match (&grant.jkt, &jkt) {
        (None, None) => {}
        (Some(_), None) => {
            return Err(OAuthError::dpop_challenge(
                "invalid_token",
                "the access token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof (RFC 9449 §7.1)",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::dpop_challenge(
                "invalid_token",
                "the access token is not DPoP-bound: send it as a Bearer token",
            ));
        }
        (Some(bound), Some(found)) if bound != found => {
            return Err(OAuthError::dpop_challenge(
                "invalid_dpop_proof",
                &format!(
                    "the DPoP proof's key (jkt {found}) is not the key the access token is bound to (jkt {bound})"
                ),
            ));
        }
        (Some(_), Some(_)) => {}
    }
    let mut claims = grant.grant.user.claims_for(&grant.grant.scope);
    if st.has(&Fault::UserinfoSubMismatch) {
        claims.insert("sub".into(), format!("{}-other", grant.grant.user.sub).into());
    }
    Ok(Value::Object(claims))
}

async fn revoke(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    s.counters.revoke.fetch_add(1, Ordering::SeqCst);
    let result = form_params(&headers, &body).and_then(|params| {
        let client = authenticate_client(&s, &headers, &params, "/revoke")?;
        let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let mut st = s.lock();
        // RFC 7009 §2.2: unknown tokens, and tokens of other clients, still get a 200.
        let owned = st
            .access_tokens
            .get(token)
            .or_else(|| st.refresh_tokens.get(token))
            .is_some_and(|t| t.grant.client_id == client.id);
        if owned {
            revoke_token(&mut st, token);
        }
        Ok(())
    });
    match result {
        Ok(()) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn introspect(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    s.counters.introspect.fetch_add(1, Ordering::SeqCst);
    let delay = s.lock().faults.iter().find_map(|f| match f {
        Fault::IntrospectionDelay(d) => Some(*d),
        _ => None,
    });
    if let Some(delay) = delay {
        s.delay(delay).await;
    }
    let injected = s.lock().faults.iter().find_map(|f| match f {
        Fault::IntrospectionStatus(code) => Some(*code),
        _ => None,
    });
    if let Some(status) = injected {
        return OAuthError::injected(status).into_response();
    }
    let result = form_params(&headers, &body).and_then(|params| {
        authenticate_client(&s, &headers, &params, "/introspect")?;
        let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let st = s.lock();
        let now = now();
        if let Some(t) = st.access_tokens.get(token).filter(|t| !t.revoked && t.expires_at > now) {
            let mut answer = json!({
                "active": true,
                "scope": t.grant.scope,
                "client_id": t.grant.client_id,
                "sub": t.grant.user.sub,
                "iss": s.issuer,
                "exp": t.expires_at,
                "token_type": if t.jkt.is_some() { "DPoP" } else { "Bearer" },
            });
            if let Some(audience) = &t.audience {
                answer["aud"] = json!(audience);
            }
            if let Some(jkt) = &t.jkt {
                answer["cnf"] = json!({ "jkt": jkt });
            }
            return Ok(answer);
        }
        if let Some(t) = st.refresh_tokens.get(token).filter(|t| !t.revoked) {
            let mut answer = json!({
                "active": true,
                "scope": t.grant.scope,
                "client_id": t.grant.client_id,
                "sub": t.grant.user.sub,
                "iss": s.issuer,
                "token_type": "refresh_token",
            });
            if let Some(jkt) = &t.jkt {
                answer["cnf"] = json!({ "jkt": jkt });
            }
            return Ok(answer);
        }
        Ok(json!({ "active": false }))
    });
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// RP-initiated logout
// ---------------------------------------------------------------------------------------------

async fn end_session_get(AxumState(s): S, RawQuery(query): RawQuery) -> Response {
    end_session(&s, &Params::parse(query.unwrap_or_default().as_bytes())).await
}

async fn end_session_post(AxumState(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return OAuthError::invalid_request("the body must be application/x-www-form-urlencoded").into_response();
    }
    end_session(&s, &Params::parse(&body)).await
}

/// OpenID Connect RP-Initiated Logout 1.0 §2–3, and Back-Channel Logout 1.0 §2.5: the session
/// ended is announced to its client's back-channel logout URI before the browser is redirected.
async fn end_session(s: &Shared, params: &Params) -> Response {
    match end_session_inner(s, params) {
        Ok((response, ended)) => {
            if let Some(session) = ended {
                notify_logout(s, &session).await;
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Validates the request, ends the session it names and returns the response for the browser.
fn end_session_inner(s: &Shared, params: &Params) -> Result<(Response, Option<Session>), OAuthError> {
    s.counters.end_session.fetch_add(1, Ordering::SeqCst);
    s.lock().last_end_session_params = Some(params.0.clone());
    if let Some(name) = params.duplicate() {
        return Err(OAuthError::invalid_request(format!("parameter {name} is repeated")));
    }
    // The hint's audience names the client, its `sid` and `sub` the session. It is not
    // verified: it decides nothing but which test session ends.
    let hint = match params.get("id_token_hint") {
        None => None,
        Some(hint) => Some(
            parse_hint(hint).ok_or_else(|| OAuthError::invalid_request("id_token_hint is not a JWT with an aud"))?,
        ),
    };
    let client_id = match (params.get("client_id"), hint.as_ref().map(|h| h.aud.as_str())) {
        (Some(id), Some(aud)) if id != aud => {
            return Err(OAuthError::invalid_request("client_id differs from the id_token_hint's aud"));
        }
        (Some(id), _) => Some(id),
        (None, aud) => aud,
    };
    let response = match params.get("post_logout_redirect_uri") {
        None => message(StatusCode::OK, "Signed out", "You are signed out."),
        Some(uri) => {
            let Some(client) = client_id.and_then(|id| s.client(id)) else {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri needs a known client_id or id_token_hint",
                ));
            };
            let mut url = match url::Url::parse(uri) {
                Ok(url) if url.fragment().is_none() && client.accepts_post_logout_redirect_uri(uri) => url,
                _ => {
                    return Err(OAuthError::invalid_request(format!(
                        "post_logout_redirect_uri {uri:?} is not registered for client {:?}",
                        client.id
                    )));
                }
            };
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            redirect(url.as_str())
        }
    };
    let ended = take_session(&mut s.lock(), client_id, hint.as_ref());
    Ok((response, ended))
}

/// Removes and returns the newest open session that matches the client and the hint's `sid` and
/// `sub` (each only if given).
fn take_session(st: &mut State, client_id: Option<&str>, hint: Option<&Hint>) -> Option<Session> {
    let index = st.sessions.iter().rposition(|session| {
        client_id.is_none_or(|id| session.client_id == id)
            && hint.is_none_or(|h| {
                h.sid.as_deref().is_none_or(|sid| session.sid == sid)
                    && h.sub.as_deref().is_none_or(|sub| session.sub == sub)
            })
    })?;
    Some(st.sessions.remove(index))
}

/// Sends a logout token for `session` to its client's back-channel logout URI, if it has one.
/// Failures are recorded and logged; the logout goes on regardless.
async fn notify_logout(s: &Shared, session: &Session) {
    let Some(uri) = s.client(&session.client_id).and_then(|c| c.backchannel_logout_uri.as_deref()) else {
        return;
    };
    let token = match backchannel::logout_token(s, &session.client_id, Some(&session.sub), Some(&session.sid), None) {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(error = %e, "auth-testkit could not sign a logout token");
            return;
        }
    };
    match backchannel::send(s, uri, &token).await {
        Ok((status, _)) => tracing::debug!(uri, status, sid = %session.sid, "back-channel logout sent"),
        Err(e) => tracing::warn!(uri, error = %e, "back-channel logout request failed"),
    }
}

/// What `/end_session` reads from an (unverified) `id_token_hint`.
#[derive(Debug)]
struct Hint {
    aud: String,
    sub: Option<String>,
    sid: Option<String>,
}

/// The first `aud` (required), `sub` and `sid` of an (unverified) JWT.
fn parse_hint(jwt: &str) -> Option<Hint> {
    let payload = jwt.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&util::b64url_decode(payload)?).ok()?;
    let aud = match &claims["aud"] {
        Value::String(aud) => aud.clone(),
        Value::Array(auds) => auds.first()?.as_str()?.to_owned(),
        _ => return None,
    };
    let text = |name: &str| claims[name].as_str().map(str::to_owned);
    Some(Hint { aud, sub: text("sub"), sid: text("sid") })
}
