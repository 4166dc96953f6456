//! The Rocket example app, as a library so the scenario tests can serve it.
//!
//! Routes (the conventions every example follows):
//! - `GET /`: public; says who is logged in.
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

use auth_core::{Auth, html_escape};
use auth_rocket::{
    AuthError, AuthFairing, AuthUser, Authorized, BearerUser, Policy, Principal, RequireScope, Scope, Session,
};
use rocket::figment::Figment;
use rocket::response::content::RawHtml;
use rocket::serde::json::{Json, Value, json};
use rocket::{Build, Rocket};

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
    rocket_with(AuthFairing::new(auth), figment)
}

/// [`rocket()`] with a fairing of your own (for example behind a proxy:
/// [`AuthFairing::allow_port_mismatch`]).
pub fn rocket_with(fairing: AuthFairing, figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        .mount("/", rocket::routes![home, me, userinfo, admin, whoami, api_admin, api_me])
        .mount("/", auth_rocket::routes())
        .attach(fairing)
}

#[rocket::get("/")]
async fn home(user: Option<AuthUser>) -> RawHtml<String> {
    let body = match user {
        Some(user) => format!(
            "<p>Logged in as <b id=\"user\">{}</b>.</p><p><a href=\"/me\">Your claims</a></p>\
             <form method=\"post\" action=\"/auth/logout\"><button id=\"logout\">Log out</button></form>",
            html_escape(user.claims().name().unwrap_or(user.sub()))
        ),
        None => "<p>Not logged in.</p><p><a id=\"login\" href=\"/auth/oidc/login?next=/me\">Log in</a></p>".to_owned(),
    };
    RawHtml(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>example-rocket</title></head><body><h1>example-rocket</h1>{body}</body></html>"
    ))
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
