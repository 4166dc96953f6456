//! Shared set-up of the benchmarks: a provider, an [`Auth`], and a session cookie holding about
//! 1 KiB of claims, obtained through the real login flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_core::{Auth, KeyRing, Method, Provider, RequestView, SessionKey};
use auth_testkit::{TestProvider, TestUser};

/// About 1 KiB of realistic claims (groups, roles, profile).
pub fn claims_user() -> TestUser {
    let groups: Vec<String> = (0..22).map(|i| format!("engineering-team-{i:02}")).collect();
    TestUser::new("bench-user")
        .with_name("Benchmark User")
        .with_picture("https://avatars.example.com/u/1234567890?size=128")
        .with_claim("groups", serde_json::json!(groups))
        .with_claim("roles", serde_json::json!(["reader", "writer", "reviewer", "release-manager"]))
        .with_claim("locale", "en-GB")
        .with_claim("zoneinfo", "Europe/London")
        .with_claim("department", "Platform Engineering / Identity and Access")
}

/// Everything a guard benchmark needs.
#[derive(Debug)]
pub struct Fixture {
    /// Keeps the provider alive.
    pub provider: TestProvider,
    /// The auth state.
    pub auth: Auth,
    /// `Cookie` header value carrying a valid session.
    pub cookie: String,
    /// The session's claims, as JSON text (for the peers to store the same data).
    pub claims_json: String,
    /// The session itself.
    pub session: auth_core::Session,
    /// The keys the `Auth` seals cookies with (unless `configure` gave it others).
    pub keys: KeyRing,
}

impl Fixture {
    /// `n` distinct session cookies (`Cookie` header values) for [`Fixture::session`], each sealed
    /// anew as a login would (the cookie store; a distinct random nonce each): `n` users to cycle
    /// through without `n` logins.
    pub async fn distinct_cookies(&self, n: usize) -> Vec<String> {
        use auth_core::SessionStore as _;
        let payload = auth_core::CookieStore::new().save(&self.session).await.unwrap();
        let name = self.auth.session_cookie_name();
        (0..n).map(|_| format!("{name}={}", self.keys.seal(b"session", &payload).unwrap())).collect()
    }
}

/// Logs `claims_user()` in through the whole flow and returns the session cookie.
pub async fn fixture() -> Fixture {
    fixture_with(|builder| builder).await
}

/// [`fixture`] with the `Auth` configured further (another session store).
pub async fn fixture_with(configure: impl FnOnce(auth_core::AuthBuilder) -> auth_core::AuthBuilder) -> Fixture {
    fixture_on(TestProvider::builder(), configure).await
}

/// [`fixture_with`] against a provider built from `op` (its user is [`claims_user`]).
pub async fn fixture_on(
    op: auth_testkit::TestProviderBuilder,
    configure: impl FnOnce(auth_core::AuthBuilder) -> auth_core::AuthBuilder,
) -> Fixture {
    let provider = op.user(claims_user()).start().await.unwrap();
    // Two rings with one key: the `Auth`'s, and the fixture's for `distinct_cookies`.
    let key = SessionKey::generate().to_base64();
    let keys = KeyRing::from_text(&key).unwrap();
    let builder = Auth::builder()
        .provider(
            Provider::oidc("oidc", provider.issuer(), provider.client_id())
                .with_client_secret(provider.client_secret()),
        )
        .session_keys(KeyRing::from_text(&key).unwrap());
    let auth = configure(builder).build().await.unwrap();
    let login = auth.handle(&RequestView::new(Method::Get, "/auth/oidc/login", None), b"").await;
    let pending: Vec<String> = cookie_pairs(&login.headers);
    let http = reqwest_client();
    let res = http.get(login.header("location").unwrap()).send().await.unwrap();
    let callback = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let cookie = pending.join("; ");
    let req = RequestView::new(Method::Get, callback.path(), callback.query()).with_header("cookie", &cookie);
    let done = auth.complete_login("oidc", &req, b"").await;
    let session = done.outcome.expect("login");
    let claims_json = serde_json::to_string(session.session.claims()).unwrap();
    let session = session.session;
    let cookie = done.set_cookies.iter().find(|c| c.starts_with("auth_session=")).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    Fixture { provider, auth, cookie, claims_json, session, keys }
}

fn cookie_pairs(headers: &[(&'static str, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| *n == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap_or_default().to_owned())
        .collect()
}

fn reqwest_client() -> auth_testkit::reqwest::Client {
    auth_testkit::reqwest::Client::builder().redirect(auth_testkit::reqwest::redirect::Policy::none()).build().unwrap()
}
