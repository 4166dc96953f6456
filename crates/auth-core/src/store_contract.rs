//! The contract every [`SessionStore`] keeps, as checks to run in a store's own tests: the
//! built-in stores ([`CookieStore`](crate::CookieStore), [`MemoryStore`](crate::MemoryStore),
//! `auth_redis::RedisStore`) pass them, and so must yours.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! auth_core::store_contract::check(&auth_core::MemoryStore::new()).await;
//! # }
//! ```
//!
//! Each check panics with the rule it found broken. The keys it writes are random, so several
//! runs can share one database.

use std::sync::Arc;

use crate::crypto::random_token;
use crate::session::{Claims, Secret, Session, SessionStore, Tokens};

/// A session for store tests: user `sub` at `https://op.contract.test`, a random id, ending in an
/// hour.
///
/// ```
/// let session = auth_core::store_contract::sample("alice");
/// assert_eq!(session.sub(), "alice");
/// ```
pub fn sample(sub: &str) -> Session {
    let now = crate::now();
    Session {
        id: random_token(32),
        provider: "contract".into(),
        claims: Claims::from_value(serde_json::json!({"sub": sub, "iss": "https://op.contract.test", "name": "Test"}))
            .unwrap_or_else(|| unreachable!("a sub is set")),
        tokens: Tokens {
            access_token: Secret::new(random_token(24)),
            refresh_token: Some(Secret::new(random_token(24))),
            id_token: None,
            expires_at: Some(now + 300),
            received_ms: Some(now * 1000),
            scope: Some("openid".into()),
            dpop_key: None,
        },
        created_at: now,
        expires_at: now + 3600,
    }
}

/// Runs every check against `store`.
///
/// # Panics
/// When the store breaks a rule of the [`SessionStore`] contract (the message names it).
pub async fn check(store: &(impl SessionStore + ?Sized)) {
    sessions(store).await;
    one_time_values(store).await;
    ended_sessions(store).await;
}

/// A saved session loads back equal; an unknown payload loads nothing; a deleted session is gone
/// (for a server-side store), and deleting twice is fine.
///
/// # Panics
/// When a rule is broken.
pub async fn sessions(store: &(impl SessionStore + ?Sized)) {
    let session = sample("contract-user");
    let payload = store.save(&session).await.expect("save succeeds");
    let loaded = store.load(&payload).await.expect("load succeeds");
    assert_eq!(loaded.as_ref(), Some(&session), "a saved session loads back equal");
    let shared = store.load_shared(&payload).await.expect("load_shared succeeds");
    assert_eq!(shared.as_deref(), Some(&session), "load_shared answers as load does");
    let unknown = store.load(random_token(32).as_bytes()).await.expect("load of an unknown payload succeeds");
    assert_eq!(unknown, None, "an unknown payload loads no session");
    store.delete(&session).await.expect("delete succeeds");
    if !store.is_cookie_only() {
        assert_eq!(store.load(&payload).await.expect("load succeeds"), None, "a deleted session is gone");
        assert_eq!(store.load_shared(&payload).await.expect("load_shared"), None, "also to load_shared");
    }
    store.delete(&session).await.expect("deleting a deleted session is fine");
    // Saving again under the same id replaces it.
    let mut renamed = session.clone();
    renamed.claims = Claims::from_value(serde_json::json!({"sub": "contract-user", "name": "Renamed"}))
        .unwrap_or_else(|| unreachable!("a sub is set"));
    let payload = store.save(&renamed).await.expect("save succeeds");
    assert_eq!(store.load(&payload).await.expect("load").as_ref(), Some(&renamed), "a save replaces");
    assert_eq!(store.load_shared(&payload).await.expect("load").as_deref(), Some(&renamed), "no stale shared copy");
    store.delete(&renamed).await.expect("delete succeeds");
}

/// `use_once` says `true` once per key, also to concurrent callers, and keys are independent.
///
/// # Panics
/// When a rule is broken.
pub async fn one_time_values(store: &(impl SessionStore + ?Sized)) {
    let until = crate::now() + 600;
    let key = format!("state:{}", random_token(16));
    assert!(store.use_once(&key, until).await.expect("use_once succeeds"), "a fresh value is accepted");
    assert!(!store.use_once(&key, until).await.expect("use_once succeeds"), "a used value is refused");
    let other = format!("jti:{}", random_token(16));
    assert!(store.use_once(&other, until).await.expect("use_once succeeds"), "keys are independent");
    // Concurrent callers: exactly one wins.
    let key = Arc::new(format!("state:{}", random_token(16)));
    let results = futures_util::future::join_all((0..16).map(|_| {
        let key = Arc::clone(&key);
        async move { store.use_once(&key, until).await }
    }))
    .await;
    let wins = results.into_iter().map(|r| r.expect("use_once succeeds")).filter(|won| *won).count();
    assert_eq!(wins, 1, "of concurrent use_once calls with one key, exactly one gets true");
}

/// An ended record ends the sessions created at or before its time, keeps the latest time, and
/// touches no other key.
///
/// # Panics
/// When a rule is broken.
pub async fn ended_sessions(store: &(impl SessionStore + ?Sized)) {
    let now = crate::now();
    let user = format!("sub:https://op.contract.test|{}", random_token(8));
    let other = format!("sub:https://op.contract.test|{}", random_token(8));
    let keys = [user.clone()];
    assert!(!store.ended_since(&keys, now).await.expect("ended_since succeeds"), "nothing ended yet");
    store.end_sessions(&user, now, now + 600).await.expect("end_sessions succeeds");
    assert!(store.ended_since(&keys, now - 10).await.expect("ended_since"), "a session from before is ended");
    assert!(store.ended_since(&keys, now).await.expect("ended_since"), "one from the same second too");
    assert!(!store.ended_since(&keys, now + 10).await.expect("ended_since"), "one from after lives");
    // An older record does not move the time back; a newer one moves it forward.
    store.end_sessions(&user, now - 100, now + 600).await.expect("end_sessions succeeds");
    assert!(store.ended_since(&keys, now).await.expect("ended_since"), "the latest end is kept");
    store.end_sessions(&user, now + 20, now + 600).await.expect("end_sessions succeeds");
    assert!(store.ended_since(&keys, now + 10).await.expect("ended_since"), "a later end counts");
    assert!(
        !store.ended_since(std::slice::from_ref(&other), now - 10).await.expect("ended_since"),
        "other keys untouched"
    );
    assert!(store.ended_since(&[other, user], now).await.expect("ended_since"), "any of the keys");
    assert!(!store.ended_since(&[], now).await.expect("ended_since"), "no keys, nothing ended");
}
