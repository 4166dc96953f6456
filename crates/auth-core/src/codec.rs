//! The compact encoding of a session for the cookie store.
//!
//! Written by hand because no crate does this: browsers keep at most 4096 bytes per cookie, and a
//! plain JSON session with an ID token, a JWT access token and a refresh token easily passes that
//! once encrypted and base64-encoded. So:
//! - a JWT is stored as its decoded header and payload (JSON text) plus its raw signature bytes,
//!   which removes a layer of base64 and lets the compressor see that the ID token's payload repeats
//!   the claims;
//! - everything that is not random (ids, claims, JWT headers and payloads) is deflate-compressed
//!   (with deflate's fixed Huffman codes while the session is small: they inflate faster, see
//!   [`FIXED_HUFFMAN_UP_TO`]);
//! - random material (signatures, opaque tokens) stays out of the compressed part, so a length
//!   side channel over compression (CRIME-style) cannot reveal it.
//!
//! Layout before encryption (version 2):
//! `2 u8 | text_len u32 BE | body_len u32 BE | doc_len u32 BE | body | (len u16 BE | bytes)*`, where
//! the text is the session's JSON document (`doc_len` bytes) followed by the JWT headers and
//! payloads, verbatim (their lengths are in the document): no escaping to undo, and the
//! compressor sees the claims and the ID token's payload as they are. The body is the text
//! deflate-compressed (`body_len < text_len`), or the text itself when compressing it would not
//! make it smaller (`body_len == text_len`); `text_len` lets the decoder inflate in one pass into
//! a buffer of the final size.
//!
//! Version 1 (still decoded: cookies sealed before version 2 stay valid):
//! `1 u8 | body_len u32 BE | deflate(json) | (len u16 BE | bytes)*`, the JWT parts JSON strings in
//! the document.

use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::session::{Claims, Secret, Session, Tokens};

const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
/// The most JSON a session may inflate to: the encoder refuses more, the decoder reads no more.
pub(crate) const MAX_SESSION_JSON: usize = 64 * 1024;

/// A token in a version 1 document.
#[derive(Deserialize)]
enum Tok {
    /// A compact JWS: header and payload JSON text; the signature is the next secret.
    #[serde(rename = "j")]
    Jws(String, String),
    /// Anything else: the whole token is the next secret.
    #[serde(rename = "o")]
    Opaque,
}

/// A version 1 document.
#[derive(Deserialize)]
struct Doc {
    i: String,
    p: String,
    c: Claims,
    a: u64,
    e: u64,
    x: Option<u64>,
    /// `received_ms`, absent from sessions sealed before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
    s: Option<String>,
    at: Tok,
    rt: Option<Tok>,
    it: Option<Tok>,
}

/// A token in a version 2 document.
#[derive(Clone, Copy, Serialize, Deserialize)]
enum Part {
    /// A compact JWS: the lengths of its header and payload JSON text, which follow the document;
    /// the signature is the next secret.
    #[serde(rename = "j")]
    Jws(u32, u32),
    /// Anything else: the whole token is the next secret.
    #[serde(rename = "o")]
    Opaque,
}

/// A version 2 document, as written.
#[derive(Serialize)]
struct DocOut<'a> {
    i: &'a str,
    p: &'a str,
    c: &'a Claims,
    a: u64,
    e: u64,
    x: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
    s: Option<&'a str>,
    at: Part,
    rt: Option<Part>,
    it: Option<Part>,
    /// The session has a DPoP key: the last secret.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    k: bool,
}

/// A version 2 document, as read.
#[derive(Deserialize)]
struct DocIn {
    i: String,
    p: String,
    /// Kept as text, parsed when first asked for (see [`Claims`]).
    c: Box<serde_json::value::RawValue>,
    a: u64,
    e: u64,
    x: Option<u64>,
    #[serde(default)]
    n: Option<u64>,
    s: Option<String>,
    at: Part,
    rt: Option<Part>,
    it: Option<Part>,
    #[serde(default)]
    k: bool,
}

/// Splits a token for version 2: a compact JWS with canonical base64url parts (and UTF-8 header
/// and payload) has its header and payload appended to `parts` and its signature pushed to
/// `secrets`; anything else is pushed whole to `secrets`.
fn split_token<'t>(token: &'t str, parts: &mut Vec<u8>, secrets: &mut Vec<std::borrow::Cow<'t, [u8]>>) -> Part {
    let mut pieces = token.split('.');
    if let (Some(h), Some(p), Some(s), None) = (pieces.next(), pieces.next(), pieces.next(), pieces.next()) {
        let canonical = |part: &str| URL_SAFE_NO_PAD.decode(part).ok().filter(|b| URL_SAFE_NO_PAD.encode(b) == part);
        if let (Some(h), Some(p), Some(s)) = (canonical(h), canonical(p), canonical(s))
            && std::str::from_utf8(&h).is_ok()
            && std::str::from_utf8(&p).is_ok()
            && let (Ok(hl), Ok(pl)) = (u32::try_from(h.len()), u32::try_from(p.len()))
        {
            parts.extend_from_slice(&h);
            parts.extend_from_slice(&p);
            secrets.push(s.into());
            return Part::Jws(hl, pl);
        }
    }
    secrets.push(token.as_bytes().into());
    Part::Opaque
}

