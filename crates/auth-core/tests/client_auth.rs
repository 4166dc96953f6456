//! `private_key_jwt`, `client_secret_jwt` (RFC 7523, OIDC Core §9) and pushed authorization
//! requests (RFC 9126) against auth-testkit, which checks every assertion it is sent.
#![allow(clippy::unwrap_used)]

mod common;

use auth_core::{AssertionAudience, Auth, ClientKey, KeyRing, Method, Provider, RequestView, SessionKey};
use auth_testkit::{Fault, TestClient, TestClientKey, TestProvider, TestProviderBuilder};
use common::{Jar, Rig};

/// A rig whose provider registers `client` and whose app is configured by `provider`.
async fn rig_for(op: TestProviderBuilder, client: TestClient, provider: impl FnOnce(&TestProvider) -> Provider) -> Rig {
    let op = op.client(client).start().await.unwrap();
    let auth = Auth::builder()
        .provider(provider(&op))
        .base_url("http://127.0.0.1:3000")
        .session_keys(KeyRing::new(SessionKey::generate()))
        .build()
        .await
        .unwrap();
    Rig { op, auth, jar: Jar::default(), http: common::http() }
}

async fn key_rig(key: &TestClientKey, app_key: ClientKey) -> Rig {
    rig_for(TestProvider::builder(), TestClient::private_key_jwt("pk", key.public_jwk()), |op| {
        Provider::oidc("oidc", op.issuer(), "pk").with_client_key(app_key).with_token_revocation()
    })
    .await
}

#[tokio::test]
async fn private_key_jwt_logs_in_with_rsa_ec_and_ed25519_keys_from_pem_or_jwk() {
    for key in [TestClientKey::rsa(), TestClientKey::ec_p256(), TestClientKey::ed25519()] {
        for (form, app_key) in [
            ("PEM", ClientKey::from_pem(&key.private_pem()).unwrap()),
            ("JWK", ClientKey::parse(&key.private_jwk().to_string()).unwrap()),
        ] {
            assert_eq!(app_key.kid(), key.kid(), "{} {form}: the thumbprint is the kid", key.alg());
            assert_eq!(app_key.algorithm(), key.alg());
            let mut r = key_rig(&key, app_key).await;
            r.login().await.outcome.unwrap_or_else(|e| panic!("{} {form}: {e}", key.alg()));
            // A second login: a fresh jti (the provider refuses a replayed one).
            r.jar = Jar::default();
            r.login().await.outcome.unwrap_or_else(|e| panic!("{} {form}, again: {e}", key.alg()));
            assert_eq!(r.op.client_assertions_accepted(), 2, "{} {form}", key.alg());
        }
    }
}

#[tokio::test]
async fn assertions_authenticate_revocation_and_introspection_too() {
    let key = TestClientKey::ec_p256();
    let mut r = key_rig(&key, ClientKey::parse(&key.private_pem()).unwrap()).await;
    r.login().await.outcome.unwrap();
    let cookie = r.jar.header();
    let req = RequestView::new(Method::Post, "/auth/logout", None)
        .with_header("cookie", &cookie)
        .with_header("accept", "application/json");
    let res = r.auth.handle(&req, b"").await;
    assert!(res.status < 400, "{}: {}", res.status, res.body);
    // The login's token request, then the revocation of the refresh and access tokens.
    let revoked = r.op.revoke_requests();
    assert!(revoked >= 1, "the logout revoked the tokens with an assertion ({revoked})");
    assert_eq!(r.op.client_assertions_accepted(), 1 + revoked);

    // Introspection of an opaque token, by a resource server authenticating the same way.
    let auth = Auth::builder()
        .provider(
            Provider::oidc("oidc", r.op.issuer(), "pk").with_client_key(ClientKey::parse(&key.private_pem()).unwrap()),
        )
        .base_url("http://127.0.0.1:3000")
        .build()
        .await
        .unwrap();
    let token = format!("Bearer {}", r.op.mint_access_token_for("http://127.0.0.1:3000", "read"));
    let before = r.op.client_assertions_accepted();
    let req = RequestView::new(Method::Get, "/api", None).with_header("authorization", &token);
    auth.bearer(&req).await.unwrap();
    assert_eq!(r.op.client_assertions_accepted(), before + 1);
}

#[tokio::test]
async fn client_secret_jwt_logs_in_without_sending_the_secret() {
    let mut r =
        rig_for(TestProvider::builder(), TestClient::secret_jwt("hs", "a-long-shared-secret-0123456789"), |op| {
            Provider::oidc("oidc", op.issuer(), "hs")
                .with_client_secret("a-long-shared-secret-0123456789")
                .with_client_auth(auth_core::ClientAuth::SecretJwt)
        })
        .await;
    r.login().await.outcome.unwrap();
    assert_eq!(r.op.client_assertions_accepted(), 1);
}

