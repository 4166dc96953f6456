//! In-process tests of the middleware, the extractors and the routes (`actix_web::test`).

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::{App, test, web};
use auth_actix::{AuthMiddleware, AuthUser, Authorized, EmailVerified};
use auth_core::{Auth, KeyRing, Provider, SessionKey};
use auth_testkit::{Browser, TestProvider, TestUser};

async fn auth(op: &TestProvider) -> Auth {
    Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .expect("auth builds against the test provider")
}

async fn whoami(user: Option<AuthUser>) -> String {
    user.map_or_else(|| "nobody".to_owned(), |u| u.sub().to_owned())
}

async fn secret(user: AuthUser) -> String {
    format!("secret for {}", user.sub())
}

/// An app whose `/admin` scope needs a login, and the whole of which reads sessions.
fn app(
    auth: Auth,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .service(
            web::scope("/admin")
                .wrap(AuthMiddleware::new(auth.clone()).require_login())
                .route("/panel", web::get().to(secret)),
        )
        .route("/", web::get().to(whoami))
        .configure(auth_actix::routes)
        .wrap(AuthMiddleware::new(auth))
}

fn header_of(res: &ServiceResponse<impl actix_web::body::MessageBody>, name: header::HeaderName) -> String {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn set_cookies<B>(res: &ServiceResponse<B>) -> Vec<String> {
    res.headers().get_all(header::SET_COOKIE).filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

async fn body_text<B: actix_web::body::MessageBody>(res: ServiceResponse<B>) -> String {
    String::from_utf8(test::read_body(res).await.to_vec()).expect("UTF-8 body")
}

#[actix_web::test]
async fn missing_middleware_is_a_500_naming_it() {
    let app = test::init_service(
        App::new()
            .route("/me", web::get().to(secret))
            .route("/verified", web::get().to(|u: Authorized<EmailVerified>| async move { u.sub().to_owned() }))
            .configure(auth_actix::routes),
    )
    .await;
    for path in ["/me", "/verified", "/auth/oidc/login"] {
        let res = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(res.status(), 500, "{path}");
        assert!(header_of(&res, header::CONTENT_TYPE).starts_with("text/plain"));
        let body = body_text(res).await;
        assert!(body.contains("AuthMiddleware"), "{path}: {body}");
    }
}

#[actix_web::test]
async fn optional_user_without_middleware_is_none() {
    // Actix Web's `Option<T>` extractor swallows the error (auth-axum answers 500 here); it is logged.
    let app = test::init_service(App::new().route("/", web::get().to(whoami))).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(body_text(res).await, "nobody");
}

#[actix_web::test]
async fn optional_user_without_session_is_none() {
    let op = TestProvider::start().await.expect("provider");
    let app = test::init_service(app(auth(&op).await)).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), 200);
    assert!(set_cookies(&res).is_empty(), "no cookie change without a cookie");
    assert_eq!(body_text(res).await, "nobody");
}

