//! The Axum example app, as a library so the scenario tests can serve it.
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
//! - `/auth/...`: login, callback, logout (from `auth_axum::routes()`).

use auth_axum::{
    AuthError, AuthLayer, AuthUser, Authorized, BearerUser, Policy, Principal, RequireScope, Scope, Session,
};
use auth_core::Auth;
use auth_testkit::DevHomePage;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};

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

/// The whole app for an [`Auth`].
pub fn app(auth: Auth) -> Router {
    // The home page: who is logged in, the claims, and what to try (with a `curl` line for the API).
    let page = DevHomePage::new(&auth, "example-axum");
    Router::new()
        .route(
            "/",
            get(move |user: Option<AuthUser>| {
                std::future::ready(Html(page.render(user.as_ref().map(|u| u.session().as_ref()))))
            }),
        )
        .route("/me", get(me))
        .route("/me/userinfo", get(userinfo))
        .route("/admin", get(admin))
        .route("/api/whoami", get(whoami))
        .route("/api/admin", get(api_admin))
        .route("/api/me", get(api_me))
        .merge(auth_axum::routes())
        .layer(AuthLayer::new(auth))
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
