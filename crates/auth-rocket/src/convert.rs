//! Translation between Rocket's types and auth-core's framework-neutral view.

use std::borrow::Cow;
use std::io::Cursor;

use auth_core::{AuthResponse, Method, RequestView};
use rocket::http::Status;
use rocket::{Request, Response};

/// The core's view of a request: method, path, query, headers (as received: Rocket never rewrites
/// the request URI, whatever base the route is mounted at).
///
/// Cookies are the `Cookie` headers as received. A request without any is given the cookies of
/// Rocket's jar instead: that is where Rocket's local [`Client`](rocket::local::asynchronous::Client)
/// puts the cookies it tracks or that a test adds with `.cookie(…)`, without writing a header.
pub(crate) fn view<'a>(req: &'a Request<'_>) -> RequestView<'a> {
    let uri = req.uri();
    let mut view = RequestView::new(
        Method::from_name(req.method().as_str()),
        uri.path().as_str(),
        uri.query().map(|q| q.as_str()),
    )
    .with_method_name(req.method().as_str());
    let mut cookie_header = false;
    for header in req.headers().iter() {
        cookie_header |= header.name == "cookie";
        // `HeaderMap::iter` lends every value borrowed from the request; the `Owned` arm is unreachable.
        if let Cow::Borrowed(value) = header.value {
            view.add_header(header.name.as_str(), value);
        }
    }
    if !cookie_header {
        let jar = &req.local_cache(|| JarCookies(jar_cookies(req))).0;
        if !jar.is_empty() {
            view.add_header("cookie", jar);
        }
    }
    view
}

/// The cookies of Rocket's jar as a `Cookie` header, for a request that came without one.
struct JarCookies(String);

fn jar_cookies(req: &Request<'_>) -> String {
    let pairs: Vec<String> = req.cookies().iter().map(|c| format!("{}={}", c.name(), c.value())).collect();
    pairs.join("; ")
}

/// A Rocket response from the core's.
pub(crate) fn response<'r>(res: AuthResponse) -> Response<'r> {
    let mut out = Response::new();
    out.set_status(Status::new(res.status));
    for (name, value) in res.headers {
        adjoin(&mut out, name, value);
    }
    out.set_sized_body(res.body.len(), Cursor::new(res.body));
    out
}

/// Appends the lookup's `Set-Cookie` values to a response, but for the cookies it sets itself.
pub(crate) fn append_cookies(res: &mut Response<'_>, cookies: &[String]) {
    let cookies = auth_core::cookies_not_set_by(res.headers().get("set-cookie"), cookies.to_vec());
    for cookie in cookies {
        adjoin(res, "set-cookie", cookie);
    }
}

/// Adds a header, dropping a value that is not a valid field value (RFC 9110 §5.5: no CR, LF or
/// other control bytes). Rocket writes raw headers unchecked and hyper then fails the whole
/// response; Axum's and Actix's `HeaderValue` refuse such a value, and so does this.
fn adjoin(res: &mut Response<'_>, name: &'static str, value: String) {
    if value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80) {
        res.adjoin_raw_header(name, value);
    } else {
        tracing::warn!(header = name, "dropped a header value with control characters");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_never_reach_a_header() {
        let res = AuthResponse::redirect(302, "/x\r\nSet-Cookie: evil=1").with_header("x-ok", "fine\tvalue");
        let out = response(res);
        assert!(out.headers().get_one("location").is_none(), "a CR LF value is dropped");
        assert_eq!(out.headers().get_one("x-ok"), Some("fine\tvalue"));
    }
}
