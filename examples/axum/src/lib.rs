//! The Axum example app, as a library so the scenario tests can serve it.
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
//! - `/auth/...`: login, callback, logout (from `auth_axum::routes()`).

use auth_axum::{
    AuthError, AuthLayer, AuthUser, Authorized, BearerUser, Policy, Principal, RequireScope, Scope, Session,
};
use auth_core::{Auth, html_escape};
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
    Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .route("/me/userinfo", get(userinfo))
        .route("/admin", get(admin))
        .route("/api/whoami", get(whoami))
        .route("/api/admin", get(api_admin))
        .route("/api/me", get(api_me))
        .merge(auth_axum::routes())
        .layer(AuthLayer::new(auth))
}

async fn home(user: Option<AuthUser>) -> Html<String> {
    let body = match user {
        Some(user) => format!(
            "<p>Logged in as <b id=\"user\">{}</b>.</p><p><a href=\"/me\">Your claims</a></p>\
             <form method=\"post\" action=\"/auth/logout\"><button id=\"logout\">Log out</button></form>",
            html_escape(user.claims().name().unwrap_or(user.sub()))
        ),
        None => "<p>Not logged in.</p><p><a id=\"login\" href=\"/auth/oidc/login?next=/me\">Log in</a></p>".to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>example-axum</title></head><body><h1>example-axum</h1>{body}</body></html>"
    ))
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
