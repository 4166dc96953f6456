//! Small helpers: randomness, encodings, hashing, time, parameter parsing.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` random bytes from the system RNG, base64url-encoded without padding.
///
/// # Panics
///
/// Only if the operating system's random number generator fails, which leaves nothing sensible to
/// do in a test provider.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator failed");
    b64url(&bytes)
}

/// base64url without padding (RFC 7515 §2).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` on malformed input.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// SHA-256 digest.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

/// PKCE S256 transform (RFC 7636 §4.2): `BASE64URL(SHA256(ASCII(verifier)))`.
pub(crate) fn pkce_s256(verifier: &str) -> String {
    b64url(&sha256(verifier.as_bytes()))
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of SHA-256 of the access token, base64url.
pub(crate) fn half_sha256(token: &str) -> String {
    let digest = sha256(token.as_bytes());
    b64url(&digest[..digest.len() / 2])
}

/// Constant-time string comparison.
pub(crate) fn secure_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Whether `value` is 43–128 characters of the PKCE alphabet (RFC 7636 §4.1: `[A-Z] / [a-z] /
/// [0-9] / "-" / "." / "_" / "~"`). Code challenges use the same alphabet and bounds.
pub(crate) fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Request parameters in arrival order, from a query string or a form body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes. Never fails: malformed escapes are kept
    /// as they are, as browsers do.
    pub(crate) fn parse(input: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(input).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// The value of `name`, if present and not empty (OAuth treats empty values as absent,
    /// RFC 6749 §3.1).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// The first parameter name that occurs more than once (RFC 6749 §3.1: parameters must not
    /// be repeated).
    pub(crate) fn duplicate(&self) -> Option<&str> {
        self.0
            .iter()
            .enumerate()
            .find_map(|(i, (k, _))| self.0[..i].iter().any(|(earlier, _)| earlier == k).then_some(k.as_str()))
    }
}

/// Decodes one `application/x-www-form-urlencoded` component, as used for the client id and
/// secret inside HTTP Basic credentials (RFC 6749 §2.3.1). `None` on a malformed escape or
/// invalid UTF-8.
pub(crate) fn form_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `uri` is an absolute `http`/`https` URL on a loopback host (`127.0.0.0/8`, `[::1]`,
/// `localhost`) without a fragment.
pub(crate) fn is_loopback_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn form_decode_handles_escapes() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn duplicates_are_found() {
        let p = Params::parse(b"a=1&b=2&a=3");
        assert_eq!(p.duplicate(), Some("a"));
        assert_eq!(Params::parse(b"a=1&b=2").duplicate(), None);
    }

    #[test]
    fn loopback_uris() {
        assert!(is_loopback_uri("http://127.0.0.1:3000/cb"));
        assert!(is_loopback_uri("http://localhost/cb?x=1"));
        assert!(is_loopback_uri("http://[::1]:8080/cb"));
        assert!(!is_loopback_uri("http://example.com/cb"));
        assert!(!is_loopback_uri("http://127.0.0.1/cb#frag"));
        assert!(!is_loopback_uri("javascript:alert(1)"));
        assert!(!is_loopback_uri("not a url"));
    }

    #[test]
    fn pkce_value_bounds() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(is_pkce_value(&"a".repeat(128)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }
}
