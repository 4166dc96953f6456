//! The tower service behind [`AuthLayer`](crate::AuthLayer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use auth_core::{Auth, Session};
use axum::response::Response;
use http::Request;
use tower_service::Service;

use crate::convert;
use crate::routes::Served;

/// What the layer leaves in the request extensions for the extractors.
#[derive(Debug, Clone)]
pub(crate) struct AuthState {
    pub(crate) auth: Auth,
    pub(crate) session: Option<Arc<Session>>,
    /// The session store could not be asked (503 for the guards).
    pub(crate) unavailable: bool,
}

/// Middleware that loads the session, stores it in the request extensions, and adds the cookie
/// changes auth-core asks for to the response.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Auth,
}

impl<S> AuthService<S> {
    pub(crate) fn new(inner: S, auth: Auth) -> Self {
        AuthService { inner, auth }
    }
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let view = convert::view(req.method(), req.uri(), req.headers());
            let lookup = auth.session(&view).await;
            // Where the app's 404 for a path under the auth prefix would be explained.
            let unrouted =
                auth.routes_missing(view.path(), "auth_axum::routes()").map(|err| (err, !view.prefers_json()));
            req.extensions_mut().insert(AuthState {
                auth: auth.clone(),
                session: lookup.session,
                unavailable: lookup.unavailable,
            });
            let mut res = inner.call(req).await?;
            if let Some((err, html)) = unrouted
                && res.status() == http::StatusCode::NOT_FOUND
                && res.extensions().get::<Served>().is_none()
            {
                res = convert::response(auth.error_response(&err, html));
            }
            convert::append_cookies(&mut res, lookup.set_cookies);
            Ok(res)
        })
    }
}
