//! `cargo run -p example-axum`: an Axum app with OpenID Connect login.
//!
//! What it shows (the routes are in `src/lib.rs`, the same in the three framework examples):
//! `AuthLayer` around the whole router, `auth_axum::routes()` merged at the root, and the
//! extractors `AuthUser` (`/me`), `Option<AuthUser>` (`/`), `Authorized<Admin>` (`/admin`),
//! `BearerUser` and `RequireScope` (`/api/whoami`, `/api/admin`) and `Principal` (`/api/me`).
//!
//! **Zero configuration:** with no provider configured it starts the auth-testkit provider
//! in-process (development mode: a page to pick `alice` or `bob`; debug builds only). Open
//! <http://127.0.0.1:3000/>: the home page shows who is logged in, the claims, and `curl` lines for
//! the API.
//!
//! **A real provider** (any OpenID Connect issuer; the guide's provider pages give each console's
//! steps), with its redirect URI registered as `$APP_URL/auth/oidc/callback`:
//!
//! ```text
//! OIDC_ISSUER=https://accounts.google.com OIDC_CLIENT_ID=… OIDC_CLIENT_SECRET=… \
//! APP_URL=http://127.0.0.1:3000 AUTH_SESSION_KEY=$(openssl rand -base64 32) cargo run -p example-axum
//! ```
//!
//! Other settings: `OIDC_SCOPE`, `OIDC_CLIENT_AUTH` (`private_key_jwt` with `OIDC_CLIENT_KEY`, the
//! key's PEM or its path), `OIDC_PAR=true` (pushed authorization requests), `OIDC_DPOP=true`
//! (DPoP-bound tokens), `API_AUDIENCE`, `HOST`/`PORT`, and
//! `AUTH_STORE=redis://127.0.0.1:6379/0` (sessions in Redis, shared by every instance) or
//! `memory`, and `METRICS_ADDR=127.0.0.1:9100` (the `auth_*` metrics for Prometheus); the guide's
//! configuration page lists them all (`cargo xtask docs`).

use std::net::SocketAddr;

use auth_core::{Auth, Report};

#[tokio::main]
async fn main() -> Result<(), Report> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // METRICS_ADDR=127.0.0.1:9100: the `auth_*` metrics (auth_core::metrics), for Prometheus to
    // scrape at http://127.0.0.1:9100/metrics.
    if let Some(addr) = std::env::var("METRICS_ADDR").ok().filter(|a| !a.trim().is_empty()) {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(auth_core::metrics::LATENCY_BUCKETS)
            .map_err(|e| std::io::Error::other(format!("metrics buckets: {e}")))?
            .with_http_listener(
                addr.parse::<SocketAddr>().map_err(|e| std::io::Error::other(format!("METRICS_ADDR={addr}: {e}")))?,
            )
            .install()?;
        auth_core::metrics::describe();
    }
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
