//! Each finding of the adversarial review and interop run (issue 10), pinned by a test that fails
//! without its fix: against the in-process provider, with its faults.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_core::{
    Auth, AuthResponse, Error, HttpConfig, JwksConfig, KeyRing, Method, Provider, RequestView, SessionKey,
};
use auth_testkit::{Fault, LogoutTokenFault, SigningAlg, TestProvider, TestUser};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Jar, Rig, builder_for, rig, rig_with};
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn backchannel(auth: &Auth, token: &str) -> AuthResponse {
    let body = format!("logout_token={token}");
    let req = RequestView::new(Method::Post, "/auth/oidc/backchannel-logout", None)
        .with_header("content-type", "application/x-www-form-urlencoded");
    auth.handle(&req, body.as_bytes()).await
}

/// A logout token with a valid shape whose `kid` the provider never published, as an attacker
/// can post any number of.
fn forged_logout_token(op: &TestProvider, kid: &str) -> String {
    let header = json!({"alg": "RS256", "kid": kid, "typ": "logout+jwt"});
    let claims = json!({
        "iss": op.issuer(), "aud": op.client_id(), "iat": now(), "exp": now() + 120, "jti": kid, "sub": "alice",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    )
}

fn get(path: &str, query: Option<&'static str>) -> RequestView<'static> {
    let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
    RequestView::new(Method::Get, path, query)
}

// --- 1. policies on string claims: see session.rs and the scenario policy_guard_answers_403. ---

// --- 2. JWKS refetch limits hold in every state ------------------------------------------------

#[tokio::test]
async fn forged_kids_against_a_failing_jwks_make_one_fetch() {
    let cooldown = JwksConfig { refetch_cooldown: Duration::from_millis(500), ..JwksConfig::default() };
    let mut r = rig_with(TestProvider::builder(), |b| b.jwks(cooldown)).await;
    r.login().await.outcome.unwrap();
    assert_eq!(r.op.jwks_requests(), 1);
    r.op.inject(Fault::JwksStatus(503));
    for i in 0..10 {
        backchannel(&r.auth, &forged_logout_token(&r.op, &format!("early-{i}"))).await;
    }
    assert_eq!(r.op.jwks_requests(), 1, "within the cooldown of the last fetch: no refetch");
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 0..40 {
        // Not verifiable now (the JWKS is down): 503, so that a real provider would retry.
        let res = backchannel(&r.auth, &forged_logout_token(&r.op, &format!("forged-{i}"))).await;
        assert_eq!(res.status, 503, "{}", res.body);
    }
    assert_eq!(r.op.jwks_requests(), 2, "one refetch for 40 forged kids: the failed one counts, with backoff");
    tokio::time::sleep(Duration::from_millis(600)).await;
    backchannel(&r.auth, &forged_logout_token(&r.op, "after-one-cooldown")).await;
    assert_eq!(r.op.jwks_requests(), 2, "after a failure the wait doubles");
    r.op.clear_faults();
    r.login().await.outcome.expect("the cached keys still verify the provider's real tokens");
}

#[tokio::test]
async fn concurrent_forged_kids_share_one_slow_failing_fetch() {
    // Never fetched yet, and the JWKS is slow and failing: the worst state.
    let r = rig().await;
    r.op.inject(Fault::JwksDelay(Duration::from_millis(800)));
    r.op.inject(Fault::JwksStatus(503));
    let started = Instant::now();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (auth, token) = (r.auth.clone(), forged_logout_token(&r.op, &format!("k{i}")));
            tokio::spawn(async move { backchannel(&auth, &token).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 503, "the JWKS could not be fetched: retry later");
    }
    let elapsed = started.elapsed();
    assert_eq!(r.op.jwks_requests(), 1, "the waiters shared the one fetch in flight");
    assert!(elapsed < Duration::from_millis(2500), "12 waiters did not queue one fetch each: {elapsed:?}");
    for i in 0..10 {
        backchannel(&r.auth, &forged_logout_token(&r.op, &format!("again-{i}"))).await;
    }
    assert_eq!(r.op.jwks_requests(), 1, "a failed fetch counts against the cooldown, even before any success");
}

// --- 3. a provider's key rotation is never blocked by the cooldown ------------------------------

#[tokio::test]
async fn two_rotations_within_the_cooldown_keep_logins_working() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    r.op.rotate_keys();
    r.login().await.outcome.expect("the first rotation");
    r.op.rotate_keys();
    r.login().await.outcome.expect("a second rotation seconds later: ID tokens from the token endpoint refetch");
    assert_eq!(r.op.jwks_requests(), 3);
    // Forged kids from the back channel still obey the cooldown.
    backchannel(&r.auth, &forged_logout_token(&r.op, "forged")).await;
    assert_eq!(r.op.jwks_requests(), 3, "within the cooldown since the last fetch");
}

// --- 4. logout tokens after a restart ------------------------------------------------------------

#[tokio::test]
async fn an_es256_providers_logout_works_before_any_login() {
    let op = TestProvider::builder().signing_alg(SigningAlg::ES256).start().await.unwrap();
    let auth = builder_for(&op).build().await.unwrap();
    // A fresh process: nobody logged in yet. The algorithm comes from the metadata.
    let res = backchannel(&auth, &op.logout_token(Some("alice"), None)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let other = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::OtherAlgorithm));
    assert_eq!(backchannel(&auth, &other).await.status, 400, "RS256 is not what this provider signs with");
}

