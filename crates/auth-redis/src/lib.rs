//! The Redis (or Valkey) [`SessionStore`] for auth-core: sessions, single-use values and ended
//! sessions shared by every instance of an app, and surviving restarts.
//!
//! ```no_run
//! # async fn run() -> Result<(), auth_core::Error> {
//! use auth_core::{Auth, Provider};
//! use auth_redis::RedisStore;
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
//! let auth = Auth::builder()
//!     .provider(Provider::from_env("oidc")?)
//!     .store(store)
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # What lives where
//! - **Sessions** under `{prefix}{<session id>}:session`, as JSON, with a TTL equal to their
//!   remaining lifetime; the cookie carries only the random session id, sealed by auth-core.
//! - **Single-use values** (a login's `state`, a logout token's `jti`) under
//!   `{prefix}{<key>}:once`, written with `SET NX PX`: a value used on one instance is refused on
//!   every other, atomically.
//! - **Ended sessions** (logouts, back-channel logouts) under `{prefix}{<key>}:ended`: the time
//!   of the latest end, kept as long as a session it ends may live. A logout received by one
//!   instance ends the session on all of them, and survives restarts of all of them.
//!
//! Every key has a TTL; nothing grows without bound. Run Redis with `maxmemory-policy noeviction`
//! (its default): an evicted ended-session record would bring a logged-out session back.
//!
//! # Redis Cluster
//! A URL `redis+cluster://host1:port1,host2:port2` (a password as `redis+cluster://:pw@host1:…`)
//! connects to a cluster through the `redis` crate's cluster client, which follows the slot map
//! and its changes. Each key is hash-tagged by what it names (the braces above), so the records
//! of one session live in one slot while sessions spread over the shards; the one command that
//! reads several names at once (the ended-session records that could end a session: `MGET`) is
//! split per shard by the client. The subscription is held on one node (a cluster relays every
//! `PUBLISH` to all of them) and moves to the next node when heartbeats stop coming back through
//! it.
//!
//! # Zero round trips on the hot path
//! A request whose session this instance has seen is answered from an in-process cache: the
//! session by id, and what is known of the records that could end it. Every end of a session
//! and every delete is published on the channel `{prefix}events`, to which every instance
//! subscribes and applies to its cache. The cache is trusted only while events are known to
//! travel: every second each instance publishes a heartbeat and must hear it back on its
//! subscription within two seconds. Otherwise (its subscription dropped, or the node that relays
//! the channel is down while the rest answers) the cache is dropped and rebuilt from Redis, so a
//! missed message cannot keep a dead session alive for longer than that.
//!
//! # Redis down
//! Every command has a time limit ([`RedisStoreBuilder::command_timeout`], default 500 ms); a
//! request that needs Redis then gets 503 (auth-core's `StoreUnavailable`), requests answered
//! from the cache keep working, and the store reconnects by itself when Redis is back.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `test-server` | off | `test_server`: a throwaway `redis-server` (and a three-node Redis Cluster) on free loopback ports, for your tests; it needs `redis-server` and `redis-cli` on the `PATH` |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "test-server")]
pub mod test_server;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auth_core::{Error, Session, SessionStore};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

/// How many sessions the in-process cache holds by default.
const DEFAULT_CACHE_SESSIONS: usize = 10_000;
/// How many ended-record answers the in-process cache holds by default.
const DEFAULT_CACHE_RECORDS: usize = 100_000;
/// How often each instance publishes a heartbeat on the channel (it must hear it back within two
/// of these for its cache to stay trusted).
const PING_EVERY: Duration = Duration::from_secs(1);
/// The longest a cached answer is used without asking Redis again: bounds what an event lost
/// on its way (an instance that wrote to Redis but failed to publish) can leave stale.
const CACHE_MAX_AGE: Duration = Duration::from_secs(30);

