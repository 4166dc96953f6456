//! The dev-mode login page, and `Browser` driving a small app through the provider.

mod common;

use auth_testkit::{Browser, BrowserError, TestProvider, TestUser};
use axum::Router;
use axum::extract::{Query, RawQuery};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use common::*;
use reqwest::StatusCode;
use std::collections::HashMap;

async fn dev_provider() -> TestProvider {
    TestProvider::builder()
        .dev_mode(true)
        .users(vec![TestUser::new("alice"), TestUser::new("bob").with_name("Bob <script>")])
        .start()
        .await
        .expect("start")
}

/// The request id from the dev page.
fn request_id(page: &str) -> String {
    let marker = "name=\"request_id\" value=\"";
    let start = page.find(marker).expect("request_id") + marker.len();
    page[start..start + page[start..].find('"').expect("end")].to_owned()
}

#[tokio::test]
async fn dev_mode_page_lists_users_and_approve_logs_in() {
    let op = dev_provider().await;
    let pkce = pkce();
    let response = http().get(authorize_url(&op, &pkce, &[])).send().await.expect("authorize");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().expect("ct").starts_with("text/html"));
    let csp = response.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("default-src 'none'"));
    let page = response.text().await.expect("page");
    assert!(page.contains("alice@example.test"));
    assert!(page.contains("Bob &lt;script&gt;"), "names are escaped");
    assert!(!page.contains("<script>"));
    assert!(page.contains("Deny"));
    assert!(!page.contains("http://") && !page.contains("https://"), "no external resources");
    let id = request_id(&page);

    let response = http()
        .post(format!("{}/authorize/approve", op.issuer()))
        .form(&[("request_id", id.as_str()), ("sub", "bob")])
        .send()
        .await
        .expect("approve");
    let callback = location(&response);
    assert_eq!(param(&callback, "state").as_deref(), Some("state-1"));
    assert_eq!(param(&callback, "iss").as_deref(), Some(op.issuer()));
    let code = param(&callback, "code").expect("code");
    let tokens = json(exchange(&op, &code, &pkce.verifier).await).await;
    let claims = verify(&op, tokens["id_token"].as_str().expect("id")).await.expect("valid");
    assert_eq!(claims["sub"], "bob");

    // The request id is single use.
    let response = http()
        .post(format!("{}/authorize/approve", op.issuer()))
        .form(&[("request_id", id.as_str()), ("sub", "bob")])
        .send()
        .await
        .expect("approve again");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dev_mode_deny_and_unknown_user() {
    let op = dev_provider().await;
    let pkce = pkce();
    let page = http().get(authorize_url(&op, &pkce, &[])).send().await.expect("authorize").text().await.expect("page");
    let id = request_id(&page);
    let response = http()
        .post(format!("{}/authorize/approve", op.issuer()))
        .form(&[("request_id", id.as_str()), ("sub", "mallory")])
        .send()
        .await
        .expect("approve");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let page = http().get(authorize_url(&op, &pkce, &[])).send().await.expect("authorize").text().await.expect("page");
    let response = http()
        .post(format!("{}/authorize/deny", op.issuer()))
        .form(&[("request_id", request_id(&page).as_str())])
        .send()
        .await
        .expect("deny");
    let callback = location(&response);
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&callback, "state").as_deref(), Some("state-1"));
    assert_eq!(param(&callback, "iss").as_deref(), Some(op.issuer()));

    let callback = authorize(&op, &pkce, &[("prompt", "none")]).await;
    assert_eq!(param(&callback, "error").as_deref(), Some("login_required"));
}

