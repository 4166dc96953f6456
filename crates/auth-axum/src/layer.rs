//! The tower layer.

use auth_core::Auth;
use tower_layer::Layer;

use crate::AuthService;

/// Reads the session of every request and makes it available to the extractors.
///
/// ```
/// # async fn demo(auth: auth_core::Auth) {
/// use auth_axum::AuthLayer;
/// let app: axum::Router = axum::Router::new().merge(auth_axum::routes()).layer(AuthLayer::new(auth));
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    /// A layer for this [`Auth`].
    pub fn new(auth: Auth) -> Self {
        AuthLayer { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, self.auth.clone())
    }
}