/// Builds a [`RedisStore`].
///
/// ```no_run
/// # async fn run() -> Result<(), auth_core::Error> {
/// use std::time::Duration;
/// let store = auth_redis::RedisStore::builder("redis://127.0.0.1:6379/0")
///     .prefix("myapp:auth:")
///     .command_timeout(Duration::from_millis(300))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    cache_sessions: usize,
    cache_records: usize,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisStoreBuilder")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key and of the channel (default `auth:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most one command may take, waiting for a reconnect included (default 500 ms); past it
    /// the request that needed it gets 503.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How many sessions the in-process cache keeps (default 10,000; 0 turns the cache off:
    /// every request then asks Redis). A session of more than about 8 KiB of JSON counts as
    /// several; when full, the least used are evicted gradually (the ones asked for again and
    /// again stay), and read from Redis when next asked for.
    pub fn cache_sessions(mut self, entries: usize) -> Self {
        self.cache_sessions = entries;
        if entries == 0 {
            self.cache_records = 0;
        }
        self
    }

    /// Connects (and starts the subscription that keeps the cache true).
    ///
    /// Redis being down at start is not an error: the store connects when it is back, and
    /// until then the requests that need it answer 503.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not a Redis URL.
    pub async fn connect(self) -> Result<RedisStore, Error> {
        if self.url.starts_with("rediss://") || self.url.starts_with("rediss+cluster://") {
            return Err(Error::Config(
                "TLS to Redis (rediss://) is not supported yet: use redis:// on a private network".into(),
            ));
        }
        let invalid = |e: redis::RedisError| Error::Config(format!("the Redis URL is not valid: {e}"));
        let (conn, subscribers) = if let Some(nodes) = cluster_nodes(&self.url)? {
            let client = ClusterClient::builder(nodes.clone())
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.command_timeout)
                .retries(2)
                .max_retry_wait(1000)
                .build()
                .map_err(invalid)?;
            let cluster = Arc::new(LazyCluster { conn: std::sync::OnceLock::new() });
            let attempt = self.connect_timeout.saturating_mul(3);
            match tokio::time::timeout(attempt, client.get_async_connection()).await {
                Ok(Ok(conn)) => drop(cluster.conn.set(conn)),
                failed => {
                    let why = match failed {
                        Ok(Err(err)) => err.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(error = %why, "auth-redis: the Redis Cluster is not reachable at start; requests that need it answer 503 until it is");
                    tokio::spawn(connect_cluster(Arc::downgrade(&cluster), client, attempt));
                }
            }
            let subscribers = nodes
                .iter()
                .map(|node| redis::Client::open(node.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(invalid)?;
            (Conn::Cluster(cluster), subscribers)
        } else {
            let client = redis::Client::open(self.url.as_str()).map_err(invalid)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.command_timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            let eager = tokio::time::timeout(
                self.connect_timeout.saturating_mul(3),
                client.get_connection_manager_with_config(config.clone()),
            )
            .await;
            let conn = match eager {
                Ok(Ok(conn)) => conn,
                // Redis down at start must not stop the app: connect on first use, and until then
                // the requests that need Redis answer 503.
                failed => {
                    let why = match failed {
                        Ok(Err(err)) => err.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(error = %why, "auth-redis: Redis is not reachable at start; requests that need it answer 503 until it is");
                    client.get_connection_manager_lazy(config).map_err(store_error)?
                }
            };
            (Conn::Single(conn), vec![client])
        };
        let inner = Arc::new(Inner {
            conn,
            channel: format!("{}events", self.prefix),
            prefix: self.prefix,
            command_timeout: self.command_timeout,
            cache: Cache::new(self.cache_sessions, self.cache_records),
            subscribed: AtomicBool::new(false),
        });
        tokio::spawn(subscribe(Arc::downgrade(&inner), subscribers, self.connect_timeout));
        Ok(RedisStore { inner })
    }
}

/// The node URLs of a `redis+cluster://` URL (`None` for any other URL): its hosts, each with
/// the URL's credentials.
fn cluster_nodes(url: &str) -> Result<Option<Vec<String>>, Error> {
    let Some(rest) = url.strip_prefix("redis+cluster://") else { return Ok(None) };
    let invalid = |why: &str| Error::Config(format!("the Redis Cluster URL is not valid: {why}"));
    if rest.contains(['?', '#']) {
        return Err(invalid("options (?…) are not supported in a cluster URL"));
    }
    let (rest, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(db, "" | "0") {
        return Err(invalid("a cluster has only database 0"));
    }
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{credentials}{h}"))
        .collect();
    if nodes.is_empty() {
        return Err(invalid("it names no node (redis+cluster://host1:port1,host2:port2)"));
    }
    Ok(Some(nodes))
}

/// One connection to Redis: a single server (its connection manager reconnects by itself) or a
/// cluster (the cluster client follows the slot map and reconnects to its nodes).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

/// The cluster connection, once made: a cluster down at start does not stop the app. Until a
/// background task ([`connect_cluster`]) has connected, every command fails at once (503):
/// requests never wait on the handshake, nor race to make it within their own time limit.
struct LazyCluster {
    conn: std::sync::OnceLock<ClusterConnection>,
}

impl LazyCluster {
    fn get(&self) -> redis::RedisResult<ClusterConnection> {
        self.conn.get().cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "the Redis Cluster is not connected yet").into()
        })
    }
}