#[tokio::test]
async fn a_logout_token_of_another_type_is_refused() {
    let op = TestProvider::start().await.unwrap();
    let auth = builder_for(&op).build().await.unwrap();
    let claims = json!({
        "iss": op.issuer(), "aud": op.client_id(), "iat": now(), "exp": now() + 120, "jti": "j-typ", "sub": "alice",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    assert_eq!(backchannel(&auth, &op.sign_jwt_with_type(&claims, "at+jwt")).await.status, 400);
    let claims = json!({
        "iss": op.issuer(), "aud": op.client_id(), "iat": now(), "exp": now() + 120, "jti": "j-typ-2", "sub": "alice",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    let res = backchannel(&auth, &op.sign_jwt_with_type(&claims, "logout+jwt")).await;
    assert_eq!(res.status, 200, "the same token typed logout+jwt: {}", res.body);
}

#[tokio::test]
async fn a_configured_algorithm_is_the_only_one() {
    let op = TestProvider::builder().signing_alg(SigningAlg::ES256).start().await.unwrap();
    let auth = Auth::builder()
        .provider(common::provider_for(&op).with_id_token_signing_alg("RS256"))
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap();
    let mut r = Rig { op, auth, jar: Jar::default(), http: common::http() };
    let err = r.login().await.outcome.unwrap_err();
    assert!(err.to_string().contains("ES256"), "an ES256 ID token is refused when RS256 is configured: {err}");
}

// --- 5. logout CSRF --------------------------------------------------------------------------------

#[tokio::test]
async fn a_cross_site_logout_is_refused() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let cookie = r.jar.header();
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("origin", "http://127.0.0.1:3001"),
    ] {
        let req = RequestView::new(Method::Post, "/auth/logout", None)
            .with_header("cookie", &cookie)
            .with_header("accept", "text/html")
            .with_header(name, value);
        let res = r.auth.handle(&req, b"").await;
        assert_eq!(res.status, 403, "{name}: {value}");
        assert!(res.header("set-cookie").is_none(), "{name}: {value}: no cookie changes");
        assert!(r.session().await.is_some(), "{name}: {value}: the session lives on");
    }
    let same = RequestView::new(Method::Post, "/auth/logout", None)
        .with_header("cookie", &cookie)
        .with_header("accept", "application/json")
        .with_header("origin", "http://127.0.0.1:3000")
        .with_header("sec-fetch-site", "same-origin");
    let res = r.auth.handle(&same, b"").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(r.session().await.is_none(), "a same-origin logout works");
}

#[tokio::test]
async fn the_apps_origin_is_scheme_host_and_port_whatever_the_path() {
    let op = TestProvider::start().await.unwrap();
    let auth = builder_for(&op).base_url("https://app.example.com:443/portal").build().await.unwrap();
    let post = |origin: Option<&'static str>| {
        let mut req = RequestView::new(Method::Post, "/auth/logout", None).with_header("accept", "application/json");
        if let Some(origin) = origin {
            req = req.with_header("origin", origin);
        }
        req
    };
    assert_eq!(auth.handle(&post(Some("https://app.example.com")), b"").await.status, 204);
    assert_eq!(auth.handle(&post(Some("HTTPS://APP.EXAMPLE.COM")), b"").await.status, 204);
    assert_eq!(auth.handle(&post(None), b"").await.status, 204, "a client without Origin (curl) may log out");
    assert_eq!(auth.handle(&post(Some("http://app.example.com")), b"").await.status, 403, "another scheme");
    assert_eq!(auth.handle(&post(Some("https://app.example.com.evil")), b"").await.status, 403);
}

// --- 6. limits on what a provider sends ----------------------------------------------------------

#[tokio::test]
async fn an_oversized_jwks_is_refused_before_it_is_held() {
    let mut r = rig().await;
    r.op.inject(Fault::JwksPadding(3 * 1024 * 1024));
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(&err, Error::Provider { endpoint: "jwks", reason } if reason.contains("larger than")), "{err:?}");
    assert_eq!(err.status(), 502);
}

