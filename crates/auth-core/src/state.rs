//! Small in-process state: the bounded expiring registry behind the in-process stores (used
//! one-time values, ended sessions) and the cache of decoded session cookies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::now;
use crate::session::Session;

/// A bounded set of keys that expire: "this state was used", "this jti was seen".
///
/// Eviction rule: when full, expired entries go first; if it is still full of live entries, the
/// quarter closest to expiry goes (they would have gone soonest anyway).
#[derive(Debug)]
pub(crate) struct ExpiringSet {
    cap: usize,
    items: Mutex<HashMap<String, u64>>,
}

/// How many one-time values of each kind the in-process stores remember.
const ONE_TIME_VALUES: usize = 100_000;
/// How many ended-session records the in-process stores keep before folding them (see
/// [`Registry`]).
const ENDED_RECORDS: usize = 100_000;
/// When the ended-session records are full, a user with more `id:` records than this has them
/// folded into one `sub:` record.
const PER_USER_RECORDS: usize = 8;

/// The in-process registry of the built-in stores: one-time values and ended sessions, bounded
/// and expiring.
///
/// - Login `state`s and logout-token `jti`s live in two separate [`ExpiringSet`]s (any other
///   one-time key in a third), so anonymous traffic filling one (anyone can start logins) can
///   never evict the other.
/// - Ended-session records are bounded too, and never simply dropped while live. When full, the
///   expired ones go; then every user with more than [`PER_USER_RECORDS`] `id:` records (one
///   account logging in and out in a loop) has them folded into one `sub:` record at the latest
///   of their end times, which ends only that user's older sessions; only if that is still not
///   enough (more distinct users than the bound) is the half ended longest ago folded into a
///   *floor*: every session created at or before it counts as ended. Either may log out more
///   sessions than were logged out, never fewer (fail closed).
#[derive(Debug)]
pub(crate) struct Registry {
    states: ExpiringSet,
    jtis: ExpiringSet,
    other: ExpiringSet,
    ended: Mutex<Ended>,
}

#[derive(Debug, Default)]
struct Ended {
    /// key → (ended at, remembered until).
    records: HashMap<String, (u64, u64)>,
    /// Sessions created at or before this are ended (0: none).
    floor: u64,
    cap: usize,
}

impl Ended {
    /// Replaces the `id:{iss}|{sub}|{session}` records of every user who has more than
    /// [`PER_USER_RECORDS`] of them by one `sub:{iss}|{sub}` record at the latest of their times.
    fn fold_busy_users(&mut self) {
        let mut per_user: HashMap<&str, usize> = HashMap::new();
        for key in self.records.keys() {
            if let Some(user) = id_record_user(key) {
                *per_user.entry(user).or_default() += 1;
            }
        }
        let busy: std::collections::HashSet<String> =
            per_user.into_iter().filter(|(_, n)| *n > PER_USER_RECORDS).map(|(u, _)| u.to_owned()).collect();
        if busy.is_empty() {
            return;
        }
        let mut folded: HashMap<String, (u64, u64)> = HashMap::new();
        self.records.retain(|key, &mut (at, until)| match id_record_user(key) {
            Some(user) if busy.contains(user) => {
                let entry = folded.entry(format!("sub:{user}")).or_insert((at, until));
                *entry = (entry.0.max(at), entry.1.max(until));
                false
            }
            _ => true,
        });
        for (key, (at, until)) in folded {
            let entry = self.records.entry(key).or_insert((at, until));
            *entry = (entry.0.max(at), entry.1.max(until));
        }
        tracing::warn!(users = busy.len(), "ended-session records full: folded the records of users with many logouts");
    }
}

/// The `{iss}|{sub}` of an `id:{iss}|{sub}|{session}` record.
fn id_record_user(key: &str) -> Option<&str> {
    key.strip_prefix("id:")?.rsplit_once('|').map(|(user, _)| user)
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_capacity(ONE_TIME_VALUES, ENDED_RECORDS)
    }
}

