//! The compact encoding of a session for the cookie store.
//!
//! Written by hand because no crate does this: browsers keep at most 4096 bytes per cookie, and a
//! plain JSON session with an ID token, a JWT access token and a refresh token easily passes that
//! once encrypted and base64-encoded. So:
//! - a JWT is stored as its decoded header and payload (JSON text) plus its raw signature bytes,
//!   which removes a layer of base64 and lets the compressor see that the ID token's payload repeats
//!   the claims;
//! - everything that is not random (ids, claims, JWT headers and payloads) is deflate-compressed;
//! - random material (signatures, opaque tokens) stays out of the compressed part, so a length
//!   side channel over compression (CRIME-style) cannot reveal it.
//!
//! Layout before encryption: `version u8 | json_len u32 BE | deflate(json) | (len u16 BE | bytes)*`.

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::session::{Claims, Secret, Session, Tokens};

const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
enum Tok {
    /// A compact JWS: header and payload JSON text; the signature is the next secret.
    #[serde(rename = "j")]
    Jws(String, String),
    /// Anything else: the whole token is the next secret.
    #[serde(rename = "o")]
    Opaque,
}

#[derive(Serialize, Deserialize)]
struct Doc {
    i: String,
    p: String,
    c: Claims,
    a: u64,
    e: u64,
    x: Option<u64>,
    s: Option<String>,
    at: Tok,
    rt: Option<Tok>,
    it: Option<Tok>,
}

fn split_token(token: &str, secrets: &mut Vec<Vec<u8>>) -> Tok {
    let parts: Vec<&str> = token.split('.').collect();
    if let [h, p, s] = parts[..] {
        let canonical = |part: &str| URL_SAFE_NO_PAD.decode(part).ok().filter(|b| URL_SAFE_NO_PAD.encode(b) == part);
        if let (Some(h), Some(p), Some(s)) = (canonical(h), canonical(p), canonical(s)) {
            if let (Ok(h), Ok(p)) = (String::from_utf8(h), String::from_utf8(p)) {
                secrets.push(s);
                return Tok::Jws(h, p);
            }
        }
    }
    secrets.push(token.as_bytes().to_vec());
    Tok::Opaque
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
    let t = &session.tokens;
    let doc = Doc {
        i: session.id.clone(),
        p: session.provider.clone(),
        c: session.claims.clone(),
        a: session.created_at,
        e: session.expires_at,
        x: t.expires_at,
        s: t.scope.clone(),
        at: split_token(t.access_token.secret(), &mut secrets),
        rt: t.refresh_token.as_ref().map(|r| split_token(r.secret(), &mut secrets)),
        it: t.id_token.as_ref().map(|r| split_token(r.secret(), &mut secrets)),
    };
    let json = serde_json::to_vec(&doc).map_err(|_| Error::Internal("session serialization"))?;
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflater.write_all(&json).map_err(|_| Error::Internal("session compression"))?;
    let compressed = deflater.finish().map_err(|_| Error::Internal("session compression"))?;
    let mut out = Vec::with_capacity(5 + compressed.len() + secrets.iter().map(|s| s.len() + 2).sum::<usize>());
    out.push(VERSION);
    out.extend_from_slice(
        &u32::try_from(compressed.len()).map_err(|_| Error::Internal("session too large"))?.to_be_bytes(),
    );
    out.extend_from_slice(&compressed);
    for secret in secrets {
        out.extend_from_slice(
            &u16::try_from(secret.len()).map_err(|_| Error::Internal("token too large"))?.to_be_bytes(),
        );
        out.extend_from_slice(&secret);
    }
    Ok(out)
}

/// Decodes a session; `None` for anything malformed (only our own sealed bytes get here).
pub(crate) fn decode(bytes: &[u8]) -> Option<Session> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION || rest.len() < 4 {
        return None;
    }
    let (len, rest) = rest.split_at(4);
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    if rest.len() < len {
        return None;
    }
    let (compressed, mut rest) = rest.split_at(len);
    // Bounded inflation: a session never inflates past 64 KiB.
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(compressed).take(64 * 1024).read_to_end(&mut json).ok()?;
    let doc: Doc = serde_json::from_slice(&json).ok()?;
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
        tokens: Tokens { access_token, refresh_token, id_token, expires_at: doc.x, scope: doc.s },
        created_at: doc.a,
        expires_at: doc.e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                scope: Some("openid".into()),
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
        for s in [session("opaque-token", None), session(&jwt, Some(&jwt)), session("a.b.c", Some("x.=.y"))] {
            let bytes = encode(&s).unwrap();
            assert_eq!(decode(&bytes), Some(s));
        }
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[1, 0, 0, 0, 9, 1, 2]), None);
        let mut bytes = encode(&session("x", None)).unwrap();
        bytes.truncate(bytes.len() - 1);
        assert_eq!(decode(&bytes), None);
    }
}
