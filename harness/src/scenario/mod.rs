//! Scenario files: the YAML model ([`file`]), validation ([`validate`]) and the validated [`Plan`] the runner executes.
//!
//! Stages are types: [`file::ScenarioFile`] (as written, with spans) → [`Plan`] (validated, references resolved).

pub mod checks;
pub mod error;
pub mod families;
pub mod file;
pub mod isolation;
pub mod names;
pub mod nodes;
pub mod plan;
pub mod raw_checks;
pub mod raw_nodes;
pub mod raw_traffic;
pub mod reference;
pub mod schema;
pub mod validate;

pub use error::{ScenarioError, ScenarioErrors};
pub use families::{IpFamilies, IpFamily, IpFamilyPolicy};
pub use isolation::{Isolation, isolation};
pub use plan::*;
pub use validate::{CLUSTER_NAMESPACES, DEFAULT_TIMEOUT, load, parse};

use std::path::{Path, PathBuf};

/// The `*.yaml` / `*.yml` files of a directory, sorted by name.
///
/// # Errors
/// The directory cannot be read.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}
