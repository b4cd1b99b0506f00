//! What every command of the binary reads the same way: the process environment, the
//! platform file (`--config`, else `SYN_PLATFORM_CONFIG`, else the default path), and
//! for the IAM commands the async runtime. Reads only; never prints.

use std::path::Path;

use provisioner_core::load;
use provisioner_core::model::Platform;

use crate::error::Error;

/// The process environment, as the library's loaders ask for it.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The validated platform file named by `config` or the environment.
pub fn load(config: Option<&Path>) -> Result<Platform, Error> {
    let path = load::config_path(config, &env_lookup);
    Ok(load::load_file(&path, &env_lookup)?)
}

/// A runtime for the IAM and STS calls of `policies sync` and `audit --aws`.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
