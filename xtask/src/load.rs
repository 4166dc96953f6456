//! `cargo xtask bench --load [SECONDS] [--rounds=N] [--smoke]`: a loopback HTTP load test with wrk
//! (Debian's, installed when missing), against `bench/examples/load_server.rs`.
//!
//! For each framework and target (the bare route, our guard with each store, the peers), the
//! server runs pinned to core 0 with one worker thread, and wrk pinned to core 1 with one thread,
//! at 2 and then 32 connections, for `SECONDS` (default 5) after a one-second warm-up. The whole
//! list is measured `N` times (default 3), round after round, so that a slow minute of the machine
//! falls on every target alike. The table gives the median of the rounds' requests per second, p50
//! and p99 latency, each target's ratio to the bare route of the same framework at the same
//! concurrency (median to median), and the range of the ratios of single rounds (each to its own
//! round's bare route). A target that answers anything but 2xx fails the run: every request must
//! have been served by the guard.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Result, cargo, ensure_debian, project_root, target_dir};

/// The concurrency levels.
const CONNECTIONS: [u32; 2] = [2, 32];
/// How many times the whole list is measured, unless `--rounds=N` says.
const ROUNDS: usize = 3;

/// One wrk run of one target.
struct Measure {
    round: usize,
    framework: String,
    target: String,
    connections: u32,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

pub(crate) fn run(args: &[String]) -> Result {
    let smoke = args.iter().any(|a| a == "--smoke");
    let seconds: u32 = match args.iter().find(|a| !a.starts_with("--")) {
        Some(s) => s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?,
        None if smoke => 1,
        None => 5,
    };
    let rounds: usize = match args.iter().find_map(|a| a.strip_prefix("--rounds=")) {
        Some(n) => {
            n.parse().ok().filter(|&n| n > 0).ok_or_else(|| format!("`--rounds={n}`: not a number of rounds"))?
        }
        None if smoke => 1,
        None => ROUNDS,
    };
    ensure_debian("wrk", &["wrk", "taskset"], &["wrk", "util-linux"], "the load test cannot run")?;
    if smoke && !(crate::has("wrk") && crate::has("taskset")) {
        // Not root and not CI (ensure_debian fails under CI=true): `test` goes on without it.
        println!("the load test's smoke run is skipped: no wrk");
        return Ok(());
    }
    let mut build = vec!["build", "--quiet", "-p", "auth-bench", "--example", "load_server"];
    if !smoke {
        build.push("--release");
    }
    cargo(&build)?;
    let server = target_dir().join(if smoke { "debug" } else { "release" }).join("examples/load_server");
    let list = Command::new(&server).arg("--list").output().map_err(|e| format!("cannot run the load server: {e}"))?;
    let targets: Vec<(String, String)> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(f, t)| (f.to_owned(), t.to_owned())))
        .collect();
    let redis = crate::has("redis-server");
    let connections: &[u32] = if smoke { &CONNECTIONS[..1] } else { &CONNECTIONS };
    let mut results = Vec::new();
    for round in 0..rounds {
        for (framework, target) in &targets {
            if target.contains("redis") && !redis {
                if round == 0 {
                    println!("{framework} {target}: skipped (no redis-server)");
                }
                continue;
            }
            let (mut child, port, path, header) = start(&server, framework, target)?;
            let url = format!("http://127.0.0.1:{port}{path}");
            let outcome = (|| -> Result {
                for &c in connections {
                    if !smoke {
                        wrk(&url, &header, c, 1)?; // warm-up, discarded
                    }
                    let (rps, p50_us, p99_us) = wrk(&url, &header, c, seconds)?;
                    println!(
                        "round {} {framework:>6} {target:<22} c={c:<3} {rps:>10.0} req/s  p50 {p50_us:>8.1} µs  p99 {p99_us:>8.1} µs",
                        round + 1
                    );
                    results.push(Measure {
                        round,
                        framework: framework.clone(),
                        target: target.clone(),
                        connections: c,
                        rps,
                        p50_us,
                        p99_us,
                    });
                }
                Ok(())
            })();
            let _ = child.kill();
            let _ = child.wait();
            outcome.map_err(|e| format!("{framework} {target}: {e}"))?;
        }
    }
    let table = table(&results);
    println!("\n{table}");
    if smoke {
        println!("smoke run: nothing written");
        return Ok(());
    }
    let how = format!(
        "wrk with one thread pinned to core 1 against the server pinned to core 0 (one worker thread), \
         {seconds} s after a one-second warm-up, the whole list {rounds} times over; each figure is the \
         median of the {rounds} rounds, each ratio the median target's to the median bare route of the \
         same framework at the same number of connections, and the range the ratios of single rounds \
         (each to its round's bare route). Every request carried the session cookie (or bearer token) \
         and got 200."
    );
    let section = format!(
        "## Under load, on loopback (`cargo xtask bench --load {seconds} --rounds={rounds}`)\n\n{how}\n\n{}\n\n{table}\n",
        crate::results::machine()
    );
    crate::results::write_section("load", &section)?;
    Ok(())
}

