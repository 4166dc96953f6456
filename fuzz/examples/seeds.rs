//! Writes the fuzz targets' seed corpora, `fuzz/seeds/<target>/`, from real answers: those of
//! auth-testkit's provider (discovery, JWKS, token response and error, userinfo, introspection,
//! ID, logout and access tokens) and of a login through auth-core against it (its pending-login,
//! session and pending-logout cookies, sealed with the fuzz key); given its issuer, also
//! node-oidc-provider's discovery and JWKS. Claims are moved to the targets' fixed issuer, client
//! and clock where a target checks them. A few GitHub and Facebook answers, as their
//! documentation shows them, complete the userinfo and token seeds.
//!
//! ```sh
//! (cd tests/e2e/provider && npm ci && OP_PORT=4400 node server.mjs) &   # optional
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- http://localhost:4400
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auth_core::{Auth, AuthResponse, Method, Provider, RequestView};
use auth_fuzz::{ACCESS_TOKEN, API_AUDIENCE, CLIENT_ID, ISSUER, NONCE, NOW, RouteRequest, ring};
use auth_testkit::{SigningAlg, TestProvider};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

type Result<T = (), E = Box<dyn Error>> = std::result::Result<T, E>;

const APP: &str = "http://127.0.0.1:3000";
/// OIDC Core A.3: the `at_hash` of `auth_fuzz::ACCESS_TOKEN` for RS256.
const AT_HASH: &str = "77QmUPtjPfzWtF2AnpK9RQ";
/// Far in the future, for the expiry of claims that must stay valid.
const FAR: u64 = 4_102_444_800;

struct Seeds(PathBuf);

impl Seeds {
    fn put(&self, target: &str, name: &str, bytes: impl AsRef<[u8]>) -> Result {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    }

    /// `prefix` (the target's choice byte) and `body`.
    fn put_choice(&self, target: &str, name: &str, prefix: u8, body: impl AsRef<[u8]>) -> Result {
        self.put(target, name, [&[prefix][..], body.as_ref()].concat())
    }
}

