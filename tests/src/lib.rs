//! One scenario suite, every adapter.
//!
//! Each scenario is a plain `async fn(&TestApp)` that drives an example app over a real socket,
//! through the in-process auth-testkit provider, with a cookie-keeping [`Browser`]. An adapter's
//! test file implements [`Framework`] (how to serve its example app for an [`Auth`]) and invokes
//! [`scenarios!`], which turns every scenario into a `#[tokio::test]`; a behaviour difference
//! between adapters is therefore a failing test.

// Scenario code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::future::Future;

use auth_core::{Auth, KeyRing, Provider, SessionKey};
use auth_redis::RedisStore;
pub use auth_redis::test_server::RedisServer;
pub use auth_testkit::{Browser, Fault, TestProvider, TestProviderBuilder, TestUser};
use reqwest::Response;

/// A running server; dropping it stops the server.
pub struct ServerGuard(Option<Box<dyn FnOnce() + Send>>);

impl ServerGuard {
    /// A guard that runs `stop` when dropped.
    pub fn new(stop: impl FnOnce() + Send + 'static) -> Self {
        ServerGuard(Some(Box::new(stop)))
    }
}

impl std::fmt::Debug for ServerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerGuard")
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop();
        }
    }
}

/// How to serve a framework's example app.
pub trait Framework {
    /// Serves the example app for `auth` on `listener` (already bound to a loopback port) until the
    /// guard is dropped. Called from within a multi-threaded Tokio runtime.
    fn spawn(auth: Auth, listener: std::net::TcpListener) -> impl Future<Output = ServerGuard> + Send;
}

/// An example app under test, its provider and a browser.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The provider the app logs in with (as `oidc`).
    pub provider: TestProvider,
    /// A browser with an empty cookie jar.
    pub browser: Browser,
    _server: ServerGuard,
    _redis: Option<RedisServer>,
}

fn loopback_listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.set_nonblocking(true).expect("non-blocking listener");
    listener
}

/// The `Auth` every scenario app uses: provider `oidc`, base URL `base`.
fn builder(provider: &TestProvider, base: &str, keys: KeyRing) -> auth_core::AuthBuilder {
    Auth::builder()
        .provider(
            Provider::oidc("oidc", provider.issuer(), provider.client_id())
                .with_client_secret(provider.client_secret()),
        )
        .base_url(base)
        .session_keys(keys)
}

impl TestApp {
    /// Starts a default provider and the framework's example app.
    pub async fn start<F: Framework>() -> TestApp {
        TestApp::start_with::<F>(TestProvider::builder()).await
    }

    /// Starts the app against a provider built from `provider`.
    pub async fn start_with<F: Framework>(provider: TestProviderBuilder) -> TestApp {
        TestApp::start_with_faults::<F>(provider, &[]).await
    }

    /// Starts the app against a provider built from `provider` that shows `faults` from before
    /// the app is built (a provider down at the app's start: [`Fault::DiscoveryStatus`]).
    pub async fn start_with_faults<F: Framework>(provider: TestProviderBuilder, faults: &[Fault]) -> TestApp {
        TestApp::start_configured::<F>(provider, faults, |op| {
            Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret())
        })
        .await
    }

    /// [`TestApp::start_with_faults`] with the app's provider `oidc` made by `configure` (a
    /// client registered with another authentication method).
    pub async fn start_configured<F: Framework>(
        provider: TestProviderBuilder,
        faults: &[Fault],
        configure: impl FnOnce(&TestProvider) -> Provider,
    ) -> TestApp {
        let provider = provider.start().await.expect("test provider starts");
        for fault in faults {
            provider.inject(fault.clone());
        }
        let listener = loopback_listener();
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let auth = Auth::builder()
            .provider(configure(&provider))
            .base_url(&base)
            .session_keys(KeyRing::new(SessionKey::generate()))
            .build()
            .await
            .expect("auth builds against the test provider");
        let server = F::spawn(auth, listener).await;
        TestApp { base, provider, browser: Browser::new(), _server: server, _redis: None }
    }

    /// Starts the app with its sessions in a `redis-server` of its own; `None` (the scenario is
    /// skipped, with a note) when `redis-server` is not installed, except under `CI=true`.
    pub async fn start_redis<F: Framework>() -> Option<TestApp> {
        TestApp::start_redis_with::<F>(TestProvider::builder()).await
    }

    /// [`TestApp::start_redis`] against a provider built from `provider`.
    pub async fn start_redis_with<F: Framework>(provider: TestProviderBuilder) -> Option<TestApp> {
        let redis = RedisServer::start_or_skip()?;
        let provider = provider.start().await.expect("test provider starts");
        let listener = loopback_listener();
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let store = RedisStore::connect(&redis.url()).await.expect("the Redis store connects");
        let auth = builder(&provider, &base, KeyRing::new(SessionKey::generate()))
            .store(store)
            .build()
            .await
            .expect("auth builds against the test provider");
        let server = F::spawn(auth, listener).await;
        Some(TestApp { base, provider, browser: Browser::new(), _server: server, _redis: Some(redis) })
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET as an API client (`Accept: application/json`), with the browser's cookies.
    pub async fn api_get(&self, browser: &Browser, path: &str) -> Response {
        browser.client().get(self.url(path)).header("accept", "application/json").send().await.expect("request")
    }

    /// A GET as a browser navigation (`Accept: text/html`), not following redirects.
    pub async fn nav_get(&self, browser: &Browser, path: &str) -> Response {
        browser
            .client()
            .get(self.url(path))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .expect("request")
    }

    /// Logs the browser in through the whole flow, starting at `/me`; returns the final response.
    pub async fn login(&self, browser: &Browser) -> Response {
        let (res, _) = browser.get_following(&self.url("/auth/oidc/login?next=/me")).await.expect("login flow");
        res
    }
}

