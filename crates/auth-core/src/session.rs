//! The session: who is logged in, with which tokens, and where it is kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Error;
use crate::state::Registry;

/// A token or other secret string. `Debug` prints `[redacted]`; read it with [`Secret::secret`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The tokens of a session. Refreshed by auth-core when the access token is due (see
/// [`AuthBuilder::refresh_leeway`](crate::AuthBuilder::refresh_leeway)); read a fresh access token
/// with [`User::access_token`](crate::User::access_token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tokens {
    /// The access token, for calling the provider's (or your) APIs on the user's behalf.
    pub access_token: Secret,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<Secret>,
    /// The raw ID token (kept for `id_token_hint` at logout).
    pub id_token: Option<Secret>,
    /// When the access token expires (Unix seconds), if the provider said.
    pub expires_at: Option<u64>,
    /// When these tokens were received (Unix milliseconds): with `expires_at`, when the access
    /// token expires to the millisecond, and its lifetime, which caps the refresh leeway.
    #[serde(default)]
    pub(crate) received_ms: Option<u64>,
    /// The granted scope, if the provider said.
    pub scope: Option<String>,
    /// The session's DPoP key (PKCS#8, base64url) when its access token is DPoP-bound
    /// (RFC 9449): refreshes and calls with the token carry proofs by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dpop_key: Option<Secret>,
}

impl Tokens {
    /// Whether the access token is DPoP-bound (RFC 9449): sent as `Authorization: DPoP` with a
    /// proof by the session's key, never as a bearer token.
    pub fn is_dpop_bound(&self) -> bool {
        self.dpop_key.is_some()
    }

    /// The session's DPoP key, if it has one.
    pub(crate) fn dpop_key(&self) -> Option<crate::dpop::DpopKey> {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(self.dpop_key.as_ref()?.secret()).ok()?;
        crate::dpop::DpopKey::from_pkcs8(&der)
    }

    /// A DPoP key as a session keeps it.
    pub(crate) fn keep_dpop_key(key: &crate::dpop::DpopKey) -> Secret {
        use base64::Engine as _;
        Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.pkcs8()))
    }
}

/// The logged-in user's claims (`sub`, `email`, `name`, …) with typed accessors.
///
/// Claims read back from a session cookie are parsed when first asked for: opening the cookie
/// reads only `sub` (and the `iss` and `sid` a logout is matched by), so a route that only needs
/// to know who is logged in never pays for the rest (a map of every claim, a few dozen
/// allocations for a typical ID token). Any other accessor parses them all, once per session.
///
/// ```
/// use auth_core::Claims;
/// let claims = Claims::from_value(serde_json::json!({
///     "sub": "alice", "email": "alice@example.com", "email_verified": true, "groups": ["admin"]
/// })).unwrap();
/// assert_eq!(claims.sub(), "alice");
/// assert_eq!(claims.email(), Some("alice@example.com"));
/// assert!(claims.email_verified());
/// assert!(claims.contains("groups", "admin"));
/// ```
#[derive(Clone)]
pub struct Claims {
    /// `sub`, `iss` and `sid` as strings: asked on every request (the guards, the revocation keys).
    sub: Box<str>,
    iss: Option<Box<str>>,
    sid: Option<Box<str>>,
    /// The claims as JSON text (an object), when they were read from it: `map` is parsed from it
    /// on first use.
    text: Option<Box<RawValue>>,
    /// All claims. Always set when `text` is not.
    map: OnceLock<Map<String, Value>>,
    /// Where each top-level claim sits in `text`, built on the first single-claim question
    /// (`get_str`, `email`, `contains`, ...) so that it is answered without parsing every claim
    /// into a `Value` (a `String` and a `Value` for each, allocated and later freed: most of what a
    /// cache miss cost a handler reading one claim). `None` when a key has an escape: then `map`.
    index: OnceLock<Option<Box<[Slot]>>>,
}

/// One top-level claim in a [`Claims`]' text: byte offsets of its key (without the quotes) and of
/// its value (its JSON text).
#[derive(Clone, Copy)]
struct Slot {
    key: (u32, u32),
    value: (u32, u32),
}

/// The top-level claims of a JSON object, borrowed from its text: a key with an escape (which
/// cannot be borrowed) fails it.
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// What the index says of one claim.
enum Lookup<'a> {
    /// Not there.
    Absent,
    /// Its JSON text.
    Raw(&'a str),
    /// No index: ask the map.
    Map(&'a Map<String, Value>),
}

/// A JSON value's text as the string it is, borrowed when it has no escape; `None` for any other
/// value.
fn raw_str(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(std::borrow::Cow::Owned)
    } else {
        Some(std::borrow::Cow::Borrowed(inner))
    }
}

