//! The provider's `pkjwt-*`, `par-*` and `dpop-*` clients as a relying party uses them, without an
//! app (`provider/check-clients.mjs`): client assertions with `aud` = the issuer are accepted at
//! the token, introspection, revocation and PAR endpoints (the example apps never revoke, so the
//! end-to-end flows cannot show it for revocation), `par-*` is refused without PAR, and `dpop-*`
//! without a DPoP proof (with one, after the provider's nonce, its token is bound to the key).

use std::process::Command;

use e2e_tests::stack::OpenIdProvider;
use e2e_tests::{Artifacts, workspace_root};

#[test]
fn pkjwt_par_and_dpop_clients_are_accepted_by_the_provider() {
    let logs = Artifacts::new(env!("CARGO_TARGET_TMPDIR")).fresh_dir("logs", "provider-clients");
    // No app runs: the URL only names the clients' redirect URIs and the API's resources.
    let app = "http://127.0.0.1:9";
    let op = OpenIdProvider::spawn(&[app], &logs).wait_ready();
    let out = Command::new("node")
        .arg(workspace_root().join("tests/e2e/provider/check-clients.mjs"))
        .args([op.issuer.as_str(), app])
        .arg(&op.keys_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-clients.mjs ({}):\n{report}{}\nthe provider's log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        op.log()
    );
    assert!(report.contains("ok pkjwt-0 at the revocation endpoint, aud = issuer"), "{report}");
    assert!(report.contains("ok the DPoP token is bound to the proof's key (cnf.jkt)"), "{report}");
    op.assert_no_errors();
}