/// Runs every scenario against a [`Framework`], one `#[tokio::test]` each.
#[macro_export]
macro_rules! scenarios {
    ($framework:ty) => {
        $crate::scenarios!(@each $framework;
            unauthenticated_browser_is_redirected_to_login,
            unauthenticated_api_client_gets_401,
            full_login_reaches_me_with_claims,
            home_page_shows_the_user,
            session_cookie_has_safe_flags,
            logout_requires_post_and_ends_the_session,
            two_tabs_log_in_at_once,
            replayed_callback_logs_nobody_in,
            open_next_is_refused,
            provider_error_is_a_clean_4xx,
            tampered_cookie_is_refused_and_cleared,
            bad_id_token_is_refused_without_a_session,
            policy_guard_answers_403,
            unknown_provider_is_404,
            callback_without_state_is_400,
            new_session_id_at_every_login,
            logout_at_the_provider_and_back,
            backchannel_logout_ends_the_session,
            backchannel_logout_by_sub_ends_all_sessions,
            invalid_logout_tokens_are_refused,
            cross_site_logout_is_refused,
            non_canonical_auth_paths_are_404,
            control_characters_in_state_are_400,
            method_not_allowed_says_what_is,
            bearer_jwt_access_token_is_accepted,
            dpop_bound_tokens_need_their_proof_at_the_api,
            bearer_header_problems_get_rfc6750_answers,
            bad_bearer_tokens_are_invalid_token,
            bearer_scope_is_required,
            opaque_tokens_are_introspected,
            a_login_over_a_stale_cookie_keeps_the_new_session,
            userinfo_route_answers_with_the_providers_json,
            principal_is_the_bearer_token_or_the_session,
            a_token_endpoint_down_during_a_login_fails_cleanly_and_a_retry_logs_in,
            a_hanging_token_endpoint_times_out_while_other_routes_answer,
            stale_keys_serve_while_the_jwks_is_down,
            keys_rotated_twice_in_a_row_still_log_in_and_the_oldest_key_is_refused,
            clock_skew_within_the_leeway_logs_in,
            clock_skew_beyond_the_leeway_is_refused_without_a_session,
        );
        /// Client authentication with assertions, and pushed authorization requests.
        mod client_auth {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn private_key_jwt_client_logs_in_with_fresh_assertions() {
                let (app, key) = $crate::client_auth::private_key_jwt_app::<$framework>(&[]).await;
                $crate::client_auth::private_key_jwt_client_logs_in_with_fresh_assertions(&app, &key).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_expired_client_assertion_is_refused_without_a_session() {
                let faults = [$crate::Fault::ClockSkew(300)];
                let (app, _) = $crate::client_auth::private_key_jwt_app::<$framework>(&faults).await;
                $crate::client_auth::an_expired_client_assertion_is_refused_without_a_session(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_assertion_audience_the_provider_refuses_names_the_setting() {
                let faults = [$crate::Fault::AssertionAudienceTokenEndpointOnly];
                let (app, _) = $crate::client_auth::private_key_jwt_app::<$framework>(&faults).await;
                $crate::client_auth::an_assertion_audience_the_provider_refuses_names_the_setting(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_provider_requiring_par_sees_only_pushed_requests() {
                let app = $crate::TestApp::start_with::<$framework>(
                    $crate::TestProvider::builder().require_pushed_authorization_requests(true),
                )
                .await;
                $crate::client_auth::a_provider_requiring_par_sees_only_pushed_requests(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_par_endpoint_that_is_down_is_an_error_page() {
                let app = $crate::TestApp::start_with::<$framework>(
                    $crate::TestProvider::builder().require_pushed_authorization_requests(true),
                )
                .await;
                $crate::client_auth::a_par_endpoint_that_is_down_is_an_error_page(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dpop_session_calls_userinfo_with_proofs() {
                let app = $crate::client_auth::dpop_app::<$framework>($crate::TestProvider::builder()).await;
                $crate::client_auth::a_dpop_session_calls_userinfo_with_proofs(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_provider_requiring_dpop_nonces_is_answered() {
                let op = $crate::TestProvider::builder().require_dpop_nonce(true);
                let app = $crate::client_auth::dpop_app::<$framework>(op).await;
                $crate::client_auth::a_dpop_session_calls_userinfo_with_proofs(&app).await;
            }
        }
        /// The app started while its provider was down.
        mod provider_down_at_start {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn logins_answer_503_until_the_provider_is_up() {
                let app = $crate::TestApp::start_with_faults::<$framework>(
                    $crate::TestProvider::builder(),
                    &[$crate::Fault::DiscoveryStatus(503)],
                )
                .await;
                $crate::scenario::logins_answer_503_until_the_provider_is_up(&app).await;
            }
        }
        /// The zero-config demo: the app against the development provider.
        mod dev_provider {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_home_pages_curl_lines_call_the_api() {
                let app = $crate::TestApp::start_with::<$framework>($crate::TestProvider::builder().dev_mode(true)).await;
                $crate::scenario::the_home_pages_curl_lines_call_the_api(&app).await;
            }
        }
        /// Scenarios whose provider issues 2-second access tokens: refreshes.
        mod short_tokens {
            use super::*;
            $crate::scenarios!(@short $framework;
                expired_tokens_are_refreshed_before_the_handler_runs,
                concurrent_requests_share_one_refresh,
                a_refused_refresh_logs_the_user_out,
                a_refresh_endpoint_that_is_down_keeps_the_session,
                a_refreshed_id_token_for_another_user_logs_out,
            );
        }
    };
    (@short $framework:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = $crate::TestApp::start_with::<$framework>($crate::short_tokens()).await;
                $crate::refresh::$name(&app).await;
            }
        )*
        /// The same with the sessions in Redis.
        mod redis_store {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::TestApp::start_redis_with::<$framework>($crate::short_tokens()).await
                    else {
                        return;
                    };
                    $crate::refresh::$name(&app).await;
                }
            )*
        }
    };
    (@each $framework:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = $crate::TestApp::start::<$framework>().await;
                $crate::scenario::$name(&app).await;
            }
        )*
        /// The same scenarios with the sessions in Redis.
        mod redis_store {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::TestApp::start_redis::<$framework>().await else { return };
                    $crate::scenario::$name(&app).await;
                }
            )*
        }
        /// Two instances of the app behind one URL, sharing one Redis.
        mod two_instances {
            use super::*;
            $crate::multi_instance!($framework;
                a_login_started_on_a_finishes_on_b,
                a_logout_on_b_ends_the_session_on_a,
                a_backchannel_logout_on_a_ends_the_session_on_b,
                a_callback_used_on_a_is_refused_on_b,
                a_logged_out_cookie_stays_out_after_restarts,
                redis_down_is_503_and_back_without_a_restart,
            );
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fifty_requests_on_two_instances_make_one_refresh() {
                let Some(mut pair) = $crate::Pair::start_with::<$framework>($crate::short_tokens()).await else {
                    return;
                };
                $crate::multi::fifty_requests_on_two_instances_make_one_refresh::<$framework>(&mut pair).await;
            }
        }
    };
}

/// The scenarios.
pub mod scenario {
    use super::*;

    fn location(res: &Response) -> String {
        res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    pub(crate) fn set_cookies(res: &Response) -> Vec<String> {
        res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    /// Follows redirects from the login route up to (not including) the app's callback; returns the
    /// callback URL.
    async fn callback_url(app: &TestApp, browser: &Browser, next: &str) -> String {
        let res = browser.get(&app.url(&format!("/auth/oidc/login?next={next}"))).await.expect("login");
        assert_eq!(res.status(), 302, "login redirects to the provider");
        let authorize = location(&res);
        assert!(authorize.starts_with(app.provider.issuer()), "{authorize}");
        let res = browser.get(&authorize).await.expect("authorize");
        assert!(res.status().is_redirection(), "provider redirects back: {}", res.status());
        let callback = location(&res);
        assert!(callback.starts_with(&app.url("/auth/oidc/callback")), "{callback}");
        callback
    }

    /// `GET /me` as a browser navigation without a session: 302 to the login, `next=/me`.
    pub async fn unauthenticated_browser_is_redirected_to_login(app: &TestApp) {
        let res = app.nav_get(&app.browser, "/me?tab=2").await;
        assert_eq!(res.status(), 302);
        assert_eq!(location(&res), "/auth/oidc/login?next=%2Fme%3Ftab%3D2");
    }

    /// `GET /me` as an API client without a session: 401 JSON with `WWW-Authenticate`.
    pub async fn unauthenticated_api_client_gets_401(app: &TestApp) {
        let res = app.api_get(&app.browser, "/me").await;
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key("www-authenticate"));
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: serde_json::Value = res.json().await.expect("JSON body");
        assert_eq!(body["error"], "unauthenticated");
    }

    /// `GET /me/userinfo`: the provider's JSON with the session's token; 502 with a message when
    /// the provider fails; the guard's answers without a session.
    pub async fn userinfo_route_answers_with_the_providers_json(app: &TestApp) {
        assert_eq!(app.api_get(&app.browser, "/me/userinfo").await.status(), 401);
        assert_eq!(app.nav_get(&app.browser, "/me/userinfo").await.status(), 302);
        app.login(&app.browser).await;
        let before = app.provider.userinfo_requests();
        let res = app.api_get(&app.browser, "/me/userinfo").await;
        assert_eq!(res.status(), 200);
        let info: serde_json::Value = res.json().await.unwrap();
        assert_eq!(info["sub"], "alice");
        assert_eq!(info["email"], "alice@example.test");
        assert_eq!(app.provider.userinfo_requests(), before + 1, "asked now, not from the session");
        app.provider.inject(Fault::UserinfoStatus(500));
        let res = app.api_get(&app.browser, "/me/userinfo").await;
        assert_eq!(res.status(), 502);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "provider_error");
        assert!(body["message"].as_str().unwrap().contains("userinfo"), "{body}");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "the session is fine");
    }

    /// The whole flow: login → provider → callback → `/me` with the user's claims.
    pub async fn full_login_reaches_me_with_claims(app: &TestApp) {
        app.provider.set_user(TestUser::new("carol").with_name("Carol C"));
        let res = app.login(&app.browser).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.url().path(), "/me");
        let claims: serde_json::Value = res.json().await.expect("claims JSON");
        assert_eq!(claims["sub"], "carol");
        assert_eq!(claims["name"], "Carol C");
        assert_eq!(claims["email"], "carol@example.test");
        assert!(claims.get("nonce").is_none(), "protocol claims are not user claims");
        let api = app.api_get(&app.browser, "/me").await;
        assert_eq!(api.status(), 200);
    }

    /// `/` is public and shows who is logged in, their claims, a logout button and what to try.
    pub async fn home_page_shows_the_user(app: &TestApp) {
        let before = app.nav_get(&app.browser, "/").await;
        assert_eq!(before.status(), 200);
        let before = before.text().await.unwrap();
        assert!(before.contains("Not logged in") && before.contains("id=\"login\""), "{before}");
        app.provider.set_user(TestUser::new("dana").with_name("Dana <b>").with_email("dana@example.test"));
        app.login(&app.browser).await;
        let after = app.nav_get(&app.browser, "/").await.text().await.unwrap();
        assert!(after.contains("Logged in as <b id=\"user\">Dana &lt;b&gt;</b>"), "escaped name: {after}");
        assert!(after.contains("<code id=\"sub\">dana</code>"), "{after}");
        assert!(after.contains("&quot;email&quot;: &quot;dana@example.test&quot;"), "the claims: {after}");
        assert!(after.contains("action=\"/auth/logout\""), "a logout form: {after}");
        for link in ["href=\"/me\"", "href=\"/me/userinfo\"", "/api/whoami"] {
            assert!(after.contains(link), "{link}: {after}");
        }
        assert!(after.contains(&format!("curl -H \"Authorization: Bearer $ACCESS_TOKEN\" {}/api/whoami", app.base)));
    }

    /// What the home page tells a new user to run in a terminal works: the development provider's
    /// token URL answers an access token for the app's API audience, and `/api/whoami` and
    /// `/api/admin` accept it.
    pub async fn the_home_pages_curl_lines_call_the_api(app: &TestApp) {
        let page = app.nav_get(&app.browser, "/").await.text().await.unwrap();
        let start = page.find("ACCESS_TOKEN=$(curl -s '").expect("the token line") + "ACCESS_TOKEN=$(curl -s '".len();
        let url = page[start..].split('\'').next().unwrap().replace("&amp;", "&");
        assert!(url.starts_with(&format!("{}/dev/access-token?", app.provider.issuer())), "{url}");
        let token = reqwest::get(&url).await.unwrap();
        assert_eq!(token.status(), 200, "{url}");
        let token = token.text().await.unwrap();
        for path in ["/api/whoami", "/api/admin"] {
            let res = api(app, path, Some(&format!("Bearer {token}"))).await;
            assert_eq!(res.status(), 200, "{path}");
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["sub"], app.provider.user().sub, "{path}: {body}");
        }
        // Without the development provider's mode the URL does not exist.
        let plain = TestProvider::start().await.unwrap();
        let res = reqwest::get(format!("{}/dev/access-token?audience=x", plain.issuer())).await.unwrap();
        assert_eq!(res.status(), 404);
    }

    /// The session cookie is `HttpOnly`, `SameSite=Lax`, `Path=/`, and its value reveals no claim.
    pub async fn session_cookie_has_safe_flags(app: &TestApp) {
        let callback = callback_url(app, &app.browser, "/me").await;
        let res = app.browser.get(&callback).await.unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let cookies = set_cookies(&res);
        let session = cookies.iter().find(|c| c.starts_with("auth_session=")).expect("session cookie set");
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(session.contains(flag), "{flag} in {session}");
        }
        assert!(!session.contains("alice") && !session.contains("example.test"), "no claim readable: {session}");
        assert!(session.len() < 4096);
        assert!(
            cookies.iter().any(|c| c.starts_with("auth_login.") && c.contains("Max-Age=0")),
            "the pending login is cleared: {cookies:?}"
        );
    }

    /// Logout: a GET cannot log anyone out; a POST ends the session.
    pub async fn logout_requires_post_and_ends_the_session(app: &TestApp) {
        app.login(&app.browser).await;
        let get = app.browser.get(&app.url("/auth/logout")).await.unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "still logged in after a GET");
        let post =
            app.browser.client().post(app.url("/auth/logout")).header("accept", "text/html").send().await.unwrap();
        assert_eq!(post.status(), 303);
        assert!(location(&post).starts_with(&format!("{}/end_session?", app.provider.issuer())), "{}", location(&post));
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
    }

    /// Logout CSRF: another site's auto-submitting form (`Sec-Fetch-Site: cross-site`, a foreign
    /// `Origin`) gets 403 and changes nothing; the app's own form logs out.
    pub async fn cross_site_logout_is_refused(app: &TestApp) {
        app.login(&app.browser).await;
        for (name, value) in [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")] {
            let post = app
                .browser
                .client()
                .post(app.url("/auth/logout"))
                .header("accept", "text/html")
                .header(name, value)
                .send()
                .await
                .unwrap();
            assert_eq!(post.status(), 403, "{name}: {value}");
            assert!(set_cookies(&post).is_empty(), "{name}: {value}: no cookie is cleared");
            assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "{name}: still logged in");
        }
        let own = app
            .browser
            .client()
            .post(app.url("/auth/logout"))
            .header("accept", "text/html")
            .header("origin", app.base.as_str())
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), 303);
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
    }

    /// Paths a router may match only after decoding or collapsing them are a plain 404.
    pub async fn non_canonical_auth_paths_are_404(app: &TestApp) {
        for path in ["/%61uth/oidc/login", "//auth/oidc/login"] {
            let res = app.browser.get(&app.url(path)).await.unwrap();
            assert_eq!(res.status(), 404, "{path}");
            assert!(res.headers().get("set-cookie").is_none(), "{path}: no login was started");
        }
    }

    /// A `state` with CR LF (or `;`) never reaches a header: a clean 400 on every adapter.
    pub async fn control_characters_in_state_are_400(app: &TestApp) {
        for query in
            ["code=x&state=aaaaaaaaaaaaaaaaaaaa%0d%0aX-Evil:%201", "code=x&state=aaaaaaaaaaaaaaaaaaaa;Domain=evil"]
        {
            let res = app.browser.get(&app.url(&format!("/auth/oidc/callback?{query}"))).await.unwrap();
            assert_eq!(res.status(), 400, "{query}");
            assert!(res.headers().get("x-evil").is_none());
            assert!(res.headers().get("set-cookie").is_none(), "{query}");
        }
    }

    /// 405 answers carry the right `Allow`.
    pub async fn method_not_allowed_says_what_is(app: &TestApp) {
        let client = app.browser.client();
        let cases = [
            (client.delete(app.url("/auth/oidc/login")), "GET, HEAD"),
            (client.put(app.url("/auth/oidc/callback")), "GET, HEAD, POST"),
            (client.get(app.url("/auth/logout")), "POST"),
        ];
        for (req, allow) in cases {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 405, "{allow}");
            assert_eq!(res.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow));
        }
    }

    async fn api(app: &TestApp, path: &str, authorization: Option<&str>) -> Response {
        let mut req = Browser::new().client().get(app.url(path)).header("accept", "application/json");
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        req.send().await.expect("request")
    }

    fn www_authenticate(res: &Response) -> String {
        res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock").as_secs()
    }

    /// A JWT access token (RFC 9068) of the provider, for this app's audience: 200 JSON.
    pub async fn bearer_jwt_access_token_is_accepted(app: &TestApp) {
        let token = app.provider.mint_jwt_access_token(&app.base, "read write");
        let res = api(app, "/api/whoami", Some(&format!("Bearer {token}"))).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["sub"], app.provider.user().sub.as_str());
        assert_eq!(body["scope"], "read write");
        assert_eq!(body["client_id"], app.provider.client_id());
    }

    /// A DPoP-bound JWT access token (`cnf.jkt`): accepted as `Authorization: DPoP` with a fresh
    /// proof by its key, through the adapter's bearer extractor; refused as `Bearer`, without a
    /// proof, with a replayed proof, or with another key's.
    pub async fn dpop_bound_tokens_need_their_proof_at_the_api(app: &TestApp) {
        use auth_testkit::TestDpopKey;
        let key = TestDpopKey::generate();
        let token = app.provider.mint_dpop_jwt_access_token(&app.base, "read", key.jkt());
        let url = app.url("/api/whoami");
        let call = |auth: String, proof: Option<String>| {
            let mut req =
                app.browser.client().get(&url).header("accept", "application/json").header("authorization", auth);
            if let Some(proof) = proof {
                req = req.header("dpop", proof);
            }
            req.send()
        };
        let proof = key.proof("GET", &url, Some(&token), None);
        let res = call(format!("DPoP {token}"), Some(proof.clone())).await.unwrap();
        assert_eq!(res.status(), 200, "{:?}", res.headers().get_all("www-authenticate"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["sub"], app.provider.user().sub.as_str());
        let refused = [
            ("as Bearer", call(format!("Bearer {token}"), None).await.unwrap()),
            ("no proof", call(format!("DPoP {token}"), None).await.unwrap()),
            ("a replayed proof", call(format!("DPoP {token}"), Some(proof)).await.unwrap()),
            (
                "another key's proof",
                call(format!("DPoP {token}"), Some(TestDpopKey::generate().proof("GET", &url, Some(&token), None)))
                    .await
                    .unwrap(),
            ),
            (
                "a proof for another method",
                call(format!("DPoP {token}"), Some(key.proof("POST", &url, Some(&token), None))).await.unwrap(),
            ),
        ];
        for (what, res) in refused {
            assert_eq!(res.status(), 401, "{what}");
            let challenges: Vec<&str> =
                res.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
            assert!(challenges.iter().any(|c| c.starts_with("DPoP")), "{what}: {challenges:?}");
        }
    }

    /// `Principal` (`GET /api/me`): the bearer token when the request has an `Authorization`
    /// header (even with a session cookie), else the session; neither: the session guard's
    /// answers.
    pub async fn principal_is_the_bearer_token_or_the_session(app: &TestApp) {
        assert_eq!(api(app, "/api/me", None).await.status(), 401, "neither");
        assert_eq!(app.nav_get(&app.browser, "/api/me").await.status(), 302, "a browser goes to the login");
        let token = app.provider.mint_jwt_access_token(&app.base, "read");
        let res = api(app, "/api/me", Some(&format!("Bearer {token}"))).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!((body["via"].as_str(), body["sub"].as_str()), (Some("bearer"), Some("alice")));
        app.login(&app.browser).await;
        let body: serde_json::Value = app.api_get(&app.browser, "/api/me").await.json().await.unwrap();
        assert_eq!((body["via"].as_str(), body["sub"].as_str()), (Some("session"), Some("alice")));
        // A bad token is refused, session or not: the header says what the client meant.
        let res = app
            .browser
            .client()
            .get(app.url("/api/me"))
            .header("accept", "application/json")
            .header("authorization", "Bearer not.a.token")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(www_authenticate(&res).contains("invalid_token"), "{}", www_authenticate(&res));
    }

    /// No token: 401 with a bare challenge; a malformed header: 400 `invalid_request`; a token in
    /// the query string is not looked at.
    pub async fn bearer_header_problems_get_rfc6750_answers(app: &TestApp) {
        let res = api(app, "/api/whoami", None).await;
        assert_eq!(res.status(), 401);
        assert_eq!(www_authenticate(&res), format!("Bearer realm=\"{}\"", app.base));
        let res = api(app, "/api/whoami", Some("Basic dXNlcjpwYXNz")).await;
        assert_eq!(res.status(), 401, "another scheme is no bearer token");
        let res = api(app, "/api/whoami", Some("Bearer two words")).await;
        assert_eq!(res.status(), 400);
        assert!(www_authenticate(&res).contains("error=\"invalid_request\""), "{}", www_authenticate(&res));
        let token = app.provider.mint_jwt_access_token(&app.base, "read");
        let res = api(app, &format!("/api/whoami?access_token={token}"), None).await;
        assert_eq!(res.status(), 401, "never from the query string");
    }

    /// Expired, another audience or issuer, `alg: none`, HS256, untyped, an ID token: 401
    /// `invalid_token`, the reason never in the header.
    pub async fn bad_bearer_tokens_are_invalid_token(app: &TestApp) {
        let op = &app.provider;
        let claims = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({
                "iss": op.issuer(), "sub": "alice", "aud": app.base, "client_id": op.client_id(),
                "scope": "read", "iat": now(), "exp": now() + 300, "jti": format!("j{}", now()),
            });
            for (k, v) in extra.as_object().unwrap() {
                claims[k] = v.clone();
            }
            claims
        };
        let b64 = |v: &serde_json::Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                typ: Some("at+jwt".into()),
                ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
            },
            &claims(serde_json::json!({})),
            &jsonwebtoken::EncodingKey::from_secret(op.client_secret().as_bytes()),
        )
        .unwrap();
        let cases = [
            (
                "expired",
                op.sign_jwt_with_type(&claims(serde_json::json!({"iat": now() - 7200, "exp": now() - 3600})), "at+jwt"),
            ),
            (
                "another audience",
                op.sign_jwt_with_type(&claims(serde_json::json!({"aud": "https://other.example"})), "at+jwt"),
            ),
            (
                "another issuer",
                op.sign_jwt_with_type(&claims(serde_json::json!({"iss": "https://evil.example"})), "at+jwt"),
            ),
            ("typ JWT", op.sign_jwt_with_type(&claims(serde_json::json!({})), "JWT")),
            ("an ID token", op.sign_jwt(&claims(serde_json::json!({"aud": op.client_id(), "nonce": "n"})))),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(&serde_json::json!({"alg": "none", "typ": "at+jwt"})),
                    b64(&claims(serde_json::json!({})))
                ),
            ),
            ("HS256 with the client secret", hs256),
        ];
        for (what, token) in cases {
            let res = api(app, "/api/whoami", Some(&format!("Bearer {token}"))).await;
            assert_eq!(res.status(), 401, "{what}");
            let challenge = www_authenticate(&res);
            assert_eq!(challenge, format!("Bearer realm=\"{}\", error=\"invalid_token\"", app.base), "{what}");
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"], "invalid_token", "{what}");
        }
    }

    /// `/api/admin` needs the scope `admin`: 403 `insufficient_scope` naming it, else 200.
    pub async fn bearer_scope_is_required(app: &TestApp) {
        let reader = app.provider.mint_jwt_access_token(&app.base, "read");
        let res = api(app, "/api/admin", Some(&format!("Bearer {reader}"))).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            www_authenticate(&res),
            format!("Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"admin\"", app.base)
        );
        let admin = app.provider.mint_jwt_access_token(&app.base, "read admin");
        assert_eq!(api(app, "/api/admin", Some(&format!("Bearer {admin}"))).await.status(), 200);
    }

    /// Opaque tokens go to introspection, once per token while it is valid; inactive ones are
    /// 401; introspection down is 503, never 200 and never 401.
    pub async fn opaque_tokens_are_introspected(app: &TestApp) {
        let token = app.provider.mint_access_token_for(&app.base, "read");
        let auth = format!("Bearer {token}");
        let res = api(app, "/api/whoami", Some(&auth)).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["scope"], "read");
        let asked = app.provider.introspect_requests();
        assert_eq!(api(app, "/api/whoami", Some(&auth)).await.status(), 200);
        assert_eq!(app.provider.introspect_requests(), asked, "a known token is not introspected again");
        let other = app.provider.mint_access_token_for("https://other.example", "read");
        assert_eq!(api(app, "/api/whoami", Some(&format!("Bearer {other}"))).await.status(), 401, "another audience");
        let res = api(app, "/api/whoami", Some("Bearer no-such-token")).await;
        assert_eq!(res.status(), 401, "inactive");
        assert!(www_authenticate(&res).contains("invalid_token"));
        app.provider.inject(Fault::IntrospectionStatus(500));
        let fresh = app.provider.mint_access_token_for(&app.base, "read");
        let res = api(app, "/api/whoami", Some(&format!("Bearer {fresh}"))).await;
        assert_eq!(res.status(), 503, "the provider could not say");
        app.provider.clear_faults();
        assert_eq!(api(app, "/api/whoami", Some(&format!("Bearer {fresh}"))).await.status(), 200);
    }

    /// A browser with a stale session cookie logs in: the new session cookie is not undone by
    /// the clearing of the stale one.
    pub async fn a_login_over_a_stale_cookie_keeps_the_new_session(app: &TestApp) {
        let callback = callback_url(app, &app.browser, "/me").await;
        // The stale cookie is there when the callback arrives (another tab, an old session).
        app.browser.set_cookie(&app.base, "auth_session=stale-or-tampered-value").unwrap();
        let res = app.browser.get(&callback).await.unwrap();
        assert_eq!(res.status(), 303);
        let session_cookies: Vec<String> =
            set_cookies(&res).into_iter().filter(|c| c.starts_with("auth_session=")).collect();
        assert_eq!(session_cookies.len(), 1, "one session cookie, the new one: {session_cookies:?}");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "the new session stays");
    }

    /// RP-initiated logout: the provider's end-session endpoint with `id_token_hint` and
    /// `post_logout_redirect_uri`, then back to the app, whose `state` check sends the browser home.
    pub async fn logout_at_the_provider_and_back(app: &TestApp) {
        app.login(&app.browser).await;
        let post =
            app.browser.client().post(app.url("/auth/logout")).header("accept", "text/html").send().await.unwrap();
        let end_session = location(&post);
        assert!(end_session.contains("id_token_hint="), "{end_session}");
        let (home, visited) = app.browser.get_following(&end_session).await.unwrap();
        assert_eq!(home.status(), 200);
        assert_eq!(home.url().as_str(), app.url("/"));
        assert!(visited.iter().any(|u| u.path() == "/auth/logout/callback"), "{visited:?}");
        assert!(home.text().await.unwrap().contains("Not logged in"));
        assert_eq!(app.provider.end_session_requests(), 1);
        let forged = app.browser.get(&app.url("/auth/logout/callback?state=forged")).await.unwrap();
        assert_eq!(forged.status(), 400, "a logout callback without a logout in progress is refused");
    }

    /// Back-channel logout by `sid`: 200 with `no-store`, and the session is over on the next
    /// request; a replayed token and an invalid one are 400; GET is 405.
    pub async fn backchannel_logout_ends_the_session(app: &TestApp) {
        app.login(&app.browser).await;
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200);
        let sid = app.provider.last_sid().expect("the ID token had a sid");
        let token = app.provider.logout_token(None, Some(&sid));
        let url = app.url("/auth/oidc/backchannel-logout");
        let http = Browser::new();
        let res = http.post_form(&url, &[("logout_token", &token), ("extra", "ignored")]).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401, "the session ended");
        let replay = http.post_form(&url, &[("logout_token", &token)]).await.unwrap();
        assert_eq!(replay.status(), 400, "a replayed jti is refused");
        let bad = http.post_form(&url, &[("logout_token", "not.a.jwt")]).await.unwrap();
        assert_eq!(bad.status(), 400);
        assert_eq!(bad.headers()["cache-control"], "no-store");
        assert_eq!(http.get(&url).await.unwrap().status(), 405);
    }

    /// Every invalid logout token is a 400 with `no-store`, and ends nothing.
    pub async fn invalid_logout_tokens_are_refused(app: &TestApp) {
        app.login(&app.browser).await;
        let sid = app.provider.last_sid().expect("the ID token had a sid");
        let url = app.url("/auth/oidc/backchannel-logout");
        for fault in auth_testkit::LogoutTokenFault::ALL {
            let token = app.provider.logout_token_with(Some("alice"), Some(&sid), Some(*fault));
            let (status, _) = app.provider.send_backchannel_logout(&url, &token).await.unwrap();
            assert_eq!(status, 400, "{fault:?}");
        }
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "no invalid token ended the session");
        let (status, _) =
            app.provider.send_backchannel_logout(&url, &app.provider.logout_token(None, Some(&sid))).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
    }

    /// Back-channel logout by `sub` ends every session of the user, in every browser.
    pub async fn backchannel_logout_by_sub_ends_all_sessions(app: &TestApp) {
        let other = Browser::new();
        app.login(&app.browser).await;
        app.login(&other).await;
        let token = app.provider.logout_token(Some("alice"), None);
        let res = Browser::new()
            .post_form(&app.url("/auth/oidc/backchannel-logout"), &[("logout_token", &token)])
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
        assert_eq!(app.api_get(&other, "/me").await.status(), 401);
    }

    /// Two tabs start a login each before either finishes; both finish.
    pub async fn two_tabs_log_in_at_once(app: &TestApp) {
        let first = callback_url(app, &app.browser, "/me").await;
        let second = callback_url(app, &app.browser, "/").await;
        let res = app.browser.get(&second).await.unwrap();
        assert_eq!(res.status(), 303, "second tab finishes");
        assert_eq!(location(&res), "/");
        let res = app.browser.get(&first).await.unwrap();
        assert_eq!(res.status(), 303, "first tab finishes too");
        assert_eq!(location(&res), "/me");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200);
    }

    /// A callback URL replayed, in the same browser or another, logs nobody in.
    pub async fn replayed_callback_logs_nobody_in(app: &TestApp) {
        let callback = callback_url(app, &app.browser, "/me").await;
        let cookie_before = app.browser.cookie_header(&app.base).unwrap_or_default();
        assert_eq!(app.browser.get(&callback).await.unwrap().status(), 303);
        let session_before = app.browser.cookie_header(&app.base).unwrap_or_default();
        // The same browser, logged in (the back button after a login): sent on to the app, but
        // nothing is exchanged again and no new session starts.
        let again = app.browser.get(&callback).await.unwrap();
        assert_eq!(again.status(), 303, "same browser replay, with a session: back to the app");
        assert_eq!(location(&again), "/");
        assert!(set_cookies(&again).iter().all(|c| !c.starts_with("auth_session=")), "no new session from a replay");
        assert_eq!(app.browser.cookie_header(&app.base).unwrap_or_default(), session_before);
        assert_eq!(app.provider.token_requests(), 1, "the code was exchanged once");
        let other = Browser::new();
        let res = other.get(&callback).await.unwrap();
        assert_eq!(res.status(), 400, "other browser replay");
        assert_eq!(app.api_get(&other, "/me").await.status(), 401);
        // Even with a copy of the first browser's pending-login cookie, the state is spent.
        let thief = Browser::new();
        for pair in cookie_before.split("; ") {
            thief.set_cookie(&app.base, pair).unwrap();
        }
        assert_eq!(thief.get(&callback).await.unwrap().status(), 400, "stolen cookie replay");
        assert_eq!(app.api_get(&thief, "/me").await.status(), 401);
    }

    /// `next=` pointing elsewhere is replaced by `/`.
    pub async fn open_next_is_refused(app: &TestApp) {
        for evil in ["//evil.example/x", "https%3A%2F%2Fevil.example", "/%5Cevil.example", "%2F%2Fevil.example"] {
            let callback = callback_url(app, &app.browser, evil).await;
            let res = app.browser.get(&callback).await.unwrap();
            assert_eq!(res.status(), 303);
            assert_eq!(location(&res), "/", "next={evil}");
        }
    }

    /// The provider answers `error=access_denied`: a clean 403 page, no session.
    pub async fn provider_error_is_a_clean_4xx(app: &TestApp) {
        app.provider.inject(Fault::DenyConsent);
        let callback = callback_url(app, &app.browser, "/me").await;
        assert!(callback.contains("error=access_denied"));
        let res = app.browser.get(&callback).await.unwrap();
        assert_eq!(res.status(), 403);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = res.text().await.unwrap();
        assert!(body.contains("cancelled or refused"), "{body}");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
    }

    /// A tampered session cookie is refused (401) and cleared.
    pub async fn tampered_cookie_is_refused_and_cleared(app: &TestApp) {
        app.login(&app.browser).await;
        let header = app.browser.cookie_header(&app.base).expect("cookies");
        let value =
            header.split("; ").find_map(|c| c.strip_prefix("auth_session=")).expect("session cookie").to_owned();
        let mut bytes = value.into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        let other = Browser::new();
        other.set_cookie(&app.base, &format!("auth_session={forged}; Path=/")).unwrap();
        let res = app.api_get(&other, "/me").await;
        assert_eq!(res.status(), 401);
        assert!(set_cookies(&res).iter().any(|c| c.starts_with("auth_session=;") && c.contains("Max-Age=0")));
    }

    /// An ID token with a bad signature ends in a 502 page and no session.
    pub async fn bad_id_token_is_refused_without_a_session(app: &TestApp) {
        app.provider.inject(Fault::IdTokenBadSignature);
        let callback = callback_url(app, &app.browser, "/me").await;
        let res = app.browser.get(&callback).await.unwrap();
        assert_eq!(res.status(), 502);
        assert!(set_cookies(&res).iter().all(|c| !c.starts_with("auth_session=") || c.contains("Max-Age=0")));
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
    }

    /// `/admin` needs `groups` ∋ `admin`: 403 for others, 200 for admins.
    pub async fn policy_guard_answers_403(app: &TestApp) {
        app.login(&app.browser).await;
        let res = app.api_get(&app.browser, "/admin").await;
        assert_eq!(res.status(), 403);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
        // A single-valued string claim is not a space-separated list: "not admin" is no admin.
        app.provider.set_user(TestUser::new("mallory").with_claim("groups", serde_json::json!("not admin")));
        let mallory = Browser::new();
        app.login(&mallory).await;
        assert_eq!(app.api_get(&mallory, "/admin").await.status(), 403, "a string claim matches only when equal");
        app.provider.set_user(TestUser::new("root").with_claim("groups", serde_json::json!(["admin"])));
        let admin = Browser::new();
        app.login(&admin).await;
        assert_eq!(app.api_get(&admin, "/admin").await.status(), 200);
        let anonymous = app.nav_get(&Browser::new(), "/admin").await;
        assert_eq!(anonymous.status(), 302);
    }

    /// A login route for a provider that is not registered is a 404, not a 500.
    pub async fn unknown_provider_is_404(app: &TestApp) {
        assert_eq!(app.browser.get(&app.url("/auth/nope/login")).await.unwrap().status(), 404);
        assert_eq!(
            app.browser.get(&app.url("/auth/nope/callback?state=aaaaaaaaaaaaaaaaaaaa")).await.unwrap().status(),
            400
        );
    }

    /// A callback without `state` (or with garbage) is a 400.
    pub async fn callback_without_state_is_400(app: &TestApp) {
        assert_eq!(app.browser.get(&app.url("/auth/oidc/callback?code=x")).await.unwrap().status(), 400);
        let res = app
            .browser
            .get(&app.url("/auth/oidc/callback?code=x&state=%3Cscript%3E%3C%2Fscript%3Exxxxxxxxxx"))
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert!(!res.text().await.unwrap().contains("<script>"));
    }

    /// Logging in again gives a new session (no fixation): the old cookie value no longer works.
    pub async fn new_session_id_at_every_login(app: &TestApp) {
        app.login(&app.browser).await;
        let first = app.browser.cookie_header(&app.base).unwrap();
        app.login(&app.browser).await;
        let second = app.browser.cookie_header(&app.base).unwrap();
        assert_ne!(first, second);
        let old = Browser::new();
        for pair in first.split("; ").filter(|c| c.starts_with("auth_session=")) {
            old.set_cookie(&app.base, pair).unwrap();
        }
        assert_eq!(app.api_get(&old, "/me").await.status(), 401, "the replaced session is over");
    }

    /// The response is a clean error page for a browser: `status` in `allowed`, HTML, and no
    /// session cookie set; the browser has no session afterwards.
    async fn a_clean_failure(app: &TestApp, browser: &Browser, res: Response, allowed: &[u16], what: &str) {
        let status = res.status().as_u16();
        assert!(allowed.contains(&status), "{what}: {status}, expected one of {allowed:?}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{what}: an HTML page");
        assert!(
            set_cookies(&res).iter().all(|c| !c.starts_with("auth_session=") || c.contains("Max-Age=0")),
            "{what}: no session cookie: {:?}",
            set_cookies(&res)
        );
        assert_eq!(app.api_get(browser, "/me").await.status(), 401, "{what}: no session");
    }

    /// The app started while its provider's discovery answered 503 (started by
    /// [`TestApp::start_with_faults`]): it serves, its logins answer a clean 503 with
    /// `Retry-After`, and they work once the provider is up, without a restart.
    pub async fn logins_answer_503_until_the_provider_is_up(app: &TestApp) {
        assert_eq!(app.nav_get(&app.browser, "/").await.status(), 200, "the app started and serves");
        let res = app.browser.get(&app.url("/auth/oidc/login?next=/me")).await.unwrap();
        assert_eq!(res.status(), 503, "a login while the provider is down");
        assert!(res.headers().contains_key("retry-after"));
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(set_cookies(&res).iter().all(|c| !c.starts_with("auth_login.")), "no login was started");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401, "a guard still answers");
        app.provider.clear_faults();
        // Discovery is retried in the background (after 1 s, then 2 s, …).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let res = app.browser.get(&app.url("/auth/oidc/login?next=/me")).await.unwrap();
            match res.status().as_u16() {
                302 => break,
                503 => {
                    assert!(std::time::Instant::now() < deadline, "logins work within 10 s of the provider's return");
                }
                other => panic!("a login while discovery is retried: {other}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(app.login(&app.browser).await.status(), 200);
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200);
    }

    /// The token endpoint answers 503 after `/login` redirected: the callback is a clean 5xx
    /// page without a session, and a new login once it is up logs in.
    pub async fn a_token_endpoint_down_during_a_login_fails_cleanly_and_a_retry_logs_in(app: &TestApp) {
        let callback = callback_url(app, &app.browser, "/me").await;
        app.provider.inject(Fault::TokenEndpointStatus(503));
        let res = app.browser.get(&callback).await.unwrap();
        a_clean_failure(app, &app.browser, res, &[502, 503], "token endpoint 503").await;
        app.provider.clear_faults();
        let res = app.login(&app.browser).await;
        assert_eq!((res.status().as_u16(), res.url().path()), (200, "/me"), "a retry logs in");
    }

    /// A token endpoint that never answers: the callback gives up after the outbound timeout
    /// (504), and meanwhile the app answers other routes and other sessions at once.
    pub async fn a_hanging_token_endpoint_times_out_while_other_routes_answer(app: &TestApp) {
        use std::time::{Duration, Instant};
        let timeout = auth_core::HttpConfig::default().timeout;
        let other = Browser::new();
        assert_eq!(app.login(&other).await.status(), 200);
        let callback = callback_url(app, &app.browser, "/me").await;
        app.provider.inject(Fault::TokenEndpointHang);
        let started = Instant::now();
        let hung = app.browser.get(&callback);
        let probes = async {
            // By now the callback waits for the token endpoint.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for path in ["/", "/me", "/", "/me"] {
                let asked = Instant::now();
                assert_eq!(app.api_get(&other, path).await.status(), 200, "{path} during the hang");
                assert!(asked.elapsed() < Duration::from_secs(1), "{path} answered in {:?}", asked.elapsed());
            }
        };
        let (res, ()) = tokio::join!(hung, probes);
        let elapsed = started.elapsed();
        assert!(elapsed + Duration::from_millis(500) >= timeout, "it waited for the timeout ({elapsed:?})");
        assert!(elapsed < timeout + Duration::from_secs(5), "the timeout holds ({elapsed:?})");
        a_clean_failure(app, &app.browser, res.unwrap(), &[504], "a hanging token endpoint").await;
        app.provider.clear_faults();
        assert_eq!(app.login(&app.browser).await.status(), 200, "a retry logs in");
    }

    /// The JWKS endpoint down: a login verifies with the cached keys; after a key rotation it
    /// cannot (a clean 5xx page, no session), and logins work again once the JWKS is back.
    pub async fn stale_keys_serve_while_the_jwks_is_down(app: &TestApp) {
        assert_eq!(app.login(&app.browser).await.status(), 200);
        let fetched = app.provider.jwks_requests();
        app.provider.inject(Fault::JwksStatus(503));
        let second = Browser::new();
        assert_eq!(app.login(&second).await.status(), 200, "the cached keys verify");
        app.provider.rotate_keys();
        let third = Browser::new();
        let callback = callback_url(app, &third, "/me").await;
        let res = third.get(&callback).await.unwrap();
        a_clean_failure(app, &third, res, &[502, 503, 504], "a new key while the JWKS is down").await;
        assert!(app.provider.jwks_requests() > fetched, "the unknown kid tried a refetch");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "existing sessions are unaffected");
        app.provider.clear_faults();
        assert_eq!(app.login(&third).await.status(), 200, "the new key once the JWKS is back");
    }

    /// The provider rotates its keys twice in a row: the next login refetches the JWKS once and
    /// succeeds; an ID token or a bearer token signed with the oldest key is refused.
    pub async fn keys_rotated_twice_in_a_row_still_log_in_and_the_oldest_key_is_refused(app: &TestApp) {
        assert_eq!(app.login(&app.browser).await.status(), 200);
        let old_bearer = app.provider.mint_jwt_access_token(&app.base, "read");
        let fetched = app.provider.jwks_requests();
        app.provider.rotate_keys();
        app.provider.rotate_keys();
        let second = Browser::new();
        assert_eq!(app.login(&second).await.status(), 200, "a login after two rotations");
        assert_eq!(app.provider.jwks_requests(), fetched + 1, "one refetch for the new kid");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "sessions outlive the keys");
        app.provider.inject(Fault::IdTokenRetiredKey);
        let third = Browser::new();
        let callback = callback_url(app, &third, "/me").await;
        let res = third.get(&callback).await.unwrap();
        a_clean_failure(app, &third, res, &[502], "an ID token signed with the oldest key").await;
        let res = api(app, "/api/whoami", Some(&format!("Bearer {old_bearer}"))).await;
        assert_eq!(res.status(), 401, "a bearer token signed with the oldest key");
        assert!(www_authenticate(&res).contains("invalid_token"), "{}", www_authenticate(&res));
    }

    /// [`AuthBuilder::clock_leeway`](auth_core::AuthBuilder::clock_leeway)'s default, seconds.
    const LEEWAY: i64 = 60;
    /// [`TestProviderBuilder::token_ttl`]'s default (the ID token's lifetime), seconds.
    const TOKEN_TTL: i64 = 3600;

    /// The provider's clock is off by less than the leeway (`iat` 30 s ahead, or `exp` 30 s
    /// past): logins work.
    pub async fn clock_skew_within_the_leeway_logs_in(app: &TestApp) {
        for skew in [LEEWAY / 2, -LEEWAY / 2, -(TOKEN_TTL + LEEWAY / 2)] {
            app.provider.clear_faults();
            app.provider.inject(Fault::ClockSkew(skew));
            let browser = Browser::new();
            let res = app.login(&browser).await;
            assert_eq!((res.status().as_u16(), res.url().path()), (200, "/me"), "skew {skew} s");
        }
    }

    /// The provider's clock is off by more than the leeway (`iat` in the future, or `exp` in the
    /// past): a clean 502 page, no session.
    pub async fn clock_skew_beyond_the_leeway_is_refused_without_a_session(app: &TestApp) {
        for skew in [2 * LEEWAY, -(TOKEN_TTL + 2 * LEEWAY)] {
            app.provider.clear_faults();
            app.provider.inject(Fault::ClockSkew(skew));
            let browser = Browser::new();
            let callback = callback_url(app, &browser, "/me").await;
            let res = browser.get(&callback).await.unwrap();
            a_clean_failure(app, &browser, res, &[502], &format!("skew {skew} s")).await;
        }
    }
}