/// Connects to the cluster in the background, with backoff, until it answers (or the store is
/// gone).
async fn connect_cluster(cluster: Weak<LazyCluster>, client: ClusterClient, attempt: Duration) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::time::sleep(backoff).await;
        if cluster.strong_count() == 0 {
            return;
        }
        match tokio::time::timeout(attempt, client.get_async_connection()).await {
            Ok(Ok(conn)) => {
                if let Some(cluster) = cluster.upgrade() {
                    drop(cluster.conn.set(conn));
                    tracing::info!("auth-redis: connected to the Redis Cluster");
                }
                return;
            }
            Ok(Err(err)) => tracing::debug!(error = %err, "auth-redis: the Redis Cluster is still unreachable"),
            Err(_) => tracing::debug!("auth-redis: connecting to the Redis Cluster timed out"),
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(cluster) => Box::pin(async move { cluster.get()?.req_packed_command(cmd).await }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(cluster) => {
                Box::pin(async move { cluster.get()?.req_packed_commands(pipeline, offset, count).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// Sessions, single-use values and ended sessions in Redis (see the [crate] docs).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("subscribed", &self.inner.subscribed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Inner {
    conn: Conn,
    prefix: String,
    channel: String,
    command_timeout: Duration,
    cache: Cache,
    /// The subscription is alive: the cache may be trusted.
    subscribed: AtomicBool,
}

/// What this instance knows, valid while the subscription lives.
///
/// Two bounded caches with gradual eviction (quick_cache's S3-FIFO): the sessions and records
/// that keep being asked for stay, a stream of one-time ones passes through the small queue
/// first, so more active sessions than fit cost a miss each, never a cleared cache. Readers
/// take no lock of this struct (only quick_cache's shard locks); every change (an event, a
/// local write, a clear) and every fill takes `lock`, so a fill's check of the epoch and its
/// insert are one step with respect to changes.
struct Cache {
    /// Bumped by every event applied and every (re)subscription or disconnect: a fill that
    /// read Redis before a change does not write its stale answer after it. Changed only
    /// under `lock`; read without it before a fill's Redis read.
    epoch: AtomicU64,
    /// Held while a change or a fill is written; holds when entries past [`CACHE_MAX_AGE`]
    /// (never used again) are next dropped.
    lock: Mutex<Instant>,
    /// Sessions by id, and when they were read (`None`: the cache is off).
    sessions: Option<SessionCache>,
    /// Ended-session records: `Some(at)` ended at `at`, `None` known not to exist; and when
    /// this was learnt (`None`: the cache is off).
    records: Option<RecordCache>,
}

/// std's SipHash, pinned: another crate of the app enabling quick_cache's default (foldhash)
/// must not change it, as anyone can choose the keys looked up (session ids come from cookies).
type RandomState = std::hash::RandomState;

type SessionCache = quick_cache::sync::Cache<String, SessionEntry, SessionWeight, RandomState>;

type RecordCache = quick_cache::sync::Cache<String, (Option<u64>, Instant), quick_cache::UnitWeighter, RandomState>;

/// The rough bytes one unit of a session's weight stands for: a session up to this size
/// (about 8 KiB of JSON) counts as one entry, a larger one as several. The cache so holds at
/// most `cache_sessions` sessions and about `cache_sessions` × 16 KiB of them.
const SESSION_SLOT_BYTES: usize = 16 * 1024;

#[derive(Clone)]
struct SessionEntry {
    session: Arc<Session>,
    at: Instant,
    /// In [`SESSION_SLOT_BYTES`], at least 1 (computed once: the eviction reads it often).
    weight: u64,
}

#[derive(Clone, Copy)]
struct SessionWeight;

impl quick_cache::Weighter<String, SessionEntry> for SessionWeight {
    fn weight(&self, _id: &String, entry: &SessionEntry) -> u64 {
        entry.weight
    }
}

/// A quick_cache of at most `entries` in weight (quick_cache rounds each shard's share up: it
/// is rounded down here, so the documented bound holds exactly).
fn bounded<K, V, W>(entries: usize, weighter: W) -> quick_cache::sync::Cache<K, V, W, RandomState>
where
    K: Eq + std::hash::Hash,
    V: Clone,
    W: quick_cache::Weighter<K, V> + Clone,
{
    let capacity = u64::try_from(entries).unwrap_or(u64::MAX);
    let cache = quick_cache::sync::Cache::with(
        entries,
        capacity,
        weighter,
        RandomState::new(),
        quick_cache::sync::DefaultLifecycle::default(),
    );
    if cache.capacity() > capacity {
        let shards = u64::try_from(cache.num_shards()).unwrap_or(1).max(1);
        cache.set_capacity(capacity / shards * shards);
    }
    cache
}

impl Cache {
    fn new(max_sessions: usize, max_records: usize) -> Self {
        Cache {
            epoch: AtomicU64::new(0),
            lock: Mutex::new(Instant::now() + CACHE_MAX_AGE),
            sessions: (max_sessions > 0).then(|| bounded(max_sessions, SessionWeight)),
            records: (max_records > 0).then(|| bounded(max_records, quick_cache::UnitWeighter)),
        }
    }

    /// Takes the write lock and bumps the epoch: a change follows.
    fn change(&self) -> std::sync::MutexGuard<'_, Instant> {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        guard
    }

    /// The epoch to give a fill, read before it asks Redis.
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Something changed that this cache does not hold (or cannot tell): fills in flight are
    /// dropped.
    fn changed(&self) {
        drop(self.change());
    }

    fn clear(&self) {
        let _guard = self.change();
        if let Some(sessions) = &self.sessions {
            sessions.clear();
        }
        if let Some(records) = &self.records {
            records.clear();
        }
    }

    /// Session `id` changed or is gone: forgets it, and drops the fills in flight.
    fn forget_session(&self, id: &str) {
        let _guard = self.change();
        if let Some(sessions) = &self.sessions {
            sessions.remove(id);
        }
    }

    /// Record `key` ended at `at` (or later, if that is known).
    fn ended(&self, key: &str, at: u64) {
        {
            let _guard = self.change();
            if let Some(records) = &self.records {
                let known = self.known_end(key);
                records.insert(key.to_owned(), (Some(known.max(at)), Instant::now()));
            }
        }
        self.prune_if_due(Instant::now());
    }

    /// Drops the entries too old to be used, at most once per [`CACHE_MAX_AGE`]: the caches
    /// then hold what the last minute or so asked for, not every session seen until eviction
    /// reaches it. Amortized over that period, the scan is cheap; it runs outside the write
    /// lock (removing is never stale).
    fn prune_if_due(&self, now: Instant) {
        {
            let mut next = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if now < *next {
                return;
            }
            *next = now + CACHE_MAX_AGE;
        }
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < CACHE_MAX_AGE;
        if let Some(sessions) = &self.sessions {
            sessions.retain(|_, entry| fresh(&entry.at));
        }
        if let Some(records) = &self.records {
            records.retain(|_, (_, at)| fresh(at));
        }
    }

    /// Caches `session` (whose JSON was `json_len` bytes) read from Redis, unless something
    /// changed since `epoch`; whether it did.
    fn fill_session(&self, epoch: u64, session: Arc<Session>, json_len: usize) -> bool {
        let Some(sessions) = &self.sessions else { return false };
        let rough = json_len.saturating_mul(2).saturating_add(256);
        let weight = u64::try_from(rough.div_ceil(SESSION_SLOT_BYTES).max(1)).unwrap_or(u64::MAX);
        {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.epoch() != epoch {
                return false;
            }
            sessions.insert(session.id().to_owned(), SessionEntry { session, at: Instant::now(), weight });
        }
        self.prune_if_due(Instant::now());
        true
    }

    /// Caches records read from Redis, unless something changed since `epoch`; whether it did.
    fn fill_records(&self, epoch: u64, read: impl IntoIterator<Item = (String, Option<u64>)>) -> bool {
        let Some(records) = &self.records else { return false };
        {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            if self.epoch() != epoch {
                return false;
            }
            let now = Instant::now();
            for (key, at) in read {
                records.insert(key, (at, now));
            }
        }
        self.prune_if_due(Instant::now());
        true
    }

    fn session(&self, id: &str) -> Option<Arc<Session>> {
        let entry = self.sessions.as_ref()?.get(id)?;
        (entry.at.elapsed() < CACHE_MAX_AGE).then_some(entry.session)
    }

    fn record(&self, key: &str) -> Option<Option<u64>> {
        let (record, at) = self.records.as_ref()?.get(key)?;
        (at.elapsed() < CACHE_MAX_AGE).then_some(record)
    }

    /// The latest end time known for `key` (0 when none), whatever its age.
    fn known_end(&self, key: &str) -> u64 {
        self.records.as_ref().and_then(|r| r.peek(key)).and_then(|(r, _)| r).unwrap_or(0)
    }
}

impl RedisStore {
    /// Connects with the defaults.
    ///
    /// # Errors
    /// As [`RedisStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<RedisStore, Error> {
        RedisStore::builder(url).connect().await
    }

    /// A builder, to change the prefix, the timeouts or the cache.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "auth:".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(500),
            cache_sessions: DEFAULT_CACHE_SESSIONS,
            cache_records: DEFAULT_CACHE_RECORDS,
        }
    }

    /// Whether the subscription that keeps the cache true is alive (for health checks).
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::SeqCst)
    }

    fn key(&self, name: &str, kind: &str) -> String {
        format!("{}{{{name}}}:{kind}", self.inner.prefix)
    }

    fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Runs a command with the time limit.
    async fn run<T>(
        &self,
        what: &'static str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.inner.command_timeout, command).await {
            Ok(result) => result.map_err(store_error),
            Err(_) => Err(store_error(TimedOut(what))),
        }
    }

    /// Announces an event to every instance (this one included, through its subscription). The
    /// change is in Redis already, so a failed announcement is retried once and then logged, not
    /// returned: other instances then learn it when their cached answer ages out
    /// (`CACHE_MAX_AGE`) or their subscription drops.
    async fn publish(&self, event: String) {
        for attempt in 0..2 {
            let mut conn = self.inner.conn.clone();
            match self.run("PUBLISH", conn.publish::<_, _, usize>(&self.inner.channel, &event)).await {
                Ok(_) => return,
                Err(err) if attempt == 1 => {
                    tracing::warn!(error = %err, "auth-redis: could not announce a change; other instances learn it within 30 s");
                }
                Err(_) => {}
            }
        }
    }

    /// Whether the cache may answer: the subscription is alive.
    fn trusted(&self) -> bool {
        self.inner.subscribed.load(Ordering::SeqCst)
    }
}

