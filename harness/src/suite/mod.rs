//! Running a battery: every plan against a fresh embedded cluster, concurrently, and the seeded-fault detection
//! matrix (the same battery once per fault; a fault no scenario catches is a missing scenario).

pub mod battery;
pub mod contention;
pub mod real_bugs;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    results::{Outcome, ScenarioResult},
    runner::{self, RunOptions},
    scenario::Plan,
    targets::{
        Target,
        embedded::{EmbeddedConfig, EmbeddedTarget, Fault, Faults},
    },
};

/// How a battery runs.
#[derive(Debug, Clone, Copy)]
pub struct SuiteOptions {
    /// Scenarios in flight at once (each has its own cluster on its own address slot).
    pub concurrency: usize,
    /// Passed to the runner.
    pub run: RunOptions,
}

impl SuiteOptions {
    /// What the fault matrix uses: everything converges in milliseconds on the embedded target, so 2 s is ample
    /// for a correct implementation and keeps a faulty one from waiting out 10 s timeouts.
    pub fn matrix() -> Self {
        Self { concurrency: 12, run: RunOptions { timeout_cap: Some(Duration::from_secs(2)) } }
    }
}

/// Runs every plan against its own fresh embedded cluster built from `config`; results in plan order.
pub async fn run_embedded(plans: &[Plan], config: &EmbeddedConfig, options: SuiteOptions) -> Vec<ScenarioResult> {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (i, plan) in plans.iter().enumerate() {
        let (plan, config, permits) = (plan.clone(), config.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, run_one(&plan, config, options.run).await)
        });
    }
    let mut results: Vec<Option<ScenarioResult>> = vec![None; plans.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, r)) = joined {
            results[i] = Some(r);
        }
    }
    results
        .into_iter()
        .zip(plans)
        .map(|(r, p)| r.unwrap_or_else(|| crashed(p, "embedded", "scenario task panicked")))
        .collect()
}

/// One plan against a fresh embedded cluster.
pub async fn run_one(plan: &Plan, config: EmbeddedConfig, options: RunOptions) -> ScenarioResult {
    match EmbeddedTarget::start(config).await {
        Ok(target) => {
            let result = runner::run_plan_with(plan, &target, options, &mut |_| {}).await;
            target.shutdown().await;
            result
        }
        Err(e) => crashed(plan, "embedded", &format!("cannot start the embedded cluster: {e}")),
    }
}

/// A scenario that could not run: one failed setup step saying why.
pub(crate) fn crashed(plan: &Plan, target: &str, why: &str) -> ScenarioResult {
    ScenarioResult {
        name: plan.name.clone(),
        description: plan.description.clone(),
        source: plan.source.display().to_string(),
        target: target.into(),
        outcome: Outcome::Failed,
        duration_ms: 0.0,
        steps: vec![crate::results::StepResult {
            index: 0,
            line: 0,
            kind: "setup".into(),
            summary: "start target".into(),
            step: serde_json::Value::Null,
            outcome: Outcome::Failed,
            duration_ms: 0.0,
            convergence_ms: None,
            attempts: 1,
            expected: None,
            actual: None,
            message: Some(why.to_owned()),
            note: None,
            measurement: None,
        }],
    }
}

/// One fault's row of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    /// The seeded fault.
    pub fault: Fault,
    /// Per scenario: did it fail (catch the fault), and the first failure's message.
    pub cells: BTreeMap<String, Cell>,
}

/// One fault × scenario cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// The scenario failed: the fault was caught.
    pub caught: bool,
    /// A measurement of the scenario could not be judged (the generator fell behind), and nothing failed.
    #[serde(default)]
    pub inconclusive: bool,
    /// Where and why it failed.
    pub detail: Option<String>,
}

impl FaultRow {
    /// Scenarios that caught the fault.
    pub fn caught_by(&self) -> Vec<&str> {
        self.cells.iter().filter(|(_, c)| c.caught).map(|(n, _)| n.as_str()).collect()
    }

    /// Scenarios that could not be judged with the fault seeded (their load generator fell behind).
    pub fn inconclusive_in(&self) -> Vec<&str> {
        self.cells.iter().filter(|(_, c)| c.inconclusive).map(|(n, _)| n.as_str()).collect()
    }
}

/// Runs the battery once per fault.
pub async fn fault_row(plans: &[Plan], fault: Fault, options: SuiteOptions) -> FaultRow {
    let config = EmbeddedConfig { faults: Faults([fault].into()), ..EmbeddedConfig::default() };
    let results = run_embedded(plans, &config, options).await;
    let cells = results
        .into_iter()
        .map(|r| {
            let detail = r.first_failure().map(|s| {
                format!("step {} (line {}) {}: {}", s.index, s.line, s.summary, s.message.clone().unwrap_or_default())
            });
            let (caught, inconclusive) = (r.outcome == Outcome::Failed, r.outcome == Outcome::Inconclusive);
            (r.name.clone(), Cell { caught, inconclusive, detail })
        })
        .collect();
    FaultRow { fault, cells }
}

/// Renders the matrix as a text table: faults down, scenarios across (by index, with a legend).
pub fn render_matrix(plans: &[Plan], rows: &[FaultRow]) -> String {
    let mut out = String::new();
    out.push_str("scenarios:\n");
    for (i, p) in plans.iter().enumerate() {
        out.push_str(&format!("  {:>2} {}\n", i + 1, p.name));
    }
    let width = rows.iter().map(|r| r.fault.name().len()).max().unwrap_or(5).max(5);
    out.push_str(&format!("\n{:width$}  ", "fault"));
    for i in 0..plans.len() {
        out.push_str(&format!("{:>3}", i + 1));
    }
    out.push_str("  caught\n");
    for row in rows {
        out.push_str(&format!("{:width$}  ", row.fault.name()));
        for p in plans {
            let mark = match row.cells.get(&p.name) {
                Some(c) if c.caught => "  X",
                Some(c) if c.inconclusive => "  ~",
                Some(_) => "  .",
                None => "  ?",
            };
            out.push_str(mark);
        }
        let n = row.caught_by().len();
        let verdict = match (n, row.inconclusive_in().is_empty()) {
            (0, true) => "MISSED".to_owned(),
            (0, false) => "inconclusive".to_owned(),
            (n, _) => n.to_string(),
        };
        out.push_str(&format!("  {verdict}\n"));
    }
    out.push_str(
        "\nX = the scenario failed with the fault seeded (caught), . = passed (missed), ~ = inconclusive (its load \
         generator fell behind: neither)\n",
    );
    out
}
