//! The platform against IAM: keeping the managed session policies in IAM
//! ([`sync`]) and checking, read-only, what the platform file assumes about IAM
//! ([`checks`]), plus the capacity report over every user's decisions ([`audit`]).
//!
//! | module | what | I/O |
//! |---|---|---|
//! | [`desired`] | the managed policies the platform file asks for, and their IAM path | none |
//! | [`document`] | policy documents as IAM returns them (URL-encoded), compared by meaning | none |
//! | [`sync`] | plan (pure) and apply of `provisioner policies sync` | IAM |
//! | [`audit`] | tier, sizes and headroom of every user and flow (pure) | none |
//! | [`checks`] | `audit --aws`: roles, session durations, trust, the policy simulator | IAM, STS (read-only) |
//! | [`aws`] | clients and one-line errors with the fix | network |
//!
//! Only the admin commands use this crate. A launch never calls IAM (it is global,
//! eventually consistent and slow); `spark-submit-wrap` does not depend on it. Nothing
//! here reads, prints or records a secret.

pub mod audit;
pub mod aws;
pub mod checks;
pub mod desired;
pub mod document;
pub mod sync;
