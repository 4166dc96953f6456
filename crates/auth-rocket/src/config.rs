//! [`AuthFairing::from_config`](crate::AuthFairing::from_config): the `auth` table of Rocket's
//! configuration, read as auth-core reads the environment.

use std::collections::BTreeMap;

use auth_core::{Auth, AuthBuilder, Error, Provider};
use rocket::figment::Figment;
use serde::Deserialize;

/// The `auth` table. Not `Debug`: it holds secrets.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    app_url: Option<String>,
    session_key: Option<String>,
    default_provider: Option<String>,
    #[serde(default)]
    providers: BTreeMap<String, BTreeMap<String, String>>,
}

/// A provider's settings: `(key in its table, suffix of the environment variable auth-core reads)`.
const PROVIDER_SETTINGS: [(&str, &str); 6] = [
    ("issuer", "_ISSUER"),
    ("server_metadata_url", "_SERVER_METADATA_URL"),
    ("client_id", "_CLIENT_ID"),
    ("client_secret", "_CLIENT_SECRET"),
    ("scope", "_SCOPE"),
    ("tenant", "_TENANT"),
];

/// Builds the [`Auth`] from the figment's `auth` table; the error is a message for the log.
pub(crate) async fn build(
    figment: &Figment,
    customize: &(dyn Fn(AuthBuilder) -> AuthBuilder + Send + Sync),
) -> Result<Auth, String> {
    let config: AuthConfig = if figment.contains("auth") {
        figment.extract_inner("auth").map_err(|e| format!("invalid `auth` configuration: {e}"))?
    } else {
        AuthConfig::default()
    };
    let port: u16 = figment.extract_inner("port").unwrap_or(8000);
    let app_url = config.app_url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let mut builder = Auth::builder()
        .from_env_with(|key| match key {
            "APP_URL" => Some(app_url.clone()),
            "AUTH_SESSION_KEY" => config.session_key.clone(),
            _ => None,
        })
        .map_err(|e| setting_error(&e, None))?;
    for (name, settings) in &config.providers {
        if let Some(unknown) = settings.keys().find(|k| !PROVIDER_SETTINGS.iter().any(|(key, _)| key == k)) {
            let known: Vec<&str> = PROVIDER_SETTINGS.iter().map(|(key, _)| *key).collect();
            return Err(format!("`auth.providers.{name}.{unknown}` is not a setting (known: {})", known.join(", ")));
        }
        let provider = Provider::from_env_with(name, |var| {
            let (key, _) = PROVIDER_SETTINGS.iter().find(|(_, suffix)| var.ends_with(suffix))?;
            settings.get(*key).cloned()
        })
        .map_err(|e| setting_error(&e, Some(name)))?;
        builder = builder.provider(provider);
    }
    if let Some(name) = config.default_provider {
        builder = builder.default_provider(name);
    }
    customize(builder).build().await.map_err(|e| format!("cannot set up login: {e}"))
}

/// Names the configuration key behind an environment variable in auth-core's error.
fn setting_error(err: &Error, provider: Option<&str>) -> String {
    let Error::Env { name, problem } = err else {
        return format!("invalid `auth` configuration: {err}");
    };
    let key = match (name.as_str(), provider) {
        ("APP_URL", _) => "auth.app_url".to_owned(),
        ("AUTH_SESSION_KEY", _) => "auth.session_key".to_owned(),
        (var, Some(provider)) => match PROVIDER_SETTINGS.iter().find(|(_, suffix)| var.ends_with(suffix)) {
            Some((key, _)) => format!("auth.providers.{provider}.{key}"),
            None => format!("auth.providers.{provider}"),
        },
        (var, None) => var.to_owned(),
    };
    format!("`{key}` {problem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_name_the_configuration_key() {
        let figment = Figment::new().merge(("auth.providers.oidc.client_id", "x"));
        let err = build(&figment, &|b| b).await.expect_err("no issuer");
        assert!(err.starts_with("`auth.providers.oidc.issuer` is not set"), "{err}");
        let figment = Figment::new().merge(("auth.providers.oidc.client_secert", "x"));
        let err = build(&figment, &|b| b).await.expect_err("typo");
        assert!(err.contains("`auth.providers.oidc.client_secert` is not a setting"), "{err}");
        let figment = Figment::new().merge(("auth.app_url", "not a url"));
        let err = build(&figment, &|b| b).await.expect_err("bad URL");
        assert!(err.starts_with("`auth.app_url` is not a URL"), "{err}");
        let err = build(&Figment::new(), &|b| b).await.expect_err("no provider");
        assert!(err.contains("no provider registered"), "{err}");
    }
}
