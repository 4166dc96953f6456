//! The Rocket example app, as a library so the scenario tests can serve it.
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
//! - `/auth/...`: login, callback, logout (from `auth_rocket::routes()`).

use auth_core::Auth;
use auth_rocket::{
    AuthError, AuthFairing, AuthUser, Authorized, BearerUser, Policy, Principal, RequireScope, Scope, Session,
};
use auth_testkit::DevHomePage;
use rocket::figment::Figment;
use rocket::response::content::RawHtml;
use rocket::serde::json::{Json, Value, json};
use rocket::{Build, Rocket, State};

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

/// The whole app for an [`Auth`], configured by `figment` (address, port, log level…; start from
/// [`rocket::Config::figment()`] for Rocket's usual sources).
pub fn rocket(auth: Auth, figment: Figment) -> Rocket<Build> {
    rocket_with(auth, |fairing| fairing, figment)
}

/// [`rocket()`] with the fairing customized (for example behind a proxy:
/// `example_rocket::rocket_with(auth, AuthFairing::allow_port_mismatch, figment)`).
pub fn rocket_with(auth: Auth, customize: impl FnOnce(AuthFairing) -> AuthFairing, figment: Figment) -> Rocket<Build> {
    // The home page: who is logged in, the claims, and what to try (with a `curl` line for the API).
    let page = DevHomePage::new(&auth, "example-rocket");
    rocket::custom(figment)
        .manage(page)
        .mount("/", rocket::routes![home, me, userinfo, admin, whoami, api_admin, api_me])
        .mount("/", auth_rocket::routes())
        .attach(customize(AuthFairing::new(auth)))
}

#[rocket::get("/")]
async fn home(page: &State<DevHomePage>, user: Option<AuthUser>) -> RawHtml<String> {
    RawHtml(page.render(user.as_ref().map(|u| u.session().as_ref())))
}

#[rocket::get("/me")]
async fn me(user: AuthUser) -> Json<Value> {
    Json(Value::Object(user.claims().as_map().clone()))
}

#[rocket::get("/me/userinfo")]
async fn userinfo(user: AuthUser) -> Result<Json<Value>, AuthError> {
    Ok(Json(user.userinfo().await?))
}

#[rocket::get("/admin")]
async fn admin(user: Authorized<Admin>) -> Json<Value> {
    Json(json!({ "admin": true, "sub": user.sub() }))
}

#[rocket::get("/api/whoami")]
async fn whoami(token: BearerUser) -> Json<Value> {
    Json(json!({ "sub": token.sub(), "scope": token.scopes().join(" "), "client_id": token.client_id() }))
}

#[rocket::get("/api/me")]
async fn api_me(who: Principal) -> Json<Value> {
    Json(json!({ "sub": who.sub(), "via": who.via() }))
}

#[rocket::get("/api/admin")]
async fn api_admin(token: RequireScope<AdminScope>) -> Json<Value> {
    Json(json!({ "admin": true, "sub": token.sub() }))
}
