//! The claims of a signature-verified ID token (OIDC Core §3.1.3.7), logout token (Back-Channel
//! Logout 1.0 §2.4) and refreshed ID token (OIDC Core §12.2), as the login, the back-channel
//! logout and the refresh check them.
//!
//! Input: one byte choosing what is expected (a plain issuer; Microsoft's multi-tenant template;
//! issuer aliases and a trusted audience; `max_age` and `acr_values`), then the claims (JSON).
//!
//! Properties: nothing panics; every accepted token satisfies each rule, checked here again from
//! the specification's wording rather than from the code's.
#![no_main]

use auth_core::fuzzing::{Expectations, check_id_token, check_logout_token, check_refreshed, token_hash};
use auth_fuzz::{ACCESS_TOKEN, CLIENT_ID, ISSUER, NONCE, NOW};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn expectations(variant: u8) -> Expectations {
    let base = Expectations {
        issuer: ISSUER.into(),
        client_id: CLIENT_ID.into(),
        nonce: Some(NONCE.into()),
        access_token: Some(ACCESS_TOKEN.into()),
        leeway: 60,
        now: NOW,
        ..Expectations::default()
    };
    match variant % 4 {
        0 => base,
        1 => Expectations { issuer: TEMPLATE.into(), issuer_template: true, ..base },
        2 => Expectations { issuer_aliases: vec!["op.example".into()], trusted_audiences: vec!["api".into()], ..base },
        _ => Expectations {
            nonce: None,
            max_age: Some(600),
            acr_values: vec!["urn:mace:incommon:iap:silver".into()],
            ..base
        },
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> u64 {
    claims.get(name).and_then(Value::as_u64).unwrap_or_else(|| panic!("{name} is not a number"))
}

/// Rules 1, 2 and 5, common to ID and logout tokens.
fn common_rules(claims: &Map<String, Value>, exp: &Expectations) {
    let iss = claims.get("iss").and_then(Value::as_str).expect("iss is a string");
    let tenant_issuer = claims
        .get("tid")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(|t| exp.issuer.replace("{tenantid}", t));
    let named = if exp.issuer_template { tenant_issuer.as_deref() == Some(iss) } else { iss == exp.issuer };
    assert!(named || exp.issuer_aliases.iter().any(|a| a == iss), "iss {iss:?} is not the issuer");
    assert!(!iss.contains("{tenantid}"), "the template itself is no issuer");
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        other => panic!("aud {other:?}"),
    };
    assert!(audiences.contains(&exp.client_id.as_str()), "aud {audiences:?} lacks the client");
    for aud in &audiences {
        assert!(*aud == exp.client_id || exp.trusted_audiences.iter().any(|t| t == aud), "untrusted aud {aud}");
    }
    match claims.get("azp") {
        Some(azp) => assert_eq!(azp.as_str(), Some(exp.client_id.as_str()), "azp"),
        None => assert_eq!(audiences.len(), 1, "several audiences and no azp"),
    }
    assert!(number(claims, "exp").saturating_add(exp.leeway) > exp.now, "expired");
    assert!(number(claims, "iat") <= exp.now.saturating_add(exp.leeway), "issued in the future");
    if claims.contains_key("nbf") {
        assert!(number(claims, "nbf") <= exp.now.saturating_add(exp.leeway), "not yet valid");
    }
}

fn id_token_rules(claims: &Map<String, Value>, alg: &str, exp: &Expectations) {
    common_rules(claims, exp);
    assert!(claims.get("sub").and_then(Value::as_str).is_some_and(|s| !s.is_empty()), "no sub");
    if let Some(nonce) = &exp.nonce {
        assert_eq!(claims.get("nonce").and_then(Value::as_str), Some(nonce.as_str()), "nonce");
    }
    if let (Some(at_hash), Some(at)) = (claims.get("at_hash"), &exp.access_token) {
        assert_eq!(at_hash.as_str(), token_hash(alg, at).as_deref(), "at_hash");
    }
    if let Some(max_age) = exp.max_age {
        assert!(number(claims, "auth_time").saturating_add(max_age).saturating_add(exp.leeway) >= exp.now, "auth_time");
    }
    if !exp.acr_values.is_empty() {
        let acr = claims.get("acr").and_then(Value::as_str).expect("acr");
        assert!(exp.acr_values.iter().any(|v| v == acr), "acr {acr}");
    }
}

fn logout_rules(claims: &Map<String, Value>, exp: &Expectations) {
    common_rules(claims, exp);
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    assert!(text("sub").is_some() || text("sid").is_some(), "neither sub nor sid");
    assert!(text("jti").is_some(), "no jti");
    assert!(claims.get("events").and_then(|e| e.get(EVENT)).is_some_and(Value::is_object), "no logout event");
    assert!(!claims.contains_key("nonce"), "a nonce in a logout token");
}

fn audience_set(claims: &Map<String, Value>) -> Vec<String> {
    let mut aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    aud.sort_unstable();
    aud
}

fuzz_target!(|data: &[u8]| {
    let Some((&variant, json)) = data.split_first() else { return };
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(json) else { return };
    let exp = expectations(variant);
    for alg in ["RS256", "ES384", "EdDSA", "PS512"] {
        if check_id_token(&claims, alg, &exp).is_ok() {
            id_token_rules(&claims, alg, &exp);
        }
    }
    if let Ok((iss, sub, sid, jti, _, _)) = check_logout_token(&claims, &Expectations { nonce: None, ..exp.clone() }) {
        logout_rules(&claims, &exp);
        assert!(sub.is_some() || sid.is_some());
        assert!(!iss.is_empty() && !jti.is_empty());
    }
    // A refresh: these claims as the new ID token of a session whose ID token was this one.
    let original = json!({"iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "azp": CLIENT_ID, "iat": NOW - 600,
        "exp": NOW + 3000, "auth_time": NOW - 700, "nonce": NONCE, "sid": "s-1"});
    let original = original.as_object().expect("an object");
    let refresh = Expectations { nonce: None, ..exp.clone() };
    if check_refreshed(&claims, original, &refresh).is_ok() {
        let iss = claims.get("iss").and_then(Value::as_str).expect("iss");
        assert!(iss == ISSUER || refresh.issuer_aliases.iter().any(|a| a == iss), "another issuer");
        assert_eq!(claims.get("sub"), original.get("sub"), "another subject");
        assert_eq!(audience_set(&claims), audience_set(original), "other audiences");
        assert_eq!(claims.get("azp"), original.get("azp"), "another azp");
        assert!(claims.get("iat").and_then(Value::as_u64).unwrap_or(0) >= NOW - 600, "an older token");
        for kept in ["auth_time", "nonce"] {
            assert!(!claims.contains_key(kept) || claims.get(kept) == original.get(kept), "{kept} changed");
        }
    }
});
