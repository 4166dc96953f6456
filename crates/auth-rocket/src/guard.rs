//! Request guards: the fairing writes, the guards only read.

use auth_core::{Policy, User};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::{Ignite, Request, Rocket, Sentinel};
use std::marker::PhantomData;
use std::ops::Deref;

use crate::{convert, fairing};

/// The logged-in user. Without a session the request gets auth-core's answer: a browser
/// navigation is redirected to the login (302, with the current path as `next`), an API client
/// gets 401 JSON with `WWW-Authenticate`. `Option<AuthUser>` never refuses: it is `None` without
/// a session.
///
/// Its [`Sentinel`] aborts launch when [`AuthFairing`](crate::AuthFairing) is not attached.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let op = auth_testkit::TestProvider::start().await?;
/// # let auth = auth_core::Auth::builder()
/// #     .provider(auth_core::Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
/// #     .build().await?;
/// use auth_rocket::{AuthFairing, AuthUser};
/// use rocket::http::{Accept, Status};
/// use rocket::local::asynchronous::Client;
///
/// #[rocket::get("/me")]
/// fn me(user: AuthUser) -> String {
///     format!("hello {}", user.claims().name().unwrap_or(user.sub()))
/// }
///
/// #[rocket::get("/")]
/// fn home(user: Option<AuthUser>) -> String {
///     user.map_or("anonymous".into(), |u| u.sub().to_owned())
/// }
///
/// let rocket = rocket::build()
///     .mount("/", rocket::routes![me, home])
///     .mount("/", auth_rocket::routes())
///     .attach(AuthFairing::new(auth));
/// let client = Client::tracked(rocket).await?;
///
/// let api = client.get("/me").header(Accept::JSON).dispatch().await;
/// assert_eq!(api.status(), Status::Unauthorized);
/// assert!(api.headers().contains("www-authenticate"));
/// let browser = client.get("/me").header(Accept::HTML).dispatch().await;
/// assert_eq!(browser.status(), Status::Found);
/// assert_eq!(browser.headers().get_one("location"), Some("/auth/oidc/login?next=%2Fme"));
/// assert_eq!(client.get("/").dispatch().await.into_string().await.as_deref(), Some("anonymous"));
/// # Ok(()) }
/// ```
///
/// It derefs to [`User`], and so to the [`Session`](auth_core::Session): its tokens are fresh
/// (refreshed before the handler runs when they were due), and [`User::access_token`],
/// [`User::userinfo`] and [`User::api`] call the provider with them:
///
/// ```
/// use auth_rocket::{AuthError, AuthUser};
/// use rocket::serde::json::Json;
///
/// #[rocket::get("/emails")]
/// async fn emails(user: AuthUser) -> Result<Json<serde_json::Value>, AuthError> {
///     Ok(Json(user.api().await?.get_json("user/emails").await?))
/// }
/// let _rocket = rocket::build().mount("/", rocket::routes![emails]);
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

impl<'r> rocket::response::Responder<'r, 'static> for AuthError {
    fn respond_to(self, _req: &'r Request<'_>) -> rocket::response::Result<'static> {
        Ok(convert::response(self.0.into()))
    }
}

/// A logged-in user who passes the policy `P`, else 403 (and 302/401 without a login, as
/// [`AuthUser`]).
///
/// ```
/// use auth_rocket::{Authorized, EmailVerified};
///
/// #[rocket::get("/verified")]
/// fn verified(user: Authorized<EmailVerified>) -> String {
///     user.claims().email().unwrap_or_default().to_owned()
/// }
/// let _rocket = rocket::build().mount("/", rocket::routes![verified]);
/// ```
#[derive(Debug)]
pub struct Authorized<P>(pub User, PhantomData<fn() -> P>);

impl<P> Deref for Authorized<P> {
    type Target = User;
    fn deref(&self) -> &User {
        &self.0
    }
}

/// Why [`AuthUser`] or [`Authorized`] refused: the error of `Result<AuthUser, AuthRejection>`.
///
/// Without the `Result`, the request gets auth-core's answer (see
/// [`AuthFairing`](crate::AuthFairing#how-a-refusing-guard-answers)).
///
/// ```
/// use auth_rocket::{AuthRejection, AuthUser};
///
/// #[rocket::get("/status")]
/// async fn status(user: Result<AuthUser, AuthRejection>) -> String {
///     match user {
///         Ok(user) => format!("logged in as {}", user.sub()),
///         Err(AuthRejection::Unauthenticated) => "not logged in".into(),
///         Err(other) => format!("{other:?}"),
///     }
/// }
/// let _rocket = rocket::build().mount("/", rocket::routes![status]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No session: 302 to the login for a browser, 401 for an API client.
    Unauthenticated,
    /// A session, but the policy refused it: 403.
    Forbidden,
    /// [`AuthFairing`](crate::AuthFairing) is not attached: 500.
    FairingMissing,
    /// The session store could not be asked about the request's session: 503.
    StoreUnavailable,
    /// The bearer token was missing, malformed, invalid, short of a scope, or could not be
    /// checked (401, 400, 401, 403, 503, with RFC 6750's `WWW-Authenticate`).
    BearerRefused,
}

fn missing<T>(guard: &str) -> Outcome<T, AuthRejection> {
    fairing::missing_fairing(&format!("the request guard `{guard}`"));
    Outcome::Error((Status::InternalServerError, AuthRejection::FairingMissing))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = AuthRejection;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthRejection> {
        let Some((auth, lookup)) = fairing::context(req) else {
            return missing("AuthUser");
        };
        match &lookup.session {
            Some(session) => Outcome::Success(AuthUser(User::new(auth.clone(), session.clone()))),
            None if lookup.unavailable => {
                fairing::refuse(req, auth.no_session(&convert::view(req), true), AuthRejection::StoreUnavailable)
            }
            None => fairing::refuse(req, auth.unauthenticated(&convert::view(req)), AuthRejection::Unauthenticated),
        }
    }
}

#[rocket::async_trait]
impl<'r, P: Policy> FromRequest<'r> for Authorized<P> {
    type Error = AuthRejection;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, AuthRejection> {
        let Some((auth, lookup)) = fairing::context(req) else {
            return missing("Authorized");
        };
        match auth.authorize_lookup::<P>(lookup.session.as_ref(), lookup.unavailable, &convert::view(req)) {
            Ok(session) => Outcome::Success(Authorized(User::new(auth.clone(), session), PhantomData)),
            Err(answer) => {
                let why = match (&lookup.session, lookup.unavailable) {
                    (Some(_), _) => AuthRejection::Forbidden,
                    (None, true) => AuthRejection::StoreUnavailable,
                    (None, false) => AuthRejection::Unauthenticated,
                };
                fairing::refuse(req, answer, why)
            }
        }
    }
}

impl Sentinel for AuthUser {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing::sentinel_abort(rocket, "AuthUser")
    }
}

impl<P: Policy> Sentinel for Authorized<P> {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        fairing::sentinel_abort(rocket, "Authorized")
    }
}
