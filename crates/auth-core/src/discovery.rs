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
    /// RFC 9126: where authorization requests are pushed.
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// RFC 9126 §5: every authorization request must be pushed.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
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
            // Discovery §4.3: the metadata's issuer must be the one configured or, with only a
            // metadata URL, the one that URL is derived from; the comparison is never skipped.
            let expected = if issuer.is_empty() {
                Some(issuer_of_metadata_url(&url).ok_or_else(|| {
                    fail(format!(
                        "the metadata URL `{url}` is not `{{issuer}}/.well-known/openid-configuration` (nor RFC 8414's \
                         form), so the issuer it must name is unknown: set {} too",
                        provider.setting("ISSUER", "the issuer (Provider::oidc)")
                    ))
                })?)
            } else {
                None
            };
            let expected = expected.as_deref().or(Some(issuer.as_str()));
            let reply = http.get(&url, None, &provider.name, "discovery").await.map_err(|e| match e {
                Error::Unreachable { source, .. } => Error::Discovery {
                    provider: provider.name.clone(),
                    reason: format!("GET {url} failed: {source}"),
                    source: Some(Box::new(source)),
                },
                Error::Provider { reason, .. } => fail(format!("GET {url}: {reason}")),
                other => other,
            })?;
            if !(200..300).contains(&reply.status) {
                let mut reason = format!("GET {url} answered HTTP status {}", reply.status);
                if reply.status == 404 {
                    reason.push_str(&not_found_hint(provider, issuer, metadata_url.is_some()));
                }
                let busy = reply.status >= 500 || reply.status == 429;
                return Err(Error::Discovery {
                    provider: provider.name.clone(),
                    reason,
                    source: busy.then(|| Box::new(crate::error::ServerBusy(reply.status)) as _),
                });
            }
            read_metadata(provider, &url, expected, issuer.is_empty(), &reply.body)?
        }
    };
    check_endpoints(provider, &meta)?;
    check_par(provider, &meta)?;
    Ok(meta)
}

/// Pushed authorization requests, asked for by the configuration or required by the provider,
/// need the provider's PAR endpoint.
fn check_par(provider: &Provider, meta: &ProviderMetadata) -> Result<(), Error> {
    let fail = |reason: String| Error::Discovery { provider: provider.name.clone(), reason, source: None };
    if (provider.par || meta.require_pushed_authorization_requests)
        && meta.pushed_authorization_request_endpoint.is_none()
    {
        return Err(fail(if provider.par {
            format!(
                "{} asks for pushed authorization requests, but the provider names no \
                 pushed_authorization_request_endpoint",
                provider.setting("PAR", "with_pushed_authorization_requests")
            )
        } else {
            "the metadata requires pushed authorization requests but names no pushed_authorization_request_endpoint"
                .into()
        }));
    }
    Ok(())
}

/// Reads the metadata document fetched from `url` and checks it: its issuer must be `expected`
/// (Discovery §4.3), and it must name a JWKS. `derived`: `expected` was derived from the metadata
/// URL, so it may lack a trailing slash the provider's issuer has.
pub(crate) fn read_metadata(
    provider: &Provider,
    url: &str,
    expected: Option<&str>,
    derived: bool,
    body: &[u8],
) -> Result<ProviderMetadata, Error> {
    let fail = |reason: String| Error::Discovery { provider: provider.name.clone(), reason, source: None };
    // JSON is UTF-8 (RFC 8259 §8.1), also in the members skipped unread, which serde does not
    // check; and Discovery §4.2's document is an object, where a derived struct would also read an
    // array, by position.
    let text = std::str::from_utf8(body)
        .map_err(|e| fail(format!("the metadata document at {url} is not valid: not UTF-8 ({e})")))?;
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(fail(format!("the metadata document at {url} is not a JSON object")));
    }
    let meta: ProviderMetadata =
        serde_json::from_str(text).map_err(|e| fail(format!("the metadata document at {url} is not valid: {e}")))?;
    // Discovery §4 drops a trailing slash before building the URL, so an issuer derived
    // from it may be the metadata's with its slash (Auth0: `https://tenant.auth0.com/`). A
    // configured issuer is compared as it is.
    let expected = expected.map(|e| if derived { with_advertised_slash(e, &meta.issuer) } else { e });
    check_issuer(provider, expected.filter(|i| !i.is_empty()), &meta.issuer)
        .map_err(|reason| fail(format!("{reason} (fetched from {url})")))?;
    if meta.jwks_uri.is_none() {
        return Err(fail("the metadata has no jwks_uri".into()));
    }
    if !meta.code_challenge_methods_supported.is_empty()
        && !meta.code_challenge_methods_supported.iter().any(|m| m == "S256")
    {
        tracing::warn!(provider = %provider.name, "provider does not advertise PKCE S256; sending it anyway");
    }
    Ok(meta)
}

