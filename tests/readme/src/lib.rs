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
