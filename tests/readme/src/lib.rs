// The README's code blocks are this crate's doctests, so `cargo test --doc` compiles each of them
// exactly as a reader copies it. Its text is the README's: its bare URLs are for people.
#![allow(rustdoc::bare_urls)]
#![doc = include_str!("../../../README.md")]
