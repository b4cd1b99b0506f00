//! The managed session policies the platform file asks for, and the IAM path they live
//! under. A thin seam over the core library's policy module, so that the sync and the
//! audit read the desired state in one place.

use provisioner_core::model::Platform;
use provisioner_core::policy::{self, PolicyInput};
use sha2::{Digest, Sha256};

/// One managed session policy the platform needs in IAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub name: String,
    pub path: String,
    pub arn: String,
    /// Minified JSON.
    pub document: String,
    pub sha256: String,
}

/// The IAM path every managed session policy of the platform lives under.
pub fn managed_path(_platform: &Platform) -> String {
    "/provisioner/".to_string()
}

/// Every managed session policy any launch of this platform may pass, in a
/// deterministic order, without duplicates: one per data plane.
pub fn desired_managed_policies(platform: &Platform) -> Vec<ManagedPolicy> {
    let path = managed_path(platform);
    let account = platform.aws.account_id.clone().unwrap_or_default();
    let partition = platform.aws.partition().to_string();
    platform
        .data_planes
        .values()
        .map(|dp| {
            let doc = policy::build(&PolicyInput {
                partition: partition.clone(),
                region: platform.aws.region.clone(),
                account_id: platform.aws.account_id.clone(),
                s3: dp.s3.clone(),
                platform_folders: Vec::new(),
                glue_databases: dp.glue_databases.clone(),
                bedrock: false,
            });
            let name = format!("provisioner-plane-{}", dp.id);
            ManagedPolicy {
                arn: format!("arn:{partition}:iam::{account}:policy{path}{name}"),
                name,
                path: path.clone(),
                document: doc.json().to_string(),
                sha256: hex::encode(Sha256::digest(doc.json().as_bytes())),
            }
        })
        .collect()
}