/// Client authentication with assertions (RFC 7523) and pushed authorization requests (RFC 9126).
pub mod client_auth {
    use super::*;
    use crate::scenario::set_cookies;
    use auth_core::ClientKey;
    use auth_testkit::{TestClient, TestClientKey};

    /// An app whose client `pk` authenticates with `private_key_jwt` (an EC P-256 key, PEM),
    /// against a provider showing `faults`; the key, to check against.
    pub async fn private_key_jwt_app<F: Framework>(faults: &[Fault]) -> (TestApp, TestClientKey) {
        let key = TestClientKey::ec_p256();
        let client = TestClient::private_key_jwt("pk", key.public_jwk());
        let pem = key.private_pem();
        let app = TestApp::start_configured::<F>(TestProvider::builder().client(client), faults, |op| {
            Provider::oidc("oidc", op.issuer(), "pk").with_client_key(ClientKey::from_pem(&pem).expect("the PEM key"))
        })
        .await;
        (app, key)
    }

    /// Two browsers log in; each token request carried its own assertion, signed with the
    /// registered key (the provider refuses a replayed `jti` and an unknown key).
    pub async fn private_key_jwt_client_logs_in_with_fresh_assertions(app: &TestApp, key: &TestClientKey) {
        assert_eq!(ClientKey::from_pem(&key.private_pem()).unwrap().kid(), key.kid());
        let res = app.login(&app.browser).await;
        assert_eq!((res.status().as_u16(), res.url().path()), (200, "/me"));
        let other = Browser::new();
        assert_eq!(app.login(&other).await.status(), 200, "a second login, a new assertion");
        assert_eq!(app.provider.client_assertions_accepted(), 2);
        assert_eq!(app.api_get(&other, "/me").await.status(), 200);
    }

