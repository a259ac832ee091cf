//! Results of a run: plain serde data, versioned, produced by the runner and read by every reporter. A report
//! can be re-rendered from a saved `results.json`.

use serde::{Deserialize, Serialize};

/// Version of the results document; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One run: scenarios × one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResults {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Unique run id (`20261127T174000Z-ab12`).
    pub run_id: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// Wall time of the whole run.
    pub duration_ms: f64,
    /// The implementation under test.
    pub target: TargetInfo,
    /// Per scenario.
    pub scenarios: Vec<ScenarioResult>,
}

impl RunResults {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.outcome == Outcome::Passed)
    }
}

/// Which target ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Short name (`embedded`).
    pub name: String,
    /// Description (versions, modes).
    pub description: String,
}

/// Pass, fail, or could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything held.
    Passed,
    /// An assertion did not hold in time, or an action was rejected.
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

/// One scenario against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Source file.
    pub source: String,
    /// Target name.
    pub target: String,
    /// Overall outcome.
    pub outcome: Outcome,
    /// Wall time.
    pub duration_ms: f64,
    /// Every step, in order.
    pub steps: Vec<StepResult>,
}

impl ScenarioResult {
    /// The first failed step.
    pub fn first_failure(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.outcome == Outcome::Failed)
    }
}

/// One step's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    /// 1-based position.
    pub index: usize,
    /// Source line.
    pub line: u64,
    /// `action` or `assert`.
    pub kind: String,
    /// One-line description (`scale test/nginx to 2`).
    pub summary: String,
    /// The step as planned.
    pub step: serde_json::Value,
    /// Outcome.
    pub outcome: Outcome,
    /// Wall time of the step.
    pub duration_ms: f64,
    /// For assertions: time from the step's start until the check first held.
    pub convergence_ms: Option<f64>,
    /// How many times the check was evaluated.
    pub attempts: u32,
    /// What the check expected, resolved against the target (last attempt).
    pub expected: Option<serde_json::Value>,
    /// What the target showed (last attempt).
    pub actual: Option<serde_json::Value>,
    /// Why it failed, one line.
    pub message: Option<String>,
}

/// Serde helper: a `Duration` as milliseconds (float).
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    /// Deserializes from milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}
