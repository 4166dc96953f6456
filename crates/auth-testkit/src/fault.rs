//! Fault injection.

use std::time::Duration;

/// A misbehaviour the provider can be told to show, to test that a client refuses it.
///
/// Faults are sticky: once [`inject`](crate::TestProvider::inject)ed, one applies to every
/// matching response until [`clear_faults`](crate::TestProvider::clear_faults). Several faults can
/// be active at once. `IdToken*` faults apply to every ID token issued, by the authorization code
/// grant and by the refresh grant alike.
///
/// Wrong values are made to look plausible: a wrong issuer is the real issuer followed by
/// `/wrong-issuer` (so a prefix comparison does not pass it), a wrong audience or `azp` is
/// `other-client`, a wrong subject is the real one followed by `-other`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use auth_testkit::{Fault, TestProvider};
///
/// let op = TestProvider::start().await?;
/// op.inject(Fault::JwksStatus(503));
/// let status = reqwest::get(format!("{}/jwks", op.issuer())).await.map_err(std::io::Error::other)?.status();
/// assert_eq!(status, 503);
///
/// op.clear_faults();
/// let status = reqwest::get(format!("{}/jwks", op.issuer())).await.map_err(std::io::Error::other)?.status();
/// assert_eq!(status, 200);
/// assert_eq!(op.jwks_requests(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    // --- ID token -------------------------------------------------------------------------
    /// The ID token's signature does not verify (one bit flipped).
    IdTokenBadSignature,
    /// The ID token is unsigned: header `{"alg":"none"}` and an empty signature.
    IdTokenAlgNone,
    /// The ID token is signed with HS256, keyed with the client secret (an empty key for a
    /// public client).
    IdTokenHs256,
    /// `iss` is not the provider's issuer.
    IdTokenWrongIssuer,
    /// `aud` is `"other-client"` only.
    IdTokenWrongAudience,
    /// `aud` is `[client_id, "other-client"]` (`azp` stays the client id).
    IdTokenExtraAudience,
    /// `azp` is `"other-client"`.
    IdTokenWrongAzp,
    /// `nonce` differs from the one in the authorization request.
    IdTokenWrongNonce,
    /// `nonce` is left out even though the authorization request had one.
    IdTokenMissingNonce,
    /// `exp` is an hour in the past (`iat` two hours).
    IdTokenExpired,
    /// `iat` is an hour in the future.
    IdTokenIatInFuture,
    /// The named claim (for example `"sub"`, `"exp"`, `"iat"`, `"aud"`, `"at_hash"`) is
    /// removed from the ID token.
    IdTokenMissingClaim(&'static str),
    /// The ID token is signed with a key whose `kid` is not in the JWKS (and never will be).
    IdTokenUnknownKid,
    /// The ID token header has no `kid` (signature still valid with the published key).
    IdTokenNoKid,
    /// `at_hash` does not match the access token.
    AtHashMismatch,
    /// `auth_time` is a day in the past (to test `max_age` handling).
    IdTokenAuthTimeStale,
    /// The ID token is signed with the provider's oldest retired key: the one it started with,
    /// which [`rotate_keys`](crate::TestProvider::rotate_keys) has since replaced, so its `kid`
    /// is no longer in the JWKS (a token a client may have cached keys for, but must refuse once
    /// the provider stopped publishing them). Before any rotation, the current key signs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use auth_testkit::{Fault, TestProvider};
    ///
    /// let op = TestProvider::start().await?;
    /// let first = op.kid();
    /// op.rotate_keys();
    /// op.rotate_keys();
    /// assert_ne!(op.kid(), first);
    /// assert!(op.jwks()["keys"].as_array().unwrap().iter().all(|k| k["kid"] != first.as_str()));
    /// op.inject(Fault::IdTokenRetiredKey);
    /// # Ok(())
    /// # }
    /// ```
    IdTokenRetiredKey,
    /// The provider's clock is off by this many seconds (positive: ahead of the client's,
    /// negative: behind): every time it writes into an ID token (`iat`, `exp`, `auth_time`, and
    /// an `nbf` equal to `iat`) is shifted by it, by the authorization code grant and the refresh
    /// grant alike. Combined with [`IdTokenExpired`](Self::IdTokenExpired) or
    /// [`IdTokenIatInFuture`](Self::IdTokenIatInFuture), the skew applies on top. `expires_in`
    /// (a duration) and the access tokens' own lifetimes are unchanged.
    ///
    /// The skew also sets the clock the provider checks client assertions (`private_key_jwt`,
    /// `client_secret_jwt`) and DPoP proofs' `iat` (±60 s) by: it runs `s` seconds ahead of the
    /// real time, so an assertion valid for 60 seconds is expired under `ClockSkew(120)`, and
    /// one whose `iat` is more than 30 seconds ahead of the skewed clock is refused under a
    /// negative skew; a DPoP proof made now is refused under a skew of more than 60 seconds.
    ///
    /// A client with a clock leeway of `L` seconds accepts a skew of `+s` when `s <= L`
    /// (`iat`/`nbf` in the future by at most the leeway) and a skew of `-s` while
    /// `exp - s + L` is still ahead of its clock, with `exp` the [token
    /// lifetime](crate::TestProviderBuilder::token_ttl) after issue.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use auth_testkit::{Fault, TestProvider};
    ///
    /// let op = TestProvider::start().await?;
    /// op.inject(Fault::ClockSkew(-7200));
    /// assert_eq!(op.faults(), vec![Fault::ClockSkew(-7200)]);
    /// # Ok(())
    /// # }
    /// ```
    ClockSkew(i64),

    // --- authorization endpoint -----------------------------------------------------------
    /// The authorization response has no `iss` parameter although discovery advertises
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    CallbackIssMissing,
    /// The authorization response's `iss` parameter is not the provider's issuer.
    CallbackIssWrong,
    /// The user denies consent: the authorization endpoint redirects with
    /// `error=access_denied`.
    DenyConsent,
    /// The authorization response carries a `state` other than the one sent.
    CallbackStateWrong,

    // --- discovery and JWKS ----------------------------------------------------------------
    /// The discovery document's `issuer` differs from the URL it was fetched from.
    DiscoveryIssuerMismatch,
    /// The discovery endpoint answers with this HTTP status and a JSON error.
    DiscoveryStatus(u16),
    /// The JWKS endpoint answers with this HTTP status and a JSON error.
    JwksStatus(u16),
    /// The JWKS endpoint waits this long before answering (to test single-flight fetching).
    JwksDelay(Duration),
    /// The JWKS (still valid JSON) is padded with this many bytes of whitespace, to test that a
    /// client caps what it reads of a provider's answer.
    JwksPadding(usize),

    // --- token endpoint -------------------------------------------------------------------
    /// The token endpoint answers with this HTTP status and a JSON error body
    /// (`server_error`, or `temporarily_unavailable` for 503), without looking at the request.
    TokenEndpointStatus(u16),
    /// The token endpoint answers its errors as GitHub does: HTTP 200 with an `error` member, and
    /// GitHub's codes (`incorrect_client_credentials` for `invalid_client`,
    /// `bad_verification_code` for `invalid_grant`).
    TokenErrorsAsGitHub,
    /// The token endpoint never answers (until the provider shuts down).
    TokenEndpointHang,
    /// The token endpoint waits this long before processing the request.
    TokenEndpointDelay(Duration),
    /// The refresh grant fails with `invalid_grant` (the user's grant was revoked).
    RefreshDenied,
    /// The refresh grant returns no new refresh token (the old one stays valid).
    RefreshTokenNotRotated,
    /// The refresh grant returns no ID token.
    RefreshWithoutIdToken,
    /// The ID token from the refresh grant has another `sub` (OIDC Core §12.2).
    RefreshIdTokenSubChanged,
    /// The refresh grant says `expires_in` is this many seconds (the token itself lives as
    /// configured): `0` makes every refreshed token expire as it arrives.
    RefreshExpiresIn(u64),

    // --- client authentication -----------------------------------------------------------
    /// Client assertions (`private_key_jwt`, `client_secret_jwt`) are accepted only with an
    /// `aud` of the token endpoint URL (`{issuer}/token`, as a string or in an array), at every
    /// endpoint, as some older providers do; by default the issuer or the URL of the endpoint
    /// called is accepted too.
    AssertionAudienceTokenEndpointOnly,

    // --- pushed authorization requests ---------------------------------------------------
    /// The pushed authorization request endpoint (`/par`, RFC 9126) answers 503 with
    /// `temporarily_unavailable`, without looking at the request.
    ParEndpointDown,

    // --- DPoP ---------------------------------------------------------------------------------
    /// DPoP proofs (RFC 9449) must carry a server nonce (§8), as with
    /// [`TestProviderBuilder::require_dpop_nonce`](crate::TestProviderBuilder::require_dpop_nonce):
    /// a proof without a valid one is answered `400 use_dpop_nonce` at the token endpoint (`401`
    /// with `WWW-Authenticate: DPoP error="use_dpop_nonce"` at UserInfo) and a `DPoP-Nonce`
    /// header to retry with; every answer of these endpoints then carries a fresh `DPoP-Nonce`.
    DpopNonceRequired,

    // --- introspection ---------------------------------------------------------------------
    /// The introspection endpoint answers with this HTTP status and a JSON error.
    IntrospectionStatus(u16),
    /// The introspection endpoint waits this long before answering.
    IntrospectionDelay(Duration),

    // --- UserInfo -------------------------------------------------------------------------
    /// The UserInfo response's `sub` differs from the ID token's (OIDC Core §5.3.2).
    UserinfoSubMismatch,
    /// The UserInfo endpoint answers with this HTTP status and a JSON error.
    UserinfoStatus(u16),
}

