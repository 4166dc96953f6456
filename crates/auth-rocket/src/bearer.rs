//! Request guards for APIs: bearer access tokens (RFC 6750), and a session or a token.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use auth_core::{Bearer, Scope};
use rocket::request::{FromRequest, Outcome};
use rocket::{Ignite, Request, Rocket, Sentinel};

use crate::guard::AuthRejection;
use crate::{convert, fairing};

/// A request with a valid `Authorization: Bearer` access token (JWT or introspected); else the
/// RFC 6750 answer (401 `WWW-Authenticate: Bearer …`, 400 for a malformed header, 503 when the
/// provider cannot say). Its [`Sentinel`] aborts launch without [`AuthFairing`](crate::AuthFairing).
///
/// ```
/// use auth_rocket::BearerUser;
///
/// #[rocket::get("/api/whoami")]
/// fn whoami(token: BearerUser) -> String {
///     token.sub().unwrap_or("-").to_owned()
/// }
/// let _rocket = rocket::build().mount("/", rocket::routes![whoami]);
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
/// use auth_rocket::RequireScope;
/// struct Admin;
/// impl auth_core::Scope for Admin {
///     const NAME: &'static str = "admin";
/// }
///
/// #[rocket::get("/api/admin")]
/// fn admin(token: RequireScope<Admin>) -> String {
///     token.sub().unwrap_or_default().to_owned()
/// }
/// let _rocket = rocket::build().mount("/", rocket::routes![admin]);
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

fn missing<T>(guard: &str) -> Outcome<T, AuthRejection> {
    fairing::missing_fairing(&format!("the request guard `{guard}`"));
    Outcome::Error((rocket::http::Status::InternalServerError, AuthRejection::FairingMissing))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BearerUser {
    type Error = AuthRejection;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthRejection> {
        let Some(auth) = fairing::auth(req) else { return missing("BearerUser") };
        match auth.bearer(&convert::view(req)).await {
            Ok(bearer) => Outcome::Success(BearerUser(bearer)),
            Err(err) => fairing::refuse(req, auth.bearer_refusal(&err), AuthRejection::BearerRefused),
        }
    }
}

#[rocket::async_trait]
impl<'r, S: Scope> FromRequest<'r> for RequireScope<S> {
    type Error = AuthRejection;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthRejection> {
        let Some(auth) = fairing::auth(req) else { return missing("RequireScope") };
        match auth.bearer_with_scope(&convert::view(req), S::NAME).await {
            Ok(bearer) => Outcome::Success(RequireScope(bearer, PhantomData)),
            Err(err) => fairing::refuse(req, auth.bearer_refusal(&err), AuthRejection::BearerRefused),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Principal {
    type Error = AuthRejection;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthRejection> {
        let Some((auth, lookup)) = fairing::context(req) else { return missing("Principal") };
        match auth.principal(&convert::view(req), lookup.session.as_ref(), lookup.unavailable).await {
            Ok(principal) => Outcome::Success(Principal(principal)),
            Err(answer) => fairing::refuse(req, answer, AuthRejection::BearerRefused),
        }
    }
}

impl Sentinel for BearerUser {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing::sentinel_abort(rocket, "BearerUser")
    }
}

impl<S: Scope> Sentinel for RequireScope<S> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing::sentinel_abort(rocket, "RequireScope")
    }
}

impl Sentinel for Principal {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing::sentinel_abort(rocket, "Principal")
    }
}
