//! The social example with an OIDC provider named `google` and a plain OAuth 2.0 provider (no ID
//! token; claims mapped from userinfo) named `github`, both played by auth-testkit.
#![allow(clippy::unwrap_used)]

use auth_core::{Auth, ClaimMapping, KeyRing, Profile, Provider, SessionKey};
use auth_testkit::{Browser, TestProvider, TestUser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_and_plain_oauth2_side_by_side() {
    let op = TestProvider::start().await.unwrap();
    op.set_user(TestUser::new("octo").with_name("Octo Cat"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let google = Provider::oidc("google", op.issuer(), op.client_id()).with_client_secret(op.client_secret());
    let github = Provider::oauth2(
        "github",
        format!("{}/authorize", op.issuer()),
        format!("{}/token", op.issuer()),
        format!("{}/userinfo", op.issuer()),
        op.client_id(),
    )
    .with_client_secret(op.client_secret())
    .with_scopes(["profile", "email"])
    .with_profile(Profile::Custom(ClaimMapping { sub: "/sub".into(), ..ClaimMapping::default() }));
    let auth = Auth::builder()
        .provider(google)
        .provider(github)
        .base_url(&base)
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, example_axum_social::app(auth)).await });

    let home = Browser::new().get(&format!("{base}/")).await.unwrap().text().await.unwrap();
    assert!(home.contains("/auth/google/login") && home.contains("/auth/github/login"), "{home}");
    for provider in ["google", "github"] {
        let browser = Browser::new();
        let res = browser.login(&base, provider).await.unwrap();
        assert_eq!(res.status(), 200, "{provider}");
        let page = browser.get(&format!("{base}/")).await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("Logged in with {provider} as <b>Octo Cat</b>")), "{page}");
    }
    // The plain OAuth 2.0 login asked for no `openid` scope, so no ID token and no nonce were used.
    assert!(op.last_authorize_param("nonce").is_none());
}
