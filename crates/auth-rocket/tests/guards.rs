//! The fairing, routes and guards in-process, with Rocket's local client and the auth-testkit
//! provider.

use auth_core::{Auth, KeyRing, Provider, SessionKey};
use auth_rocket::{AuthFairing, AuthRejection, AuthUser, Authorized, Policy, Session};
use auth_testkit::{Browser, TestProvider, TestUser};
use rocket::error::ErrorKind;
use rocket::http::{Accept, ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::response::Redirect;
use rocket::{Build, Request, Rocket, catch, catchers, get, routes};

struct Admin;

impl Policy for Admin {
    const DESCRIPTION: &'static str = "administrators only";
    fn allows(session: &Session) -> bool {
        session.claims().contains("groups", "admin")
    }
}

#[get("/me")]
async fn me(user: AuthUser) -> String {
    user.sub().to_owned()
}

#[get("/maybe")]
async fn maybe(user: Option<AuthUser>) -> String {
    user.map_or_else(|| "nobody".to_owned(), |u| u.sub().to_owned())
}

#[get("/landing")]
async fn landing(user: Option<AuthUser>) -> Redirect {
    Redirect::found(if user.is_some() { "/home" } else { "/welcome" })
}

#[get("/why")]
async fn why(user: Result<AuthUser, AuthRejection>) -> String {
    format!("{:?}", user.map(|u| u.sub().to_owned()))
}

#[get("/admin")]
async fn admin(user: Authorized<Admin>) -> String {
    format!("admin {}", user.sub())
}

#[get("/api/me")]
async fn api_me(user: AuthUser) -> String {
    user.sub().to_owned()
}

#[catch(default)]
fn api_default(status: Status, _req: &Request<'_>) -> (Status, String) {
    (status, "the API's own error page".into())
}

#[catch(401)]
fn unauthorized() -> &'static str {
    "the app's own 401 page"
}

async fn auth(op: &TestProvider) -> Auth {
    Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .base_url("http://127.0.0.1:8000")
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .expect("auth builds against the test provider")
}

fn app() -> Rocket<Build> {
    rocket::build()
        .mount("/", routes![me, maybe, landing, why, admin, api_me])
        .mount("/app", routes![me])
        .mount("/", auth_rocket::routes())
        .register("/", catchers![unauthorized])
        .register("/api", catchers![api_default])
}

async fn client(op: &TestProvider) -> Client {
    Client::tracked(app().attach(AuthFairing::new(auth(op).await))).await.expect("launches")
}

fn header<'a>(res: &'a LocalResponse<'_>, name: &str) -> Option<&'a str> {
    res.headers().get_one(name)
}

/// Logs the client in through the provider; returns the callback's response.
async fn login<'c>(client: &'c Client, op: &TestProvider, user: TestUser) -> LocalResponse<'c> {
    op.set_user(user);
    let res = client.get("/auth/oidc/login?next=/me").dispatch().await;
    assert_eq!(res.status(), Status::Found);
    let authorize = header(&res, "location").expect("location").to_owned();
    let back = Browser::new().get(&authorize).await.expect("provider answers");
    let callback = back.headers()["location"].to_str().expect("callback URL");
    let callback = callback.strip_prefix("http://127.0.0.1:8000").expect("our redirect URI").to_owned();
    client.get(callback).header(Accept::HTML).dispatch().await
}

#[tokio::test]
async fn launch_without_the_fairing_is_aborted_by_the_sentinels() {
    let err = Client::tracked(app()).await.expect_err("launch aborted");
    let ErrorKind::SentinelAborts(sentries) = err.kind() else { panic!("not a sentinel abort: {err}") };
    let names: Vec<&str> = sentries.iter().map(|s| s.type_name).collect();
    assert!(names.contains(&"auth_rocket::guard::AuthUser"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("auth_rocket::guard::Authorized<")), "{names:?}");

    // `Option<AuthUser>` alone is watched too.
    let err = Client::tracked(rocket::build().mount("/", routes![maybe])).await.expect_err("launch aborted");
    assert!(matches!(err.kind(), ErrorKind::SentinelAborts(_)));
}

#[tokio::test]
async fn routes_without_the_fairing_are_a_500() {
    let client = Client::tracked(rocket::build().mount("/", auth_rocket::routes())).await.expect("launches");
    assert_eq!(client.get("/auth/oidc/login").dispatch().await.status(), Status::InternalServerError);
}

