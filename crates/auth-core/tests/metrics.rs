//! Observability: the `metrics` counters and histograms a real flow records (through
//! `metrics-util`'s debugging recorder), and the `tracing` spans per flow, which name the provider
//! and never carry a token, code, state or cookie.
//!
//! The recorder is global (refreshes and introspections run in tasks of their own, which a
//! thread-local recorder would miss), so each test uses a provider name of its own and reads only
//! the metrics labelled with it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use auth_core::{Auth, KeyRing, LoginCompletion, MemoryStore, Method, Provider, RequestView, SessionKey, metrics};
use auth_testkit::{Fault, TestProvider, TestProviderBuilder};
use common::{Jar, http};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const APP: &str = "http://127.0.0.1:3000";

/// Every metric recorded so far: counters summed, histograms by their number of samples.
type Totals = HashMap<(String, Vec<(String, String)>), u64>;

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this test binary");
        snapshotter
    })
}

/// The total of `name` over every series whose labels include `labels`. (A snapshot takes the
/// values it reports, so every test's snapshots add up here.)
fn total(name: &str, labels: &[(&str, &str)]) -> u64 {
    static TOTALS: OnceLock<Mutex<Totals>> = OnceLock::new();
    let mut totals = TOTALS.get_or_init(Mutex::default).lock().unwrap();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        let mut series: Vec<(String, String)> =
            key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
        series.sort();
        let n = match value {
            DebugValue::Counter(n) => n,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => 0,
        };
        *totals.entry((key.name().to_owned(), series)).or_default() += n;
    }
    totals
        .iter()
        .filter(|((metric, series), _)| {
            metric == name && labels.iter().all(|(k, v)| series.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|(_, n)| n)
        .sum()
}

struct App {
    op: TestProvider,
    auth: Auth,
    name: &'static str,
    jar: Jar,
}

async fn app(name: &'static str, op: TestProviderBuilder) -> App {
    snapshotter();
    let op = op.start().await.unwrap();
    let auth = Auth::builder()
        .provider(Provider::oidc(name, op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
        .base_url(APP)
        .session_keys(KeyRing::new(SessionKey::generate()))
        .store(MemoryStore::new())
        .build()
        .await
        .unwrap();
    App { op, auth, name, jar: Jar::default() }
}

impl App {
    /// The whole login, and the callback URL the provider sent the browser to.
    async fn login(&mut self) -> (LoginCompletion, url::Url) {
        let path = format!("/auth/{}/login", self.name);
        let res = self.auth.handle(&RequestView::new(Method::Get, &path, Some("next=/me")), b"").await;
        assert_eq!(res.status, 302, "{}", res.body);
        self.jar.absorb_response(&res);
        let at_provider = http().get(res.header("location").unwrap()).send().await.unwrap();
        let callback = url::Url::parse(at_provider.headers()["location"].to_str().unwrap()).unwrap();
        let cookie = self.jar.header();
        let req = RequestView::new(Method::Get, callback.path(), callback.query()).with_header("cookie", &cookie);
        let done = self.auth.complete_login(self.name, &req, b"").await;
        self.jar.absorb(&done.set_cookies);
        (done, callback)
    }

    async fn session(&self) -> Option<Arc<auth_core::Session>> {
        let cookie = self.jar.header();
        self.auth.session(&RequestView::new(Method::Get, "/me", None).with_header("cookie", &cookie)).await.session
    }

    async fn bearer(&self, token: &str) -> Result<Arc<auth_core::Bearer>, auth_core::Error> {
        let header = format!("Bearer {token}");
        let req = RequestView::new(Method::Get, "/api/whoami", None).with_header("authorization", &header);
        self.auth.bearer(&req).await
    }
}

#[tokio::test]
async fn a_login_counts_as_started_and_completed() {
    let mut app = app("m-login", TestProvider::builder()).await;
    app.login().await.0.outcome.unwrap();
    let provider = ("provider", "m-login");
    assert_eq!(total(metrics::LOGINS_STARTED, &[provider]), 1);
    assert_eq!(total(metrics::LOGINS_COMPLETED, &[provider]), 1);
    assert_eq!(total(metrics::LOGINS_FAILED, &[provider]), 0);
    // The provider's endpoints were timed, and so was the store.
    assert!(total(metrics::PROVIDER_REQUEST_SECONDS, &[provider, ("endpoint", "token")]) >= 1);
    assert!(total(metrics::PROVIDER_REQUEST_SECONDS, &[provider, ("endpoint", "discovery")]) >= 1);
    assert!(total(metrics::STORE_SECONDS, &[("op", "save")]) >= 1);
    assert!(total(metrics::JWKS_FETCHES, &[provider, ("outcome", "ok")]) >= 1, "the ID token's keys");
}

#[tokio::test]
async fn a_refused_login_counts_its_reason() {
    let mut app = app("m-fault", TestProvider::builder()).await;
    app.op.inject(Fault::IdTokenBadSignature);
    app.login().await.0.outcome.unwrap_err();
    let provider = ("provider", "m-fault");
    assert_eq!(total(metrics::LOGINS_STARTED, &[provider]), 1);
    assert_eq!(total(metrics::LOGINS_COMPLETED, &[provider]), 0);
    assert_eq!(total(metrics::LOGINS_FAILED, &[provider, ("reason", "bad_signature")]), 1);

    // A callback for a provider nobody configured is counted, but not under its name.
    let req = RequestView::new(Method::Get, "/auth/made-up/callback", Some("state=x"));
    app.auth.complete_login("made-up", &req, b"").await.outcome.unwrap_err();
    assert_eq!(total(metrics::LOGINS_FAILED, &[("provider", "made-up")]), 0);
    assert!(total(metrics::LOGINS_FAILED, &[("provider", "unknown")]) >= 1);
}

#[tokio::test]
async fn bearer_tokens_count_as_accepted_or_refused_by_reason() {
    let app = app("m-bearer", TestProvider::builder()).await;
    let provider = ("provider", "m-bearer");
    let token = app.op.mint_jwt_access_token(APP, "read");
    app.bearer(&token).await.unwrap();
    app.bearer(&token).await.unwrap(); // from the cache: accepted again
    assert_eq!(total(metrics::BEARER_TOKENS, &[provider, ("outcome", "accepted")]), 2);
    assert_eq!(total(metrics::JWKS_FETCHES, &[provider, ("outcome", "ok")]), app.op.jwks_requests() as u64);
    assert_eq!(app.op.jwks_requests(), 1);

    // One signature byte changed: the signature does not verify.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut forged: Vec<char> = signature.chars().collect();
    forged[10] = if forged[10] == 'A' { 'B' } else { 'A' };
    let forged = format!("{signed}.{}", forged.into_iter().collect::<String>());
    app.bearer(&forged).await.unwrap_err();
    app.bearer("not a token").await.unwrap_err();
    let elsewhere = app.op.mint_jwt_access_token("https://another-api.example", "read");
    app.bearer(&elsewhere).await.unwrap_err();
    let refused = |reason| total(metrics::BEARER_TOKENS, &[provider, ("outcome", "refused"), ("reason", reason)]);
    assert_eq!(refused("bad_signature"), 1);
    assert_eq!(refused("malformed"), 1);
    assert_eq!(refused("wrong_audience"), 1);
}

#[tokio::test]
async fn a_refresh_is_counted() {
    let mut app = app("m-refresh", TestProvider::builder().token_ttl(Duration::from_secs(2))).await;
    app.login().await.0.outcome.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.session().await.expect("still logged in");
    assert_eq!(app.op.refresh_requests(), 1);
    assert_eq!(total(metrics::REFRESHES, &[("provider", "m-refresh"), ("outcome", "ok")]), 1);
}

#[tokio::test]
async fn a_logout_is_counted_by_kind() {
    let mut app = app("m-logout", TestProvider::builder()).await;
    app.login().await.0.outcome.unwrap();
    let cookie = app.jar.header();
    let req = RequestView::new(Method::Post, "/auth/logout", None).with_header("cookie", &cookie);
    app.auth.handle(&req, b"").await;
    assert!(app.session().await.is_none());
    // The testkit provider has an end_session_endpoint: the browser goes on to it.
    assert_eq!(total(metrics::LOGOUTS, &[("provider", "m-logout"), ("kind", "rp")]), 1);
}

/// What a [`Capture`] saw: `(span name, field, value)` for every span field, and
/// `("event", field, value)` for every field of an event of auth-core.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

struct Capture(Seen);

struct Fields<'a>(&'a str, &'a mut Vec<(String, String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.1.push((self.0.to_owned(), field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.1.push((self.0.to_owned(), field.name().to_owned(), value.to_owned()));
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        attrs.record(&mut Fields(attrs.metadata().name(), &mut self.0.lock().unwrap()));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let name = ctx.span(id).map_or("?", |s| s.name());
        values.record(&mut Fields(name, &mut self.0.lock().unwrap()));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target().starts_with("auth_core") {
            event.record(&mut Fields("event", &mut self.0.lock().unwrap()));
        }
    }
}

#[tokio::test] // one thread: the subscriber below sees every task of the test
async fn each_flow_has_a_span_with_the_provider_and_no_secret() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let seen = Seen::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(Capture(seen.clone())));

    let mut app = app("m-trace", TestProvider::builder()).await;
    let (done, callback) = app.login().await;
    done.outcome.unwrap();
    let session = app.session().await.unwrap();
    let access_token = app.op.mint_jwt_access_token(APP, "read");
    app.bearer(&access_token).await.unwrap();
    app.bearer("forged.token.value").await.unwrap_err();
    let cookie = app.jar.header();
    app.auth.handle(&RequestView::new(Method::Post, "/auth/logout", None).with_header("cookie", &cookie), b"").await;

    let seen = seen.lock().unwrap();
    for flow in ["auth.login", "auth.callback", "auth.bearer", "auth.logout"] {
        assert!(
            seen.iter().any(|(span, field, value)| span == flow && field == "provider" && value == "m-trace"),
            "{flow} names the provider: {seen:?}"
        );
    }
    let query: HashMap<String, String> = callback.query_pairs().into_owned().collect();
    let tokens = session.tokens();
    let mut secrets = vec![
        access_token,
        "forged.token.value".to_owned(),
        tokens.access_token.secret().to_owned(),
        tokens.refresh_token.as_ref().unwrap().secret().to_owned(),
        tokens.id_token.as_ref().unwrap().secret().to_owned(),
        query["code"].clone(),
        query["state"].clone(),
    ];
    secrets.extend(app.jar.0.values().cloned());
    secrets.extend(cookie.split("; ").filter_map(|c| c.split_once('=')).map(|(_, v)| v.to_owned()));
    for (span, field, value) in seen.iter() {
        for secret in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(!value.contains(secret.as_str()), "{span} {field} carries a secret: {value}");
        }
    }
}
