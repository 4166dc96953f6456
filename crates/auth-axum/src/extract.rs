//! Extractors: the middleware writes, the extractors only read.

use auth_core::{Policy, User};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use std::marker::PhantomData;
use std::ops::Deref;

use crate::convert;
use crate::service::AuthState;

/// The logged-in user. Without a session, a browser navigation is redirected to the login (302,
/// with the current path as `next`) and an API client gets 401 JSON; `Option<AuthUser>` never
/// refuses. It derefs to [`User`], and so to the [`Session`](auth_core::Session): its tokens are
/// fresh (refreshed before the handler runs when they were due), and
/// [`User::access_token`], [`User::userinfo`] and [`User::api`] call the provider with them.
///
/// ```
/// use auth_axum::{AuthError, AuthUser};
/// use axum::Json;
/// async fn me(user: AuthUser) -> String {
///     format!("hello {}", user.claims().name().unwrap_or(user.sub()))
/// }
/// async fn home(user: Option<AuthUser>) -> String {
///     user.map_or("anonymous".into(), |u| u.sub().to_owned())
/// }
/// async fn emails(user: AuthUser) -> Result<Json<serde_json::Value>, AuthError> {
///     Ok(Json(user.api().await?.get_json("user/emails").await?))
/// }
/// let _app: axum::Router = axum::Router::new()
///     .route("/me", axum::routing::get(me))
///     .route("/emails", axum::routing::get(emails))
///     .route("/", axum::routing::get(home));
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

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        convert::response(self.0.into())
    }
}

/// A logged-in user who passes the policy `P`, else 403 (and 302/401 without a login).
///
/// ```
/// use auth_axum::{Authorized, EmailVerified};
/// async fn handler(user: Authorized<EmailVerified>) -> String {
///     user.claims().email().unwrap_or_default().to_owned()
/// }
/// let _app: axum::Router = axum::Router::new().route("/verified", axum::routing::get(handler));
/// ```
#[derive(Debug)]
pub struct Authorized<P>(pub User, PhantomData<fn() -> P>);

impl<P> Deref for Authorized<P> {
    type Target = User;
    fn deref(&self) -> &User {
        &self.0
    }
}

/// Why an extractor refused: the response to send (redirect, 401, 403, or a 500 naming the
/// missing layer).
#[derive(Debug)]
pub struct AuthRejection(pub(crate) Box<Response>);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub(crate) fn missing_layer() -> AuthRejection {
    tracing::error!("auth_axum::AuthLayer is not installed: add `.layer(AuthLayer::new(auth))` to the router");
    AuthRejection(Box::new(
        (http::StatusCode::INTERNAL_SERVER_ERROR, "AuthLayer is not installed on this router (auth_axum::AuthLayer)")
            .into_response(),
    ))
}

pub(crate) fn state(parts: &Parts) -> Result<&AuthState, AuthRejection> {
    parts.extensions.get::<AuthState>().ok_or_else(missing_layer)
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        match &state.session {
            Some(session) => Ok(AuthUser(User::new(state.auth.clone(), session.clone()))),
            None => Err(AuthRejection(Box::new(convert::response(
                state.auth.no_session(&convert::parts_view(parts), state.unavailable),
            )))),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        let state = state(parts)?;
        Ok(state.session.clone().map(|session| AuthUser(User::new(state.auth.clone(), session))))
    }
}

impl<S: Send + Sync, P: Policy> FromRequestParts<S> for Authorized<P> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        state
            .auth
            .authorize_lookup::<P>(state.session.as_ref(), state.unavailable, &convert::parts_view(parts))
            .map(|session| Authorized(User::new(state.auth.clone(), session), PhantomData))
            .map_err(|res| AuthRejection(Box::new(convert::response(res))))
    }
}
