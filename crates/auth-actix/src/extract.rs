//! Extractors: the middleware writes, the extractors only read.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use auth_core::{AuthResponse, Policy, User};
use std::fmt;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::ops::Deref;

use crate::convert;
use crate::service::AuthState;

/// The logged-in user. Without a session, a browser navigation is redirected to the login (302,
/// with the current path as `next`) and an API client gets 401 JSON.
///
/// `Option<AuthUser>` never refuses: it is `None` without a session. Actix Web's own
/// `impl FromRequest for Option<T>` turns every error into `None`, so unlike in auth-axum a missing
/// [`AuthMiddleware`](crate::AuthMiddleware) cannot answer 500 there; it is logged as an error
/// instead (and every `AuthUser` route and auth route of the app does answer 500).
///
/// ```
/// use actix_web::web;
/// use auth_actix::AuthUser;
/// async fn me(user: AuthUser) -> String {
///     format!("hello {}", user.claims().name().unwrap_or(user.sub()))
/// }
/// async fn home(user: Option<AuthUser>) -> String {
///     user.map_or("anonymous".into(), |u| u.sub().to_owned())
/// }
/// let _app = actix_web::App::new().route("/me", web::get().to(me)).route("/", web::get().to(home));
/// ```
///
/// It derefs to [`User`], and so to the [`Session`](auth_core::Session): its tokens are fresh
/// (refreshed before the handler runs when they were due), and [`User::access_token`],
/// [`User::userinfo`] and [`User::api`] call the provider with them:
///
/// ```
/// use actix_web::web;
/// use auth_actix::{AuthError, AuthUser};
/// async fn emails(user: AuthUser) -> Result<web::Json<serde_json::Value>, AuthError> {
///     Ok(web::Json(user.api().await?.get_json("user/emails").await?))
/// }
/// let _app = actix_web::App::new().route("/emails", web::get().to(emails));
/// ```
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl Deref for AuthUser {
    type Target = User;
    fn deref(&self) -> &User {
        &self.0
    }
}

/// An auth-core error a handler returns (from [`User::userinfo`], [`User::api`], …): JSON with
/// the error's status (502 when the provider failed, 401 when the user's access has expired),
/// and its message, never a token.
#[derive(Debug)]
pub struct AuthError(pub auth_core::Error);

impl From<auth_core::Error> for AuthError {
    fn from(err: auth_core::Error) -> Self {
        AuthError(err)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        convert::response(&AuthResponse::handler_error(&self.0))
    }
}

/// A logged-in user who passes the policy `P`, else 403 (and 302/401 without a login).
///
/// ```
/// use actix_web::web;
/// use auth_actix::{Authorized, EmailVerified};
/// async fn handler(user: Authorized<EmailVerified>) -> String {
///     user.claims().email().unwrap_or_default().to_owned()
/// }
/// let _app = actix_web::App::new().route("/verified", web::get().to(handler));
/// ```
pub struct Authorized<P>(pub User, PhantomData<fn() -> P>);

impl<P> fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Authorized").field(&self.0).finish()
    }
}

impl<P> Deref for Authorized<P> {
    type Target = User;
    fn deref(&self) -> &User {
        &self.0
    }
}

/// Why an extractor refused: the core's response to send (redirect, 401, 403), or a 500 naming the
/// missing [`AuthMiddleware`](crate::AuthMiddleware). It converts into an [`actix_web::Error`].
///
/// ```
/// use actix_web::ResponseError;
/// use auth_actix::AuthRejection;
/// let rejection = AuthRejection::from(auth_actix::auth_core::AuthResponse::new(403));
/// assert_eq!(rejection.error_response().status(), 403);
/// ```
#[derive(Debug, Clone)]
pub struct AuthRejection(pub(crate) AuthResponse);

impl AuthRejection {
    /// The response auth-core decided on.
    pub fn response(&self) -> &AuthResponse {
        &self.0
    }
}

impl From<AuthResponse> for AuthRejection {
    fn from(res: AuthResponse) -> Self {
        AuthRejection(res)
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request refused by auth-actix with status {}", self.0.status)
    }
}

impl std::error::Error for AuthRejection {}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        convert::response(&self.0)
    }
}

pub(crate) fn missing_middleware() -> AuthRejection {
    tracing::error!("auth_actix::AuthMiddleware is not installed: add `.wrap(AuthMiddleware::new(auth))` to the app");
    AuthRejection(AuthResponse {
        status: 500,
        headers: vec![("content-type", "text/plain; charset=utf-8".into())],
        body: "AuthMiddleware is not installed on this app (auth_actix::AuthMiddleware)".into(),
    })
}

/// The state the middleware left in the request extensions.
pub(crate) fn state(req: &HttpRequest) -> Result<AuthState, AuthRejection> {
    req.extensions().get::<AuthState>().cloned().ok_or_else(missing_middleware)
}

impl FromRequest for AuthUser {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, AuthRejection>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(state(req).and_then(|state| match state.session {
            Some(session) => Ok(AuthUser(User::new(state.auth, session))),
            None => Err(AuthRejection(state.auth.no_session(&convert::view(req), state.unavailable))),
        }))
    }
}

impl<P: Policy> FromRequest for Authorized<P> {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, AuthRejection>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(state(req).and_then(|state| {
            state
                .auth
                .authorize_lookup::<P>(state.session.as_ref(), state.unavailable, &convert::view(req))
                .map(|session| Authorized(User::new(state.auth.clone(), session), PhantomData))
                .map_err(AuthRejection)
        }))
    }
}