#[tokio::test]
async fn the_response_cap_is_configurable_and_covers_discovery() {
    let op = TestProvider::start().await.unwrap();
    let err = builder_for(&op).http(HttpConfig { max_response_bytes: 256, ..HttpConfig::default() }).build().await;
    let err = err.unwrap_err();
    assert!(err.to_string().contains("larger than 256 bytes"), "{err}");
}

// --- 7. a session that can be stored can be read ----------------------------------------------

#[tokio::test]
async fn a_session_that_would_not_inflate_back_is_refused_at_login() {
    let mut r = rig().await;
    let roles: Vec<String> = (0..8000).map(|i| format!("role-admin-{}", i % 7)).collect();
    r.op.set_user(TestUser::new("many-roles").with_claim("roles", json!(roles)));
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(err, Error::SessionTooLarge { .. }), "{err:?}");
    assert!(r.session().await.is_none());
}

// --- 8. state never reaches a header unchecked --------------------------------------------------

#[tokio::test]
async fn a_state_with_foreign_characters_is_400_without_cookies() {
    let r = rig().await;
    for query in [
        "code=c&state=aaaaaaaaaaaaaaaaaaaa;Domain=evil.example",
        "code=c&state=aaaaaaaaaaaaaaaaaaaa%0d%0aSet-Cookie:%20x=y",
        "code=c&state=aaaaaaaaaaaaaaaaaaaa%20b",
    ] {
        let res = r.auth.handle(&get("/auth/oidc/callback", Some(query)), b"").await;
        assert_eq!(res.status, 400, "{query}");
        assert!(res.headers.iter().all(|(n, _)| *n != "set-cookie"), "{query}: no cookie named after it");
    }
}

// --- 10. bounded state ----------------------------------------------------------------------------

#[tokio::test]
async fn a_thousand_junk_login_cookies_get_a_short_answer() {
    let r = rig().await;
    let junk: Vec<String> = (0..1000).map(|i| format!("auth_login.junk{i:04}=x")).collect();
    let cookie = junk.join("; ");
    let req = RequestView::new(Method::Get, "/auth/oidc/login", None).with_header("cookie", &cookie);
    let res = r.auth.handle(&req, b"").await;
    assert_eq!(res.status, 302);
    let set_cookies = res.headers.iter().filter(|(n, _)| *n == "set-cookie").count();
    assert!(set_cookies <= 10, "{set_cookies} Set-Cookie headers");
}

