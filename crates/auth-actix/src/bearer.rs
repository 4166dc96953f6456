//! Extractors for APIs: bearer access tokens (RFC 6750), and a session or a token.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use auth_core::{Bearer, Scope};

use crate::convert;
use crate::extract::{AuthRejection, state};

/// A request with a valid `Authorization: Bearer` access token (JWT or introspected); else the
/// RFC 6750 answer (401 `WWW-Authenticate: Bearer …`, 400 for a malformed header, 503 when the
/// provider cannot say). Needs [`AuthMiddleware`](crate::AuthMiddleware).
///
/// ```
/// use auth_actix::BearerUser;
/// async fn whoami(token: BearerUser) -> String {
///     token.sub().unwrap_or("-").to_owned()
/// }
/// let _app = actix_web::App::new().route("/api/whoami", actix_web::web::get().to(whoami));
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
/// use auth_actix::RequireScope;
/// struct Admin;
/// impl auth_core::Scope for Admin {
///     const NAME: &'static str = "admin";
/// }
/// async fn admin(token: RequireScope<Admin>) -> String {
///     token.sub().unwrap_or_default().to_owned()
/// }
/// let _app = actix_web::App::new().route("/api/admin", actix_web::web::get().to(admin));
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
/// else the session.
#[derive(Debug, Clone)]
pub struct Principal(pub auth_core::Principal);

impl Deref for Principal {
    type Target = auth_core::Principal;
    fn deref(&self) -> &auth_core::Principal {
        &self.0
    }
}

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, AuthRejection>>>>;

impl FromRequest for BearerUser {
    type Error = AuthRejection;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = state(&req)?.auth;
            auth.bearer(&convert::view(&req)).await.map(BearerUser).map_err(|e| AuthRejection(auth.bearer_refusal(&e)))
        })
    }
}

impl<S: Scope> FromRequest for RequireScope<S> {
    type Error = AuthRejection;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = state(&req)?.auth;
            auth.bearer_with_scope(&convert::view(&req), S::NAME)
                .await
                .map(|b| RequireScope(b, PhantomData))
                .map_err(|e| AuthRejection(auth.bearer_refusal(&e)))
        })
    }
}

impl FromRequest for Principal {
    type Error = AuthRejection;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state(&req)?;
            state
                .auth
                .principal(&convert::view(&req), state.session.as_ref(), state.unavailable)
                .await
                .map(Principal)
                .map_err(AuthRejection)
        })
    }
}