/// A defect to build into a back-channel logout token (OpenID Connect Back-Channel Logout 1.0
/// §2.4–2.6), one per rule a client's back-channel logout endpoint must enforce; pass it to
/// [`TestProvider::logout_token_with`](crate::TestProvider::logout_token_with).
///
/// Each fault breaks exactly its rule and keeps the rest of the token valid (signed with the
/// provider's current ID-token key, `iss`, `aud`, `iat`, `exp`, a fresh `jti`, the logout event,
/// the `sub` and `sid` asked for), except [`IdTokenInstead`](Self::IdTokenInstead), which is a
/// whole other kind of token. Wrong values look plausible, as for [`Fault`]: a wrong issuer is
/// the issuer followed by `/wrong-issuer`, a wrong audience is `other-client`.
///
/// A client must answer every one of these tokens with `400 Bad Request` and end no session.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use auth_testkit::{LogoutTokenFault, TestProvider};
/// use base64::Engine as _;
///
/// let decode = |part: &str| -> serde_json::Value {
///     let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
///     serde_json::from_slice(&bytes).expect("JSON")
/// };
/// let op = TestProvider::start().await?;
///
/// let token = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::WithNonce));
/// let parts: Vec<&str> = token.split('.').collect();
/// assert!(decode(parts[1])["nonce"].is_string());
///
/// let token = op.logout_token_with(Some("alice"), None, Some(LogoutTokenFault::AlgNone));
/// assert_eq!(decode(token.split('.').next().expect("header"))["alg"], "none");
/// assert!(token.ends_with('.'), "no signature");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogoutTokenFault {
    /// Unsigned: header `{"alg":"none","typ":"logout+jwt"}` and an empty signature.
    AlgNone,
    /// Signed with the provider's ID-token key, but the signature does not verify (one bit
    /// flipped).
    BadSignature,
    /// A valid signature, by a key the JWKS publishes (with its `kid` in the header), but with
    /// another algorithm than the provider's ID tokens: ES256 when ID tokens are RS256 or PS256,
    /// RS256 when they are ES256.
    ///
    /// The JWKS always publishes this key of the other family beside the ID-token key (with its
    /// own `kid`, `kty` and `alg`), so a client that accepts any algorithm its JWKS can verify
    /// accepts this token. A client picking keys by `kid` and `alg` is not confused by it, and a
    /// token without a `kid` stays unambiguous: a key of another family does not suit the
    /// ID-token algorithm, so exactly one published key suits it.
    OtherAlgorithm,
    /// `iss` is not the provider's issuer.
    WrongIssuer,
    /// `aud` is `"other-client"` only.
    WrongAudience,
    /// `exp` is an hour in the past (`iat` two hours).
    Expired,
    /// No `iat`.
    MissingIat,
    /// No `jti`.
    MissingJti,
    /// Neither `sub` nor `sid`, whatever was asked for.
    NoSubNoSid,
    /// No `events` claim.
    MissingEvents,
    /// `events` has the member `http://schemas.openid.net/event/backchannel-logout`, but its
    /// value is the string `"{}"` (an empty object encoded once too often), not an object.
    EventNotObject,
    /// A `nonce` claim is present (which a logout token must never have, so that it cannot be
    /// taken for an ID token).
    WithNonce,
    /// A normal ID token of this provider posted as a logout token: header `typ: JWT`, claims
    /// `iss`, `sub` (the one given, else the current [user](crate::TestProvider::user)'s), `aud`,
    /// `azp`, `iat`, `exp`, `auth_time`, `nonce`, and `sid` when given; no `jti` and no
    /// `events`. It verifies as an ID token.
    IdTokenInstead,
}

impl LogoutTokenFault {
    /// Every fault, in declaration order (to test a client against all of them). New faults
    /// may be added in minor releases.
    ///
    /// ```
    /// assert_eq!(auth_testkit::LogoutTokenFault::ALL.len(), 13);
    /// ```
    pub const ALL: &'static [LogoutTokenFault] = &[
        Self::AlgNone,
        Self::BadSignature,
        Self::OtherAlgorithm,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::Expired,
        Self::MissingIat,
        Self::MissingJti,
        Self::NoSubNoSid,
        Self::MissingEvents,
        Self::EventNotObject,
        Self::WithNonce,
        Self::IdTokenInstead,
    ];
}
