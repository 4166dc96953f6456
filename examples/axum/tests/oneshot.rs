//! example-axum driven in-process with `oneshot`: the whole login without a socket on the app side
//! (the provider is auth-testkit on a loopback port).
#![allow(clippy::unwrap_used)]

use auth_core::{Auth, KeyRing, Provider, SessionKey};
use auth_testkit::{TestProvider, TestUser};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

fn set_cookie_pairs(res: &axum::response::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter(|v| !v.to_str().unwrap().contains("Max-Age=0"))
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn login_me_logout_in_process() {
    let op = TestProvider::start().await.unwrap();
    op.set_user(TestUser::new("erin"));
    let auth = Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap();
    let app = example_axum::app(auth);
    let req = |uri: &str, cookie: &str| {
        Request::builder()
            .uri(uri)
            .header("accept", "application/json")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };

    let res = app.clone().oneshot(req("/me", "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = app.clone().oneshot(req("/auth/oidc/login?next=/me", "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let pending = set_cookie_pairs(&res).join("; ");
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    let http = reqwest_client();
    let callback = http.get(&authorize).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let callback = callback.strip_prefix("http://127.0.0.1:3000").unwrap();

    let res = app.clone().oneshot(req(callback, &pending)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/me");
    let session = set_cookie_pairs(&res).join("; ");

    let res = app.clone().oneshot(req("/me", &session)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let claims: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(claims["sub"], "erin");

    let logout = Request::builder()
        .method("POST")
        .uri("/auth/logout")
        .header("accept", "application/json")
        .header("cookie", &session)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(logout).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "an API client is told where the provider's logout page is");
    let body: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert!(body["redirect"].as_str().unwrap().starts_with(&format!("{}/end_session?", op.issuer())));
    let res = app.oneshot(req("/me", &session)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the logged-out session is refused even if replayed");
}

fn reqwest_client() -> auth_testkit::reqwest::Client {
    auth_testkit::reqwest::Client::builder().redirect(auth_testkit::reqwest::redirect::Policy::none()).build().unwrap()
}