/// A minimal relying party: `/auth/test/login` redirects to the provider (with a cookie),
/// `/auth/test/callback` checks the cookie and redirects to `/done`, which echoes the code.
async fn app(op: &TestProvider, response_mode: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let pkce = pkce();
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={base}/auth/test/callback\
         &scope=openid&state=st&code_challenge={}&code_challenge_method=S256&response_mode={response_mode}",
        op.issuer(),
        op.client_id(),
        pkce.challenge,
    );
    let finish = |cookie: Option<String>, params: HashMap<String, String>| {
        if cookie.as_deref() != Some("pending=1") || params.get("state").map(String::as_str) != Some("st") {
            return (StatusCode::BAD_REQUEST, "bad callback").into_response();
        }
        let code = params.get("code").cloned().unwrap_or_default();
        Redirect::to(&format!("/done?code={code}")).into_response()
    };
    let router = Router::new()
        .route(
            "/auth/test/login",
            get(move || async move { ([(SET_COOKIE, "pending=1; Path=/; HttpOnly")], Redirect::to(&authorize)) }),
        )
        .route(
            "/auth/test/callback",
            get(move |headers: axum::http::HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                finish(headers.get("cookie").and_then(|v| v.to_str().ok()).map(str::to_owned), q)
            })
            .post(
                move |headers: axum::http::HeaderMap, axum::Form(q): axum::Form<HashMap<String, String>>| async move {
                    finish(headers.get("cookie").and_then(|v| v.to_str().ok()).map(str::to_owned), q)
                },
            ),
        )
        .route("/done", get(|RawQuery(q): RawQuery| async move { q.unwrap_or_default() }))
        .route("/loop", get(|| async { ([(LOCATION, "/loop")], StatusCode::FOUND) }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn browser_login_follows_the_whole_chain() {
    let op = TestProvider::start().await.expect("start");
    let base = app(&op, "query").await;
    let browser = Browser::new();
    let response = browser.login(&base, "test").await.expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), "/done");
    assert!(response.text().await.expect("body").starts_with("code="));
    assert_eq!(browser.cookie_header(&base).as_deref(), Some("pending=1"));
    // As in browsers, cookies are per host, not per port.
    assert_eq!(browser.cookie_header(op.issuer()).as_deref(), Some("pending=1"));
    assert_eq!(browser.cookie_header("http://localhost:1/"), None);

    let (_, visited) = browser.get_following(&format!("{base}/auth/test/login")).await.expect("again");
    let paths: Vec<_> = visited.iter().map(|u| u.path().to_owned()).collect();
    assert_eq!(paths, ["/auth/test/login", "/authorize", "/auth/test/callback", "/done"]);
}

#[tokio::test]
async fn browser_submits_form_post_pages() {
    let op = TestProvider::start().await.expect("start");
    let base = app(&op, "form_post").await;
    let browser = Browser::new();
    let response = browser.login(&base, "test").await.expect("login");
    assert_eq!(response.url().path(), "/done");
    assert!(response.text().await.expect("body").starts_with("code="));
}

#[tokio::test]
async fn browser_single_steps_and_errors() {
    let op = TestProvider::start().await.expect("start");
    let base = app(&op, "query").await;
    let browser = Browser::new();
    let first = browser.get(&format!("{base}/auth/test/login")).await.expect("get");
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second = browser.follow(first).await.expect("follow");
    assert_eq!(second.status(), StatusCode::FOUND);
    assert_eq!(second.url().path(), "/authorize");

    let done = browser.get(&format!("{base}/done")).await.expect("get");
    assert!(matches!(browser.follow(done).await, Err(BrowserError::NotARedirect { .. })));
    assert!(matches!(browser.get_following(&format!("{base}/loop")).await, Err(BrowserError::TooManyRedirects { .. })));
    assert!(matches!(browser.get("not a url").await, Err(BrowserError::InvalidUrl { .. })));

    let fresh = Browser::new();
    fresh.set_cookie(&base, "planted=yes; Path=/").expect("set");
    assert_eq!(fresh.cookie_header(&base).as_deref(), Some("planted=yes"));
    let response =
        fresh.post_form(&format!("{base}/auth/test/callback"), &[("state", "st"), ("code", "c")]).await.expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "no pending cookie");
}

/// `GET /dev/access-token`: a JWT access token for the first user or the one named, with the
/// audience and scope asked for; every mistake a clear 400, and 404 outside development mode.
#[tokio::test]
async fn dev_access_token_mints_for_a_known_user_and_refuses_the_rest() {
    use base64::Engine as _;
    let op = dev_provider().await;
    let get = |query: String| {
        let url = format!("{}/dev/access-token?{query}", op.issuer());
        async move {
            let res = reqwest::get(url).await.expect("request");
            (res.status(), res.text().await.expect("body"))
        }
    };
    let payload = |jwt: &str| -> serde_json::Value {
        let part = jwt.split('.').nth(1).expect("a JWS");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url"))
            .expect("JSON")
    };
    let header = |jwt: &str| -> serde_json::Value {
        let part = jwt.split('.').next().expect("a JWS");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url"))
            .expect("JSON")
    };

    let (status, token) = get("audience=https%3A%2F%2Fapi.example&scope=admin".into()).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(header(&token)["typ"], "at+jwt");
    let claims = payload(&token);
    assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("alice"), Some("https://api.example")));
    assert_eq!((claims["scope"].as_str(), claims["iss"].as_str()), (Some("admin"), Some(op.issuer())));
    let (status, token) = get("audience=a&user=bob".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(payload(&token)["sub"], "bob");

    for (query, why) in [
        ("scope=admin".to_owned(), "audience is missing"),
        ("audience=".to_owned(), "audience is missing"),
        ("audience=a&audience=b".to_owned(), "repeated"),
        ("audience=a&user=mallory".to_owned(), "no such user"),
        (format!("audience={}", "a".repeat(1025)), "longer than"),
    ] {
        let (status, body) = get(query.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body.contains(why), "{query}: {body}");
    }

    let plain = TestProvider::start().await.expect("start");
    let res = reqwest::get(format!("{}/dev/access-token?audience=a", plain.issuer())).await.expect("request");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