/// Milliseconds from now until `until` (Unix seconds), at least one second.
fn ttl_ms(until: u64) -> u64 {
    until.saturating_sub(auth_core_now()).max(1).saturating_mul(1000)
}

fn auth_core_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Keeps the later end time and the longer TTL of an ended-session record, atomically.
const END_SCRIPT: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local at = tonumber(ARGV[1])
if at > current then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// Deletes a lock only for the owner that holds it.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

#[async_trait]
impl SessionStore for RedisStore {
    async fn save(&self, session: &Session) -> Result<Vec<u8>, Error> {
        let json = serde_json::to_vec(session).map_err(|_| Error::Internal("session serialization"))?;
        let key = self.key(session.id(), "session");
        let mut conn = self.inner.conn.clone();
        let ttl = ttl_ms(session.expires_at());
        self.run("SET", conn.pset_ex::<_, _, ()>(&key, json, ttl)).await?;
        // This instance's copy is older (a refresh updates a session in place), and so may be
        // a fill that read Redis before this write.
        self.cache().forget_session(session.id());
        // Other instances may hold an older copy too.
        self.publish(format!("d\t{}", session.id())).await;
        Ok(session.id().as_bytes().to_vec())
    }

    async fn load(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        Ok(self.load_shared(payload).await?.map(Arc::unwrap_or_clone))
    }

