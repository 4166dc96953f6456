// The README's code blocks are this crate's doctests, so `cargo test --doc` compiles each of them
// exactly as a reader copies it. Its text is the README's: its bare URLs are for people.
#![allow(rustdoc::bare_urls)]
#![doc = include_str!("../../../README.md")]

/// Each library crate's README (its registry page), compiled the same way.
pub mod crate_readmes {
    #[doc = include_str!("../../../crates/auth-core/README.md")]
    pub mod auth_core {}
    #[doc = include_str!("../../../crates/auth-axum/README.md")]
    pub mod auth_axum {}
    #[doc = include_str!("../../../crates/auth-actix/README.md")]
    pub mod auth_actix {}
    #[doc = include_str!("../../../crates/auth-rocket/README.md")]
    pub mod auth_rocket {}
    #[doc = include_str!("../../../crates/auth-redis/README.md")]
    pub mod auth_redis {}
    #[doc = include_str!("../../../crates/auth-testkit/README.md")]
    pub mod auth_testkit {}
}

/// The guide (`docs/`, built by `cargo xtask docs`): every page, compiled the same way, so each of
/// its code blocks is a doctest.
pub mod guide {
    #[doc = include_str!("../../../docs/src/introduction.md")]
    pub mod introduction {}
    #[doc = include_str!("../../../docs/src/getting-started/axum.md")]
    pub mod getting_started_axum {}
    #[doc = include_str!("../../../docs/src/getting-started/actix.md")]
    pub mod getting_started_actix {}
    #[doc = include_str!("../../../docs/src/getting-started/rocket.md")]
    pub mod getting_started_rocket {}
    #[doc = include_str!("../../../docs/src/configuration.md")]
    pub mod configuration {}
    #[doc = include_str!("../../../docs/src/providers/oidc.md")]
    pub mod providers_oidc {}
    #[doc = include_str!("../../../docs/src/providers/google.md")]
    pub mod providers_google {}
    #[doc = include_str!("../../../docs/src/providers/github.md")]
    pub mod providers_github {}
    #[doc = include_str!("../../../docs/src/providers/facebook.md")]
    pub mod providers_facebook {}
    #[doc = include_str!("../../../docs/src/providers/microsoft.md")]
    pub mod providers_microsoft {}
    #[doc = include_str!("../../../docs/src/providers/gitlab.md")]
    pub mod providers_gitlab {}
    #[doc = include_str!("../../../docs/src/providers/keycloak.md")]
    pub mod providers_keycloak {}
    #[doc = include_str!("../../../docs/src/providers/auth0-okta.md")]
    pub mod providers_auth0_okta {}
    #[doc = include_str!("../../../docs/src/sessions.md")]
    pub mod sessions {}
    #[doc = include_str!("../../../docs/src/refresh.md")]
    pub mod refresh {}
    #[doc = include_str!("../../../docs/src/bearer.md")]
    pub mod bearer {}
    #[doc = include_str!("../../../docs/src/logout.md")]
    pub mod logout {}
    #[doc = include_str!("../../../docs/src/client-auth.md")]
    pub mod client_auth {}
    #[doc = include_str!("../../../docs/src/testing.md")]
    pub mod testing {}
    #[doc = include_str!("../../../docs/src/deploying.md")]
    pub mod deploying {}
    #[doc = include_str!("../../../docs/src/observability.md")]
    pub mod observability {}
    #[doc = include_str!("../../../docs/src/from-authlib.md")]
    pub mod from_authlib {}
    #[doc = include_str!("../../../docs/src/security.md")]
    pub mod security {}

    /// The pages above, as `docs/src/SUMMARY.md` names them.
    pub const PAGES: &[&str] = &[
        "introduction.md",
        "getting-started/axum.md",
        "getting-started/actix.md",
        "getting-started/rocket.md",
        "configuration.md",
        "providers/oidc.md",
        "providers/google.md",
        "providers/github.md",
        "providers/facebook.md",
        "providers/microsoft.md",
        "providers/gitlab.md",
        "providers/keycloak.md",
        "providers/auth0-okta.md",
        "sessions.md",
        "refresh.md",
        "bearer.md",
        "logout.md",
        "client-auth.md",
        "testing.md",
        "deploying.md",
        "observability.md",
        "from-authlib.md",
        "security.md",
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    fn pages_on_disk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("docs/src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pages_on_disk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "md") && !path.ends_with("SUMMARY.md") {
                let rel = path.strip_prefix(base).expect("under docs/src");
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    /// A page that is in the book but not in [`super::guide`] would go untested; one that is not in
    /// `SUMMARY.md` would not be in the book at all.
    #[test]
    fn every_page_is_in_the_summary_and_tested() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/src");
        let mut on_disk = BTreeSet::new();
        pages_on_disk(&src, &src, &mut on_disk);
        let summary = std::fs::read_to_string(src.join("SUMMARY.md")).expect("SUMMARY.md is readable");
        let in_summary: BTreeSet<String> = summary
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split_once(')').map(|(link, _)| link.to_owned()))
            .collect();
        let tested: BTreeSet<String> = super::guide::PAGES.iter().map(|p| (*p).to_owned()).collect();
        assert_eq!(on_disk, in_summary, "docs/src pages (left) and the links of SUMMARY.md (right)");
        assert_eq!(on_disk, tested, "docs/src pages (left) and the pages tests/readme compiles (right)");
    }
}
