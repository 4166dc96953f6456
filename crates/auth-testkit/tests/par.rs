//! RFC 9126 pushed authorization requests: `/par`, `/authorize?request_uri=…`, required PAR and
//! the endpoint-down fault.

mod common;

use auth_testkit::{Fault, TestClient, TestClientKey, TestProvider, TestUser};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The authorization request parameters of `authorize_url`, with `overrides`.
fn request_params(op: &TestProvider, pkce: &Pkce, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let url = authorize_url(op, pkce, overrides);
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Pushes the request with the default client's Basic credentials.
async fn push(op: &TestProvider, params: &[(String, String)]) -> reqwest::Response {
    http()
        .post(format!("{}/par", op.issuer()))
        .basic_auth(op.client_id(), Some(op.client_secret()))
        .form(params)
        .send()
        .await
        .expect("par")
}

async fn pushed_uri(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json(response).await;
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().expect("request_uri").to_owned();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{uri}");
    uri
}

async fn authorize_with(op: &TestProvider, query: &[(&str, &str)]) -> reqwest::Response {
    http().get(format!("{}/authorize", op.issuer())).query(query).send().await.expect("authorize")
}

async fn error_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers().get("location").is_none(), "no redirect");
    json(response).await
}

#[tokio::test]
async fn pushed_request_then_authorize_and_token() {
    let op = TestProvider::start().await.expect("start");
    let pkce = pkce();
    let uri = pushed_uri(push(&op, &request_params(&op, &pkce, &[("state", "pushed-state")])).await).await;
    assert_eq!(op.par_requests(), 1);
    assert_eq!(op.last_par_param("state").as_deref(), Some("pushed-state"));

    // Parameters beside client_id and request_uri are ignored (RFC 9126 §4).
    let response = authorize_with(
        &op,
        &[("client_id", op.client_id()), ("request_uri", &uri), ("state", "ignored"), ("redirect_uri", "bogus")],
    )
    .await;
    let callback = location(&response);
    assert!(callback.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&callback, "state").as_deref(), Some("pushed-state"));
    let code = param(&callback, "code").expect("code");
    let tokens = json(exchange(&op, &code, &pkce.verifier).await).await;
    assert_eq!(claims(tokens["id_token"].as_str().expect("id_token"))["nonce"], "nonce-1");

    // One use only.
    let reused = authorize_with(&op, &[("client_id", op.client_id()), ("request_uri", &uri)]).await;
    assert_eq!(error_of(reused, StatusCode::BAD_REQUEST).await["error"], "invalid_request_uri");
}

#[tokio::test]
async fn pushed_request_reaches_the_dev_login_page() {
    let op = TestProvider::builder().dev_mode(true).user(TestUser::new("carol")).start().await.expect("start");
    let pkce = pkce();
    let uri = pushed_uri(push(&op, &request_params(&op, &pkce, &[])).await).await;
    let page = authorize_with(&op, &[("client_id", op.client_id()), ("request_uri", &uri)]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("Sign in to <code>test-client</code>"), "{html}");
    assert!(html.contains("carol"));
}

#[tokio::test]
async fn request_uri_checks() {
    let op = TestProvider::builder().client(TestClient::public("spa")).start().await.expect("start");
    let pkce = pkce();
    let uri = pushed_uri(push(&op, &request_params(&op, &pkce, &[])).await).await;

    // Another client's request_uri, a missing client_id, an unknown request_uri.
    let other = authorize_with(&op, &[("client_id", "spa"), ("request_uri", &uri)]).await;
    assert_eq!(error_of(other, StatusCode::BAD_REQUEST).await["error"], "invalid_request_uri");
    let anonymous = authorize_with(&op, &[("request_uri", &uri)]).await;
    assert_eq!(error_of(anonymous, StatusCode::BAD_REQUEST).await["error"], "invalid_request");
    let unknown = authorize_with(
        &op,
        &[("client_id", op.client_id()), ("request_uri", "urn:ietf:params:oauth:request_uri:nope")],
    )
    .await;
    assert_eq!(error_of(unknown, StatusCode::BAD_REQUEST).await["error"], "invalid_request_uri");
    // The failed attempts did not use it up.
    let response = authorize_with(&op, &[("client_id", op.client_id()), ("request_uri", &uri)]).await;
    assert!(param(&location(&response), "code").is_some());

    // A public client pushes with its client_id only.
    let spa = request_params(&op, &pkce, &[("client_id", "spa")]);
    let response = http().post(format!("{}/par", op.issuer())).form(&spa).send().await.expect("par");
    let uri = pushed_uri(response).await;
    let response = authorize_with(&op, &[("client_id", "spa"), ("request_uri", &uri)]).await;
    assert!(param(&location(&response), "code").is_some());
}

