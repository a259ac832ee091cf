//! Results of a run: plain serde data, versioned, produced by the runner and read by every reporter. A report
//! can be re-rendered from a saved `results.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::stats::latency::{LatencySummary, PercentilePoint};

/// Version of the results document; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One run: scenarios × one target.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetInfo {
    /// Short name (`embedded`).
    pub name: String,
    /// Description (versions, modes).
    pub description: String,
}

/// Pass, fail, could not be judged, or did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything held.
    Passed,
    /// An assertion did not hold in time, or an action was rejected.
    Failed,
    /// Not run: an earlier step failed, or the harness's identity may not do it (the step's message says which).
    Skipped,
    /// A measurement could not be judged: the harness's own load generator fell behind (a starved machine), so
    /// its timeouts and latencies say nothing about the target. Not a pass, not a failure of the target; the step's
    /// message says why. A scenario is inconclusive when none of its steps failed and one was inconclusive.
    Inconclusive,
}

/// One scenario against one target.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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

    /// The first step the harness's identity was not permitted to run (a skipped step with a message; steps skipped
    /// after a failure have none).
    pub fn first_not_permitted(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.outcome == Outcome::Skipped && s.message.is_some())
    }

    /// The first inconclusive step.
    pub fn first_inconclusive(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.outcome == Outcome::Inconclusive)
    }
}

/// One step's result.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Why it failed (or was inconclusive), one line.
    pub message: Option<String>,
    /// What a step that passed left out of its verdict (a load judged over its on-schedule part only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What a measuring step measured (load, DNS load, convergence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Measurement>,
}

/// A measurement attached to a step.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measurement {
    /// HTTP load through a service.
    HttpLoad(HttpLoadReport),
    /// DNS query load.
    DnsLoad(DnsLoadReport),
    /// Time for a change to reach the API, DNS and the data path.
    Convergence(ConvergenceReport),
}

/// HTTP load results.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HttpLoadReport {
    /// What was loaded (`http://nginx:80/hostname` from namespace `test`).
    pub target: String,
    /// `new-connection` (one TCP connection per request: how ClusterIP balancing works) or `keep-alive`
    /// (requests pinned to N connections, hence to their backends).
    pub mode: String,
    /// Connections (keep-alive) or maximum requests in flight (new-connection).
    pub connections: u32,
    /// Open-loop target rate, requests/s; `None` for closed-loop (max throughput).
    pub rate: Option<f64>,
    /// Requests sent.
    pub sent: u64,
    /// Requests the schedule intended within the step's `duration` (open loop: those due before it, at most
    /// `requests`; closed loop: `requests`). `sent < intended` is a shortfall: the run was cut at `duration` because
    /// the generator or the target could not keep up.
    #[serde(default)]
    pub intended: u64,
    /// Requests sent per second of sending.
    #[serde(default)]
    pub achieved_rate: f64,
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Wall time, ms.
    pub duration_ms: f64,
    /// Answered requests per second.
    pub throughput: f64,
    /// Answers per pod (from `/hostname`).
    pub per_backend: BTreeMap<String, u64>,
    /// Failures by class (`refused`, `reset`, `timeout`, `status 503`, …).
    pub errors: BTreeMap<String, u64>,
    /// Fairness of the spread over backends.
    pub fairness: Option<crate::stats::Fairness>,
    /// Latency from each request's intended send time (coordinated-omission free when open-loop).
    pub latency: LatencySummary,
    /// Cores the generator shared with the system under test.
    pub cores: usize,
    /// Whether the generator kept up with its schedule, and the run over the part where it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<crate::probe::pace::ClientPace>,
}

/// DNS load results.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DnsLoadReport {
    /// Names queried (round robin).
    pub names: Vec<String>,
    /// Open-loop target rate, queries/s.
    pub rate: f64,
    /// UDP source ports used.
    pub source_ports: usize,
    /// Queries sent.
    pub sent: u64,
    /// Queries the schedule intended within the step's `duration`; `sent < intended` is a shortfall.
    #[serde(default)]
    pub intended: u64,
    /// Queries sent per second of sending.
    #[serde(default)]
    pub achieved_rate: f64,
    /// Queries answered.
    pub answered: u64,
    /// Queries without an answer in time.
    pub timeouts: u64,
    /// Answers per second.
    pub qps: f64,
    /// Answers by rcode.
    pub rcodes: BTreeMap<String, u64>,
    /// Latency from intended send time.
    pub latency: LatencySummary,
    /// Whether the generator kept up with its schedule, and the run over the part where it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<crate::probe::pace::ClientPace>,
}

/// How long a change took to be visible in each place.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConvergenceReport {
    /// The change (`scale test/nginx to 2`).
    pub change: String,
    /// Until the EndpointSlices reflected it, ms.
    pub endpoints_ms: Option<f64>,
    /// Until DNS answers reflected it, ms.
    pub dns_ms: Option<f64>,
    /// Until traffic through the ClusterIP reached (or stopped reaching) the pods, ms.
    pub traffic_ms: Option<f64>,
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
        // A hand-edited or hostile file may hold any number: refuse what is no duration rather than panic.
        Duration::try_from_secs_f64(ms.max(0.0) / 1000.0)
            .map_err(|_| serde::de::Error::custom(format!("{ms} ms is not a duration")))
    }
}
