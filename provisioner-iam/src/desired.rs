//! The managed session policies the platform file asks for, and the IAM path they live
//! under: a thin seam over the core library's policy module, so that the sync and the
//! audit read the desired state in one place.

use provisioner_core::model::Platform;

pub use provisioner_core::policy::managed::{ManagedPolicy, desired_managed_policies};

/// The IAM path every managed session policy of the platform lives under
/// (`aws.managed_policy_path`).
pub fn managed_path(platform: &Platform) -> String {
    platform.aws.managed_policy_path.clone()
}
