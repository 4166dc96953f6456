//! The provider's happy paths and the refusals a strict provider owes its clients.

mod common;

use auth_testkit::{ClientAuthMethod, TestClient, TestProvider, TestUser};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn discovery_document() {
    let op = TestProvider::start().await.expect("start");
    assert!(op.issuer().starts_with("http://127.0.0.1:"));
    assert!(!op.issuer().ends_with('/'));
    let doc = json(http().get(op.discovery_url()).send().await.expect("get")).await;
    let iss = op.issuer();
    assert_eq!(doc["issuer"], iss);
    for (member, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/end_session"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(doc[member], format!("{iss}{path}"), "{member}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    assert!(doc["subject_types_supported"].is_array());
    assert!(doc["scopes_supported"].is_array());
    assert!(doc["claims_supported"].is_array());
    let methods = doc["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("client_secret_basic") && methods.contains("client_secret_post"));
    assert_eq!(op.discovery_requests(), 1);

    let op = TestProvider::builder().iss_parameter(false).start().await.expect("start");
    let doc = json(http().get(op.discovery_url()).send().await.expect("get")).await;
    assert_eq!(doc["authorization_response_iss_parameter_supported"], false);
    let callback = authorize(&op, &pkce(), &[]).await;
    assert_eq!(param(&callback, "iss"), None);
}

#[tokio::test]
async fn code_flow_with_pkce_and_a_verified_id_token() {
    let op = TestProvider::start().await.expect("start");
    let pkce = pkce();
    let callback = authorize(&op, &pkce, &[("max_age", "300"), ("prompt", "login")]).await;
    assert_eq!(callback.as_str().split('?').next(), Some(REDIRECT_URI));
    assert_eq!(param(&callback, "state").as_deref(), Some("state-1"));
    assert_eq!(param(&callback, "iss").as_deref(), Some(op.issuer()));
    let code = param(&callback, "code").expect("code");

    let sent = op.last_authorize_params().expect("recorded");
    assert!(sent.contains(&("code_challenge".into(), pkce.challenge.clone())));
    assert_eq!(op.last_authorize_param("prompt").as_deref(), Some("login"));

    let response = exchange(&op, &code, &pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens = json(response).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "openid email profile");
    let access_token = tokens["access_token"].as_str().expect("access_token");
    assert!(tokens["refresh_token"].is_string());

    let id_token = tokens["id_token"].as_str().expect("id_token");
    let claims = verify(&op, id_token).await.expect("valid ID token");
    assert_eq!(claims["iss"], op.issuer());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "test-client");
    assert_eq!(claims["azp"], "test-client");
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["email"], "alice@example.test");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["at_hash"], at_hash(access_token));
    assert_eq!(claims["sid"].as_str(), op.last_sid().as_deref());
    assert!(claims["auth_time"].as_u64().is_some());
    assert_eq!(header(id_token)["kid"], op.kid());

    let userinfo =
        http().get(format!("{}/userinfo", op.issuer())).bearer_auth(access_token).send().await.expect("userinfo");
    assert_eq!(userinfo.status(), StatusCode::OK);
    let userinfo = json(userinfo).await;
    assert_eq!(userinfo["sub"], "alice");
    assert_eq!(userinfo["email"], "alice@example.test");
    assert_eq!(op.token_requests(), 1);
    assert_eq!(op.authorize_requests(), 1);
    assert_eq!(op.userinfo_requests(), 1);
}

#[tokio::test]
async fn claims_follow_scope_and_user() {
    let op = TestProvider::start().await.expect("start");
    op.set_user(TestUser::new("bob").with_picture("http://127.0.0.1/bob.png").with_claim("groups", json!(["admins"])));
    let first = pkce();
    let callback = authorize(&op, &first, &[("scope", "openid")]).await;
    let code = param(&callback, "code").expect("code");
    let tokens = json(exchange(&op, &code, &first.verifier).await).await;
    let claims = verify(&op, tokens["id_token"].as_str().expect("id_token")).await.expect("valid");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["groups"], json!(["admins"]));
    assert!(claims.get("email").is_none(), "no email scope, no email claim");
    assert!(claims.get("picture").is_none());

    // Without `openid` it is plain OAuth 2.0: no ID token.
    let second = pkce();
    let callback = authorize(&op, &second, &[("scope", "profile")]).await;
    let code = param(&callback, "code").expect("code");
    let tokens = json(exchange(&op, &code, &second.verifier).await).await;
    assert!(tokens.get("id_token").is_none());
    let userinfo = json(
        http()
            .get(format!("{}/userinfo", op.issuer()))
            .bearer_auth(tokens["access_token"].as_str().expect("at"))
            .send()
            .await
            .expect("userinfo"),
    )
    .await;
    assert_eq!(userinfo["picture"], "http://127.0.0.1/bob.png");
}

