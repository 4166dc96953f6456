//! What the core reads of a request's head: cookies (several `Cookie` headers, quoted values),
//! `Accept` and `Sec-Fetch-Mode` (browser or API client), query parameters, the `Authorization`
//! bearer token (RFC 6750 §2.1), and an OAuth `error=` code as it is shown.
//!
//! Input: a query line, then `name: value` header lines.
//!
//! Properties: nothing panics; `cookie(name)` is the first such pair; a client is never both a
//! browser and one that prefers JSON; a bearer token is non-empty `b64token` characters; a shown
//! error code is short and of `[a-z0-9_]` only.
#![no_main]

use auth_core::fuzzing::{bearer_header, sanitize_code};
use auth_core::{Method, RequestView};
use libfuzzer_sys::fuzz_target;

fn b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n, v.trim_start())).collect();
    let mut req =
        RequestView::new(Method::from_name(query.split(' ').next().unwrap_or_default()), "/auth/x", Some(query));
    for (name, value) in &headers {
        req.add_header(name, value);
    }
    let pairs: Vec<(&str, &str)> = req.cookies_iter().collect();
    for (name, _) in &pairs {
        let first = pairs.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(req.cookie(name), first, "cookie {name:?}");
    }
    assert!(!(req.wants_html() && req.prefers_json()), "a browser that prefers JSON");
    for name in ["state", "code", "next", "error", "iss"] {
        if let Some(value) = req.query_param(name) {
            let code = sanitize_code(&value);
            assert!(!code.is_empty() && code.len() <= 64, "{code:?}");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{code:?}");
        }
    }
    if let Some(Ok(token)) = bearer_header(req.authorization()) {
        assert!(b64token(token), "bearer token {token:?}");
    }
    let _ = req.path_and_query();
});
