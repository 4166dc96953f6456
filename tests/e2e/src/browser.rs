//! The flows in a real browser: headless Chromium driven over WebDriver (chromedriver) with
//! `fantoccini`, a PNG screenshot of every step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::forms::{assert_clean_error_text, check_claims};
use crate::forms::{expect_client_authentication, healthy};
use crate::process::{Proc, free_port, poll};
use crate::stack::Stack;
use crate::{Artifacts, ClientKind, Example, Flow, run_flows};

/// How long one wait for a page or an element may take.
const WAIT: Duration = Duration::from_secs(20);

/// Chromium and chromedriver, as found on `PATH`.
#[derive(Debug, Clone)]
pub struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.is_file())
}

impl Tools {
    /// Both programs, or what is missing.
    pub fn find() -> Result<Tools, String> {
        let chromium = on_path(&["chromium", "chromium-browser"]);
        let chromedriver = on_path(&["chromedriver"]);
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Ok(Tools { chromium, chromedriver }),
            (chromium, chromedriver) => Err(format!(
                "{}{}not found on PATH (install: `apt-get install chromium chromium-driver`, or run `cargo xtask e2e` as root)",
                if chromium.is_none() { "chromium " } else { "" },
                if chromedriver.is_none() { "chromedriver " } else { "" },
            )),
        }
    }

    /// The tools, or `None` after printing why the browser tests are skipped. Under `CI=true` a
    /// missing browser is a failure, not a skip.
    pub fn or_skip(label: &str) -> Option<Tools> {
        match Tools::find() {
            Ok(tools) => Some(tools),
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("[{label}] browser tests: {why}; under CI=true the browser is required")
            }
            Err(why) => {
                println!("[{label}] SKIPPED the browser tests: {why}");
                None
            }
        }
    }
}

/// A running chromedriver on a free loopback port.
#[derive(Debug)]
pub struct Driver {
    proc: Proc,
    url: String,
    tools: Tools,
    profiles: PathBuf,
    sessions: AtomicU32,
}

impl Driver {
    /// Starts chromedriver (call [`Driver::wait_ready`] before use); its log and the browser
    /// profiles go under `dir`.
    pub fn spawn(tools: Tools, dir: &Path) -> Driver {
        let port = free_port();
        let mut cmd = Command::new(&tools.chromedriver);
        cmd.arg(format!("--port={port}")).arg("--allowed-ips=127.0.0.1");
        let proc = Proc::spawn("chromedriver", cmd, &dir.join("chromedriver.log"), false);
        Driver {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            tools,
            profiles: dir.to_owned(),
            sessions: AtomicU32::new(0),
        }
    }

    /// Waits (at most 20 s) until chromedriver says it is ready.
    pub async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().expect("a client");
        let status = format!("{}/status", self.url);
        let ready = poll(WAIT, || {
            let req = http.get(&status).send();
            async move {
                let body: Value = req.await.ok()?.json().await.ok()?;
                body["value"]["ready"].as_bool().filter(|r| *r)
            }
        })
        .await;
        if ready.is_none() {
            self.proc.assert_running();
            panic!("chromedriver is not ready after {WAIT:?}; log:\n{}", self.proc.log_tail(40));
        }
    }

    /// A new browser session with a fresh profile (no cookies, no history).
    pub async fn browser(&self, shots: &Arc<Shots>) -> Browser {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        let profile = self.profiles.join(format!("profile-{n}"));
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1024,768",
            // Only loopback exists: every other host name fails at once instead of timing out.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": 20_000, "script": 10_000, "implicit": 0 },
            "goog:chromeOptions": { "binary": self.tools.chromium, "args": args },
        });
        let Value::Object(caps) = caps else { unreachable!("an object") };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client =
            ClientBuilder::new(connector).capabilities(caps).connect(&self.url).await.unwrap_or_else(|e| {
                panic!("cannot start Chromium through chromedriver: {e}\n{}", self.proc.log_tail(40))
            });
        Browser { client, shots: shots.clone(), profile }
    }
}

/// The screenshots of one test: `<dir>/<nn>-<step>.png`, numbered in order.
#[derive(Debug)]
pub struct Shots {
    dir: PathBuf,
    next: AtomicU32,
}

