//! The auth routes: login, callback, logout.

use rocket::Request;
use rocket::data::{ByteUnit, Data};
use rocket::http::{Method, Status};
use rocket::route::{self, Route};

use crate::{convert, fairing};

/// Every method: auth-core answers the ones a route does not take (`GET /auth/logout`: 405).
/// Rocket itself would answer 404.
const METHODS: [Method; 9] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Patch,
    Method::Options,
    Method::Trace,
    Method::Connect,
];

/// The name of every auth route, by which the fairing finds where they are mounted.
pub(crate) const ROUTE_NAME: &str = "auth_rocket::routes";

/// The largest callback body read (a `form_post` response); a larger one is read as empty.
fn body_limit() -> ByteUnit {
    ByteUnit::from(auth_core::FORM_BODY_LIMIT)
}

/// The auth routes at the default prefix `/auth`, to mount at `/`:
/// `GET /auth/<provider>/login?next=`, `GET|POST /auth/<provider>/callback`, `POST /auth/logout`,
/// and whatever else auth-core answers under its prefix.
///
/// Every path under the prefix, for every method, goes to auth-core, which knows its routes (405
/// for a method a route does not take, where Rocket would answer 404; 404 for the rest), so the
/// adapter never lists them twice. Routes of yours under the prefix with a static path still win
/// (Rocket ranks them first); a dynamic one collides at launch.
///
/// ```
/// let rocket = rocket::build().mount("/", auth_rocket::routes());
/// assert!(rocket.routes().any(|r| r.uri == "/auth/<rest..>"));
/// ```
pub fn routes() -> Vec<Route> {
    routes_at("/auth")
}

/// The auth routes under another prefix, to mount at `/`; it must be the one given to
/// [`AuthBuilder::prefix`](auth_core::AuthBuilder::prefix) (with the mount base in front, if
/// you mount them elsewhere: `.mount("/app", routes_at("/login"))` needs the prefix `/app/login`).
/// [`AuthFairing`](crate::AuthFairing) refuses to ignite, naming the fix, when they do not match.
///
/// ```
/// let rocket = rocket::build().mount("/", auth_rocket::routes_at("/login-prefix"));
/// assert!(rocket.routes().any(|r| r.uri == "/login-prefix/<rest..>"));
/// ```
///
/// # Panics
/// When `prefix` is not an absolute path (`/…`).
pub fn routes_at(prefix: &str) -> Vec<Route> {
    let path = format!("{}/<rest..>", prefix.trim_end_matches('/'));
    METHODS
        .into_iter()
        .map(|method| {
            let mut route = Route::new(method, &path, handle);
            route.name = Some(ROUTE_NAME.into());
            route
        })
        .collect()
}

fn handle<'r>(req: &'r Request<'_>, data: Data<'r>) -> route::BoxFuture<'r> {
    Box::pin(async move {
        let Some(auth) = fairing::auth(req) else {
            fairing::missing_fairing("the auth routes");
            return route::Outcome::Error(Status::InternalServerError);
        };
        let body = match data.open(body_limit()).into_bytes().await {
            Ok(bytes) if bytes.is_complete() => bytes.into_inner(),
            _ => Vec::new(),
        };
        route::Outcome::Success(convert::response(auth.handle(&convert::view(req), &body).await))
    })
}
