//! Cookie encryption with a key ring, and the random values of the login flow.
//!
//! Every cookie the library writes is sealed with AES-256-GCM (aws-lc-rs) under the newest key of
//! the [`KeyRing`]; any key of the ring opens it, so a new key can be rolled out without logging
//! anyone out: put it first, keep the old one second until the old cookies have expired.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::Error;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// One 256-bit cookie key. Its `Debug` output is redacted.
///
/// ```
/// use auth_core::SessionKey;
/// let key = SessionKey::generate();
/// let text = key.to_base64();
/// assert_eq!(SessionKey::from_base64(&text).unwrap().to_base64(), text);
/// assert_eq!(format!("{key:?}"), "SessionKey([redacted])");
/// ```
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        SessionKey(bytes)
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionKey(bytes)
    }

    /// A key from its base64 text (standard or URL-safe alphabet, padded or not) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| Error::config("a session key must be base64"))?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| Error::config("a session key must be 32 bytes (44 base64 characters)"))?;
        Ok(SessionKey(bytes))
    }

    /// The key as URL-safe base64 (to store it in a secret manager).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

/// The cookie keys: the first encrypts, every one decrypts.
///
/// ```
/// use auth_core::{KeyRing, SessionKey};
/// let old = SessionKey::generate();
/// let sealed = KeyRing::new(old.clone()).seal(b"session", b"hello").unwrap();
/// // Rotation: the new key first, the old one kept to open existing cookies.
/// let ring = KeyRing::new(SessionKey::generate()).with_old_key(old);
/// assert_eq!(ring.open(b"session", &sealed).unwrap(), b"hello");
/// ```
pub struct KeyRing {
    keys: Vec<RandomizedNonceKey>,
}

impl KeyRing {
    /// A ring with one key.
    // The ring takes the key: it keeps only the cipher state derived from it.
    #[allow(clippy::needless_pass_by_value)]
    pub fn new(key: SessionKey) -> Self {
        KeyRing { keys: vec![aead_key(&key)] }
    }

    /// Adds an older key that still opens cookies but no longer seals any.
    #[must_use]
    #[allow(clippy::needless_pass_by_value)]
    pub fn with_old_key(mut self, key: SessionKey) -> Self {
        self.keys.push(aead_key(&key));
        self
    }

    /// Parses `AUTH_SESSION_KEY`-style text: base64 keys separated by commas, newest first.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let mut keys = text.split(',').filter(|s| !s.trim().is_empty()).map(SessionKey::from_base64);
        let first = keys.next().ok_or_else(|| Error::config("no session key given"))??;
        keys.try_fold(KeyRing::new(first), |ring, key| Ok(ring.with_old_key(key?)))
    }

    /// Encrypts and authenticates `plain`; `purpose` (the cookie's role) is bound as associated data
    /// so a value sealed for one cookie is refused in another.
    pub fn seal(&self, purpose: &[u8], plain: &[u8]) -> Result<String, Error> {
        let key = &self.keys[0];
        let mut buf = Vec::with_capacity(plain.len() + TAG_LEN);
        buf.extend_from_slice(plain);
        let nonce = key
            .seal_in_place_append_tag(Aad::from(purpose), &mut buf)
            .map_err(|_| Error::Internal("cookie encryption failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(base64_simd::URL_SAFE_NO_PAD.encode_to_string(out))
    }

    /// Opens a value sealed by [`KeyRing::seal`] with any key of the ring; `None` when it was
    /// tampered with, sealed for another purpose, or by a key that is not in the ring.
    pub fn open(&self, purpose: &[u8], sealed: &str) -> Option<Vec<u8>> {
        self.open_noting_key(purpose, sealed).map(|(plain, _)| plain)
    }

    /// [`KeyRing::open`], saying also whether an older key than the newest opened it (the value
    /// should then be sealed again under the newest key).
    pub(crate) fn open_noting_key(&self, purpose: &[u8], sealed: &str) -> Option<(Vec<u8>, bool)> {
        // SIMD base64 (base64-simd): a session cookie is decoded on every cache miss, and the
        // base64 crate's decoder took about as long as the decryption.
        let mut raw = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(sealed).ok()?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = raw[1..1 + NONCE_LEN].try_into().ok()?;
        let last = self.keys.len().saturating_sub(1);
        for (index, key) in self.keys.iter().enumerate() {
            let open = |buf: &mut [u8]| {
                key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(purpose), buf).ok().map(|p| p.len())
            };
            // The last key (the only one, most often) opens in place; an earlier one works on a copy,
            // as a failed attempt may leave the buffer changed.
            if index == last {
                let len = open(&mut raw[1 + NONCE_LEN..])?;
                raw.copy_within(1 + NONCE_LEN..1 + NONCE_LEN + len, 0);
                raw.truncate(len);
                return Some((raw, index > 0));
            }
            let mut buf = raw[1 + NONCE_LEN..].to_vec();
            if let Some(len) = open(&mut buf) {
                buf.truncate(len);
                return Some((buf, index > 0));
            }
        }
        None
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a ring has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({} keys, [redacted])", self.keys.len())
    }
}