/// Rebuilds a version 2 token from its part (taking its header and payload from `parts`) and its
/// secret, in one allocation of the final size.
fn join_part(part: Part, parts: &mut &[u8], secrets: &mut Secrets<'_>) -> Option<Secret> {
    let secret = secrets.next()?;
    match part {
        Part::Jws(h, p) => {
            let (h, rest) = parts.split_at_checked(h as usize)?;
            let (p, rest) = rest.split_at_checked(p as usize)?;
            *parts = rest;
            let len = [h.len(), p.len(), secret.len()]
                .iter()
                .map(|&n| base64::encoded_len(n, false))
                .sum::<Option<usize>>()?;
            // SIMD base64 (base64-simd): this runs on every cache miss, for the ID token (and any
            // JWT access token), and the base64 crate's encoder was a tenth of a miss's time.
            let b64 = base64_simd::URL_SAFE_NO_PAD;
            let mut token = String::with_capacity(len + 2);
            b64.encode_append(h, &mut token);
            token.push('.');
            b64.encode_append(p, &mut token);
            token.push('.');
            b64.encode_append(secret, &mut token);
            Some(Secret::new(token))
        }
        Part::Opaque => Some(Secret::new(std::str::from_utf8(secret).ok()?)),
    }
}

/// The secrets after the body: `(len u16 BE | bytes)*`, borrowed from the payload.
struct Secrets<'a>(&'a [u8]);

impl<'a> Iterator for Secrets<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<2>()?;
        let (secret, rest) = rest.split_at_checked(u16::from_be_bytes(*len) as usize)?;
        self.0 = rest;
        Some(secret)
    }
}

fn join_token(tok: Tok, secrets: &mut impl Iterator<Item = Vec<u8>>) -> Option<Secret> {
    let secret = secrets.next()?;
    Some(Secret::new(match tok {
        Tok::Jws(h, p) => {
            format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p), URL_SAFE_NO_PAD.encode(secret))
        }
        Tok::Opaque => String::from_utf8(secret).ok()?,
    }))
}

/// Encodes a session (see the module docs).
pub(crate) fn encode(session: &Session) -> Result<Vec<u8>, Error> {
    let mut secrets = Vec::new();
    let mut parts = Vec::new();
    let t = &session.tokens;
    let at = split_token(t.access_token.secret(), &mut parts, &mut secrets);
    let rt = t.refresh_token.as_ref().map(|r| split_token(r.secret(), &mut parts, &mut secrets));
    let it = t.id_token.as_ref().map(|r| split_token(r.secret(), &mut parts, &mut secrets));
    let doc = DocOut {
        i: &session.id,
        p: &session.provider,
        c: &session.claims,
        a: session.created_at,
        e: session.expires_at,
        x: t.expires_at,
        n: t.received_ms,
        s: t.scope.as_deref(),
        at,
        rt,
        it,
        k: t.dpop_key.is_some(),
    };
    if let Some(key) = &t.dpop_key {
        secrets.push(std::borrow::Cow::Borrowed(key.secret().as_bytes()));
    }
    let mut text = serde_json::to_vec(&doc).map_err(|_| Error::Internal("session serialization"))?;
    let doc_len = text.len();
    text.extend_from_slice(&parts);
    // A session that compresses into a cookie but inflates past what the decoder reads would be
    // stored and then never read back: refuse it here, at login.
    if text.len() > MAX_SESSION_JSON {
        return Err(Error::SessionTooLarge { size: text.len(), limit: MAX_SESSION_JSON });
    }
    let text_len = text.len();
    let secrets_len = secrets.iter().map(|s| s.len() + 2).sum::<usize>();
    let fixed = deflate_raw(&text, zlib_rs::Strategy::Fixed)?;
    // Stored as is when compressing does not make it smaller (then `body_len == text_len`).
    let body = if fixed.len() < text.len() && 13 + fixed.len() + secrets_len <= FIXED_HUFFMAN_UP_TO {
        fixed
    } else {
        let dynamic = deflate_raw(&text, zlib_rs::Strategy::Default)?;
        if dynamic.len() < text.len() { dynamic } else { text }
    };
    let len = |n: usize| u32::try_from(n).map_err(|_| Error::Internal("session too large"));
    let mut out = Vec::with_capacity(13 + body.len() + secrets_len);
    out.push(VERSION);
    out.extend_from_slice(&len(text_len)?.to_be_bytes());
    out.extend_from_slice(&len(body.len())?.to_be_bytes());
    out.extend_from_slice(&len(doc_len)?.to_be_bytes());
    out.extend_from_slice(&body);
    for secret in secrets {
        out.extend_from_slice(
            &u16::try_from(secret.len()).map_err(|_| Error::Internal("token too large"))?.to_be_bytes(),
        );
        out.extend_from_slice(&secret);
    }
    Ok(out)
}

