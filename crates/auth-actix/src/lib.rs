//! OAuth 2.0 / OpenID Connect login for [Actix Web](https://docs.rs/actix-web), over [`auth_core`].
//!
//! One middleware, one set of routes, a few extractors:
//! - [`AuthMiddleware`] reads the session of every request, puts it into the request extensions
//!   and writes cookie changes to the response; wrapped around a `web::scope` with
//!   [`AuthMiddleware::require_login`], it makes everything inside need a login;
//! - [`routes`] hands every path under `/auth` to auth-core: `GET /auth/{provider}/login`,
//!   `GET|POST /auth/{provider}/callback`, `POST /auth/logout`, `GET /auth/logout/callback`,
//!   `POST /auth/{provider}/backchannel-logout`;
//! - [`AuthUser`] requires a login (a browser is redirected to the provider, an API client gets
//!   401), `Option<AuthUser>` does not, and [`Authorized<P>`] applies a [`Policy`] (403).
//!
//! The adapter only translates: every decision (cookies, statuses, redirects) is auth-core's, and
//! it behaves exactly as auth-axum does (the scenario suite in `tests/` checks both), with one
//! exception: Actix Web's `Option<T>` extractor turns every error into `None`, so `Option<AuthUser>`
//! without the middleware is `None` (logged as an error) where auth-axum answers 500.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use auth_actix::{AuthMiddleware, AuthUser};
//! use auth_core::{Auth, Provider};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let auth = Auth::builder().provider(Provider::from_env("google")?).build().await?;
//!     HttpServer::new(move || {
//!         App::new()
//!             .route("/me", web::get().to(|user: AuthUser| async move { web::Json(user.claims().clone()) }))
//!             .service(
//!                 web::scope("/admin")
//!                     .wrap(AuthMiddleware::new(auth.clone()).require_login())
//!                     .route("", web::get().to(|| async { "only for logged-in users" })),
//!             )
//!             .configure(auth_actix::routes)
//!             .wrap(AuthMiddleware::new(auth.clone()))
//!     })
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! Errors of extractors are [`AuthRejection`]s, an [`actix_web::ResponseError`] carrying the
//! response auth-core decided on.
//!
//! # Cargo features
//!
//! None: the middleware, the routes and every extractor are always built. Only the `actix-web`
//! features the adapter uses are enabled (no `macros`, no compression).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod convert;
mod extract;
mod middleware;
mod routes;
mod service;

pub use auth_core;
pub use auth_core::{Auth, Bearer, Claims, EmailVerified, Policy, Scope, Session, User};
pub use bearer::{BearerUser, Principal, RequireScope};
pub use extract::{AuthError, AuthRejection, AuthUser, Authorized};
pub use middleware::AuthMiddleware;
pub use routes::{routes, routes_at};
pub use service::AuthService;
