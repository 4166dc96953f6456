//! The userinfo answer (OIDC Core §5.3.2), and GitHub's `/user` and `/user/emails`, as a login
//! reads them: mapped by the provider's profile (OpenID, GitHub, Facebook, a custom mapping) and
//! added to the ID token's claims.
//!
//! Input: one byte choosing the profile and the ID token's claims (none, as for OAuth 2.0, or
//! `sub` alice), then the userinfo document, a NUL byte, and GitHub's e-mail list.
//!
//! Properties: nothing panics; the user has a non-empty `sub`, the ID token's `sub` when there
//! was one (and its other claims win); GitHub's e-mail is a verified primary address only.
#![no_main]

use auth_core::fuzzing::userinfo;
use auth_core::{ClaimMapping, Profile};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let (info, emails) = auth_fuzz::split(rest, 0);
    let profile = match choice % 4 {
        0 => Profile::Oidc,
        1 => Profile::Github,
        2 => Profile::Facebook,
        _ => Profile::Custom(ClaimMapping {
            sub: "/data/id".into(),
            email: "/data/mail".into(),
            ..ClaimMapping::default()
        }),
    };
    let id_claims: Map<String, Value> = if choice & 0x10 == 0 {
        Map::new()
    } else {
        json!({"sub": "alice", "iss": "https://op.example", "email": "alice@id-token.example"})
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let Ok(claims) = userinfo(&profile, id_claims.clone(), info, emails) else { return };
    assert!(!claims.sub().is_empty(), "no subject");
    for (name, value) in &id_claims {
        assert_eq!(claims.get(name), Some(value), "the ID token's {name} did not win");
    }
    if matches!(profile, Profile::Github)
        && id_claims.is_empty()
        && let Some(email) = claims.get("email")
    {
        let emails: Value = serde_json::from_slice(emails).expect("the e-mail list");
        let listed = emails.as_array().is_some_and(|list| {
            list.iter().any(|e| {
                e.get("email") == Some(email)
                    && e.get("primary") == Some(&Value::Bool(true))
                    && e.get("verified") == Some(&Value::Bool(true))
            })
        });
        assert!(listed, "GitHub e-mail {email} is no verified primary address");
        assert!(claims.email_verified());
    }
});
