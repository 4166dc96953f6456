//! OpenID Connect Back-Channel Logout 1.0: logout tokens (valid or faulty) and sending them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::fault::LogoutTokenFault;
use crate::keys;
use crate::server::{BACKCHANNEL_LOGOUT_EVENT, BackchannelRecord, OTHER_CLIENT, Shared};
use crate::util::{now, random_token};

/// The `typ` header of a logout token (Back-Channel Logout 1.0 §2.4).
const LOGOUT_TYP: &str = "logout+jwt";
/// How long the provider waits for a client's back-channel logout endpoint.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a logout token.
const LOGOUT_TOKEN_TTL: u64 = 120;

/// A logout token for `client_id` with `sub` and/or `sid`, valid unless `fault` says otherwise.
pub(crate) fn logout_token(
    s: &Shared,
    client_id: &str,
    sub: Option<&str>,
    sid: Option<&str>,
    fault: Option<LogoutTokenFault>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let (key, other_key, user_sub) = {
        let st = s.lock();
        (Arc::clone(&st.key), Arc::clone(&st.other_key), st.user.sub.clone())
    };
    let now = now();

    if fault == Some(LogoutTokenFault::IdTokenInstead) {
        let mut claims = json!({
            "iss": s.issuer,
            "sub": sub.unwrap_or(&user_sub),
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + s.config.token_ttl.as_secs(),
            "auth_time": now,
            "nonce": random_token(16),
        });
        if let Some(sid) = sid {
            claims["sid"] = sid.into();
        }
        return key.sign(&claims, "JWT", true);
    }

    let mut claims = Map::new();
    let mut set = |name: &str, value: Value| {
        claims.insert(name.to_owned(), value);
    };
    set("iss", s.issuer.clone().into());
    set("aud", client_id.into());
    set("iat", now.into());
    set("exp", (now + LOGOUT_TOKEN_TTL).into());
    set("jti", random_token(16).into());
    set("events", json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    if let Some(sub) = sub {
        set("sub", sub.into());
    }
    if let Some(sid) = sid {
        set("sid", sid.into());
    }
    let mut missing: &[&str] = &[];
    match fault {
        Some(LogoutTokenFault::WrongIssuer) => set("iss", s.wrong_issuer().into()),
        Some(LogoutTokenFault::WrongAudience) => set("aud", OTHER_CLIENT.into()),
        Some(LogoutTokenFault::Expired) => {
            set("iat", now.saturating_sub(7200).into());
            set("exp", now.saturating_sub(3600).into());
        }
        Some(LogoutTokenFault::EventNotObject) => set("events", json!({ BACKCHANNEL_LOGOUT_EVENT: "{}" })),
        Some(LogoutTokenFault::WithNonce) => set("nonce", random_token(16).into()),
        Some(LogoutTokenFault::MissingIat) => missing = &["iat"],
        Some(LogoutTokenFault::MissingJti) => missing = &["jti"],
        Some(LogoutTokenFault::MissingEvents) => missing = &["events"],
        Some(LogoutTokenFault::NoSubNoSid) => missing = &["sub", "sid"],
        _ => {}
    }
    for name in missing {
        claims.remove(*name);
    }
    let claims = Value::Object(claims);

    match fault {
        Some(LogoutTokenFault::AlgNone) => Ok(keys::unsigned(&claims, LOGOUT_TYP)),
        Some(LogoutTokenFault::OtherAlgorithm) => other_key.sign(&claims, LOGOUT_TYP, true),
        Some(LogoutTokenFault::BadSignature) => {
            key.sign(&claims, LOGOUT_TYP, true).map(|token| keys::corrupt_signature(&token))
        }
        _ => key.sign(&claims, LOGOUT_TYP, true),
    }
}

/// POSTs `logout_token=<token>` (form-encoded) to `url`, as a provider does (Back-Channel
/// Logout 1.0 §2.5); counts the request and records it with its answer.
pub(crate) async fn send(s: &Shared, url: &str, token: &str) -> Result<(u16, String), reqwest::Error> {
    s.counters.backchannel.fetch_add(1, Ordering::SeqCst);
    let result = post(s, url, token).await;
    s.lock().last_backchannel =
        Some(BackchannelRecord { token: token.to_owned(), response: result.as_ref().ok().cloned() });
    result
}

async fn post(s: &Shared, url: &str, token: &str) -> Result<(u16, String), reqwest::Error> {
    let response = http(s)?.post(url).form(&[("logout_token", token)]).send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok((status, body))
}

/// The provider's HTTP client: no redirects, no cookies, a timeout.
fn http(s: &Shared) -> Result<&reqwest::Client, reqwest::Error> {
    if let Some(client) = s.http.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .user_agent(concat!("auth-testkit/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(s.http.get_or_init(|| client))
}
