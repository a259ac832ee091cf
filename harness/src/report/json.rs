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
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ResultsError::Invalid {
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
    restore_infinite_ratios(&mut value);
    serde_json::from_value(value)
        .map_err(|e| ResultsError::Invalid { path: path.display().to_string(), reason: e.to_string() })
}

/// serde_json writes a non-finite `f64` as `null` and cannot read that back as an `f64`. The one the schema produces
/// is a fairness `max_min_ratio` (∞ when a backend got nothing): it is read back as `f64::MAX`, which reports show
/// as ∞, so such documents still re-render.
fn restore_infinite_ratios(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(f) = m.get_mut("fairness").and_then(serde_json::Value::as_object_mut)
                && f.get("max_min_ratio").is_some_and(serde_json::Value::is_null)
            {
                f.insert("max_min_ratio".into(), serde_json::json!(f64::MAX));
            }
            m.values_mut().for_each(restore_infinite_ratios);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(restore_infinite_ratios),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_infinite_max_min_ratio_survives_a_round_trip() {
        let fairness = crate::stats::Fairness::of(&[0, 10]).unwrap();
        assert!(fairness.max_min_ratio.is_infinite());
        let text = serde_json::to_string(&fairness).unwrap();
        assert!(text.contains("\"max_min_ratio\":null"), "{text}");
        let mut v = serde_json::json!({"steps": [{"measurement": {"fairness": serde_json::from_str::<serde_json::Value>(&text).unwrap()}}]});
        restore_infinite_ratios(&mut v);
        let back: crate::stats::Fairness =
            serde_json::from_value(v["steps"][0]["measurement"]["fairness"].clone()).unwrap();
        assert_eq!(back.max_min_ratio, f64::MAX);
    }
}
