//! `cargo run -p example-axum`: an Axum app with OpenID Connect login.
//!
//! With no provider configured, it starts the auth-testkit provider in-process (development mode:
//! a page to pick a user), so it works on a fresh machine with zero set-up. To use a real provider:
//!
//! ```text
//! OIDC_ISSUER=https://accounts.google.com OIDC_CLIENT_ID=… OIDC_CLIENT_SECRET=… \
//! APP_URL=http://127.0.0.1:3000 AUTH_SESSION_KEY=$(openssl rand -base64 32) cargo run -p example-axum
//! ```
//! Register `$APP_URL/auth/oidc/callback` as the redirect URI at the provider.

use auth_core::{Auth, Report};

#[tokio::main]
async fn main() -> Result<(), Report> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // Zero-config mode: without OIDC_* (or GOOGLE_*, …), an in-process development provider, kept
    // alive for the app's lifetime.
    let (builder, _dev_provider) = auth_testkit::dev_provider_unless_configured(Auth::builder().from_env()?).await?;
    // AUTH_STORE: redis://host:port/db or redis+cluster://h1:p1,h2:p2 (sessions shared by every
    // instance), memory, or unset (cookies).
    let builder = auth_redis::store_from_env(builder).await?;
    let app_url = builder.base_url_str().to_owned();
    let (host, port) = builder.listen_addr_from_env()?;
    let auth = builder.build().await?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!("example-axum listening: open {app_url}/ and log in");
    axum::serve(listener, example_axum::app(auth))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
