//! The end-to-end tests: every example app × {without a browser, in Chromium}.
//!
//! One line per example below. Each line makes a module with two tests, `forms` and `browser`,
//! each starting its own provider and app (nextest runs every test in its own process anyway).

use e2e_tests::{Artifacts, ClientKind, Example};

fn artifacts() -> Artifacts {
    Artifacts::new(env!("CARGO_TARGET_TMPDIR"))
}

macro_rules! examples {
    ($($label:ident: $package:literal with $client:ident;)*) => {$(
        mod $label {
            use super::*;

            const EXAMPLE: Example =
                Example { label: stringify!($label), package: $package, client: ClientKind::$client };

            /// Login, two tabs, logout at the provider, back-channel logout, denied consent:
            /// an HTTP client following the provider's forms.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn forms() {
                e2e_tests::forms::run(EXAMPLE, &artifacts()).await;
            }

            /// The same flows in headless Chromium, with screenshots.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn browser() {
                e2e_tests::browser::run(EXAMPLE, &artifacts()).await;
            }
        }
    )*};
}

examples! {
    axum: "example-axum" with Basic;
    actix: "example-actix" with Post;
    rocket: "example-rocket" with Es256;
    axum_public: "example-axum" with Public;
    axum_pkjwt: "example-axum" with PrivateKeyJwt;
    rocket_par: "example-rocket" with Par;
    actix_dpop: "example-actix" with Dpop;
}
