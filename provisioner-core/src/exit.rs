//! Documented exit codes shared by `provisioner` and `spark-submit-wrap`.
//!
//! These numbers are part of the product's interface: job runners and platform
//! integrations branch on them. They apply before `exec`; after `exec` the exit
//! status is the child's own.

/// Success (for commands that do not exec).
pub const OK: i32 = 0;
/// Usage or configuration error: bad arguments, bad platform file, bad settings.
pub const CONFIG: i32 = 2;
/// Refused by policy: a `deny` setting, or a user the platform cannot scope.
pub const REFUSED: i32 = 3;
/// Credentials could not be obtained for the decided identity.
pub const CREDENTIALS: i32 = 4;
/// The program to exec was not found.
pub const NOT_FOUND: i32 = 127;
