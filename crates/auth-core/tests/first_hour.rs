//! What a new user meets in the first hour (issue 11): mistakes that say what to fix.
#![allow(clippy::unwrap_used)]

mod common;

use auth_core::{Auth, Error, Provider};
use auth_testkit::TestProvider;
use common::{Jar, Rig};

fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k: &str| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn a_wrong_client_secret_is_the_apps_configuration_error() {
    let op = TestProvider::start().await.unwrap();
    let env = env_of(vec![
        ("OIDC_ISSUER", op.issuer().to_owned()),
        ("OIDC_CLIENT_ID", op.client_id().to_owned()),
        ("OIDC_CLIENT_SECRET", "not-the-secret".to_owned()),
    ]);
    let auth = Auth::builder().from_env_with(env).unwrap().build().await.unwrap();
    let mut r = Rig { op, auth, jar: Jar::default(), http: common::http() };
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(&err, Error::ClientRejected { code, .. } if code == "invalid_client"), "{err:?}");
    assert_eq!(err.status(), 500, "not blamed on the provider (502)");
    assert_eq!(
        err.to_string(),
        "the app's credentials for provider `oidc` were refused (invalid_client): check OIDC_CLIENT_SECRET"
    );
    assert!(err.public_message().contains("check OIDC_CLIENT_SECRET"), "{}", err.public_message());
    assert!(!err.public_message().contains("not-the-secret"), "never the secret itself");
}

/// GitHub answers token errors with HTTP 200 and codes of its own: a wrong secret is still the
/// app's configuration error, and a bad code still a refused grant, never "an invalid token
/// response" blamed on the provider.
#[tokio::test]
async fn githubs_errors_in_a_200_are_read_as_errors() {
    let op = TestProvider::start().await.unwrap();
    op.inject(auth_testkit::Fault::TokenErrorsAsGitHub);
    let env = env_of(vec![
        ("OIDC_ISSUER", op.issuer().to_owned()),
        ("OIDC_CLIENT_ID", op.client_id().to_owned()),
        ("OIDC_CLIENT_SECRET", "not-the-secret".to_owned()),
    ]);
    let auth = Auth::builder().from_env_with(env).unwrap().build().await.unwrap();
    let mut r = Rig { op, auth, jar: Jar::default(), http: common::http() };
    let err = r.login().await.outcome.unwrap_err();
    assert!(matches!(&err, Error::ClientRejected { code, .. } if code == "incorrect_client_credentials"), "{err:?}");
    assert_eq!(err.status(), 500);
    assert!(err.to_string().contains("check OIDC_CLIENT_SECRET"), "{err}");

    let mut r = common::rig().await;
    r.op.inject(auth_testkit::Fault::TokenErrorsAsGitHub);
    let url = r.start_login("/").await;
    let mut callback = r.authorize(&url).await;
    let query: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" { "not-a-code".to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(query);
    let err = r.complete(&callback).await.outcome.unwrap_err();
    assert!(matches!(&err, Error::TokenRejected { code } if code == "bad_verification_code"), "{err:?}");
}

#[tokio::test]
async fn from_env_registers_every_configured_preset() {
    let env = env_of(vec![
        ("GOOGLE_CLIENT_ID", "g".to_owned()),
        ("GOOGLE_CLIENT_SECRET", "gs".to_owned()),
        ("GITHUB_CLIENT_ID", "h".to_owned()),
        ("OIDC_CLIENT_ID", "o".to_owned()),
        ("OIDC_ISSUER", "https://id.example.com".to_owned()),
    ]);
    let builder = Auth::builder().from_env_with(env).unwrap();
    assert_eq!(builder.provider_names().collect::<Vec<_>>(), ["oidc", "google", "github"]);
}

#[tokio::test]
async fn no_provider_names_the_variables() {
    let err = Auth::builder().from_env_with(|_| None).unwrap().build().await.unwrap_err();
    let text = err.to_string();
    for var in ["OIDC_ISSUER", "OIDC_CLIENT_ID", "GOOGLE_CLIENT_ID", "GITHUB_CLIENT_ID"] {
        assert!(text.contains(var), "{var} in {text}");
    }
}

#[tokio::test]
async fn the_dev_provider_stands_in_until_one_is_configured() {
    let (builder, dev) = auth_testkit::dev_provider_unless_configured(Auth::builder()).await.unwrap();
    let dev = dev.expect("nothing configured: the development provider");
    let auth = builder.build().await.unwrap();
    assert_eq!(auth.provider_names().collect::<Vec<_>>(), ["oidc"]);
    assert!(auth.is_provider_ready("oidc"));
    drop(dev);
    let op = TestProvider::start().await.unwrap();
    let configured = Auth::builder().provider(Provider::oidc("corp", op.issuer(), op.client_id()));
    let (builder, dev) = auth_testkit::dev_provider_unless_configured(configured).await.unwrap();
    assert!(dev.is_none(), "a configured provider wins");
    assert!(builder.has_providers());
}

#[tokio::test]
async fn a_report_reads_as_sentences() {
    let err = Auth::builder().from_env_with(|k| (k == "APP_URL").then(|| "not a url".into())).unwrap_err();
    let report = auth_core::Report::from(err);
    let text = format!("{report:?}");
    assert!(text.starts_with("environment variable APP_URL: is not a URL"), "{text}");
    assert!(!text.contains("Env {"), "no Debug dump: {text}");
}
