//! The scenario suite against example-axum.

use auth_core::Auth;
use auth_scenarios::{Framework, ServerGuard};

struct Axum;

impl Framework for Axum {
    async fn spawn(auth: Auth, listener: std::net::TcpListener) -> ServerGuard {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let task = tokio::spawn(async move { axum::serve(listener, example_axum::app(auth)).await });
        ServerGuard::new(move || task.abort())
    }
}

auth_scenarios::scenarios!(Axum);