    /// The provider's clock is 5 minutes ahead, so the app's one-minute assertion has expired:
    /// the callback is a clean 500 page (the app's credentials, not the user's fault), no session.
    pub async fn an_expired_client_assertion_is_refused_without_a_session(app: &TestApp) {
        let (res, _) = app.browser.get_following(&app.url("/auth/oidc/login?next=/me")).await.unwrap();
        assert_eq!(res.status(), 500, "{}", res.url());
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let page = res.text().await.unwrap();
        assert!(!page.contains("eyJ"), "no token or assertion on the page");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401, "no session");
        assert_eq!(app.provider.client_assertions_accepted(), 0);
    }

    /// The provider takes only its token endpoint as the assertions' `aud`: the login fails on a
    /// clean 500 page that names the setting to check, with no session; the provider saw an
    /// assertion and refused it.
    pub async fn an_assertion_audience_the_provider_refuses_names_the_setting(app: &TestApp) {
        let (res, _) = app.browser.get_following(&app.url("/auth/oidc/login?next=/me")).await.unwrap();
        assert_eq!(res.status(), 500, "{}", res.url());
        let page = res.text().await.unwrap();
        assert!(page.contains("assertion audience"), "the page says what to check: {page}");
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401, "no session");
        assert_eq!(app.provider.client_assertions_accepted(), 0);
    }

    /// The browser carries only `client_id` and `request_uri`; the pushed request had the state,
    /// nonce and PKCE challenge; the login completes.
    pub async fn a_provider_requiring_par_sees_only_pushed_requests(app: &TestApp) {
        let res = app.browser.get(&app.url("/auth/oidc/login?next=/me")).await.unwrap();
        assert_eq!(res.status(), 302);
        let authorize = auth_core::url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        let names: Vec<String> = authorize.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(names, ["client_id", "request_uri"], "{authorize}");
        assert_eq!(app.provider.par_requests(), 1);
        for param in ["state", "nonce", "code_challenge", "redirect_uri"] {
            assert!(app.provider.last_par_param(param).is_some(), "{param} was pushed");
        }
        let res = app.login(&app.browser).await;
        assert_eq!((res.status().as_u16(), res.url().path()), (200, "/me"));
    }

    /// An app whose provider `oidc` asks for DPoP-bound tokens.
    pub async fn dpop_app<F: Framework>(provider: TestProviderBuilder) -> TestApp {
        TestApp::start_configured::<F>(provider, &[], |op| {
            Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()).with_dpop()
        })
        .await
    }

    /// A login binds the tokens to the session's key; `/me/userinfo` calls the provider with
    /// `Authorization: DPoP` and a proof (the provider refuses the bound token without one).
    pub async fn a_dpop_session_calls_userinfo_with_proofs(app: &TestApp) {
        let res = app.login(&app.browser).await;
        assert_eq!((res.status().as_u16(), res.url().path()), (200, "/me"));
        assert_eq!(app.provider.dpop_proofs_accepted(), 2, "the code exchange and the login's userinfo carried proofs");
        let res = app.api_get(&app.browser, "/me/userinfo").await;
        assert_eq!(res.status(), 200);
        let info: serde_json::Value = res.json().await.unwrap();
        assert_eq!(info["sub"], "alice");
        assert_eq!(app.provider.dpop_proofs_accepted(), 3, "userinfo carried a proof");
    }

    /// The PAR endpoint answers 503: the login is an error page of the app, no redirect to the
    /// provider and no pending login; once it is back, logins work.
    pub async fn a_par_endpoint_that_is_down_is_an_error_page(app: &TestApp) {
        app.provider.inject(Fault::ParEndpointDown);
        let res = app.browser.get(&app.url("/auth/oidc/login?next=/me")).await.unwrap();
        assert_eq!(res.status(), 502, "the provider's failure");
        assert!(!res.headers().contains_key("location"));
        assert!(set_cookies(&res).iter().all(|c| !c.starts_with("auth_login.")), "no login was started");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        app.provider.clear_faults();
        assert_eq!(app.login(&app.browser).await.status(), 200, "a retry logs in");
    }
}