/// Starts the server for one target, pinned to core 0; waits for its `READY` line.
fn start(server: &std::path::Path, framework: &str, target: &str) -> Result<(Child, u16, String, String)> {
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg("0")
        .arg(server)
        .args([framework, target])
        .current_dir(project_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the load server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            return Err(format!("{framework} {target}: the server did not say READY within 60 s"));
        }
    };
    let mut parts = line.trim_end().splitn(4, ' ');
    match (parts.next(), parts.next().and_then(|p| p.parse().ok()), parts.next(), parts.next()) {
        (Some("READY"), Some(port), Some(path), Some(header)) => Ok((child, port, path.to_owned(), header.to_owned())),
        _ => {
            let _ = child.kill();
            Err(format!("{framework} {target}: unexpected first line {line:?}"))
        }
    }
}

/// One wrk run: requests per second, p50 and p99 in µs.
fn wrk(url: &str, header: &str, connections: u32, seconds: u32) -> Result<(f64, f64, f64)> {
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"])
        .args(["-H", header, "-H", "accept: application/json", url])
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr)));
    }
    parse_wrk(&text)
}

/// Reads wrk's report: `Requests/sec:`, the `50%` and `99%` lines of `--latency`, and refuses
/// `Non-2xx or 3xx responses` and socket errors.
fn parse_wrk(text: &str) -> Result<(f64, f64, f64)> {
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
        return Err(format!("not every answer was 2xx: {}", line.trim()));
    }
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors")) {
        return Err(format!("wrk saw {}", line.trim()));
    }
    let value = |prefix: &str| -> Option<&str> {
        text.lines().map(str::trim).find(|l| l.starts_with(prefix)).and_then(|l| l.split_whitespace().nth(1))
    };
    let rps: f64 =
        value("Requests/sec:").and_then(|v| v.parse().ok()).ok_or_else(|| format!("no Requests/sec in {text}"))?;
    let p50 = value("50%").and_then(micros).ok_or_else(|| format!("no p50 in {text}"))?;
    let p99 = value("99%").and_then(micros).ok_or_else(|| format!("no p99 in {text}"))?;
    Ok((rps, p50, p99))
}