/// The largest encoded session whose text is compressed with the fixed Huffman codes of deflate
/// rather than codes of its own. Inflating fixed codes skips building the decoding tables, the
/// largest share of inflating a session of a few KiB (about 40% of it: 4.1 -> 2.4 µs for 2 KiB of
/// text here), which every cache miss pays; the price is a larger body (about 20% for a session's
/// JSON), paid only while the cookie stays far below the 4 KiB browsers keep (2 KiB encoded is
/// about 2.8 KiB sealed and base64-encoded). Larger sessions get the smallest encoding.
const FIXED_HUFFMAN_UP_TO: usize = 2048;

/// Raw deflate (no zlib header or checksum) at the best compression, with `strategy`.
fn deflate_raw(text: &[u8], strategy: zlib_rs::Strategy) -> Result<Vec<u8>, Error> {
    let config = zlib_rs::DeflateConfig { level: 9, window_bits: -15, strategy, ..zlib_rs::DeflateConfig::default() };
    let mut out = vec![0u8; zlib_rs::compress_bound(text.len())];
    let (written, status) = zlib_rs::compress_slice(&mut out, text, config);
    if status != zlib_rs::ReturnCode::Ok {
        return Err(Error::Internal("session compression"));
    }
    let len = written.len();
    out.truncate(len);
    Ok(out)
}

/// Inflates a version 1 session's JSON, bounded: never past [`MAX_SESSION_JSON`] (`None` beyond it, or for
/// data that is not a deflate stream). One byte more than the bound is read, to tell a session at
/// the bound from a longer one.
fn inflate(compressed: &[u8]) -> Option<Vec<u8>> {
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(compressed).take(MAX_SESSION_JSON as u64 + 1).read_to_end(&mut json).ok()?;
    (json.len() <= MAX_SESSION_JSON).then_some(json)
}

/// Inflates a whole deflate stream of exactly `len` bytes (at most [`MAX_SESSION_JSON`]) in one
/// pass and hands the text to `read` (zlib-rs: faster than miniz_oxide's one-pass decoder).
/// The decompressor's state (about 10 KiB: allocating and freeing it made glibc consolidate its
/// free lists on every miss) and the buffer the text is inflated into are kept per thread (the
/// buffer as large as the largest session inflated on the thread, so at most
/// [`MAX_SESSION_JSON`]), and reset for each stream; the state never needs its 32 KiB window, as a
/// whole stream inflated with `Finish` into room for all of it is never resumed. `None` for
/// anything else (not deflate, truncated, shorter or longer).
fn inflate_exact<R>(compressed: &[u8], len: usize, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
    struct Inflater {
        state: zlib_rs::Inflate,
        text: Vec<u8>,
    }
    impl Inflater {
        fn new() -> Self {
            // Raw deflate (no zlib header or checksum), as the encoder writes it.
            Inflater { state: zlib_rs::Inflate::new(false, 15), text: Vec::new() }
        }
    }
    thread_local! {
        static INFLATER: std::cell::RefCell<Inflater> = std::cell::RefCell::new(Inflater::new());
    }
    if len > MAX_SESSION_JSON {
        return None;
    }
    INFLATER.with(|inflater| {
        // Never borrowed twice (`read` only parses), but a fresh one is cheap enough to fall back
        // on rather than to panic.
        let mut fresh;
        let mut borrowed = inflater.try_borrow_mut().ok();
        let inflater = match borrowed.as_deref_mut() {
            Some(reused) => {
                reused.state.reset(false);
                reused
            }
            None => {
                fresh = Inflater::new();
                &mut fresh
            }
        };
        if inflater.text.len() < len {
            inflater.text.resize(len, 0);
        }
        let text = &mut inflater.text[..len];
        let state = &mut inflater.state;
        let status = state.decompress(compressed, text, zlib_rs::InflateFlush::Finish);
        let whole = status == Ok(zlib_rs::Status::StreamEnd)
            && state.total_out() == len as u64
            && state.total_in() == compressed.len() as u64;
        whole.then(|| read(text))
    })
}