    async fn load_shared(&self, payload: &[u8]) -> Result<Option<Arc<Session>>, Error> {
        let Ok(id) = std::str::from_utf8(payload) else { return Ok(None) };
        if self.trusted()
            && let Some(session) = self.cache().session(id)
        {
            return Ok(Some(session));
        }
        let epoch = self.cache().epoch();
        let mut conn = self.inner.conn.clone();
        let json: Option<Vec<u8>> = self.run("GET", conn.get(self.key(id, "session"))).await?;
        let json_len = json.as_ref().map_or(0, Vec::len);
        let session = json
            .and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok())
            .filter(|s| s.id() == id)
            .map(Arc::new);
        if let Some(session) = &session
            && self.trusted()
        {
            // Only if nothing changed since the read, checked under the same lock as the events.
            self.cache().fill_session(epoch, Arc::clone(session), json_len);
        }
        Ok(session)
    }

    async fn delete(&self, session: &Session) -> Result<(), Error> {
        let mut conn = self.inner.conn.clone();
        self.run("DEL", conn.del::<_, usize>(self.key(session.id(), "session"))).await?;
        // Also drops a fill that read Redis before the delete.
        self.cache().forget_session(session.id());
        self.publish(format!("d\t{}", session.id())).await;
        Ok(())
    }

    async fn use_once(&self, key: &str, until: u64) -> Result<bool, Error> {
        let mut conn = self.inner.conn.clone();
        let cmd = redis::cmd("SET").arg(self.key(key, "once")).arg(1).arg("NX").arg("PX").arg(ttl_ms(until)).to_owned();
        self.run("SET NX", async move { cmd.query_async::<Option<String>>(&mut conn).await }).await.map(|r| r.is_some())
    }

    async fn end_sessions(&self, key: &str, at: u64, until: u64) -> Result<(), Error> {
        let mut conn = self.inner.conn.clone();
        // EVAL, not EVALSHA: a script cache reloaded with SCRIPT LOAD must reach every node of a
        // cluster, so one node down would fail every logout; the scripts are a few lines.
        let cmd =
            redis::cmd("EVAL").arg(END_SCRIPT).arg(1).arg(self.key(key, "ended")).arg(at).arg(ttl_ms(until)).to_owned();
        self.run("EVAL", async move { cmd.query_async::<i64>(&mut conn).await }).await?;
        // Also drops a fill that read Redis before the write.
        self.cache().ended(key, at);
        self.publish(format!("e\t{at}\t{key}")).await;
        Ok(())
    }

    async fn lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, Error> {
        let mut conn = self.inner.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let cmd = redis::cmd("SET").arg(self.key(key, "lock")).arg(owner).arg("NX").arg("PX").arg(ttl_ms).to_owned();
        self.run("SET NX", async move { cmd.query_async::<Option<String>>(&mut conn).await }).await.map(|r| r.is_some())
    }

    async fn unlock(&self, key: &str, owner: &str) -> Result<(), Error> {
        let mut conn = self.inner.conn.clone();
        let cmd = redis::cmd("EVAL").arg(UNLOCK_SCRIPT).arg(1).arg(self.key(key, "lock")).arg(owner).to_owned();
        self.run("EVAL", async move { cmd.query_async::<i64>(&mut conn).await }).await.map(drop)
    }

    async fn load_current(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        let Ok(id) = std::str::from_utf8(payload) else { return Ok(None) };
        let mut conn = self.inner.conn.clone();
        let json: Option<Vec<u8>> = self.run("GET", conn.get(self.key(id, "session"))).await?;
        Ok(json.and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok()).filter(|s| s.id() == id))
    }

    async fn ended_since(&self, keys: &[String], created_at: u64) -> Result<bool, Error> {
        let ended = |at: &Option<u64>| at.is_some_and(|at| at >= created_at);
        if self.trusted() {
            let cache = self.cache();
            let known: Option<Vec<Option<u64>>> = keys.iter().map(|k| cache.record(k)).collect();
            if let Some(known) = known {
                return Ok(known.iter().any(ended));
            }
        }
        let epoch = self.cache().epoch();
        let redis_keys: Vec<String> = keys.iter().map(|k| self.key(k, "ended")).collect();
        let mut conn = self.inner.conn.clone();
        let values: Vec<Option<u64>> = if redis_keys.is_empty() {
            Vec::new()
        } else {
            self.run("MGET", async move { redis::cmd("MGET").arg(&redis_keys).query_async(&mut conn).await }).await?
        };
        if self.trusted() {
            self.cache().fill_records(epoch, keys.iter().cloned().zip(values.iter().copied()));
        }
        Ok(values.iter().any(ended))
    }
}

