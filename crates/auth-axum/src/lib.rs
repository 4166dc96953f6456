//! OAuth 2.0 / OpenID Connect login for [Axum](https://docs.rs/axum), over [`auth_core`].
//!
//! One layer, one set of routes, a few extractors:
//! - [`AuthLayer`] reads the session of every request, puts it into the request extensions and
//!   writes cookie changes to the response;
//! - [`routes()`] answers `GET /auth/{provider}/login`, `GET|POST /auth/{provider}/callback` and
//!   `POST /auth/logout`;
//! - [`AuthUser`] requires a login (a browser is redirected to the provider, an API client gets
//!   401), `Option<AuthUser>` does not, and [`Authorized<P>`] applies a [`Policy`] (403); both
//!   deref to [`User`], whose tokens are kept fresh, and which calls the provider's API with them;
//! - for APIs, [`BearerUser`] requires a bearer access token (RFC 6750), [`RequireScope<S>`] a
//!   scope, and [`Principal`] takes a bearer token or a session.
//!
//! The adapter only translates: every decision (cookies, statuses, redirects) is auth-core's.
//!
//! ```no_run
//! use auth_axum::{AuthLayer, AuthUser};
//! use auth_core::{Auth, Provider};
//! use axum::{Json, Router, routing::get};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Auth::builder().provider(Provider::from_env("google")?).build().await?;
//! let app: Router = Router::new()
//!     .route("/me", get(|user: AuthUser| async move { Json(user.claims().clone()) }))
//!     .merge(auth_axum::routes())
//!     .layer(AuthLayer::new(auth));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! None: the layer, the routes and every extractor are always built.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod convert;
mod extract;
mod layer;
mod routes;
mod service;

pub use auth_core;
pub use auth_core::{Auth, Bearer, Claims, EmailVerified, Policy, Scope, Session, User};
pub use bearer::{BearerUser, Principal, RequireScope};
pub use extract::{AuthError, AuthRejection, AuthUser, Authorized};
pub use layer::AuthLayer;
pub use routes::{routes, routes_at};
pub use service::AuthService;