/// Decodes a session; `None` for anything malformed (only our own sealed bytes get here).
pub(crate) fn decode(bytes: &[u8]) -> Option<Session> {
    match bytes.split_first()? {
        (&VERSION, rest) => decode_v2(rest),
        (&VERSION_1, rest) => decode_v1(rest),
        _ => None,
    }
}

fn decode_v2(bytes: &[u8]) -> Option<Session> {
    let (text_len, rest) = bytes.split_first_chunk::<4>()?;
    let (body_len, rest) = rest.split_first_chunk::<4>()?;
    let (doc_len, rest) = rest.split_first_chunk::<4>()?;
    let [text_len, body_len, doc_len] = [text_len, body_len, doc_len].map(|n| u32::from_be_bytes(*n) as usize);
    let (body, secrets) = rest.split_at_checked(body_len)?;
    match body_len.cmp(&text_len) {
        std::cmp::Ordering::Less => inflate_exact(body, text_len, |text| session_v2(text, doc_len, secrets))?,
        std::cmp::Ordering::Equal => session_v2(body, doc_len, secrets),
        std::cmp::Ordering::Greater => None,
    }
}

/// A version 2 session from its text (the document, then the JWT parts) and its secrets.
fn session_v2(text: &[u8], doc_len: usize, secrets: &[u8]) -> Option<Session> {
    let (doc, mut parts) = text.split_at_checked(doc_len)?;
    let doc: DocIn = serde_json::from_slice(doc).ok()?;
    let mut secrets = Secrets(secrets);
    let access_token = join_part(doc.at, &mut parts, &mut secrets)?;
    let refresh_token = match doc.rt {
        Some(t) => Some(join_part(t, &mut parts, &mut secrets)?),
        None => None,
    };
    let id_token = match doc.it {
        Some(t) => Some(join_part(t, &mut parts, &mut secrets)?),
        None => None,
    };
    let dpop_key = match doc.k {
        true => Some(Secret::new(String::from_utf8(secrets.next()?.to_vec()).ok()?)),
        false => None,
    };
    if !parts.is_empty() || !secrets.0.is_empty() {
        return None;
    }
    Some(Session {
        id: doc.i,
        provider: doc.p,
        claims: Claims::from_json(doc.c)?,
        tokens: Tokens {
            access_token,
            refresh_token,
            id_token,
            expires_at: doc.x,
            received_ms: doc.n,
            scope: doc.s,
            dpop_key,
        },
        created_at: doc.a,
        expires_at: doc.e,
    })
}

