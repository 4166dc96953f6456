//! OpenID Connect Discovery 1.0: the provider's metadata, fetched once at start.

use serde::Deserialize;

use crate::Error;
use crate::net::HttpClient;
use crate::provider::{Endpoints, Provider};

/// The parts of a provider's metadata the library uses (Discovery 1.0 §3, RFC 8414, RFC 9207,
/// RP-Initiated Logout 1.0, Back-Channel Logout 1.0).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer identifier; empty for plain OAuth 2.0 providers.
    #[serde(default)]
    pub issuer: String,
    /// Where the browser is sent to log in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// The userinfo endpoint.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The JWKS with the provider's signing keys.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// RP-initiated logout.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 7009 token revocation.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// RFC 7662 token introspection.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// RFC 9207: the callback carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// ID token signing algorithms.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Token endpoint client authentication methods.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// PKCE methods.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// Back-channel logout support.
    #[serde(default)]
    pub backchannel_logout_supported: bool,
}

/// Fetches and checks the metadata of an OIDC provider, or builds it from explicit endpoints.
///
/// The `openidconnect` crate's discovery is not used: it refuses Microsoft's multi-tenant metadata
/// (whose `issuer` is the template `…/{tenantid}/v2.0`) and its metadata type does not carry the
/// logout and RFC 9207 fields without a dozen generic parameters; this struct is small and checked
/// by the same rules.
pub(crate) async fn discover(provider: &Provider, http: &HttpClient) -> Result<ProviderMetadata, Error> {
    let fail = |reason: String| Error::Discovery { provider: provider.name.clone(), reason, source: None };
    let meta = match &provider.endpoints {
        Endpoints::Explicit { authorize, token, userinfo } => ProviderMetadata {
            authorization_endpoint: authorize.clone(),
            token_endpoint: token.clone(),
            userinfo_endpoint: userinfo.clone(),
            ..ProviderMetadata::default()
        },
        Endpoints::Discovery { issuer, metadata_url } => {
            let url = match metadata_url {
                Some(url) => url.clone(),
                // Discovery §4: remove a trailing slash, then append the well-known path.
                None => format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
            };
            provider.check_url("metadata URL", &url)?;
            let body = http.get_json(&url, None, "discovery").await.map_err(|e| match e {
                Error::Provider { reason, .. } => fail(reason),
                other => other,
            })?;
            let meta: ProviderMetadata =
                serde_json::from_value(body).map_err(|e| fail(format!("the metadata document is not valid: {e}")))?;
            let expected = if issuer.is_empty() { None } else { Some(issuer.as_str()) };
            check_issuer(provider, expected, &meta.issuer).map_err(fail)?;
            if meta.jwks_uri.is_none() {
                return Err(fail("the metadata has no jwks_uri".into()));
            }
            if !meta.code_challenge_methods_supported.is_empty()
                && !meta.code_challenge_methods_supported.iter().any(|m| m == "S256")
            {
                tracing::warn!(provider = %provider.name, "provider does not advertise PKCE S256; sending it anyway");
            }
            meta
        }
    };
    for (what, url) in
        [("authorization endpoint", Some(&meta.authorization_endpoint)), ("token endpoint", Some(&meta.token_endpoint))]
            .into_iter()
            .chain([
                ("userinfo endpoint", meta.userinfo_endpoint.as_ref()),
                ("jwks_uri", meta.jwks_uri.as_ref()),
                ("end_session_endpoint", meta.end_session_endpoint.as_ref()),
                ("revocation_endpoint", meta.revocation_endpoint.as_ref()),
            ])
    {
        if let Some(url) = url {
            provider.check_url(what, url)?;
        }
    }
    Ok(meta)
}

/// The discovery document's `issuer` must equal the configured issuer exactly (Discovery §4.3).
///
/// For Microsoft multi-tenant endpoints the document's issuer is the template with `{tenantid}`;
/// the real check then happens per ID token against its `tid` (see `id_token::expected_issuer`).
fn check_issuer(provider: &Provider, configured: Option<&str>, advertised: &str) -> Result<(), String> {
    if advertised.is_empty() {
        return Err("the metadata has no issuer".into());
    }
    provider.check_url("issuer", advertised).map_err(|e| e.to_string())?;
    let Some(configured) = configured else { return Ok(()) };
    if configured == advertised {
        return Ok(());
    }
    if provider.multi_tenant_issuer && advertised.contains("{tenantid}") {
        let prefix = advertised.split("{tenantid}").next().unwrap_or_default();
        if configured.starts_with(prefix) {
            return Ok(());
        }
    }
    Err(format!("the metadata's issuer `{advertised}` is not the configured issuer `{configured}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_match_exactly() {
        let p = Provider::oidc("x", "https://id.example.com", "c");
        assert!(check_issuer(&p, Some("https://id.example.com"), "https://id.example.com").is_ok());
        assert!(check_issuer(&p, Some("https://id.example.com"), "https://id.example.com/").is_err());
        assert!(check_issuer(&p, Some("https://id.example.com"), "https://evil.example.com").is_err());
        assert!(check_issuer(&p, Some("https://id.example.com"), "").is_err());
    }

    #[test]
    fn microsoft_multi_tenant_template() {
        let ms = Provider::microsoft("common", "c", "s");
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(check_issuer(&ms, Some("https://login.microsoftonline.com/common/v2.0"), template).is_ok());
        let single = Provider::microsoft("contoso.onmicrosoft.com", "c", "s");
        assert!(
            check_issuer(&single, Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"), template)
                .is_err()
        );
    }
}
