//! `bench/RESULTS.md`: the benchmark tables of the latest runs, each section written by the run
//! that measured it (between `<!-- begin NAME -->` and `<!-- end NAME -->`), with the machine it
//! ran on. Absolute numbers compare only within one run; the ratios are what carries over.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{Result, project_root, target_dir};

const HEADER: &str = "# Benchmark results\n\nWritten by `cargo xtask bench` (the in-process criterion benchmarks) and \
`cargo xtask bench --load` (the loopback load test); each section says when, on which machine, and with which \
versions it was measured. Absolute numbers are only comparable within one section (one run, one machine); the \
ratios to the bare route measured in the same run are what carries over to another machine.\n";

fn path() -> PathBuf {
    project_root().join("bench/RESULTS.md")
}

/// Replaces (or appends) the section `name` of `bench/RESULTS.md`.
pub(crate) fn write_section(name: &str, body: &str) -> Result {
    let path = path();
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| HEADER.to_owned());
    let (begin, end) = (format!("<!-- begin {name} -->"), format!("<!-- end {name} -->"));
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(&path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("written: {}", path.display());
    Ok(())
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The machine, the date and the versions a section was measured with.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let lock = std::fs::read_to_string(project_root().join("Cargo.lock")).unwrap_or_default();
    let versions: Vec<String> = [
        "axum",
        "actix-web",
        "rocket",
        "tower-sessions",
        "tower-sessions-redis-store",
        "axum-extra",
        "axum-login",
        "actix-session",
        "jwt-authorizer",
        "axum-keycloak-auth",
    ]
    .iter()
    .map(|name| format!("{name} {}", locked_versions(&lock, name).join("/")))
    .collect();
    format!(
        "Measured {} on {cores} cores ({cpu}), {}, {}, wrk {}. Versions: {}.",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        command_line("uname", &["-sr"]),
        command_line("rustc", &["-V"]),
        command_line("sh", &["-c", "wrk -v 2>&1 | head -1 | cut -d' ' -f2"]),
        versions.join(", ")
    )
}

/// Every version of `name` in `Cargo.lock`.
fn locked_versions(lock: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = lock.lines();
    let wanted = format!("name = \"{name}\"");
    while let Some(line) = lines.next() {
        if line == wanted
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")).and_then(|v| v.strip_suffix('"'))
        {
            out.push(v.to_owned());
        }
    }
    out
}