#[tokio::test]
async fn login_hint_picks_a_listed_user() {
    let op = TestProvider::builder()
        .users(vec![TestUser::new("carol"), TestUser::new("dave")])
        .start()
        .await
        .expect("start");
    let pkce = pkce();
    let callback = authorize(&op, &pkce, &[("login_hint", "dave@example.test")]).await;
    let code = param(&callback, "code").expect("code");
    let tokens = json(exchange(&op, &code, &pkce.verifier).await).await;
    assert_eq!(claims(tokens["id_token"].as_str().expect("id"))["sub"], "dave");
}

#[tokio::test]
async fn code_is_single_use_and_replay_revokes_its_tokens() {
    let op = TestProvider::start().await.expect("start");
    let (code, pkce) = code(&op).await;
    let first = exchange(&op, &code, &pkce.verifier).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tokens = json(first).await;
    let second = exchange(&op, &code, &pkce.verifier).await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(second).await["error"], "invalid_grant");
    assert!(op.is_revoked(tokens["access_token"].as_str().expect("at")));
    assert!(op.is_revoked(tokens["refresh_token"].as_str().expect("rt")));
}

#[tokio::test]
async fn pkce_mismatch_is_refused() {
    let op = TestProvider::start().await.expect("start");
    let (code, _) = code(&op).await;
    let other = pkce();
    let response = exchange(&op, &code, &other.verifier).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_grant");

    // A malformed verifier (too short) is an invalid request.
    let (code, _) = common::code(&op).await;
    let response = exchange(&op, &code, "short").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_request");
}

#[tokio::test]
async fn authorization_requests_without_pkce_s256_are_refused() {
    let op = TestProvider::start().await.expect("start");
    let pkce = pkce();
    for overrides in [
        &[("code_challenge", "")][..],
        &[("code_challenge_method", "")],
        &[("code_challenge_method", "plain")],
        &[("code_challenge", "too-short")],
    ] {
        let callback = authorize(&op, &pkce, overrides).await;
        assert_eq!(param(&callback, "error").as_deref(), Some("invalid_request"), "{overrides:?}");
        assert_eq!(param(&callback, "state").as_deref(), Some("state-1"));
        assert_eq!(param(&callback, "iss").as_deref(), Some(op.issuer()));
        assert_eq!(param(&callback, "code"), None);
    }
    let callback = authorize(&op, &pkce, &[("response_type", "token")]).await;
    assert_eq!(param(&callback, "error").as_deref(), Some("unsupported_response_type"));
}

#[tokio::test]
async fn bad_client_or_redirect_uri_is_a_400_not_a_redirect() {
    let op = TestProvider::builder()
        .client(TestClient::new("strict", "s").with_redirect_uri("http://127.0.0.1:7/cb"))
        .start()
        .await
        .expect("start");
    let pkce = pkce();
    for overrides in [
        &[("client_id", "nobody")][..],
        &[("client_id", "")],
        &[("redirect_uri", "https://evil.example/cb")],
        &[("redirect_uri", "")],
        &[("redirect_uri", "not a url")],
        &[("client_id", "strict")], // REDIRECT_URI is not registered for it
        &[("client_id", "strict"), ("redirect_uri", "http://127.0.0.1:7/cb/extra")],
    ] {
        let response = http().get(authorize_url(&op, &pkce, overrides)).send().await.expect("authorize");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{overrides:?}");
        assert!(json(response).await["error"].is_string());
    }
    let callback = authorize(&op, &pkce, &[("client_id", "strict"), ("redirect_uri", "http://127.0.0.1:7/cb")]).await;
    assert!(param(&callback, "code").is_some());
}

