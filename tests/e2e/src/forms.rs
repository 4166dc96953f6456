//! The flows without a browser: an HTTP client with a cookie jar plays the browser, following
//! redirects one by one and submitting the provider's HTML forms.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, ORIGIN};
use serde_json::Value;
use url::Url;

use crate::html;
use crate::stack::Stack;
use std::sync::Arc;

use crate::{Artifacts, ClientKind, Example, Flow, run_flows};

/// What a browser sends when it navigates.
const NAVIGATE: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// One simulated browser: its own cookie jar, no automatic redirects.
#[derive(Debug)]
pub struct Agent {
    http: reqwest::Client,
}

/// A response at the end of a chain of redirects.
#[derive(Debug)]
pub struct Landing {
    /// The final URL.
    pub url: Url,
    /// Its status.
    pub status: StatusCode,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body.
    pub body: String,
    /// Every response on the way, the final one included: (status, URL requested).
    pub hops: Vec<(StatusCode, Url)>,
}

impl Landing {
    /// The page, parsed.
    pub fn page(&self) -> html::Page {
        html::Page::parse(&self.body)
    }

    /// Whether any hop (the final one included) requested a URL starting with `prefix`.
    pub fn passed(&self, prefix: &str) -> bool {
        self.hops.iter().any(|(_, u)| u.as_str().starts_with(prefix))
    }

    /// The body as JSON (panics with the page otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Landing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {} ({})", self.status, self.url, self.content_type)?;
        for (status, url) in &self.hops {
            writeln!(f, "  via {status} {url}")?;
        }
        let body: String = self.body.chars().take(1500).collect();
        write!(f, "  body: {body}")
    }
}

impl Default for Agent {
    fn default() -> Self {
        Agent::new()
    }
}

impl Agent {
    /// A browser with an empty cookie jar.
    pub fn new() -> Agent {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client");
        Agent { http }
    }

