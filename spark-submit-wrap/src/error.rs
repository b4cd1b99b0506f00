//! The one error type of `spark-submit-wrap` before exec: every way a run ends other
//! than exec'ing Spark or a successful dry run, and [`WrapError::exit_code`], the single
//! mapping from those ends to the exit codes README.md documents
//! (`provisioner_core::exit`). `Display` is the line for stderr without the program
//! name; [`WrapError::report`] prints it. Messages never hold a secret.

use std::fmt;

use provisioner_core::decision::Refusal;
use provisioner_core::exec::ExecError;
use provisioner_core::exit;

use crate::find::FindError;

/// An end of the wrapper before exec.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// Usage or configuration: the command line, the platform file, the launch context,
    /// the marker, the properties file. One line naming the problem and the fix.
    #[error("{0}")]
    Config(String),
    /// The launch is refused, by the decision tables or by the broker; the code is the
    /// refusal's (README.md, "Exit codes").
    #[error("{message}")]
    Refused { message: String, exit_code: i32 },
    /// Credentials could not be obtained (a broker answer that cannot be read).
    #[error("{0}")]
    Credentials(String),
    /// The real `spark-submit` cannot be used (not found, this wrapper itself, a loop).
    #[error(transparent)]
    Find(#[from] FindError),
    /// `execve` of the real `spark-submit` failed.
    #[error(transparent)]
    Exec(ExecError),
    /// The dry run printed its report; a launch would be refused with this code.
    /// Nothing more is printed.
    #[error("exit {exit_code}")]
    Reported { exit_code: i32 },
}

impl WrapError {
    /// A usage or configuration error (exit 2).
    pub fn config(e: impl fmt::Display) -> WrapError {
        WrapError::Config(e.to_string())
    }

    /// A refusal of the decision tables, with its fix.
    pub fn refused(r: &Refusal) -> WrapError {
        WrapError::Refused {
            message: format!(
                "refused ({}): {}; fix: {}",
                r.code.as_str(),
                r.message,
                r.fix
            ),
            exit_code: r.exit_code,
        }
    }

    /// The documented exit code of this end.
    pub fn exit_code(&self) -> i32 {
        match self {
            WrapError::Config(_) => exit::CONFIG,
            WrapError::Refused { exit_code, .. } | WrapError::Reported { exit_code } => *exit_code,
            WrapError::Credentials(_) => exit::CREDENTIALS,
            WrapError::Find(FindError::NotFound { .. }) => exit::NOT_FOUND,
            WrapError::Find(FindError::RealIsSelf(_) | FindError::Loop(_)) => exit::CONFIG,
            WrapError::Exec(e) => e.exit_code(),
        }
    }

    /// Says why on stderr as one line `spark-submit-wrap: ...` (nothing after a dry
    /// run's report).
    pub fn report(&self) {
        if !matches!(self, WrapError::Reported { .. }) {
            eprintln!("spark-submit-wrap: {self}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner_core::decision::RefusalCode;

    #[test]
    fn every_end_has_its_documented_code() {
        let refusal = Refusal {
            code: RefusalCode::UnknownUser,
            message: "user mallory is not in the platform file".into(),
            fix: "add the user".into(),
            exit_code: exit::REFUSED,
        };
        let e = WrapError::refused(&refusal);
        assert_eq!(
            e.to_string(),
            "refused (UNKNOWN_USER): user mallory is not in the platform file; fix: add the user"
        );
        let cases = [
            (e, 3),
            (WrapError::config("bad --properties-file"), 2),
            (WrapError::Credentials("unreadable".into()), 4),
            (
                WrapError::Find(FindError::NotFound {
                    looked: "PATH".into(),
                }),
                127,
            ),
            (WrapError::Find(FindError::RealIsSelf("/x".into())), 2),
            (WrapError::Find(FindError::Loop("depth 9".into())), 2),
            (WrapError::Exec(ExecError::NotFound("x".into())), 127),
            (
                WrapError::Exec(ExecError::Failed {
                    program: "x".into(),
                    cause: "c".into(),
                }),
                126,
            ),
            (WrapError::Reported { exit_code: 4 }, 4),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }
}
