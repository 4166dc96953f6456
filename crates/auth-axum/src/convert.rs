//! Translation between Axum's types and auth-core's framework-neutral view.

use auth_core::{AuthResponse, Method, RequestView};
use axum::body::Body;
use axum::extract::OriginalUri;
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode, request::Parts};

/// The core's view of a request: method, path (before any `Router::nest`), query, headers.
pub(crate) fn view<'a>(method: &'a http::Method, uri: &'a http::Uri, headers: &'a http::HeaderMap) -> RequestView<'a> {
    RequestView::from_parts(
        Method::from_name(method.as_str()),
        uri.path(),
        uri.query(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
    )
    .with_method_name(method.as_str())
}

/// The view of an extractor's request parts, using the original URI under `Router::nest`.
pub(crate) fn parts_view(parts: &Parts) -> RequestView<'_> {
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |o| &o.0);
    view(&parts.method, uri, &parts.headers)
}

/// Appends the lookup's `Set-Cookie` values to a response, but for the cookies it sets itself.
pub(crate) fn append_cookies(res: &mut Response, cookies: Vec<String>) {
    let own = res.headers().get_all(http::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok());
    let cookies = auth_core::cookies_not_set_by(own, cookies);
    for cookie in cookies {
        if let Ok(value) = HeaderValue::try_from(cookie) {
            res.headers_mut().append(http::header::SET_COOKIE, value);
        }
    }
}

/// An Axum response from the core's.
pub(crate) fn response(res: AuthResponse) -> Response {
    let mut out = Response::new(Body::from(res.body));
    *out.status_mut() = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in res.headers {
        if let Ok(value) = HeaderValue::try_from(value) {
            out.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    out
}
