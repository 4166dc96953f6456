//! The Actix Web example app, as a library so the scenario tests can serve it.
//!
//! Routes (the conventions every example follows):
//! - `GET /`: public; says who is logged in, shows the claims and links to what to try
//!   ([`DevHomePage`]).
//! - `GET /me`: the user's claims as JSON; a browser without a session is sent to the login, an API
//!   client gets 401.
//! - `GET /me/userinfo`: protected like `/me`; the provider's userinfo, fetched with the session's
//!   access token (refreshed first when it is due); 502 with a message when the provider fails.
//! - `GET /admin`: only for users whose `groups` claim contains `admin` (403 otherwise).
//! - `GET /api/whoami`: a bearer access token only (RFC 6750); JSON with `sub`, `scope` and
//!   `client_id`. `GET /api/admin`: the same, with the scope `admin` required (403
//!   `insufficient_scope`).
//! - `GET /api/me`: a bearer token when the request has an `Authorization` header, else the
//!   session (`Principal`): JSON with `sub` and `via` (`bearer` or `session`).
//! - `/auth/...`: login, callback, logout (from `auth_actix::routes`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::web::{self, Html, Json};
use actix_web::{App, Error, Route, guard};
use auth_actix::{
    AuthError, AuthMiddleware, AuthUser, Authorized, BearerUser, Policy, Principal, RequireScope, Scope, Session,
};
use auth_core::Auth;
use auth_testkit::DevHomePage;

/// The policy of `/admin`: the `groups` claim contains `admin`.
#[derive(Debug)]
pub struct Admin;

impl Policy for Admin {
    const DESCRIPTION: &'static str = "administrators only";
    fn allows(session: &Session) -> bool {
        session.claims().contains("groups", "admin")
    }
}

/// The scope `/api/admin` requires.
#[derive(Debug)]
pub struct AdminScope;

impl Scope for AdminScope {
    const NAME: &'static str = "admin";
}

/// The whole app for an [`Auth`]; call it in `HttpServer::new`'s factory (once per worker):
/// `HttpServer::new(move || example_actix::app(auth.clone()))`.
pub fn app(
    auth: Auth,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    // The home page: who is logged in, the claims, and what to try (with a `curl` line for the API).
    let page = web::Data::new(DevHomePage::new(&auth, "example-actix"));
    App::new()
        .app_data(page)
        .service(web::resource("/").route(get().to(home)))
        .service(web::resource("/me").route(get().to(me)))
        .service(web::resource("/me/userinfo").route(get().to(userinfo)))
        .service(web::resource("/admin").route(get().to(admin)))
        .service(web::resource("/api/whoami").route(get().to(whoami)))
        .service(web::resource("/api/admin").route(get().to(api_admin)))
        .service(web::resource("/api/me").route(get().to(api_me)))
        .configure(auth_actix::routes)
        .wrap(AuthMiddleware::new(auth))
}

/// A `GET` route that answers `HEAD` too, as Axum's `get` does; other methods get 405 with `Allow`
/// (a resource's default; `App::route` would answer 404 instead).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn home(page: web::Data<DevHomePage>, user: Option<AuthUser>) -> Html {
    Html::new(page.render(user.as_ref().map(|u| u.session().as_ref())))
}

async fn me(user: AuthUser) -> Json<serde_json::Value> {
    Json(serde_json::Value::Object(user.claims().as_map().clone()))
}

async fn userinfo(user: AuthUser) -> Result<Json<serde_json::Value>, AuthError> {
    Ok(Json(user.userinfo().await?))
}

async fn admin(user: Authorized<Admin>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "admin": true, "sub": user.sub() }))
}

async fn whoami(token: BearerUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": token.sub(), "scope": token.scopes().join(" "), "client_id": token.client_id() }))
}

async fn api_me(who: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": who.sub(), "via": who.via() }))
}

async fn api_admin(token: RequireScope<AdminScope>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "admin": true, "sub": token.sub() }))
}
