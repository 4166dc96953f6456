//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `demo`: run example-axum with the built-in development provider.
//! - `test`: everything CI checks: formatting, clippy (`-D warnings`), rustdoc (`-D warnings`),
//!   `cargo package` of the library crates,
//!   every test of the workspace (installing `redis-server` from Debian when missing, for the
//!   Redis store's tests), the end-to-end stage, and the smoke runs of `soak`, `fuzz` and
//!   `bench --load`.
//! - `lint`: formatting, clippy, rustdoc, `cargo package` of every library crate, and the guide's
//!   build.
//! - `e2e`: install the end-to-end tools (the pinned node-oidc-provider; Chromium and chromedriver
//!   from Debian when missing and running as root) and run the end-to-end tests.
//! - `docs`: build the guide (`docs/`, with mdBook, installed at the pinned version when missing)
//!   into `docs/book/`, and run its code blocks as doctests.
//! - `bench`: the criterion benchmarks, then the load test, writing both into `bench/RESULTS.md`
//!   (`bench --benches`: only the criterion ones; `bench --bench NAME`: one, RESULTS.md left as
//!   it is); `bench --load [SECONDS] [--rounds=N]`: the loopback load test alone (wrk against each
//!   framework's protected route, bare, behind our guard and behind the peers, N rounds, 3 by
//!   default); `bench --load --smoke`: one second per target, a debug build, nothing written (in
//!   `test`, so that the load test keeps working).
//! - `soak [MINUTES]`: logins, session requests, refreshes, bearer calls and back-channel logouts
//!   against example-axum with the Redis store (`tests/soak`), failing on any error or
//!   on memory that keeps growing; `soak --smoke`: 20 s on a debug build (in `test`).
//! - `fuzz [SECONDS] [TARGET…]`: the fuzz targets of `fuzz/` (cargo-fuzz on nightly), each for
//!   `SECONDS` (default 60) on a copy of its seeds; `fuzz --smoke`: a few seconds each (in `test`).
//!
//! Only the standard library: a handful of subcommands without flags needs no argument parser.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => lint()
            .and_then(|()| tests())
            .and_then(|()| e2e())
            .and_then(|()| soak::run_soak(&["--smoke".into()]))
            .and_then(|()| fuzz::run(&["--smoke".into()]))
            .and_then(|()| load::run(&["--smoke".into()])),
        Some("lint") => lint(),
        Some("unit") => tests(),
        Some("e2e") => e2e(),
        Some("docs") => docs(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("soak") => soak::run_soak(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <demo | test | lint | unit | e2e | docs | bench | fuzz | soak>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of xtask's manifest directory, as `cargo run` says it at run
/// time. The compile-time value comes second: with a target directory shared by several
/// checkouts (CI keeps one across clones), `target/debug/xtask` may be another checkout's build,
/// and would test that checkout instead.
fn project_root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run(program: &str, args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Result {
    println!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{program} {}` failed ({status})", args.join(" "))) }
}

fn cargo(args: &[&str]) -> Result {
    cargo_with(args, &[])
}

/// `cargo` with these environment variables set.
fn cargo_with(args: &[&str], envs: &[(&str, &str)]) -> Result {
    run(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), args, &project_root(), envs)
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn demo() -> Result {
    cargo(&["run", "-p", "example-axum"])
}

fn lint() -> Result {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    run(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        &["doc", "--workspace", "--no-deps"],
        &project_root(),
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    package()?;
    book()
}

/// The mdBook release the guide is built with.
const MDBOOK_VERSION: &str = "0.5.4";

/// `cargo xtask docs`: the guide's HTML, and its code blocks compiled and run (they are doctests
/// of `tests/readme`, with the page list checked against `SUMMARY.md`).
fn docs() -> Result {
    book()?;
    cargo(&["test", "-p", "readme-snippets"])?;
    docs_rs()?;
    let index = project_root().join("docs/book/index.html");
    println!("the guide: {}", index.display());
    Ok(())
}

/// The API docs as docs.rs builds them (nightly, `--cfg docsrs`, every feature), so that each
/// item behind a feature carries its badge; skipped, with a note, without a nightly toolchain.
fn docs_rs() -> Result {
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("nightly")));
    if !nightly {
        println!("no nightly toolchain: the docs.rs build (feature badges) is skipped");
        return Ok(());
    }
    let target = target_dir().join("docsrs");
    let mut args = vec!["run", "nightly", "cargo", "doc", "--no-deps", "--all-features", "--target-dir"];
    let target = target.to_string_lossy();
    args.push(&target);
    for library in LIBRARIES {
        args.extend(["-p", library]);
    }
    run("rustup", &args, &project_root(), &[("RUSTDOCFLAGS", "--cfg docsrs -D warnings")])?;
    println!("the API docs, as docs.rs shows them: {target}/doc/auth_core/index.html");
    Ok(())
}

/// Builds `docs/` into `docs/book/`.
fn book() -> Result {
    let mdbook = ensure_mdbook()?;
    run(&mdbook.to_string_lossy(), &["build"], &project_root().join("docs"), &[])
}

/// mdBook at [`MDBOOK_VERSION`], installed with `cargo install` (only its HTML renderer and
/// search, no server) under the target directory's `tools/`, which CI keeps between runs.
fn ensure_mdbook() -> Result<PathBuf> {
    let root = target_dir().join("tools");
    let mdbook = root.join("bin").join("mdbook");
    let installed = Command::new(&mdbook)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == format!("mdbook v{MDBOOK_VERSION}"));
    if !installed {
        let root = root.to_string_lossy();
        cargo(&[
            "install",
            "mdbook",
            "--version",
            MDBOOK_VERSION,
            "--locked",
            "--no-default-features",
            "--features",
            "search",
            "--root",
            &root,
        ])?;
    }
    Ok(mdbook)
}

/// The library crates, as they would be published.
const LIBRARIES: [&str; 6] = ["auth-core", "auth-testkit", "auth-axum", "auth-actix", "auth-rocket", "auth-redis"];

/// `cargo package` for every library crate: its manifest, its files (README, licences) and its
/// dependencies as the registry would see them (each other's through cargo's local overlay). The
/// packages are not built again from their tarballs (`--no-verify`): the workspace build is.
fn package() -> Result {
    let mut args = vec!["package", "--no-verify", "--allow-dirty"];
    for library in LIBRARIES {
        args.extend(["-p", library]);
    }
    cargo(&args)
}

fn tests() -> Result {
    ensure_redis()?;
    if has("cargo-nextest") {
        cargo(&["nextest", "run", "--workspace", "--exclude", "e2e-tests", "--no-fail-fast"])?;
    } else {
        cargo(&["test", "--workspace", "--exclude", "e2e-tests", "--lib", "--bins", "--tests"])?;
    }
    cargo(&["test", "--workspace", "--doc"])
}

fn e2e() -> Result {
    let root = project_root();
    let provider = root.join("tests/e2e/provider");
    if !provider.join("package.json").exists() {
        println!("no end-to-end provider configured yet; skipping");
        return Ok(());
    }
    if !has("node") || !has("npm") {
        return Err("the end-to-end tests need Node.js 20+ and npm (apt-get install nodejs npm)".into());
    }
    run("npm", &["ci", "--no-audit", "--no-fund", "--loglevel=error"], &provider, &[])?;
    ensure_browser()?;
    if !root.join("tests/e2e/Cargo.toml").exists() {
        println!("no end-to-end test crate yet; the provider installed fine");
        return Ok(());
    }
    // The tests start the example binaries; build them here, one at a time and exactly as the
    // tests ask for them (`-p <example>`), so the tests' own builds are no-ops and never wait on
    // each other for cargo's lock.
    for example in ["example-axum", "example-actix", "example-rocket"] {
        cargo(&["build", "--quiet", "-p", example])?;
    }
    // The tests print each flow with its time, and where the screenshots and logs are: show that
    // output for passing tests too.
    if has("cargo-nextest") {
        cargo(&["nextest", "run", "-p", "e2e-tests", "--no-fail-fast", "--success-output", "final"])
    } else {
        cargo(&["test", "-p", "e2e-tests", "--", "--nocapture"])
    }
}

/// Chromium and chromedriver from Debian: installed when missing and running as root, else a clear
/// message (and, under `CI=true`, a failure).
fn ensure_browser() -> Result {
    ensure_debian(
        "Chromium",
        &["chromium", "chromedriver"],
        &["chromium", "chromium-driver"],
        "the browser tests are skipped; the form-following end-to-end tests still run",
    )
}

/// `redis-server` from Debian, for the Redis store's tests (each test starts its own on a free
/// loopback port), and `redis-cli` (its `redis-tools`), with which the cluster tests join three
/// servers into a cluster: installed when missing and running as root.
fn ensure_redis() -> Result {
    ensure_debian(
        "redis-server",
        &["redis-server", "redis-cli"],
        &["redis-server", "redis-tools"],
        "the Redis store's tests are skipped",
    )
}

/// Installs Debian `packages` when one of `binaries` is missing and we are root (with apt); else
/// says how, and under `CI=true` fails.
fn ensure_debian(what: &str, binaries: &[&str], packages: &[&str], without: &str) -> Result {
    if binaries.iter().all(|b| has(b)) {
        return Ok(());
    }
    let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root_user && has("apt-get") {
        run("apt-get", &["update", "-qq"], &project_root(), &[])?;
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend_from_slice(packages);
        run("apt-get", &args, &project_root(), &[("DEBIAN_FRONTEND", "noninteractive")])?;
        return Ok(());
    }
    let message =
        format!("{what} is missing: install it with `sudo apt-get install {}` ({without})", packages.join(" "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(message);
    }
    eprintln!("warning: {message}");
    Ok(())
}

fn bench(extra: &[String]) -> Result {
    if extra.first().map(String::as_str) == Some("--load") {
        return load::run(&extra[1..]);
    }
    let since = std::time::SystemTime::now();
    let mut args = vec!["bench", "-p", "auth-bench"];
    args.extend(extra.iter().map(String::as_str));
    // Figures a benchmark measures beside criterion's timings (the JWKS single flight) are
    // written there, one file per group, for RESULTS.md.
    cargo_with(&args, &[("AUTH_BENCH_NOTES", &results::notes_dir().to_string_lossy())])?;
    // RESULTS.md's section is one run of every benchmark: a part would drop the others' tables.
    let every_benchmark = extra.is_empty() || extra == ["--benches"];
    if !every_benchmark {
        println!(
            "a part of the benchmarks: bench/RESULTS.md is left as it is (`cargo xtask bench --benches` runs them all)"
        );
        return Ok(());
    }
    results::write_criterion(since)?;
    // A whole run (no benchmark named) measures under load too.
    if extra.is_empty() { load::run(&[]) } else { Ok(()) }
}

/// The target directory cargo builds into (CI keeps one outside the clone).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from)
}

mod fuzz;
mod load;
mod results;
mod soak;
