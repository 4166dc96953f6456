//! The processes of one test: the OpenID Provider and an example app configured for it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::process::{Proc, free_port, poll};
use crate::{Example, workspace_root};

/// The cookie key every app gets (`AUTH_SESSION_KEY`): base64 of the bytes 0..32. Fixed, so a
/// failure is reproducible by hand with the same settings.
pub const SESSION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Builds the binary of `package` (once per test process) and returns its path.
///
/// `cargo build -p <package> --message-format=json` run from the workspace root: the same cargo,
/// configuration and environment (so the same `CARGO_TARGET_DIR` / `build.target-dir`) as the
/// build of this test, and the executable's path read from cargo's own report rather than guessed.
/// When the tests run first, nothing is rebuilt: cargo only checks freshness (about a second).
pub fn example_binary(package: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| option_env!("CARGO").unwrap_or("cargo").to_owned());
    let started = Instant::now();
    let out = Command::new(&cargo)
        .args(["build", "--quiet", "-p", package, "--bins", "--message-format=json-render-diagnostics"])
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`cargo build -p {package}` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == package)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("`cargo build -p {package}` reported no executable named {package}"));
    println!("built {package} in {:.1?}: {}", started.elapsed(), path.display());
    built.insert(package.to_owned(), path.clone());
    path
}

/// node-oidc-provider from `tests/e2e/provider/server.mjs`.
#[derive(Debug)]
pub struct OpenIdProvider {
    proc: Proc,
    /// `http://localhost:PORT`.
    pub issuer: String,
    /// Its `OP_CLIENT_KEYS_DIR`: the private keys of its `private_key_jwt` clients
    /// (`pkjwt-<i>.key.pem`), written before it is ready.
    pub keys_dir: PathBuf,
}

impl OpenIdProvider {
    /// Starts it for the apps at `app_urls` (the client index is the position in this list) on a
    /// free port; call [`ProviderStarting::wait_ready`] before use. Its log goes to `dir/provider.log`.
    pub fn spawn(app_urls: &[&str], dir: &Path) -> ProviderStarting {
        OpenIdProvider::spawn_with(app_urls, dir, &[])
    }

    /// [`OpenIdProvider::spawn`] with more settings of `server.mjs` (`OP_ACCESS_TOKEN_TTL`, …).
    pub fn spawn_with(app_urls: &[&str], dir: &Path, settings: &[(&str, &str)]) -> ProviderStarting {
        let server = workspace_root().join("tests/e2e/provider/server.mjs");
        let modules = workspace_root().join("tests/e2e/provider/node_modules/oidc-provider");
        assert!(
            modules.is_dir(),
            "the provider's packages are not installed: run `npm ci` in tests/e2e/provider (`cargo xtask e2e` does)"
        );
        let keys_dir = dir.join("client-keys");
        let mut cmd = Command::new("node");
        cmd.arg(&server)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OP_PORT", "0")
            .env("OP_APP_URLS", app_urls.join(","))
            .env("OP_CLIENT_KEYS_DIR", &keys_dir)
            .envs(settings.iter().copied());
        let proc = Proc::spawn("the OpenID Provider (node server.mjs)", cmd, &dir.join("provider.log"), true);
        // Its stdout has exactly one line, `READY <issuer>`; a thread waits for it.
        let stdout = proc.take_stdout().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {} // keep draining until it exits
        });
        ProviderStarting { proc, ready: rx, started: Instant::now(), keys_dir }
    }

    /// Its log (stderr: `[op] …` event lines, warnings).
    pub fn log(&self) -> String {
        self.proc.log_text()
    }

    /// Whether its log has `backchannel.success` for `client_id`; else what it logged instead.
    pub fn backchannel_delivered(&self, client_id: &str) -> Result<(), String> {
        let log = self.log();
        if log.contains(&format!("[op] backchannel.success: client={client_id} ")) {
            Ok(())
        } else {
            Err(format!(
                "the provider did not deliver a back-channel logout to {client_id}; its events:\n{}",
                op_events(&log)
            ))
        }
    }

    /// How many token grants of `grant_type` (`refresh_token`, `authorization_code`) it made
    /// for `client_id`.
    pub fn grants(&self, client_id: &str, grant_type: &str) -> usize {
        let line = format!("[op] grant.success: client={client_id} grant_type={grant_type}");
        self.log().lines().filter(|l| l.trim_end() == line).count()
    }

    /// How many pushed authorization requests (RFC 9126) it accepted from `client_id`.
    pub fn pushed_requests(&self, client_id: &str) -> usize {
        let line = format!("[op] par.success: client={client_id}");
        self.log().lines().filter(|l| l.trim_end() == line).count()
    }

    /// The requests of `client_id` authenticated by a client assertion (`private_key_jwt`,
    /// `client_secret_jwt`), as `(route, status)`: `("token", 200)`, `("introspection", 200)`, ….
    pub fn client_assertions(&self, client_id: &str) -> Vec<(String, u16)> {
        let prefix = format!("[op] client_assertion: client={client_id} ");
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let field =
                    |name: &str| rest.split_whitespace().find_map(|kv| kv.strip_prefix(name).map(str::to_owned));
                Some((field("route=")?, field("status=")?.parse().ok()?))
            })
            .collect()
    }

    /// The fields (`key=value`) of its `[op] <event>: client=<client_id> …` lines, in order.
    pub fn events(&self, event: &str, client_id: &str) -> Vec<HashMap<String, String>> {
        let prefix = format!("[op] {event}: client={client_id} ");
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// The access tokens it issued to `client_id`, as `(token_type, jkt)`: `("DPoP", <the RFC
    /// 7638 thumbprint of the proof's key>)` for a DPoP-bound one, `("Bearer", "-")` otherwise.
    pub fn access_tokens(&self, client_id: &str) -> Vec<(String, String)> {
        self.events("access_token", client_id)
            .into_iter()
            .map(|mut f| (f.remove("token_type").unwrap_or_default(), f.remove("jkt").unwrap_or_default()))
            .collect()
    }

    /// Panics when the provider logged a server error or a failed back-channel delivery.
    pub fn assert_no_errors(&self) {
        let log = self.log();
        for bad in ["[op] server_error", "[op] backchannel.error"] {
            assert!(!log.contains(bad), "the provider logged `{bad}`; its events:\n{}", op_events(&log));
        }
    }
}

