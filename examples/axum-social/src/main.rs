//! Google and GitHub logins, configured from the environment as Authlib reads `GOOGLE_CLIENT_ID`:
//!
//! ```text
//! GOOGLE_CLIENT_ID=… GOOGLE_CLIENT_SECRET=… GITHUB_CLIENT_ID=… GITHUB_CLIENT_SECRET=… \
//! APP_URL=http://127.0.0.1:3000 cargo run -p example-axum-social
//! ```
//! Register `$APP_URL/auth/google/callback` at Google and `$APP_URL/auth/github/callback` at GitHub.
//! A provider whose variables are unset is skipped.

use auth_core::{Auth, Error, Provider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut builder = Auth::builder().from_env()?;
    for name in ["google", "github"] {
        match Provider::from_env(name) {
            Ok(provider) => builder = builder.provider(provider),
            Err(Error::Env { name: var, .. }) if std::env::var(&var).is_err() => {
                tracing::warn!("{var} is not set: no {name} login");
            }
            Err(err) => return Err(err.into()),
        }
    }
    if !builder.has_providers() {
        return Err("set GOOGLE_CLIENT_ID/GOOGLE_CLIENT_SECRET and/or GITHUB_CLIENT_ID/GITHUB_CLIENT_SECRET".into());
    }
    let app_url = builder.base_url_str().to_owned();
    let (host, port) = builder.listen_addr_from_env()?;
    let auth = builder.build().await?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!("open {app_url}/");
    axum::serve(listener, example_axum_social::app(auth)).await?;
    Ok(())
}