    /// Navigates to `url` (GET, `Accept` of a browser) and follows the redirects.
    pub async fn navigate(&self, url: &str) -> Landing {
        let url = Url::parse(url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
        let res = self.send(self.http.get(url.clone()).header(ACCEPT, NAVIGATE)).await;
        self.follow(res).await
    }

    /// Submits `form` of the page at `page_url` with `fields`, and follows the redirects.
    pub async fn submit(&self, page_url: &Url, form: &html::Form, fields: &[(String, String)]) -> Landing {
        let action = page_url.join(&form.action).unwrap_or_else(|e| panic!("bad form action {}: {e}", form.action));
        assert_eq!(form.method, "post", "only POST forms are expected: {form:?}");
        let origin = page_url.origin().ascii_serialization();
        let req = self.http.post(action).header(ACCEPT, NAVIGATE).header(ORIGIN, origin).form(fields);
        let res = self.send(req).await;
        self.follow(res).await
    }

    /// POSTs an empty form to `url` as a page of `origin` would, and follows the redirects.
    pub async fn post_form(&self, url: &str, origin: &str) -> Landing {
        let req = self
            .http
            .post(url)
            .header(ACCEPT, NAVIGATE)
            .header(ORIGIN, origin)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("");
        let res = self.send(req).await;
        self.follow(res).await
    }

    /// GETs `url` as an API client (`Accept: application/json`), no redirects followed.
    pub async fn api_get(&self, url: &str) -> (StatusCode, String) {
        let res = self.send(self.http.get(url).header(ACCEPT, "application/json")).await;
        let status = res.status();
        (status, res.text().await.unwrap_or_default())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let req = req.build().expect("a valid request");
        let what = format!("{} {}", req.method(), req.url());
        self.http.execute(req).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    async fn follow(&self, mut res: reqwest::Response) -> Landing {
        let mut hops = Vec::new();
        loop {
            let url = res.url().clone();
            let status = res.status();
            hops.push((status, url.clone()));
            if !status.is_redirection() {
                let content_type =
                    res.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let body = res.text().await.unwrap_or_default();
                return Landing { url, status, content_type, body, hops };
            }
            assert!(
                matches!(status.as_u16(), 301..=303),
                "{status} from {url}: a 307/308 would repeat the POST; none is expected"
            );
            assert!(hops.len() < 20, "too many redirects: {hops:?}");
            let location = res
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{status} from {url} without Location"));
            // Locations may be relative (the provider's first redirect is): resolve as a browser does.
            let next = url.join(location).unwrap_or_else(|e| panic!("bad Location {location} from {url}: {e}"));
            res = self.send(self.http.get(next).header(ACCEPT, NAVIGATE)).await;
        }
    }
}

/// Where a provider page is: the login form or the consent form of an interaction.
fn expect_interaction(stack: &Stack, landing: &Landing, prompt: &str) -> html::Page {
    let interaction = format!("{}/interaction/", stack.op.issuer);
    assert!(
        landing.status == StatusCode::OK && landing.url.as_str().starts_with(&interaction),
        "expected the provider's {prompt} page: {landing}"
    );
    let page = landing.page();
    assert_eq!(page.prompt(), Some(prompt), "expected the provider's {prompt} page: {landing}");
    page
}

/// On the provider's login page: sign in as `user`.
async fn sign_in(agent: &Agent, stack: &Stack, landing: &Landing, user: &str) -> Landing {
    let page = expect_interaction(stack, landing, "login");
    let form = page.form(None);
    agent
        .submit(&landing.url, form, &form.submission(&[("login", user), ("password", "any password")], Some("Sign-in")))
        .await
}

/// On the provider's consent page: allow.
async fn allow(agent: &Agent, stack: &Stack, landing: &Landing) -> Landing {
    let page = expect_interaction(stack, landing, "consent");
    let form = page.form(None);
    agent.submit(&landing.url, form, &form.submission(&[], Some("Continue"))).await
}

/// Panics unless `landing` is the app's `/me` with the claims of `user`.
fn expect_claims(stack: &Stack, landing: &Landing, user: &str) {
    assert!(
        landing.status == StatusCode::OK && landing.url.as_str() == stack.app.at("/me"),
        "expected {} with the claims: {landing}",
        stack.app.at("/me")
    );
    check_claims(&landing.json(), user);
}

/// Panics unless the claims are `user`'s (as the provider makes them).
pub fn check_claims(claims: &Value, user: &str) {
    assert_eq!(claims["sub"], user, "sub: {claims}");
    assert_eq!(claims["email"], format!("{user}@example.test"), "email: {claims}");
}

/// A login from a fresh jar, page by page: `/me` → the app's login route → the provider's login
/// page → consent → back on `/me` with the claims.
pub async fn log_in(agent: &Agent, stack: &Stack, user: &str) {
    let landing = agent.navigate(&stack.app.at("/me")).await;
    // 302 to the app's own login route, which comes back to /me afterwards.
    assert_eq!(landing.hops[0].0, StatusCode::FOUND, "GET /me without a session must redirect a browser: {landing}");
    let login = &landing.hops[1].1;
    assert!(
        login.as_str().starts_with(&stack.app.at("/auth/oidc/login?"))
            && login.query_pairs().any(|(k, v)| k == "next" && v == "/me"),
        "GET /me must redirect to /auth/oidc/login?next=/me: {landing}"
    );
    expect_authorization_request(stack, &landing);
    let landing = sign_in(agent, stack, &landing, user).await;
    let landing = allow(agent, stack, &landing).await;
    assert!(landing.passed(&stack.app.at("/auth/oidc/callback?code=")), "no callback with a code: {landing}");
    expect_claims(stack, &landing, user);
}

/// Panics unless the browser's authorization request (the hop to the provider's `/auth`) is as
/// the client needs: for the PAR client only `client_id` and a pushed `request_uri` (RFC 9126
/// §4), for the others the parameters themselves (with PKCE).
fn expect_authorization_request(stack: &Stack, landing: &Landing) {
    let auth = format!("{}/auth?", stack.op.issuer);
    let Some((_, url)) = landing.hops.iter().find(|(_, u)| u.as_str().starts_with(&auth)) else {
        panic!("the browser never went to the provider's {auth}…: {landing}");
    };
    let mut names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    names.sort();
    if stack.example.client == ClientKind::Par {
        assert_eq!(names, ["client_id", "request_uri"], "a pushed authorization request only: {url}");
        let request_uri = url.query_pairs().find(|(k, _)| k == "request_uri").map(|(_, v)| v.into_owned());
        assert!(
            request_uri.is_some_and(|u| u.starts_with("urn:ietf:params:oauth:request_uri:")),
            "request_uri from the provider's PAR endpoint: {url}"
        );
    } else {
        for name in ["client_id", "code_challenge", "redirect_uri", "state"] {
            assert!(names.iter().any(|n| n == name), "no {name} in the authorization request: {url}");
        }
    }
}

/// Panics unless the provider saw the client authenticate as registered: for the
/// `private_key_jwt` client, client assertions, all accepted, at least at each of `routes`
/// (`token`, `introspection`); for the PAR client, pushed requests; for the DPoP client,
/// [`expect_dpop_bound`]; for the others, no assertion.
pub fn expect_client_authentication(stack: &Stack, routes: &[&str]) {
    let client = &stack.app.client_id;
    let assertions = stack.op.client_assertions(client);
    match stack.example.client {
        ClientKind::PrivateKeyJwt => {
            let refused: Vec<_> = assertions.iter().filter(|(_, status)| *status >= 400).collect();
            assert!(
                refused.is_empty(),
                "the provider refused client assertions of {client}: {refused:?}\n{}",
                stack.op.log()
            );
            for route in routes {
                assert!(
                    assertions.iter().any(|(r, _)| r == route),
                    "no client assertion of {client} at the provider's {route} endpoint: {assertions:?}"
                );
            }
        }
        kind => {
            assert!(assertions.is_empty(), "{client} has a secret or none, yet sent client assertions: {assertions:?}");
            if kind == ClientKind::Par {
                assert!(stack.op.pushed_requests(client) > 0, "no pushed authorization request from {client}");
            }
            if kind == ClientKind::Dpop {
                expect_dpop_bound(stack);
            }
        }
    }
}

/// Panics unless the provider bound the DPoP client's tokens and saw them used with proofs: every
/// access token it issued to the client is `token_type=DPoP` with a key thumbprint (`jkt`); every
/// token request of the client carried a proof and the successful ones answered `token_type:
/// DPoP`; the only refusals were `use_dpop_nonce` (the provider requires a nonce of its own in
/// every proof unless `OP_DPOP_REQUIRE_NONCE=0`, so the app's first request is refused once and
/// retried with the `DPoP-Nonce`); and the app called userinfo with `Authorization: DPoP` and a
/// proof, answered 200 (and never with a Bearer token).
pub fn expect_dpop_bound(stack: &Stack) {
    let op = &stack.op;
    let client = &stack.app.client_id;
    let log = || op.log().lines().filter(|l| l.starts_with("[op]")).collect::<Vec<_>>().join("\n");
    let tokens = op.access_tokens(client);
    assert!(!tokens.is_empty(), "the provider issued no access token to {client}; its events:\n{}", log());
    let unbound: Vec<_> = tokens.iter().filter(|(kind, jkt)| kind != "DPoP" || jkt == "-" || jkt.is_empty()).collect();
    assert!(unbound.is_empty(), "access tokens of {client} not bound by DPoP: {unbound:?}; events:\n{}", log());

    let requests = op.events("dpop.token", client);
    let field = |f: &std::collections::HashMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_default();
    let without_proof: Vec<_> = requests.iter().filter(|f| field(f, "proof") != "true").collect();
    assert!(without_proof.is_empty(), "token requests of {client} without a DPoP proof: {without_proof:?}");
    let ok: Vec<_> = requests.iter().filter(|f| field(f, "status") == "200").collect();
    assert!(
        ok.iter().any(|f| field(f, "grant_type") == "authorization_code"),
        "no successful code exchange of {client} with a DPoP proof; events:\n{}",
        log()
    );
    let not_dpop: Vec<_> = ok.iter().filter(|f| field(f, "token_type") != "DPoP").collect();
    assert!(not_dpop.is_empty(), "token responses to {client} not of token_type DPoP: {not_dpop:?}");
    let refused: Vec<_> = requests.iter().filter(|f| field(f, "status") != "200").collect();
    let other: Vec<_> = refused.iter().filter(|f| field(f, "error") != "use_dpop_nonce").collect();
    assert!(other.is_empty(), "token requests of {client} refused: {other:?}; events:\n{}", log());
    if op.log().contains("[op] DPoP nonces: required") {
        // The provider requires its nonce: the app's first proof had none (it knew none yet).
        assert!(
            refused.iter().any(|f| field(f, "nonce") == "sent"),
            "the provider never asked {client} for a DPoP nonce (use_dpop_nonce with a DPoP-Nonce); events:\n{}",
            log()
        );
    }
    let nonce_asked = refused.len();
    println!(
        "[{}] DPoP: {} access tokens bound, {} token requests ({nonce_asked} answered use_dpop_nonce, then retried)",
        stack.example.label,
        tokens.len(),
        requests.len()
    );

    let userinfo = op.events("dpop.userinfo", client);
    assert!(
        userinfo
            .iter()
            .any(|f| field(f, "scheme") == "DPoP" && field(f, "proof") == "true" && field(f, "status") == "200"),
        "the app never called userinfo with Authorization: DPoP and a proof (200); events:\n{}",
        log()
    );
    let bad: Vec<_> = userinfo
        .iter()
        .filter(|f| field(f, "status") != "200" && field(f, "error") != "use_dpop_nonce")
        .chain(userinfo.iter().filter(|f| field(f, "scheme") != "DPoP"))
        .collect();
    assert!(bad.is_empty(), "userinfo calls of {client} refused or not DPoP: {bad:?}; events:\n{}", log());
}

/// Panics unless the agent has no session at the app: `/me` is 401 for an API client and `/`
/// says "Not logged in".
async fn expect_logged_out(agent: &Agent, stack: &Stack) {
    let (status, body) = agent.api_get(&stack.app.at("/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "GET /me (Accept: application/json) after logout: {body}");
    let home = agent.navigate(&stack.app.at("/")).await;
    assert!(home.status == StatusCode::OK && home.body.contains("Not logged in"), "home after logout: {home}");
}

/// Panics unless `landing` is a clean error page of the app with `status`.
pub fn expect_clean_error_page(landing: &Landing, status: StatusCode) {
    assert_eq!(landing.status, status, "{landing}");
    assert!(landing.content_type.starts_with("text/html"), "the error page must be HTML: {landing}");
    assert_clean_error_text(&landing.body);
}

/// Panics when an error page's text shows internals.
pub fn assert_clean_error_text(text: &str) {
    for leak in ["panicked", "stack backtrace", "RUST_BACKTRACE", ".rs:", "Error {", "Debug"] {
        assert!(!text.contains(leak), "the error page shows internals ({leak:?}): {text}");
    }
    assert!(!text.trim().is_empty(), "the error page is empty");
}

/// Every browserless flow against one example, each in a fresh cookie jar.
pub async fn run(example: Example, artifacts: &Artifacts) {
    let logs = artifacts.fresh_dir("logs", &format!("{}-forms", example.label));
    let stack = Arc::new(Stack::start(example, &logs).await);
    let flows: Vec<Flow> = vec![
        ("forms: login", Box::pin(login_flow(stack.clone()))),
        ("forms: two tabs", Box::pin(two_tabs_flow(stack.clone()))),
        ("forms: logout at the provider", Box::pin(logout_flow(stack.clone()))),
        ("forms: back-channel logout", Box::pin(backchannel_flow(stack.clone()))),
        ("forms: deny consent", Box::pin(deny_flow(stack.clone()))),
        ("forms: 5-second access tokens are refreshed", Box::pin(refresh_flow(example, logs.join("refresh")))),
        ("forms: bearer access tokens from the provider", Box::pin(bearer_flow(stack.clone()))),
        ("forms: the client authenticated as registered", Box::pin(client_authentication(stack.clone()))),
        ("forms: the app and the provider stayed healthy", Box::pin(healthy(stack.clone()))),
    ];
    run_flows(example.label, flows).await;
    println!("[{}] forms: all flows passed; logs in {}", example.label, logs.display());
}

async fn login_flow(stack: Arc<Stack>) {
    let stack = &*stack;
    let agent = Agent::new();
    log_in(&agent, stack, "alice").await;
    // The session works for an API client too, and the home page knows the user.
    let (status, body) = agent.api_get(&stack.app.at("/me")).await;
    assert_eq!(status, StatusCode::OK, "GET /me (Accept: application/json) with a session: {body}");
    let claims: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/me is not JSON ({e}): {body}"));
    check_claims(&claims, "alice");
    let home = agent.navigate(&stack.app.at("/")).await;
    assert!(home.status == StatusCode::OK && home.body.contains("Alice"), "home when logged in: {home}");
    if stack.example.client == ClientKind::Dpop {
        // The app calls the provider's userinfo with its DPoP-bound token and a proof (`ath`).
        let (status, body) = agent.api_get(&stack.app.at("/me/userinfo")).await;
        assert_eq!(status, StatusCode::OK, "GET /me/userinfo with a DPoP-bound token: {body}");
        let info: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("/me/userinfo is not JSON ({e}): {body}"));
        check_claims(&info, "alice");
    }
}

/// Two tabs of one browser: both reach the provider's login page before either goes on; the first
/// finishes, then the second; each lands where it started.
async fn two_tabs_flow(stack: Arc<Stack>) {
    let stack = &*stack;
    let agent = Agent::new();
    let tab1 = agent.navigate(&stack.app.at("/me")).await;
    let tab2 = agent.navigate(&stack.app.at("/auth/oidc/login?next=/")).await;
    expect_interaction(stack, &tab1, "login");
    expect_interaction(stack, &tab2, "login");
    assert_ne!(tab1.url, tab2.url, "each tab has its own interaction at the provider");
    let tab1 = sign_in(&agent, stack, &tab1, "bob").await;
    let tab1 = allow(&agent, stack, &tab1).await;
    expect_claims(stack, &tab1, "bob");
    // The second tab's login page is still open: sign in there too. The provider may or may
    // not ask for consent again (it was given in the first tab).
    let mut tab2 = sign_in(&agent, stack, &tab2, "bob").await;
    if tab2.url.as_str().starts_with(&stack.op.issuer) {
        tab2 = allow(&agent, stack, &tab2).await;
    }
    assert!(tab2.passed(&stack.app.at("/auth/oidc/callback?code=")), "second tab: no callback: {tab2}");
    assert!(
        tab2.status == StatusCode::OK && tab2.url.as_str() == stack.app.at("/") && tab2.body.contains("Bob"),
        "the second tab must land on / logged in: {tab2}"
    );
    let (status, body) = agent.api_get(&stack.app.at("/me")).await;
    assert_eq!(status, StatusCode::OK, "/me after both tabs: {body}");
}

/// RP-initiated logout: the app's logout button → the provider's confirmation page → "Yes" →
/// back on the app, logged out.
async fn logout_flow(stack: Arc<Stack>) {
    let stack = &*stack;
    let agent = Agent::new();
    log_in(&agent, stack, "carol").await;
    let confirm = agent.post_form(&stack.app.at("/auth/logout"), &stack.app.url).await;
    let (status, to_provider) = &confirm.hops[1];
    assert!(confirm.hops[0].0 == StatusCode::SEE_OTHER, "POST /auth/logout must answer 303: {confirm}");
    let query: std::collections::HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert!(
        to_provider.as_str().starts_with(&format!("{}/session/end?", stack.op.issuer)),
        "POST /auth/logout must send the browser to the provider's end_session: {confirm}"
    );
    assert!(query.get("id_token_hint").is_some_and(|t| t.split('.').count() == 3), "no id_token_hint: {to_provider}");
    assert_eq!(
        query.get("post_logout_redirect_uri").map(String::as_str),
        Some(stack.app.at("/auth/logout/callback").as_str()),
        "post_logout_redirect_uri"
    );
    assert!(query.get("state").is_some_and(|s| !s.is_empty()), "no state: {to_provider}");
    assert_eq!(*status, StatusCode::OK, "the provider's logout page: {confirm}");
    let page = confirm.page();
    assert!(page.h1.as_deref().is_some_and(|h| h.contains("sign-out")), "not the logout page: {confirm}");
    let form = page.form(Some("op.logoutForm"));
    let back = agent.submit(&confirm.url, form, &form.submission(&[], Some("Yes, sign me out"))).await;
    let state = &query["state"];
    assert!(
        back.passed(&format!("{}?state={state}", stack.app.at("/auth/logout/callback"))),
        "the provider must send the browser back to /auth/logout/callback with the state: {back}"
    );
    assert!(
        back.status == StatusCode::OK && back.url.as_str() == stack.app.at("/") && back.body.contains("Not logged in"),
        "after logout: {back}"
    );
    expect_logged_out(&agent, stack).await;
}

/// Back-channel logout: the session ends at the provider (its own `/session/end`, not through
/// the app), the provider tells the app, and the app's session is over.
async fn backchannel_flow(stack: Arc<Stack>) {
    let stack = &*stack;
    let agent = Agent::new();
    log_in(&agent, stack, "dave").await;
    let confirm = agent.navigate(&format!("{}/session/end", stack.op.issuer)).await;
    assert_eq!(confirm.status, StatusCode::OK, "the provider's logout page: {confirm}");
    let page = confirm.page();
    let form = page.form(Some("op.logoutForm"));
    let done = agent.submit(&confirm.url, form, &form.submission(&[], Some("Yes, sign me out"))).await;
    assert!(
        done.status == StatusCode::OK && done.url.as_str() == format!("{}/session/end/success", stack.op.issuer),
        "the provider's logout: {done}"
    );
    // The provider delivers the logout token before it answers the confirmation.
    if let Err(e) = stack.op.backchannel_delivered(&stack.app.client_id) {
        panic!("{e}");
    }
    expect_logged_out(&agent, stack).await;
}

/// A provider whose access tokens live 5 seconds (a stack of its own): past their expiry,
/// `/me/userinfo` still works, and the provider made exactly one `refresh_token` grant.
async fn refresh_flow(example: Example, logs: std::path::PathBuf) {
    std::fs::create_dir_all(&logs).expect("a log directory");
    let stack = Stack::start_with(example, &logs, &[("OP_ACCESS_TOKEN_TTL", "5")]).await;
    let client = stack.app.client_id.clone();
    let agent = Agent::new();
    log_in(&agent, &stack, "frank").await;
    async fn userinfo(agent: &Agent, stack: &Stack) {
        let (status, body) = agent.api_get(&stack.app.at("/me/userinfo")).await;
        assert_eq!(status, StatusCode::OK, "GET /me/userinfo: {body}");
        let info: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        assert_eq!(info["sub"], "frank", "the provider's userinfo: {info}");
    }
    userinfo(&agent, &stack).await;
    assert_eq!(stack.op.grants(&client, "refresh_token"), 0, "a fresh token needs no refresh");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    userinfo(&agent, &stack).await;
    assert_eq!(
        stack.op.grants(&client, "refresh_token"),
        1,
        "one refresh past the expiry; the provider's events:\n{}",
        stack.op.log()
    );
    userinfo(&agent, &stack).await;
    let (status, body) = agent.api_get(&stack.app.at("/me")).await;
    assert_eq!(status, StatusCode::OK, "/me after the refresh: {body}");
    assert_eq!(stack.op.grants(&client, "refresh_token"), 1, "the refreshed token is fresh");
    assert_eq!(stack.op.grants(&client, "authorization_code"), 1);
    if stack.example.client == ClientKind::Dpop {
        // The refresh too carried a proof, and its new access token is bound.
        expect_dpop_bound(&stack);
        let refreshes = stack.op.events("dpop.token", &client);
        assert!(
            refreshes.iter().any(|f| f.get("grant_type").is_some_and(|g| g == "refresh_token")
                && f.get("status").is_some_and(|s| s == "200")),
            "no DPoP refresh of {client}: {refreshes:?}"
        );
        // One session, one key: the refreshed access token is bound to the key of the first.
        let keys: std::collections::BTreeSet<_> =
            stack.op.access_tokens(&client).into_iter().map(|(_, jkt)| jkt).collect();
        assert_eq!(keys.len(), 1, "the session's access tokens are bound to one key: {keys:?}");
    }
    stack.assert_healthy();
}

/// An access token from the provider for the app's API (client credentials, RFC 8707
/// `resource`), as a client of the API would get one.
async fn api_token(stack: &Stack, resource: &str, scope: &str) -> String {
    let client = crate::ClientKind::Basic;
    let res = reqwest::Client::new()
        .post(format!("{}/token", stack.op.issuer))
        .basic_auth(client.client_id(0), client.client_secret(0))
        .form(&[("grant_type", "client_credentials"), ("resource", &stack.app.at(resource)), ("scope", scope)])
        .send()
        .await
        .expect("the token endpoint answers");
    let status = res.status();
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(status, StatusCode::OK, "client credentials for {resource}: {body}");
    body["access_token"].as_str().expect("an access token").to_owned()
}

/// `GET path` with `Authorization: Bearer token`: the status, `WWW-Authenticate` and the body.
async fn bearer_get(stack: &Stack, path: &str, token: &str) -> (StatusCode, String, Value) {
    let res = reqwest::Client::new()
        .get(stack.app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status();
    let challenge = res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

/// Resource-server mode against the real provider: a JWT access token (RFC 9068, issued for the
/// app's API as a resource indicator) and an opaque one (checked at the provider's
/// introspection endpoint, with the app's own client credentials) reach `/api/whoami`; too few
/// scopes is 403 `insufficient_scope`, a forged token 401 `invalid_token`.
async fn bearer_flow(stack: Arc<Stack>) {
    let stack = &*stack;
    let jwt = api_token(stack, "/api/jwt", "read admin").await;
    assert_eq!(jwt.split('.').count(), 3, "a JWT access token");
    let (status, _, body) = bearer_get(stack, "/api/whoami", &jwt).await;
    assert_eq!(status, StatusCode::OK, "a JWT access token at /api/whoami: {body}");
    assert_eq!(body["client_id"], "basic-0", "{body}");
    assert_eq!(body["scope"], "read admin", "{body}");
    let (status, _, body) = bearer_get(stack, "/api/admin", &jwt).await;
    assert_eq!(status, StatusCode::OK, "scope admin at /api/admin: {body}");

    let reader = api_token(stack, "/api/jwt", "read").await;
    let (status, challenge, _) = bearer_get(stack, "/api/admin", &reader).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "without the scope admin");
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""), "{challenge}");

    let (head, rest) = jwt.split_once('.').expect("a JWT");
    let (_, signature) = rest.split_once('.').expect("a JWT");
    let forged_claims = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"sub":"mallory","scope":"admin","aud":"x","exp":9999999999}"#,
    );
    let (status, challenge, _) = bearer_get(stack, "/api/admin", &format!("{head}.{forged_claims}.{signature}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a forged token");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // Opaque tokens need the app to introspect, which a public client may not do (the
    // `private_key_jwt` client does, with a client assertion).
    if stack.example.client.is_confidential() {
        let opaque = api_token(stack, "/api/opaque", "read").await;
        assert_ne!(opaque.split('.').count(), 3, "an opaque access token");
        let (status, _, body) = bearer_get(stack, "/api/whoami", &opaque).await;
        assert_eq!(status, StatusCode::OK, "an opaque token, introspected: {body}");
        assert_eq!(body["scope"], "read", "{body}");
        let (status, _, _) = bearer_get(stack, "/api/admin", &opaque).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = bearer_get(stack, "/api/whoami", &format!("{opaque}x")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "an unknown opaque token is inactive");
    }
}

/// Denying at the provider's consent page (its "[ Cancel ]" link): the app shows a clean 403 page.
async fn deny_flow(stack: Arc<Stack>) {
    let stack = &*stack;
    let agent = Agent::new();
    let landing = agent.navigate(&stack.app.at("/me")).await;
    let consent = sign_in(&agent, stack, &landing, "erin").await;
    let page = expect_interaction(stack, &consent, "consent");
    let cancel = page.link("Cancel").unwrap_or_else(|| panic!("no Cancel link: {consent}"));
    let cancel = consent.url.join(cancel).expect("a URL");
    let denied = agent.navigate(cancel.as_str()).await;
    assert!(
        denied.url.as_str().starts_with(&stack.app.at("/auth/oidc/callback?error=access_denied")),
        "the provider must send the denial to the app's callback: {denied}"
    );
    expect_clean_error_page(&denied, StatusCode::FORBIDDEN);
    let (status, body) = agent.api_get(&stack.app.at("/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "/me after a denied login: {body}");
}

/// After the flows: [`expect_client_authentication`], at the token and introspection endpoints.
async fn client_authentication(stack: Arc<Stack>) {
    expect_client_authentication(&stack, &["token", "introspection"]);
}

/// After the flows: the app is still running and never panicked; the provider logged no server
/// error and no failed back-channel delivery.
pub async fn healthy(stack: Arc<Stack>) {
    stack.assert_healthy();
}
