//! The discovery document (OpenID Connect Discovery 1.0, RFC 8414) as discovery reads and checks
//! it, for five kinds of provider: an https issuer, two on loopback hosts (as auth-testkit and
//! node-oidc-provider run), one known by its metadata URL only (Auth0's trailing slash), and
//! Microsoft's multi-tenant template.
//!
//! Input: one byte choosing the provider, then the document.
//!
//! Properties: nothing panics; accepted metadata is a JSON object, names the expected issuer and a
//! JWKS, and every
//! endpoint it names is https (http only on a loopback host).
#![no_main]

use auth_core::Provider;
use auth_core::fuzzing::discovery;
use auth_fuzz::{CLIENT_ID, ISSUER};
use libfuzzer_sys::fuzz_target;

const WELL_KNOWN: &str = "/.well-known/openid-configuration";

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&variant, body)) = data.split_first() else { return };
    let (provider, expected) = match variant % 5 {
        0 => (Provider::oidc("op", ISSUER, CLIENT_ID), ISSUER.to_owned()),
        1 => (Provider::oidc("op", "http://127.0.0.1:4400", CLIENT_ID), "http://127.0.0.1:4400".to_owned()),
        2 => (Provider::oidc("op", "http://localhost:4400", CLIENT_ID), "http://localhost:4400".to_owned()),
        3 => {
            let url = format!("https://tenant.auth0.example{WELL_KNOWN}");
            (
                Provider::oidc("op", "", CLIENT_ID).with_server_metadata_url(url),
                "https://tenant.auth0.example".to_owned(),
            )
        }
        _ => (
            Provider::microsoft("common", CLIENT_ID, "secret"),
            "https://login.microsoftonline.com/common/v2.0".to_owned(),
        ),
    };
    let url = format!("{expected}{WELL_KNOWN}");
    let Ok(meta) = discovery(&provider, &url, Some(&expected), variant % 5 == 3, body) else { return };
    let json = serde_json::from_slice::<serde_json::Value>(body);
    assert!(json.is_ok_and(|doc| doc.is_object()), "metadata that is no JSON object");
    let issuer = &meta.issuer;
    let named = *issuer == expected
        || (variant % 5 == 3 && *issuer == format!("{expected}/"))
        || (variant % 5 == 4
            && issuer.contains("{tenantid}")
            && expected.starts_with(issuer.split("{tenantid}").next().unwrap_or_default()));
    assert!(named, "metadata of issuer {issuer:?} accepted for {expected:?}");
    assert!(meta.jwks_uri.is_some(), "no jwks_uri");
    let endpoints = [Some(&meta.authorization_endpoint), Some(&meta.token_endpoint)].into_iter().chain([
        meta.userinfo_endpoint.as_ref(),
        meta.jwks_uri.as_ref(),
        meta.end_session_endpoint.as_ref(),
        meta.revocation_endpoint.as_ref(),
        meta.introspection_endpoint.as_ref(),
    ]);
    for endpoint in endpoints.flatten() {
        let url = url::Url::parse(endpoint).unwrap_or_else(|e| panic!("endpoint {endpoint:?}: {e}"));
        assert!(url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)), "endpoint {endpoint:?}");
    }
});
