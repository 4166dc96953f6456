//! The token endpoint's answer (RFC 6749 §5.1, §5.2), as the code exchange and the refresh read
//! it, for an OpenID provider and for GitHub (whose errors come with 200).
//!
//! Input: one byte choosing the status and the provider, then the body.
//!
//! Properties: nothing panics; only a 2xx answer gives tokens, and then from a JSON object: its
//! own `access_token`, a Bearer (or unnamed) token type, and an expiry not before now.
#![no_main]

use auth_core::Provider;
use auth_core::fuzzing::token_response;
use auth_fuzz::{CLIENT_ID, ISSUER, NOW};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 8] = [200, 200, 201, 400, 401, 403, 500, 302];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(choice % 8)];
    let provider = if choice & 0x80 == 0 {
        Provider::oidc("op", ISSUER, CLIENT_ID).with_client_secret("secret")
    } else {
        Provider::github(CLIENT_ID, "secret")
    };
    let Ok(tokens) = token_response(&provider, status, body, NOW) else { return };
    assert!((200..300).contains(&status), "tokens from an HTTP {status}");
    let json: serde_json::Value = serde_json::from_slice(body).expect("tokens from a JSON body");
    assert_eq!(json.get("access_token").and_then(|t| t.as_str()), Some(tokens.access_token.as_str()));
    assert!(tokens.token_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("bearer")), "{:?}", tokens.token_type);
    assert!(tokens.expires_at.is_none_or(|at| at >= NOW), "expires before it was received");
});
