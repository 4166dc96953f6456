//! Small in-process state: the bounded expiring registry behind the in-process stores (used
//! one-time values, ended sessions) and the cache of decoded session cookies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::now;
use crate::session::Session;

/// A bounded set of keys that expire: "this state was used", "this session was ended".
#[derive(Debug)]
pub(crate) struct ExpiringSet {
    cap: usize,
    items: Mutex<HashMap<String, u64>>,
}

impl Default for ExpiringSet {
    fn default() -> Self {
        ExpiringSet::new(100_000)
    }
}

/// The in-process registry of the built-in stores: one-time values and ended sessions, bounded
/// and expiring.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    used: ExpiringSet,
    /// key → (ended at, remembered until).
    ended: Mutex<HashMap<String, (u64, u64)>>,
}

impl Registry {
    pub(crate) fn use_once(&self, key: &str, until: u64) -> bool {
        self.used.insert_once(key, until)
    }

    pub(crate) fn end_sessions(&self, key: &str, at: u64, until: u64) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() >= 100_000 {
            let now = now();
            ended.retain(|_, (_, until)| *until > now);
        }
        let entry = ended.entry(key.to_owned()).or_insert((at, until));
        *entry = (entry.0.max(at), entry.1.max(until));
    }

    pub(crate) fn ended_since(&self, keys: &[String], created_at: u64) -> bool {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        !ended.is_empty() && keys.iter().any(|k| ended.get(k).is_some_and(|&(at, _)| at >= created_at))
    }
}

impl ExpiringSet {
    pub(crate) fn new(cap: usize) -> Self {
        ExpiringSet { cap, items: Mutex::new(HashMap::new()) }
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
                // Still full of live entries: drop the ones closest to expiry.
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
}

/// Decoded sessions by cookie value, so a request with a known cookie skips decryption,
/// decompression and JSON parsing.
///
/// The key is the cookie's last 24 characters (they encode the AES-GCM tag, unique per sealing); a
/// hit also compares the whole value, so a forged cookie sharing a tag falls through to decryption.
/// Only used with the cookie store (a server-side store must be asked each time, as another
/// instance may have deleted the session). Bounded: when full, it starts over.
#[derive(Debug)]
pub(crate) struct SessionCache {
    cap: usize,
    map: RwLock<HashMap<Box<str>, CacheEntry>>,
}

/// The whole cookie value, its session, and the session's revocation keys (computed once).
type CacheEntry = (Box<str>, Arc<Session>, Arc<[String]>);

fn cache_key(cookie: &str) -> &str {
    let start = cookie.len().saturating_sub(24);
    cookie.get(start..).unwrap_or(cookie)
}

impl SessionCache {
    pub(crate) fn new(cap: usize) -> Self {
        SessionCache { cap, map: RwLock::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, cookie: &str) -> Option<(Arc<Session>, Arc<[String]>)> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(cache_key(cookie)) {
            Some((full, session, keys)) if full.as_ref() == cookie => Some((session.clone(), keys.clone())),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, cookie: &str, session: Arc<Session>, keys: Arc<[String]>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap {
            map.clear();
        }
        map.insert(cache_key(cookie).into(), (cookie.into(), session, keys));
    }

    pub(crate) fn remove_session(&self, id: &str) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, s, _)| s.id() != id);
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
        assert!(set.items.lock().unwrap().len() <= 8);
    }
}