/// Whether the JSON text `raw` is the string `value`, or an array holding it (what
/// [`Claims::contains`] asks of a `Value`).
fn raw_holds(raw: &str, value: &str, split: bool) -> bool {
    if raw.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(raw).unwrap_or_default();
        return items.iter().any(|item| raw_str(item.get()).is_some_and(|s| s == value));
    }
    raw_str(raw).is_some_and(|s| if split { s.split(' ').any(|v| !v.is_empty() && v == value) } else { s == value })
}

/// The claims every request asks for, read from the JSON text without parsing the others (serde
/// skips them without allocating).
#[derive(Deserialize)]
struct CoreClaims<'a> {
    #[serde(borrow)]
    sub: &'a RawValue,
    #[serde(borrow, default)]
    iss: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sid: Option<&'a RawValue>,
}

/// A JSON value that is a string, as a string (what `Value::as_str` would give).
fn json_str(raw: &RawValue) -> Option<Box<str>> {
    raw_str(raw.get()).map(|s| Box::from(s.as_ref()))
}

impl Claims {
    /// Claims from a JSON object with a non-empty string `sub`.
    pub fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) if map.get("sub").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) => {
                Some(Claims::from_map(map))
            }
            _ => None,
        }
    }

    /// Claims from a map, whatever it holds (a missing or non-string `sub` reads as `""`).
    pub(crate) fn from_map(map: Map<String, Value>) -> Self {
        let field = |name: &str| map.get(name).and_then(Value::as_str).map(Box::from);
        Claims {
            sub: field("sub").unwrap_or_default(),
            iss: field("iss"),
            sid: field("sid"),
            text: None,
            map: OnceLock::from(map),
            index: OnceLock::new(),
        }
    }

    /// Claims from the JSON text of an object with a non-empty string `sub` (a session cookie's),
    /// parsed only as far as `sub`, `iss` and `sid`; `None` for any other text (or a repeated one
    /// of those three).
    pub(crate) fn from_json(text: Box<RawValue>) -> Option<Self> {
        if !text.get().starts_with('{') {
            return None;
        }
        let core: CoreClaims<'_> = serde_json::from_str(text.get()).ok()?;
        let sub = json_str(core.sub).filter(|s| !s.is_empty())?;
        let iss = core.iss.and_then(json_str);
        let sid = core.sid.and_then(json_str);
        Some(Claims { sub, iss, sid, text: Some(text), map: OnceLock::new(), index: OnceLock::new() })
    }

    /// All claims, parsed from the text on first use.
    fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            // The text is a JSON object (`from_json` checked it), so this parses; an empty map is
            // only a fallback that cannot be reached, rather than a panic.
            self.text.as_deref().and_then(|t| serde_json::from_str(t.get()).ok()).unwrap_or_default()
        })
    }

    /// Claim `name` as the index (or, without one, the map) has it.
    fn lookup(&self, name: &str) -> Lookup<'_> {
        // Parsed already (or built from a map): the map answers without an index.
        if let Some(map) = self.map.get() {
            return Lookup::Map(map);
        }
        let Some(text) = self.text.as_deref().map(RawValue::get) else {
            return Lookup::Map(self.map());
        };
        let index = self.index.get_or_init(|| {
            let entries: Entries<'_> = serde_json::from_str(text).ok()?;
            let at = |part: &str| {
                let start = part.as_ptr() as usize - text.as_ptr() as usize;
                Some((u32::try_from(start).ok()?, u32::try_from(start + part.len()).ok()?))
            };
            entries.0.iter().map(|(key, value)| Some(Slot { key: at(key)?, value: at(value.get())? })).collect()
        });
        let Some(index) = index else {
            return Lookup::Map(self.map());
        };
        let part = |(start, end): (u32, u32)| &text[start as usize..end as usize];
        // The last of a repeated key, as the map keeps.
        match index.iter().rev().find(|slot| part(slot.key) == name) {
            Some(slot) => Lookup::Raw(part(slot.value)),
            None => Lookup::Absent,
        }
    }

    /// `iss` when it is a string (without parsing the other claims).
    pub(crate) fn iss(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// `sid` when it is a string (without parsing the other claims).
    pub(crate) fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Roughly the memory these claims hold, or will once parsed (for a cache's weight): for
    /// claims still in their JSON text, its length plus 64 bytes for each value it could parse
    /// into (an upper bound on a `Value` and its map or array slot, counted by the `,`, `[` and `{`
    /// that start or separate values), so a cache's bound holds whatever a handler parses later
    /// (the index of single-claim questions holds 16 bytes a claim, within the same 64).
    pub(crate) fn weight(&self) -> usize {
        match &self.text {
            Some(text) => {
                let text = text.get().as_bytes();
                // Branch-free and counted in bytes (at most 255 per chunk), so that it compiles to
                // vector instructions a byte per lane: this runs on every cache miss.
                let starts: usize = text
                    .chunks(255)
                    .map(|chunk| {
                        let n: u8 = chunk
                            .iter()
                            .map(|&b| u8::from(b == b',') + u8::from(b == b'[') + u8::from(b == b'{'))
                            .sum();
                        usize::from(n)
                    })
                    .sum();
                text.len() + 64 * (1 + starts)
            }
            None => self.map().iter().map(|(k, v)| k.len() + json_size(v)).sum(),
        }
    }

    /// The subject: the provider's stable id for the user.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// A string claim.
    ///
    /// Claims read from a session cookie are not all parsed for this: a string without escapes is
    /// borrowed from their text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.lookup(name) {
            Lookup::Absent => None,
            Lookup::Raw(raw) => match raw_str(raw)? {
                std::borrow::Cow::Borrowed(s) => Some(s),
                // An escaped string: the map holds it unescaped.
                std::borrow::Cow::Owned(_) => self.map().get(name).and_then(Value::as_str),
            },
            Lookup::Map(map) => map.get(name).and_then(Value::as_str),
        }
    }

    /// Any claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map().get(name)
    }

    /// `email`.
    pub fn email(&self) -> Option<&str> {
        self.get_str("email")
    }

    /// `email_verified` is `true`.
    pub fn email_verified(&self) -> bool {
        match self.lookup("email_verified") {
            Lookup::Absent => false,
            Lookup::Raw(raw) => raw == "true",
            Lookup::Map(map) => map.get("email_verified").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    /// `name`.
    pub fn name(&self) -> Option<&str> {
        self.get_str("name")
    }

    /// `picture`.
    pub fn picture(&self) -> Option<&str> {
        self.get_str("picture")
    }

    /// Whether claim `name` equals `value` (a string claim) or holds it (an array claim).
    ///
    /// A string claim matches only when it is exactly `value`: `groups: "not admin"` does not
    /// contain `admin`. Only `scope` is a space-delimited list (RFC 6749 §3.3); ask it with
    /// [`Claims::has_scope`].
    ///
    /// ```
    /// use auth_core::Claims;
    /// let c = Claims::from_value(serde_json::json!({"sub": "a", "groups": "not admin", "roles": ["admin"]})).unwrap();
    /// assert!(!c.contains("groups", "admin"));
    /// assert!(c.contains("groups", "not admin"));
    /// assert!(c.contains("roles", "admin"));
    /// ```
    pub fn contains(&self, name: &str, value: &str) -> bool {
        match self.lookup(name) {
            Lookup::Absent => false,
            Lookup::Raw(raw) => raw_holds(raw, value, false),
            Lookup::Map(map) => match map.get(name) {
                Some(Value::String(s)) => s == value,
                Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
                _ => false,
            },
        }
    }

    /// Whether the space-delimited `scope` claim (RFC 6749 §3.3) lists `scope`. An array `scope`
    /// (as some providers send) counts too, and so does `scp` (Entra ID's name for it).
    ///
    /// ```
    /// use auth_core::Claims;
    /// let c = Claims::from_value(serde_json::json!({"sub": "a", "scope": "read write"})).unwrap();
    /// assert!(c.has_scope("write"));
    /// assert!(!c.has_scope("admin"));
    /// assert!(!c.has_scope("read write"), "one scope at a time");
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        ["scope", "scp"].iter().any(|name| match self.lookup(name) {
            Lookup::Absent => false,
            Lookup::Raw(raw) => raw_holds(raw, scope, true),
            Lookup::Map(map) => match map.get(*name) {
                Some(Value::String(s)) => s.split(' ').any(|v| !v.is_empty() && v == scope),
                Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(scope)),
                _ => false,
            },
        })
    }

    /// All claims as a JSON map.
    pub fn as_map(&self) -> &Map<String, Value> {
        self.map()
    }
}

