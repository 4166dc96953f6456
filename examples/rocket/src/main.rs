//! `cargo run -p example-rocket`: a Rocket app with OpenID Connect login.
//!
//! With no provider configured, it starts the auth-testkit provider in-process (development mode:
//! a page to pick a user), so it works on a fresh machine with zero set-up. To use a real provider:
//!
//! ```text
//! OIDC_ISSUER=https://accounts.google.com OIDC_CLIENT_ID=… OIDC_CLIENT_SECRET=… \
//! APP_URL=http://127.0.0.1:3000 AUTH_SESSION_KEY=$(openssl rand -base64 32) cargo run -p example-rocket
//! ```
//! Register `$APP_URL/auth/oidc/callback` as the redirect URI at the provider.
//!
//! The app listens on `HOST` (default `127.0.0.1`) and `PORT` (default: the port of `APP_URL`);
//! Rocket's other settings come from `Rocket.toml` and `ROCKET_*` variables as usual.

use auth_core::{Auth, Provider};
use auth_testkit::TestProvider;

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut builder = Auth::builder().from_env()?;
    // Zero-config mode: an in-process provider, kept alive for the app's lifetime.
    let _dev_provider = if builder.has_providers() {
        None
    } else {
        let op = TestProvider::start_dev().await?;
        tracing::warn!(issuer = op.issuer(), "no OIDC_* configured: using the built-in development provider");
        builder = builder
            .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()));
        Some(op)
    };
    let app_url = builder.base_url_str().to_owned();
    let (host, port) = builder.listen_addr_from_env()?;
    let auth = builder.build().await?;
    let figment = rocket::Config::figment().merge(("address", host)).merge(("port", port));
    tracing::info!("example-rocket listening: open {app_url}/ and log in");
    // Rocket stops gracefully on Ctrl-C by itself.
    let _rocket = example_rocket::rocket(auth, figment).launch().await?;
    Ok(())
}
