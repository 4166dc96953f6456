//! Drives auth-core directly (no web framework) against the auth-testkit provider over real sockets.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;

use auth_core::{Auth, AuthBuilder, AuthResponse, KeyRing, LoginCompletion, Method, Provider, RequestView, SessionKey};
use auth_testkit::{TestProvider, TestProviderBuilder};

/// A cookie jar as a browser would keep it for the app.
#[derive(Debug, Default, Clone)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    pub fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub fn absorb(&mut self, set_cookies: impl IntoIterator<Item = impl AsRef<str>>) {
        for c in set_cookies {
            let c = c.as_ref();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub fn absorb_response(&mut self, res: &AuthResponse) {
        self.absorb(res.headers.iter().filter(|(n, _)| *n == "set-cookie").map(|(_, v)| v.clone()));
    }
}

pub struct Rig {
    pub op: TestProvider,
    pub auth: Auth,
    pub jar: Jar,
    pub http: reqwest::Client,
}

pub fn provider_for(op: &TestProvider) -> Provider {
    Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret())
}

pub fn builder_for(op: &TestProvider) -> AuthBuilder {
    Auth::builder()
        .provider(provider_for(op))
        .base_url("http://127.0.0.1:3000")
        .session_keys(KeyRing::new(SessionKey::generate()))
}

pub async fn rig() -> Rig {
    rig_with(TestProvider::builder(), |b| b).await
}

pub async fn rig_with(op: TestProviderBuilder, configure: impl FnOnce(AuthBuilder) -> AuthBuilder) -> Rig {
    let op = op.start().await.unwrap();
    let auth = configure(builder_for(&op)).build().await.unwrap();
    Rig { op, auth, jar: Jar::default(), http: http() }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl Rig {
    /// `GET /auth/oidc/login`; returns the authorization URL.
    pub async fn start_login(&mut self, next: &str) -> String {
        let query = format!("next={next}");
        let cookie = self.jar.header();
        let req = RequestView::new(Method::Get, "/auth/oidc/login", Some(&query)).with_header("cookie", &cookie);
        let res = self.auth.handle(&req, b"").await;
        assert_eq!(res.status, 302, "{}", res.body);
        self.jar.absorb_response(&res);
        res.header("location").unwrap().to_owned()
    }

    /// The provider's redirect back: the callback URL.
    pub async fn authorize(&self, url: &str) -> url::Url {
        let res = self.http.get(url).send().await.unwrap();
        assert!(res.status().is_redirection(), "{}", res.status());
        url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// The app's callback for `url`.
    pub async fn complete(&mut self, url: &url::Url) -> LoginCompletion {
        let cookie = self.jar.header();
        let req = RequestView::new(Method::Get, url.path(), url.query()).with_header("cookie", &cookie);
        let done = self.auth.complete_login("oidc", &req, b"").await;
        self.jar.absorb(&done.set_cookies);
        done
    }

    /// The whole login; the completion of the callback.
    pub async fn login(&mut self) -> LoginCompletion {
        let url = self.start_login("/me").await;
        let callback = self.authorize(&url).await;
        self.complete(&callback).await
    }

    /// The session the jar's cookie stands for.
    pub async fn session(&self) -> Option<std::sync::Arc<auth_core::Session>> {
        let cookie = self.jar.header();
        let req = RequestView::new(Method::Get, "/me", None).with_header("cookie", &cookie);
        self.auth.session(&req).await.session
    }
}
