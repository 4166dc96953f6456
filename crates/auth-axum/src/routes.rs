//! The auth routes: login, callback, logout.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::convert;
use crate::extract::missing_layer;
use crate::service::AuthState;

/// The auth routes at the default prefix `/auth`:
/// `GET /auth/{provider}/login?next=`, `GET|POST /auth/{provider}/callback`, `POST /auth/logout`,
/// `GET /auth/logout/callback`, `POST /auth/{provider}/backchannel-logout`.
///
/// Every path under the prefix goes to auth-core, which knows its routes (and answers 404 for
/// the rest), so the adapter never lists them twice.
///
/// ```
/// let app: axum::Router = axum::Router::new().merge(auth_axum::routes());
/// ```
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    routes_at("/auth")
}

/// The auth routes under another prefix; it must be the one given to
/// [`AuthBuilder::prefix`](auth_core::AuthBuilder::prefix).
pub fn routes_at<S: Clone + Send + Sync + 'static>(prefix: &str) -> Router<S> {
    let prefix = prefix.trim_end_matches('/');
    Router::new().route(&format!("{prefix}/{{*rest}}"), any(handle))
}

async fn handle(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(state) = parts.extensions.get::<AuthState>() else {
        return missing_layer().into_response();
    };
    let body = match axum::body::to_bytes(body, auth_core::FORM_BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => Bytes::new(),
    };
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    let view = convert::view(&parts.method, uri, &parts.headers);
    convert::response(state.auth.handle(&view, &body).await)
}
