//! Start-up as a new user meets it: a mistake in the configuration reads as a sentence naming the
//! variable, on every example, never as a `Debug` dump.

use std::process::Command;

#[test]
fn a_configuration_mistake_is_a_sentence() {
    for package in ["example-axum", "example-actix", "example-rocket"] {
        let out = Command::new(e2e_tests::stack::example_binary(package))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OIDC_CLIENT_ID", "app")
            .env("OIDC_ISSUER", "not a url")
            .output()
            .unwrap_or_else(|e| panic!("{package} runs: {e}"));
        assert!(!out.status.success(), "{package} refuses to start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Error: environment variable OIDC_ISSUER: is not a URL"), "{package}: {stderr}");
        assert!(!stderr.contains("Env {") && !stderr.contains("problem:"), "{package}: no Debug dump: {stderr}");
    }
}
