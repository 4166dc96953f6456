//! What the fuzz targets (`fuzz/`, run by `cargo xtask fuzz`) found, each kept as a test that
//! failed before its fix. The inputs are the targets' crash artifacts, minimized.
#![allow(clippy::unwrap_used)]

/// A provider that answers each path with a fixed JSON body, exactly as given (HTTP/1.1 on a free
/// loopback port, one connection per request); `routes` gets the provider's base URL.
async fn provider(routes: impl Fn(&str) -> Vec<(&'static str, Vec<u8>)>) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes = routes(&base);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or_default();
                let path = target.split('?').next().unwrap_or_default();
                let body = routes.iter().find(|(p, _)| *p == path).map_or(&b"{}"[..], |(_, b)| b.as_slice());
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut request_body = vec![0u8; length];
                let _ = conn.read_exact(&mut request_body).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&[head.as_bytes(), body].concat()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    base
}

fn builder() -> auth_core::AuthBuilder {
    auth_core::Auth::builder()
        .base_url("http://127.0.0.1:3000")
        .session_keys(auth_core::KeyRing::new(auth_core::SessionKey::generate()))
}

/// `discovery` target: a metadata document that is a JSON array, not an object, was read field by
/// field in order (as serde reads a derived struct from a sequence) and accepted.
#[tokio::test]
async fn discovery_refuses_metadata_that_is_no_json_object() {
    let base = provider(|base| {
        let array = format!(r#"["{base}","{base}/authorize","{base}/token",null,"{base}/jwks"]"#);
        vec![("/.well-known/openid-configuration", array.into_bytes())]
    })
    .await;
    let built = builder().provider(auth_core::Provider::oidc("op", &base, "app")).build().await;
    let err = built.expect_err("metadata that is an array is refused");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
}

/// `token_response` target: a token response that is a JSON array (`["aEx"]`) was read as tokens
/// (its first element the access token) and the login finished.
#[tokio::test]
async fn a_token_response_that_is_no_json_object_is_refused() {
    use auth_core::{Method, RequestView};
    let base = provider(|_| vec![("/token", br#"["aEx"]"#.to_vec()), ("/userinfo", br#"{"id":"u1"}"#.to_vec())]).await;
    let plain = auth_core::Provider::oauth2(
        "plain",
        format!("{base}/authorize"),
        format!("{base}/token"),
        format!("{base}/userinfo"),
        "app",
    );
    let auth = builder().provider(plain).build().await.unwrap();
    let login = auth.handle(&RequestView::new(Method::Get, "/auth/plain/login", None), b"").await;
    let location = url::Url::parse(login.header("location").unwrap()).unwrap();
    let state = location.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let query = format!("code=c0de&state={state}");
    let req = RequestView::new(Method::Get, "/auth/plain/callback", Some(&query)).with_header("cookie", &cookie);
    let done = auth.complete_login("plain", &req, b"").await;
    match done.outcome {
        Err(auth_core::Error::Provider { endpoint: "token", reason, .. }) => {
            assert!(reason.contains("not valid"), "{reason}");
        }
        other => panic!("a token response that is an array: {other:?}"),
    }
}

/// `discovery` target: invalid UTF-8 in a member discovery does not read (serde skips such
/// strings unchecked) passed, so a document that is no JSON was accepted.
#[tokio::test]
async fn discovery_refuses_metadata_that_is_not_utf8() {
    let base = provider(|base| {
        let doc = format!(
            r#"{{"issuer":"{base}","authorization_endpoint":"{base}/auth","token_endpoint":"{base}/token","jwks_uri":"{base}/jwks","grant_types_supported":["client_?credentials"]}}"#
        );
        let doc = doc.into_bytes().into_iter().map(|b| if b == b'?' { 0xeb } else { b }).collect();
        vec![("/.well-known/openid-configuration", doc), ("/jwks", br#"{"keys":[]}"#.to_vec())]
    })
    .await;
    let built = builder().provider(auth_core::Provider::oidc("op", &base, "app")).build().await;
    let err = built.expect_err("metadata that is not UTF-8 is refused");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

/// `discovery` target: a configured issuer without a trailing slash accepted metadata naming it
/// with one. The slash may only differ for an issuer derived from a metadata URL (Discovery §4
/// drops it there, Auth0); a configured issuer must match exactly (Discovery §4.3), and the start
/// says which slash to add, as the guide's Auth0 page promises.
#[tokio::test]
async fn a_configured_issuer_must_match_the_metadata_s_slash_too() {
    let base = provider(|base| {
        let doc = format!(
            r#"{{"issuer":"{base}/","authorization_endpoint":"{base}/auth","token_endpoint":"{base}/token","jwks_uri":"{base}/jwks"}}"#
        );
        vec![("/.well-known/openid-configuration", doc.into_bytes())]
    })
    .await;
    let built = builder().provider(auth_core::Provider::oidc("op", &base, "app")).build().await;
    let err = built.expect_err("the configured issuer lacks the metadata's slash");
    assert!(err.to_string().contains("add the trailing slash"), "{err}");
    // Known by its metadata URL only, the issuer may carry the slash the URL dropped.
    let url = format!("{base}/.well-known/openid-configuration");
    let derived = auth_core::Provider::oidc("op", "", "app").with_server_metadata_url(url);
    builder().provider(derived).build().await.unwrap();
}