/// Applies one event of the channel to the cache.
fn apply(inner: &Inner, payload: &str) {
    let cache = &inner.cache;
    let mut parts = payload.splitn(3, '\t');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("d"), Some(id), None) => cache.forget_session(id),
        (Some("e"), Some(at), Some(key)) => match at.parse::<u64>() {
            Ok(at) => cache.ended(key, at),
            Err(_) => cache.changed(),
        },
        // Unknown events (a newer version's): nothing cached can be trusted to be current.
        _ => cache.clear(),
    }
}

/// Keeps the subscription alive for as long as the store lives: (re)subscribes with backoff,
/// pings it every second, and drops the cache whenever it is not known to be alive.
///
/// A cluster gives one client per node: each attempt after a failure tries the next node.
async fn subscribe(inner: Weak<Inner>, clients: Vec<redis::Client>, connect_timeout: Duration) {
    let mut backoff = Duration::from_millis(100);
    let me = instance_id();
    for client in clients.iter().cycle() {
        let Some(channel) = inner.upgrade().map(|i| i.channel.clone()) else { return };
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(connect_timeout, connected).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(100);
                // The sink is kept (unused): the subscription lives as long as both halves.
                let (_sink, mut stream) = pubsub.split();
                {
                    let Some(inner) = inner.upgrade() else { return };
                    // Whatever happened while unsubscribed is unknown: start from Redis again. The
                    // cache is trusted once this instance hears its own first heartbeat.
                    inner.cache.clear();
                }
                let mut seq = 0u64;
                // The heartbeat awaited, and for how many ticks it has been.
                let mut awaiting: Option<(u64, u32)> = None;
                let mut tick = tokio::time::interval(PING_EVERY);
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => {
                                let Some(inner) = inner.upgrade() else { return };
                                let Ok(payload) = message.get_payload::<String>() else { continue };
                                match heartbeat_of(&payload) {
                                    Some((from, n)) if from == me && awaiting.is_some_and(|(a, _)| a == n) => {
                                        awaiting = None;
                                        if !inner.subscribed.swap(true, Ordering::SeqCst) {
                                            tracing::debug!(channel, "auth-redis: subscribed; the session cache is live");
                                        }
                                    }
                                    Some(_) => {}
                                    None => apply(&inner, &payload),
                                }
                            }
                            None => break,
                        },
                        _ = tick.tick() => {
                            let Some(inner) = inner.upgrade() else { return };
                            match awaiting {
                                // Not back after two ticks: the way events travel is broken
                                // somewhere (this subscription, or the node that relays them).
                                Some((_, ticks)) if ticks >= 1 => break,
                                Some((n, ticks)) => awaiting = Some((n, ticks + 1)),
                                None => {
                                    seq += 1;
                                    let mut conn = inner.conn.clone();
                                    let beat = format!("h\t{me}\t{seq}");
                                    let sent = tokio::time::timeout(
                                        inner.command_timeout,
                                        conn.publish::<_, _, usize>(&inner.channel, beat),
                                    )
                                    .await;
                                    if !matches!(sent, Ok(Ok(_))) {
                                        break;
                                    }
                                    awaiting = Some((seq, 0));
                                }
                            }
                        }
                    }
                }
                if let Some(inner) = inner.upgrade() {
                    inner.subscribed.store(false, Ordering::SeqCst);
                    inner.cache.clear();
                    tracing::warn!(
                        "auth-redis: the subscription dropped; sessions are read from Redis until it is back"
                    );
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "auth-redis: cannot subscribe; retrying"),
            Err(_) => tracing::warn!("auth-redis: subscribing timed out; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A random id for this store's heartbeats.
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}