/// Every endpoint of the metadata must be a URL the provider may use (https, or http on loopback).
pub(crate) fn check_endpoints(provider: &Provider, meta: &ProviderMetadata) -> Result<(), Error> {
    for (what, url) in
        [("authorization endpoint", Some(&meta.authorization_endpoint)), ("token endpoint", Some(&meta.token_endpoint))]
            .into_iter()
            .chain([
                ("userinfo endpoint", meta.userinfo_endpoint.as_ref()),
                ("jwks_uri", meta.jwks_uri.as_ref()),
                ("end_session_endpoint", meta.end_session_endpoint.as_ref()),
                ("revocation_endpoint", meta.revocation_endpoint.as_ref()),
                ("introspection_endpoint", meta.introspection_endpoint.as_ref()),
                ("pushed_authorization_request_endpoint", meta.pushed_authorization_request_endpoint.as_ref()),
            ])
    {
        if let Some(url) = url {
            provider.check_url(what, url)?;
        }
    }
    Ok(())
}

const WELL_KNOWN_OIDC: &str = "/.well-known/openid-configuration";
const WELL_KNOWN_OAUTH: &str = "/.well-known/oauth-authorization-server";

/// The issuer a metadata URL stands for: `{issuer}/.well-known/openid-configuration` (Discovery
/// §4), or RFC 8414's `https://host/.well-known/oauth-authorization-server{/path}`.
fn issuer_of_metadata_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.query().is_some() {
        return None;
    }
    if let Some(issuer) = url.strip_suffix(WELL_KNOWN_OIDC) {
        return (!issuer.is_empty()).then(|| issuer.to_owned());
    }
    let origin = parsed.origin().ascii_serialization();
    let path = parsed.path().strip_prefix(WELL_KNOWN_OAUTH)?;
    Some(format!("{origin}{path}"))
}

/// `derived`, or `advertised` when it is `derived` with a trailing slash.
fn with_advertised_slash<'a>(derived: &'a str, advertised: &'a str) -> &'a str {
    if advertised.strip_suffix('/') == Some(derived) { advertised } else { derived }
}

