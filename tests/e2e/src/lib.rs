//! End-to-end tests: each example app, as its real binary, logs users in at a real OpenID Provider
//! (node-oidc-provider, `tests/e2e/provider/`), driven twice:
//!
//! - [`forms`]: without a browser, by an HTTP client with a cookie jar that follows redirects and
//!   submits the provider's HTML forms itself. Always runs.
//! - [`browser`]: in headless Chromium over WebDriver, with a PNG screenshot of every step. Skipped
//!   (with a message) when Chromium or chromedriver is missing, except under `CI=true`.
//!
//! Every test starts its own provider, app and (for the browser) chromedriver on free loopback
//! ports, and they are killed when the test ends, also when it fails. [`Example`] names an app and
//! the provider client it uses; `tests/e2e.rs` lists them, one line each.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a test harness reports progress on stdout

pub mod browser;
pub mod forms;
pub mod html;
pub mod process;
pub mod stack;

use std::path::{Path, PathBuf};

/// Which of the provider's seven clients per app URL an example uses (see the provider's README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// `basic-i`: confidential, `client_secret_basic`, RS256 ID tokens.
    Basic,
    /// `post-i`: confidential, `client_secret_post` (the app gets `OIDC_CLIENT_AUTH=client_secret_post`).
    Post,
    /// `es256-i`: confidential, `client_secret_basic`, ES256 ID tokens.
    Es256,
    /// `public-i`: public client, PKCE only (no `OIDC_CLIENT_SECRET`).
    Public,
    /// `pkjwt-i`: confidential without a secret, `private_key_jwt` (RFC 7523 client assertions,
    /// ES256) with an EC P-256 key the provider makes at its start: the app gets
    /// `OIDC_CLIENT_AUTH=private_key_jwt` and `OIDC_CLIENT_KEY` = the path of the private key
    /// (PKCS#8 PEM), no key id (the provider registered the public key under its RFC 7638
    /// thumbprint, the app's default `kid`).
    PrivateKeyJwt,
    /// `par-i`: confidential, `client_secret_basic`, and the provider refuses its authorization
    /// requests unless pushed first (RFC 9126, `require_pushed_authorization_requests` in its
    /// metadata only, not in discovery): the app gets `OIDC_PAR=true`.
    Par,
    /// `dpop-i`: confidential, `client_secret_basic`, and the provider requires DPoP proofs
    /// (RFC 9449) at its token endpoint and binds the access tokens to the proof's key
    /// (`dpop_bound_access_tokens` in its metadata only): the app gets `OIDC_DPOP=true`.
    Dpop,
}

impl ClientKind {
    fn prefix(self) -> &'static str {
        match self {
            ClientKind::Basic => "basic",
            ClientKind::Post => "post",
            ClientKind::Es256 => "es256",
            ClientKind::Public => "public",
            ClientKind::PrivateKeyJwt => "pkjwt",
            ClientKind::Par => "par",
            ClientKind::Dpop => "dpop",
        }
    }

    /// The client id for the app at index `i` of `OP_APP_URLS`.
    pub fn client_id(self, i: usize) -> String {
        format!("{}-{i}", self.prefix())
    }

    /// Its secret (none for the public client and the `private_key_jwt` one).
    pub fn client_secret(self, i: usize) -> Option<String> {
        (!matches!(self, ClientKind::Public | ClientKind::PrivateKeyJwt))
            .then(|| format!("{}-secret-{i}", self.prefix()))
    }

    /// Whether the client authenticates at the provider (with a secret or a key): it may then
    /// use client credentials and introspection.
    pub fn is_confidential(self) -> bool {
        self != ClientKind::Public
    }

    /// `OIDC_CLIENT_AUTH`, where the default (basic with a secret, none without) is not right.
    pub fn client_auth(self) -> Option<&'static str> {
        match self {
            ClientKind::Post => Some("client_secret_post"),
            ClientKind::PrivateKeyJwt => Some("private_key_jwt"),
            _ => None,
        }
    }

    /// The app's other variables for this client, the provider's keys being in `keys_dir`
    /// (its `OP_CLIENT_KEYS_DIR`).
    pub fn app_env(self, i: usize, keys_dir: &Path) -> Vec<(&'static str, String)> {
        match self {
            ClientKind::PrivateKeyJwt => {
                let key = keys_dir.join(format!("{}.key.pem", self.client_id(i)));
                vec![("OIDC_CLIENT_KEY", key.display().to_string())]
            }
            ClientKind::Par => vec![("OIDC_PAR", "true".to_owned())],
            ClientKind::Dpop => vec![("OIDC_DPOP", "true".to_owned())],
            _ => Vec::new(),
        }
    }
}

/// One example app under test.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// A short name for messages and folders (`axum`, `axum_public`, …).
    pub label: &'static str,
    /// Its cargo package; the binary of the same name is run.
    pub package: &'static str,
    /// The provider client it is configured with.
    pub client: ClientKind,
}

/// Where a test writes its logs and screenshots: under `$CARGO_TARGET_TMPDIR` (pass
/// `env!("CARGO_TARGET_TMPDIR")`, which cargo sets for integration tests only).
#[derive(Debug, Clone)]
pub struct Artifacts {
    root: PathBuf,
}

impl Artifacts {
    /// Artifacts under `target_tmpdir`.
    pub fn new(target_tmpdir: impl AsRef<Path>) -> Self {
        Artifacts { root: target_tmpdir.as_ref().to_owned() }
    }

    /// A fresh (emptied) folder `e2e-<kind>/<label>`.
    pub fn fresh_dir(&self, kind: &str, label: &str) -> PathBuf {
        let dir = self.root.join(format!("e2e-{kind}")).join(label);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// One flow of a test: its name and what it does.
pub type Flow = (&'static str, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

/// Runs the flows of `label`'s test one after the other, each with a time limit (60 s), printing
/// each name and time. A failing flow does not stop the others: the test fails at the end, naming
/// every flow that failed.
pub async fn run_flows(label: &str, flows: Vec<Flow>) {
    let limit = std::time::Duration::from_secs(60);
    let total = flows.len();
    let mut failures = Vec::new();
    for (name, flow) in flows {
        println!("[{label}] {name} …");
        let started = std::time::Instant::now();
        let mut task = tokio::spawn(flow);
        let failure = match tokio::time::timeout(limit, &mut task).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(match err.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panicked".into()),
                Err(err) => err.to_string(),
            }),
            Err(_) => {
                task.abort();
                let _ = task.await;
                Some(format!("did not finish within {limit:?}"))
            }
        };
        match failure {
            None => println!("[{label}] {name}: ok ({:.1?})", started.elapsed()),
            Some(why) => {
                println!("[{label}] {name}: FAILED ({:.1?})", started.elapsed());
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "[{label}] {} of {total} flows failed:\n- {}", failures.len(), failures.join("\n- "));
}
