//! `cargo xtask fuzz [SECONDS] [TARGET…]` and `cargo xtask fuzz --smoke`: the fuzz targets of
//! `fuzz/` (cargo-fuzz, libFuzzer), built on the nightly toolchain and each run for a bounded
//! time (default 60 s; `--smoke`: a few seconds, which CI runs so that the targets keep building
//! and their seeds keep passing).
//!
//! cargo-fuzz is installed at [`CARGO_FUZZ_VERSION`] under the target directory's `tools/`, as
//! mdBook is. Each target starts from a fresh copy of its seeds (`fuzz/seeds/<target>/`) in the
//! target directory, never in the repository; the table printed at the end gives what libFuzzer
//! reports as it stops (`#N DONE cov: X ft: Y`): executions, edges covered, features and corpus
//! size. A target that crashes fails the run, naming its crash artifact: turn it into a test in
//! `crates/auth-core/tests/fuzz_regressions.rs` and fix the bug.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Result, cargo, project_root, run as run_command, target_dir};

/// The cargo-fuzz release the targets are built with.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Seconds per target of `cargo xtask fuzz`.
const DEFAULT_SECONDS: u64 = 60;
/// Seconds per target of `cargo xtask fuzz --smoke`.
const SMOKE_SECONDS: u64 = 3;

/// What libFuzzer said as a target stopped.
struct Outcome {
    target: String,
    executions: u64,
    cov: u64,
    ft: u64,
    corpus: u64,
    seconds: f64,
    /// The crash artifacts written, when it crashed.
    failure: Option<String>,
}

pub(crate) fn run(args: &[String]) -> Result {
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut seconds = if smoke { SMOKE_SECONDS } else { DEFAULT_SECONDS };
    let mut only = Vec::new();
    for arg in args.iter().filter(|a| *a != "--smoke") {
        match arg.parse() {
            Ok(n) => seconds = n,
            Err(_) => only.push(arg.as_str()),
        }
    }
    ensure_nightly()?;
    let cargo_fuzz = ensure_cargo_fuzz()?;
    let started = Instant::now();
    let out = target_dir().join("fuzz");
    let out_text = out.to_string_lossy().into_owned();
    // No sanitizer: auth-core and its sibling crates forbid `unsafe`, so AddressSanitizer would
    // only watch dependencies (its instrumentation does not reach aws-lc's C code, which cargo
    // builds without it) while halving the executions per second. Coverage guidance, debug
    // assertions and overflow checks stay on: they are what finds panics in safe Rust.
    run_command(
        &cargo_fuzz.to_string_lossy(),
        &["fuzz", "build", "--sanitizer", "none", "--target-dir", &out_text],
        &project_root(),
        &[("RUSTUP_TOOLCHAIN", "nightly")],
    )?;
    let built = started.elapsed().as_secs_f64();
    let bin_dir = out.join(host_triple()?).join("release");
    let targets: Vec<String> =
        fuzz_targets()?.into_iter().filter(|t| only.is_empty() || only.contains(&t.as_str())).collect();
    if targets.is_empty() {
        return Err(format!("no fuzz target named {}", only.join(", ")));
    }
    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(fuzz_one(&bin_dir, &out, target, seconds)?);
    }
    print!("{}", table(&outcomes));
    println!("built in {built:.0} s, {} s in all", started.elapsed().as_secs());
    let failed: Vec<String> =
        outcomes.iter().filter_map(|o| o.failure.as_ref().map(|f| format!("{} ({f})", o.target))).collect();
    if failed.is_empty() { Ok(()) } else { Err(format!("fuzz targets crashed: {}", failed.join("; "))) }
}