/// A provider whose access tokens live two seconds, for the refresh scenarios (long enough that a
/// refreshed token is not due again within a request on a loaded machine).
pub fn short_tokens() -> TestProviderBuilder {
    TestProvider::builder().token_ttl(std::time::Duration::from_secs(2))
}

/// The scenarios of refreshed tokens (the provider's access tokens live two seconds).
pub mod refresh {
    use std::time::Duration;

    use super::*;

    /// Logs the app's browser in and waits for its access token to expire.
    async fn logged_in_and_expired(app: &TestApp) {
        assert!(app.login(&app.browser).await.status().is_success());
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }

    /// A request with an expired access token is answered after a refresh: `/me/userinfo`
    /// works with the new token, the provider saw one refresh grant, and the next requests need
    /// none.
    pub async fn expired_tokens_are_refreshed_before_the_handler_runs(app: &TestApp) {
        logged_in_and_expired(app).await;
        let res = app.api_get(&app.browser, "/me/userinfo").await;
        assert_eq!(res.status(), 200);
        let info: serde_json::Value = res.json().await.unwrap();
        assert_eq!(info["sub"], "alice", "the provider's userinfo, with the refreshed token");
        assert_eq!(app.provider.refresh_requests(), 1);
        for path in ["/me", "/me/userinfo", "/"] {
            assert_eq!(app.api_get(&app.browser, path).await.status(), 200, "{path}");
        }
        assert_eq!(app.provider.refresh_requests(), 1, "the new token is fresh: no more refreshes");
    }