// --- 11. the issuer comparison is never skipped ------------------------------------------------

#[tokio::test]
async fn a_metadata_url_alone_still_checks_the_issuer() {
    let op = TestProvider::start().await.unwrap();
    let env = |op: &TestProvider, url: String| {
        let (id, secret) = (op.client_id().to_owned(), op.client_secret().to_owned());
        move |k: &str| match k {
            "OIDC_CLIENT_ID" => Some(id.clone()),
            "OIDC_CLIENT_SECRET" => Some(secret.clone()),
            "OIDC_SERVER_METADATA_URL" => Some(url.clone()),
            _ => None,
        }
    };
    let build = |provider: Provider| {
        Auth::builder().provider(provider).session_keys(KeyRing::new(SessionKey::generate())).build()
    };
    build(Provider::from_env_with("oidc", env(&op, op.discovery_url())).unwrap()).await.expect("a matching issuer");
    op.inject(Fault::DiscoveryIssuerMismatch);
    let err = build(Provider::from_env_with("oidc", env(&op, op.discovery_url())).unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("is not the configured issuer"), "{err}");
    op.clear_faults();
    let odd = format!("{}/metadata.json", op.issuer());
    let err = build(Provider::from_env_with("oidc", env(&op, odd)).unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("set OIDC_ISSUER too"), "{err}");
}

// --- 12. the app starts when a provider is down ------------------------------------------------

#[tokio::test]
async fn a_provider_down_at_start_answers_503_until_it_is_back() {
    let down = TestProvider::start().await.unwrap();
    down.inject(Fault::DiscoveryStatus(503));
    let up = TestProvider::start().await.unwrap();
    let auth = Auth::builder()
        .provider(common::provider_for(&down))
        .provider(Provider::oidc("other", up.issuer(), up.client_id()).with_client_secret(up.client_secret()))
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .expect("the app starts");
    assert!(!auth.is_provider_ready("oidc"));
    let res = auth.handle(&get("/auth/oidc/login", None).with_header("accept", "text/html"), b"").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("30"));
    assert!(res.body.contains("not available right now"), "{}", res.body);
    let other = auth.handle(&get("/auth/other/login", None), b"").await;
    assert_eq!(other.status, 302, "the other provider works");

    down.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !auth.is_provider_ready("oidc") {
        assert!(Instant::now() < deadline, "discovery was retried in the background");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut r = Rig { op: down, auth, jar: Jar::default(), http: common::http() };
    r.login().await.outcome.expect("logins work once the provider is back");
}

// --- 13. configuration mistakes say what to fix -------------------------------------------------

#[tokio::test]
async fn issuer_mistakes_name_the_variable_the_url_and_the_fix() {
    let op = TestProvider::start().await.unwrap();
    let from = |issuer: String| {
        let id = op.client_id().to_owned();
        Provider::from_env_with("oidc", move |k| match k {
            "OIDC_CLIENT_ID" => Some(id.clone()),
            "OIDC_ISSUER" => Some(issuer.clone()),
            _ => None,
        })
        .unwrap()
    };
    let build = |p: Provider| Auth::builder().provider(p).build();
    let err = build(from(format!("{}/", op.issuer()))).await.unwrap_err().to_string();
    assert!(err.contains("provider `oidc`") && err.contains("remove the trailing slash from OIDC_ISSUER"), "{err}");
    assert!(err.contains(&op.discovery_url()), "names the URL fetched: {err}");
    let err = build(from(op.discovery_url())).await.unwrap_err().to_string();
    assert!(err.contains("OIDC_ISSUER looks like a discovery URL"), "{err}");
    assert!(err.contains(&format!("`{}`", op.issuer())), "says what to set it to: {err}");
    assert!(err.contains("404"), "{err}");
}

// --- 14. the back button after a login; a cancelled login without state ----------------------

