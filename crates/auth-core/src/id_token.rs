//! ID token validation, OpenID Connect Core 1.0 §3.1.3.7, one rule per check.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize as _;
use serde_json::{Map, Value};

use crate::TokenError;

/// Claims of a JWT, as JSON.
pub(crate) type Claims = Map<String, Value>;

/// What an ID token is checked against.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    /// The issuer (for Microsoft multi-tenant: the template with `{tenantid}`).
    pub(crate) issuer: &'a str,
    /// Replace `{tenantid}` in `issuer` by the token's `tid`.
    pub(crate) issuer_template: bool,
    /// Other spellings of the issuer the provider documents (Google: `accounts.google.com`).
    pub(crate) issuer_aliases: &'a [String],
    pub(crate) client_id: &'a str,
    pub(crate) trusted_audiences: &'a [String],
    /// The nonce sent in the authorization request; `None` for refreshed ID tokens, which carry
    /// none (Core §12.2).
    pub(crate) nonce: Option<&'a str>,
    pub(crate) access_token: Option<&'a str>,
    pub(crate) max_age: Option<u64>,
    pub(crate) acr_values: &'a [String],
    pub(crate) leeway: u64,
    pub(crate) now: u64,
}

/// The algorithms allowed for a provider: RS256 plus what discovery advertises (and HS256 only when
/// configured); `none` never, because `jsonwebtoken::Algorithm` cannot even express it.
pub(crate) fn allowed_algorithms(advertised: &[String], allow_hs256: bool) -> Vec<Algorithm> {
    let mut algs = vec![Algorithm::RS256];
    for name in advertised {
        if let Ok(alg) = name.parse::<Algorithm>() {
            let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
            if !algs.contains(&alg) && !hmac {
                algs.push(alg);
            }
        }
    }
    if allow_hs256 {
        algs.push(Algorithm::HS256);
    }
    algs
}

/// The algorithms accepted for back-channel logout tokens when none is configured: the asymmetric
/// ones the provider advertises for ID tokens (RS256 when it advertises none).
pub(crate) fn logout_algorithms(advertised: &[String]) -> Vec<Algorithm> {
    let algs: Vec<Algorithm> = advertised
        .iter()
        .filter_map(|name| name.parse::<Algorithm>().ok())
        .filter(|alg| !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .collect();
    if algs.is_empty() { vec![Algorithm::RS256] } else { algs }
}

/// What a JWT's header says, once its algorithm passed the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// `typ`, when present.
    pub(crate) typ: Option<String>,
}

/// Reads a JWT's header: its algorithm (checked against the allow-list), `kid` and `typ`.
pub(crate) fn header(token: &str, allowed: &[Algorithm]) -> Result<Header, TokenError> {
    if token.split('.').count() != 3 {
        return Err(TokenError::Malformed);
    }
    let (head, _) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| TokenError::Malformed)?;
    // Typed, borrowing what it can: a fresh bearer token pays this on every request. Duplicate
    // members and a non-string `alg`, `kid` or `typ` make the header malformed.
    // An object, not the array a derived struct would also read.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(TokenError::Malformed);
    }
    let raw: RawHeader<'_> = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    // RFC 7515 §4.1.11: extensions marked critical must be understood, and none is here.
    if raw.crit {
        return Err(TokenError::Malformed);
    }
    let alg_name = raw.alg.ok_or(TokenError::Malformed)?;
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg_name.chars().take(16).collect()))?;
    Ok(Header { alg, kid: raw.kid.map(Cow::into_owned), typ: raw.typ.map(Cow::into_owned) })
}

/// The members of a JOSE header we read; any other is ignored.
#[derive(serde::Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    /// Whether `crit` is there, whatever its value.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for a member that is present, with any value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Verifies the signature with `key` and returns the claims; no claim is checked here.
pub(crate) fn verify_signature(token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
                TokenError::BadSignature
            }
            ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed(format!("{alg:?}")),
            _ => TokenError::Malformed,
        }
    })
}