    /// 50 concurrent requests with the same expired session: one refresh grant, 50 answers.
    pub async fn concurrent_requests_share_one_refresh(app: &TestApp) {
        logged_in_and_expired(app).await;
        app.provider.inject(Fault::TokenEndpointDelay(Duration::from_millis(300)));
        let requests = (0..50).map(|_| app.api_get(&app.browser, "/me"));
        let statuses: Vec<u16> =
            futures_util::future::join_all(requests).await.iter().map(|r| r.status().as_u16()).collect();
        assert!(statuses.iter().all(|s| *s == 200), "nobody is logged out by the race: {statuses:?}");
        assert_eq!(app.provider.refresh_requests(), 1, "one refresh for 50 requests");
        app.provider.clear_faults();
        assert_eq!(app.api_get(&app.browser, "/me/userinfo").await.status(), 200);
        assert_eq!(app.provider.refresh_requests(), 1);
    }

    /// The provider refuses the refresh (`invalid_grant`): the session ends; a browser is sent
    /// to the login, an API client gets 401.
    pub async fn a_refused_refresh_logs_the_user_out(app: &TestApp) {
        app.provider.inject(Fault::RefreshDenied);
        logged_in_and_expired(app).await;
        let res = app.nav_get(&app.browser, "/me").await;
        assert_eq!(res.status(), 302, "to the login");
        assert!(res.headers()["location"].to_str().unwrap().starts_with("/auth/oidc/login"));
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
        assert_eq!(app.provider.refresh_requests(), 1, "the ended session is not refreshed again");
    }

