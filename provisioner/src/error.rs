//! The one error type of the `provisioner` binary: every way a command ends other than
//! success, and [`Error::exit_code`], the single mapping from those ends to the exit
//! codes README.md documents (`provisioner_core::exit`).
//!
//! `Display` is the line for stderr without the `provisioner: ` prefix; [`Error::report`]
//! prints it. Some ends carry a code decided elsewhere and travel here as data: a
//! refusal's code comes from the decision tables (`RefusalCode`) or the broker's answer,
//! an exec failure's from the shell's convention (`ExecError::exit_code`), an audit's
//! from its findings. Messages name the problem and the fix, never a secret.

use provisioner_core::broker::client::BrokerRefusal;
use provisioner_core::container::DeliveryError;
use provisioner_core::context::ContextError;
use provisioner_core::decision::Refusal;
use provisioner_core::exec::ExecError;
use provisioner_core::exit;
use provisioner_core::load::ConfigError;
use provisioner_iam::aws::CallError;

use crate::kernelspec::KernelspecError;

/// How a command of `provisioner` failed, or which non-zero code its report ends with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong: `PROBLEM; fix: ...`, built by `usage::usage_error`.
    #[error("{0}")]
    Usage(String),
    /// The platform file or a setting is invalid.
    #[error("{0}")]
    Config(Box<ConfigError>),
    /// The launch context (user, workspace, runtime template, flow) is missing or invalid.
    #[error("{0}")]
    Context(#[from] ContextError),
    /// The decision tables refused the launch; `record_json` is the decision record
    /// the refusal kernel shows.
    #[error("refused ({}): {}; fix: {}", .refusal.code.as_str(), .refusal.message, .refusal.fix)]
    Refused {
        refusal: Refusal,
        record_json: Option<String>,
    },
    /// The broker refused, or could not be asked (its message holds the fix).
    #[error("refused ({}): {}", .0.code, .0.message)]
    Broker(Box<BrokerRefusal>),
    /// The broker delivers through its credentials endpoint, and the token file for the
    /// kernel could not be written.
    #[error("{0}")]
    Delivery(DeliveryError),
    /// The kernel program named in argv is not there.
    #[error("{0}")]
    ProgramNotFound(ExecError),
    /// `execve` of the kernel program failed.
    #[error("{0}")]
    Exec(ExecError),
    /// A kernelspec command cannot go ahead.
    #[error("kernelspec: {0}")]
    Kernelspec(#[from] KernelspecError),
    /// The async runtime for the IAM commands could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// `policies sync` could not read IAM.
    #[error("{0}")]
    Iam(CallError),
    /// `policies sync`: IAM holds the managed policies in another account.
    #[error(
        "IAM holds the policies under {path} in account {found}, but aws.account_id is {configured}: launches would pass ARNs that do not exist; fix: set aws.account_id to {found}, or run the sync with credentials of account {configured}"
    )]
    AccountMismatch {
        path: String,
        found: String,
        configured: String,
    },
    /// `policies sync`: the plan cannot be carried out (a policy to prune is still
    /// attached, a document over IAM's limit).
    #[error("{0}")]
    SyncRefused(String),
    /// `policies sync`: an IAM write failed part way.
    #[error("{0} (the changes before it were applied; running the sync again continues)")]
    SyncFailed(CallError),
    /// The command printed its whole report and ends with a code that tells scripts
    /// what it found: a dry run that would be refused (the refusal's code), an audit
    /// with findings (5, 6), the broker's own exit. Nothing more is printed.
    #[error("exit {exit_code}")]
    Reported { exit_code: i32 },
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(Box::new(e))
    }
}

impl Error {
    /// The documented exit code of this end (README.md, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Context(_) | Error::Kernelspec(_) => {
                exit::CONFIG
            }
            Error::AccountMismatch { .. } => exit::CONFIG,
            Error::Refused { refusal, .. } => refusal.exit_code,
            Error::Broker(r) => r.exit_code,
            Error::ProgramNotFound(e) | Error::Exec(e) => e.exit_code(),
            Error::SyncRefused(_) => exit::REFUSED,
            Error::Delivery(_) | Error::Runtime(_) | Error::Iam(_) | Error::SyncFailed(_) => {
                exit::CREDENTIALS
            }
            Error::Reported { exit_code } => *exit_code,
        }
    }

    /// Says why on stderr, as one line (nothing for a command whose report is printed).
    pub fn report(&self) {
        if !matches!(self, Error::Reported { .. }) {
            eprintln!("provisioner: {self}");
        }
    }

    /// `Ok` for exit code 0, else the end of a command that printed its own report.
    pub fn from_exit_code(exit_code: i32) -> Result<(), Error> {
        if exit_code == exit::OK {
            Ok(())
        } else {
            Err(Error::Reported { exit_code })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner_core::decision::RefusalCode;

    #[test]
    fn every_end_has_its_documented_code() {
        let refusal = |code, exit_code| Error::Refused {
            refusal: Refusal {
                code,
                message: "m".into(),
                fix: "f".into(),
                exit_code,
            },
            record_json: None,
        };
        let call = CallError {
            code: None,
            line: "IAM is unreachable".into(),
        };
        let cases = [
            (Error::Usage("u".into()), 2),
            (Error::Context(ContextError("no user".into())), 2),
            (Error::Kernelspec(KernelspecError("k".into())), 2),
            (
                Error::AccountMismatch {
                    path: "/p/".into(),
                    found: "1".into(),
                    configured: "2".into(),
                },
                2,
            ),
            (refusal(RefusalCode::UnknownUser, 3), 3),
            (refusal(RefusalCode::CredentialsUnavailable, 4), 4),
            (Error::ProgramNotFound(ExecError::NotFound("k".into())), 127),
            (
                Error::Exec(ExecError::Failed {
                    program: "k".into(),
                    cause: "c".into(),
                }),
                126,
            ),
            (Error::SyncRefused("attached".into()), 3),
            (Error::Runtime(std::io::Error::other("no threads")), 4),
            (Error::Iam(call.clone()), 4),
            (Error::SyncFailed(call), 4),
            (Error::Reported { exit_code: 5 }, 5),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
        assert!(Error::from_exit_code(0).is_ok());
        assert_eq!(Error::from_exit_code(6).unwrap_err().exit_code(), 6);
    }

    #[test]
    fn lines_keep_their_wording() {
        let e = Error::Refused {
            refusal: Refusal {
                code: RefusalCode::UnknownUser,
                message: "user mallory is not in the platform file".into(),
                fix: "add the user".into(),
                exit_code: 3,
            },
            record_json: None,
        };
        assert_eq!(
            e.to_string(),
            "refused (UNKNOWN_USER): user mallory is not in the platform file; fix: add the user"
        );
        let e = Error::SyncFailed(CallError {
            code: None,
            line: "CreatePolicy failed".into(),
        });
        assert_eq!(
            e.to_string(),
            "CreatePolicy failed (the changes before it were applied; running the sync again continues)"
        );
        let e = Error::Kernelspec(KernelspecError("no such kernel".into()));
        assert_eq!(e.to_string(), "kernelspec: no such kernel");
    }
}