/// Roughly the memory a parsed JSON value holds.
fn json_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 24,
        Value::Array(items) => 24 + items.iter().map(json_size).sum::<usize>(),
        Value::Object(map) => 48 + map.iter().map(|(k, v)| k.len() + json_size(v)).sum::<usize>(),
        _ => 24,
    }
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

impl Eq for Claims {}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Claims").field(self.map()).finish()
    }
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Claims::from_map)
    }
}

/// A logged-in session.
///
/// Adapters hand it to handlers (`AuthUser` derefs to it). `Debug` never shows a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub(crate) id: String,
    pub(crate) provider: String,
    pub(crate) claims: Claims,
    pub(crate) tokens: Tokens,
    pub(crate) created_at: u64,
    pub(crate) expires_at: u64,
}

/// A revocation key from its pieces, in one allocation of the final size (`format!` grows its
/// buffer as it goes; the keys are computed on every cache miss).
fn key(pieces: &[&str]) -> String {
    let mut key = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    pieces.iter().for_each(|p| key.push_str(p));
    key
}

impl Session {
    /// The keys under which a logout can end this session: its id, and the provider's `sid` and
    /// `iss` + `sub` (for back-channel logout).
    pub(crate) fn revocation_keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(3);
        keys.push(self.id_key());
        if let Some(sid) = self.claims.sid() {
            keys.push(key(&["sid:", self.issuer(), "|", sid]));
        }
        keys.push(self.user_key());
        keys
    }

    /// The issuer the session's user belongs to (the provider's name for plain OAuth 2.0).
    fn issuer(&self) -> &str {
        self.claims.iss().unwrap_or(&self.provider)
    }

    /// The key that ends every session of this user: `sub:{iss}|{sub}`.
    pub(crate) fn user_key(&self) -> String {
        key(&["sub:", self.issuer(), "|", self.claims.sub()])
    }

    /// The key that ends this session alone: `id:{iss}|{sub}|{id}`. It names the user, so that a
    /// full record of ended sessions can fold one user's many records into their `sub:` key.
    pub(crate) fn id_key(&self) -> String {
        key(&["id:", self.issuer(), "|", self.claims.sub(), "|", &self.id])
    }

    /// The session's id: random, new at every login.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The provider the user logged in with.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The user's claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The subject (shortcut for `claims().sub()`).
    pub fn sub(&self) -> &str {
        self.claims.sub()
    }

    /// The tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// When the session was created (Unix seconds).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// When the session ends (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// Where sessions live. The cookie always carries an encrypted payload; the store decides what