#[tokio::test]
async fn redirect_uri_must_match_at_the_token_endpoint() {
    let op = TestProvider::start().await.expect("start");
    let (code, pkce) = code(&op).await;
    let response = http()
        .post(format!("{}/token", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["error"], "invalid_grant");
}

#[tokio::test]
async fn client_authentication_is_enforced() {
    let op = TestProvider::builder()
        .client(TestClient::new("poster", "p-secret").with_auth_method(ClientAuthMethod::SecretPost))
        .client(TestClient::public("spa"))
        .start()
        .await
        .expect("start");
    let token_url = format!("{}/token", op.issuer());

    // Wrong secret with Basic: 401 and a Basic challenge.
    let (code, pkce) = code(&op).await;
    let response = http()
        .post(&token_url)
        .basic_auth(op.client_id(), Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().expect("ascii").starts_with("Basic"));
    assert_eq!(json(response).await["error"], "invalid_client");
    // The code was not burnt by a failed client authentication.
    assert_eq!(exchange(&op, &code, &pkce.verifier).await.status(), StatusCode::OK);

    // A basic client sending its secret in the body is refused.
    let (code, pkce) = common::code(&op).await;
    let response = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
            ("client_id", op.client_id()),
            ("client_secret", op.client_secret()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // client_secret_post works for the client registered so.
    let pkce = common::pkce();
    let callback = authorize(&op, &pkce, &[("client_id", "poster")]).await;
    let code = param(&callback, "code").expect("code");
    let response = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
            ("client_id", "poster"),
            ("client_secret", "p-secret"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
    let id_token = json(response).await["id_token"].as_str().expect("id").to_owned();
    assert_eq!(claims(&id_token)["aud"], "poster");

    // A public client sends its id only.
    let pkce = common::pkce();
    let callback = authorize(&op, &pkce, &[("client_id", "spa")]).await;
    let code = param(&callback, "code").expect("code");
    let response = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
            ("client_id", "spa"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);

    // No authentication at all.
    let response = http()
        .post(&token_url)
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded() {
    let op = TestProvider::builder().client(TestClient::new("odd:id", "p@ss word+%")).start().await.expect("start");
    let pkce = pkce();
    let callback = authorize(&op, &pkce, &[("client_id", "odd:id")]).await;
    let code = param(&callback, "code").expect("code");
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let response = http()
        .post(format!("{}/token", op.issuer()))
        .basic_auth(encode("odd:id"), Some(encode("p@ss word+%")))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let op = TestProvider::start().await.expect("start");
    let first = tokens(&op).await;
    let old = first["refresh_token"].as_str().expect("rt");
    let old_claims = claims(first["id_token"].as_str().expect("id"));

    let response = refresh(&op, old).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = json(response).await;
    let new = second["refresh_token"].as_str().expect("new rt");
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    let id_token = second["id_token"].as_str().expect("id_token");
    let new_claims = verify(&op, id_token).await.expect("valid");
    for claim in ["iss", "sub", "aud", "auth_time", "sid"] {
        assert_eq!(new_claims[claim], old_claims[claim], "{claim}");
    }
    assert!(new_claims.get("nonce").is_none());
    assert_eq!(new_claims["at_hash"], at_hash(second["access_token"].as_str().expect("at")));

    let reused = refresh(&op, old).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(reused).await["error"], "invalid_grant");
    assert_eq!(refresh(&op, new).await.status(), StatusCode::OK);

    // Narrowing the scope is allowed; widening is not.
    let third = tokens(&op).await;
    let rt = third["refresh_token"].as_str().expect("rt");
    let response = http()
        .post(format!("{}/token", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt), ("scope", "openid admin")])
        .send()
        .await
        .expect("refresh");
    assert_eq!(json(response).await["error"], "invalid_scope");
}

#[tokio::test]
async fn userinfo_rejects_bad_tokens() {
    let op = TestProvider::start().await.expect("start");
    let url = format!("{}/userinfo", op.issuer());
    let response = http().get(&url).send().await.expect("userinfo");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().expect("ascii").starts_with("Bearer"));

    let response = http().get(&url).bearer_auth("nope").send().await.expect("userinfo");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let minted = op.mint_access_token("openid email");
    let response = http().get(&url).bearer_auth(&minted).send().await.expect("userinfo");
    assert_eq!(json(response).await["email"], "alice@example.test");
}

#[tokio::test]
async fn revocation_and_introspection() {
    let op = TestProvider::start().await.expect("start");
    let tokens = tokens(&op).await;
    let at = tokens["access_token"].as_str().expect("at");
    let introspect = |token: String| {
        let op = op.clone();
        async move {
            json(
                http()
                    .post(format!("{}/introspect", op.issuer()))
                    .basic_auth(op.client_id(), Some(op.client_secret()))
                    .form(&[("token", token)])
                    .send()
                    .await
                    .expect("introspect"),
            )
            .await
        }
    };
    let active = introspect(at.to_owned()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], "alice");

    let response = http()
        .post(format!("{}/revoke", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[("token", at), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(op.revoke_requests(), 1);
    assert!(op.is_revoked(at));
    assert_eq!(introspect(at.to_owned()).await["active"], false);

    // Unknown tokens are fine (RFC 7009 §2.2); a wrong secret is not.
    let response = http()
        .post(format!("{}/revoke", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(&[("token", "unknown")])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    let response = http()
        .post(format!("{}/revoke", op.issuer()))
        .basic_auth(op.client_id(), Some("wrong"))
        .form(&[("token", "unknown")])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn end_session_redirects_only_to_allowed_uris() {
    let op = TestProvider::builder()
        .client(TestClient::new("registered", "s").with_post_logout_redirect_uri("http://127.0.0.1:7/bye"))
        .start()
        .await
        .expect("start");
    let id_token = tokens(&op).await["id_token"].as_str().expect("id").to_owned();
    let url = format!("{}/end_session", op.issuer());

    let response = http()
        .get(&url)
        .query(&[
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", "http://localhost:3000/"),
            ("state", "st"),
        ])
        .send()
        .await
        .expect("end_session");
    assert_eq!(location(&response).as_str(), "http://localhost:3000/?state=st");
    assert_eq!(op.end_session_requests(), 1);
    assert!(op.last_end_session_params().expect("recorded").iter().any(|(k, _)| k == "id_token_hint"));

    let response = http()
        .get(&url)
        .query(&[("client_id", op.client_id()), ("post_logout_redirect_uri", "https://evil.example/")])
        .send()
        .await
        .expect("end_session");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let response = http()
        .get(&url)
        .query(&[("client_id", "registered"), ("post_logout_redirect_uri", "http://127.0.0.1:3000/")])
        .send()
        .await
        .expect("end_session");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "not in the registered list");

    let response = http()
        .post(&url)
        .form(&[("client_id", "registered"), ("post_logout_redirect_uri", "http://127.0.0.1:7/bye")])
        .send()
        .await
        .expect("end_session");
    assert_eq!(location(&response).as_str(), "http://127.0.0.1:7/bye");

    let response = http().get(&url).send().await.expect("end_session");
    assert_eq!(response.status(), StatusCode::OK, "no redirect: a signed-out page");
    assert_eq!(op.end_session_requests(), 5);
}

#[tokio::test]
async fn garbage_input_gets_oauth_errors_not_panics() {
    let op = TestProvider::start().await.expect("start");
    let token_url = format!("{}/token", op.issuer());
    let cases: Vec<reqwest::RequestBuilder> = vec![
        http().post(&token_url).body("not a form"),
        http().post(&token_url).header("content-type", "application/json").body("{}"),
        http().post(&token_url).header("authorization", "Basic !!!").form(&[("grant_type", "x")]),
        http().post(&token_url).header("authorization", "Basic dGVzdA==").form(&[("grant_type", "x")]),
        http()
            .post(&token_url)
            .basic_auth(op.client_id(), Some(op.client_secret()))
            .form(&[("grant_type", "password")]),
        http().post(&token_url).basic_auth(op.client_id(), Some(op.client_secret())).form(&[
            ("grant_type", "authorization_code"),
            ("code", "a"),
            ("code", "b"),
        ]),
        http()
            .post(&token_url)
            .basic_auth(op.client_id(), Some(op.client_secret()))
            .form(&[("grant_type", "authorization_code"), ("code", "nope")]),
        http().get(format!("{}/authorize?%%%", op.issuer())),
        http().get(format!("{}/end_session?id_token_hint=a.b.c", op.issuer())),
        http().post(format!("{}/revoke", op.issuer())).body("\u{0}\u{1}"),
    ];
    for request in cases {
        let response = request.send().await.expect("response");
        let status = response.status();
        assert!(status.is_client_error(), "{status}");
        let body = json(response).await;
        assert!(body["error"].is_string(), "{body}");
    }
    let response = http().get(format!("{}/nowhere", op.issuer())).send().await.expect("404");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn form_post_response_mode() {
    let op = TestProvider::start().await.expect("start");
    let pkce = pkce();
    let response =
        http().get(authorize_url(&op, &pkce, &[("response_mode", "form_post")])).send().await.expect("authorize");
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let page = response.text().await.expect("page");
    assert!(page.contains(&format!("action=\"{REDIRECT_URI}\"")));
    assert!(page.contains("name=\"code\""));
    assert!(page.contains("name=\"state\" value=\"state-1\""));
}

#[tokio::test]
async fn builder_rejects_invalid_configuration() {
    let twice =
        TestProvider::builder().client(TestClient::new("a", "s")).client(TestClient::new("a", "t")).start().await;
    assert_eq!(twice.expect_err("duplicate").kind(), std::io::ErrorKind::InvalidInput);
    let secretless = TestProvider::builder()
        .client(TestClient::public("p").with_auth_method(ClientAuthMethod::SecretBasic))
        .start()
        .await;
    assert!(secretless.is_err());
}

#[tokio::test]
async fn the_server_stops_with_the_last_handle() {
    let op = TestProvider::start().await.expect("start");
    let jwks = format!("{}/jwks", op.issuer());
    let clone = op.clone();
    drop(op);
    assert_eq!(http().get(&jwks).send().await.expect("still up").status(), StatusCode::OK);
    drop(clone);
    let mut refused = false;
    for _ in 0..50 {
        // A fresh client: no pooled connection to reuse.
        if http().get(&jwks).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "the server should stop");

    let op = TestProvider::start().await.expect("start");
    let jwks = format!("{}/jwks", op.issuer());
    op.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(http().get(&jwks).send().await.is_err());
}