/// The criterion section: every benchmark measured since `since`, by group, its median, and its
/// ratio to the group's bare route (`bare_route` or `bare`, when the group has one).
pub(crate) fn write_criterion(since: SystemTime) -> Result {
    let root = target_dir().join("criterion");
    let mut found = Vec::new();
    collect(&root, &root, since, &mut found);
    if found.is_empty() {
        return Err(format!("no criterion results newer than this run under {}", root.display()));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = format!(
        "## In-process (`cargo xtask bench`)\n\nMedians of criterion's estimates; each ratio is to the bare route of the \
         same group in this run.\n\n{}\n",
        machine()
    );
    let mut group = String::new();
    let mut baseline = None;
    for (index, (name, median_ns)) in found.iter().enumerate() {
        let (g, rest) = name.split_once('/').unwrap_or((name.as_str(), ""));
        if g != group {
            group = g.to_owned();
            baseline = baseline_of(&found, g);
            match baseline {
                Some((base, _)) => {
                    out.push_str(&format!(
                        "\n### `{g}`\n\n| benchmark | median | ratio to `{base}` |\n|---|---|---|\n"
                    ));
                }
                None => out.push_str(&format!("\n### `{g}`\n\n| benchmark | median |\n|---|---|\n")),
            }
        }
        match baseline {
            Some((_, b)) => out.push_str(&format!("| {rest} | {} | {:.2}× |\n", human(*median_ns), median_ns / b)),
            None => out.push_str(&format!("| {rest} | {} |\n", human(*median_ns))),
        }
        let last_of_group =
            found.get(index + 1).is_none_or(|(next, _)| next.split_once('/').map(|(g, _)| g) != Some(g));
        if last_of_group {
            out.push_str(&group_notes(&found, g, since));
        }
    }
    write_section("criterion", &out)
}

/// Where the benchmarks write what they measure beside criterion's timings: `<group>.md`.
pub(crate) fn notes_dir() -> PathBuf {
    target_dir().join("criterion").join("notes")
}

/// The lines under a group's table: the figures derived from its medians (logins per second,
/// our share of a login), and the group's notes written in this run.
fn group_notes(found: &[(String, f64)], group: &str, since: SystemTime) -> String {
    let median = |name: &str| found.iter().find(|(n, _)| *n == format!("{group}/{name}")).map(|(_, m)| *m);
    let mut out = String::new();
    if group == "login"
        && let (Some(full), Some(provider)) = (median("full_login"), median("provider_only"))
    {
        let ours = (full - provider).max(0.0);
        out.push_str(&format!(
            "\nOne login after another: {:.0} complete logins per second (1 / `full_login`); {:.0}% of a login \
             ({}) is our code (`full_login` − `provider_only`), the rest the round trips and the provider's work.\n",
            1e9 / full,
            100.0 * ours / full,
            human(ours),
        ));
    }
    let file = notes_dir().join(format!("{group}.md"));
    let fresh = std::fs::metadata(&file).and_then(|m| m.modified()).is_ok_and(|m| m >= since);
    if fresh && let Ok(text) = std::fs::read_to_string(&file) {
        out.push_str(&format!("\n{}\n", text.trim_end()));
    }
    out
}

/// The group's bare route (`bare_route`, or `bare`) and its median, if it has one.
fn baseline_of(found: &[(String, f64)], group: &str) -> Option<(&'static str, f64)> {
    ["bare_route", "bare"].into_iter().find_map(|base| {
        found
            .iter()
            .find(|(n, _)| n.strip_prefix(group).and_then(|r| r.strip_prefix('/')) == Some(base))
            .map(|(_, m)| (base, *m))
    })
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Every `…/new/estimates.json` under `dir` modified since `since`: (benchmark path, median ns).
fn collect(root: &Path, dir: &Path, since: SystemTime, out: &mut Vec<(String, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || path.file_name().is_some_and(|n| n == "report") {
            continue;
        }
        let estimates = path.join("new/estimates.json");
        let fresh = std::fs::metadata(&estimates).and_then(|m| m.modified()).is_ok_and(|m| m >= since);
        if fresh {
            let median = std::fs::read_to_string(&estimates).ok().and_then(|t| median_ns(&t));
            if let (Some(median), Ok(rel)) = (median, path.strip_prefix(root)) {
                out.push((rel.to_string_lossy().into_owned(), median));
            }
        }
        collect(root, &path, since, out);
    }
}

/// `median.point_estimate` of criterion's `estimates.json` (read without a JSON parser: xtask
/// stays on the standard library).
fn median_ns(json: &str) -> Option<f64> {
    let rest = &json[json.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterions_median() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5,"standard_error":0.1},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1234.5,"standard_error":0.1}}"#;
        assert_eq!(median_ns(json), Some(1234.5));
        assert_eq!(median_ns("{}"), None);
    }

    #[test]
    fn a_group_is_measured_against_its_bare_route_or_bare() {
        let found: Vec<(String, f64)> =
            [("a/bare_route", 1.0), ("a/bare", 2.0), ("b/bare", 3.0), ("b/x", 4.0), ("c/x", 5.0)]
                .iter()
                .map(|(n, m)| ((*n).to_owned(), *m))
                .collect();
        assert_eq!(baseline_of(&found, "a"), Some(("bare_route", 1.0)));
        assert_eq!(baseline_of(&found, "b"), Some(("bare", 3.0)));
        assert_eq!(baseline_of(&found, "c"), None);
        assert_eq!(baseline_of(&found, "b/"), None);
    }

    #[test]
    fn a_login_group_gets_logins_per_second_and_our_share() {
        let found: Vec<(String, f64)> = [("login/full_login", 2.0e6), ("login/provider_only", 1.5e6), ("x/y", 1.0)]
            .iter()
            .map(|(n, m)| ((*n).to_owned(), *m))
            .collect();
        // A run that starts later than any notes file: none is read.
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        let notes = group_notes(&found, "login", later);
        assert!(notes.contains("500 complete logins per second"), "{notes}");
        assert!(notes.contains("25% of a login (500.00 µs) is our code"), "{notes}");
        assert_eq!(group_notes(&found, "x", later), "");
    }

    #[test]
    fn finds_locked_versions() {
        let lock =
            "[[package]]\nname = \"axum\"\nversion = \"0.7.9\"\n\n[[package]]\nname = \"axum\"\nversion = \"0.8.4\"\n";
        assert_eq!(locked_versions(lock, "axum"), ["0.7.9", "0.8.4"]);
        assert!(locked_versions(lock, "rocket").is_empty());
    }
}