/// The checks an ID token and a logout token share: `iss`, `aud`/`azp`, `exp`, `iat`, `nbf`.
fn check_common(claims: &Claims, exp: &Expected<'_>) -> Result<(), TokenError> {
    let str_claim = |name: &'static str| claims.get(name).and_then(Value::as_str).ok_or(TokenError::MissingClaim(name));
    let num_claim = |name: &'static str| claims.get(name).and_then(Value::as_u64).ok_or(TokenError::MissingClaim(name));
    // Rule 1: iss equals the issuer exactly.
    let iss = str_claim("iss")?;
    if !names_issuer(iss, exp.issuer, exp.issuer_template, exp.issuer_aliases, claims) {
        return Err(TokenError::WrongIssuer);
    }
    // Rule 2: aud contains the client id and no untrusted party; azp is the client.
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenError::MissingClaim("aud")),
    };
    if !audiences.contains(&exp.client_id) {
        return Err(TokenError::WrongAudience);
    }
    if audiences.iter().any(|a| *a != exp.client_id && !exp.trusted_audiences.iter().any(|t| t == a)) {
        return Err(TokenError::UntrustedAudience);
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp != exp.client_id => return Err(TokenError::WrongAuthorizedParty),
        Some(Value::String(_)) => {}
        None if audiences.len() > 1 => return Err(TokenError::WrongAuthorizedParty),
        None => {}
        Some(_) => return Err(TokenError::WrongAuthorizedParty),
    }
    // Rule 5: exp in the future, iat present and not in the future.
    if num_claim("exp")?.saturating_add(exp.leeway) <= exp.now {
        return Err(TokenError::Expired);
    }
    if num_claim("iat")? > exp.now.saturating_add(exp.leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(nbf) = claims.get("nbf")
        && nbf.as_u64().ok_or(TokenError::MissingClaim("nbf"))? > exp.now.saturating_add(exp.leeway)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Checks the claims of a signature-verified ID token (Core §3.1.3.7 items 2–13, §2 required claims).
pub(crate) fn check_claims(claims: &Claims, alg: Algorithm, exp: &Expected<'_>) -> Result<(), TokenError> {
    let num_claim = |name: &'static str| claims.get(name).and_then(Value::as_u64).ok_or(TokenError::MissingClaim(name));
    claims.get("iss").and_then(Value::as_str).ok_or(TokenError::MissingClaim("iss"))?;
    // Rule 7: sub is required.
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => {}
        _ => return Err(TokenError::MissingClaim("sub")),
    }
    check_common(claims, exp)?;
    // Rule 6: the nonce of this login.
    if let Some(nonce) = exp.nonce {
        match claims.get("nonce").and_then(Value::as_str) {
            Some(n) if crate::crypto::constant_time_eq(n, nonce) => {}
            _ => return Err(TokenError::WrongNonce),
        }
    }
    // Rule 8: at_hash, when present.
    if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), exp.access_token) {
        let at_hash = at_hash.as_str().ok_or(TokenError::AccessTokenHashMismatch)?;
        if at_hash != token_hash(alg, access_token) {
            return Err(TokenError::AccessTokenHashMismatch);
        }
    }
    // Rule 9: auth_time when max_age was sent; acr when it was asked for.
    if let Some(max_age) = exp.max_age
        && num_claim("auth_time")?.saturating_add(max_age).saturating_add(exp.leeway) < exp.now
    {
        return Err(TokenError::AuthTooOld);
    }
    if !exp.acr_values.is_empty() {
        let acr = claims.get("acr").and_then(Value::as_str).ok_or(TokenError::WrongAcr)?;
        if !exp.acr_values.iter().any(|v| v == acr) {
            return Err(TokenError::WrongAcr);
        }
    }
    Ok(())
}

