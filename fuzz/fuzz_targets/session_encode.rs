//! The session encoder: any session (ids, claims, opaque tokens and JWT-shaped ones) encodes to
//! bytes that decode to the same session, or is refused as too large; the decoded claims give
//! the same `sub`, `iss` and `sid` before they are parsed, and the same claims once they are.
#![no_main]

use auth_core::Error;
use auth_core::fuzzing::{SessionParts, decode_session, encode_session, revocation_keys, session};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// A token: opaque text, or a compact JWS of arbitrary header, payload and signature bytes.
fn token(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(if u.arbitrary()? {
        let (h, p, s): (String, String, Vec<u8>) = u.arbitrary()?;
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p), URL_SAFE_NO_PAD.encode(s))
    } else {
        u.arbitrary()?
    })
}

fn parts(u: &mut Unstructured<'_>) -> Result<SessionParts> {
    let claims_text: String = u.arbitrary()?;
    let mut claims = match serde_json::from_str(&claims_text) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => {
            let pairs: Vec<(String, String)> = u.arbitrary()?;
            pairs.into_iter().map(|(k, v)| (k, v.into())).collect()
        }
    };
    // Mostly a subject (a session is made only of claims with one), sometimes whatever came.
    if u.ratio(7, 8)? {
        let sub: String = u.arbitrary()?;
        claims.insert("sub".into(), format!("u{sub}").into());
    }
    Ok(SessionParts {
        id: u.arbitrary()?,
        provider: u.arbitrary()?,
        claims,
        access_token: token(u)?,
        refresh_token: if u.arbitrary()? { Some(token(u)?) } else { None },
        id_token: if u.arbitrary()? { Some(token(u)?) } else { None },
        expires_at: u.arbitrary()?,
        received_ms: u.arbitrary()?,
        scope: u.arbitrary()?,
        created_at: u.arbitrary()?,
        session_expires_at: u.arbitrary()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(parts) = parts(&mut Unstructured::new(data)) else { return };
    let Some(s) = session(parts) else { return };
    match encode_session(&s) {
        Ok(bytes) => {
            let decoded = decode_session(&bytes).expect("an encoded session decodes");
            // Before anything parses the decoded claims: their sub, iss and sid.
            assert_eq!(revocation_keys(&decoded), revocation_keys(&s), "the same logout keys, unparsed");
            assert_eq!(decoded, s, "an encoded session decodes equal");
        }
        Err(Error::SessionTooLarge { .. }) => {}
        // A token longer than the encoding's 16-bit length prefix.
        Err(Error::Internal("token too large")) => {}
        Err(err) => panic!("a session does not encode: {err}"),
    }
});
