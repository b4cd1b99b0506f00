//! The environment the child program starts with (SPEC section 6).
//!
//! (Interface fixed; implementation in progress.)

use std::ffi::{OsStr, OsString};

use crate::decision::Decision;
use crate::mint::Credentials;

/// Names the tier and expiry of a provisioned process; `spark-submit-wrap` sees it and
/// propagates instead of resolving again.
pub const MARKER: &str = "SYN_PROVISIONED";

/// The child's complete environment, in order, duplicates preserved unless removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    vars: Vec<(OsString, OsString)>,
}

impl ChildEnv {
    /// Builds the child's environment from the parent's raw entries.
    pub fn for_launch(
        parent: Vec<(OsString, OsString)>,
        _decision: &Decision,
        _creds: Option<&Credentials>,
        _region: &str,
    ) -> ChildEnv {
        ChildEnv { vars: parent }
    }

    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }

    /// The last entry for `name` (what getenv would return).
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }
}
