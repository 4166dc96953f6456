//! The pending-login and pending-logout cookies: the sealed value as the browser sends it, and
//! the JSON payload inside, as the callback, the pruning of old logins and the logout callback
//! read them.
//!
//! Properties: nothing panics; what is read writes back to a payload that reads the same.
#![no_main]

use auth_core::fuzzing::{
    open_cookie, read_pending_login, read_pending_logout, write_pending_login, write_pending_logout,
};
use libfuzzer_sys::fuzz_target;

fn read(payload: &[u8]) {
    if let Some(login) = read_pending_login(payload) {
        assert_eq!(read_pending_login(&write_pending_login(&login)), Some(login), "a pending login round-trips");
    }
    if let Some((state, created)) = read_pending_logout(payload) {
        let again = read_pending_logout(&write_pending_logout(&state, created));
        assert_eq!(again, Some((state, created)), "a pending logout round-trips");
    }
}

fuzz_target!(|data: &[u8]| {
    read(data);
    if let Ok(value) = std::str::from_utf8(data) {
        let ring = auth_fuzz::ring();
        for purpose in [&b"login"[..], b"logout"] {
            if let Some((payload, _)) = open_cookie(&ring, purpose, value) {
                read(&payload);
            }
        }
    }
});
