//! Console output: one line per scenario, and for a failure the failing step with expected vs actual.

use std::io::Write;

use crate::{
    results::{Outcome, ScenarioResult},
    runner::RunEvent,
};

/// Prints scenario results as they finish.
pub struct ConsoleReporter<W: Write> {
    out: W,
    verbose: bool,
}

impl<W: Write> ConsoleReporter<W> {
    /// A reporter writing to `out`; `verbose` also prints every step.
    pub fn new(out: W, verbose: bool) -> Self {
        Self { out, verbose }
    }

    /// Handles one event. Write errors are ignored: a closed stdout must not stop the run.
    pub fn on_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::StepFinished { result, .. } if self.verbose => {
                let _ = writeln!(
                    self.out,
                    "    {:>7} {:>3}. {}{}",
                    format!("{:?}", result.outcome).to_lowercase(),
                    result.index,
                    result.summary,
                    result.convergence_ms.map(|c| format!(" ({c:.1} ms)")).unwrap_or_default()
                );
            }
            RunEvent::ScenarioFinished(result) => {
                let _ = self.out.write_all(format_scenario(result).as_bytes());
            }
            _ => {}
        }
    }
}

/// A scenario's result as console text: a PASS/FAIL line, plus detail for the failing step.
pub fn format_scenario(result: &ScenarioResult) -> String {
    let tag = match result.outcome {
        Outcome::Passed => "PASS",
        Outcome::Failed => "FAIL",
        Outcome::Skipped => "SKIP",
    };
    let mut s = format!(
        "{tag} {}::{} ({} steps, {:.2}s)\n",
        result.target,
        result.name,
        result.steps.len(),
        result.duration_ms / 1000.0
    );
    if let Some(step) = result.first_failure() {
        s.push_str(&format_failure(result, step));
    }
    s
}

/// The failing step: where, what, expected vs actual.
pub fn format_failure(result: &ScenarioResult, step: &crate::results::StepResult) -> String {
    let mut s = format!("  step {} at {}:{}: {}\n", step.index, result.source, step.line, step.summary);
    if let Some(m) = &step.message {
        s.push_str(&format!("    {m}\n"));
    }
    if let Some(e) = &step.expected {
        s.push_str(&format!("    expected: {e}\n"));
    }
    if let Some(a) = &step.actual {
        s.push_str(&format!("    actual:   {a}\n"));
    }
    s
}
