//! The one error type, and the one place that maps an error to an HTTP status and a safe message.

use std::fmt;

/// Why an ID token (or another JWT from the provider) was refused.
///
/// One variant per check of OpenID Connect Core 1.0 §3.1.3.7, so a test (or a log line) can tell
/// exactly which rule refused a token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not a well-formed compact JWS.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The `alg` of the header is not on the allow-list (`none` never is).
    #[error("the signing algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// No key of the provider's JWKS matches the token's `kid` (even after a refetch).
    #[error("no key of the provider matches the token (kid {0:?})")]
    UnknownKey(Option<String>),
    /// No key of the provider matches the token's `kid`, and the JWKS may not be refetched yet
    /// (the cooldown, for tokens anyone can send): it may be a key the provider just rotated in.
    #[error("no key of the provider matches the token (kid {0:?}), and the keys may not be refetched yet")]
    UnknownKeyCoolingDown(Option<String>),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("the required claim `{0}` is missing or malformed")]
    MissingClaim(&'static str),
    /// `iss` is not the provider's issuer.
    #[error("the issuer does not match the provider")]
    WrongIssuer,
    /// `aud` does not contain the client id.
    #[error("the audience does not contain this client")]
    WrongAudience,
    /// `aud` names another party the client does not trust.
    #[error("the audience names an untrusted party")]
    UntrustedAudience,
    /// `azp` is present and not the client id, or missing with several audiences.
    #[error("the authorized party (azp) is not this client")]
    WrongAuthorizedParty,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `nonce` is missing or not the one sent for this login.
    #[error("the nonce does not match this login")]
    WrongNonce,
    /// `at_hash` does not match the access token.
    #[error("at_hash does not match the access token")]
    AccessTokenHashMismatch,
    /// `auth_time` is older than the `max_age` that was asked for.
    #[error("the authentication is older than max_age")]
    AuthTooOld,
    /// `acr` is not one of the values asked for.
    #[error("the authentication context (acr) is not acceptable")]
    WrongAcr,
    /// A refreshed ID token changed `iss`, `sub` or `aud` (Core §12.2).
    #[error("the refreshed ID token does not match the session")]
    RefreshMismatch,
    /// A logout token broke a rule of Back-Channel Logout 1.0 §2.6.
    #[error("invalid logout token: {0}")]
    LogoutToken(&'static str),
}

/// Everything that can go wrong, in one `#[non_exhaustive]` enum.
///
/// [`Error::status`] is the single mapping from an error to an HTTP status, and
/// [`Error::public_message`] the only text a browser or API client ever sees: neither carries a token,
/// a secret or `Debug` output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (a builder call, a URL, an environment variable).
    #[error("configuration error: {0}")]
    Config(String),
    /// An environment variable is missing or malformed.
    #[error("environment variable {name}: {problem}")]
    Env {
        /// The variable's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Discovery failed or the provider's metadata is unacceptable.
    #[error("provider `{provider}`: discovery failed: {reason}")]
    Discovery {
        /// The provider's name.
        provider: String,
        /// Why.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No provider is registered under this name.
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    /// The callback is not for a login this browser started (missing, expired, or replayed `state`).
    #[error("no pending login matches this callback ({0})")]
    InvalidState(&'static str),
    /// The callback's RFC 9207 `iss` parameter is missing or names another issuer (mix-up defence).
    #[error("the callback's issuer parameter does not match the provider")]
    IssuerMismatch,
    /// The callback carries neither a `code` nor an `error`.
    #[error("the callback has no authorization code")]
    MissingCode,
    /// The provider answered the authorization request with an error (for example `access_denied`).
    #[error("the provider refused the login: {code}")]
    Authorization {
        /// The OAuth error code (sanitised to `[a-z_]`).
        code: String,
    },
    /// The token endpoint refused the request with an OAuth error (RFC 6749 §5.2).
    #[error("the token endpoint refused the request: {code}")]
    TokenRejected {
        /// The OAuth error code (sanitised to `[a-z_]`).
        code: String,
    },
    /// The provider answered with an unexpected status or body.
    #[error("the provider answered badly ({endpoint}): {reason}")]
    Provider {
        /// Which endpoint.
        endpoint: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The provider could not be reached or did not answer in time.
    #[error("the provider could not be reached ({endpoint})")]
    Unreachable {
        /// Which endpoint.
        endpoint: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A token from the provider was refused.
    #[error("the {what} was refused: {source}")]
    Token {
        /// Which token (`ID token`, `logout token`, …).
        what: &'static str,
        /// The rule it broke.
        #[source]
        source: TokenError,
    },
    /// The userinfo response's `sub` is not the ID token's (OIDC Core §5.3.2).
    #[error("the userinfo subject does not match the ID token")]
    UserinfoSubjectMismatch,
    /// The session does not fit into a cookie (4096 bytes), or its claims and tokens are more than
    /// the cookie store ever reads back (64 KiB of JSON).
    #[error(
        "the session is {size} bytes, over the cookie store's limit of {limit}; keep fewer claims or use a server-side SessionStore"
    )]
    SessionTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The provider refused the app's own client credentials (`invalid_client`,
    /// `unauthorized_client`): a configuration mistake of the app, not the provider's fault.
    #[error("the app's credentials for provider `{provider}` were refused ({code}): check {setting}")]
    ClientRejected {
        /// The provider's name.
        provider: String,
        /// The setting to check (`OIDC_CLIENT_SECRET`, …).
        setting: String,
        /// The provider's OAuth error code.
        code: String,
    },
    /// The adapter's auth routes are not mounted where the `Auth` sends browsers; the message says
    /// how to fix it.
    #[error("auth routes misplaced: {0}")]
    RoutesMisplaced(String),
    /// The session store failed (its cause kept as the source).
    #[error("session store error")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No `Authorization: Bearer` token (RFC 6750 §3.1: 401 without an error code).
    #[error("no bearer token")]
    BearerMissing,
    /// The `Authorization` header is not a valid bearer header: 400 `invalid_request`.
    #[error("malformed bearer Authorization header")]
    BearerMalformed,
    /// The bearer token was refused (expired, another audience, bad signature, …): 401
    /// `invalid_token`; the reason is logged, never sent.
    #[error("bearer token refused: {0}")]
    BearerInvalid(String),
    /// The request's DPoP proof (RFC 9449 §4.3) is missing, malformed, for another request or
    /// key, stale or replayed, for a DPoP-bound access token sent with the `DPoP` scheme: 401
    /// with the challenge `DPoP error="invalid_dpop_proof"` (§7.1); the reason (a fixed text,
    /// never quoting the proof) is logged, never sent.
    #[error("DPoP proof refused: {0}")]
    DpopProofInvalid(&'static str),
    /// The access token sent with the `DPoP` scheme was refused (as [`Error::BearerInvalid`]
    /// would be), or is not bound to a DPoP key: 401 with the challenge
    /// `DPoP error="invalid_token"`; the reason is logged, never sent.
    #[error("DPoP access token refused: {0}")]
    DpopTokenInvalid(String),
    /// The token lacks the scope a route requires: 403 `insufficient_scope`.
    #[error("the token lacks the scope `{0}`")]
    InsufficientScope(String),
    /// The provider could not say whether a bearer token is valid (JWKS or introspection down):
    /// 503, never 200 and never 401.
    #[error("bearer tokens cannot be checked right now")]
    BearerUnavailable,
    /// The session store could not be asked about a request's session: 503.
    #[error("the session store is unavailable")]
    StoreUnavailable,
    /// The request is malformed (bad form body, bad parameter).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// No session: the user must log in.
    #[error("not logged in")]
    Unauthenticated,
    /// The session's access token has expired and could not be refreshed (no refresh token, or
    /// the provider refused it): the user must log in again for the app to call APIs for them.
    #[error("the access token has expired and cannot be refreshed")]
    AccessTokenExpired,
    /// The session's access token has expired, and the provider could not refresh it right now
    /// (down, a 5xx, a timeout): 502. The session itself is fine; a later request tries again.
    #[error("the access token has expired and could not be refreshed now: {0}")]
    RefreshUnavailable(String),
    /// Logged in, but a policy refused access.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No auth route at this path.
    #[error("no such auth route")]
    NotFound,
    /// The route does not take this method (logout by GET is refused); `allow` is the value of
    /// the `Allow` header (RFC 9110 §15.5.6).
    #[error("method not allowed (allowed: {allow})")]
    MethodNotAllowed {
        /// The methods the route takes, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// A cross-site request to a route that changes state (logout) was refused (a CSRF defence:
    /// `Sec-Fetch-Site: cross-site`, or an `Origin` that is not the app's).
    #[error("cross-site request refused")]
    CrossSiteRequest,
    /// The provider could not be discovered yet (it was down at start); retried in the background.
    #[error("provider `{provider}` is not available yet: its discovery has not succeeded")]
    ProviderUnavailable {
        /// The provider's name.
        provider: String,
    },
    /// An internal invariant failed (random source, crypto library).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The HTTP status for this error: the single place where errors meet statuses.
    ///
    /// A client's mistake (a bad, stale or replayed callback) is a 4xx; a provider that misbehaves is
    /// a 502, one that does not answer a 504; only our own faults are 500.
    ///
    /// ```
    /// use auth_core::Error;
    /// assert_eq!(Error::InvalidState("expired").status(), 400);
    /// assert_eq!(Error::Unauthenticated.status(), 401);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidState(_)
            | Error::IssuerMismatch
            | Error::MissingCode
            | Error::BadRequest(_)
            | Error::TokenRejected { .. } => 400,
            Error::Authorization { code } if code == "access_denied" => 403,
            Error::Authorization { .. } => 400,
            Error::Unauthenticated | Error::AccessTokenExpired | Error::BearerMissing | Error::BearerInvalid(_) => 401,
            Error::DpopProofInvalid(_) | Error::DpopTokenInvalid(_) => 401,
            Error::BearerMalformed => 400,
            Error::InsufficientScope(_) => 403,
            Error::BearerUnavailable => 503,
            Error::Forbidden(_) => 403,
            Error::UnknownProvider(_) | Error::NotFound => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::CrossSiteRequest => 403,
            Error::ProviderUnavailable { .. } => 503,
            Error::Token { .. } | Error::Provider { .. } | Error::UserinfoSubjectMismatch => 502,
            Error::RefreshUnavailable(_) => 502,
            Error::Discovery { .. } => 502,
            Error::Unreachable { source, .. } if source.is_timeout() => 504,
            Error::Unreachable { .. } => 502,
            Error::Config(_)
            | Error::ClientRejected { .. }
            | Error::RoutesMisplaced(_)
            | Error::Env { .. }
            | Error::SessionTooLarge { .. }
            | Error::Internal(_) => 500,
            Error::Store(_) | Error::StoreUnavailable => 503,
        }
    }

    /// A short machine-readable code for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidState(_) => "invalid_state",
            Error::IssuerMismatch => "issuer_mismatch",
            Error::MissingCode => "missing_code",
            Error::Authorization { code } if code == "access_denied" => "access_denied",
            Error::Authorization { .. } => "authorization_error",
            Error::TokenRejected { .. } => "invalid_grant",
            Error::BadRequest(_) => "bad_request",
            Error::Unauthenticated => "unauthenticated",
            Error::AccessTokenExpired => "token_expired",
            Error::BearerMissing => "unauthenticated",
            Error::BearerMalformed => "invalid_request",
            Error::BearerInvalid(_) | Error::DpopTokenInvalid(_) => "invalid_token",
            Error::DpopProofInvalid(_) => "invalid_dpop_proof",
            Error::InsufficientScope(_) => "insufficient_scope",
            Error::BearerUnavailable => "temporarily_unavailable",
            Error::Forbidden(_) => "forbidden",
            Error::UnknownProvider(_) => "unknown_provider",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::CrossSiteRequest => "cross_site_request",
            Error::ProviderUnavailable { .. } => "provider_unavailable",
            Error::Token { .. } => "invalid_token",
            Error::UserinfoSubjectMismatch => "userinfo_mismatch",
            Error::Provider { .. } | Error::Discovery { .. } | Error::RefreshUnavailable(_) => "provider_error",
            Error::Unreachable { .. } => "provider_unreachable",
            Error::ClientRejected { .. } => "client_credentials_refused",
            Error::RoutesMisplaced(_) => "routes_misplaced",
            Error::Store(_) | Error::StoreUnavailable => "store_unavailable",
            _ => "internal_error",
        }
    }

    /// The message shown to a browser or API client: never a token, secret or `Debug` output, and
    /// no internal detail for 5xx errors.
    pub fn public_message(&self) -> String {
        match self {
            Error::InvalidState(_) => "This login link is not valid for this browser any more (expired, already used, or started elsewhere). Please log in again.".into(),
            Error::IssuerMismatch => "The login response did not come from the expected provider.".into(),
            Error::MissingCode => "The login response is incomplete.".into(),
            Error::Authorization { code } if code == "access_denied" => "The login was cancelled or refused at the provider.".into(),
            Error::Authorization { code } => format!("The provider could not log you in ({code})."),
            Error::TokenRejected { .. } => "The login could not be completed: the provider refused the authorization code (expired or already used). Please log in again.".into(),
            Error::BadRequest(what) => format!("Bad request: {what}."),
            Error::Unauthenticated => "You need to log in.".into(),
            Error::AccessTokenExpired => "Your access to the provider has expired. Please log in again.".into(),
            Error::RefreshUnavailable(_) => {
                "Your access to the provider has expired, and the provider could not renew it right now. Please try again in a moment.".into()
            }
            // Calls the app makes for the user (userinfo, the provider's API): what failed, in
            // words of our own (a status, "not JSON"), never the provider's body.
            Error::Provider { endpoint: endpoint @ ("userinfo" | "api"), reason } => {
                format!("The provider's {endpoint} endpoint failed: {reason}.")
            }
            Error::Unreachable { endpoint: endpoint @ ("userinfo" | "api"), .. } => {
                format!("The provider's {endpoint} endpoint could not be reached. Please try again.")
            }
            Error::BearerMissing => "A bearer access token is required.".into(),
            Error::BearerMalformed => "The Authorization header is not a valid bearer token header.".into(),
            Error::BearerInvalid(_) | Error::DpopTokenInvalid(_) => "The access token is not valid.".into(),
            Error::DpopProofInvalid(_) => "The DPoP proof is not valid.".into(),
            Error::InsufficientScope(scope) => format!("The access token lacks the scope `{scope}`."),
            Error::BearerUnavailable => "Access tokens cannot be checked right now. Please try again.".into(),
            Error::Forbidden(why) => format!("Access denied: {why}."),
            Error::UnknownProvider(_) => "Unknown login provider.".into(),
            Error::NotFound => "Not found.".into(),
            Error::MethodNotAllowed { .. } => "Method not allowed.".into(),
            Error::CrossSiteRequest => "This request came from another site and was refused.".into(),
            Error::ProviderUnavailable { .. } => {
                "The login provider is not available right now. Please try again in a minute.".into()
            }
            Error::Token { .. } | Error::UserinfoSubjectMismatch | Error::Provider { .. } | Error::Discovery { .. } => {
                "The login provider sent an invalid response.".into()
            }
            Error::Unreachable { .. } => "The login provider could not be reached. Please try again.".into(),
            // Configuration mistakes a developer meets on the first try: the page says what to fix
            // (it names a setting or a route, never a value).
            Error::ClientRejected { provider, setting, .. } => {
                format!("The app's credentials for provider `{provider}` were refused: check {setting}.")
            }
            Error::RoutesMisplaced(fix) => format!("The login routes are misconfigured: {fix}."),
            Error::Store(_) | Error::StoreUnavailable => {
                "Sessions are unavailable right now. Please try again in a moment.".into()
            }
            _ => "Internal error.".into(),
        }
    }

    pub(crate) fn token(what: &'static str, source: TokenError) -> Self {
        Error::Token { what, source }
    }

    pub(crate) fn config(msg: impl fmt::Display) -> Self {
        Error::Config(msg.to_string())
    }
}

/// An error for `main` to return: Rust prints a failing `main`'s error with `Debug`, and this one's
/// `Debug` is a sentence with its causes (`error: …`, then `caused by: …` lines), never a dump of
/// the error's fields.
///
/// ```
/// fn start() -> Result<(), auth_core::Report> {
///     let port: u16 = "eighty".parse()?;
///     # let _ = port;
///     Ok(())
/// }
/// let report = start().unwrap_err();
/// assert_eq!(format!("{report:?}"), "invalid digit found in string");
/// ```
pub struct Report(Box<dyn std::error::Error + Send + Sync + 'static>);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Report {
    fn from(err: E) -> Self {
        Report(Box::new(err))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            // A message that already quotes its cause does not repeat it.
            let text = cause.to_string();
            if !said.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            said = text;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The provider answered with a server-side status (5xx, 429): a passing fault, worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("HTTP status {0}")]
pub(crate) struct ServerBusy(pub(crate) u16);

impl Error {
    /// Whether the error is a passing fault of the provider (unreachable, timed out, a 5xx or 429
    /// answer) rather than a mistake in the configuration.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Discovery { source: Some(source), .. } => source.is::<ServerBusy>() || source.is::<reqwest::Error>(),
            _ => false,
        }
    }
}

impl From<TokenError> for Error {
    fn from(source: TokenError) -> Self {
        Error::token("ID token", source)
    }
}

/// Keeps only `[a-z0-9_]` of an OAuth error code from the network (it is echoed in pages and logs).
pub(crate) fn sanitize_code(code: &str) -> String {
    let cleaned: String =
        code.chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').take(64).collect();
    if cleaned.is_empty() { "unknown_error".into() } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_mistakes_are_4xx() {
        for e in [
            Error::InvalidState("x"),
            Error::IssuerMismatch,
            Error::MissingCode,
            Error::Authorization { code: "access_denied".into() },
            Error::TokenRejected { code: "invalid_grant".into() },
            Error::BadRequest("x"),
            Error::CrossSiteRequest,
            Error::MethodNotAllowed { allow: "POST" },
        ] {
            assert!((400..500).contains(&e.status()), "{e:?}");
        }
    }

    #[test]
    fn sanitize_drops_markup() {
        assert_eq!(sanitize_code("<script>alert(1)</script>"), "scriptalert1script");
        assert_eq!(sanitize_code(""), "unknown_error");
    }
}