impl Shots {
    /// Screenshots into `dir`.
    pub fn new(dir: PathBuf) -> Shots {
        Shots { dir, next: AtomicU32::new(1) }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One browser session (one window or more).
#[derive(Debug)]
pub struct Browser {
    client: Client,
    shots: Arc<Shots>,
    profile: PathBuf,
}

impl Browser {
    /// Saves a screenshot of the current window as the next numbered step.
    pub async fn shot(&self, step: &str) {
        let n = self.shots.next.fetch_add(1, Ordering::Relaxed);
        let path = self.shots.dir.join(format!("{n:02}-{step}.png"));
        match self.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display())),
            Err(e) => println!("screenshot {step} failed: {e}"),
        }
    }

    /// Fails the test with a screenshot and what the page says.
    pub async fn fail(&self, what: &str) -> ! {
        self.shot("FAILED").await;
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let text = self.text().await;
        panic!(
            "{what}\n  the browser is at {url}\n  the page says: {text}\n  screenshots: {}",
            self.shots.dir.display()
        )
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(&format!("cannot open {url}: {e}")).await;
        }
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the URL satisfies `pred`.
    pub async fn wait_url(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let (client, pred) = (&self.client, &pred);
        let found = poll(WAIT, || async move {
            let url = client.current_url().await.ok()?.to_string();
            pred(&url).then_some(url)
        })
        .await;
        match found {
            Some(url) => url,
            None => self.fail(&format!("waited {WAIT:?} for {what}")).await,
        }
    }

    /// Waits until the URL is exactly `url`.
    pub async fn wait_at(&self, url: &str) {
        self.wait_url(url, |u| u == url).await;
    }

    /// Waits for an element.
    pub async fn wait_css(&self, css: &str) -> Element {
        match self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => self.fail(&format!("waited {WAIT:?} for `{css}`: {e}")).await,
        }
    }

    /// Clicks the element (waiting for it).
    pub async fn click(&self, css: &str) {
        let el = self.wait_css(css).await;
        if let Err(e) = el.click().await {
            self.fail(&format!("cannot click `{css}`: {e}")).await;
        }
    }

    /// Types into the element (waiting for it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_css(css).await;
        if let Err(e) = el.send_keys(text).await {
            self.fail(&format!("cannot type into `{css}`: {e}")).await;
        }
    }

    /// Runs a script; its `return` value.
    pub async fn script(&self, js: &str) -> Value {
        match self.client.execute(js, vec![]).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("script failed: {e}")).await,
        }
    }

    /// The HTTP status of the current document (Navigation Timing's `responseStatus`).
    pub async fn status(&self) -> Value {
        self.script("return performance.getEntriesByType('navigation')[0].responseStatus;").await
    }

    /// The status of a `fetch(path)` from the current page with `Accept: application/json`.
    pub async fn fetch_status(&self, path: &str) -> Value {
        let js = "const done = arguments[arguments.length - 1];\
                  fetch(arguments[0], { headers: { Accept: 'application/json' } })\
                  .then(r => done(r.status), e => done('fetch failed: ' + e));";
        match self.client.execute_async(js, vec![json!(path)]).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("fetch {path} failed: {e}")).await,
        }
    }

    /// `fetch(path)` from the current page with `Accept: application/json`: its status and body.
    pub async fn fetch_json(&self, path: &str) -> (Value, Value) {
        let js = "const done = arguments[arguments.length - 1];\
                  fetch(arguments[0], { headers: { Accept: 'application/json' } })\
                  .then(r => r.text().then(t => done([r.status, t])), e => done(['fetch failed: ' + e, '']));";
        match self.client.execute_async(js, vec![json!(path)]).await {
            Ok(Value::Array(mut v)) if v.len() == 2 => {
                let body = v.pop().unwrap_or_default();
                let status = v.pop().unwrap_or_default();
                let body = body.as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(body);
                (status, body)
            }
            Ok(other) => self.fail(&format!("fetch {path} gave {other}")).await,
            Err(e) => self.fail(&format!("fetch {path} failed: {e}")).await,
        }
    }

    /// Ends the session (Chromium quits) and removes its profile.
    pub async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// On the provider's login page (waits for it): signs in as `user`.
async fn sign_in(b: &Browser, stack: &Stack, user: &str, shot: &str) {
    b.wait_css("input[name=prompt][value=login]").await;
    let url = b.url().await;
    if !url.starts_with(&format!("{}/interaction/", stack.op.issuer)) {
        b.fail("expected the provider's login page").await;
    }
    b.type_into("input[name=login]", user).await;
    b.type_into("input[name=password]", "any password").await;
    b.shot(shot).await;
    b.click("button[type=submit]").await;
}

/// On the provider's consent page (waits for it): allows.
async fn allow(b: &Browser, shot: &str) {
    b.wait_css("input[name=prompt][value=consent]").await;
    b.shot(shot).await;
    b.click("button[type=submit]").await;
}