    /// The token endpoint answers 503: the session still serves (`/me` 200), `/me/userinfo`
    /// says the provider failed (502), and the refresh is not retried on every request.
    pub async fn a_refresh_endpoint_that_is_down_keeps_the_session(app: &TestApp) {
        logged_in_and_expired(app).await;
        app.provider.inject(Fault::TokenEndpointStatus(503));
        for _ in 0..3 {
            assert_eq!(app.api_get(&app.browser, "/me").await.status(), 200, "served from the session");
        }
        let res = app.api_get(&app.browser, "/me/userinfo").await;
        assert_eq!(res.status(), 502);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "provider_error");
        assert!(body["message"].as_str().unwrap().contains("could not renew it"), "{body}");
        assert_eq!(app.provider.refresh_requests(), 1, "retried only after a backoff");
        app.provider.clear_faults();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(app.api_get(&app.browser, "/me/userinfo").await.status(), 200, "back once it is up");
        assert_eq!(app.provider.refresh_requests(), 2);
    }

    /// A refreshed ID token with another `sub` (OIDC Core §12.2) ends the session.
    pub async fn a_refreshed_id_token_for_another_user_logs_out(app: &TestApp) {
        app.provider.inject(Fault::RefreshIdTokenSubChanged);
        logged_in_and_expired(app).await;
        assert_eq!(app.api_get(&app.browser, "/me").await.status(), 401);
    }
}

/// Two instances of an example app behind one public URL (instance A's), sharing one Redis and
/// the session keys, as a load balancer would put them; the browser's cookies go to both.
pub struct Pair {
    /// The provider both instances log in with.
    pub provider: TestProvider,
    /// A browser with an empty cookie jar.
    pub browser: Browser,
    /// The shared Redis.
    pub redis: RedisServer,
    /// The public base URL (instance A's address).
    pub base: String,
    /// Instance B's address.
    pub b_base: String,
    key: SessionKey,
    /// Instance A's address when it is no longer the public URL's (after a restart).
    a_base: Option<String>,
    _a: ServerGuard,
    _b: ServerGuard,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").field("base", &self.base).field("b_base", &self.b_base).finish_non_exhaustive()
    }
}

impl Pair {
    /// Starts the provider, a Redis, and two instances; `None` when `redis-server` is missing
    /// (not under `CI=true`).
    pub async fn start<F: Framework>() -> Option<Pair> {
        Pair::start_with::<F>(TestProvider::builder()).await
    }

    /// [`Pair::start`] against a provider built from `provider`.
    pub async fn start_with<F: Framework>(provider: TestProviderBuilder) -> Option<Pair> {
        let redis = RedisServer::start_or_skip()?;
        let provider = provider.start().await.expect("test provider starts");
        let key = SessionKey::generate();
        let a = loopback_listener();
        let base = format!("http://{}", a.local_addr().expect("local address"));
        let b = loopback_listener();
        let b_base = format!("http://{}", b.local_addr().expect("local address"));
        let a = Pair::instance::<F>(&provider, &redis, &base, &key, a).await;
        let b = Pair::instance::<F>(&provider, &redis, &base, &key, b).await;
        Some(Pair { provider, browser: Browser::new(), redis, base, b_base, key, a_base: None, _a: a, _b: b })
    }

    async fn instance<F: Framework>(
        provider: &TestProvider,
        redis: &RedisServer,
        base: &str,
        key: &SessionKey,
        listener: std::net::TcpListener,
    ) -> ServerGuard {
        let store = RedisStore::connect(&redis.url()).await.expect("the Redis store connects");
        let auth = builder(provider, base, KeyRing::new(key.clone()))
            .store(store)
            .build()
            .await
            .expect("auth builds against the test provider");
        F::spawn(auth, listener).await
    }

    /// Stops both instances and starts two new ones (new processes' worth of state: a new
    /// `Auth`, new caches), on new ports; the public URL stays.
    pub async fn restart<F: Framework>(&mut self) {
        let a = loopback_listener();
        let b = loopback_listener();
        let a_base = format!("http://{}", a.local_addr().expect("local address"));
        self.b_base = format!("http://{}", b.local_addr().expect("local address"));
        self._a = Pair::instance::<F>(&self.provider, &self.redis, &self.base, &self.key, a).await;
        self._b = Pair::instance::<F>(&self.provider, &self.redis, &self.base, &self.key, b).await;
        // The public URL now reaches the new A.
        self.a_base = Some(a_base);
    }

    /// `path` on instance A.
    pub fn on_a(&self, path: &str) -> String {
        format!("{}{path}", self.a_base.as_deref().unwrap_or(&self.base))
    }

    /// `path` on instance B.
    pub fn on_b(&self, path: &str) -> String {
        format!("{}{path}", self.b_base)
    }

