//! Child processes that cannot outlive the test: killed on drop (also while panicking), together
//! with everything they started (chromedriver's Chromium), their output kept in a log file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (the OS picks it; the listener is closed again at once).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A running child process; killed with all its descendants when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Mutex<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its stderr going to `log`, and its stdout too unless `pipe_stdout` (then
    /// the caller reads it from [`Proc::take_stdout`]).
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, pipe_stdout: bool) -> Proc {
        let file = File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let stdout =
            if pipe_stdout { Stdio::piped() } else { Stdio::from(file.try_clone().expect("clone a file handle")) };
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc { name: name.to_owned(), child: Mutex::new(child), log: log.to_owned() }
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its piped stdout (once).
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        self.child().stdout.take()
    }

    /// The exit status if it has exited already.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child().try_wait().ok().flatten()
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where its log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics with its log when it has exited.
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!("{} exited early ({status}); its log ({}):\n{}", self.name, self.log.display(), self.log_tail(80));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Collect the descendants first: once the child is dead they are re-parented and lost.
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let pid = child.id();
        let descendants = descendants_of(pid);
        let _ = child.kill();
        if !descendants.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(descendants.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- last lines of {} (pid {pid}), full log: {} -----\n{}\n-----",
                self.name,
                self.log.display(),
                self.log_tail(60)
            );
        }
    }
}

/// Every process below `root`, from Linux's /proc (empty elsewhere).
fn descendants_of(root: u32) -> BTreeSet<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return BTreeSet::new() };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if out.insert(child) {
                todo.push(child);
            }
        }
    }
    out
}

/// Polls `ready` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn poll<T, F, Fut>(limit: Duration, mut ready: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = ready().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
