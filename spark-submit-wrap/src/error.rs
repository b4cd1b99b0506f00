//! The one error type of `spark-submit-wrap` before exec: a line for stderr and the
//! documented exit code (`provisioner_core::exit`). Messages never hold a secret.

use std::fmt;

use provisioner_core::exit;

/// An error that stops a launch before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapError {
    /// One line naming the problem and the fix.
    pub message: String,
    /// What the wrapper exits with.
    pub code: i32,
}

impl WrapError {
    /// A usage or configuration error (exit 2).
    pub fn config(e: impl fmt::Display) -> WrapError {
        WrapError {
            message: e.to_string(),
            code: exit::CONFIG,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for WrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WrapError {}
