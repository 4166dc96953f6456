//! Translation between Actix Web's types and auth-core's framework-neutral view.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use auth_core::{AuthResponse, Method, RequestView};

/// The core's view of a request: method, path (the full path, also inside a `web::scope`), query,
/// headers.
pub(crate) fn view(req: &HttpRequest) -> RequestView<'_> {
    RequestView::from_parts(
        Method::from_name(req.method().as_str()),
        req.path(),
        Some(req.query_string()),
        req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
    )
    .with_method_name(req.method().as_str())
}

/// Appends the lookup's `Set-Cookie` values to a response's headers, but for the cookies it sets
/// itself.
pub(crate) fn append_cookies(headers: &mut HeaderMap, cookies: Vec<String>) {
    let own = headers.get_all(header::SET_COOKIE).filter_map(|v| v.to_str().ok());
    let cookies = auth_core::cookies_not_set_by(own, cookies);
    for cookie in cookies {
        if let Ok(value) = HeaderValue::try_from(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// An Actix response from the core's.
pub(crate) fn response(res: &AuthResponse) -> actix_web::HttpResponse {
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = actix_web::HttpResponse::with_body(status, res.body.clone()).map_into_boxed_body();
    for (name, value) in &res.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::try_from(value.as_str())) {
            out.headers_mut().append(name, value);
        }
    }
    out
}
