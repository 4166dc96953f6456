//! The scenario suite against example-actix.
//!
//! Actix Web runs its server on its own runtime (an actix `System` with one arbiter per worker), so
//! each test starts it on a thread of its own and stops it through its `ServerHandle`.

use actix_web::HttpServer;
use auth_core::Auth;
use auth_scenarios::{Framework, ServerGuard};

struct Actix;

impl Framework for Actix {
    async fn spawn(auth: Auth, listener: std::net::TcpListener) -> ServerGuard {
        let (ready, started) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || example_actix::app(auth.clone()))
                    .workers(2)
                    .disable_signals()
                    .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        let _ = ready.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                    }
                }
            });
        });
        let handle = started.await.expect("the server thread starts").expect("actix listens");
        // `stop` sends the command at once; the returned future only waits for it to finish.
        ServerGuard::new(move || drop(handle.stop(false)))
    }
}

auth_scenarios::scenarios!(Actix);
