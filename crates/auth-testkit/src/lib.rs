//! An in-process OpenID Provider for tests and local development, with fault injection.
//!
//! `auth-testkit` runs a small but strict OpenID Connect provider inside your test process, on a
//! random loopback port, so that tests of OAuth 2.0 / OpenID Connect clients and of the apps
//! built on them run with real HTTP and no network, in milliseconds.
//!
//! - [`TestProvider`]: the provider. Discovery, JWKS, authorization code flow with PKCE (S256
//!   required), refresh token rotation, UserInfo, RP-initiated logout, revocation,
//!   introspection, pushed authorization requests (RFC 9126). Clients authenticate with
//!   `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `client_secret_jwt`
//!   (RFC 7523), or are public. DPoP (RFC 9449): a `DPoP` proof at the token endpoint binds the
//!   access and refresh tokens to the client's key, `/userinfo` takes them as `Authorization:
//!   DPoP` with a proof, and server nonces can be required
//!   ([`TestProviderBuilder::require_dpop_nonce`]). It auto-approves logins (or, in dev mode,
//!   shows a page to pick a user).
//! - [`TestClientKey`]: RSA, P-256 and Ed25519 key pairs for `private_key_jwt` clients, as PEM
//!   and JWK.
//! - [`TestDpopKey`]: a client's P-256 DPoP key, making proofs (RFC 9449), and its thumbprint to
//!   bind minted tokens ([`TestProvider::mint_dpop_access_token_for`],
//!   [`TestProvider::mint_dpop_jwt_access_token`]).
//! - [`Fault`]: misbehaviours to inject (bad signatures, `alg: none`, wrong `iss`/`aud`/`nonce`,
//!   a missing RFC 9207 `iss`, failing or hanging endpoints …), one per rule a client must enforce.
//! - Back-channel logout (OpenID Connect Back-Channel Logout 1.0):
//!   [`TestProvider::logout_token_with`] builds logout tokens, valid or with one
//!   [`LogoutTokenFault`] each, [`TestProvider::send_backchannel_logout`] posts them to a
//!   client, and `/end_session` notifies a client's
//!   [back-channel logout URI](TestClient::with_backchannel_logout_uri) by itself.
//! - [`Browser`]: a cookie-keeping client that follows redirects on request, to drive an app's
//!   login end to end whatever its web framework.
//!
//! # Example: the code flow by hand
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use auth_testkit::{Browser, TestProvider};
//!
//! let op = TestProvider::start().await?;
//! // RFC 7636 appendix B
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
//! let redirect_uri = "http://127.0.0.1:9/callback";
//!
//! let browser = Browser::new();
//! let response = browser
//!     .get(&format!(
//!         "{}/authorize?response_type=code&client_id=test-client&scope=openid%20email\
//!          &redirect_uri={redirect_uri}&state=s1&nonce=n1\
//!          &code_challenge={challenge}&code_challenge_method=S256",
//!         op.issuer()
//!     ))
//!     .await?;
//! assert_eq!(response.status(), 302);
//! let location = reqwest::Url::parse(response.headers()["location"].to_str()?)?;
//! let param = |name: &str| {
//!     location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
//! };
//! assert_eq!(param("state").as_deref(), Some("s1"));
//! assert_eq!(param("iss").as_deref(), Some(op.issuer()));
//! let code = param("code").expect("a code");
//!
//! let tokens: serde_json::Value = reqwest::Client::new()
//!     .post(format!("{}/token", op.issuer()))
//!     .basic_auth(op.client_id(), Some(op.client_secret()))
//!     .form(&[
//!         ("grant_type", "authorization_code"),
//!         ("code", code.as_str()),
//!         ("redirect_uri", redirect_uri),
//!         ("code_verifier", verifier),
//!     ])
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(tokens["token_type"], "Bearer");
//! assert!(tokens["id_token"].is_string());
//! assert_eq!(op.token_requests(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Dev mode
//!
//! With [`TestProviderBuilder::dev_mode`], `/authorize` shows a page listing the
//! [users](TestProviderBuilder::users), each a button, and a Deny button: enough to click
//! through an example app by hand without registering anywhere.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `auth-core` | off | `dev_provider_unless_configured`, the examples' zero-config development provider for an app built on auth-core, and `DevHomePage`, their home page (both depend on auth-core, which a provider used only in tests does not need) |
//!
//! The crate uses axum and Tokio for the server, jsonwebtoken with aws-lc-rs for keys and
//! signatures, and reqwest (rustls) for [`Browser`].
#![cfg_attr(docsrs, feature(doc_cfg))]

mod assertion;
mod backchannel;
mod browser;
mod client_key;
#[cfg(feature = "auth-core")]
mod dev;
mod dpop;
mod fault;
mod html;
mod keys;
mod model;
mod provider;
mod server;
mod util;

pub use browser::{Browser, BrowserError, MAX_REDIRECTS};
pub use client_key::TestClientKey;
#[cfg(feature = "auth-core")]
pub use dev::{DevHomePage, dev_provider_unless_configured};
pub use dpop::TestDpopKey;
pub use fault::{Fault, LogoutTokenFault};
pub use keys::SigningAlg;
pub use model::{ClientAuthMethod, TestClient, TestUser};
pub use provider::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, TestProvider, TestProviderBuilder};

/// Re-exported for [`Browser`]'s signatures.
pub use reqwest;
/// Re-exported for [`TestUser`] claims and [`TestProvider::sign_jwt`].
pub use serde_json;
/// Re-exported for [`BrowserError::InvalidUrl`].
pub use url;
