//! The `next=` return-to: same-site relative paths only, so the app is no open redirector.

/// Returns `next` when it is a safe same-site relative path, else `None`.
///
/// Accepted: `/`, `/me`, `/a/b?x=1#frag`. Refused: absolute URLs, scheme-relative `//evil`,
/// `/\evil` (browsers read `\` as `/`), control characters and whitespace (browsers strip tabs and
/// newlines, turning `/\t/evil` into `//evil`), the same percent-encoded right after the first `/`
/// (`/%2F`, `/%5C`, `/%09`, `/%0A`, `/%0D`: a proxy may decode them), and anything not starting
/// with `/`.
///
/// ```
/// use auth_core::safe_next;
/// assert_eq!(safe_next("/me?tab=1"), Some("/me?tab=1"));
/// assert_eq!(safe_next("//evil.example"), None);
/// assert_eq!(safe_next("https://evil.example/"), None);
/// assert_eq!(safe_next("/\\evil.example"), None);
/// ```
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    if rest.starts_with('/') || rest.starts_with('\\') {
        return None;
    }
    if next.len() > 2048 || next.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    // A percent-encoded slash or backslash right after the first `/` is decoded by some servers and
    // proxies before redirecting; refuse it rather than guess. So is an encoded tab or newline,
    // which browsers then strip: `/%09/evil` decodes to `/\t/evil`, which they read as `//evil`.
    let lower = rest.get(..3).map(str::to_ascii_lowercase);
    if matches!(lower.as_deref(), Some("%2f" | "%5c" | "%09" | "%0a" | "%0d")) {
        return None;
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn open_redirects_are_refused() {
        for bad in [
            "",
            "me",
            "http://evil",
            "https://evil/",
            "//evil",
            "///evil",
            "/\\evil",
            "\\\\evil",
            "/\t/evil",
            "/\n/evil",
            "/%2fevil",
            "/%5Cevil",
            "javascript:alert(1)",
            " /x",
            "/a b",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        for good in ["/", "/me", "/a/b?x=1&y=%2F#f", "/é"] {
            assert_eq!(safe_next(good), Some(good));
        }
    }
}
