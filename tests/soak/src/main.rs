//! The soak test's driver: `cargo xtask soak [MINUTES]` builds example-axum and runs this with
//! `--app <its binary> --seconds N`.
//!
//! It starts a Redis server and the in-process test provider (tokens living 12 s, so that every
//! session is refreshed), then example-axum as a child process configured from the environment as
//! a user would (`OIDC_*`, `AUTH_STORE=redis://…`, `API_AUDIENCE`, `METRICS_ADDR`). Each worker
//! loops over a session's life for the whole run: a login, requests to `/me` (refreshed once
//! its tokens are near expiry), a bearer-token call to `/api/whoami` every few requests (each
//! worker's API client keeping its token for half its lifetime, as a real one would: a fresh
//! token per call would only fill the bearer cache up to its bound), and a back-channel logout by the session's `sid`, after which `/me` must answer 401. Every answer is
//! checked; anything unexpected is an error.
//!
//! It samples the app's resident memory every few seconds, and prints at the end: requests and
//! errors by kind, p50/p99/max latency by kind, the app's memory after the warm-up (the first
//! quarter of the run) and at the end, and the app's own `auth_*` metrics scraped from its
//! Prometheus endpoint. It exits non-zero on any error, when the app's counters (logins completed,
//! back-channel logouts, bearer tokens accepted, refreshes) differ from what the driver saw, or when
//! the app's memory grew by more than [`MEMORY_GROWTH_LIMIT`] after the warm-up in a run of at
//! least two minutes.
//!
//! # How memory is judged
//! The growth is that of the least-squares line through every sample after the warm-up, from the
//! end of the warm-up to the end of the run: not of two single samples, which a heap that swings
//! by a few hundred KiB can put anywhere.
//!
//! What a heap profile (heaptrack) of this run found, and what was done:
//! - the metrics exporter's default summaries (a quantile sketch per label set, replaced every
//!   20 s) were 5 of the app's 7 MiB of heap, and fragmented glibc's arenas: the resident memory
//!   grew three times as fast as the live heap. The examples now give the exporter fixed buckets
//!   (`auth_core::metrics::LATENCY_BUCKETS`);
//! - expired bearer tokens stayed in auth-core's cache until 10,000 had gathered, and finished
//!   refreshes until 4,096: both are now dropped every 30 s once no request can use them.
//!
//! What still grows under this load is the refreshes remembered for an hour (a browser may come
//! back with the cookie a refresh replaced), up to 4,096 sessions of about 3.4 KiB: bounded, and
//! flat after the first hour. A run much longer than the default ten minutes sees it level off.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_redis::test_server::RedisServer;
use auth_testkit::{Browser, TestProvider};
use base64::Engine as _;
use hdrhistogram::Histogram;

/// How much the app's resident memory may grow between the end of the warm-up and the end (the
/// line through the samples, see the crate docs).
const MEMORY_GROWTH_LIMIT: f64 = 0.20;
/// Concurrent users.
const WORKERS: usize = 8;
/// Requests to `/me` in one session's life (one every [`PAUSE`]: the session outlives its
/// tokens, so each is refreshed once).
const REQUESTS_PER_SESSION: usize = 150;
/// Between two requests of one worker.
const PAUSE: Duration = Duration::from_millis(100);
/// Lifetime of the provider's tokens.
const TOKEN_TTL: Duration = Duration::from_secs(12);
/// No single request may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Result<T = ()> = std::result::Result<T, String>;

/// What the workers record: latencies (µs) and errors, by kind of request.
#[derive(Default)]
struct Record {
    latency: BTreeMap<&'static str, Histogram<u64>>,
    /// Answers as expected, by kind.
    ok: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
}

impl Record {
    fn time(&mut self, kind: &'static str, elapsed: Duration) {
        let h = self.latency.entry(kind).or_insert_with(|| {
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("1 µs to 60 s at 3 digits is a valid range")
        });
        h.saturating_record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    fn error(&mut self, what: &str) {
        // One line each for the first few of a kind.
        let count = self.errors.entry(what.to_owned()).or_insert(0);
        *count += 1;
        if *count <= 3 {
            eprintln!("error: {what}");
        }
    }
}

struct Run {
    base: String,
    provider: TestProvider,
    /// For the calls without cookies (bearer, back-channel).
    http: reqwest::Client,
    record: Mutex<Record>,
    stop: AtomicBool,
}

impl Run {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        // A worker that panicked leaves its counts as they were: still worth reporting.
        self.record.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One request, timed as `kind`; `Err` (recorded) when the status is not `expected`.
    async fn call(&self, kind: &'static str, request: reqwest::RequestBuilder, expected: u16) -> Option<String> {
        let start = Instant::now();
        let outcome = request.timeout(REQUEST_TIMEOUT).send().await;
        let elapsed = start.elapsed();
        let failure = match &outcome {
            Ok(res) if res.status().as_u16() == expected => None,
            Ok(res) => Some(format!("{kind}: status {} (expected {expected})", res.status().as_u16())),
            Err(e) => Some(format!("{kind}: {}", if e.is_timeout() { "timed out".into() } else { e.to_string() })),
        };
        {
            let mut record = self.record();
            record.time(kind, elapsed);
            if let Some(failure) = failure {
                record.error(&failure);
                return None;
            }
            *record.ok.entry(kind).or_insert(0) += 1;
        }
        outcome.ok()?.text().await.ok()
    }