/// A heartbeat event (`h\t<instance>\t<n>`): whose, and which.
fn heartbeat_of(payload: &str) -> Option<(u64, u64)> {
    let mut parts = payload.strip_prefix("h\t")?.splitn(2, '\t');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A command that ran out of time.
#[derive(Debug)]
struct TimedOut(&'static str);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis did not answer {} in time", self.0)
    }
}

impl std::error::Error for TimedOut {}

fn store_error(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(Box::new(err))
}

/// The store `AUTH_STORE` names, for apps following the examples' conventions:
/// `redis://…` or `redis+cluster://…` (a [`RedisStore`]), `memory` (auth-core's `MemoryStore`), or
/// unset (the cookie store: the builder is returned as it is).
///
/// ```no_run
/// # async fn run() -> Result<(), auth_core::Error> {
/// let builder = auth_redis::store_from_env(auth_core::Auth::builder().from_env()?).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Env`] for any other value; as [`RedisStoreBuilder::connect`] for a Redis URL.
pub async fn store_from_env(builder: auth_core::AuthBuilder) -> Result<auth_core::AuthBuilder, Error> {
    store_from_env_with(builder, |k| std::env::var(k).ok()).await
}

/// [`store_from_env`] with any lookup function.
///
/// # Errors
/// As [`store_from_env`].
pub async fn store_from_env_with(
    builder: auth_core::AuthBuilder,
    env: impl Fn(&str) -> Option<String>,
) -> Result<auth_core::AuthBuilder, Error> {
    let Some(value) = env("AUTH_STORE").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(builder);
    };
    if value == "memory" {
        return Ok(builder.store(auth_core::MemoryStore::new()));
    }
    if value.starts_with("redis://") || value.starts_with("redis+cluster://") {
        let prefix = env("AUTH_STORE_PREFIX").filter(|p| !p.is_empty()).unwrap_or_else(|| "auth:".into());
        let store = RedisStore::builder(&value).prefix(prefix).connect().await?;
        tracing::info!("sessions in Redis (AUTH_STORE)");
        return Ok(builder.store(store));
    }
    Err(Error::Env {
        name: "AUTH_STORE".into(),
        problem: "must be redis://host:port/db, redis+cluster://host1:port1,host2:port2 or memory".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_names_its_nodes_each_with_the_credentials() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379/0").unwrap(), None);
        assert_eq!(
            cluster_nodes("redis+cluster://10.0.0.1:7000,10.0.0.2:7001/").unwrap().unwrap(),
            ["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]
        );
        assert_eq!(
            cluster_nodes("redis+cluster://app:p@ss@a:1,b:2/0").unwrap().unwrap(),
            ["redis://app:p@ss@a:1", "redis://app:p@ss@b:2"]
        );
        for bad in ["redis+cluster://", "redis+cluster://a:1/3", "redis+cluster://,,"] {
            let err = cluster_nodes(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn entries_too_old_to_be_used_are_dropped_not_kept_until_the_cache_is_full() {
        let cache = Cache::new(10, 1000);
        let records = cache.records.as_ref().unwrap();
        let now = Instant::now();
        let old = now.checked_sub(CACHE_MAX_AGE + Duration::from_secs(1)).unwrap();
        for i in 0..100 {
            records.insert(format!("old{i}"), (None, old));
        }
        records.insert("fresh".into(), (Some(7), now));
        let later = now + Duration::from_secs(10);
        *cache.lock.lock().unwrap() = later;
        cache.prune_if_due(now);
        assert_eq!(records.len(), 101, "not before its time");
        cache.prune_if_due(later);
        assert_eq!(records.len(), 1, "only what may still be used stays");
        assert_eq!(cache.record("fresh"), Some(Some(7)));
        records.insert("old".into(), (None, old));
        cache.prune_if_due(later + Duration::from_secs(1));
        assert_eq!(records.len(), 2, "at most once per CACHE_MAX_AGE");
    }

    fn session(id: &str) -> Arc<Session> {
        let json = serde_json::json!({
            "id": id, "provider": "p", "claims": {"sub": "u"}, "created_at": 1, "expires_at": u64::MAX / 2,
            "tokens": {"access_token": "a", "refresh_token": null, "id_token": null, "expires_at": null, "scope": null},
        });
        Arc::new(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn a_hot_session_survives_a_stream_of_new_ones_and_the_cache_stays_bounded() {
        let cache = Cache::new(100, 100);
        let hot = session("hot");
        assert!(cache.fill_session(cache.epoch(), Arc::clone(&hot), 100));
        for i in 0..2_000 {
            // Each new session is seen once; the hot one on every request.
            assert!(cache.fill_session(cache.epoch(), session(&format!("s{i}")), 100));
            assert!(cache.session("hot").is_some(), "evicted after {i} new sessions");
        }
        let sessions = cache.sessions.as_ref().unwrap();
        assert!(sessions.weight() <= 100, "holds {} in weight", sessions.weight());
        assert!(sessions.len() > 10, "eviction is gradual, not a clear: {} left", sessions.len());
    }

    #[test]
    fn a_large_session_weighs_more_than_one_entry() {
        let cache = Cache::new(1000, 10);
        // About 2 × 16 KiB in memory: 3 slots.
        assert!(cache.fill_session(cache.epoch(), session("big"), SESSION_SLOT_BYTES));
        let sessions = cache.sessions.as_ref().unwrap();
        assert_eq!(sessions.weight(), 3);
        assert!(cache.session("big").is_some());
    }

    #[test]
    fn a_fill_that_read_before_a_change_is_not_written_after_it() {
        let cache = Cache::new(10, 10);
        let epoch = cache.epoch();
        cache.forget_session("a");
        assert!(!cache.fill_session(epoch, session("a"), 10), "stale session fill");
        assert!(cache.session("a").is_none());
        let epoch = cache.epoch();
        cache.ended("k", 5);
        assert!(!cache.fill_records(epoch, [("k".to_owned(), None)]), "stale record fill");
        assert_eq!(cache.record("k"), Some(Some(5)));
        let epoch = cache.epoch();
        assert!(cache.fill_records(epoch, [("j".to_owned(), Some(3))]));
        assert_eq!(cache.record("j"), Some(Some(3)));
        cache.clear();
        assert_eq!(cache.record("j"), None);
    }

    #[test]
    fn a_cache_of_zero_is_off() {
        let cache = Cache::new(0, 0);
        assert!(!cache.fill_session(cache.epoch(), session("a"), 10));
        assert!(!cache.fill_records(cache.epoch(), [("k".to_owned(), None)]));
        assert!(cache.session("a").is_none());
        assert_eq!(cache.record("k"), None);
    }

    #[tokio::test]
    async fn a_cluster_url_with_a_password_is_redacted_and_tls_is_refused() {
        let builder = RedisStore::builder("redis+cluster://:secret@127.0.0.1:1");
        assert!(!format!("{builder:?}").contains("secret"));
        let err = RedisStore::connect("rediss+cluster://127.0.0.1:1").await.unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }
}