/// The payload of a JWT whose signature was checked when it was received (a session's own ID
/// token, sealed since), read without checking it again.
pub(crate) fn unverified_claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// OpenID Connect Core §12.2: a refreshed ID token, already checked like a new one (§3.1.3.7,
/// the nonce aside), against the session's last ID token: the same issuer (spellings the
/// provider documents as its own count as one), `sub`, `aud` and `azp` (present in both or in
/// neither), an `iat` not earlier, and `auth_time` and `nonce` unchanged where both carry them
/// (some providers leave them out of refreshed tokens).
pub(crate) fn check_refreshed(new: &Claims, original: &Claims, exp: &Expected<'_>) -> Result<(), TokenError> {
    let audiences = |claims: &Claims| -> Vec<String> {
        let mut aud: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        aud.sort_unstable();
        aud
    };
    let issuer = |claims: &Claims| -> Option<String> {
        let iss = claims.get("iss").and_then(Value::as_str)?;
        Some(if exp.issuer_aliases.iter().any(|a| a == iss) { exp.issuer.to_owned() } else { iss.to_owned() })
    };
    let same = |name: &str| new.get(name) == original.get(name);
    let same_where_both = |name: &str| !(new.contains_key(name) && original.contains_key(name)) || same(name);
    let iat = |claims: &Claims| claims.get("iat").and_then(Value::as_u64).unwrap_or(0);
    let consistent = issuer(new) == issuer(original)
        && same("sub")
        && audiences(new) == audiences(original)
        && same("azp")
        && iat(new) >= iat(original)
        && same_where_both("auth_time")
        && same_where_both("nonce");
    if consistent { Ok(()) } else { Err(TokenError::RefreshMismatch) }
}

/// What a valid logout token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutClaims {
    pub(crate) iss: String,
    pub(crate) sub: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) jti: String,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
}

/// The logout token's event member (Back-Channel Logout 1.0 §2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Checks a signature-verified logout token (Back-Channel Logout 1.0 §2.4 and §2.6).
pub(crate) fn check_logout_claims(claims: &Claims, exp: &Expected<'_>) -> Result<LogoutClaims, TokenError> {
    check_common(claims, exp)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let (sub, sid) = (text("sub"), text("sid"));
    if sub.is_none() && sid.is_none() {
        return Err(TokenError::LogoutToken("neither sub nor sid"));
    }
    let jti = text("jti").ok_or(TokenError::MissingClaim("jti"))?;
    match claims.get("events").and_then(|e| e.get(BACKCHANNEL_EVENT)) {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(TokenError::LogoutToken("the back-channel logout event is not an object")),
        None => return Err(TokenError::LogoutToken("no back-channel logout event")),
    }
    if claims.contains_key("nonce") {
        return Err(TokenError::LogoutToken("a logout token must not carry a nonce"));
    }
    Ok(LogoutClaims {
        iss: text("iss").unwrap_or_default(),
        sub,
        sid,
        jti,
        exp: claims.get("exp").and_then(Value::as_u64).unwrap_or_default(),
        iat: claims.get("iat").and_then(Value::as_u64).unwrap_or_default(),
    })
}

/// Whether `iss`, a token's issuer, is the provider's: `issuer` exactly, one of its documented
/// `aliases`, or, for Microsoft's multi-tenant template (`template`), the template with the token's
/// own `tid` (a tenant id's characters only). Every token a provider signs (ID, logout and access
/// tokens) is checked this way.
pub(crate) fn names_issuer(iss: &str, issuer: &str, template: bool, aliases: &[String], claims: &Claims) -> bool {
    let tenant_issuer = || {
        let tid = claims.get("tid").and_then(Value::as_str)?;
        let valid = !tid.is_empty() && tid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        valid.then(|| issuer.replace("{tenantid}", tid))
    };
    // Under the template, only a tenant's issuer: never the template itself.
    let matches = if template { tenant_issuer().is_some_and(|t| t == iss) } else { iss == issuer };
    matches || aliases.iter().any(|a| a == iss)
}