/// Runs one target for `seconds` on a fresh copy of its seeds.
fn fuzz_one(bin_dir: &Path, out: &Path, target: &str, seconds: u64) -> Result<Outcome> {
    let corpus = out.join("corpus").join(target);
    let artifacts = out.join("artifacts").join(target);
    let log = out.join("logs").join(format!("{target}.log"));
    if corpus.exists() {
        std::fs::remove_dir_all(&corpus).map_err(|e| format!("cannot clear {}: {e}", corpus.display()))?;
    }
    for dir in [&corpus, &artifacts, &out.join("logs")] {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let seeds = project_root().join("fuzz/seeds").join(target);
    for seed in std::fs::read_dir(&seeds).map_err(|e| format!("no seeds for {target} in {}: {e}", seeds.display()))? {
        let seed = seed.map_err(|e| e.to_string())?.path();
        if let Some(name) = seed.file_name() {
            std::fs::copy(&seed, corpus.join(name)).map_err(|e| format!("cannot copy {}: {e}", seed.display()))?;
        }
    }
    println!("$ {target} for {seconds} s (log: {})", log.display());
    let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let start = Instant::now();
    let status = Command::new(bin_dir.join(target))
        .arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // One input taking this long is a finding too (a hang), as is a run past this memory.
        .args(["-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .map_err(|e| format!("cannot run the fuzz target {target}: {e}"))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut outcome = parse_log(target, &text);
    outcome.seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        let written: Vec<&str> = text.lines().filter_map(|l| l.split("Test unit written to ").nth(1)).collect();
        let panic = text.lines().find(|l| l.contains("panicked at")).unwrap_or("see the log");
        let what = if written.is_empty() { "no artifact".to_owned() } else { written.join(", ") };
        outcome.failure = Some(format!("{status}: {panic}; {what}; log {}", log.display()));
        eprintln!("{target} crashed: {}", outcome.failure.as_deref().unwrap_or_default());
    }
    Ok(outcome)
}

/// Reads the last status line libFuzzer printed (`#N DONE cov: X ft: Y corp: C/…`).
fn parse_log(target: &str, text: &str) -> Outcome {
    let mut outcome =
        Outcome { target: target.to_owned(), executions: 0, cov: 0, ft: 0, corpus: 0, seconds: 0.0, failure: None };
    let status = text.lines().rev().find(|l| l.starts_with('#') && l.contains(" cov: ")).unwrap_or_default();
    let words: Vec<&str> = status.split_whitespace().collect();
    let after = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied();
    let number = |text: Option<&str>| text.and_then(|t| t.split('/').next()?.parse().ok()).unwrap_or(0);
    outcome.executions = number(words.first().map(|w| w.trim_start_matches('#')));
    outcome.cov = number(after("cov:"));
    outcome.ft = number(after("ft:"));
    outcome.corpus = number(after("corp:"));
    outcome
}

fn table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "\n{:<16} {:>12} {:>10} {:>7} {:>7} {:>7} {:>6}  {}\n",
        "target", "executions", "exec/s", "cov", "ft", "corpus", "s", "result"
    );
    for o in outcomes {
        let per_second = if o.seconds > 0.0 { o.executions as f64 / o.seconds } else { 0.0 };
        out.push_str(&format!(
            "{:<16} {:>12} {:>10.0} {:>7} {:>7} {:>7} {:>6.0}  {}\n",
            o.target,
            o.executions,
            per_second,
            o.cov,
            o.ft,
            o.corpus,
            o.seconds,
            if o.failure.is_some() { "CRASH" } else { "ok" }
        ));
    }
    let crashes = outcomes.iter().filter(|o| o.failure.is_some()).count();
    out.push_str(&format!("{} targets, {crashes} crashes\n", outcomes.len()));
    out
}

/// The targets, as cargo-fuzz lists them from `fuzz/Cargo.toml`.
fn fuzz_targets() -> Result<Vec<String>> {
    let text = std::fs::read_to_string(project_root().join("fuzz/Cargo.toml")).map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            targets.push(name.trim_matches('"').to_owned());
        }
    }
    Ok(targets)
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("nightly")))
}

/// The nightly toolchain cargo-fuzz needs (`-Z` flags, the sanitizer-coverage pass): installed
/// with rustup's minimal profile when missing.
fn ensure_nightly() -> Result {
    if has_nightly() {
        return Ok(());
    }
    run_command("rustup", &["toolchain", "install", "nightly", "--profile", "minimal"], &project_root(), &[])
        .map_err(|e| format!("the fuzz targets need the nightly toolchain, which rustup could not install: {e}"))
}

/// The nightly toolchain's host triple (cargo-fuzz builds for it, into `<target dir>/<triple>/`).
fn host_triple() -> Result<String> {
    let output = Command::new("rustup")
        .args(["run", "nightly", "rustc", "-vV"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".into())
}

/// cargo-fuzz at [`CARGO_FUZZ_VERSION`], installed with `cargo install --locked` under the target
/// directory's `tools/`, which CI keeps between runs.
fn ensure_cargo_fuzz() -> Result<PathBuf> {
    let root = target_dir().join("tools");
    let cargo_fuzz = root.join("bin").join("cargo-fuzz");
    let installed = Command::new(&cargo_fuzz)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == format!("cargo-fuzz {CARGO_FUZZ_VERSION}"));
    if !installed {
        let root = root.to_string_lossy();
        cargo(&["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION, "--locked", "--root", &root])?;
    }
    Ok(cargo_fuzz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_s_last_status_line() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #883889\tDONE   cov: 797 ft: 1847 corp: 655/21Kb lim: 3326 exec/s: 98209 rss: 29Mb\n\
                   Done 883889 runs in 9 second(s)\n";
        let o = parse_log("t", log);
        assert_eq!((o.executions, o.cov, o.ft, o.corpus), (883_889, 797, 1847, 655));
    }
}
