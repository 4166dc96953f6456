//! OAuth 2.0 / OpenID Connect login for [Rocket](https://rocket.rs) 0.5, over [`auth_core`].
//!
//! One fairing, one set of routes, a few request guards:
//! - [`AuthFairing`] reads the session of every request (once, into the request-local cache) and
//!   writes cookie changes to the response; [`AuthFairing::from_config`] builds the [`Auth`] from
//!   Rocket's configuration (`Rocket.toml`) instead of code;
//! - [`routes()`] hands every request under `/auth` to auth-core: `GET /auth/<provider>/login`,
//!   `GET|POST /auth/<provider>/callback`, `POST /auth/logout`, …;
//! - [`AuthUser`] requires a login (a browser is redirected to the provider, an API client gets
//!   401), `Option<AuthUser>` does not, and [`Authorized<P>`] applies a [`Policy`] (403). Their
//!   [`Sentinel`](rocket::Sentinel)s abort launch when the fairing is not attached.
//!
//! The adapter only translates: every decision (cookies, statuses, redirects) is auth-core's, and
//! a refusing guard sends auth-core's whole answer, not a bare status (see
//! [how](AuthFairing#how-a-refusing-guard-answers)).
//!
//! ```no_run
//! use auth_core::{Auth, Provider};
//! use auth_rocket::{AuthFairing, AuthUser};
//! use rocket::serde::json::{Json, Value};
//!
//! #[rocket::get("/me")]
//! fn me(user: AuthUser) -> Json<Value> {
//!     Json(Value::Object(user.claims().as_map().clone()))
//! }
//!
//! #[rocket::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let auth = Auth::builder().provider(Provider::from_env("google")?).build().await?;
//!     rocket::build()
//!         .attach(AuthFairing::new(auth))
//!         .mount("/", rocket::routes![me])
//!         .mount("/", auth_rocket::routes())
//!         .launch()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Logging
//! auth-core and this crate log with [`tracing`](https://docs.rs/tracing). Without a `tracing`
//! subscriber the events go to the `log` crate, hence to Rocket's logger.
//!
//! # Differences from Rocket's habits
//! - The session is auth-core's encrypted cookie, not Rocket's private cookies: no `secret_key`
//!   is needed for it (`session_key` / `AUTH_SESSION_KEY` is auth-core's).
//! - The auth routes take every method, so that `GET /auth/logout` is auth-core's 405 rather
//!   than Rocket's 404.
//!
//! # Testing
//! Rocket's local [`Client`](rocket::local::asynchronous::Client) works as with any Rocket app:
//! a request that carries no `Cookie` header is given the cookies of Rocket's jar, where a tracked
//! client keeps those the app set (see `tests/guards.rs` for a whole login in-process).
//!
//! # Cargo features
//!
//! None: the fairing, the routes and every guard are always built.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod config;
mod convert;
mod fairing;
mod guard;
mod routes;

pub use auth_core;
pub use auth_core::{Auth, Bearer, Claims, EmailVerified, Policy, Scope, Session, User};
pub use bearer::{BearerUser, Principal, RequireScope};
pub use fairing::AuthFairing;
pub use guard::{AuthError, AuthRejection, AuthUser, Authorized};
pub use routes::{routes, routes_at};