    /// One user's sessions, one after the other, until the run ends.
    async fn worker(self: Arc<Self>) {
        let mut bearer: Option<(String, Instant)> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let browser = Browser::new();
            let start = Instant::now();
            let login = browser.get_following(&format!("{}/auth/oidc/login?next=/me", self.base)).await;
            self.record().time("login", start.elapsed());
            let claims = match login {
                Ok((res, _)) if res.status() == 200 => {
                    *self.record().ok.entry("login").or_insert(0) += 1;
                    res.text().await.unwrap_or_default()
                }
                Ok((res, _)) => {
                    self.record().error(&format!("login: status {}", res.status().as_u16()));
                    continue;
                }
                Err(e) => {
                    self.record().error(&format!("login: {e}"));
                    tokio::time::sleep(PAUSE).await;
                    continue;
                }
            };
            let sid = serde_json::from_str::<serde_json::Value>(&claims)
                .ok()
                .and_then(|c| c.get("sid").and_then(|s| s.as_str()).map(str::to_owned));
            let me = || browser.client().get(format!("{}/me", self.base)).header("accept", "application/json");
            for i in 0..REQUESTS_PER_SESSION {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                self.call("session", me(), 200).await;
                if i % 5 == 0 {
                    // An API client keeps its token until it nears expiry, as a real one does.
                    if bearer.as_ref().is_none_or(|(_, minted)| minted.elapsed() > TOKEN_TTL / 2) {
                        bearer = Some((self.provider.mint_jwt_access_token("soak-api", "read"), Instant::now()));
                    }
                    let token = bearer.as_ref().map_or("", |(t, _)| t.as_str());
                    let api = self.http.get(format!("{}/api/whoami", self.base)).bearer_auth(token);
                    self.call("bearer", api, 200).await;
                }
                tokio::time::sleep(PAUSE).await;
            }
            let Some(sid) = sid else {
                self.record().error("login: the ID token had no sid");
                continue;
            };
            let token = self.provider.logout_token(None, Some(&sid));
            let logout = self
                .http
                .post(format!("{}/auth/oidc/backchannel-logout", self.base))
                .form(&[("logout_token", token.as_str())]);
            self.call("backchannel_logout", logout, 200).await;
            self.call("after_logout", me(), 401).await;
        }
    }
}

/// The app's resident memory, all of it and its anonymous part (the heap, without the mapped
/// binary), in KiB (Linux's `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let rss = field("VmRSS:")?;
    Some((rss, field("RssAnon:").unwrap_or(rss)))
}

/// The least-squares line through `(seconds, value)` points: its value at `at` seconds is
/// `a + b * at`; `None` for fewer than two distinct times.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var_t: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var_t <= 0.0 {
        return None;
    }
    let b = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum::<f64>() / var_t;
    Some((mean_v - b * mean_t, b))
}

