//! `cargo xtask soak [MINUTES] [--smoke]`: the bounded soak test. Builds example-axum and the
//! driver `tests/soak` (release; `--smoke`: debug), then runs the driver, which starts
//! Redis, the test provider and the example, drives logins, session requests, refreshes, bearer
//! calls and back-channel logouts for `MINUTES` (default 10; `--smoke`: 20 s, which
//! `cargo xtask test` runs), and fails on any error or on memory that keeps growing.

use crate::{Result, cargo, ensure_redis, run, target_dir};

/// Minutes of `cargo xtask soak`.
const DEFAULT_MINUTES: u64 = 10;
/// Seconds of `cargo xtask soak --smoke`.
const SMOKE_SECONDS: u64 = 20;

pub(crate) fn run_soak(args: &[String]) -> Result {
    let smoke = args.iter().any(|a| a == "--smoke");
    let seconds = match args.iter().find(|a| !a.starts_with("--")) {
        Some(m) => 60 * m.parse::<u64>().map_err(|_| format!("`{m}` is not a number of minutes"))?,
        None if smoke => SMOKE_SECONDS,
        None => 60 * DEFAULT_MINUTES,
    };
    ensure_redis()?;
    let mut build = vec!["build", "--quiet", "-p", "example-axum", "-p", "soak"];
    if !smoke {
        build.push("--release");
    }
    cargo(&build)?;
    let dir = target_dir().join(if smoke { "debug" } else { "release" });
    let app = dir.join("example-axum");
    let driver = dir.join("soak");
    run(
        &driver.to_string_lossy(),
        &["--app", &app.to_string_lossy(), "--seconds", &seconds.to_string()],
        &crate::project_root(),
        &[],
    )
}