#[tokio::test]
async fn no_session_browser_is_redirected_api_client_gets_401() {
    let op = TestProvider::start().await.expect("provider");
    let client = client(&op).await;

    let res = client.get("/me?tab=2").header(Accept::HTML).dispatch().await;
    assert_eq!(res.status(), Status::Found);
    assert_eq!(header(&res, "location"), Some("/auth/oidc/login?next=%2Fme%3Ftab%3D2"));
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    assert_eq!(header(&res, "content-type"), None);

    let res = client.get("/me").header(Accept::JSON).dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    assert!(header(&res, "www-authenticate").is_some_and(|v| v.starts_with("Cookie realm=")));
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    let body: serde_json::Value = serde_json::from_str(&res.into_string().await.expect("body")).expect("JSON");
    assert_eq!(body["error"], "unauthenticated");
    assert_eq!(body["login_url"], "/auth/oidc/login?next=%2Fme");

    // Under another mount base, `next` is still the full path.
    let res = client.get("/app/me").header(Accept::HTML).dispatch().await;
    assert_eq!(header(&res, "location"), Some("/auth/oidc/login?next=%2Fapp%2Fme"));

    // The app's own 401 catcher does not see the refusal; a default catcher under a longer base
    // answers, and the fairing still sends auth-core's answer.
    let res = client.get("/api/me").header(Accept::JSON).dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    assert!(header(&res, "www-authenticate").is_some());
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    assert!(res.into_string().await.expect("body").contains("\"unauthenticated\""));
    let res = client.get("/api/me").header(Accept::HTML).dispatch().await;
    assert_eq!(res.status(), Status::Found);
    assert_eq!(header(&res, "location"), Some("/auth/oidc/login?next=%2Fapi%2Fme"));
    assert_eq!(header(&res, "content-type"), None);
    assert_eq!(res.into_string().await.as_deref(), Some(""));
}

#[tokio::test]
async fn optional_and_result_guards_never_refuse() {
    let op = TestProvider::start().await.expect("provider");
    let client = client(&op).await;

    let res = client.get("/maybe").header(Accept::HTML).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().await.as_deref(), Some("nobody"));
    // The handler's own redirect is left alone.
    let res = client.get("/landing").header(Accept::HTML).dispatch().await;
    assert_eq!(res.status(), Status::Found);
    assert_eq!(header(&res, "location"), Some("/welcome"));
    let res = client.get("/why").header(Accept::JSON).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().await.as_deref(), Some("Err(Unauthenticated)"));
}

#[tokio::test]
async fn login_then_guards_pass_and_policies_answer_403() {
    let op = TestProvider::start().await.expect("provider");
    let client = client(&op).await;

    let res = login(&client, &op, TestUser::new("carol")).await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(header(&res, "location"), Some("/me"));
    assert!(res.headers().get("set-cookie").any(|c| c.starts_with("auth_session=") && c.contains("HttpOnly")));

    assert_eq!(client.get("/me").dispatch().await.into_string().await.as_deref(), Some("carol"));
    assert_eq!(client.get("/maybe").dispatch().await.into_string().await.as_deref(), Some("carol"));
    assert_eq!(client.get("/why").dispatch().await.into_string().await.as_deref(), Some("Ok(\"carol\")"));
    let res = client.get("/admin").header(Accept::JSON).dispatch().await;
    assert_eq!(res.status(), Status::Forbidden);
    let body: serde_json::Value = serde_json::from_str(&res.into_string().await.expect("body")).expect("JSON");
    assert_eq!(body["error"], "forbidden");

    // Logout: GET is auth-core's 405 (not Rocket's 404), POST ends the session.
    let res = client.get("/auth/logout").dispatch().await;
    assert_eq!(res.status(), Status::MethodNotAllowed);
    assert_eq!(header(&res, "allow"), Some("POST"));
    let res = client.post("/auth/logout").header(Accept::HTML).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    assert!(header(&res, "location").is_some());
    assert_eq!(client.get("/me").header(Accept::JSON).dispatch().await.status(), Status::Unauthorized);

    let admin = rocket_client_for_admin(&op).await;
    let res = admin.get("/admin").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.into_string().await.as_deref(), Some("admin root"));
}

async fn rocket_client_for_admin(op: &TestProvider) -> Client {
    let client = client(op).await;
    let status =
        login(&client, op, TestUser::new("root").with_claim("groups", serde_json::json!(["admin"]))).await.status();
    assert_eq!(status, Status::SeeOther);
    client
}

#[tokio::test]
async fn a_stale_session_cookie_is_cleared_on_any_response() {
    let op = TestProvider::start().await.expect("provider");
    let client = client(&op).await;
    let res = client.get("/maybe").header(Header::new("cookie", "auth_session=forged")).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert!(res.headers().get("set-cookie").any(|c| c.starts_with("auth_session=;") && c.contains("Max-Age=0")));
}

#[tokio::test]
async fn form_post_callbacks_are_read() {
    let op = TestProvider::start().await.expect("provider");
    let client = client(&op).await;
    // No pending login: auth-core's 400 page, which proves the form body reached it.
    let res = client
        .post("/auth/oidc/callback")
        .header(ContentType::Form)
        .body("code=x&state=aaaaaaaaaaaaaaaaaaaaaaaa")
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::BadRequest);
    assert_eq!(res.content_type(), Some(ContentType::HTML));
    let res = client.post("/auth/oidc/callback").header(ContentType::Form).body("code=x").dispatch().await;
    assert_eq!(res.status(), Status::BadRequest);
}