/// The memory after the warm-up (at `warm_up`) and at the end (at `end`), in KiB, on the line
/// through the samples taken after the warm-up (`field` picks one of a sample's values); the
/// samples themselves when there are too few.
fn trend(
    samples: &[(Duration, u64, u64)],
    warm_up: Duration,
    end: Duration,
    field: fn(&(Duration, u64, u64)) -> u64,
) -> (f64, f64) {
    let points: Vec<(f64, f64)> =
        samples.iter().filter(|s| s.0 >= warm_up).map(|s| (s.0.as_secs_f64(), field(s) as f64)).collect();
    match fit(&points) {
        Some((a, b)) => (a + b * warm_up.as_secs_f64(), a + b * end.as_secs_f64()),
        None => {
            let first = samples.iter().find(|s| s.0 >= warm_up).or(samples.first()).map_or(0, field);
            (first as f64, samples.last().map_or(0, field) as f64)
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Kills the app when the run ends, whichever way.
struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_up(url: &str, app: &mut App) -> Result {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = app.0.try_wait() {
            return Err(format!("example-axum exited at start: {status}"));
        }
        if client.get(url).timeout(Duration::from_secs(1)).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("example-axum did not answer at {url} within 30 s"))
}

/// The driver's arguments: the app and the run's length.
fn args() -> Result<(String, u64)> {
    let mut app = None;
    let mut seconds = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--app" => app = args.next(),
            "--seconds" => {
                let value = args.next().unwrap_or_default();
                seconds = value.parse().map_err(|_| format!("--seconds {value}: not a number"))?;
            }
            other => return Err(format!("unknown argument {other} (usage: soak --app PATH --seconds N)")),
        }
    }
    Ok((app.ok_or("--app PATH is required")?, seconds))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match soak().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn soak() -> Result {
    let (app_path, seconds) = args()?;
    let redis = RedisServer::start().map_err(|e| format!("cannot start redis-server: {e}"))?;
    let provider = TestProvider::builder().token_ttl(TOKEN_TTL).start().await.map_err(|e| e.to_string())?;
    let (port, metrics_port) = (free_port()?, free_port()?);
    let base = format!("http://127.0.0.1:{port}");
    let key =
        base64::engine::general_purpose::STANDARD.encode((0u8..32).map(|b| b.wrapping_mul(37)).collect::<Vec<_>>());
    let mut command = Command::new(&app_path);
    let mut app = App(command
        .env("OIDC_ISSUER", provider.issuer())
        .env("OIDC_CLIENT_ID", provider.client_id())
        .env("OIDC_CLIENT_SECRET", provider.client_secret())
        .env("APP_URL", &base)
        .env("PORT", port.to_string())
        .env("AUTH_SESSION_KEY", key)
        .env("AUTH_STORE", redis.url())
        .env("API_AUDIENCE", "soak-api")
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {app_path}: {e}"))?);
    wait_until_up(&format!("{base}/"), &mut app).await?;
    let pid = app.0.id();
    println!("soak: {WORKERS} users for {seconds} s against example-axum (pid {pid}) with the Redis store");

    let run = Arc::new(Run {
        base,
        provider,
        http: reqwest::Client::new(),
        record: Mutex::default(),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..WORKERS).map(|_| tokio::spawn(Arc::clone(&run).worker())).collect();
    let started = Instant::now();
    let total = Duration::from_secs(seconds);
    let warm_up = total / 4;
    let mut samples = Vec::new();
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(2).min(total.saturating_sub(started.elapsed()))).await;
        if let Ok(Some(status)) = app.0.try_wait() {
            return Err(format!("example-axum exited during the run: {status}"));
        }
        if let Some((rss, anon)) = rss_kib(pid) {
            samples.push((started.elapsed(), rss, anon));
        }
    }
    run.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, worker).await;
    }
    let metrics = scrape(metrics_port).await;
    drop(app);
    drop(redis);

    let record = run.record();
    println!("\n{:<20} {:>9} {:>7} {:>9} {:>9} {:>9}", "request", "count", "errors", "p50", "p99", "max");
    for (kind, h) in &record.latency {
        let errors: u64 = record.errors.iter().filter(|(e, _)| e.starts_with(kind)).map(|(_, n)| n).sum();
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        println!(
            "{kind:<20} {:>9} {errors:>7} {:>9} {:>9} {:>9}",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        );
    }
    let errors: u64 = record.errors.values().sum();
    let refreshes = run.provider.refresh_requests();
    println!("refreshes at the provider: {refreshes}");
    let end_at = samples.last().map_or(total, |s| s.0);
    let (warm, end) = trend(&samples, warm_up, end_at, |s| s.1);
    let (warm_anon, end_anon) = trend(&samples, warm_up, end_at, |s| s.2);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let growth = if warm > 0.0 { end / warm - 1.0 } else { 0.0 };
    let at = |fraction: f64, field: fn(&(Duration, u64, u64)) -> u64| {
        let t = total.mul_f64(fraction);
        samples.iter().find(|s| s.0 >= t).or(samples.last()).map_or(0.0, |s| field(s) as f64 / 1024.0)
    };
    for (what, field) in [("RSS", (|s| s.1) as fn(&(Duration, u64, u64)) -> u64), ("anonymous", |s| s.2)] {
        println!(
            "app memory ({what}) at 25/50/75/100% of the run: {:.1} / {:.1} / {:.1} / {:.1} MiB",
            at(0.25, field),
            at(0.5, field),
            at(0.75, field),
            at(1.0, field)
        );
    }
    let per_minute = |from: f64, to: f64| {
        let minutes = end_at.saturating_sub(warm_up).as_secs_f64() / 60.0;
        if minutes > 0.0 { (to - from) / minutes } else { 0.0 }
    };
    println!(
        "app memory (RSS, the line through the samples after the warm-up): {:.1} MiB after the warm-up, {:.1} MiB at the end ({:+.1}%, {:+.0} KiB/min; anonymous {:.1} to {:.1} MiB, {:+.0} KiB/min), peak {:.1} MiB",
        warm / 1024.0,
        end / 1024.0,
        growth * 100.0,
        per_minute(warm, end),
        warm_anon / 1024.0,
        end_anon / 1024.0,
        per_minute(warm_anon, end_anon),
        peak as f64 / 1024.0
    );
    let mut problems = Vec::new();
    match &metrics {
        Some(lines) => {
            println!("the app's metrics (Prometheus, auth_*):");
            for line in lines {
                println!("  {line}");
            }
            // The app's own counts must be what the driver saw.
            let ok = |kind: &str| record.ok.get(kind).copied().unwrap_or(0);
            let expected = [
                ("auth_logins_completed_total", &[][..], ok("login")),
                ("auth_logouts_total", &[("kind", "backchannel")][..], ok("backchannel_logout")),
                ("auth_bearer_tokens_total", &[("outcome", "accepted")][..], ok("bearer")),
                ("auth_refreshes_total", &[("outcome", "ok")][..], refreshes as u64),
            ];
            for (name, labels, want) in expected {
                let got = sum(lines, name, labels);
                if got != want {
                    problems.push(format!("the app counted {got} for {name} {labels:?}, the driver {want}"));
                }
            }
        }
        None => problems.push("no auth_* metrics scraped from the app's METRICS_ADDR".into()),
    }
    if errors > 0 {
        problems.push(format!("{errors} errors"));
    }
    if record.latency.get("session").is_none_or(Histogram::is_empty) {
        problems.push("no session request was made".into());
    }
    if refreshes == 0 && seconds >= 30 {
        problems.push("no session was refreshed".into());
    }
    if seconds >= 120 && growth > MEMORY_GROWTH_LIMIT {
        problems.push(format!(
            "memory (RSS, the line through the samples) grew by {:.0}% after the warm-up",
            growth * 100.0
        ));
    }
    if problems.is_empty() {
        println!("soak: passed");
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The sum of the samples of counter `name` whose labels include `labels`, in Prometheus' text
/// format (`name{a="x",b="y"} 12`).
fn sum(lines: &[String], name: &str, labels: &[(&str, &str)]) -> u64 {
    lines
        .iter()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let has_labels = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && has_labels).then(|| value.parse::<f64>().ok()).flatten()
        })
        .map(|v| v as u64)
        .sum()
}

