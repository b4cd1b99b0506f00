//! Core of the product: which AWS identity a notebook kernel or Spark job runs as,
//! and how it gets there.
//!
//! The crate is split so that every step can be tested on its own:
//!
//! | module | step | I/O |
//! |---|---|---|
//! | [`model`] | the platform model (service accounts, workspaces, data planes, users, settings) | none |
//! | [`load`] | reading and validating the platform file, settings from the environment | reads one file |
//! | [`context`] | who is launching what, in which flow | none |
//! | [`decision`] | the identity resolution tables (pure) | none |
//! | [`policy`] | the data-plane session policy document (pure) | none |
//! | [`record`] | the decision record written per launch and printed by `explain` | none |
//! | [`credentials`] | the `Credentials` type, the `AWS_*` variables a launch sets and removes, RFC 3339 expiry text | none |
//! | [`marker`] | the `SYN_PROVISIONED` marker a provisioned process carries | none |
//! | [`mint`] | obtaining credentials for a decision (STS, static keys) | network, files |
//! | [`container`] | endpoint delivery: the grant, the private token file, loopback URLs | writes one file |
//! | [`child_env`] | the environment the child program starts with | none |
//! | [`exec`] | replacing this process with the child | exec |
//! | [`access`] | who may launch as whom, and with which workspace or runtime template (pure) | none |
//! | [`broker`] | the broker protocol and the launchers' client of `provisioner serve` | the broker's socket |
//!
//! Nothing in this crate ever writes a secret to a log, a record or an argument vector.

pub mod access;
pub mod broker;
pub mod child_env;
pub mod container;
pub mod context;
pub mod credentials;
pub mod decision;
pub mod exec;
pub mod exit;
pub mod load;
pub mod marker;
pub mod mint;
pub mod model;
pub mod policy;
pub mod record;
