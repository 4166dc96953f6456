//! The service behind [`AuthMiddleware`](crate::AuthMiddleware).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, forward_ready};
use auth_core::{Auth, Session};

use crate::convert;
use crate::middleware::Requirement;
use crate::routes::Served;

/// What the middleware leaves in the request extensions for the extractors.
#[derive(Debug, Clone)]
pub(crate) struct AuthState {
    pub(crate) auth: Auth,
    pub(crate) session: Option<Arc<Session>>,
    /// The session store could not be asked (503 for the guards).
    pub(crate) unavailable: bool,
}

/// Middleware service that loads the session, stores it in the request extensions, and adds the
/// cookie changes auth-core asks for to the response. Built by [`AuthMiddleware`](crate::AuthMiddleware);
/// there is no need to name it.
pub struct AuthService<S> {
    inner: Rc<S>,
    auth: Auth,
    requirement: Option<Requirement>,
}

impl<S> AuthService<S> {
    pub(crate) fn new(inner: Rc<S>, auth: Auth, requirement: Option<Requirement>) -> Self {
        AuthService { inner, auth, requirement }
    }
}

impl<S> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService").field("auth", &self.auth).field("requirement", &self.requirement).finish()
    }
}

impl<S, B> Service<ServiceRequest> for AuthService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(inner);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let inner = Rc::clone(&self.inner);
        let auth = self.auth.clone();
        let requirement = self.requirement;
        Box::pin(async move {
            // One view of the request serves the lookup, the guard and the 404 check.
            let view = convert::view(req.request());
            // Under an outer AuthMiddleware the session is already read, and its cookie changes are
            // the outer one's to write.
            let outer = req.extensions().get::<AuthState>().cloned();
            let outer_seen = outer.is_some();
            let (state, set_cookies) = match outer {
                Some(state) => (state, Vec::new()),
                None => {
                    let lookup = auth.session(&view).await;
                    let state = AuthState { auth, session: lookup.session, unavailable: lookup.unavailable };
                    req.extensions_mut().insert(state.clone());
                    (state, lookup.set_cookies)
                }
            };
            let refusal =
                requirement.and_then(|r| r.refusal(&state.auth, state.session.as_ref(), state.unavailable, &view));
            // The outermost middleware explains the app's 404 for a path under the auth prefix.
            let unrouted = if outer_seen {
                None
            } else {
                state.auth.routes_missing(view.path(), "auth_actix::routes").map(|err| (err, !view.prefers_json()))
            };
            drop(view);
            let mut res = match refusal {
                Some(refusal) => req.into_response(convert::response(&refusal)).map_into_right_body(),
                None => inner.call(req).await?.map_into_left_body(),
            };
            if let Some((err, html)) = unrouted
                && res.status() == actix_web::http::StatusCode::NOT_FOUND
                && res.response().extensions().get::<Served>().is_none()
            {
                let answer = convert::response(&state.auth.error_response(&err, html));
                res = res.into_response(answer).map_into_right_body();
            }
            convert::append_cookies(res.headers_mut(), set_cookies);
            Ok(res)
        })
    }
}