/// The app's `auth_*` metrics (counters; histograms' counts and p99), from its Prometheus endpoint.
async fn scrape(port: u16) -> Option<Vec<String>> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let lines: Vec<String> = text
        .lines()
        // Counters, and of each histogram its count and p99.
        .filter(|l| {
            l.starts_with("auth_")
                && !l.contains("_sum{")
                && (!l.contains("quantile=") || l.contains("quantile=\"0.99\""))
        })
        .map(str::to_owned)
        .collect();
    (!lines.is_empty()).then_some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_is_the_line_through_the_samples_after_the_warm_up_not_two_samples() {
        assert_eq!(fit(&[(1.0, 3.0)]), None);
        assert_eq!(fit(&[(1.0, 3.0), (1.0, 5.0)]), None);
        let (a, b) = fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((a - 1.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9, "{a} {b}");
        // Flat memory with a swing of 1 MiB at the last sample, and a warm-up sample that the
        // line ignores: no growth.
        let s = |t: u64, kib: u64| (Duration::from_secs(t), kib, kib / 2);
        let mut samples: Vec<_> = (10..=100).step_by(2).map(|t| s(t, 20_000)).collect();
        samples.insert(0, s(2, 5_000));
        samples.push(s(102, 21_024));
        let (warm, end) = trend(&samples, Duration::from_secs(25), Duration::from_secs(102), |s| s.1);
        assert!(end / warm - 1.0 < 0.03, "{warm} {end}");
        // Steady growth is seen whole.
        let growing: Vec<_> = (0..=100).step_by(2).map(|t| s(t, 20_000 + 100 * t)).collect();
        let (warm, end) = trend(&growing, Duration::from_secs(25), Duration::from_secs(100), |s| s.1);
        assert!((warm - 22_500.0).abs() < 1.0 && (end - 30_000.0).abs() < 1.0, "{warm} {end}");
    }
}
