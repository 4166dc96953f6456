//! A throwaway `redis-server` for tests (feature `test-server`): on a free loopback port, without
//! persistence, stopped when dropped. It needs the `redis-server` binary (Debian's
//! `redis-server` package) on the `PATH`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own.
///
/// ```no_run
/// let server = auth_redis::test_server::RedisServer::start().expect("redis-server runs");
/// assert!(server.url().starts_with("redis://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits (at most 5 s) until it accepts connections.
    ///
    /// # Errors
    /// When `redis-server` is not installed, or does not come up.
    pub fn start() -> std::io::Result<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = RedisServer { port, child: None };
        server.restart()?;
        Ok(server)
    }

    /// [`RedisServer::start`], or `None` with a note on stderr when `redis-server` is not
    /// installed, so that a developer without it can still run the other tests. Under `CI=true`
    /// a missing server is a failure, never a skip.
    ///
    /// # Panics
    /// Under `CI=true`, when the server cannot start.
    pub fn start_or_skip() -> Option<RedisServer> {
        match RedisServer::start() {
            Ok(server) => Some(server),
            Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("redis-server is needed under CI=true: {err}")
            }
            Err(err) => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("skipped: no redis-server ({err}); `cargo xtask test` installs it");
                }
                None
            }
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (its data is gone: there is no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`RedisServer::stop`]).
    ///
    /// # Errors
    /// When it does not come up within 5 s.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("redis-server did not accept connections within 5 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
