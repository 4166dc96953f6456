//! example-rocket driven in-process with Rocket's local client: the whole login without a socket
//! on the app side (the provider is auth-testkit on a loopback port).
#![allow(clippy::unwrap_used)]

use auth_core::{Auth, KeyRing, Provider, SessionKey};
use auth_testkit::{TestProvider, TestUser};
use rocket::http::{Accept, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};

fn set_cookie_pairs(res: &LocalResponse<'_>) -> Vec<String> {
    res.headers()
        .get("set-cookie")
        .filter(|v| !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .collect()
}

#[rocket::async_test]
async fn login_me_logout_in_process() {
    let op = TestProvider::start().await.unwrap();
    op.set_user(TestUser::new("erin"));
    let auth = Auth::builder()
        .provider(Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap();
    // Untracked: the cookies travel as `Cookie` headers, as from a browser.
    let client = Client::untracked(example_rocket::rocket(auth, rocket::Config::figment())).await.unwrap();
    let get = |uri: String, cookie: &str| {
        client.get(uri).header(Accept::JSON).header(Header::new("cookie", cookie.to_owned())).dispatch()
    };

    let res = get("/me".into(), "").await;
    assert_eq!(res.status(), Status::Unauthorized);

    let res = get("/auth/oidc/login?next=/me".into(), "").await;
    assert_eq!(res.status(), Status::Found);
    let pending = set_cookie_pairs(&res).join("; ");
    let authorize = res.headers().get_one("location").unwrap().to_owned();
    let http = reqwest_client();
    let callback = http.get(&authorize).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    let callback = callback.strip_prefix("http://127.0.0.1:3000").unwrap().to_owned();

    let res = get(callback, &pending).await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("location"), Some("/me"));
    let session = set_cookie_pairs(&res).join("; ");

    let res = get("/me".into(), &session).await;
    assert_eq!(res.status(), Status::Ok);
    let claims: serde_json::Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
    assert_eq!(claims["sub"], "erin");

    let res = client
        .post("/auth/logout")
        .header(Accept::JSON)
        .header(Header::new("cookie", session.clone()))
        .dispatch()
        .await;
    assert!(res.status().class().is_success(), "{}", res.status());
    let res = get("/me".into(), &session).await;
    assert_eq!(res.status(), Status::Unauthorized, "the logged-out session is refused even if replayed");
}

fn reqwest_client() -> auth_testkit::reqwest::Client {
    auth_testkit::reqwest::Client::builder().redirect(auth_testkit::reqwest::redirect::Policy::none()).build().unwrap()
}
