//! The `next=` return-to: `safe_next` on any text, and on the `next` parameter of a login's
//! query as the login route decodes it.
//!
//! Properties: what `safe_next` accepts is its input unchanged, starts with a single `/` (not
//! `//`, not `/\`), and resolves on the app's own origin, also after one round of percent-decoding.
#![no_main]

use auth_core::{Method, RequestView, safe_next};
use libfuzzer_sys::fuzz_target;

fn check(next: &str) {
    let Some(out) = safe_next(next) else { return };
    assert_eq!(out, next, "accepted unchanged");
    let rest = out.strip_prefix('/').expect("starts with /");
    assert!(!rest.starts_with('/') && !rest.starts_with('\\'), "{out:?} is scheme-relative");
    auth_fuzz::assert_same_site_redirect(out, &[]);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    let req = RequestView::new(Method::Get, "/auth/oidc/login", Some(text));
    if let Some(next) = req.query_param("next") {
        check(&next);
    }
});
