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
/// [`AuthBuilder::prefix`](auth_core::AuthBuilder::prefix), and they must be merged at the root
/// (under `Router::nest("/base", …)`, give the `Auth` the prefix `/base{prefix}`).
///
/// Routes that answer under another path than the `Auth`'s prefix (nested elsewhere, or another
/// prefix) would hand out login URLs and redirect URIs that lead nowhere: they answer 500 with the
/// exact fix instead, and [`AuthLayer`](crate::AuthLayer) turns the app's 404 for a path under the
/// `Auth`'s prefix into the same explanation.
pub fn routes_at<S: Clone + Send + Sync + 'static>(prefix: &str) -> Router<S> {
    let prefix = prefix.trim_end_matches('/').to_owned();
    let path = format!("{prefix}/{{*rest}}");
    Router::new().route(&path, any(move |req: Request| handle(req, prefix.clone())))
}

/// Marks a response as the auth routes' own, for [`AuthLayer`](crate::AuthLayer)'s check of
/// unrouted auth paths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served;

async fn handle(req: Request, route_prefix: String) -> Response {
    let (parts, body) = req.into_parts();
    let Some(state) = parts.extensions.get::<AuthState>() else {
        return missing_layer().into_response();
    };
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    let view = convert::view(&parts.method, uri, &parts.headers);
    // Where these routes really answer: the `Router::nest` base in front of their own prefix.
    let nest_base = uri.path().strip_suffix(parts.uri.path()).unwrap_or_default();
    let mut res = match state.auth.check_routes_prefix(&format!("{nest_base}{route_prefix}"), "auth_axum::routes_at") {
        Err(err) => convert::response(state.auth.error_response(&err, !view.prefers_json())),
        Ok(()) => {
            let body = axum::body::to_bytes(body, auth_core::FORM_BODY_LIMIT).await.unwrap_or_else(|_| Bytes::new());
            convert::response(state.auth.handle(&view, &body).await)
        }
    };
    res.extensions_mut().insert(Served);
    res
}