/// Waits for `/me` and checks the claims it shows.
async fn expect_claims(b: &Browser, stack: &Stack, user: &str, shot: &str) {
    b.wait_at(&stack.app.at("/me")).await;
    // Chromium shows a JSON document in a <pre> (plus, in new versions, a pretty-print toggle).
    let text = match b.client.find(Locator::Css("pre")).await {
        Ok(pre) => pre.text().await.unwrap_or_default(),
        Err(_) => b.text().await,
    };
    let json = text.find('{').zip(text.rfind('}')).map(|(s, e)| &text[s..=e]).unwrap_or_default();
    let claims: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => b.fail(&format!("/me does not show JSON ({e})")).await,
    };
    b.shot(shot).await;
    check_claims(&claims, user);
}

/// Panics unless the app's home page says "Not logged in" and `/me` answers 401 to a script.
async fn expect_logged_out(b: &Browser, stack: &Stack, shot: &str) {
    if !b.url().await.starts_with(&stack.app.url) {
        b.goto(&stack.app.at("/")).await;
    }
    if !b.text().await.contains("Not logged in") {
        b.fail("the home page must say \"Not logged in\"").await;
    }
    b.shot(shot).await;
    let status = b.fetch_status("/me").await;
    if status != json!(401) {
        b.fail(&format!("fetch('/me') after logout gave {status}, expected 401")).await;
    }
}

/// Every browser flow against one example: each group of flows in a fresh browser profile.
pub async fn run(example: Example, artifacts: &Artifacts) {
    let label = example.label;
    let Some(tools) = Tools::or_skip(label) else { return };
    let logs = artifacts.fresh_dir("logs", &format!("{label}-browser"));
    let shots = Shots::new(artifacts.fresh_dir("screenshots", label));
    println!("[{label}] browser: screenshots in {}", shots.dir().display());
    // chromedriver starts while the provider and the app do.
    let mut driver = Driver::spawn(tools, &logs);
    let stack = Arc::new(Stack::start(example, &logs).await);
    driver.wait_ready().await;
    let (driver, shots) = (Arc::new(driver), Arc::new(shots));
    let flows: Vec<Flow> = vec![
        (
            "browser: login, second tab, logout at the provider",
            Box::pin(login_tabs_logout(driver.clone(), stack.clone(), shots.clone())),
        ),
        ("browser: back-channel logout", Box::pin(backchannel(driver.clone(), stack.clone(), shots.clone()))),
        ("browser: deny consent", Box::pin(deny(driver.clone(), stack.clone(), shots.clone()))),
        ("browser: the client authenticated as registered", Box::pin(client_authentication(stack.clone()))),
        ("browser: the app and the provider stayed healthy", Box::pin(healthy(stack.clone()))),
    ];
    run_flows(label, flows).await;
    println!("[{label}] browser: all flows passed; screenshots in {}", shots.dir().display());
}

/// After the flows: [`expect_client_authentication`] at the token endpoint (no introspection in
/// a browser).
async fn client_authentication(stack: Arc<Stack>) {
    expect_client_authentication(&stack, &["token"]);
}