/// that payload is: the whole session ([`CookieStore`]) or a reference to a server-side record
/// ([`MemoryStore`], `auth_redis::RedisStore`, your database).
///
/// Implement it with [`async_trait`](crate::async_trait), as for any `dyn`-usable async trait; the
/// store is used as `Arc<dyn SessionStore>`, shared by every request. Prove an implementation
/// with [`store_contract::check`](crate::store_contract::check), the tests every built-in store
/// passes.
///
/// ```
/// use auth_core::{async_trait, Error, Session, SessionStore};
///
/// /// Sessions in a database of yours (here: nothing kept, for the sake of the example).
/// #[derive(Debug)]
/// struct MyStore;
///
/// #[async_trait]
/// impl SessionStore for MyStore {
///     async fn save(&self, session: &Session) -> Result<Vec<u8>, Error> {
///         Ok(session.id().as_bytes().to_vec()) // INSERT … and return the key the cookie carries
///     }
///     async fn load(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
///         Ok(None) // SELECT … WHERE id = payload
///     }
///     async fn delete(&self, session: &Session) -> Result<(), Error> {
///         Ok(())
///     }
///     async fn use_once(&self, key: &str, until: u64) -> Result<bool, Error> {
///         Ok(true) // INSERT … ON CONFLICT DO NOTHING, and say whether it inserted
///     }
///     async fn end_sessions(&self, key: &str, at: u64, until: u64) -> Result<(), Error> {
///         Ok(())
///     }
///     async fn ended_since(&self, keys: &[String], created_at: u64) -> Result<bool, Error> {
///         Ok(false)
///     }
/// }
/// ```
///
/// # Failures
/// A method that cannot reach its storage returns [`Error::Store`] (wrapping the cause): the
/// request that needed it gets `503 Service Unavailable`, never a session it should not have
/// (a failing `ended_since` is not "not ended") and never a lost one (the cookie is kept).
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new session (or replaces the one with its id), kept until `session.expires_at()`
    /// and no longer; returns the bytes the (encrypted) cookie must carry.
    async fn save(&self, session: &Session) -> Result<Vec<u8>, Error>;

    /// Loads the session a cookie payload stands for; `Ok(None)` when there is none (any more:
    /// deleted, expired, or a payload of another store).
    async fn load(&self, payload: &[u8]) -> Result<Option<Session>, Error>;

    /// [`load`](SessionStore::load), shared: what every request's lookup calls. A store that
    /// keeps sessions in memory returns its own copy here instead of cloning it (a session's
    /// claims and tokens are most of what a cached request would otherwise cost). The default
    /// wraps `load`.
    async fn load_shared(&self, payload: &[u8]) -> Result<Option<Arc<Session>>, Error> {
        Ok(self.load(payload).await?.map(Arc::new))
    }

    /// Deletes the server-side record of a session, if any; deleting an unknown one is `Ok`.
    async fn delete(&self, session: &Session) -> Result<(), Error>;

    /// Whether the payload is the whole session, so its size is bounded by the cookie limit.
    fn is_cookie_only(&self) -> bool {
        false
    }

    /// Marks a one-time value (a login's `state`, a logout token's `jti`) as used until `until`
    /// (Unix seconds); `Ok(false)` when it already was. Atomic: of two concurrent calls with one
    /// key, exactly one gets `true`; a store shared by several instances makes replays fail on
    /// all of them. The record may be forgotten after `until`.
    async fn use_once(&self, key: &str, until: u64) -> Result<bool, Error>;

    /// Records that the sessions matching `key` (`id:{iss}|{sub}|{session id}`, `sid:{iss}|{sid}`,
    /// `sub:{iss}|{sub}`) created at or before `at` are over; the record is kept until `until`
    /// (Unix seconds), and a later record of the same key keeps the latest `at` and `until`. This
    /// is how a logout reaches sessions that live only in cookies. A store short of room may
    /// replace one user's `id:` records by their `sub:` record at the latest `at` (ending that
    /// user's other sessions too), never drop a record that still guards a session.
    async fn end_sessions(&self, key: &str, at: u64, until: u64) -> Result<(), Error>;

    /// Whether any of `keys` was ended at or after `created_at`. Called on every request that
    /// carries a session: keep it cheap.
    async fn ended_since(&self, keys: &[String], created_at: u64) -> Result<bool, Error>;

    /// Takes the lock `key` (`refresh:{session id}`) for `owner` (a random value per attempt) for
    /// at most `ttl`, so that one instance at a time refreshes a session's tokens; `Ok(false)`
    /// when another owner holds it. Instances that lose wait for the winner's
    /// [`save`](SessionStore::save) (reading it with [`load_current`](SessionStore::load_current))
    /// and use its tokens: a rotated refresh token is spent once.
    ///
    /// The default takes every lock at once. That is right only for a store no other process
    /// shares (auth-core already lets one request per process refresh a session); a store shared
    /// by several instances must override it (Redis: `SET key owner NX PX ttl`) together with
    /// [`unlock`](SessionStore::unlock).
    async fn lock(&self, key: &str, owner: &str, ttl: std::time::Duration) -> Result<bool, Error> {
        let _ = (key, owner, ttl);
        Ok(true)
    }

    /// Releases a lock taken with [`lock`](SessionStore::lock), if `owner` still holds it (a lock
    /// that outlived its `ttl` may be another owner's by now). A lock also ends by itself.
    async fn unlock(&self, key: &str, owner: &str) -> Result<(), Error> {
        let _ = (key, owner);
        Ok(())
    }

    /// [`load`](SessionStore::load), bypassing whatever this instance caches: the session as the
    /// last writer, on any instance, saved it. Used while another instance refreshes a session.
    /// The default is `load` (right for a store without a cache of its own).
    async fn load_current(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        self.load(payload).await
    }
}