    /// A GET as an API client.
    pub async fn api_get(&self, browser: &Browser, url: &str) -> Response {
        browser.client().get(url).header("accept", "application/json").send().await.expect("request")
    }

    /// Starts a login on A and has the provider answer: the callback URL, on the public URL.
    pub async fn callback_url(&self, browser: &Browser) -> String {
        let res = browser.get(&self.on_a("/auth/oidc/login?next=/me")).await.expect("login");
        assert_eq!(res.status(), 302, "login redirects to the provider");
        let authorize = res.headers()["location"].to_str().expect("location").to_owned();
        let res = browser.get(&authorize).await.expect("authorize");
        res.headers()["location"].to_str().expect("callback").to_owned()
    }

    /// The callback URL moved to instance B.
    pub fn to_b(&self, url: &str) -> String {
        url.replacen(&self.base, &self.b_base, 1)
    }

    /// The callback URL moved to instance A (after a restart, A has a new address).
    pub fn to_a(&self, url: &str) -> String {
        url.replacen(&self.base, &self.on_a(""), 1)
    }

    /// A full login through instance A.
    pub async fn login(&self, browser: &Browser) {
        let callback = self.callback_url(browser).await;
        let res = browser.get(&self.to_a(&callback)).await.expect("callback");
        assert_eq!(res.status(), 303, "the login finishes");
    }
}

/// Runs every multi-instance scenario against a [`Framework`].
#[macro_export]
macro_rules! multi_instance {
    ($framework:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(mut pair) = $crate::Pair::start::<$framework>().await else { return };
                $crate::multi::$name::<$framework>(&mut pair).await;
            }
        )*
    };
}

/// The scenarios of two instances sharing one Redis.
pub mod multi {
    use std::time::{Duration, Instant};

    use super::*;

    /// Polls `url` as an API client until it answers `status` (at most `within`).
    async fn eventually(pair: &Pair, browser: &Browser, url: &str, status: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = pair.api_get(browser, url).await.status().as_u16();
            if got == status {
                return;
            }
            assert_ne!(got, 500, "{url}: never a 500");
            assert!(Instant::now() < deadline, "{url} answers {status} within {within:?} (last: {got})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A login started on A (its pending login in the browser, its `state` in Redis) finishes
    /// on B, and both know the session.
    pub async fn a_login_started_on_a_finishes_on_b<F: Framework>(pair: &mut Pair) {
        let callback = pair.callback_url(&pair.browser).await;
        let res = pair.browser.get(&pair.to_b(&callback)).await.unwrap();
        assert_eq!(res.status(), 303, "B finishes A's login");
        assert_eq!(pair.api_get(&pair.browser, &pair.on_b("/me")).await.status(), 200);
        assert_eq!(pair.api_get(&pair.browser, &pair.on_a("/me")).await.status(), 200);
    }

    /// A logout on B ends the session on A, whose cache had it.
    pub async fn a_logout_on_b_ends_the_session_on_a<F: Framework>(pair: &mut Pair) {
        pair.login(&pair.browser).await;
        let copy = Browser::new();
        for pair_text in pair.browser.cookie_header(&pair.base).unwrap_or_default().split("; ") {
            copy.set_cookie(&pair.base, pair_text).unwrap();
        }
        assert_eq!(pair.api_get(&copy, &pair.on_a("/me")).await.status(), 200, "A has it cached");
        let res = pair.browser.client().post(pair.on_b("/auth/logout")).header("accept", "application/json");
        assert!(res.send().await.unwrap().status().is_success());
        eventually(pair, &copy, &pair.on_a("/me"), 401, Duration::from_secs(1)).await;
    }

    /// A back-channel logout received by A ends the session on B.
    pub async fn a_backchannel_logout_on_a_ends_the_session_on_b<F: Framework>(pair: &mut Pair) {
        pair.login(&pair.browser).await;
        assert_eq!(pair.api_get(&pair.browser, &pair.on_b("/me")).await.status(), 200, "B has it cached");
        let sid = pair.provider.last_sid().expect("a sid");
        let token = pair.provider.logout_token(None, Some(&sid));
        let (status, _) =
            pair.provider.send_backchannel_logout(&pair.on_a("/auth/oidc/backchannel-logout"), &token).await.unwrap();
        assert_eq!(status, 200);
        eventually(pair, &pair.browser, &pair.on_b("/me"), 401, Duration::from_secs(1)).await;
        // The jti is spent on every instance.
        let (replay, _) =
            pair.provider.send_backchannel_logout(&pair.on_b("/auth/oidc/backchannel-logout"), &token).await.unwrap();
        assert_eq!(replay, 400, "a jti used on A is refused on B");
    }

    /// A callback used on A, replayed on B (with a copy of the pending login), logs nobody in.
    pub async fn a_callback_used_on_a_is_refused_on_b<F: Framework>(pair: &mut Pair) {
        let callback = pair.callback_url(&pair.browser).await;
        let thief = Browser::new();
        for pair_text in pair.browser.cookie_header(&pair.base).unwrap_or_default().split("; ") {
            thief.set_cookie(&pair.base, pair_text).unwrap();
        }
        assert_eq!(pair.browser.get(&pair.to_a(&callback)).await.unwrap().status(), 303);
        let res = thief.get(&pair.to_b(&callback)).await.unwrap();
        assert_eq!(res.status(), 400, "the state was used on A");
        assert_eq!(pair.api_get(&thief, &pair.on_b("/me")).await.status(), 401);
        assert_eq!(pair.provider.token_requests(), 1, "the replay never reached the token endpoint");
    }

    /// After every instance restarts, a logged-out cookie stays logged out, and a live session
    /// lives on.
    pub async fn a_logged_out_cookie_stays_out_after_restarts<F: Framework>(pair: &mut Pair) {
        pair.login(&pair.browser).await;
        let before_logout = Browser::new();
        for pair_text in pair.browser.cookie_header(&pair.base).unwrap_or_default().split("; ") {
            before_logout.set_cookie(&pair.base, pair_text).unwrap();
        }
        let other = Browser::new();
        pair.login(&other).await;
        let res = pair.browser.client().post(pair.on_a("/auth/logout")).header("accept", "application/json");
        assert!(res.send().await.unwrap().status().is_success());
        pair.restart::<F>().await;
        for url in [pair.on_a("/me"), pair.on_b("/me")] {
            assert_eq!(pair.api_get(&before_logout, &url).await.status(), 401, "{url}: logged out for good");
            assert_eq!(pair.api_get(&other, &url).await.status(), 200, "{url}: the other session survives");
        }
    }

    /// 50 concurrent requests with one expired session, spread over both instances: one refresh
    /// grant in all (the instance that loses Redis's lock waits for the winner's tokens), and
    /// every request succeeds.
    pub async fn fifty_requests_on_two_instances_make_one_refresh<F: Framework>(pair: &mut Pair) {
        pair.login(&pair.browser).await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        pair.provider.inject(Fault::TokenEndpointDelay(Duration::from_millis(300)));
        let pair: &Pair = pair;
        let started = Instant::now();
        let requests = (0..50).map(|i| {
            let url = if i % 2 == 0 { pair.on_a("/me") } else { pair.on_b("/me") };
            async move { pair.api_get(&pair.browser, &url).await.status().as_u16() }
        });
        let statuses = futures_util::future::join_all(requests).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(pair.provider.refresh_requests(), 1, "one refresh across two instances");
        assert!(started.elapsed() < Duration::from_secs(5), "the waiting instance used the winner's tokens at once");
        pair.provider.clear_faults();
        for url in [pair.on_a("/me/userinfo"), pair.on_b("/me/userinfo")] {
            assert_eq!(pair.api_get(&pair.browser, &url).await.status(), 200, "{url}");
        }
        assert_eq!(pair.provider.refresh_requests(), 1);
    }

    /// Redis stopped: requests that need it get 503 (never a 500, never a panic), public pages
    /// work; Redis back: logins and sessions work again without a restart.
    pub async fn redis_down_is_503_and_back_without_a_restart<F: Framework>(pair: &mut Pair) {
        pair.login(&pair.browser).await;
        pair.redis.stop();
        // Once the cache is no longer trusted (its subscription is gone), /me needs Redis.
        eventually(pair, &pair.browser, &pair.on_a("/me"), 503, Duration::from_secs(5)).await;
        let res = pair.api_get(&pair.browser, &pair.on_a("/me")).await;
        assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "store_unavailable");
        let public = pair.browser.client().get(pair.on_a("/")).send().await.unwrap();
        assert_eq!(public.status(), 200, "public pages still work");
        // A new login cannot finish without Redis: 503, not 500.
        let fresh = Browser::new();
        let callback = pair.callback_url(&fresh).await;
        assert_eq!(fresh.get(&pair.to_a(&callback)).await.unwrap().status(), 503);

        pair.redis.restart().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let browser = Browser::new();
            let callback = pair.callback_url(&browser).await;
            let status = browser.get(&pair.to_b(&callback)).await.unwrap().status().as_u16();
            assert_ne!(status, 500);
            if status == 303 {
                // A's connection comes back on its own (its first command may still find the old
                // one broken): the session works on A too, without a restart.
                eventually(pair, &browser, &pair.on_a("/me"), 200, Duration::from_secs(5)).await;
                break;
            }
            assert!(Instant::now() < deadline, "logins work again once Redis is back (last: {status})");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