#[tokio::test]
async fn par_validates_as_authorize_does_and_authenticates_as_token_does() {
    let op = TestProvider::start().await.expect("start");
    let pkce = pkce();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("redirect_uri", "https://evil.example/cb")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("client_id", "")], "invalid_request"),
        (&[("request_uri", "urn:ietf:params:oauth:request_uri:x")], "invalid_request"),
        (&[("request", "eyJ.e30.")], "request_not_supported"),
    ];
    for (overrides, code) in cases {
        let body = error_of(push(&op, &request_params(&op, &pkce, overrides)).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], *code, "{overrides:?}: {body}");
    }
    let with_request_uri = request_params(&op, &pkce, &[("request_uri", "urn:x")]);
    let body = error_of(push(&op, &with_request_uri).await, StatusCode::BAD_REQUEST).await;
    assert!(body["error_description"].as_str().expect("text").contains("RFC 9126"));

    // Client authentication: a wrong secret, and none at all for a confidential client.
    let params = request_params(&op, &pkce, &[]);
    let response = http()
        .post(format!("{}/par", op.issuer()))
        .basic_auth(op.client_id(), Some("wrong"))
        .form(&params)
        .send()
        .await
        .expect("par");
    assert_eq!(error_of(response, StatusCode::UNAUTHORIZED).await["error"], "invalid_client");
    let response = http().post(format!("{}/par", op.issuer())).form(&params).send().await.expect("par");
    assert_eq!(error_of(response, StatusCode::UNAUTHORIZED).await["error"], "invalid_client");
    assert_eq!(op.par_requests(), cases.len() + 3);
}

#[tokio::test]
async fn par_with_private_key_jwt() {
    let key = TestClientKey::ec_p256();
    let op = TestProvider::builder()
        .client(TestClient::private_key_jwt("svc", key.public_jwk()))
        .start()
        .await
        .expect("start");
    let pkce = pkce();
    let assertion = key.client_assertion("svc", &format!("{}/par", op.issuer()));
    let mut params = request_params(&op, &pkce, &[("client_id", "svc")]);
    params.push(("client_assertion_type".into(), ASSERTION_TYPE.into()));
    params.push(("client_assertion".into(), assertion));
    let response = http().post(format!("{}/par", op.issuer())).form(&params).send().await.expect("par");
    let uri = pushed_uri(response).await;
    assert_eq!(op.client_assertions_accepted(), 1);
    assert!(op.last_par_params().expect("params").iter().all(|(k, _)| !k.starts_with("client_assertion")));
    let response = authorize_with(&op, &[("client_id", "svc"), ("request_uri", &uri)]).await;
    assert!(param(&location(&response), "code").is_some());
}

#[tokio::test]
async fn required_par_refuses_plain_authorization_requests() {
    let op = TestProvider::builder().require_pushed_authorization_requests(true).start().await.expect("start");
    let doc = json(http().get(op.discovery_url()).send().await.expect("discovery")).await;
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    assert_eq!(doc["pushed_authorization_request_endpoint"], format!("{}/par", op.issuer()));

    let pkce = pkce();
    let plain = http().get(authorize_url(&op, &pkce, &[])).send().await.expect("authorize");
    let body = error_of(plain, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"].as_str().expect("text").contains("requires pushed authorization requests"));

    let uri = pushed_uri(push(&op, &request_params(&op, &pkce, &[])).await).await;
    let response = authorize_with(&op, &[("client_id", op.client_id()), ("request_uri", &uri)]).await;
    assert!(param(&location(&response), "code").is_some());

    let default = TestProvider::start().await.expect("start");
    let doc = json(http().get(default.discovery_url()).send().await.expect("discovery")).await;
    assert_eq!(doc["require_pushed_authorization_requests"], false);
}

#[tokio::test]
async fn par_endpoint_down() {
    let op = TestProvider::start().await.expect("start");
    op.inject(Fault::ParEndpointDown);
    let pkce = pkce();
    let response = push(&op, &request_params(&op, &pkce, &[])).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(response).await["error"], "temporarily_unavailable");
    assert_eq!(op.par_requests(), 1);
    op.clear_faults();
    pushed_uri(push(&op, &request_params(&op, &pkce, &[])).await).await;
}