#[tokio::test]
async fn unknown_paths_under_the_prefix_are_404() {
    let op = TestProvider::start().await.expect("provider");
    let client = client(&op).await;
    assert_eq!(client.get("/auth/nope/login").dispatch().await.status(), Status::NotFound);
    assert_eq!(client.get("/auth/oidc/login/more").dispatch().await.status(), Status::NotFound);
    assert_eq!(client.delete("/auth/oidc/login").dispatch().await.status(), Status::MethodNotAllowed);
}

#[tokio::test]
async fn from_config_builds_auth_at_ignition() {
    let op = TestProvider::start().await.expect("provider");
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let figment = rocket::Config::figment()
        .merge(("port", 8123))
        .merge(("auth.session_key", key))
        .merge(("auth.providers.oidc.issuer", op.issuer()))
        .merge(("auth.providers.oidc.client_id", op.client_id()))
        .merge(("auth.providers.oidc.client_secret", op.client_secret()))
        .merge(("auth.providers.oidc.scope", "openid email"));
    let rocket = rocket::custom(figment).attach(AuthFairing::from_config()).mount("/", auth_rocket::routes());
    let client = Client::tracked(rocket).await.expect("launches");
    let res = client.get("/auth/oidc/login").dispatch().await;
    assert_eq!(res.status(), Status::Found);
    let location = header(&res, "location").expect("location");
    assert!(location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8123%2Fauth%2Foidc%2Fcallback"), "{location}");
    assert!(location.contains("scope=openid+email"), "{location}");

    // An invalid configuration fails the launch.
    let figment = rocket::Config::figment().merge(("auth.providers.oidc.client_id", "x"));
    let rocket = rocket::custom(figment).attach(AuthFairing::from_config());
    let err = Client::tracked(rocket).await.expect_err("launch fails");
    assert!(matches!(err.kind(), ErrorKind::FailedFairings(_)), "{err}");
}

#[tokio::test]
async fn auth_routes_mounted_elsewhere_fail_ignition_or_follow_the_prefix() {
    let op = TestProvider::start().await.expect("provider");
    let rocket = rocket::build().mount("/account", auth_rocket::routes()).attach(AuthFairing::new(auth(&op).await));
    let err = Client::tracked(rocket).await.expect_err("ignition refuses routes that answer under /account/auth");
    assert!(matches!(err.kind(), ErrorKind::FailedFairings(_)), "{err}");

    // With the prefix the fix names, the routes mounted at /account work.
    let auth = Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .base_url("http://127.0.0.1:8000")
        .prefix("/account/auth")
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .expect("builds");
    let rocket = rocket::build().mount("/account", auth_rocket::routes()).attach(AuthFairing::new(auth.clone()));
    let client = Client::tracked(rocket).await.expect("launches");
    let res = client.get("/account/auth/oidc/login").dispatch().await;
    assert_eq!(res.status(), Status::Found);
    let location = header(&res, "location").expect("location");
    assert!(
        location.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2Faccount%2Fauth%2Foidc%2Fcallback"),
        "{location}"
    );

    // `AuthBuilder::prefix` with `routes()` instead of `routes_at()`: refused too.
    let rocket = rocket::build().mount("/", auth_rocket::routes()).attach(AuthFairing::new(auth));
    let err = Client::tracked(rocket).await.expect_err("ignition refuses /auth for an Auth at /account/auth");
    assert!(matches!(err.kind(), ErrorKind::FailedFairings(_)), "{err}");
}

#[tokio::test]
async fn a_refusal_fails_the_guard_with_its_own_status() {
    // Rocket logs a guard's failure status: 401 (or 403), not a private 599.
    let op = TestProvider::start().await.expect("provider");
    let rocket = rocket::build()
        .mount("/", routes![status_of_me])
        .mount("/", auth_rocket::routes())
        .attach(AuthFairing::new(auth(&op).await));
    let client = Client::tracked(rocket).await.expect("launches");
    let res = client.get("/status").dispatch().await;
    assert_eq!(res.into_string().await.as_deref(), Some("401"));
}

#[get("/status")]
async fn status_of_me(user: rocket::request::Outcome<AuthUser, auth_rocket::AuthRejection>) -> String {
    match user {
        rocket::request::Outcome::Error((status, _)) => status.code.to_string(),
        _ => "other".into(),
    }
}

#[tokio::test]
async fn a_loopback_app_url_on_another_port_stops_the_launch() {
    let op = TestProvider::start().await.expect("provider");
    // The Auth says port 8000; Rocket is told to listen elsewhere.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let figment = rocket::Config::figment()
        .merge(("port", port))
        .merge(("log_level", rocket::config::LogLevel::Off))
        .merge(("shutdown.ctrlc", false));
    let rocket = rocket::custom(figment).mount("/", auth_rocket::routes()).attach(AuthFairing::new(auth(&op).await));
    let launched = tokio::time::timeout(std::time::Duration::from_secs(10), rocket.launch()).await;
    assert!(matches!(launched, Ok(Ok(_))), "Rocket shut itself down at liftoff");
}
