//! The library half of `spark-submit-wrap`: the command-line model, the Spark
//! configuration reading and merging, the injection plan and the properties file,
//! used by the binary (`src/main.rs`) and exercised directly by the fuzz targets.
//!
//! See the binary's documentation for what the wrapper does. The library holds no
//! process-wide state and never execs anything by itself; the binary decides when
//! files are created and what is exec'd.

pub mod args;
pub mod conf;
pub mod endpoint;
pub mod error;
pub mod explain;
pub mod find;
pub mod identity;
pub mod inject;
pub mod plan;
pub mod propsfile;