/// What to say when the metadata URL answered 404.
fn not_found_hint(provider: &Provider, issuer: &str, explicit_url: bool) -> String {
    if explicit_url {
        return format!(": check {}", provider.setting("SERVER_METADATA_URL", "the metadata URL"));
    }
    if issuer.contains("/.well-known/") {
        let base = issuer.split("/.well-known/").next().unwrap_or_default();
        return format!(
            ": {} looks like a discovery URL, not an issuer; set it to `{base}`, or put the URL in {}",
            provider.setting("ISSUER", "the issuer"),
            provider.setting("SERVER_METADATA_URL", "with_server_metadata_url")
        );
    }
    format!(
        ": is {} right? It is the provider's issuer identifier, the URL before /.well-known/openid-configuration",
        provider.setting("ISSUER", "the issuer")
    )
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
    let setting = provider.setting("ISSUER", "the configured issuer");
    let hint = if configured.trim_end_matches('/') == advertised.trim_end_matches('/') {
        if configured.ends_with('/') {
            format!(": remove the trailing slash from {setting}")
        } else {
            format!(": add the trailing slash to {setting}")
        }
    } else {
        format!(": set {setting} to `{advertised}` if you trust that provider")
    };
    Err(format!("the metadata's issuer `{advertised}` is not the configured issuer `{configured}`{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_needs_the_providers_endpoint() {
        let plain = Provider::oidc("x", "https://id.example.com", "c");
        let pushed = plain.clone().with_pushed_authorization_requests();
        let none = ProviderMetadata::default();
        let required = ProviderMetadata { require_pushed_authorization_requests: true, ..ProviderMetadata::default() };
        let offered = ProviderMetadata {
            pushed_authorization_request_endpoint: Some("https://id.example.com/par".into()),
            ..required.clone()
        };
        assert!(check_par(&plain, &none).is_ok());
        let err = check_par(&pushed, &none).unwrap_err().to_string();
        assert!(err.contains("with_pushed_authorization_requests") && err.contains("names no"), "{err}");
        assert!(check_par(&plain, &required).unwrap_err().to_string().contains("requires pushed"));
        assert!(check_par(&pushed, &offered).is_ok() && check_par(&plain, &offered).is_ok());
    }

    #[test]
    fn issuer_must_match_exactly() {
        let p = Provider::oidc("x", "https://id.example.com", "c");
        assert!(check_issuer(&p, Some("https://id.example.com"), "https://id.example.com").is_ok());
        assert!(check_issuer(&p, Some("https://id.example.com"), "https://id.example.com/").is_err());
        assert!(check_issuer(&p, Some("https://id.example.com"), "https://evil.example.com").is_err());
        assert!(check_issuer(&p, Some("https://id.example.com"), "").is_err());
    }

    #[test]
    fn issuer_mistakes_say_what_to_fix() {
        let p = Provider::from_env_with("oidc", |k| match k {
            "OIDC_CLIENT_ID" => Some("app".into()),
            "OIDC_ISSUER" => Some("https://id.example.com/".into()),
            _ => None,
        })
        .unwrap();
        let err = check_issuer(&p, Some("https://id.example.com/"), "https://id.example.com").unwrap_err();
        assert!(err.contains("remove the trailing slash from OIDC_ISSUER"), "{err}");
        let hint = not_found_hint(&p, "https://id.example.com/.well-known/openid-configuration", false);
        assert!(hint.contains("OIDC_ISSUER looks like a discovery URL"), "{hint}");
        assert!(hint.contains("`https://id.example.com`"), "{hint}");
        let code = Provider::oidc("corp", "https://id.example.com", "c");
        let err = check_issuer(&code, Some("https://id.example.com"), "https://id.example.com/").unwrap_err();
        assert!(err.contains("add the trailing slash"), "{err}");
    }

    #[test]
    fn the_issuer_a_metadata_url_implies() {
        let of = issuer_of_metadata_url;
        assert_eq!(
            of("https://id.example.com/.well-known/openid-configuration").as_deref(),
            Some("https://id.example.com")
        );
        assert_eq!(
            of("https://id.example.com/realms/x/.well-known/openid-configuration").as_deref(),
            Some("https://id.example.com/realms/x")
        );
        assert_eq!(
            of("https://id.example.com/.well-known/oauth-authorization-server/tenant").as_deref(),
            Some("https://id.example.com/tenant")
        );
        assert_eq!(of("https://id.example.com/metadata.json"), None, "no issuer implied: must be configured");
        // Auth0's issuer ends with a slash that the metadata URL drops (Discovery §4).
        let derived = of("https://tenant.auth0.com/.well-known/openid-configuration").unwrap();
        assert_eq!(with_advertised_slash(&derived, "https://tenant.auth0.com/"), "https://tenant.auth0.com/");
        assert_eq!(with_advertised_slash(&derived, "https://evil.example/"), "https://tenant.auth0.com");
        assert_eq!(of("https://id.example.com/.well-known/openid-configuration?x=1"), None);
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