impl Registry {
    pub(crate) fn with_capacity(one_time: usize, ended: usize) -> Self {
        Registry {
            states: ExpiringSet::new(one_time),
            jtis: ExpiringSet::new(one_time),
            other: ExpiringSet::new(one_time),
            ended: Mutex::new(Ended { cap: ended.max(2), ..Ended::default() }),
        }
    }

    pub(crate) fn use_once(&self, key: &str, until: u64) -> bool {
        let set = if key.starts_with("state:") {
            &self.states
        } else if key.starts_with("jti:") {
            &self.jtis
        } else {
            &self.other
        };
        set.insert_once(key, until)
    }

    pub(crate) fn end_sessions(&self, key: &str, at: u64, until: u64) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.records.len() >= ended.cap && !ended.records.contains_key(key) {
            let now = now();
            ended.records.retain(|_, (_, until)| *until > now);
            if ended.records.len() >= ended.cap {
                ended.fold_busy_users();
            }
            if ended.records.len() >= ended.cap {
                // Fold the older half into the floor: fail closed, never resurrect a session.
                let mut times: Vec<u64> = ended.records.values().map(|(at, _)| *at).collect();
                times.sort_unstable();
                let cutoff = times[times.len() / 2];
                ended.floor = ended.floor.max(cutoff);
                ended.records.retain(|_, (at, _)| *at > cutoff);
                tracing::warn!(
                    floor = cutoff,
                    "ended-session records full: sessions created before the floor count as ended"
                );
            }
        }
        let entry = ended.records.entry(key.to_owned()).or_insert((at, until));
        *entry = (entry.0.max(at), entry.1.max(until));
    }

    pub(crate) fn ended_since(&self, keys: &[String], created_at: u64) -> bool {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        (ended.floor > 0 && created_at <= ended.floor)
            || (!ended.records.is_empty()
                && keys.iter().any(|k| ended.records.get(k).is_some_and(|&(at, _)| at >= created_at)))
    }
}

impl ExpiringSet {
    pub(crate) fn new(cap: usize) -> Self {
        ExpiringSet { cap: cap.max(4), items: Mutex::new(HashMap::new()) }
    }

