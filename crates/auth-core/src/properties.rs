//! Property tests of the invariants everything else stands on: sealed sessions open to what was
//! sealed and nothing else, `next=` never leaves the origin, a one-time value is used once.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::crypto::{KeyRing, SessionKey};
use crate::session::{Claims, Secret, Session, Tokens};
use crate::state::Registry;

/// A token: opaque text, or something shaped like a JWS (three base64url parts).
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._~+/-]{1,300}",
        ("[A-Za-z0-9_-]{2,80}", "[A-Za-z0-9_-]{2,400}", "[A-Za-z0-9_-]{2,120}")
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
    ]
}

fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        proptest::collection::vec(any::<String>().prop_map(Value::from), 0..5).prop_map(Value::from),
    ]
}

fn session() -> impl Strategy<Value = Session> {
    (
        "[A-Za-z0-9_-]{1,64}",
        proptest::collection::btree_map("[a-z_]{1,12}", claim_value(), 0..12),
        token(),
        proptest::option::of(token()),
        proptest::option::of(token()),
        proptest::option::of(any::<u32>()),
        proptest::option::of("[a-z :]{0,40}"),
        any::<u32>(),
    )
        .prop_map(|(sub, extra, access, refresh, id, expires, scope, created)| {
            let mut claims: Map<String, Value> = extra.into_iter().collect();
            claims.insert("sub".into(), Value::from(sub));
            Session {
                id: "session-id-0123456789".into(),
                provider: "oidc".into(),
                claims: Claims::from_value(Value::Object(claims)).unwrap(),
                tokens: Tokens {
                    access_token: Secret::new(access),
                    refresh_token: refresh.map(Secret::new),
                    id_token: id.map(Secret::new),
                    expires_at: expires.map(u64::from),
                    received_ms: expires.map(|e| u64::from(e) * 1000),
                    scope,
                    dpop_key: None,
                },
                created_at: u64::from(created),
                expires_at: u64::from(created) + 86_400,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any session, encoded for the cookie store and sealed, opens to the same session.
    #[test]
    fn a_sealed_session_opens_to_the_same_session(s in session()) {
        let keys = KeyRing::new(SessionKey::generate());
        let sealed = keys.seal(b"session", &crate::codec::encode(&s).unwrap()).unwrap();
        let opened = keys.open(b"session", &sealed).expect("it opens");
        prop_assert_eq!(crate::codec::decode(&opened), Some(s));
    }

    /// Any change to a sealed value (one byte of it, or its truncation) is refused, and so is
    /// the value under another purpose or key.
    #[test]
    fn a_tampered_seal_never_opens(plain in proptest::collection::vec(any::<u8>(), 0..512), at in any::<usize>(), to in 0u8..64) {
        let keys = KeyRing::new(SessionKey::generate());
        let sealed = keys.seal(b"session", &plain).unwrap();
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bytes = sealed.clone().into_bytes();
        let i = at % bytes.len();
        let replacement = B64[usize::from(to)];
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(keys.open(b"session", &tampered).is_none(), "a changed byte at {}", i);
        prop_assert!(keys.open(b"session", &sealed[..sealed.len() - 1]).is_none(), "truncated");
        prop_assert!(keys.open(b"login", &sealed).is_none(), "another purpose");
        prop_assert!(KeyRing::new(SessionKey::generate()).open(b"session", &sealed).is_none(), "another key");
    }

    /// Whatever `next=` a request carries, what the redirect accepts stays on the app's origin.
    #[test]
    fn next_never_leaves_the_origin(next in prop_oneof![any::<String>(), "[/\\\\a-z.:%@?#2fFcC5]{0,24}"]) {
        if let Some(path) = crate::safe_next(&next) {
            let base = url::Url::parse("https://app.example/some/page").unwrap();
            let target = base.join(path).expect("a relative reference");
            prop_assert_eq!(target.origin(), base.origin(), "{:?} leads to {}", next, target);
            prop_assert!(path.starts_with('/') && !path.starts_with("//"));
        }
    }

    /// Within its capacity, a one-time value (a login's state, a logout token's jti) is
    /// accepted once, however the uses interleave.
    #[test]
    fn a_one_time_value_is_accepted_once(uses in proptest::collection::vec(0usize..40, 1..200)) {
        let registry = Registry::with_capacity(64, 64);
        let until = crate::now() + 600;
        let mut seen = std::collections::HashSet::new();
        for key in uses {
            let first = seen.insert(key);
            prop_assert_eq!(registry.use_once(&format!("state:{key:040}"), until), first, "state {}", key);
        }
    }
}