/// Sessions kept entirely in the encrypted cookie: no server state, any instance can read them.
///
/// The encoding keeps what browsers allow in one cookie in mind: JWTs are stored as their decoded
/// parts and the non-secret JSON is deflate-compressed, while random material (signatures, opaque
/// tokens) is kept apart from it, uncompressed, so compression cannot leak it.
///
/// The records of used one-time values and ended sessions are kept in this process, bounded and
/// expiring; with several instances, use a shared store.
#[derive(Debug, Default)]
pub struct CookieStore {
    registry: Registry,
}

impl CookieStore {
    /// A cookie store.
    pub fn new() -> Self {
        CookieStore::default()
    }
}

#[async_trait::async_trait]
impl SessionStore for CookieStore {
    async fn save(&self, session: &Session) -> Result<Vec<u8>, Error> {
        crate::codec::encode(session)
    }

    async fn load(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        Ok(crate::codec::decode(payload))
    }

    async fn delete(&self, _session: &Session) -> Result<(), Error> {
        Ok(())
    }

    fn is_cookie_only(&self) -> bool {
        true
    }

    async fn use_once(&self, key: &str, until: u64) -> Result<bool, Error> {
        Ok(self.registry.use_once(key, until))
    }

    async fn end_sessions(&self, key: &str, at: u64, until: u64) -> Result<(), Error> {
        self.registry.end_sessions(key, at, until);
        Ok(())
    }

