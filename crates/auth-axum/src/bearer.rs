//! Extractors for APIs: bearer access tokens (RFC 6750), and a session or a token.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use auth_core::{Bearer, Scope};
use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::convert;
use crate::extract::{AuthRejection, state};

/// A request with a valid `Authorization: Bearer` access token (JWT or introspected); else the
/// RFC 6750 answer (401 `WWW-Authenticate: Bearer …`, 400 for a malformed header, 503 when the
/// provider cannot say). Needs [`AuthLayer`](crate::AuthLayer).
///
/// ```
/// use auth_axum::BearerUser;
/// async fn whoami(token: BearerUser) -> String {
///     format!("{} via {}", token.sub().unwrap_or("-"), token.client_id().unwrap_or("-"))
/// }
/// let _app: axum::Router = axum::Router::new().route("/api/whoami", axum::routing::get(whoami));
/// ```
#[derive(Debug, Clone)]
pub struct BearerUser(pub Arc<Bearer>);

impl Deref for BearerUser {
    type Target = Bearer;
    fn deref(&self) -> &Bearer {
        &self.0
    }
}

/// [`BearerUser`] whose token grants the scope `S` (else 403 `insufficient_scope`).
///
/// ```
/// use auth_axum::RequireScope;
/// struct Admin;
/// impl auth_core::Scope for Admin {
///     const NAME: &'static str = "admin";
/// }
/// async fn admin(token: RequireScope<Admin>) -> String {
///     token.sub().unwrap_or_default().to_owned()
/// }
/// let _app: axum::Router = axum::Router::new().route("/api/admin", axum::routing::get(admin));
/// ```
#[derive(Debug)]
pub struct RequireScope<S>(pub Arc<Bearer>, PhantomData<fn() -> S>);

impl<S> Deref for RequireScope<S> {
    type Target = Bearer;
    fn deref(&self) -> &Bearer {
        &self.0
    }
}

/// Who the request speaks for: the bearer token when it carries an `Authorization` header,
/// else the session (for routes that serve browsers and API clients alike).
///
/// ```
/// use auth_axum::Principal;
/// async fn me(who: Principal) -> String {
///     who.sub().unwrap_or_default().to_owned()
/// }
/// let _app: axum::Router = axum::Router::new().route("/me", axum::routing::get(me));
/// ```
#[derive(Debug, Clone)]
pub struct Principal(pub auth_core::Principal);

impl Deref for Principal {
    type Target = auth_core::Principal;
    fn deref(&self) -> &auth_core::Principal {
        &self.0
    }
}

fn refusal(res: auth_core::AuthResponse) -> AuthRejection {
    AuthRejection(Box::new(convert::response(res)))
}

impl<S: Send + Sync> FromRequestParts<S> for BearerUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        let auth = &state.auth;
        auth.bearer(&convert::parts_view(parts)).await.map(BearerUser).map_err(|e| refusal(auth.bearer_refusal(&e)))
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for RequireScope<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        let auth = &state.auth;
        auth.bearer_with_scope(&convert::parts_view(parts), S::NAME)
            .await
            .map(|b| RequireScope(b, PhantomData))
            .map_err(|e| refusal(auth.bearer_refusal(&e)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let state = state(parts)?;
        state
            .auth
            .principal(&convert::parts_view(parts), state.session.as_ref(), state.unavailable)
            .await
            .map(Principal)
            .map_err(refusal)
    }
}