/// wrk's durations (`812.00us`, `1.23ms`, `2.01s`) in µs.
fn micros(v: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

/// The median of some numbers (the mean of the middle two for an even count; 0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

/// The Markdown table: one row per target and concurrency (in the order first measured), with
/// the medians of the rounds, the ratio to the bare route, and the range of single rounds' ratios.
fn table(results: &[Measure]) -> String {
    let mut out = String::from(
        "| framework | target | connections | requests/s | ratio to bare | rounds' ratios | p50 | p99 |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut seen: Vec<(&str, &str, u32)> = Vec::new();
    for m in results {
        let key = (m.framework.as_str(), m.target.as_str(), m.connections);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let runs = |target: &str| -> Vec<&Measure> {
            results
                .iter()
                .filter(|r| r.framework == m.framework && r.connections == m.connections && r.target == target)
                .collect()
        };
        let (these, bare) = (runs(&m.target), runs("bare"));
        let rps = median(these.iter().map(|r| r.rps).collect());
        let bare_rps = (!bare.is_empty()).then(|| median(bare.iter().map(|r| r.rps).collect()));
        let ratio = bare_rps.map_or_else(|| "–".to_owned(), |b| format!("{:.2}×", rps / b));
        let singles: Vec<f64> =
            these.iter().filter_map(|r| bare.iter().find(|b| b.round == r.round).map(|b| r.rps / b.rps)).collect();
        let range = match singles.iter().copied().reduce(f64::min).zip(singles.iter().copied().reduce(f64::max)) {
            Some((lo, hi)) if singles.len() > 1 => format!("{lo:.2}–{hi:.2}×"),
            _ => "–".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {rps:.0} | {ratio} | {range} | {} | {} |\n",
            m.framework,
            m.target,
            m.connections,
            duration(median(these.iter().map(|r| r.p50_us).collect())),
            duration(median(these.iter().map(|r| r.p99_us).collect()))
        ));
    }
    out.trim_end().to_owned()
}

fn duration(us: f64) -> String {
    if us >= 1000.0 { format!("{:.2} ms", us / 1000.0) } else { format!("{us:.0} µs") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 1s test @ http://127.0.0.1:1/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    61.27us   20.11us   1.20ms   95.00%
    Req/Sec    30.12k     1.10k   31.00k    90.00%
  Latency Distribution
     50%   57.00us
     75%   63.00us
     90%   72.00us
     99%    1.50ms
  30000 requests in 1.00s, 3.00MB read
Requests/sec:  29990.12
Transfer/sec:      3.00MB
";

    #[test]
    fn reads_wrks_report() {
        let (rps, p50, p99) = parse_wrk(WRK).unwrap();
        assert!((rps - 29990.12).abs() < 1e-6);
        assert!((p50 - 57.0).abs() < 1e-9 && (p99 - 1500.0).abs() < 1e-9, "{p50} {p99}");
    }

    #[test]
    fn refuses_a_run_with_errors() {
        let refused = WRK.replace("Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec");
        assert!(parse_wrk(&refused).unwrap_err().contains("Non-2xx"));
        let broken =
            WRK.replace("Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec");
        assert!(parse_wrk(&broken).unwrap_err().contains("Socket errors"));
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn durations_in_micros() {
        assert_eq!(micros("812.00us"), Some(812.0));
        assert_eq!(micros("1.5ms"), Some(1500.0));
        assert_eq!(micros("2.00s"), Some(2e6));
        assert_eq!(micros("1.00m"), Some(60e6));
        assert_eq!(micros("12"), None);
    }

    #[test]
    fn ratios_are_to_the_same_frameworks_bare_route_at_the_same_concurrency() {
        let m = |f: &str, t: &str, c, rps| Measure {
            round: 0,
            framework: f.into(),
            target: t.into(),
            connections: c,
            rps,
            p50_us: 10.0,
            p99_us: 2000.0,
        };
        let t = table(&[
            m("axum", "bare", 2, 100.0),
            m("axum", "ours", 2, 80.0),
            m("axum", "bare", 32, 200.0),
            m("axum", "ours", 32, 50.0),
        ]);
        assert!(t.contains("| axum | ours | 2 | 80 | 0.80× | – | 10 µs | 2.00 ms |"), "{t}");
        assert!(t.contains("| axum | ours | 32 | 50 | 0.25× |"), "{t}");
    }

    #[test]
    fn rounds_give_medians_and_the_range_of_single_rounds() {
        let m = |round, t: &str, rps, p99_us| Measure {
            round,
            framework: "actix".into(),
            target: t.into(),
            connections: 32,
            rps,
            p50_us: 100.0,
            p99_us,
        };
        let t = table(&[
            m(0, "bare", 100.0, 500.0),
            m(0, "ours", 90.0, 600.0),
            m(1, "bare", 150.0, 400.0),
            m(1, "ours", 100.0, 900.0),
            m(2, "bare", 120.0, 450.0),
            m(2, "ours", 96.0, 700.0),
        ]);
        // Medians 96 and 120; single rounds 0.90, 0.67 and 0.80.
        assert!(t.contains("| actix | ours | 32 | 96 | 0.80× | 0.67–0.90× | 100 µs | 700 µs |"), "{t}");
        assert!(t.contains("| actix | bare | 32 | 120 | 1.00× | 1.00–1.00× | 100 µs | 450 µs |"), "{t}");
        assert_eq!(t.lines().count(), 4, "one row per target and concurrency: {t}");
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
