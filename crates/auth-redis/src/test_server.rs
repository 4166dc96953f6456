//! A throwaway `redis-server` for tests (feature `test-server`): on a free loopback port, without
//! persistence, stopped when dropped. It needs the `redis-server` binary (Debian's
//! `redis-server` package) on the `PATH`; [`RedisCluster`] needs its `redis-cli` too.

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
        self.child = Some(spawn(self.port, &[])?);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `redis-server` on `port` without persistence (plus `extra` arguments), and waits (at
/// most 5 s) until it accepts connections.
fn spawn(port: u16, extra: &[&str]) -> std::io::Result<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("redis-server did not accept connections within 5 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(child)
}

/// A Redis Cluster of the test's own: three primaries (no replicas) on free loopback ports,
/// their slots assigned by `redis-cli --cluster create`, stopped (and their files removed) when
/// dropped.
///
/// ```no_run
/// let cluster = auth_redis::test_server::RedisCluster::start().expect("a cluster runs");
/// assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    ports: Vec<u16>,
    bus_ports: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts three nodes, joins them, and waits (at most 10 s) until every node reports the
    /// cluster up.
    ///
    /// # Errors
    /// When `redis-server` or `redis-cli` is not installed, or the cluster does not come up.
    pub fn start() -> std::io::Result<RedisCluster> {
        // Three client ports and three cluster-bus ports (the default bus port, the client's plus
        // 10,000, may not exist for a high free port).
        let listeners = (0..6).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<Vec<_>>>()?;
        let mut ports =
            listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<Vec<_>>>()?;
        drop(listeners);
        let bus_ports = ports.split_off(3);
        let dir = std::env::temp_dir().join(format!("auth-redis-cluster-{}-{}", std::process::id(), ports[0]));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = RedisCluster { ports: Vec::new(), bus_ports: Vec::new(), children: Vec::new(), dir };
        for (port, bus) in ports.iter().zip(&bus_ports) {
            cluster.ports.push(*port);
            cluster.bus_ports.push(*bus);
            let child = cluster.spawn_node(cluster.ports.len() - 1)?;
            cluster.children.push(child);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create.args(["--cluster-replicas", "0", "--cluster-yes"]).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ports.iter().all(|port| cluster_ok(*port)) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the Redis Cluster did not come up within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// [`RedisCluster::start`], or `None` with a note on stderr when Redis is not installed;
    /// under `CI=true` a failure, never a skip (as [`RedisServer::start_or_skip`]).
    ///
    /// # Panics
    /// Under `CI=true`, when the cluster cannot start.
    pub fn start_or_skip() -> Option<RedisCluster> {
        match RedisCluster::start() {
            Ok(cluster) => Some(cluster),
            Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("a Redis Cluster is needed under CI=true: {err}")
            }
            Err(err) => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("skipped: no Redis Cluster ({err}); `cargo xtask test` installs redis-server");
                }
                None
            }
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Starts node `index` with its cluster configuration file (so it rejoins with its slots).
    fn spawn_node(&self, index: usize) -> std::io::Result<Child> {
        let (port, bus) = (self.ports[index], self.bus_ports[index]);
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let (conf, dir, bus) = (conf.to_string_lossy(), self.dir.to_string_lossy(), bus.to_string());
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf,
            "--cluster-port",
            &bus,
            "--dir",
            &dir,
            "--cluster-node-timeout",
            "2000",
        ];
        spawn(port, &extra)
    }

    /// Starts node `index` again after [`RedisCluster::stop_node`] (see
    /// [`RedisCluster::wait_until_up`]).
    ///
    /// # Errors
    /// When it does not accept connections within 5 s.
    pub fn restart_node(&mut self, index: usize) -> std::io::Result<()> {
        self.stop_node(index);
        let child = self.spawn_node(index)?;
        self.children[index] = child;
        Ok(())
    }

    /// Waits (at most 10 s) until every node reports the cluster up.
    ///
    /// # Errors
    /// When it does not come up.
    pub fn wait_until_up(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ports.iter().all(|port| cluster_ok(*port)) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the Redis Cluster did not come back within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The client port of each node, in order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Stops node `index` (0, 1 or 2), as a crash would.
    pub fn stop_node(&mut self, index: usize) {
        if let Some(child) = self.children.get_mut(index) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:PORT/0` of each node, to inspect one directly.
    pub fn node_urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}/0")).collect()
    }
}

/// Whether the node on `port` reports `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "cluster", "info"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
