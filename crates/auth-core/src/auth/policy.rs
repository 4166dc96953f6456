//! [`Policy`]: what a session must have to pass a guard.

use crate::session::Session;

/// A claims policy for guards: "e-mail verified", "member of admin", …
///
/// ```
/// use auth_core::{Policy, Session};
/// struct Admin;
/// impl Policy for Admin {
///     const DESCRIPTION: &'static str = "administrators only";
///     fn allows(session: &Session) -> bool {
///         session.claims().contains("groups", "admin")
///     }
/// }
/// ```
pub trait Policy: Send + Sync + 'static {
    /// Shown on the 403 page when the policy refuses.
    const DESCRIPTION: &'static str;
    /// Whether the session may pass.
    fn allows(session: &Session) -> bool;
}

/// Only users whose provider says their e-mail address is verified.
#[derive(Debug, Clone, Copy)]
pub struct EmailVerified;

impl Policy for EmailVerified {
    const DESCRIPTION: &'static str = "a verified e-mail address is required";
    fn allows(session: &Session) -> bool {
        session.claims().email_verified()
    }
}