fn aead_key(key: &SessionKey) -> RandomizedNonceKey {
    // A 32-byte key is always valid for AES-256-GCM.
    #[allow(clippy::expect_used)]
    RandomizedNonceKey::new(&AES_256_GCM, &key.0).expect("AES-256 key of 32 bytes")
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS random source failing is not recoverable and never happens on a working system.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(buf).expect("operating system random source");
}

/// A random URL-safe string of `bytes` random bytes (43 characters for 32 bytes).
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_is_refused() {
        let ring = KeyRing::new(SessionKey::generate());
        let sealed = ring.seal(b"session", b"payload").unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(ring.open(b"session", &URL_SAFE_NO_PAD.encode(raw)), None);
        assert_eq!(ring.open(b"login", &sealed), None, "purpose is bound");
        assert_eq!(ring.open(b"session", "garbage!"), None);
        assert_eq!(ring.open(b"session", &sealed).unwrap(), b"payload");
    }

    #[test]
    fn sealed_text_is_unpadded_base64url_and_anything_else_is_refused() {
        let ring = KeyRing::new(SessionKey::generate());
        for len in 0..64 {
            let plain = vec![0xfb; len];
            let sealed = ring.seal(b"s", &plain).unwrap();
            assert_eq!(
                sealed,
                URL_SAFE_NO_PAD.encode(URL_SAFE_NO_PAD.decode(&sealed).unwrap()),
                "the base64 crate agrees"
            );
            assert_eq!(ring.open(b"s", &sealed).unwrap(), plain);
            let padded = format!("{sealed}{}", "=".repeat((4 - sealed.len() % 4) % 4));
            let standard = STANDARD.encode(URL_SAFE_NO_PAD.decode(&sealed).unwrap());
            for bad in [format!("{sealed} "), format!(" {sealed}"), format!("{sealed}A"), sealed[1..].to_owned()] {
                assert_eq!(ring.open(b"s", &bad), None, "{bad}");
            }
            if padded != sealed {
                assert_eq!(ring.open(b"s", &padded), None, "padded");
            }
            if standard.contains(['+', '/']) {
                assert_eq!(ring.open(b"s", &standard), None, "standard alphabet");
            }
        }
        assert_eq!(ring.open(b"s", ""), None);
    }

    #[test]
    fn a_removed_key_opens_nothing() {
        let old = SessionKey::generate();
        let sealed = KeyRing::new(old).seal(b"s", b"x").unwrap();
        assert_eq!(KeyRing::new(SessionKey::generate()).open(b"s", &sealed), None);
    }

    #[test]
    fn ring_from_text() {
        let a = SessionKey::generate();
        let b = SessionKey::generate();
        let ring = KeyRing::from_text(&format!("{}, {}", a.to_base64(), b.to_base64())).unwrap();
        assert_eq!(ring.len(), 2);
        let sealed = KeyRing::new(b).seal(b"s", b"x").unwrap();
        assert!(ring.open(b"s", &sealed).is_some());
        assert!(KeyRing::from_text("short").is_err());
        assert!(KeyRing::from_text("").is_err());
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(random_token(32).len(), 43);
    }
}