#[tokio::test]
async fn the_back_button_after_a_login_lands_on_the_app() {
    let mut r = rig().await;
    let url = r.start_login("/me").await;
    let callback = r.authorize(&url).await;
    r.complete(&callback).await.outcome.unwrap();
    let cookie = r.jar.header();
    let again = RequestView::new(Method::Get, callback.path(), callback.query())
        .with_header("cookie", &cookie)
        .with_header("accept", "text/html");
    let res = r.auth.handle(&again, b"").await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.header("location"), Some("/"));
    assert_eq!(r.op.token_requests(), 1, "nothing was exchanged again");
    // Without a session, the same URL is still the clear 400.
    let bare = RequestView::new(Method::Get, callback.path(), callback.query()).with_header("accept", "text/html");
    assert_eq!(r.auth.handle(&bare, b"").await.status, 400);
}

#[tokio::test]
async fn access_denied_without_state_says_the_login_was_cancelled() {
    let r = rig().await;
    let res = r
        .auth
        .handle(&get("/auth/oidc/callback", Some("error=access_denied")).with_header("accept", "text/html"), b"")
        .await;
    assert_eq!(res.status, 403);
    assert!(res.body.contains("cancelled"), "{}", res.body);
}

// --- 15. correct small answers --------------------------------------------------------------------

#[tokio::test]
async fn method_not_allowed_lists_the_right_methods() {
    let r = rig().await;
    for (method, path, allow) in [
        (Method::Get, "/auth/logout", "POST"),
        (Method::Other, "/auth/oidc/login", "GET, HEAD"),
        (Method::Other, "/auth/oidc/callback", "GET, HEAD, POST"),
        (Method::Post, "/auth/oidc/login", "GET, HEAD"),
        (Method::Get, "/auth/oidc/backchannel-logout", "POST"),
        (Method::Post, "/auth/logout/callback", "GET, HEAD"),
    ] {
        let res = r.auth.handle(&RequestView::new(method, path, None), b"").await;
        assert_eq!(res.status, 405, "{method:?} {path}");
        assert_eq!(res.header("allow"), Some(allow), "{method:?} {path}");
    }
}

#[tokio::test]
async fn the_oldest_pending_login_is_the_one_dropped() {
    let mut r = rig().await;
    let mut callbacks = Vec::new();
    for _ in 0..6 {
        let url = r.start_login("/").await;
        callbacks.push(r.authorize(&url).await);
    }
    let first = callbacks.remove(0);
    let err = r.complete(&first).await.outcome.unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "the oldest was dropped: {err:?}");
    for callback in &callbacks {
        r.complete(callback).await.outcome.expect("the five newest are kept");
    }
}