/// Login in one tab while a second tab also waits on the provider's login page; both finish;
/// then the logout button → the provider's confirmation → back on the app, logged out.
async fn login_tabs_logout(driver: Arc<Driver>, stack: Arc<Stack>, shots: Arc<Shots>) {
    let stack = &*stack;
    let b = driver.browser(&shots).await;
    b.goto(&stack.app.at("/me")).await;
    b.wait_css("input[name=prompt][value=login]").await;
    b.shot("login-page").await;
    let first = b.client.window().await.expect("the window handle");
    let second = match b.client.new_window(true).await {
        Ok(w) => w.handle,
        Err(e) => b.fail(&format!("cannot open a second tab: {e}")).await,
    };
    b.client.switch_to_window(second.clone()).await.expect("switch to the second tab");
    b.goto(&stack.app.at("/auth/oidc/login?next=/")).await;
    b.wait_css("input[name=prompt][value=login]").await;
    b.shot("second-tab-login-page").await;

    b.client.switch_to_window(first).await.expect("switch to the first tab");
    sign_in(&b, stack, "alice", "login-filled").await;
    allow(&b, "consent-page").await;
    expect_claims(&b, stack, "alice", "me-claims").await;
    if stack.example.client == ClientKind::Dpop {
        // The app calls the provider's userinfo with its DPoP-bound token and a proof (`ath`).
        let (status, info) = b.fetch_json("/me/userinfo").await;
        if status != json!(200) {
            b.fail(&format!("fetch('/me/userinfo') with a DPoP-bound token gave {status}: {info}")).await;
        }
        check_claims(&info, "alice");
    }

    // The second tab's login page is still open: sign in there too. The provider may ask for
    // consent again or not.
    b.client.switch_to_window(second).await.expect("switch to the second tab");
    sign_in(&b, stack, "alice", "second-tab-login-filled").await;
    let (client, app) = (&b.client, stack.app.url.as_str());
    let at_app = poll(WAIT, || async move {
        if client.current_url().await.ok()?.as_str().starts_with(app) {
            return Some(true);
        }
        client.find(Locator::Css("input[name=prompt][value=consent]")).await.ok().map(|_| false)
    })
    .await;
    match at_app {
        Some(true) => {}
        Some(false) => allow(&b, "second-tab-consent-page").await,
        None => b.fail("the second tab went neither to the app nor to the consent page").await,
    }
    b.wait_at(&stack.app.at("/")).await;
    if !b.text().await.contains("Alice") {
        b.fail("the second tab must land on / logged in as Alice").await;
    }
    b.shot("second-tab-home").await;

    // Log out with the app's button (a form POSTing to /auth/logout).
    match b.client.find(Locator::Css("form[action='/auth/logout'] button")).await {
        Ok(button) => button.click().await.expect("click the logout button"),
        Err(_) => {
            println!("[{}] the home page has no logout form: posting one by script", stack.example.label);
            b.script(
                "const f = document.createElement('form'); f.method = 'post'; f.action = '/auth/logout';\
                 document.body.appendChild(f); f.submit(); return null;",
            )
            .await;
        }
    }
    let end_session = format!("{}/session/end", stack.op.issuer);
    b.wait_url("the provider's logout page", |u| u.starts_with(&end_session)).await;
    b.wait_css("button[name=logout]").await;
    b.shot("provider-logout-page").await;
    b.click("button[name=logout]").await;
    b.wait_at(&stack.app.at("/")).await;
    expect_logged_out(&b, stack, "logged-out-home").await;
    b.close().await;
}

/// Log in, end the session at the provider itself: the provider tells the app (back-channel) and
/// the app's session is over.
async fn backchannel(driver: Arc<Driver>, stack: Arc<Stack>, shots: Arc<Shots>) {
    let stack = &*stack;
    let b = driver.browser(&shots).await;
    b.goto(&stack.app.at("/me")).await;
    sign_in(&b, stack, "bob", "bc-login-filled").await;
    allow(&b, "bc-consent-page").await;
    expect_claims(&b, stack, "bob", "bc-me-claims").await;
    b.goto(&format!("{}/session/end", stack.op.issuer)).await;
    b.wait_css("button[name=logout]").await;
    b.shot("bc-provider-logout-page").await;
    b.click("button[name=logout]").await;
    let success = format!("{}/session/end/success", stack.op.issuer);
    b.wait_at(&success).await;
    b.shot("bc-provider-signed-out").await;
    if let Err(e) = stack.op.backchannel_delivered(&stack.app.client_id) {
        b.fail(&e).await;
    }
    b.goto(&stack.app.at("/")).await;
    expect_logged_out(&b, stack, "bc-app-logged-out").await;
    // /me asks for a new login.
    b.goto(&stack.app.at("/me")).await;
    b.wait_css("input[name=prompt][value=login]").await;
    b.shot("bc-me-asks-login-again").await;
    b.close().await;
}

/// "[ Cancel ]" on the provider's consent page: the app shows a clean 403 page.
async fn deny(driver: Arc<Driver>, stack: Arc<Stack>, shots: Arc<Shots>) {
    let stack = &*stack;
    let b = driver.browser(&shots).await;
    b.goto(&stack.app.at("/me")).await;
    sign_in(&b, stack, "carol", "deny-login-filled").await;
    b.wait_css("input[name=prompt][value=consent]").await;
    b.shot("deny-consent-page").await;
    b.click("a[href$='/abort']").await;
    let callback = stack.app.at("/auth/oidc/callback?error=access_denied");
    b.wait_url("the app's callback with error=access_denied", |u| u.starts_with(&callback)).await;
    b.shot("deny-error-page").await;
    let status = b.status().await;
    if status != json!(403) {
        b.fail(&format!("the error page's status is {status}, expected 403")).await;
    }
    assert_clean_error_text(&b.text().await);
    b.close().await;
}