#[actix_web::test]
async fn required_login_scope_redirects_browsers_and_refuses_api_clients() {
    let op = TestProvider::start().await.expect("provider");
    let app = test::init_service(app(auth(&op).await)).await;

    let browser = test::TestRequest::get()
        .uri("/admin/panel?tab=2")
        .insert_header((header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8"))
        .to_request();
    let res = test::call_service(&app, browser).await;
    assert_eq!(res.status(), 302);
    assert_eq!(header_of(&res, header::LOCATION), "/auth/oidc/login?next=%2Fadmin%2Fpanel%3Ftab%3D2");
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-store");

    let api =
        test::TestRequest::get().uri("/admin/panel").insert_header((header::ACCEPT, "application/json")).to_request();
    let res = test::call_service(&app, api).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    assert!(header_of(&res, header::CONTENT_TYPE).starts_with("application/json"));
    let body: serde_json::Value = serde_json::from_str(&body_text(res).await).expect("JSON body");
    assert_eq!(body["error"], "unauthenticated");
}

#[actix_web::test]
async fn stale_cookie_is_cleared_once_under_nested_middlewares() {
    let op = TestProvider::start().await.expect("provider");
    let auth = auth(&op).await;
    let app = test::init_service(app(auth.clone())).await;
    let cookie = format!("{}=garbage", auth.session_cookie_name());
    for path in ["/", "/admin/panel"] {
        let req = test::TestRequest::get()
            .uri(path)
            .insert_header((header::ACCEPT, "application/json"))
            .insert_header((header::COOKIE, cookie.as_str()))
            .to_request();
        let res = test::call_service(&app, req).await;
        let cleared: Vec<String> = set_cookies(&res)
            .into_iter()
            .filter(|c| c.starts_with("auth_session=;") && c.contains("Max-Age=0"))
            .collect();
        assert_eq!(cleared.len(), 1, "{path}: {cleared:?}");
    }
}

#[actix_web::test]
async fn full_login_opens_the_required_scope() {
    let op = TestProvider::start().await.expect("provider");
    op.set_user(TestUser::new("dave"));
    let app = test::init_service(app(auth(&op).await)).await;
    let call = |req| app.call(req);

    let res = call(test::TestRequest::get().uri("/auth/oidc/login?next=/admin/panel").to_request()).await.unwrap();
    assert_eq!(res.status(), 302);
    let login_cookie = set_cookies(&res).into_iter().find(|c| c.starts_with("auth_login.")).expect("login cookie");
    let login_cookie = login_cookie.split(';').next().unwrap_or_default().to_owned();

    // The provider approves the login at once and sends the browser back to the callback.
    let at_provider = Browser::new().get(&header_of(&res, header::LOCATION)).await.expect("authorize");
    assert!(at_provider.status().is_redirection());
    let callback = at_provider.headers()["location"].to_str().expect("location").to_owned();
    let callback = callback.strip_prefix("http://127.0.0.1:3000").expect("redirect URI of the app").to_owned();

    let req = test::TestRequest::get().uri(&callback).insert_header((header::COOKIE, login_cookie)).to_request();
    let res = call(req).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header_of(&res, header::LOCATION), "/admin/panel");
    let session = set_cookies(&res).into_iter().find(|c| c.starts_with("auth_session=")).expect("session cookie");
    let session = session.split(';').next().unwrap_or_default().to_owned();

    let req =
        test::TestRequest::get().uri("/admin/panel").insert_header((header::COOKIE, session.as_str())).to_request();
    let res = call(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body_text(res).await, "secret for dave");

    let req = test::TestRequest::get().uri("/").insert_header((header::COOKIE, session.as_str())).to_request();
    assert_eq!(body_text(call(req).await.unwrap()).await, "dave");
}

#[actix_web::test]
async fn a_scoped_mount_names_the_fix_or_follows_the_prefix() {
    let op = TestProvider::start().await.expect("provider");
    let auth = auth(&op).await;
    let app = test::init_service(
        App::new().service(web::scope("/account").configure(auth_actix::routes)).wrap(AuthMiddleware::new(auth)),
    )
    .await;
    let req = test::TestRequest::get().uri("/account/auth/oidc/login").insert_header(("accept", "text/html"));
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), 500);
    let body = body_text(res).await;
    assert!(body.contains("`/account/auth`") && body.contains(".prefix(&quot;/account/auth&quot;)"), "{body}");
    // Where protected routes send browsers, the app's 404 is explained too.
    let req = test::TestRequest::get().uri("/auth/oidc/login").insert_header(("accept", "application/json"));
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), 500);
    assert!(body_text(res).await.contains("routes_misplaced"));

    // With the prefix the fix names, the scoped routes work, redirect URI included.
    let auth = Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .prefix("/account/auth")
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .expect("builds");
    let app = test::init_service(
        App::new().service(web::scope("/account").configure(auth_actix::routes)).wrap(AuthMiddleware::new(auth)),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/account/auth/oidc/login").to_request()).await;
    assert_eq!(res.status(), 302);
    let location = header_of(&res, header::LOCATION);
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Faccount%2Fauth%2Foidc%2Fcallback"),
        "{location}"
    );
}
