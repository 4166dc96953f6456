//! The routes as the network reaches them: `Auth::handle` (login, callback by query and by form
//! post, logout, the logout callback, back-channel logout) and `Auth::session` / `Auth::bearer`
//! for any other path, on an `Auth` built once against auth-testkit's provider (ES256, in a
//! runtime of its own). Cookies can carry any payload sealed with the app's key, and bearer and
//! logout tokens any claims signed by the provider, so that the readers behind the encryption
//! and the signatures are reached too. See `auth_fuzz::RouteRequest` for the input format; in
//! it, `$ISSUER_QUERY` stands for the provider's issuer, query-encoded, and `$ISSUER` in sealed
//! payloads and signed claims for the issuer itself.
//!
//! Properties: nothing panics; no answer is a 500; every redirect stays on the app or goes to the
//! provider; every cookie set is one of the app's, `HttpOnly` with `Path=/`; an HTML error page
//! shows its message escaped, a JSON body is JSON; a session found has not expired; an accepted
//! bearer token is the provider's, for this API, and no ID or logout token.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use auth_core::{Auth, AuthResponse, KeyRing, Method, Provider, RequestView};
use auth_fuzz::RouteRequest;
use auth_testkit::{SigningAlg, TestProvider};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const APP: &str = "http://127.0.0.1:3000";

struct Rig {
    runtime: tokio::runtime::Runtime,
    op: TestProvider,
    auth: Auth,
    ring: KeyRing,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let (op, auth) = runtime.block_on(async {
            let op = TestProvider::builder().signing_alg(SigningAlg::ES256).start().await.expect("the provider");
            let oidc = Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret());
            // A plain OAuth 2.0 provider whose endpoints refuse connections at once.
            let plain = Provider::oauth2(
                "plain",
                "http://127.0.0.1:9/authorize",
                "http://127.0.0.1:9/token",
                "http://127.0.0.1:9/userinfo",
                "plain-client",
            );
            let auth = Auth::builder()
                .provider(oidc)
                .provider(plain.with_form_post())
                .base_url(APP)
                .session_keys(auth_fuzz::ring())
                // Seeds are sealed once, with real times: long lifetimes keep them valid.
                .login_ttl(Duration::from_secs(100 * 365 * 86_400))
                .build()
                .await
                .expect("the Auth");
            (op, auth)
        });
        Rig { runtime, op, auth, ring: auth_fuzz::ring() }
    })
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn check_response(rig: &Rig, res: &AuthResponse) {
    assert_ne!(res.status, 500, "a 500: {}", res.body);
    assert!((200..600).contains(&res.status));
    for (name, value) in &res.headers {
        match *name {
            "location" => auth_fuzz::assert_same_site_redirect(value, &[rig.op.issuer()]),
            "set-cookie" => {
                let cookie = value.split(';').next().unwrap_or_default();
                let name = cookie.split('=').next().unwrap_or_default();
                assert!(
                    name == "auth_session" || name == "auth_logout" || name.starts_with("auth_login."),
                    "a cookie not of the app's: {value}"
                );
                assert!(value.contains("HttpOnly") && value.contains("Path=/"), "{value}");
            }
            _ => {}
        }
    }
    match res.header("content-type") {
        Some(t) if t.starts_with("text/html") => {
            let start = "<h1>Login problem</h1><p>";
            if let Some(i) = res.body.find(start) {
                let message = &res.body[i + start.len()..];
                let message = &message[..message.find("</p>").expect("the message ends")];
                assert!(!message.contains(['<', '>', '"', '\'']), "an unescaped message: {message}");
            }
        }
        Some("application/json") => {
            serde_json::from_str::<Value>(&res.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", res.body));
        }
        _ => {}
    }
}

/// `text` with `$ISSUER` replaced by the provider's issuer (its port is new at every start).
fn with_issuer(rig: &Rig, text: &str) -> String {
    text.replace("$ISSUER", rig.op.issuer())
}

/// The request's cookies, sealed and signed tokens, as a browser (and the provider) would send.
fn materialize(rig: &Rig, req: &RouteRequest) -> (Vec<String>, Option<String>, Vec<u8>) {
    let mut cookies = Vec::new();
    for (role, payload) in &req.sealed {
        let name = match role.as_str() {
            "session" => "auth_session".to_owned(),
            "logout" => "auth_logout".to_owned(),
            _ => {
                // A pending login's cookie is named after its state, which the callback carries
                // (in its query, or in its form body).
                let state = [req.query.as_deref().unwrap_or_default().as_bytes(), &req.body]
                    .into_iter()
                    .find_map(|form| url::form_urlencoded::parse(form).find(|(k, _)| k == "state"))
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                format!("auth_login.{}", state.chars().take(16).collect::<String>())
            }
        };
        let payload = match role.as_str() {
            "session" => payload.clone(),
            _ => with_issuer(rig, &String::from_utf8_lossy(payload)).into_bytes(),
        };
        let value = rig.ring.seal(role.as_bytes(), &payload).expect("sealing never fails");
        cookies.push(format!("{name}={value}"));
    }
    let mut authorization = None;
    let mut body = req.body.clone();
    for (role, claims) in &req.signed {
        let Ok(claims @ Value::Object(_)) = serde_json::from_str::<Value>(&with_issuer(rig, claims)) else { continue };
        match role.as_str() {
            "bearer" => authorization = Some(format!("Bearer {}", rig.op.sign_jwt_with_type(&claims, "at+jwt"))),
            _ => body = format!("logout_token={}", rig.op.sign_jwt_with_type(&claims, "logout+jwt")).into_bytes(),
        }
    }
    (cookies, authorization, body)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let rig = rig();
    let issuer: String = url::form_urlencoded::byte_serialize(rig.op.issuer().as_bytes()).collect();
    let Some(req) = RouteRequest::parse(&text.replace("$ISSUER_QUERY", &issuer)) else { return };
    let (cookies, authorization, body) = materialize(rig, &req);
    let cookie_header = cookies.join("; ");
    let mut view = RequestView::new(Method::from_name(&req.method), &req.path, req.query.as_deref());
    for (name, value) in &req.headers {
        view.add_header(name, value);
    }
    if !cookie_header.is_empty() {
        view.add_header("cookie", &cookie_header);
    }
    if let Some(authorization) = &authorization {
        view.add_header("authorization", authorization);
    }
    let auth = &rig.auth;
    rig.runtime.block_on(async {
        if req.path.starts_with("/auth/") {
            check_response(rig, &auth.handle(&view, &body).await);
            return;
        }
        let lookup = auth.session(&view).await;
        if let Some(session) = &lookup.session {
            assert!(session.expires_at() > now(), "an expired session");
        }
        if view.authorization().is_some() {
            match auth.bearer(&view).await {
                Ok(bearer) => {
                    let claims = bearer.claims();
                    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(rig.op.issuer()), "another issuer");
                    assert!(!claims.contains_key("nonce") && !claims.contains_key("events"), "an ID or logout token");
                    assert!(!claims.contains_key("cnf"), "a sender-constrained token");
                    let aud = claims.get("aud");
                    assert!(
                        aud.and_then(Value::as_str) == Some(APP)
                            || aud.and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some(APP))),
                        "aud {aud:?}"
                    );
                }
                Err(err) => check_response(rig, &auth.bearer_refusal(&err)),
            }
        }
        if lookup.session.is_none() {
            check_response(rig, &auth.no_session(&view, lookup.unavailable));
        }
    });
});
