//! Bearer tokens as a resource server reads them: the introspection answer (RFC 7662 §2.2) for
//! an opaque token, and a JWT access token's header and verified claims (RFC 9068 §4), for an
//! OpenID provider, one that allows untyped access tokens, and Microsoft's multi-tenant issuer.
//!
//! Input: one byte choosing the provider, the status and what is read (introspection answer,
//! access token claims, access token), then the body (JSON, or the token).
//!
//! Properties: nothing panics; an accepted token is active, for this API's audience, issued by
//! the provider, not expired, not bound to a key (`cnf`), an access token (not an ID, logout or
//! refresh token), and a JWT one had an asymmetric algorithm and the `at+jwt` type.
#![no_main]

use std::sync::OnceLock;

use auth_core::fuzzing::{Discovered, access_token_claims, access_token_header, introspection, jose_header};
use auth_core::{Auth, Bearer, Provider, ProviderMetadata};
use auth_fuzz::{API_AUDIENCE, CLIENT_ID, ISSUER};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const STATUSES: [u16; 8] = [200, 200, 200, 201, 400, 401, 500, 204];

struct Setup {
    auth: Auth,
    providers: [Discovered; 3],
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        // Explicit endpoints: built without discovery, so without the network.
        let plain =
            Provider::oauth2("plain", "https://op.example/a", "https://op.example/t", "https://op.example/u", "c");
        let auth = runtime
            .block_on(
                Auth::builder().provider(plain).api_audience(API_AUDIENCE).session_keys(auth_fuzz::ring()).build(),
            )
            .expect("an Auth");
        let meta = |issuer: &str| {
            let mut meta = ProviderMetadata::default();
            meta.issuer = issuer.to_owned();
            meta.introspection_endpoint = Some(format!("{ISSUER}/introspect"));
            meta.id_token_signing_alg_values_supported = vec!["RS256".into(), "ES256".into(), "HS256".into()];
            meta
        };
        let op = Provider::oidc("op", ISSUER, CLIENT_ID).with_client_secret("secret");
        let providers = [
            Discovered::new(op.clone(), meta(ISSUER)),
            Discovered::new(op.with_untyped_access_tokens().with_hs256_id_tokens(), meta(ISSUER)),
            Discovered::new(Provider::microsoft("common", CLIENT_ID, "secret"), meta(TEMPLATE)),
        ];
        Setup { auth, providers }
    })
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn names_issuer(p: &Discovered, claims: &Map<String, Value>) -> bool {
    let Some(iss) = claims.get("iss").and_then(Value::as_str) else { return false };
    if p.issuer().contains("{tenantid}") {
        let tid = claims.get("tid").and_then(Value::as_str).unwrap_or_default();
        !tid.is_empty()
            && tid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && iss == p.issuer().replace("{tenantid}", tid)
    } else {
        iss == p.issuer()
    }
}

fn for_this_api(b: &Bearer) {
    let claims = b.claims();
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == API_AUDIENCE,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(API_AUDIENCE)),
        _ => false,
    };
    assert!(aud_ok, "aud {:?}", claims.get("aud"));
    assert!(!claims.contains_key("cnf"), "a sender-constrained token accepted as a bearer token");
    if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
        assert!(exp.saturating_add(60) > now(), "expired");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else { return };
    let s = setup();
    let p = &s.providers[usize::from(choice % 3)];
    let status = STATUSES[usize::from((choice >> 2) % 8)];
    match (choice >> 5) % 3 {
        0 => {
            let Ok(b) = introspection(&s.auth, p, status, body) else { return };
            assert!((200..300).contains(&status), "a token accepted by an HTTP {status}");
            let claims = b.claims();
            assert_eq!(claims.get("active"), Some(&Value::Bool(true)), "an inactive token");
            let kind = claims.get("token_type").and_then(Value::as_str);
            assert!(
                kind.is_none_or(|k| k.eq_ignore_ascii_case("bearer") || k.eq_ignore_ascii_case("access_token")),
                "a {kind:?} accepted as an access token"
            );
            assert!(!claims.contains_key("iss") || names_issuer(p, claims), "iss {:?}", claims.get("iss"));
            assert!(!b.is_jwt());
            for_this_api(&b);
        }
        1 => {
            let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(body) else { return };
            let Ok(b) = access_token_claims(&s.auth, p, claims) else { return };
            let claims = b.claims();
            for id_only in ["nonce", "at_hash", "c_hash", "events"] {
                assert!(!claims.contains_key(id_only), "an ID or logout token ({id_only}) accepted as an access token");
            }
            assert!(names_issuer(p, claims), "iss {:?}", claims.get("iss"));
            assert!(claims.get("exp").and_then(Value::as_u64).is_some(), "no exp");
            for not_after_now in ["nbf", "iat"] {
                if let Some(t) = claims.get(not_after_now).and_then(Value::as_u64) {
                    assert!(t <= now().saturating_add(60), "{not_after_now} in the future");
                }
            }
            assert!(b.is_jwt());
            for_this_api(&b);
        }
        _ => {
            let Ok(token) = std::str::from_utf8(body) else { return };
            if access_token_header(p, token).is_ok() {
                let h = jose_header(token, &["RS256", "ES256", "HS256"]).expect("a header");
                assert!(!h.alg.starts_with("HS"), "an HMAC access token");
                let typ = h.typ.as_deref();
                let typed = typ
                    .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
                let untyped_ok = std::ptr::eq(p, &s.providers[1]) && typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT"));
                assert!(typed || untyped_ok, "an access token of type {typ:?}");
            }
        }
    }
});
