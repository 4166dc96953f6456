//! OAuth 2.0 / OpenID Connect login for Rust web apps, framework-neutral.
//!
//! `auth-core` decides everything; the adapters `auth-axum`, `auth-actix` and `auth-rocket` only
//! translate their framework's requests into a [`RequestView`] and an [`AuthResponse`] back.
//!
//! | Authlib (`flask_client`)             | auth-core                                              |
//! |--------------------------------------|--------------------------------------------------------|
//! | `oauth = OAuth(app)`                 | [`Auth::builder()`]                                    |
//! | `oauth.register("google", …)`        | `.provider(Provider::google(…))`, [`Provider::from_env`] |
//! | `oauth.google.authorize_redirect()`  | `GET /auth/google/login?next=/path` ([`Auth::login`])  |
//! | `oauth.google.authorize_access_token()` | `GET /auth/google/callback` ([`Auth::callback`])    |
//! | `token["userinfo"]`                  | [`Session::claims`]                                    |
//! | `session["user"]`                    | [`Auth::session`], `AuthUser` in the adapters          |
//! | `oauth.google.token` (auto-refreshed) | [`User::access_token`]                                |
//! | `oauth.github.get("user/emails")`    | [`User::api`]`.get_json("user/emails")`                |
//!
//! # Security defaults
//! PKCE S256 on every login; `state` and `nonce` per login, single use, 10-minute expiry, each
//! pending login in its own encrypted cookie (so several tabs can log in at once); RFC 9207 `iss`
//! checked; ID tokens checked per OIDC Core §3.1.3.7 with an algorithm allow-list (never `none`);
//! userinfo `sub` must match; a new session id at every login; cookies encrypted (AES-256-GCM) with
//! a key ring, `HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` on https; logout by POST only,
//! and never from another site (`Sec-Fetch-Site`, `Origin`); `next=` only same-site paths; every
//! call to a provider has a timeout and a cap on the bytes read; provider URLs must be https except
//! on loopback hosts; everything an anonymous client can make the app remember is bounded.
//!
//! # Example
//! ```
//! use auth_core::{Method, RequestView};
//! # async fn demo(auth: auth_core::Auth) {
//! let req = RequestView::new(Method::Get, "/me", None).with_header("accept", "application/json");
//! let lookup = auth.session(&req).await;
//! if lookup.session.is_none() {
//!     let res = auth.unauthenticated(&req);
//!     assert_eq!(res.status, 401);
//! }
//! # }
//! ```
//!
//! # Cargo features
//!
//! None: everything above is always built. The stores that need a server are crates of their own
//! (`auth-redis`), so auth-core has no database driver.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod client_key;
mod codec;
mod crypto;
mod discovery;
mod dpop;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod id_token;
mod jwks;
mod jws;
pub mod metrics;
mod net;
#[cfg(test)]
mod properties;
mod provider;
mod redirect;
mod session;
mod state;
pub mod store_contract;

pub use auth::{
    ApiClient, ApiResponse, Auth, AuthBuilder, Bearer, EmailVerified, LoggedIn, LoginCompletion, Policy, Principal,
    Scope, SessionLookup, User,
};
pub use client_key::ClientKey;
pub use crypto::{KeyRing, SessionKey};
pub use discovery::ProviderMetadata;
pub use error::{Error, Report, TokenError};
pub use http::{AuthResponse, Method, RequestView, cookies_not_set_by, html_escape};
pub use jwks::JwksConfig;
pub use net::HttpConfig;
pub use provider::{AssertionAudience, ClaimMapping, ClientAuth, ClientSecret, Profile, Provider};
pub use redirect::safe_next;
pub use session::{Claims, CookieStore, MemoryStore, Secret, Session, SessionStore, Tokens};

/// The attribute to implement [`SessionStore`] with (re-exported from the `async-trait` crate).
pub use async_trait::async_trait;

pub use url;

/// The most an adapter reads of a request body for the auth routes (form posts: a
/// `response_mode=form_post` callback or a back-channel logout token, both far smaller); a larger
/// body is treated as empty, which auth-core then refuses with a 400.
pub const FORM_BODY_LIMIT: usize = 64 * 1024;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