fn set_cookie<'a>(res: &'a AuthResponse, prefix: &str) -> Option<(&'a str, &'a str)> {
    res.headers
        .iter()
        .filter(|(n, _)| *n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
        .find(|(name, value)| name.starts_with(prefix) && !value.is_empty())
}

fn payload(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn with(mut claims: Value, changes: Value) -> String {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims.to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result {
    let seeds = Seeds(Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    let node = std::env::args().nth(1);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let op = TestProvider::start().await?;
    let es = TestProvider::builder().signing_alg(SigningAlg::ES256).start().await?;
    let issuer = op.issuer().to_owned();
    let issuer_query: String = url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await?.bytes().await }
    };

    // Discovery and JWKS.
    let discovery = String::from_utf8(get(op.discovery_url()).await?.to_vec())?;
    let jwks = get(format!("{issuer}/jwks")).await?;
    let es_jwks = get(format!("{}/jwks", es.issuer())).await?;
    for (choice, name, base) in [
        (0, "testkit-https", ISSUER),
        (1, "testkit", "http://127.0.0.1:4400"),
        (3, "testkit-auth0", "https://tenant.auth0.example"),
        (4, "testkit-microsoft", "https://login.microsoftonline.com/{tenantid}/v2.0"),
    ] {
        let mut doc = discovery.replace(&issuer, base);
        if choice == 3 {
            doc = doc.replace(&format!("\"issuer\":\"{base}\""), &format!("\"issuer\":\"{base}/\""));
        }
        seeds.put_choice("discovery", name, choice, doc)?;
    }
    let first_key = |doc: &[u8]| -> Result<Value> { Ok(serde_json::from_slice::<Value>(doc)?["keys"][0].clone()) };

    // A login through auth-core, as the routes target's Auth (the same key, provider name, URL).
    let auth = Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .base_url(APP)
        .session_keys(ring())
        .session_ttl(Duration::from_secs(100 * 365 * 86_400))
        .login_ttl(Duration::from_secs(100 * 365 * 86_400))
        .build()
        .await?;
    let browser = [("accept", "text/html,application/xhtml+xml"), ("sec-fetch-mode", "navigate")];
    let view = |method, path: &'static str, query: Option<&'static str>| {
        browser.iter().fold(RequestView::new(method, path, query), |v, (n, h)| v.with_header(n, h))
    };
    let res = auth.handle(&view(Method::Get, "/auth/oidc/login", Some("next=%2Fme%3Ftab%3D1")), b"").await;
    let authorize = res.header("location").unwrap().to_owned();
    let (login_name, login_value) = set_cookie(&res, "auth_login.").unwrap();
    let login_cookie = format!("{login_name}={login_value}");
    let pending = ring().open(b"login", login_value).unwrap();
    let back = http.get(&authorize).send().await?;
    let callback = url::Url::parse(back.headers()["location"].to_str()?)?;
    let query = callback.query().unwrap().to_owned();
    let req = RequestView::new(Method::Get, "/auth/oidc/callback", Some(&query)).with_header("cookie", &login_cookie);
    let res = auth.handle(&req, b"").await;
    assert_eq!(res.status, 303, "{}", res.body);
    let (_, session_value) = set_cookie(&res, "auth_session").unwrap();
    let session_cookie = format!("auth_session={session_value}");
    let session = ring().open(b"session", session_value).unwrap();
    let req = RequestView::new(Method::Post, "/auth/logout", None)
        .with_header("cookie", &session_cookie)
        .with_header("origin", APP)
        .with_header("accept", "text/html");
    let res = auth.handle(&req, b"").await;
    let (_, logout_value) = set_cookie(&res, "auth_logout").unwrap();
    let pending_logout = ring().open(b"logout", logout_value).unwrap();
    let logout_state = serde_json::from_slice::<Value>(&pending_logout)?["s"].as_str().unwrap().to_owned();

    seeds.put("session_cookie", "testkit-session", &session)?;
    seeds.put("session_cookie", "testkit-session-cookie", session_value)?;
    seeds.put("session_encode", "testkit-session", &session)?;
    seeds.put("pending_login", "testkit-login", &pending)?;
    seeds.put("pending_login", "testkit-login-cookie", login_value)?;
    seeds.put("pending_login", "testkit-logout", &pending_logout)?;
    seeds.put("pending_login", "testkit-logout-cookie", logout_value)?;
    seeds.put("safe_next", "path", "/me?tab=1")?;
    seeds.put("safe_next", "login-query", "next=%2Fme%3Ftab%3D1")?;
    seeds.put("safe_next", "deep", "/a/b/?x=1&y=%2F#frag")?;
    seeds.put(
        "request_view",
        "callback",
        format!("{query}\ncookie: {login_cookie}\naccept: text/html\nsec-fetch-mode: navigate\n"),
    )?;

    // The code flow by hand, for the provider's raw answers (RFC 7636 appendix B's verifier).
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let redirect_uri = format!("{APP}/auth/oidc/callback");
    let code_flow = |op: &TestProvider| {
        let (http, issuer, redirect_uri) = (http.clone(), op.issuer().to_owned(), redirect_uri.clone());
        let (client_id, secret) = (op.client_id().to_owned(), op.client_secret().to_owned());
        async move {
            let url = format!(
                "{issuer}/authorize?response_type=code&client_id={client_id}&scope=openid%20email%20profile\
                 &redirect_uri={redirect_uri}&state=s1-state-0123456789&nonce={NONCE}\
                 &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
            );
            let back = http.get(url).send().await?;
            let location = url::Url::parse(back.headers()["location"].to_str()?)?;
            let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri.as_str()),
                ("code_verifier", verifier),
            ];
            let token = |http: reqwest::Client| {
                let (form, issuer) = (form, issuer.clone());
                let (client_id, secret) = (client_id.clone(), secret.clone());
                async move {
                    let res = http.post(format!("{issuer}/token")).basic_auth(client_id, Some(secret)).form(&form);
                    res.send().await?.bytes().await
                }
            };
            let first = token(http.clone()).await?;
            let again = token(http.clone()).await?;
            Ok::<_, Box<dyn Error>>((first, again))
        }
    };
    let (token_response, token_error) = code_flow(&op).await?;
    let (es_token_response, _) = code_flow(&es).await?;
    seeds.put_choice("token_response", "testkit", 0, &token_response)?;
    seeds.put_choice("token_response", "testkit-used-code", 3, &token_error)?;
    seeds.put_choice(
        "token_response",
        "github-error-with-200",
        0x80,
        r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#,
    )?;
    seeds.put_choice(
        "token_response",
        "github",
        0x80,
        r#"{"access_token":"gho_16C7e42F292c6912E7710c838347Ae178B4a","token_type":"bearer","scope":"repo,gist"}"#,
    )?;
    let tokens: Value = serde_json::from_slice(&token_response)?;
    let es_tokens: Value = serde_json::from_slice(&es_token_response)?;
    let id_token = tokens["id_token"].as_str().unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    let es_id_token = es_tokens["id_token"].as_str().unwrap();

    // Userinfo and introspection.
    let userinfo = http.get(format!("{issuer}/userinfo")).bearer_auth(access_token).send().await?.bytes().await?;
    seeds.put_choice("userinfo", "testkit", 0, &userinfo)?;
    seeds.put_choice("userinfo", "testkit-after-id-token", 0x10, &userinfo)?;
    let github_user = r#"{"login":"octocat","id":1,"avatar_url":"https://github.com/images/error/octocat_happy.gif","name":"monalisa octocat","email":"octocat@github.com"}"#;
    let github_emails = r#"[{"email":"octocat@github.com","verified":true,"primary":true,"visibility":"public"},{"email":"old@github.com","verified":false,"primary":false,"visibility":null}]"#;
    seeds.put_choice("userinfo", "github", 1, format!("{github_user}\0{github_emails}"))?;
    seeds.put_choice("userinfo", "facebook", 2, r#"{"id":"10153","name":"Jane Doe","email":"jane@example.com","picture":{"data":{"height":50,"is_silhouette":false,"url":"https://platform-lookaside.fbsbx.com/p.jpg","width":50}}}"#)?;
    seeds.put_choice("userinfo", "custom", 3, r#"{"data":{"id":7,"mail":"u7@example.com","name":"User Seven"}}"#)?;
    let opaque = op.mint_access_token_for(API_AUDIENCE, "read write");
    let introspected = http
        .post(format!("{issuer}/introspect"))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[("token", opaque.as_str()), ("token_type_hint", "access_token")])
        .send()
        .await?
        .bytes()
        .await?;
    let introspected: Value = serde_json::from_slice(&introspected)?;
    seeds.put_choice("introspection", "testkit", 0, with(introspected.clone(), json!({"iss": ISSUER, "exp": FAR})))?;
    seeds.put_choice("introspection", "testkit-inactive", 0, r#"{"active":false}"#)?;
    let jwt_access = op.mint_jwt_access_token(API_AUDIENCE, "read");
    let access_claims = payload(&jwt_access);
    seeds.put_choice(
        "introspection",
        "testkit-access-claims",
        0x20,
        with(access_claims.clone(), json!({"iss": ISSUER, "exp": FAR})),
    )?;
    seeds.put_choice(
        "introspection",
        "microsoft-access-claims",
        0x22,
        with(
            access_claims.clone(),
            json!({"iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "exp": FAR}),
        ),
    )?;
    seeds.put_choice("introspection", "testkit-access-token", 0x40, &jwt_access)?;
    seeds.put("request_view", "bearer", format!("\nauthorization: Bearer {jwt_access}\naccept: application/json\n"))?;

    // JWS and JWKS.
    let logout_token = op.logout_token(Some("alice"), Some("sid-1"));
    let es_logout = es.logout_token(Some("alice"), None);
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "iat": NOW, "exp": NOW + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"fuzz-client-secret"),
    )?;
    let key = first_key(&jwks)?;
    let es_key = first_key(&es_jwks)?;
    seeds.put("jose_header", "testkit-id-token", format!("{key}\n{id_token}"))?;
    seeds.put("jose_header", "testkit-logout-token", format!("{key}\n{logout_token}"))?;
    seeds.put("jose_header", "testkit-es256-id-token", format!("{es_key}\n{es_id_token}"))?;
    seeds.put("jose_header", "testkit-access-token", format!("{key}\n{jwt_access}"))?;
    seeds.put("jose_header", "hs256", &hs256)?;
    seeds.put("jwks", "testkit", [&jwks[..], b"\n", id_token.as_bytes()].concat())?;
    seeds.put("jwks", "testkit-es256", [&es_jwks[..], b"\n", es_logout.as_bytes()].concat())?;

    // Claims, moved to the targets' issuer, client and clock.
    let id_claims = payload(id_token);
    let at =
        json!({"iss": ISSUER, "aud": CLIENT_ID, "nonce": NONCE, "iat": NOW - 10, "exp": NOW + 600, "at_hash": AT_HASH});
    seeds.put_choice("id_token", "testkit-id-token", 0, with(id_claims.clone(), at.clone()))?;
    let logout_claims = payload(&logout_token);
    seeds.put_choice(
        "id_token",
        "testkit-logout-token",
        0,
        with(logout_claims.clone(), json!({"iss": ISSUER, "aud": CLIENT_ID, "iat": NOW - 10, "exp": NOW + 120})),
    )?;
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let microsoft = json!({"iss": format!("https://login.microsoftonline.com/{tenant}/v2.0"), "tid": tenant,
        "aud": CLIENT_ID, "nonce": NONCE, "iat": NOW - 10, "exp": NOW + 600, "at_hash": AT_HASH});
    seeds.put_choice("id_token", "microsoft-id-token", 1, with(id_claims.clone(), microsoft))?;
    let alias = json!({"iss": "op.example", "aud": [CLIENT_ID, "api"], "azp": CLIENT_ID, "nonce": NONCE,
        "iat": NOW - 10, "exp": NOW + 600, "at_hash": AT_HASH});
    seeds.put_choice("id_token", "alias-and-trusted-audience", 2, with(id_claims.clone(), alias))?;
    let max_age = json!({"iss": ISSUER, "aud": CLIENT_ID, "nonce": null, "iat": NOW - 10, "exp": NOW + 600,
        "at_hash": AT_HASH, "auth_time": NOW - 100, "acr": "urn:mace:incommon:iap:silver"});
    seeds.put_choice("id_token", "max-age-and-acr", 3, with(id_claims.clone(), max_age))?;
    let refreshed = json!({"iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "azp": CLIENT_ID, "iat": NOW,
        "exp": NOW + 3600, "auth_time": NOW - 700, "sid": "s-1"});
    seeds.put_choice("id_token", "refreshed", 0, refreshed.to_string())?;

    // The routes, as requests: `$ISSUER` stands for the provider's issuer at fuzzing time.
    let at_issuer = |text: &str| text.replace(&issuer_query, "$ISSUER_QUERY").replace(&issuer, "$ISSUER");
    let route = |method: &str, path: &str, query: Option<&str>, headers: &[(&str, &str)]| RouteRequest {
        method: method.into(),
        path: path.into(),
        query: query.map(at_issuer),
        headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..RouteRequest::default()
    };
    let html = [("accept", "text/html,application/xhtml+xml"), ("sec-fetch-mode", "navigate")];
    let put_route = |name: &str, req: RouteRequest| seeds.put("routes", name, req.to_text());
    put_route("login", route("GET", "/auth/oidc/login", Some("next=%2Fme%3Ftab%3D1"), &html))?;
    let mut callback = route("GET", "/auth/oidc/callback", Some(&query), &html);
    callback.sealed.push(("login".into(), at_issuer(std::str::from_utf8(&pending)?).into_bytes()));
    put_route("callback", callback)?;
    let pending_plain: Value = serde_json::from_slice(&pending)?;
    let state = pending_plain["s"].as_str().unwrap();
    let mut form_post =
        route("POST", "/auth/plain/callback", None, &[("content-type", "application/x-www-form-urlencoded")]);
    form_post.sealed.push(("login".into(), with(pending_plain.clone(), json!({"p": "plain"})).into_bytes()));
    form_post.body = format!("code=SplxlOBeZQQYbYS6WxSbIA&state={state}").into_bytes();
    put_route("form-post-callback", form_post)?;
    let mut denied = route(
        "GET",
        "/auth/oidc/callback",
        Some(&format!("error=access_denied&state={state}&iss={issuer_query}")),
        &html,
    );
    denied.sealed.push(("login".into(), at_issuer(std::str::from_utf8(&pending)?).into_bytes()));
    put_route("callback-denied", denied)?;
    let mut me = route("GET", "/me", None, &[("accept", "application/json")]);
    me.sealed.push(("session".into(), session.clone()));
    put_route("session", me)?;
    let mut logout = route("POST", "/auth/logout", None, &[("origin", APP), ("accept", "text/html")]);
    logout.sealed.push(("session".into(), session.clone()));
    put_route("logout", logout)?;
    let mut logout_callback = route("GET", "/auth/logout/callback", Some(&format!("state={logout_state}")), &html);
    logout_callback.sealed.push(("logout".into(), pending_logout.clone()));
    put_route("logout-callback", logout_callback)?;
    let mut backchannel =
        route("POST", "/auth/oidc/backchannel-logout", None, &[("content-type", "application/x-www-form-urlencoded")]);
    let logout_claims = with(logout_claims, json!({"exp": FAR}));
    backchannel.signed.push(("logout".into(), at_issuer(&logout_claims)));
    put_route("backchannel-logout", backchannel)?;
    let mut bearer = route("GET", "/api/items", None, &[("accept", "application/json")]);
    let bearer_claims = with(access_claims, json!({"aud": APP, "exp": FAR}));
    bearer.signed.push(("bearer".into(), at_issuer(&bearer_claims)));
    put_route("bearer", bearer)?;

    // DPoP proofs for a GET of the dpop_proof target's URL with the fuzz access token, at NOW:
    // one valid, and ones each refused for one reason.
    let dpop = auth_testkit::TestDpopKey::generate();
    let dpop_url = "https://api.example/items";
    let dpop_claims = || {
        let mut claims = dpop.proof_claims("GET", dpop_url, Some(ACCESS_TOKEN), None);
        claims["iat"] = json!(NOW);
        claims
    };
    let valid = dpop.sign_jws(&dpop.proof_header(), &dpop_claims());
    seeds.put("dpop_proof", "valid", &valid)?;
    seeds.put("dpop_proof", "two-headers", format!("{valid}\n{valid}"))?;
    let mut claims = dpop_claims();
    claims["htu"] = json!("HTTPS://API.EXAMPLE:443/%69tems?page=2#top");
    seeds.put("dpop_proof", "htu-normalized", dpop.sign_jws(&dpop.proof_header(), &claims))?;
    for (name, change) in [
        ("htm-post", json!({"htm": "POST"})),
        ("iat-old", json!({"iat": NOW - 600})),
        ("iat-fraction", json!({"iat": NOW as f64 + 0.5})),
        ("no-ath", json!({"ath": null})),
        ("jti-empty", json!({"jti": ""})),
    ] {
        let claims: Value = serde_json::from_str(&with(dpop_claims(), change))?;
        seeds.put("dpop_proof", name, dpop.sign_jws(&dpop.proof_header(), &claims))?;
    }
    for (name, change) in [
        ("typ-jwt", json!({"typ": "JWT"})),
        ("alg-rs256", json!({"alg": "RS256"})),
        ("crit", json!({"crit": ["exp"]})),
        ("private-jwk", json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}})),
    ] {
        let header: Value = serde_json::from_str(&with(dpop.proof_header(), change))?;
        seeds.put("dpop_proof", name, dpop.sign_jws(&header, &dpop_claims()))?;
    }

    // node-oidc-provider, when it runs.
    if let Some(node) = node {
        let node = node.trim_end_matches('/');
        let discovery = String::from_utf8(get(format!("{node}/.well-known/openid-configuration")).await?.to_vec())?;
        let jwks = get(format!("{node}/jwks")).await?;
        seeds.put_choice("discovery", "node-oidc-provider", 2, discovery.replace(node, "http://localhost:4400"))?;
        seeds.put("jwks", "node-oidc-provider", [&jwks[..], b"\n"].concat())?;
        seeds.put("jose_header", "node-oidc-provider-jwk", format!("{}\n", first_key(&jwks)?))?;
    }
    println!("seeds written to {}", seeds.0.display());
    Ok(())
}
