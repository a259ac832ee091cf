//! `results.json`: the versioned results document.

use std::path::Path;

use crate::results::{RunResults, SCHEMA_VERSION};

/// Errors reading or writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a results document, or a newer schema.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Writes `results` as pretty JSON.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, results: &RunResults) -> Result<(), ResultsError> {
    let io = |source| ResultsError::Io { path: path.display().to_string(), source };
    let text = serde_json::to_vec_pretty(results).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(io)
}

/// Reads a results document, refusing schemas newer than this build understands.
///
/// # Errors
/// Unreadable file, invalid JSON (with line and column), or an unknown schema version.
pub fn read(path: &Path) -> Result<RunResults, ResultsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ResultsError::Io { path: path.display().to_string(), source })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ResultsError::Invalid {
        path: format!("{}:{}:{}", path.display(), e.line(), e.column()),
        reason: e.to_string(),
    })?;
    let version = value.get("schema_version").and_then(serde_json::Value::as_u64);
    match version {
        Some(v) if v <= u64::from(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(ResultsError::Invalid {
                path: path.display().to_string(),
                reason: format!("schema_version {v} is newer than this svcbench ({SCHEMA_VERSION})"),
            });
        }
        None => {
            return Err(ResultsError::Invalid {
                path: path.display().to_string(),
                reason: "no schema_version: not an svcbench results file".into(),
            });
        }
    }
    serde_json::from_value(value)
        .map_err(|e| ResultsError::Invalid { path: path.display().to_string(), reason: e.to_string() })
}
