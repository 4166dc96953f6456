//! Google and GitHub login for an Axum app: a page with one login link per configured provider.
//!
//! - `GET /me`: the user's claims; `GET /me/userinfo`: the provider's userinfo, fetched now with
//!   the user's (fresh) access token;
//! - `GET /me/api?path=user/repos`: a GET on the provider's API (`https://api.github.com/`,
//!   `https://www.googleapis.com/`) with the user's token, as Authlib's `oauth.github.get(…)`.

use auth_axum::{AuthError, AuthLayer, AuthUser};
use auth_core::{Auth, html_escape};
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};

/// The app: `/` lists the login links, `/me` shows the claims.
pub fn app(auth: Auth) -> Router {
    Router::new()
        .route("/", get(home))
        .route(
            "/me",
            get(|user: AuthUser| async move { Json(serde_json::Value::Object(user.claims().as_map().clone())) }),
        )
        .route("/me/userinfo", get(|user: AuthUser| async move { Ok::<_, AuthError>(Json(user.userinfo().await?)) }))
        .route("/me/api", get(api))
        .merge(auth_axum::routes())
        .with_state(auth.clone())
        .layer(AuthLayer::new(auth))
}

/// `?path=`: the API path, relative to the provider's API base URL.
#[derive(Debug, serde::Deserialize)]
struct ApiPath {
    path: String,
}

async fn api(user: AuthUser, Query(q): Query<ApiPath>) -> Result<Json<serde_json::Value>, AuthError> {
    Ok(Json(user.api().await?.get_json(&q.path).await?))
}

async fn home(State(auth): State<Auth>, user: Option<AuthUser>) -> Html<String> {
    let body = match user {
        Some(user) => format!(
            "<p>Logged in with {} as <b>{}</b> ({}).</p><form method=\"post\" action=\"/auth/logout\"><button>Log out</button></form>",
            html_escape(user.provider()),
            html_escape(user.claims().name().unwrap_or(user.sub())),
            html_escape(user.claims().email().unwrap_or("no e-mail")),
        ),
        None => auth
            .provider_names()
            .map(|name| format!("<p><a href=\"/auth/{name}/login?next=/me\">Log in with {name}</a></p>"))
            .collect(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Social login</title></head><body>{body}</body></html>"
    ))
}