    /// Inserts `key` until `expires_at`; false when it is already there (and not expired).
    pub(crate) fn insert_once(&self, key: &str, expires_at: u64) -> bool {
        let now = now();
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.get(key).is_some_and(|&t| t > now) {
            return false;
        }
        if items.len() >= self.cap {
            items.retain(|_, t| *t > now);
            if items.len() >= self.cap {
                // Still full of live entries: drop the quarter closest to expiry.
                let mut times: Vec<u64> = items.values().copied().collect();
                times.sort_unstable();
                let cutoff = times[times.len() / 4];
                items.retain(|_, t| *t > cutoff);
            }
        }
        items.insert(key.to_owned(), expires_at);
        true
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &str) -> bool {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.get(key).is_some_and(|&t| t > now())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Decoded sessions by cookie value, so a request with a known cookie skips decryption,
/// decompression and JSON parsing.
///
/// The key is the cookie's last 24 characters (they encode the AES-GCM tag, unique per sealing); a
/// hit also compares the whole value, so a forged cookie sharing a tag falls through to decryption.
/// Only used with the cookie store (a server-side store must be asked each time, as another
/// instance may have deleted the session). Bounded in bytes (each entry weighs its cookie plus its
/// session's claims and tokens, roughly), with gradual eviction: quick_cache's S3-FIFO keeps the
/// sessions that come back and lets a burst of one-time cookies go first, so more active users
/// than fit cost a miss each, never a cleared cache. Only cookies that opened are inserted: an
/// invalid one cannot push a valid one out.
pub(crate) struct SessionCache {
    cache: quick_cache::sync::Cache<Box<str>, CacheEntry, EntryWeight, std::hash::RandomState>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Cookies are credentials: only the counts.
        f.debug_struct("SessionCache").field("entries", &self.cache.len()).finish_non_exhaustive()
    }
}

/// The whole cookie value, its session, the session's revocation keys (computed once), and the
/// entry's weight (computed once: the eviction reads it often).
#[derive(Clone)]
struct CacheEntry {
    /// Shared: a hit clones the entry.
    cookie: Arc<str>,
    session: Arc<Session>,
    keys: Arc<[String]>,
    weight: u64,
}

/// An entry weighs what it holds, roughly.
#[derive(Clone, Copy)]
struct EntryWeight;

impl quick_cache::Weighter<Box<str>, CacheEntry> for EntryWeight {
    fn weight(&self, _key: &Box<str>, entry: &CacheEntry) -> u64 {
        entry.weight
    }
}

fn cache_key(cookie: &str) -> &str {
    let start = cookie.len().saturating_sub(24);
    cookie.get(start..).unwrap_or(cookie)
}

/// Roughly the memory an entry holds: its cookie, claims, tokens and keys.
pub(crate) fn weight(cookie: &str, session: &Session, keys: &[String]) -> usize {
    let claims = session.claims().weight();
    let t = session.tokens();
    let tokens = t.access_token.secret().len()
        + t.refresh_token.as_ref().map_or(0, |s| s.secret().len())
        + t.id_token.as_ref().map_or(0, |s| s.secret().len());
    2 * cookie.len() + claims + tokens + keys.iter().map(String::len).sum::<usize>() + 256
}

impl SessionCache {
    /// Room for about `entries` sessions and at most `max_bytes` of them.
    pub(crate) fn new(entries: usize, max_bytes: usize) -> Self {
        let max_bytes = u64::try_from(max_bytes).unwrap_or(u64::MAX);
        // std's SipHash, pinned: another crate of the app enabling quick_cache's default (foldhash)
        // must not change it, as anyone can choose the keys looked up.
        let cache = quick_cache::sync::Cache::with(
            entries,
            max_bytes,
            EntryWeight,
            std::hash::RandomState::new(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        SessionCache { cache }
    }

    pub(crate) fn get(&self, cookie: &str) -> Option<(Arc<Session>, Arc<[String]>)> {
        match self.cache.get(cache_key(cookie)) {
            Some(entry) if entry.cookie.as_ref() == cookie => Some((entry.session, entry.keys)),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, cookie: &str, session: Arc<Session>, keys: Arc<[String]>) {
        let weight = u64::try_from(weight(cookie, &session, &keys)).unwrap_or(u64::MAX);
        // An entry heavier than the cache's share for it is not kept (quick_cache refuses it).
        self.cache.insert(cache_key(cookie).into(), CacheEntry { cookie: cookie.into(), session, keys, weight });
    }

    /// Forgets every cookie of session `id` (a logout: its cookies must be decoded, and refused,
    /// again).
    pub(crate) fn remove_session(&self, id: &str) {
        self.cache.retain(|_, entry| entry.session.id() != id);
    }

    #[cfg(test)]
    fn bytes(&self) -> (usize, usize) {
        (self.cache.len(), usize::try_from(self.cache.weight()).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiring_set_is_single_use_and_bounded() {
        let set = ExpiringSet::new(8);
        let later = now() + 60;
        assert!(set.insert_once("a", later));
        assert!(!set.insert_once("a", later));
        assert!(set.contains("a"));
        assert!(set.insert_once("old", now() - 1));
        assert!(!set.contains("old"), "expired entries are gone");
        for i in 0..100 {
            set.insert_once(&i.to_string(), later + i);
        }
        assert!(set.len() <= 8);
    }

    #[test]
    fn states_cannot_evict_jtis() {
        let registry = Registry::with_capacity(16, 16);
        let later = now() + 600;
        assert!(registry.use_once("jti:https://op|j1", later));
        // An anonymous flood of used states, far past the bound.
        for i in 0..1000 {
            registry.use_once(&format!("state:{i:032}"), later);
        }
        assert!(registry.states.len() <= 16, "bounded");
        assert!(!registry.use_once("jti:https://op|j1", later), "the jti is still remembered: a replay is refused");
    }

    #[test]
    fn one_busy_user_cannot_log_everyone_out() {
        let registry = Registry::with_capacity(16, 12);
        let until = now() + 3600;
        // Alice logged out once, at 150, of a session created at 100.
        registry.end_sessions("id:https://op|alice|s-a", 150, until);
        // Mallory loops logins and logouts with one account.
        for i in 0..200u64 {
            registry.end_sessions(&format!("id:https://op|mallory|s{i}"), 200 + i, until);
        }
        let ended = registry.ended.lock().unwrap();
        assert!(ended.records.len() <= 12, "bounded");
        assert_eq!(ended.floor, 0, "no global floor: one user's records were folded");
        drop(ended);
        assert!(registry.ended_since(&["id:https://op|alice|s-a".to_string()], 100), "alice's logout holds");
        let bob = ["id:https://op|bob|s-b".to_string(), "sub:https://op|bob".to_string()];
        assert!(!registry.ended_since(&bob, 120), "another user's session lives on");
        let mallory = ["id:https://op|mallory|s-old".to_string(), "sub:https://op|mallory".to_string()];
        assert!(registry.ended_since(&mallory, 120), "mallory's older sessions are over");
    }

    #[test]
    fn a_full_ended_record_fails_closed() {
        let registry = Registry::with_capacity(16, 8);
        let until = now() + 3600;
        // Session "old" was created at 100 and ended at 150; many logouts follow.
        registry.end_sessions("id:old", 150, until);
        for i in 0..50u64 {
            registry.end_sessions(&format!("id:s{i}"), 200 + i, until);
        }
        assert!(registry.ended.lock().unwrap().records.len() <= 8, "bounded");
        assert!(registry.ended_since(&["id:old".to_string()], 100), "an evicted record still ends its session");
        assert!(!registry.ended_since(&["id:fresh".to_string()], now()), "a session after the floor lives");
    }

    fn session(id: &str, bio: usize) -> Arc<Session> {
        Arc::new(Session {
            id: id.into(),
            provider: "oidc".into(),
            claims: crate::Claims::from_value(serde_json::json!({"sub": id, "bio": "x".repeat(bio)})).unwrap(),
            tokens: crate::Tokens {
                access_token: crate::Secret::new("at"),
                refresh_token: None,
                id_token: None,
                expires_at: None,
                received_ms: None,
                scope: None,
                dpop_key: None,
            },
            created_at: 1,
            expires_at: u64::MAX,
        })
    }

    #[test]
    fn a_full_session_cache_keeps_the_sessions_in_use() {
        let cache = SessionCache::new(500, 1024 * 1024);
        let hot = "cookie-hot-hot-hot-hot-hot-hot-hot-hot";
        cache.insert(hot, session("hot", 100), Arc::from(vec![]));
        for i in 0..20_000 {
            cache.insert(&format!("cookie-once-{i:024}"), session(&format!("u{i}"), 100), Arc::from(vec![]));
            if i % 50 == 0 {
                assert!(cache.get(hot).is_some(), "a session in use survives a stream of new ones ({i})");
            }
        }
        let (entries, bytes) = cache.bytes();
        assert!(bytes <= 1024 * 1024 && entries > 100, "{entries} entries, {bytes} bytes");
        assert!(cache.get("cookie-once-000000000000000000019999").is_some(), "no start-over: the newest is there");
    }

    #[test]
    fn session_cache_is_bounded_by_bytes() {
        let cache = SessionCache::new(1000, 64 * 1024);
        for i in 0..100 {
            let cookie = format!("cookie-value-{i:030}");
            cache.insert(&cookie, session(&i.to_string(), 4000), Arc::from(vec![]));
            let (entries, bytes) = cache.bytes();
            assert!(bytes <= 64 * 1024, "{bytes} bytes in {entries} entries");
        }
        let cookie = "cookie-value-last-000000000000000000";
        cache.insert(cookie, session("last", 10), Arc::from(vec![]));
        assert!(cache.get(cookie).is_some());
        cache.remove_session("last");
        assert!(cache.get(cookie).is_none());
        cache.insert("huge-000000000000000000000000", session("huge", 100_000), Arc::from(vec![]));
        assert!(cache.get("huge-000000000000000000000000").is_none(), "an entry over the whole bound is not kept");
    }
}