fn decode_v1(rest: &[u8]) -> Option<Session> {
    if rest.len() < 4 {
        return None;
    }
    let (len, rest) = rest.split_at(4);
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    if rest.len() < len {
        return None;
    }
    let (compressed, mut rest) = rest.split_at(len);
    let json = inflate(compressed)?;
    let doc: Doc = serde_json::from_slice(&json).ok()?;
    // As for version 2: a session has a subject.
    if doc.c.sub().is_empty() {
        return None;
    }
    let mut secrets = Vec::new();
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        if rest.len() < n {
            return None;
        }
        secrets.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    let mut secrets = secrets.into_iter();
    let access_token = join_token(doc.at, &mut secrets)?;
    let refresh_token = match doc.rt {
        Some(t) => Some(join_token(t, &mut secrets)?),
        None => None,
    };
    let id_token = match doc.it {
        Some(t) => Some(join_token(t, &mut secrets)?),
        None => None,
    };
    Some(Session {
        id: doc.i,
        provider: doc.p,
        claims: doc.c,
        tokens: Tokens {
            access_token,
            refresh_token,
            id_token,
            expires_at: doc.x,
            received_ms: doc.n,
            scope: doc.s,
            dpop_key: None,
        },
        created_at: doc.a,
        expires_at: doc.e,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn inflate_vec(compressed: &[u8], len: usize) -> Option<Vec<u8>> {
        inflate_exact(compressed, len, <[u8]>::to_vec)
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflater.write_all(data).unwrap();
        deflater.finish().unwrap()
    }

    #[test]
    fn inflation_is_bounded_and_needs_a_whole_stream() {
        let at_bound = vec![b'a'; MAX_SESSION_JSON];
        assert!(inflate(&deflate(&at_bound)).is_some_and(|j| j == at_bound), "at the bound");
        let bomb = deflate(&vec![0u8; 16 * MAX_SESSION_JSON]);
        assert!(bomb.len() < 4096, "a small input…");
        assert!(inflate(&bomb).is_none(), "…that would inflate past the bound");
        let whole = deflate(br#"{"claims":"a session"}"#);
        assert_eq!(inflate(&whole).as_deref(), Some(br#"{"claims":"a session"}"#.as_slice()));
        assert_eq!(inflate(&whole[..whole.len() - 2]), None, "a truncated stream");
        assert_eq!(inflate(b"\xff\xfe not deflate"), None, "garbage");
        assert!(inflate(&whole).is_some(), "a failure leaves nothing behind");
        let big: Vec<u8> = (0..40_000u32).flat_map(|i| i.to_le_bytes()).take(MAX_SESSION_JSON - 7).collect();
        assert!(inflate(&deflate(&big)).is_some_and(|j| j == big), "poorly compressible data grows the buffer");
    }

    fn session(at: &str, id_token: Option<&str>) -> Session {
        Session {
            id: "sid".into(),
            provider: "oidc".into(),
            claims: Claims::from_value(serde_json::json!({"sub": "alice", "name": "Alice"})).unwrap(),
            tokens: Tokens {
                access_token: Secret::new(at),
                refresh_token: Some(Secret::new("rt.not-a-jwt")),
                id_token: id_token.map(Secret::new),
                expires_at: Some(5),
                received_ms: Some(1_000),
                scope: Some("openid".into()),
                dpop_key: None,
            },
            created_at: 1,
            expires_at: 2,
        }
    }

    #[test]
    fn round_trips_exactly() {
        let jwt = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","n":"é"}"#),
            URL_SAFE_NO_PAD.encode([7u8; 256])
        );
        let mut bound = session(&jwt, Some(&jwt));
        let key = crate::dpop::DpopKey::generate().unwrap();
        bound.tokens.dpop_key = Some(Tokens::keep_dpop_key(&key));
        for s in [session("opaque-token", None), session(&jwt, Some(&jwt)), session("a.b.c", Some("x.=.y")), bound] {
            let bytes = encode(&s).unwrap();
            assert_eq!(decode(&bytes).as_ref(), Some(&s));
            if let Some(kept) = s.tokens.dpop_key() {
                assert_eq!(kept.jkt(), key.jkt(), "the DPoP key survives the cookie");
            }
        }
    }

    #[test]
    fn decoded_claims_give_the_same_revocation_keys_before_being_parsed() {
        let mut s = session("opaque-token", None);
        s.claims = Claims::from_value(serde_json::json!({
            "sub": "alice", "iss": "https://op.example", "sid": "op-session", "groups": ["a"]
        }))
        .unwrap();
        let decoded = decode(&encode(&s).unwrap()).unwrap();
        assert_eq!(decoded.revocation_keys(), s.revocation_keys());
        assert_eq!(decoded.revocation_keys().len(), 3, "id, sid and sub");
        assert_eq!(decoded.sub(), "alice");
        assert_eq!(decoded, s, "and every claim once asked");
        let mut no_sub = s;
        no_sub.claims = Claims::from_map(serde_json::Map::new());
        assert!(decode(&encode(&no_sub).unwrap()).is_none(), "a session without a subject does not decode");
    }

    /// A session encoded by the version 1 encoder (before version 2), kept as a test vector:
    /// cookies sealed then must still decode, equal.
    const V1_VECTOR: &str = "AQAAAPJlUEluwzAQ+0rAs9PsrqtbvtAeMz4otpCq8SLEDmDA8IP6jn6s1NQBAlQXDTkUR5wRHgadL5frzXa3P6Sv2RsSBJKtLwuWBcyIy629hw7mBEvqjDyB74jx2fehM6tVG17cYOtQOfYbWzv2jpUv3EJwFCx+vslzTPQNy1gQ3s+ENqowJXQ2m2w9nwRuhlm6j3B4dHdphM2zmD+nm1q7xpcLV1tfcYDtI8fi9ih8H9N8xSCjcPRFYATvH9tDKkgEV18qcxVMlFPDmMr8D6oPmEHbmkKZGF6pOb7EBYiuQPt/q6TixFfK0CHn5YYgzyEn5NP0CwATb3BhcXVlLWFjY2Vzcy10b2tlbgAMcnQubm90LWEtand0AEAHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH";

    fn vector_session() -> Session {
        let jwt = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(
                r#"{"iss":"https://op.example","sub":"alice","name":"Alice \"A\" é","groups":["a","b"],"exp":1800003600}"#
            ),
            URL_SAFE_NO_PAD.encode([7u8; 64])
        );
        Session {
            id: "sid-0123456789".into(),
            provider: "oidc".into(),
            claims: Claims::from_value(serde_json::json!({
                "iss": "https://op.example", "sub": "alice", "name": "Alice \"A\" é", "groups": ["a", "b"], "sid": "op-sid"
            }))
            .unwrap(),
            tokens: Tokens {
                access_token: Secret::new("opaque-access-token"),
                refresh_token: Some(Secret::new("rt.not-a-jwt")),
                id_token: Some(Secret::new(jwt)),
                expires_at: Some(1_800_003_600),
                received_ms: Some(1_800_000_000_123),
                scope: Some("openid email".into()),
                dpop_key: None,
            },
            created_at: 1_800_000_000,
            expires_at: 1_800_086_400,
        }
    }

    #[test]
    fn version_1_sessions_still_decode() {
        let v1 = base64::engine::general_purpose::STANDARD.decode(V1_VECTOR).unwrap();
        assert_eq!(v1[0], VERSION_1);
        assert_eq!(decode(&v1), Some(vector_session()));
        let v2 = encode(&vector_session()).unwrap();
        assert_eq!(v2[0], VERSION);
        assert_eq!(decode(&v2), Some(vector_session()));
        for cut in 0..v1.len() {
            let _ = decode(&v1[..cut]);
        }
        // A version 1 document without a subject (found by the session_cookie fuzzer: it decoded,
        // then its version 2 encoding did not) is refused, as in version 2.
        let v1 = |claims: &str| {
            let json = format!(
                r#"{{"i":"s","p":"oidc","c":{claims},"a":1,"e":2,"x":null,"s":null,"at":"o","rt":null,"it":null}}"#
            );
            let body = deflate(json.as_bytes());
            let mut bytes = vec![VERSION_1];
            bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(&body);
            bytes.extend_from_slice(&[0, 2, b'a', b't']); // the opaque access token "at"
            bytes
        };
        assert_eq!(decode(&v1(r#"{"0ub":"alice"}"#)), None);
        let with_sub = decode(&v1(r#"{"sub":"alice"}"#));
        assert_eq!(with_sub.as_ref().map(Session::sub), Some("alice"), "the same document with one");
    }

    #[test]
    fn version_2_is_exact_about_its_lengths() {
        let bytes = encode(&vector_session()).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None, "a trailing byte");
        // The text length is what the body must inflate to, exactly.
        for delta in [-1i64, 1] {
            let mut wrong = bytes.clone();
            let n = u32::from_be_bytes(wrong[1..5].try_into().unwrap()) as i64 + delta;
            wrong[1..5].copy_from_slice(&(n as u32).to_be_bytes());
            assert_eq!(decode(&wrong), None, "text length off by {delta}");
        }
        let mut huge = bytes;
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&huge), None, "past the bound");
    }

    #[test]
    fn incompressible_text_is_stored_as_is() {
        let mut s = vector_session();
        let noise = URL_SAFE_NO_PAD.encode(random_bytes(300, 9));
        s.claims = Claims::from_value(serde_json::json!({"sub": noise})).unwrap();
        s.tokens.id_token = None;
        let bytes = encode(&s).unwrap();
        let text_len = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        let body_len = u32::from_be_bytes(bytes[5..9].try_into().unwrap());
        assert!(body_len <= text_len);
        assert_eq!(decode(&bytes), Some(s));
        let tiny = session("at", None);
        assert_eq!(decode(&encode(&tiny).unwrap()), Some(tiny));
    }

    #[test]
    fn exact_inflation() {
        let text = br#"{"claims":"a session"}"#;
        let whole = deflate(text);
        assert_eq!(inflate_vec(&whole, text.len()).as_deref(), Some(text.as_slice()));
        assert_eq!(inflate_vec(&whole, text.len() - 1), None, "longer than said");
        assert_eq!(inflate_vec(&whole, text.len() + 1), None, "shorter than said");
        assert_eq!(inflate_vec(&whole[..whole.len() - 2], text.len()), None, "a truncated stream");
        assert_eq!(inflate_vec(b"\xff\xfe not deflate", 16), None, "garbage");
        let bomb = deflate(&vec![0u8; 16 * MAX_SESSION_JSON]);
        assert_eq!(inflate_vec(&bomb, MAX_SESSION_JSON), None, "a bomb stops at the buffer");
        assert_eq!(inflate_vec(&bomb, 16 * MAX_SESSION_JSON), None, "past the bound");
        assert_eq!(inflate_vec(&whole, text.len()).as_deref(), Some(text.as_slice()), "reused after a failure");
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"more");
        assert_eq!(inflate_vec(&trailing, text.len()), None, "bytes after the stream's end");
        // One thread's decompressor, reset between streams: a half-read stream leaves nothing.
        let other = br#"{"claims":"another session, longer than the first"}"#;
        let other_whole = deflate(other);
        assert_eq!(inflate_vec(&other_whole[..other_whole.len() / 2], other.len()), None);
        assert_eq!(inflate_vec(&other_whole, other.len()).as_deref(), Some(other.as_slice()));
        assert_eq!(inflate_vec(&whole, text.len()).as_deref(), Some(text.as_slice()));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[1, 0, 0, 0, 9, 1, 2]), None);
        let mut bytes = encode(&session("x", None)).unwrap();
        bytes.truncate(bytes.len() - 1);
        assert_eq!(decode(&bytes), None);
    }

    #[test]
    fn what_inflates_past_the_bound_is_refused_when_made() {
        let mut s = session("at", None);
        let roles: Vec<String> = (0..8000).map(|i| format!("role-admin-{}", i % 10)).collect();
        s.claims = Claims::from_value(serde_json::json!({"sub": "alice", "roles": roles})).unwrap();
        let err = encode(&s).unwrap_err();
        assert!(matches!(err, Error::SessionTooLarge { limit: MAX_SESSION_JSON, .. }), "{err:?}");
    }

    /// Pseudo-random bytes (xorshift), standing in for signatures and opaque tokens.
    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn jwt(header: &str, payload: &serde_json::Value, seed: u64) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(random_bytes(256, seed))
        )
    }

    /// The size of the whole `Set-Cookie` value for a session, as the browser limit counts it.
    fn cookie_size(session: &Session) -> usize {
        let payload = encode(session).unwrap();
        let sealed = crate::KeyRing::new(crate::SessionKey::generate()).seal(b"session", &payload).unwrap();
        "__Host-auth_session=".len() + sealed.len() + "; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=86400".len()
    }

    fn realistic(id_claims: &serde_json::Value, access_token: String, refresh_token: String) -> Session {
        let id_token =
            jwt(r#"{"alg":"RS256","kid":"c8ab71530972bba20b49f78a09c9852c43ff9118","typ":"JWT"}"#, id_claims, 1);
        let mut claims = id_claims.as_object().unwrap().clone();
        for protocol in ["nonce", "at_hash"] {
            claims.remove(protocol);
        }
        Session {
            id: "q3vJ6b3S0wq8m4Qn0v5J2iY7x1rT9e4L2kP6sD8fG0h".into(),
            provider: "oidc".into(),
            claims: Claims::from_value(serde_json::Value::Object(claims)).unwrap(),
            tokens: Tokens {
                access_token: Secret::new(access_token),
                refresh_token: Some(Secret::new(refresh_token)),
                id_token: Some(Secret::new(id_token)),
                expires_at: Some(1_800_003_600),
                received_ms: Some(1_800_000_000_123),
                scope: Some("openid email profile".into()),
                dpop_key: None,
            },
            created_at: 1_800_000_000,
            expires_at: 1_800_086_400,
        }
    }

    /// Security rules, Session: a typical OIDC login (ID token, access and refresh token, claims)
    /// fits in one cookie. Token sizes are those of real providers: Google's RS256 ID token
    /// (≈1.1 KB), opaque access token (≈220 chars) and refresh token (≈100 chars); Entra ID's ID
    /// token (≈1.4 KB), JWT access token (≈1.9 KB) and opaque refresh token (≈1.1 KB).
    #[test]
    fn realistic_sessions_fit_in_a_cookie() {
        let google_claims = serde_json::json!({
            "iss": "https://accounts.google.com", "azp": "1234987819200-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com",
            "aud": "1234987819200-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com", "sub": "110169484474386276334",
            "hd": "example.com", "email": "jane.doe@example.com", "email_verified": true, "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
            "nonce": "0394852-3190485-2490358-VXbsgfdkgjh45thgHTjh4", "name": "Jane Doe",
            "picture": "https://lh3.googleusercontent.com/a/ACg8ocJ1vB2xQ3yZ4-abcdEFGhijKLmnOPqrSTuvWXyz0123456789=s96-c",
            "given_name": "Jane", "family_name": "Doe", "iat": 1_800_000_000, "exp": 1_800_003_600
        });
        let access: String = format!("ya29.a0AfB_{}", URL_SAFE_NO_PAD.encode(random_bytes(160, 2)));
        let refresh: String = format!("1//0g{}", URL_SAFE_NO_PAD.encode(random_bytes(75, 3)));
        let google = realistic(&google_claims, access, refresh);
        let google_size = cookie_size(&google);

        let entra_claims = serde_json::json!({
            "aud": "6731de76-14a6-49ae-97bc-6eba6914391e", "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "iat": 1_800_000_000, "nbf": 1_800_000_000, "exp": 1_800_003_600, "name": "Jane Doe", "nonce": "12345-abcdef-67890",
            "oid": "00000000-0000-0000-66f3-3332eca7ea81", "preferred_username": "jane.doe@contoso.onmicrosoft.com",
            "email": "jane.doe@contoso.com", "rh": "0.AXoAdo3xgRwMa0e0a2Z-cVzvHnbeMWemFK5Jl7xuummUOR56AE4.",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
            "uti": "Vz6lKQ8wRkmD9IYcNUUYAA", "ver": "2.0", "sid": "00190d76-d1b0-43a4-5d5b-7a4fd6d9e5b9",
            "at_hash": "x7E2o6x0vzZ2tCmV4u1aCg"
        });
        let access_claims = serde_json::json!({
            "aud": "00000003-0000-0000-c000-000000000000", "iss": "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/",
            "iat": 1_800_000_000, "nbf": 1_800_000_000, "exp": 1_800_004_500, "acct": 0, "acr": "1",
            "aio": "AVQAq/8WAAAAnjE2u6OsT3yd0I9HOpcK8D4yHMoP2lDF9k+wt3sBDlCrC9hFyBl0Q7vnGZL5F6mPrQ8xXU7zfMxYk0aHw1DzLtG8jq4RYvsnJ1ZLF5r3E=",
            "amr": ["pwd", "mfa"], "app_displayname": "Contoso Portal", "appid": "6731de76-14a6-49ae-97bc-6eba6914391e", "appidacr": "1",
            "family_name": "Doe", "given_name": "Jane", "idtyp": "user", "ipaddr": "203.0.113.42", "name": "Jane Doe",
            "oid": "00000000-0000-0000-66f3-3332eca7ea81", "platf": "3", "puid": "10032001A8B9C0D1", "rh": "0.AXoAdo3xgRwMa0e0a2Z-cVzvHnbeMWemFK5Jl7xuummUOR56AE4.",
            "scp": "email openid profile User.Read", "signin_state": ["kmsi"], "sub": "Xk2Z1v3m4n5b6V7c8x9Z0a1s2d3f4g5h6j7k8l9q0w1e",
            "tenant_region_scope": "EU", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "unique_name": "jane.doe@contoso.onmicrosoft.com",
            "upn": "jane.doe@contoso.onmicrosoft.com", "uti": "Vz6lKQ8wRkmD9IYcNUUYAA", "ver": "1.0",
            "wids": ["b79fbf4d-3ef9-4689-8143-76b194e85509"], "xms_st": {"sub": "Q8j1Zl2v3b4n5m6X7c8v9b0n1m2q3w4e5r6t7y8u9i0"}, "xms_tcdt": 1_600_000_000
        });
        let access = jwt(
            r#"{"typ":"JWT","nonce":"vG2Jp5Kx9a8WqLmN3oP7rS4tU6vY1zB0cD2eF5gH8iJ","alg":"RS256","x5t":"XRvko8P7A3UaWSnU7bM9nT0MjhA","kid":"XRvko8P7A3UaWSnU7bM9nT0MjhA"}"#,
            &access_claims,
            4,
        );
        let refresh = format!(
            "0.AXoAdo3xgRwMa0e0a2Z-cVzvHnbeMWemFK5Jl7xuummUOR56AE4.AgABAwEAAAApTwJmzXqdR4BN2miheQMYAgDs_wUA9P{}",
            URL_SAFE_NO_PAD.encode(random_bytes(760, 5))
        );
        let entra = realistic(&entra_claims, access, refresh);
        let entra_size = cookie_size(&entra);

        let naive = |s: &Session| {
            let json = serde_json::to_vec(s).unwrap();
            "__Host-auth_session=".len() + (json.len() + 29).div_ceil(3) * 4
        };
        eprintln!(
            "cookie sizes: google {google_size} B (plain JSON would be {} B), entra {entra_size} B (plain JSON {} B)",
            naive(&google),
            naive(&entra)
        );
        assert!(google_size < 2600, "a Google login takes {google_size} bytes");
        assert!(entra_size < 4096, "an Entra ID login takes {entra_size} bytes");
        assert!(naive(&entra) > 4096, "the compact encoding is what makes Entra fit");
        // The block type (RFC 1951 3.2.3: bits 1-2 of the stream's first byte; 1 fixed, 2 own codes).
        let block_type = |s: &Session| encode(s).unwrap()[13] >> 1 & 3;
        assert_eq!(block_type(&google), 1, "a small session inflates with the fixed codes");
        assert_eq!(block_type(&entra), 2, "a session near the limit gets the smallest encoding");

        // How many such sessions the decoded-session cache holds, as a miss decodes them (claims
        // unparsed, weighed by what they could parse into).
        let cached = |s: &Session, cookie: usize| {
            let decoded = decode(&encode(s).unwrap()).unwrap();
            let weight = crate::state::weight(&"c".repeat(cookie), &decoded, &decoded.revocation_keys());
            crate::auth::SESSION_CACHE_BYTES / weight
        };
        let (google_cached, entra_cached) = (cached(&google, google_size), cached(&entra, entra_size));
        eprintln!("decoded-session cache: {google_cached} Google sessions, {entra_cached} Entra ID sessions");
        assert!(google_cached >= 4_000, "{google_cached} Google sessions");
        assert!(entra_cached >= 2_000, "{entra_cached} Entra ID sessions");
    }
}