fn op_events(log: &str) -> String {
    log.lines().filter(|l| l.starts_with("[op]")).collect::<Vec<_>>().join("\n")
}

/// A provider whose `READY` line has not been read yet.
#[derive(Debug)]
pub struct ProviderStarting {
    proc: Proc,
    ready: std::sync::mpsc::Receiver<String>,
    started: Instant,
    keys_dir: PathBuf,
}

impl ProviderStarting {
    /// Waits (at most 90 s) for the `READY http://localhost:PORT` line. Node usually starts it in
    /// a second or two; on two busy cores (the other e2e tests' browsers and builds) a start once
    /// took over 30 s, which is no failure of the code under test.
    pub fn wait_ready(self) -> OpenIdProvider {
        let line = match self.ready.recv_timeout(Duration::from_secs(90).saturating_sub(self.started.elapsed())) {
            Ok(line) => line,
            Err(_) => {
                self.proc.assert_running();
                panic!("the provider printed no READY line within 90 s; log:\n{}", self.proc.log_tail(40));
            }
        };
        let issuer = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected first line from the provider: {line:?}"))
            .trim()
            .to_owned();
        assert!(issuer.starts_with("http://localhost:"), "unexpected issuer {issuer}");
        OpenIdProvider { proc: self.proc, issuer, keys_dir: self.keys_dir }
    }
}

/// A running example app.
#[derive(Debug)]
pub struct App {
    proc: Proc,
    /// `http://127.0.0.1:PORT` (its `APP_URL`).
    pub url: String,
    /// The provider client it uses.
    pub client_id: String,
}

impl App {
    /// `APP_URL` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Panics when the app has exited or logged a panic.
    pub fn assert_healthy(&self) {
        self.proc.assert_running();
        let log = self.proc.log_text();
        assert!(!log.contains("panicked"), "the app panicked; its log ({}):\n{log}", self.proc.log_path().display());
    }
}

/// The provider and one example app using it, for one test.
#[derive(Debug)]
pub struct Stack {
    /// The example under test.
    pub example: Example,
    /// The provider (client index 0 is this app's).
    pub op: OpenIdProvider,
    /// The app.
    pub app: App,
}

impl Stack {
    /// Starts the provider and the app (after building it), logs into `logs`.
    pub async fn start(example: Example, logs: &Path) -> Stack {
        Stack::start_with(example, logs, &[]).await
    }

    /// [`Stack::start`] with a provider started with `op_settings` (see
    /// [`OpenIdProvider::spawn_with`]).
    pub async fn start_with(example: Example, logs: &Path, op_settings: &[(&str, &str)]) -> Stack {
        let started = Instant::now();
        let app_url = format!("http://127.0.0.1:{}", free_port());
        // The provider needs the app's URL (its clients) and the app needs the provider (discovery
        // at start): the port is chosen first; the provider starts while the app is built.
        let op = OpenIdProvider::spawn_with(&[&app_url], logs, op_settings);
        let binary = example_binary(example.package);
        let op = op.wait_ready();
        let client_id = example.client.client_id(0);
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .current_dir(logs)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "1")
            .env("APP_URL", &app_url)
            .env("OIDC_ISSUER", &op.issuer)
            .env("OIDC_CLIENT_ID", &client_id)
            .env("AUTH_SESSION_KEY", SESSION_KEY);
        if let Some(secret) = example.client.client_secret(0) {
            cmd.env("OIDC_CLIENT_SECRET", secret);
        }
        if let Some(method) = example.client.client_auth() {
            cmd.env("OIDC_CLIENT_AUTH", method);
        }
        cmd.envs(example.client.app_env(0, &op.keys_dir));
        let proc = Proc::spawn(example.package, cmd, &logs.join("app.log"), false);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let home = format!("{app_url}/");
        let answered = poll(Duration::from_secs(30), || {
            let running = proc.exited().is_none();
            let request = http.get(&home).send();
            async move {
                if !running {
                    return Some(false);
                }
                request.await.ok().map(|_| true)
            }
        })
        .await;
        if answered != Some(true) {
            proc.assert_running();
            panic!("{} did not answer at {home} within 30 s; log:\n{}", example.package, proc.log_tail(40));
        }
        println!(
            "[{}] provider {} and {} at {app_url} (client {client_id}) up in {:.1?}",
            example.label,
            op.issuer,
            example.package,
            started.elapsed()
        );
        Stack { example, op, app: App { proc, url: app_url, client_id } }
    }

    /// The checks after every test: the app is still up and never panicked, the provider logged
    /// no errors.
    pub fn assert_healthy(&self) {
        self.app.assert_healthy();
        self.op.assert_no_errors();
    }
}
