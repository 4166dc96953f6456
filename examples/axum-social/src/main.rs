//! Google and GitHub logins, configured from the environment as Authlib reads `GOOGLE_CLIENT_ID`:
//!
//! ```text
//! GOOGLE_CLIENT_ID=… GOOGLE_CLIENT_SECRET=… GITHUB_CLIENT_ID=… GITHUB_CLIENT_SECRET=… \
//! APP_URL=http://127.0.0.1:3000 cargo run -p example-axum-social
//! ```
//! Register `$APP_URL/auth/google/callback` at Google and `$APP_URL/auth/github/callback` at GitHub.
//! A provider whose variables are unset is skipped; `AuthBuilder::from_env` registers the others.

use auth_core::{Auth, Error, Report};

#[tokio::main]
async fn main() -> Result<(), Report> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // Registers every preset whose {NAME}_CLIENT_ID is set (here: google, github).
    let builder = Auth::builder().from_env()?;
    if !builder.has_providers() {
        return Err(Error::Config(
            "set GOOGLE_CLIENT_ID/GOOGLE_CLIENT_SECRET and/or GITHUB_CLIENT_ID/GITHUB_CLIENT_SECRET".into(),
        )
        .into());
    }
    let app_url = builder.base_url_str().to_owned();
    let (host, port) = builder.listen_addr_from_env()?;
    let auth = builder.build().await?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!("open {app_url}/");
    axum::serve(listener, example_axum_social::app(auth)).await?;
    Ok(())
}