    async fn ended_since(&self, keys: &[String], created_at: u64) -> Result<bool, Error> {
        Ok(self.registry.ended_since(keys, created_at))
    }
}

/// Sessions in this process's memory; the cookie carries only the session id. For one instance
/// (or tests): a restart logs everyone out.
///
/// Bounded: at most [`MemoryStore::DEFAULT_CAPACITY`] sessions (or the number given to
/// [`MemoryStore::with_capacity`]), and at most [`MemoryStore::SESSIONS_PER_USER`] per user (a
/// user's oldest goes first), so one account logging in in a loop cannot push others out. Saving
/// into a full store first sweeps the expired sessions; if it is still full, the session closest
/// to its expiry is dropped (its user must log in again). The records of used one-time values and
/// ended sessions are bounded as for [`CookieStore`].
///
/// ```
/// let store = auth_core::MemoryStore::with_capacity(10_000);
/// assert!(store.is_empty());
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    sessions: Mutex<Sessions>,
    capacity: usize,
    registry: Registry,
}

/// The sessions by id, and each user's session ids (oldest first).
#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<String, Arc<Session>>,
    by_user: HashMap<String, Vec<String>>,
}

impl Sessions {
    fn remove(&mut self, id: &str) -> Option<Arc<Session>> {
        let session = self.by_id.remove(id)?;
        let user = session.user_key();
        if let Some(ids) = self.by_user.get_mut(&user) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.by_user.remove(&user);
            }
        }
        Some(session)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(MemoryStore::DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    /// How many sessions [`MemoryStore::new`] keeps at most.
    pub const DEFAULT_CAPACITY: usize = 100_000;
    /// How many sessions one user (`iss` + `sub`) may have at once.
    pub const SESSIONS_PER_USER: usize = 32;

    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store that keeps at most `capacity` sessions (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore {
            sessions: Mutex::new(Sessions::default()),
            capacity: capacity.max(1),
            registry: Registry::default(),
        }
    }

    /// How many sessions it holds.
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).by_id.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn save(&self, session: &Session) -> Result<Vec<u8>, Error> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&session.id);
        let user = session.user_key();
        while map.by_user.get(&user).is_some_and(|ids| ids.len() >= Self::SESSIONS_PER_USER) {
            let oldest = map.by_user.get(&user).and_then(|ids| ids.first().cloned()).unwrap_or_default();
            map.remove(&oldest);
        }
        if map.by_id.len() >= self.capacity {
            let now = crate::now();
            let expired: Vec<String> =
                map.by_id.values().filter(|s| s.expires_at <= now).map(|s| s.id.clone()).collect();
            for id in expired {
                map.remove(&id);
            }
            if map.by_id.len() >= self.capacity
                && let Some(soonest) = map.by_id.values().min_by_key(|s| s.expires_at).map(|s| s.id.clone())
            {
                map.remove(&soonest);
            }
        }
        map.by_user.entry(user).or_default().push(session.id.clone());
        map.by_id.insert(session.id.clone(), Arc::new(session.clone()));
        Ok(session.id.as_bytes().to_vec())
    }

    async fn load(&self, payload: &[u8]) -> Result<Option<Session>, Error> {
        Ok(self.load_shared(payload).await?.map(Arc::unwrap_or_clone))
    }

    async fn load_shared(&self, payload: &[u8]) -> Result<Option<Arc<Session>>, Error> {
        let id = std::str::from_utf8(payload).unwrap_or_default();
        Ok(self.sessions.lock().unwrap_or_else(|e| e.into_inner()).by_id.get(id).cloned())
    }

    async fn delete(&self, session: &Session) -> Result<(), Error> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&session.id);
        Ok(())
    }

    async fn use_once(&self, key: &str, until: u64) -> Result<bool, Error> {
        Ok(self.registry.use_once(key, until))
    }

    async fn end_sessions(&self, key: &str, at: u64, until: u64) -> Result<(), Error> {
        self.registry.end_sessions(key, at, until);
        Ok(())
    }

    async fn ended_since(&self, keys: &[String], created_at: u64) -> Result<bool, Error> {
        Ok(self.registry.ended_since(keys, created_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_tokens() {
        let tokens = Tokens {
            access_token: Secret::new("at-secret"),
            refresh_token: Some(Secret::new("rt-secret")),
            id_token: None,
            expires_at: None,
            received_ms: None,
            scope: None,
            dpop_key: None,
        };
        let text = format!("{tokens:?}");
        assert!(!text.contains("secret"), "{text}");
    }

    fn session(id: &str, expires_at: u64) -> Session {
        Session {
            id: id.into(),
            provider: "oidc".into(),
            claims: Claims::from_value(serde_json::json!({"sub": id})).unwrap(),
            tokens: Tokens {
                access_token: Secret::new("at"),
                refresh_token: None,
                id_token: None,
                expires_at: None,
                received_ms: None,
                scope: None,
                dpop_key: None,
            },
            created_at: 1,
            expires_at,
        }
    }

    #[tokio::test]
    async fn the_built_in_stores_keep_the_contract() {
        crate::store_contract::check(&CookieStore::new()).await;
        crate::store_contract::check(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn memory_store_is_bounded() {
        let store = MemoryStore::with_capacity(3);
        let far = crate::now() + 3600;
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            store.save(&session(id, far + i as u64)).await.unwrap();
        }
        store.save(&session("d", far + 10)).await.unwrap();
        assert_eq!(store.len(), 3, "bounded");
        assert!(store.load(b"a").await.unwrap().is_none(), "the session closest to expiry made room");
        assert!(store.load(b"d").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn one_user_cannot_fill_the_memory_store() {
        let store = MemoryStore::with_capacity(100);
        let far = crate::now() + 3600;
        store.save(&session("alice", far)).await.unwrap();
        for i in 0..500 {
            let mut s = session(&format!("m{i}"), far + 10);
            s.claims = Claims::from_value(serde_json::json!({"sub": "mallory"})).unwrap();
            store.save(&s).await.unwrap();
        }
        assert_eq!(store.len(), 1 + MemoryStore::SESSIONS_PER_USER, "mallory keeps only her newest sessions");
        assert!(store.load(b"alice").await.unwrap().is_some(), "alice was not pushed out");
        assert!(store.load(b"m499").await.unwrap().is_some());
        assert!(store.load(b"m0").await.unwrap().is_none());
        store.delete(&session("alice", far)).await.unwrap();
        assert!(store.load(b"alice").await.unwrap().is_none());
    }

    #[test]
    fn claims_contains() {
        let c = Claims::from_value(
            serde_json::json!({"sub": "a", "scope": "read write", "groups": ["x"], "team": "not admin"}),
        )
        .unwrap();
        assert!(c.has_scope("write"));
        assert!(!c.contains("scope", "write"), "only scope is space-delimited, and only through has_scope");
        assert!(!c.contains("team", "admin"), "a string claim matches only when equal");
        assert!(!c.has_scope(""));
        assert!(c.contains("groups", "x"));
        assert!(!c.contains("groups", "y"));
        assert!(Claims::from_value(serde_json::json!({"sub": ""})).is_none());
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn claims_from_json_parse_the_rest_when_first_asked() {
        let text = r#"{"sub":"al\u0069ce","iss":"https://op.example","sid":"s-1","groups":["a","b"],"n":1}"#;
        let lazy = Claims::from_json(raw(text)).unwrap();
        assert_eq!(lazy.sub(), "alice", "escapes are read");
        assert_eq!(lazy.iss(), Some("https://op.example"));
        assert_eq!(lazy.sid(), Some("s-1"));
        assert!(lazy.map.get().is_none(), "nothing else is parsed yet");
        assert!(lazy.contains("groups", "b"));
        assert_eq!(lazy.get_str("iss"), Some("https://op.example"));
        assert!(lazy.map.get().is_none(), "one claim is read without parsing the others");
        assert_eq!(lazy.get("n"), Some(&Value::from(1)));
        assert!(lazy.map.get().is_some(), "parsed once all are asked");
        let eager = Claims::from_value(serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(lazy, eager);
        assert_eq!(format!("{lazy:?}"), format!("{eager:?}"));
        assert_eq!(serde_json::to_string(&lazy).unwrap(), serde_json::to_string(&eager).unwrap());
        let unparsed = Claims::from_json(raw(text)).unwrap();
        assert_eq!(unparsed.get("n"), Some(&Value::from(1)));
        assert_ne!(Claims::from_json(raw(r#"{"sub":"alice"}"#)).unwrap(), eager, "equal means every claim");
    }

    #[test]
    fn claims_from_json_refuse_what_from_value_refuses() {
        for text in [
            r#"["alice"]"#,
            r#""alice""#,
            r#"{"sub":""}"#,
            r#"{"sub":1}"#,
            r#"{"name":"x"}"#,
            r#"{"sub":"a","sub":"b"}"#,
        ] {
            assert!(Claims::from_json(raw(text)).is_none(), "{text}");
        }
        let odd = Claims::from_json(raw(r#"{"sub":"a","iss":7,"sid":null}"#)).unwrap();
        assert_eq!((odd.iss(), odd.sid()), (None, None), "a non-string iss or sid is absent");
        assert_eq!((odd.get_str("iss"), odd.get("iss")), (None, Some(&Value::from(7))), "as get_str says");
    }

    /// Every single-claim question gets the same answer from the index over the text as from
    /// the parsed map, whatever the text holds.
    #[test]
    fn claims_read_from_text_answer_as_the_parsed_map() {
        let texts = [
            r#"{"sub":"a","email":"a@x","email_verified":true,"name":"A","picture":"p","groups":["g","h"],"scope":"r w"}"#,
            // Escapes in values, spaces around everything, nested values, a repeated key.
            r#" { "sub" : "a" , "name" : "A\"B\u00e9" , "email" : "e" , "email" : "last" , "o" : {"name":"inner"} , "groups" : [ "g" , "\u0067h" , 1 , null ] } "#,
            // Values of other types where strings are expected, and the other way round.
            r#"{"sub":"a","name":7,"email":null,"email_verified":"true","picture":["p"],"groups":"g","scope":["r","w x"],"scp":"s"}"#,
            r#"{"sub":"a","email_verified":false,"scope":"","scp":["","t"],"groups":[]}"#,
            // An escaped key: no index, the map answers.
            r#"{"sub":"a","n\u0061me":"escaped","email":"e","groups":["g"],"email_verified":true}"#,
        ];
        for text in texts {
            let eager = Claims::from_value(serde_json::from_str(text).unwrap()).unwrap();
            for name in ["sub", "name", "email", "picture", "groups", "scope", "scp", "o", "missing", "email_verified"]
            {
                let lazy = Claims::from_json(raw(text)).unwrap();
                assert_eq!(lazy.get_str(name), eager.get_str(name), "{name} in {text}");
                for value in ["g", "gh", "h", "1", "r", "w", "w x", "x", "s", "t", "", "r w"] {
                    assert_eq!(lazy.contains(name, value), eager.contains(name, value), "{name} {value} in {text}");
                    assert_eq!(lazy.has_scope(value), eager.has_scope(value), "scope {value} in {text}");
                }
            }
            let lazy = Claims::from_json(raw(text)).unwrap();
            assert_eq!(
                (lazy.email(), lazy.email_verified(), lazy.name(), lazy.picture()),
                (eager.email(), eager.email_verified(), eager.name(), eager.picture()),
                "{text}"
            );
        }
        let escaped = Claims::from_json(raw(texts[1])).unwrap();
        assert_eq!((escaped.name(), escaped.email()), (Some("A\"B\u{e9}"), Some("last")));
        assert!(escaped.contains("groups", "gh"));
        let plain = Claims::from_json(raw(texts[0])).unwrap();
        assert_eq!((plain.name(), plain.email_verified(), plain.has_scope("w")), (Some("A"), true, true));
        assert!(plain.map.get().is_none(), "answered from the text alone");
    }

    #[test]
    fn claims_deserialize_from_any_map() {
        let claims: Claims =
            serde_json::from_value(serde_json::json!({"sub": "a", "iss": "https://op", "x": [1]})).unwrap();
        assert_eq!((claims.sub(), claims.iss(), claims.sid()), ("a", Some("https://op"), None));
        let no_sub: Claims = serde_json::from_value(serde_json::json!({"x": 1})).unwrap();
        assert_eq!(no_sub.sub(), "");
    }

    #[test]
    fn unparsed_claims_weigh_at_least_what_they_parse_into() {
        // A thousand tiny values: the parsed map is far larger than the text.
        let zeros = format!(r#"{{"sub":"a","z":[{}],"o":{{"k":"v"}}}}"#, vec!["0"; 1000].join(","));
        let lazy = Claims::from_json(raw(&zeros)).unwrap();
        let eager = Claims::from_value(serde_json::from_str(&zeros).unwrap()).unwrap();
        assert!(lazy.weight() >= eager.weight(), "{} < {}", lazy.weight(), eager.weight());
        assert!(lazy.weight() >= 1000 * std::mem::size_of::<Value>(), "{}", lazy.weight());
        let before = lazy.weight();
        let _ = lazy.as_map();
        assert_eq!(lazy.weight(), before, "the same once parsed");
    }
}