#[tokio::test]
async fn a_provider_that_wants_its_token_endpoint_as_audience() {
    let key = TestClientKey::ec_p256();
    let mut r = key_rig(&key, ClientKey::parse(&key.private_pem()).unwrap()).await;
    r.op.inject(Fault::AssertionAudienceTokenEndpointOnly);
    let err = r.login().await.outcome.unwrap_err();
    assert_eq!(err.status(), 500, "the app's configuration: {err}");
    let text = err.to_string();
    assert!(text.contains("client key") && text.contains("assertion audience"), "names what to check: {text}");
    assert!(r.session().await.is_none());

    let op = r.op;
    let auth = Auth::builder()
        .provider(
            Provider::oidc("oidc", op.issuer(), "pk")
                .with_client_key(ClientKey::parse(&key.private_pem()).unwrap())
                .with_assertion_audience(AssertionAudience::TokenEndpoint),
        )
        .session_keys(KeyRing::new(SessionKey::generate()))
        .base_url("http://127.0.0.1:3000")
        .build()
        .await
        .unwrap();
    let mut r = Rig { op, auth, jar: Jar::default(), http: common::http() };
    r.login().await.outcome.expect("aud = the token endpoint");
}

#[tokio::test]
async fn an_assertion_the_providers_clock_calls_expired_is_refused_cleanly() {
    let key = TestClientKey::ec_p256();
    let mut r = key_rig(&key, ClientKey::parse(&key.private_pem()).unwrap()).await;
    // The provider's clock runs 5 minutes ahead: our one-minute assertion has expired.
    r.op.inject(Fault::ClockSkew(300));
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(err, auth_core::Error::ClientRejected { .. }), "{err}");
    assert!(r.session().await.is_none());
    assert_eq!(r.op.client_assertions_accepted(), 0);
}

#[tokio::test]
async fn an_unregistered_key_is_a_clear_configuration_error() {
    let (registered, other) = (TestClientKey::ec_p256(), TestClientKey::ec_p256());
    let mut r = key_rig(&registered, ClientKey::parse(&other.private_pem()).unwrap()).await;
    let err = r.login().await.outcome.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(other.kid()), "names the kid it signed with: {text}");
    assert!(!text.contains("PRIVATE"), "{text}");
}

async fn par_rig(op: TestProviderBuilder, par: bool) -> Rig {
    rig_for(op, TestClient::new("web", "web-secret"), |op| {
        let p = Provider::oidc("oidc", op.issuer(), "web").with_client_secret("web-secret");
        if par { p.with_pushed_authorization_requests() } else { p }
    })
    .await
}

#[tokio::test]
async fn a_provider_requiring_par_gets_every_request_pushed() {
    let mut r = par_rig(TestProvider::builder().require_pushed_authorization_requests(true), false).await;
    let url = url::Url::parse(&r.start_login("/me").await).unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["client_id", "request_uri"], "the browser carries nothing else: {url}");
    assert_eq!(r.op.par_requests(), 1);
    assert_eq!(r.op.last_par_param("code_challenge_method").as_deref(), Some("S256"));
    assert!(r.op.last_par_param("state").is_some() && r.op.last_par_param("nonce").is_some());
    let callback = r.authorize(url.as_str()).await;
    r.complete(&callback).await.outcome.unwrap();
    assert!(r.session().await.is_some());
}

#[tokio::test]
async fn par_is_opt_in_for_a_provider_that_does_not_require_it() {
    let mut plain = par_rig(TestProvider::builder(), false).await;
    plain.login().await.outcome.unwrap();
    assert_eq!(plain.op.par_requests(), 0, "not pushed unless asked");
    let mut pushed = par_rig(TestProvider::builder(), true).await;
    pushed.login().await.outcome.unwrap();
    assert_eq!(pushed.op.par_requests(), 1);
}

#[tokio::test]
async fn par_with_private_key_jwt() {
    let key = TestClientKey::rsa();
    let mut r = rig_for(
        TestProvider::builder().require_pushed_authorization_requests(true),
        TestClient::private_key_jwt("pk", key.public_jwk()),
        |op| Provider::oidc("oidc", op.issuer(), "pk").with_client_key(ClientKey::parse(&key.private_pem()).unwrap()),
    )
    .await;
    r.login().await.outcome.unwrap();
    assert_eq!((r.op.par_requests(), r.op.client_assertions_accepted()), (1, 2), "PAR and token request");
}

#[tokio::test]
async fn a_par_endpoint_that_fails_is_an_error_page_not_a_redirect() {
    let r = par_rig(TestProvider::builder(), true).await;
    r.op.inject(Fault::ParEndpointDown);
    let req = RequestView::new(Method::Get, "/auth/oidc/login", Some("next=/me")).with_header("accept", "text/html");
    let res = r.auth.handle(&req, b"").await;
    assert!(res.status > 500, "a provider problem: {}", res.status);
    assert!(res.header("location").is_none(), "no redirect to the provider");
    assert!(res.header("set-cookie").is_none(), "no pending login: {:?}", res.headers);
    assert!(res.body.contains("provider"), "{}", res.body);
}
