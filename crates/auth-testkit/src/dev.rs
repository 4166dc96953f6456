//! Zero-config development for an app built on auth-core (feature `auth-core`).

use auth_core::{AuthBuilder, Provider};

use crate::TestProvider;

/// The examples' zero-config mode for your own app: when `builder` has no provider yet (no
/// `OIDC_*`, `GOOGLE_*`, … variables read by [`AuthBuilder::from_env`]), starts the development
/// provider in-process ([`TestProvider::start_dev`]: a page to pick `alice` or `bob`) and
/// registers it as the provider `oidc`, with a loud warning. Keep the returned provider alive as
/// long as the app runs.
///
/// Anyone can log in as anyone through it, so a release build refuses it: configure a real
/// provider there.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_core::Auth;
/// let (builder, _dev) = auth_testkit::dev_provider_unless_configured(Auth::builder()).await?;
/// let auth = builder.build().await?;
/// assert_eq!(auth.provider_names().collect::<Vec<_>>(), ["oidc"]);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// In a release build without a configured provider, and when the provider cannot bind a
/// loopback port.
pub async fn dev_provider_unless_configured(
    builder: AuthBuilder,
) -> std::io::Result<(AuthBuilder, Option<TestProvider>)> {
    if builder.has_providers() {
        return Ok((builder, None));
    }
    if !cfg!(debug_assertions) {
        return Err(std::io::Error::other(
            "no login provider is configured (OIDC_ISSUER and OIDC_CLIENT_ID, GOOGLE_CLIENT_ID, …), and a release \
             build refuses the development provider, through which anyone logs in as anyone",
        ));
    }
    let op = TestProvider::start_dev().await?;
    let warning = format!(
        "WARNING: no login provider configured; using the built-in DEVELOPMENT provider at {} (anyone can log \
         in as anyone). Set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET for a real one.",
        op.issuer()
    );
    tracing::warn!("{warning}");
    // Also on stderr: an app without a tracing subscriber must not miss this.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{warning}");
    }
    let provider = Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret());
    Ok((builder.provider(provider), Some(op)))
}
