//! The middleware factory: [`AuthMiddleware`].

use std::fmt;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use auth_core::{Auth, AuthResponse, Policy, RequestView, Session};

use crate::AuthService;

/// Reads the session of every request and makes it available to the extractors; optionally,
/// refuses requests that lack a login (or fail a [`Policy`]) before they reach a handler.
///
/// Wrap the whole [`App`](actix_web::App) with it, so that the auth routes and the extractors work
/// everywhere:
///
/// ```
/// # async fn demo(auth: auth_core::Auth) {
/// use actix_web::App;
/// use auth_actix::AuthMiddleware;
/// let _app = App::new().wrap(AuthMiddleware::new(auth)).configure(auth_actix::routes);
/// # }
/// ```
///
/// # A scope that needs a login
///
/// [`AuthMiddleware::require_login`] turns it into a guard for a [`web::scope`](actix_web::web::scope):
/// every request under the scope without a session gets [`Auth::unauthenticated`]'s answer (a
/// browser navigation is redirected to the login with the current path as `next`, an API client
/// gets 401 JSON), and handlers inside may take [`AuthUser`](crate::AuthUser) knowing it is there.
/// [`AuthMiddleware::require`] does the same for a [`Policy`] (403 when it refuses). When an outer
/// `AuthMiddleware` already read the session, the inner one reuses it (and leaves the cookie changes
/// to the outer one), so the session is read once per request.
///
/// ```
/// # #[actix_web::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let op = auth_testkit::TestProvider::start().await?;
/// # let auth = auth_core::Auth::builder()
/// #     .provider(auth_core::Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
/// #     .build()
/// #     .await?;
/// use actix_web::{App, test, web};
/// use auth_actix::AuthMiddleware;
///
/// let app = test::init_service(
///     App::new()
///         .service(
///             web::scope("/admin")
///                 .wrap(AuthMiddleware::new(auth.clone()).require_login())
///                 .route("/users", web::get().to(|| async { "the users" })),
///         )
///         .route("/", web::get().to(|| async { "public" }))
///         .configure(auth_actix::routes)
///         .wrap(AuthMiddleware::new(auth)),
/// )
/// .await;
///
/// let browser = test::TestRequest::get().uri("/admin/users").insert_header(("accept", "text/html"));
/// let res = test::call_service(&app, browser.to_request()).await;
/// assert_eq!(res.status(), 302);
/// assert_eq!(res.headers().get("location").unwrap(), "/auth/oidc/login?next=%2Fadmin%2Fusers");
///
/// let api = test::TestRequest::get().uri("/admin/users").insert_header(("accept", "application/json"));
/// assert_eq!(test::call_service(&app, api.to_request()).await.status(), 401);
///
/// let public = test::TestRequest::get().uri("/").to_request();
/// assert_eq!(test::call_service(&app, public).await.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthMiddleware {
    auth: Auth,
    requirement: Option<Requirement>,
}

impl AuthMiddleware {
    /// A middleware for this [`Auth`] that lets every request through.
    pub fn new(auth: Auth) -> Self {
        AuthMiddleware { auth, requirement: None }
    }

    /// Refuses requests without a session with [`Auth::unauthenticated`] (302 to the login for a
    /// browser navigation, 401 for an API client).
    pub fn require_login(mut self) -> Self {
        self.requirement = Some(Requirement { name: "login", check: login_required });
        self
    }

    /// Refuses requests whose session does not pass `P` with [`Auth::authorize`] (302/401 without
    /// a session, 403 when the policy refuses).
    ///
    /// ```
    /// # async fn demo(auth: auth_core::Auth) {
    /// use actix_web::web;
    /// use auth_actix::{AuthMiddleware, EmailVerified};
    /// let _scope = web::scope("/reports").wrap(AuthMiddleware::new(auth).require::<EmailVerified>());
    /// # }
    /// ```
    pub fn require<P: Policy>(mut self) -> Self {
        self.requirement = Some(Requirement { name: P::DESCRIPTION, check: policy_required::<P> });
        self
    }
}

/// What a guarding middleware checks: the refusal to send, if any.
type Check = fn(&Auth, Option<&Arc<Session>>, bool, &RequestView<'_>) -> Option<AuthResponse>;

#[derive(Clone, Copy)]
pub(crate) struct Requirement {
    name: &'static str,
    check: Check,
}

impl Requirement {
    /// The decision, apart from `call`: `Some(response)` when the request is refused.
    pub(crate) fn refusal(
        &self,
        auth: &Auth,
        session: Option<&Arc<Session>>,
        unavailable: bool,
        req: &RequestView<'_>,
    ) -> Option<AuthResponse> {
        (self.check)(auth, session, unavailable, req)
    }
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Requirement").field(&self.name).finish()
    }
}

fn login_required(
    auth: &Auth,
    session: Option<&Arc<Session>>,
    unavailable: bool,
    req: &RequestView<'_>,
) -> Option<AuthResponse> {
    session.is_none().then(|| auth.no_session(req, unavailable))
}

fn policy_required<P: Policy>(
    auth: &Auth,
    session: Option<&Arc<Session>>,
    unavailable: bool,
    req: &RequestView<'_>,
) -> Option<AuthResponse> {
    auth.authorize_lookup::<P>(session, unavailable, req).err()
}

impl<S, B> Transform<S, ServiceRequest> for AuthMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AuthService<S>;
    type InitError = ();
    type Future = Ready<Result<AuthService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AuthService::new(Rc::new(service), self.auth.clone(), self.requirement)))
    }
}
