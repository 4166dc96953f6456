//! The session cookie: the value as the browser sends it (opened with the key ring), and the
//! compact encoding inside (`CookieStore`'s decoder), on any bytes.
//!
//! Properties: nothing panics; a decoded session encodes again (or is refused as too large, when
//! its JSON grows on re-serialization) to bytes that decode to the same session; a value sealed
//! for the session opens for it alone, to what was sealed; the claims of a decoded session answer
//! each single-claim question (read from their text) as their parsed map does.
#![no_main]

use auth_core::Error;
use auth_core::fuzzing::{decode_session, encode_session, open_cookie};
use libfuzzer_sys::fuzz_target;

/// Whether the claims decoded from `bytes` answer `get_str`, `contains` and `has_scope` from their
/// text as they do once parsed, for their own claims' names and values.
fn same_answers(bytes: &[u8], parsed: &auth_core::Claims) {
    let map = parsed.as_map();
    let mut names: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
    names.extend(["name", "email", "email_verified", "groups", "scope"]);
    let mut values: Vec<&str> = map
        .values()
        .flat_map(|v| v.as_array().map_or(std::slice::from_ref(v), Vec::as_slice))
        .filter_map(serde_json::Value::as_str)
        .take(8)
        .collect();
    values.extend(["", "admin"]);
    for name in names {
        // A fresh decode for each name: an escaped string parses the map, which answers after.
        let Some(lazy) = decode_session(bytes) else { panic!("decodes once, decodes again") };
        let lazy = lazy.claims();
        assert_eq!(lazy.get_str(name), parsed.get_str(name), "get_str({name:?})");
        assert_eq!(lazy.email_verified(), parsed.email_verified(), "email_verified");
        for value in &values {
            assert_eq!(lazy.contains(name, value), parsed.contains(name, value), "contains({name:?}, {value:?})");
            assert_eq!(lazy.has_scope(value), parsed.has_scope(value), "has_scope({value:?})");
        }
    }
}

fn decode(bytes: &[u8]) {
    let Some(session) = decode_session(bytes) else { return };
    same_answers(bytes, session.claims());
    match encode_session(&session) {
        Ok(again) => assert_eq!(decode_session(&again).as_ref(), Some(&session), "a re-encoded session decodes equal"),
        Err(Error::SessionTooLarge { .. }) => {}
        Err(err) => panic!("a decoded session does not encode: {err}"),
    }
}

fuzz_target!(|data: &[u8]| {
    decode(data);
    let ring = auth_fuzz::ring();
    // The cookie value: a seed sealed with the fuzz key opens, a mutation of it does not.
    if let Ok(value) = std::str::from_utf8(data)
        && let Some((payload, old_key)) = open_cookie(&ring, b"session", value)
    {
        assert!(!old_key, "a one-key ring opens with its newest key");
        decode(&payload);
    }
    let sealed = ring.seal(b"session", data).expect("sealing never fails");
    assert_eq!(ring.open(b"session", &sealed).as_deref(), Some(data), "what is sealed opens");
    assert_eq!(ring.open(b"login", &sealed), None, "a session cookie is no pending login");
});