/// `at_hash`/`c_hash`: the left half of the hash named by `alg`, base64url (Core §3.1.3.6).
pub(crate) fn token_hash(alg: Algorithm, token: &str) -> String {
    use Algorithm::*;
    let digest = match alg {
        RS384 | PS384 | ES384 | HS384 => &aws_lc_rs::digest::SHA384,
        RS512 | PS512 | HS512 | EdDSA => &aws_lc_rs::digest::SHA512,
        _ => &aws_lc_rs::digest::SHA256,
    };
    let hash = aws_lc_rs::digest::digest(digest, token.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn critical_header_extensions_are_refused() {
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = |h: serde_json::Value| format!("{}.{}.sig", enc(h), enc(json!({"sub": "a"})));
        assert!(header(&token(json!({"alg": "RS256"})), &[Algorithm::RS256]).is_ok());
        let crit = token(json!({"alg": "RS256", "crit": ["b64"], "b64": false}));
        assert_eq!(header(&crit, &[Algorithm::RS256]), Err(TokenError::Malformed));
        let null_crit = token(json!({"alg": "RS256", "crit": null}));
        assert_eq!(header(&null_crit, &[Algorithm::RS256]), Err(TokenError::Malformed), "present, even null");
    }

    #[test]
    fn a_header_is_read_strictly() {
        let enc = |h: &str| URL_SAFE_NO_PAD.encode(h);
        let parse = |h: &str| header(&format!("{}.e30.sig", enc(h)), &[Algorithm::RS256]);
        let ok = parse(r#"{"alg":"RS256","kid":"k\u0031","typ":"at+jwt","x5t":"ignored"}"#).unwrap();
        assert_eq!((ok.kid.as_deref(), ok.typ.as_deref()), (Some("k1"), Some("at+jwt")), "escapes decoded");
        for bad in [
            r#"{"alg":"none","alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":1}"#,
            r#"{"alg":null}"#,
            r#"{"kid":"k"}"#,
            r#"["RS256"]"#,
            "not json",
        ] {
            assert_eq!(parse(bad), Err(TokenError::Malformed), "{bad}");
        }
        assert!(matches!(parse(r#"{"alg":"HS256"}"#), Err(TokenError::AlgorithmNotAllowed(_))));
    }

    #[test]
    fn refreshed_id_tokens_must_match_the_login() {
        let aliases = ["accounts.op".to_owned()];
        let exp = Expected { issuer: "https://op", issuer_aliases: &aliases, ..expected() };
        let original = json!({"iss": "https://op", "sub": "alice", "aud": ["app"], "azp": "app", "auth_time": 100,
            "nonce": "n-1", "iat": 100, "exp": 400});
        let original = original.as_object().unwrap().clone();
        let with = |change: &dyn Fn(&mut Claims)| {
            let mut new = original.clone();
            new.insert("iat".into(), json!(500));
            new.insert("exp".into(), json!(800));
            new.remove("nonce");
            change(&mut new);
            check_refreshed(&new, &original, &exp)
        };
        assert_eq!(with(&|_| {}), Ok(()), "new iat and exp, no nonce");
        assert_eq!(with(&|c| drop(c.insert("aud".into(), json!("app")))), Ok(()), "aud as a string");
        assert_eq!(with(&|c| drop(c.insert("nonce".into(), json!("n-1")))), Ok(()), "the original nonce");
        assert_eq!(with(&|c| drop(c.remove("auth_time"))), Ok(()), "auth_time left out");
        assert_eq!(with(&|c| drop(c.insert("iss".into(), json!("accounts.op")))), Ok(()), "a documented alias");
        let changes: [(&str, Option<Value>); 8] = [
            ("sub", Some(json!("mallory"))),
            ("iss", Some(json!("https://other"))),
            ("aud", Some(json!(["app", "other"]))),
            ("azp", Some(json!("other"))),
            ("azp", None),
            ("auth_time", Some(json!(300))),
            ("nonce", Some(json!("n-2"))),
            ("iat", Some(json!(50))),
        ];
        for (name, value) in changes {
            let change = move |c: &mut Claims| match &value {
                Some(v) => drop(c.insert(name.into(), v.clone())),
                None => drop(c.remove(name)),
            };
            assert_eq!(with(&change), Err(TokenError::RefreshMismatch), "{name} changed");
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://op",
            issuer_template: false,
            issuer_aliases: &[],
            client_id: "app",
            trusted_audiences: &[],
            nonce: Some("n-1"),
            access_token: Some("at"),
            max_age: None,
            acr_values: &[],
            leeway: 60,
            now: NOW,
        }
    }

    fn good() -> Claims {
        let v = json!({"iss": "https://op", "sub": "alice", "aud": "app", "exp": NOW + 300, "iat": NOW, "nonce": "n-1",
            "at_hash": token_hash(Algorithm::RS256, "at")});
        v.as_object().unwrap().clone()
    }

    fn with(f: impl FnOnce(&mut Claims)) -> Result<(), TokenError> {
        let mut c = good();
        f(&mut c);
        check_claims(&c, Algorithm::RS256, &expected())
    }

    #[test]
    fn each_rule_refuses() {
        assert_eq!(with(|_| {}), Ok(()));
        assert_eq!(with(|c| drop(c.insert("iss".into(), json!("https://evil")))), Err(TokenError::WrongIssuer));
        assert_eq!(with(|c| drop(c.insert("aud".into(), json!("other")))), Err(TokenError::WrongAudience));
        assert_eq!(with(|c| drop(c.insert("aud".into(), json!(["app", "other"])))), Err(TokenError::UntrustedAudience));
        assert_eq!(with(|c| drop(c.insert("azp".into(), json!("other")))), Err(TokenError::WrongAuthorizedParty));
        assert_eq!(with(|c| drop(c.insert("exp".into(), json!(NOW - 61)))), Err(TokenError::Expired));
        assert_eq!(with(|c| drop(c.insert("iat".into(), json!(NOW + 3600)))), Err(TokenError::IssuedInFuture));
        assert_eq!(with(|c| drop(c.insert("nonce".into(), json!("n-2")))), Err(TokenError::WrongNonce));
        assert_eq!(with(|c| drop(c.remove("nonce"))), Err(TokenError::WrongNonce));
        assert_eq!(with(|c| drop(c.insert("at_hash".into(), json!("AAAA")))), Err(TokenError::AccessTokenHashMismatch));
        assert_eq!(with(|c| drop(c.insert("nbf".into(), json!(NOW + 3600)))), Err(TokenError::NotYetValid));
        for claim in ["iss", "sub", "aud", "exp", "iat"] {
            assert_eq!(with(|c| drop(c.remove(claim))), Err(TokenError::MissingClaim(claim)), "{claim}");
        }
    }

    #[test]
    fn huge_numbers_never_overflow() {
        // Debug builds panic on overflow: every addition to a provider's number saturates.
        let exp = Expected { max_age: Some(u64::MAX), leeway: u64::MAX, ..expected() };
        let mut c = good();
        for claim in ["exp", "iat", "nbf", "auth_time"] {
            c.insert(claim.into(), json!(u64::MAX));
        }
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Ok(()), "saturated, not wrapped");
        c.insert("iat".into(), json!(u64::MAX));
        assert_eq!(
            check_claims(&c, Algorithm::RS256, &expected()),
            Err(TokenError::IssuedInFuture),
            "an iat at the end of time is refused"
        );
    }

    #[test]
    fn trusted_extra_audience_needs_azp() {
        let trusted = vec!["api".to_string()];
        let exp = Expected { trusted_audiences: &trusted, ..expected() };
        let mut c = good();
        c.insert("aud".into(), json!(["app", "api"]));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Err(TokenError::WrongAuthorizedParty));
        c.insert("azp".into(), json!("app"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Ok(()));
    }

    #[test]
    fn max_age_and_acr() {
        let acr = vec!["urn:mace:incommon:iap:silver".to_string()];
        let exp = Expected { max_age: Some(600), acr_values: &acr, ..expected() };
        let mut c = good();
        c.insert("auth_time".into(), json!(NOW - 3600));
        c.insert("acr".into(), json!("urn:mace:incommon:iap:silver"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Err(TokenError::AuthTooOld));
        c.insert("auth_time".into(), json!(NOW - 60));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Ok(()));
        c.insert("acr".into(), json!("0"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Err(TokenError::WrongAcr));
    }

    #[test]
    fn documented_issuer_aliases_only() {
        let aliases = vec!["accounts.google.com".to_string()];
        let exp = Expected { issuer: "https://accounts.google.com", issuer_aliases: &aliases, ..expected() };
        let mut c = good();
        c.insert("iss".into(), json!("accounts.google.com"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Ok(()));
        c.insert("iss".into(), json!("evil.example.com"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Err(TokenError::WrongIssuer));
        let mut c = good();
        c.insert("iss".into(), json!("accounts.google.com"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &expected()), Err(TokenError::WrongIssuer), "no alias, no pass");
    }

    #[test]
    fn microsoft_tenant_issuer() {
        let exp = Expected {
            issuer: "https://login.microsoftonline.com/{tenantid}/v2.0",
            issuer_template: true,
            issuer_aliases: &[],
            ..expected()
        };
        let mut c = good();
        c.insert("iss".into(), json!("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"));
        c.insert("tid".into(), json!("9188040d-6c67-4c5b-b112-36a304b66dad"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Ok(()));
        c.insert("tid".into(), json!("another-tenant"));
        assert_eq!(check_claims(&c, Algorithm::RS256, &exp), Err(TokenError::WrongIssuer));
    }

    #[test]
    fn header_allow_list() {
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(header(&none, &[Algorithm::RS256]), Err(TokenError::AlgorithmNotAllowed("none".into())));
        let hs = format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#));
        assert!(header(&hs, &allowed_algorithms(&["HS256".into()], false)).is_err(), "HS256 only when configured");
        assert!(header(&hs, &allowed_algorithms(&[], true)).is_ok());
        let typed = format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k","typ":"logout+jwt"}"#));
        let h = header(&typed, &[Algorithm::RS256]).unwrap();
        assert_eq!((h.kid.as_deref(), h.typ.as_deref()), (Some("k"), Some("logout+jwt")));
        assert_eq!(header("a.b", &[Algorithm::RS256]), Err(TokenError::Malformed));
    }

    #[test]
    fn at_hash_known_value() {
        // OIDC Core A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" → at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        assert_eq!(
            token_hash(Algorithm::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    fn logout_claims() -> Claims {
        json!({"iss": "https://op", "aud": "app", "iat": NOW, "exp": NOW + 120, "jti": "j1", "sid": "s1",
            "events": {BACKCHANNEL_EVENT: {}}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn logout_with(f: impl FnOnce(&mut Claims)) -> Result<LogoutClaims, TokenError> {
        let mut c = logout_claims();
        f(&mut c);
        check_logout_claims(&c, &Expected { nonce: None, ..expected() })
    }

    #[test]
    fn logout_token_rules() {
        assert_eq!(logout_with(|_| {}).unwrap().sid.as_deref(), Some("s1"));
        assert!(matches!(logout_with(|c| drop(c.remove("sid"))), Err(TokenError::LogoutToken(_))));
        assert!(
            logout_with(|c| {
                c.remove("sid");
                c.insert("sub".into(), json!("alice"));
            })
            .is_ok()
        );
        assert_eq!(logout_with(|c| drop(c.remove("jti"))), Err(TokenError::MissingClaim("jti")));
        assert!(matches!(logout_with(|c| drop(c.remove("events"))), Err(TokenError::LogoutToken(_))));
        assert!(matches!(
            logout_with(|c| drop(c.insert("events".into(), json!({BACKCHANNEL_EVENT: "yes"})))),
            Err(TokenError::LogoutToken(_))
        ));
        assert!(matches!(logout_with(|c| drop(c.insert("nonce".into(), json!("n")))), Err(TokenError::LogoutToken(_))));
        assert_eq!(logout_with(|c| drop(c.insert("aud".into(), json!("x")))), Err(TokenError::WrongAudience));
        assert_eq!(logout_with(|c| drop(c.insert("iss".into(), json!("x")))), Err(TokenError::WrongIssuer));
        assert_eq!(logout_with(|c| drop(c.insert("exp".into(), json!(NOW - 100)))), Err(TokenError::Expired));
        assert_eq!(logout_with(|c| drop(c.remove("iat"))), Err(TokenError::MissingClaim("iat")));
    }

    #[test]
    fn names_issuer_exactly_by_alias_or_by_tenant() {
        let none = Claims::new();
        let aliases = ["accounts.google.com".to_owned()];
        assert!(names_issuer("https://accounts.google.com", "https://accounts.google.com", false, &aliases, &none));
        assert!(names_issuer("accounts.google.com", "https://accounts.google.com", false, &aliases, &none));
        assert!(!names_issuer("https://accounts.google.com/", "https://accounts.google.com", false, &aliases, &none));
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let tid = |t: &str| serde_json::json!({ "tid": t }).as_object().cloned().unwrap_or_default();
        let tenant = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
        assert!(names_issuer(tenant, template, true, &[], &tid("9188040d-6c67-4c5b-b112-36a304b66dad")));
        assert!(!names_issuer(tenant, template, true, &[], &tid("another-tenant")), "the token's own tid");
        assert!(!names_issuer(tenant, template, true, &[], &none), "no tid");
        assert!(!names_issuer(template, template, true, &[], &none), "the template itself is no issuer");
        assert!(!names_issuer("https://login.microsoftonline.com/x/y/v2.0", template, true, &[], &tid("x/y")));
        assert!(!names_issuer(tenant, template, false, &[], &tid("9188040d-6c67-4c5b-b112-36a304b66dad")));
    }
}
