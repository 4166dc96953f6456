//! The session cookie: the value as the browser sends it (opened with the key ring), and the
//! compact encoding inside (`CookieStore`'s decoder), on any bytes.
//!
//! Properties: nothing panics; a decoded session encodes again (or is refused as too large, when
//! its JSON grows on re-serialization) to bytes that decode to the same session; a value sealed
//! for the session opens for it alone, to what was sealed.
#![no_main]

use auth_core::Error;
use auth_core::fuzzing::{decode_session, encode_session, open_cookie};
use libfuzzer_sys::fuzz_target;

fn decode(bytes: &[u8]) {
    let Some(session) = decode_session(bytes) else { return };
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
