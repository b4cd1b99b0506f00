//! Talking to `provisioner serve`, the broker: the versioned protocol on its Unix
//! socket ([`protocol`]) and the launcher's blocking client ([`client`]).
//!
//! The server lives in the `provisioner-broker` crate; this part is in the core
//! library because both launchers are clients. README.md documents the protocol.

pub mod client;
pub mod protocol;
