//! Obtaining credentials for a decision (SPEC section 5) and the fall-back loop of
//! SPEC section 3.
//!
//! (Interface fixed; implementation in progress.)

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::context::LaunchContext;
use crate::decision::{Decision, resolve};
use crate::model::Platform;

/// Credentials for the child. `Debug` never shows the secret parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expiration: Option<SystemTime>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The final decision of a launch and the credentials it obtained (None for the
/// default tier and for refusals).
#[derive(Debug)]
pub struct Minted {
    pub decision: Decision,
    pub credentials: Option<Credentials>,
    pub elapsed: Duration,
}

/// Resolves, mints, and falls back as the failure rules say, within the deadline.
pub fn obtain(
    platform: &Platform,
    ctx: &LaunchContext,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Minted {
    let start = std::time::Instant::now();
    let decision = resolve(platform, ctx, &[]);
    Minted {
        decision,
        credentials: None,
        elapsed: start.elapsed(),
    }
}