#[tokio::test]
async fn a_late_logout_token_spares_sessions_made_after_its_iat() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    let token = |iat: u64, jti: &str| {
        let claims = json!({
            "iss": r.op.issuer(), "aud": r.op.client_id(), "iat": iat, "exp": now() + 60, "jti": jti,
            "sub": "alice", "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        r.op.sign_jwt_with_type(&claims, "logout+jwt")
    };
    // Issued two minutes ago (before this login, beyond the 60 s clock leeway), delivered now.
    let res = backchannel(&r.auth, &token(now() - 120, "late")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(r.session().await.is_some(), "the session is newer than the logout");
    // Issued now (or by a provider whose clock lags less than the leeway): it ends the session.
    let res = backchannel(&r.auth, &token(now() - 20, "lagging-clock")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(r.session().await.is_none(), "a logout within the leeway of the login ends it");
}

#[tokio::test]
async fn concurrent_logins_with_a_new_kid_share_the_fetch_in_flight() {
    let mut r = rig().await;
    r.login().await.outcome.unwrap();
    r.op.rotate_keys();
    // The JWKS is slow and failing: every login waits for the one fetch in flight, none starts
    // its own after it (a fetch that started after a login arrived answers it).
    r.op.inject(Fault::JwksDelay(Duration::from_millis(1500)));
    r.op.inject(Fault::JwksStatus(503));
    let mut callbacks = Vec::new();
    for _ in 0..5 {
        let url = r.start_login("/").await;
        callbacks.push(r.authorize(&url).await);
    }
    let cookie = r.jar.header();
    let tasks: Vec<_> = callbacks
        .into_iter()
        .map(|cb| {
            let (auth, cookie) = (r.auth.clone(), cookie.clone());
            tokio::spawn(async move {
                let req = RequestView::new(Method::Get, cb.path(), cb.query()).with_header("cookie", &cookie);
                auth.complete_login("oidc", &req, b"").await.outcome.map(|_| ())
            })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.status(), 502, "{err}");
    }
    assert!(r.op.jwks_requests() <= 3, "{} fetches for 5 logins", r.op.jwks_requests());
}

#[tokio::test]
async fn stale_keys_serve_at_once_while_a_refresh_hangs() {
    let mut r = rig_with(TestProvider::builder(), |b| {
        b.jwks(JwksConfig { refetch_cooldown: Duration::ZERO, max_age: Duration::ZERO })
    })
    .await;
    r.login().await.outcome.unwrap();
    r.op.inject(Fault::JwksDelay(Duration::from_secs(3)));
    // One login refreshes the old keys (and waits); the others meanwhile are served at once.
    let mut first = Rig { op: r.op.clone(), auth: r.auth.clone(), jar: Jar::default(), http: common::http() };
    let slow = tokio::spawn(async move { first.login().await.outcome.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    r.login().await.outcome.expect("the old keys still verify");
    assert!(started.elapsed() < Duration::from_secs(2), "not queued behind the refresh: {:?}", started.elapsed());
    slow.await.unwrap().unwrap();
}

// --- 16. bad paths are a quiet 404 -----------------------------------------------------------------

/// Collects the level and message of every event.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut text = String::new();
        event.record(&mut Message(&mut text));
        self.0.lock().unwrap().push((*event.metadata().level(), text));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn non_canonical_paths_are_a_404_without_an_error_line() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let r = rig().await;
    let events = Events::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
    for path in ["/%61uth/oidc/login", "//auth/oidc/login", "/auth/%6fidc/login"] {
        let res = r.auth.handle(&get(path, None), b"").await;
        assert_eq!(res.status, 404, "{path}");
    }
    let errors: Vec<_> =
        events.0.lock().unwrap().iter().filter(|(l, _)| *l == tracing::Level::ERROR).cloned().collect();
    assert!(errors.is_empty(), "{errors:?}");
    // A plain path outside the prefix is a mounting mistake, and says so.
    r.auth.handle(&get("/login/oidc/login", None), b"").await;
    assert!(events.0.lock().unwrap().iter().any(|(l, m)| *l == tracing::Level::ERROR && m.contains("prefix")));
}

#[tokio::test]
async fn logins_refetch_once_each_while_the_jwks_is_down() {
    // Logins (token-endpoint tokens) may refetch for an unknown kid, but one login is one fetch.
    let mut r = rig_with(TestProvider::builder(), |b| b).await;
    r.op.inject(Fault::JwksStatus(503));
    for _ in 0..3 {
        assert!(r.login().await.outcome.is_err());
    }
    assert_eq!(r.op.jwks_requests(), 3, "one fetch per login, never more");
}

/// Found by fuzzing `safe_next`: a percent-encoded tab or newline right after the first `/`
/// passed. A proxy or server that decodes `Location` turns `/%0d/evil` into `/\r/evil`, and
/// browsers strip tabs and newlines from URLs, reading `//evil`: another site.
#[test]
fn safe_next_refuses_an_encoded_tab_or_newline_after_the_first_slash() {
    for bad in ["/%0d/+/+#%d", "/%09/evil.example", "/%0A/evil.example", "/%0D%0a/evil.example"] {
        assert_eq!(auth_core::safe_next(bad), None, "{bad:?}");
    }
    // Further on, the same characters only make a path.
    assert_eq!(auth_core::safe_next("/a/%09/b"), Some("/a/%09/b"));
}
