//! The adapter in-process (`oneshot`): extractors, a missing layer, `Router::nest`, app state.
#![allow(clippy::unwrap_used)]

use auth_axum::{AuthLayer, AuthUser};
use auth_core::{Auth, KeyRing, Provider, SessionKey};
use auth_testkit::TestProvider;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

async fn auth() -> (TestProvider, Auth) {
    let op = TestProvider::start().await.unwrap();
    let auth = Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap();
    (op, auth)
}

async fn body(res: axum::response::Response) -> String {
    String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

fn get_req(uri: &str, accept: &str) -> Request<Body> {
    Request::builder().uri(uri).header("accept", accept).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_missing_layer_says_so() {
    let app: Router = Router::new().route("/me", get(|_u: AuthUser| async { "hi" }));
    let res = app.oneshot(get_req("/me", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body(res).await.contains("AuthLayer"));
    let routes: Router = auth_axum::routes();
    let res = routes.oneshot(get_req("/auth/oidc/login", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn optional_user_is_none_without_a_session() {
    let (_op, auth) = auth().await;
    let app = Router::new()
        .route("/", get(|u: Option<AuthUser>| async move { if u.is_some() { "user" } else { "anonymous" } }))
        .layer(AuthLayer::new(auth));
    let res = app.oneshot(get_req("/", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "anonymous");
}

#[tokio::test]
async fn nested_routers_keep_the_full_path_in_next() {
    let (_op, auth) = auth().await;
    let api = Router::new().route("/me", get(|_u: AuthUser| async { "hi" }));
    let app = Router::new().nest("/app", api).merge(auth_axum::routes()).layer(AuthLayer::new(auth));
    let res = app.clone().oneshot(get_req("/app/me", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "/auth/oidc/login?next=%2Fapp%2Fme");
    let res = app.clone().oneshot(get_req("/app/me", "application/json")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    // The login route redirects to the provider and sets a pending-login cookie.
    let res = app.oneshot(get_req("/auth/oidc/login?next=/app/me", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(res.headers()["set-cookie"].to_str().unwrap().starts_with("auth_login."));
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[tokio::test]
async fn works_with_app_state() {
    let (_op, auth) = auth().await;
    let app = Router::new()
        .route(
            "/",
            get(|axum::extract::State(s): axum::extract::State<AppState>, u: Option<AuthUser>| async move {
                format!("{} {}", s.greeting, u.map_or("stranger".to_owned(), |u| u.sub().to_owned()))
            }),
        )
        .merge(auth_axum::routes())
        .with_state(AppState { greeting: "hello" })
        .layer(AuthLayer::new(auth));
    let res = app.oneshot(get_req("/", "text/html")).await.unwrap();
    assert_eq!(body(res).await, "hello stranger");
}

#[tokio::test]
async fn logout_by_get_is_refused() {
    let (_op, auth) = auth().await;
    let app: Router = auth_axum::routes().layer(AuthLayer::new(auth));
    let res = app.oneshot(get_req("/auth/logout", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
}

async fn auth_with_prefix(op: &TestProvider, prefix: &str) -> Auth {
    Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .prefix(prefix)
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn nested_auth_routes_name_the_fix_or_follow_the_prefix() {
    let (op, auth) = auth().await;
    let app = Router::new().nest("/account", auth_axum::routes()).layer(AuthLayer::new(auth));
    // The routes answer under /account/auth, but the Auth sends browsers to /auth.
    let res = app.clone().oneshot(get_req("/account/auth/oidc/login", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = body(res).await;
    assert!(text.contains("`/account/auth`") && text.contains(".prefix(&quot;/account/auth&quot;)"), "{text}");
    // Where protected routes send browsers, the app's 404 is explained too.
    let res = app.oneshot(get_req("/auth/oidc/login", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body(res).await.contains("no auth route answered"));

    // With the prefix the fix names, the nested routes work, redirect URI included.
    let auth = auth_with_prefix(&op, "/account/auth").await;
    let app = Router::new().nest("/account", auth_axum::routes()).layer(AuthLayer::new(auth));
    let res = app.oneshot(get_req("/account/auth/oidc/login", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Faccount%2Fauth%2Foidc%2Fcallback"),
        "{location}"
    );
}

#[tokio::test]
async fn another_prefix_with_the_default_routes_names_the_fix() {
    let op = TestProvider::start().await.unwrap();
    let auth = auth_with_prefix(&op, "/login").await;
    let app = Router::new().merge(auth_axum::routes()).layer(AuthLayer::new(auth.clone()));
    let res = app.clone().oneshot(get_req("/login/oidc/login", "application/json")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(json["error"], "routes_misplaced");
    let res = app.oneshot(get_req("/auth/oidc/login", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "the routes' own prefix is not the Auth's");
    let fixed = Router::new().merge(auth_axum::routes_at("/login")).layer(AuthLayer::new(auth));
    let res = fixed.oneshot(get_req("/login/oidc/login", "text/html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
}
