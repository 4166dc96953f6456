//! The auth routes: login, callback, logout.

use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::convert;
use crate::extract::state;

/// The auth routes at the default prefix `/auth`, for [`App::configure`](actix_web::App::configure):
/// `GET /auth/{provider}/login?next=`, `GET|POST /auth/{provider}/callback`, `POST /auth/logout`,
/// `GET /auth/logout/callback`, `POST /auth/{provider}/backchannel-logout`.
/// Every method reaches auth-core, which answers 405 where a method is not allowed.
///
/// ```
/// # async fn demo(auth: auth_core::Auth) {
/// use auth_actix::AuthMiddleware;
/// let _app = actix_web::App::new().configure(auth_actix::routes).wrap(AuthMiddleware::new(auth));
/// # }
/// ```
pub fn routes(cfg: &mut ServiceConfig) {
    routes_at("/auth")(cfg);
}

/// The auth routes under another prefix, for [`App::configure`](actix_web::App::configure); it must
/// be the one given to [`AuthBuilder::prefix`](auth_core::AuthBuilder::prefix), scopes included
/// (`web::scope("/account").configure(routes)` needs the prefix `/account/auth`). Routes that
/// answer under another path answer 500 with the exact fix, and
/// [`AuthMiddleware`](crate::AuthMiddleware) turns the app's 404 for a path under the `Auth`'s
/// prefix into the same explanation.
///
/// ```
/// # async fn demo(auth: auth_core::Auth) {
/// use auth_actix::AuthMiddleware;
/// let _app = actix_web::App::new().configure(auth_actix::routes_at("/login")).wrap(AuthMiddleware::new(auth));
/// # }
/// ```
pub fn routes_at(prefix: &str) -> impl Fn(&mut ServiceConfig) + Clone + Send + Sync + 'static {
    let prefix = prefix.trim_end_matches('/').to_owned();
    // Every path under the prefix goes to auth-core, which knows its routes (and answers 404 for
    // the rest), so the adapter never lists them twice. `.+`, not `.*`: like Axum's `{*rest}`,
    // `{prefix}/` itself is left to the app's 404.
    move |cfg: &mut ServiceConfig| {
        cfg.route(&format!("{prefix}/{{rest:.+}}"), web::route().to(handle));
    }
}

/// Marks a response as the auth routes' own, for [`AuthMiddleware`](crate::AuthMiddleware)'s check
/// of unrouted auth paths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served;

async fn handle(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let auth = match state(&req) {
        Ok(state) => state.auth,
        Err(rejection) => return rejection.error_response(),
    };
    let view = convert::view(&req);
    // Where these routes really answer: the pattern actix matched, scopes included.
    let mounted = req.match_pattern().and_then(|p| p.strip_suffix("/{rest:.+}").map(str::to_owned));
    let checked = match &mounted {
        Some(mounted) => auth.check_routes_prefix(mounted, "auth_actix::routes_at"),
        None => Ok(()),
    };
    let mut res = match checked {
        Err(err) => convert::response(&auth.error_response(&err, !view.prefers_json())),
        Ok(()) => {
            let body = match payload.to_bytes_limited(auth_core::FORM_BODY_LIMIT).await {
                Ok(Ok(bytes)) => bytes,
                _ => Bytes::new(),
            };
            convert::response(&auth.handle(&view, &body).await)
        }
    };
    res.extensions_mut().insert(Served);
    res
}
