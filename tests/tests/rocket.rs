//! The scenario suite against example-rocket.

use std::sync::Mutex;
use std::time::Duration;

use auth_core::Auth;
use auth_scenarios::{Framework, ServerGuard};
use rocket::config::LogLevel;
use rocket::fairing::AdHoc;
use rocket::figment::Figment;

struct Rocket;

impl Framework for Rocket {
    async fn spawn(auth: Auth, listener: std::net::TcpListener) -> ServerGuard {
        // Rocket 0.5 binds its own socket: take the port, free it, and let Rocket bind it again.
        let port = listener.local_addr().expect("local address").port();
        drop(listener);
        let figment = Figment::from(rocket::Config::debug_default())
            .merge(("address", "127.0.0.1"))
            .merge(("port", port))
            .merge(("log_level", LogLevel::Off))
            .merge(("cli_colors", false))
            .merge(("shutdown.ctrlc", false));
        let (ready, listening) = tokio::sync::oneshot::channel();
        let ready = Mutex::new(Some(ready));
        // Two instances behind one URL listen on other ports than the URL's.
        let rocket = example_rocket::rocket_with(auth, auth_rocket::AuthFairing::allow_port_mismatch, figment)
            .attach(AdHoc::on_liftoff("scenario harness: listening", move |_| {
                let ready = ready.lock().expect("not poisoned").take();
                Box::pin(async move {
                    if let Some(ready) = ready {
                        let _ = ready.send(());
                    }
                })
            }))
            .ignite()
            .await
            .expect("example-rocket ignites");
        let shutdown = rocket.shutdown();
        let mut server = tokio::spawn(rocket.launch());
        // Liftoff fairings run once the socket is bound: from then on, the app answers.
        tokio::select! {
            _ = listening => {}
            ended = &mut server => match ended.expect("server task") {
                Ok(_) => panic!("example-rocket stopped before it was listening"),
                Err(err) => panic!("example-rocket did not start: {err}"),
            },
            () = tokio::time::sleep(Duration::from_secs(30)) => panic!("example-rocket not listening after 30 s"),
        }
        ServerGuard::new(move || shutdown.notify())
    }
}

auth_scenarios::scenarios!(Rocket);
