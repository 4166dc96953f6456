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
/// The most JSON a session may inflate to: the encoder refuses more, the decoder reads no more.
pub(crate) const MAX_SESSION_JSON: usize = 64 * 1024;

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
    /// `received_ms`, absent from sessions sealed before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
    s: Option<String>,
    at: Tok,
    rt: Option<Tok>,
    it: Option<Tok>,
}

fn split_token(token: &str, secrets: &mut Vec<Vec<u8>>) -> Tok {
    let parts: Vec<&str> = token.split('.').collect();
    if let [h, p, s] = parts[..] {
        let canonical = |part: &str| URL_SAFE_NO_PAD.decode(part).ok().filter(|b| URL_SAFE_NO_PAD.encode(b) == part);
        if let (Some(h), Some(p), Some(s)) = (canonical(h), canonical(p), canonical(s))
            && let (Ok(h), Ok(p)) = (String::from_utf8(h), String::from_utf8(p))
        {
            secrets.push(s);
            return Tok::Jws(h, p);
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
        n: t.received_ms,
        s: t.scope.clone(),
        at: split_token(t.access_token.secret(), &mut secrets),
        rt: t.refresh_token.as_ref().map(|r| split_token(r.secret(), &mut secrets)),
        it: t.id_token.as_ref().map(|r| split_token(r.secret(), &mut secrets)),
    };
    let json = serde_json::to_vec(&doc).map_err(|_| Error::Internal("session serialization"))?;
    // A session that compresses into a cookie but inflates past what the decoder reads would be
    // stored and then never read back: refuse it here, at login.
    if json.len() > MAX_SESSION_JSON {
        return Err(Error::SessionTooLarge { size: json.len(), limit: MAX_SESSION_JSON });
    }
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

/// Inflates a session's JSON, bounded: never past [`MAX_SESSION_JSON`] (`None` beyond it, or for
/// data that is not a deflate stream). One byte more than the bound is read, to tell a session at
/// the bound from a longer one.
fn inflate(compressed: &[u8]) -> Option<Vec<u8>> {
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(compressed).take(MAX_SESSION_JSON as u64 + 1).read_to_end(&mut json).ok()?;
    (json.len() <= MAX_SESSION_JSON).then_some(json)
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
    let json = inflate(compressed)?;
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
        tokens: Tokens { access_token, refresh_token, id_token, expires_at: doc.x, received_ms: doc.n, scope: doc.s },
        created_at: doc.a,
        expires_at: doc.e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
