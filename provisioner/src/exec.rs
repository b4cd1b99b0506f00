//! Replacing this process with the child program.
//!
//! (Interface fixed; implementation in progress.)

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::child_env::ChildEnv;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "program \"{0}\" not found on PATH; install it or give its full path in the kernelspec argv"
    )]
    NotFound(String),
    #[error("cannot exec {program}: {cause}")]
    Failed { program: String, cause: String },
}

impl ExecError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotFound(_) => crate::exit::NOT_FOUND,
            ExecError::Failed { .. } => 126,
        }
    }
}

/// Finds `program` the way `which` does, on `path_var` (the child's PATH).
pub fn find_program(program: &OsStr, _path_var: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    Err(ExecError::NotFound(program.to_string_lossy().into_owned()))
}

/// Replaces the process image; returns only on failure.
pub fn exec(program: &std::path::Path, _argv: &[OsString], _env: &ChildEnv) -> ExecError {
    ExecError::Failed {
        program: program.display().to_string(),
        cause: "not implemented".into(),
    }
}
