//! Console output: one line per scenario, and for a failure the failing step with expected vs actual. With an
//! expected-failure profile, listed failures print as `XFAIL` (with the profile's reason) and listed scenarios that
//! pass as `XPASS`.

use std::io::Write;

use super::profile::{Profile, Verdict, verdict};
use crate::{
    results::{Outcome, ScenarioResult},
    runner::RunEvent,
};

/// Prints scenario results as they finish.
pub struct ConsoleReporter<W: Write> {
    out: W,
    verbose: bool,
    profile: Option<Profile>,
    name_scenarios: bool,
}

impl<W: Write> ConsoleReporter<W> {
    /// A reporter writing to `out`; `verbose` also prints every step.
    pub fn new(out: W, verbose: bool) -> Self {
        Self { out, verbose, profile: None, name_scenarios: false }
    }

    /// Names the scenario on every step line: several scenarios in flight interleave their steps.
    pub fn naming_scenarios(mut self, yes: bool) -> Self {
        self.name_scenarios = yes;
        self
    }

    /// Judges scenarios against an expected-failure profile.
    pub fn with_profile(mut self, profile: Option<Profile>) -> Self {
        self.profile = profile;
        self
    }

    /// Handles one event. Write errors are ignored: a closed stdout must not stop the run.
    pub fn on_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::StepFinished { scenario, result } if self.verbose => {
                let _ = writeln!(
                    self.out,
                    "    {:>7} {}{:>3}. {}{}",
                    format!("{:?}", result.outcome).to_lowercase(),
                    if self.name_scenarios { format!("{scenario} ") } else { String::new() },
                    result.index,
                    result.summary,
                    result.convergence_ms.map(|c| format!(" ({c:.1} ms)")).unwrap_or_default()
                );
            }
            RunEvent::ScenarioFinished(result) => {
                let text = match &self.profile {
                    Some(p) => format_scenario_with_profile(result, p),
                    None => format_scenario(result),
                };
                let _ = self.out.write_all(text.as_bytes());
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
        Outcome::Inconclusive => "INCONCLUSIVE",
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
    if let Some(step) = result.first_not_permitted() {
        s.push_str(&format!(
            "  step {} (line {}) {}: {}\n",
            step.index,
            step.line,
            step.summary,
            step.message.as_deref().unwrap_or_default()
        ));
    }
    for step in result.steps.iter().filter(|s| s.outcome == Outcome::Inconclusive) {
        s.push_str(&format!(
            "  step {} (line {}) {}: {}\n",
            step.index,
            step.line,
            step.summary,
            step.message.as_deref().unwrap_or("inconclusive")
        ));
    }
    for step in &result.steps {
        if let Some(note) = &step.note {
            s.push_str(&format!("  note: step {} (line {}): {note}\n", step.index, step.line));
        }
    }
    s.push_str(&format_shortfalls(result));
    s
}

/// One `note:` line per load step that sent fewer requests or queries than its schedule intended (it was cut at
/// its `duration`): an overloaded generator or target, visible even when the step passed.
pub fn format_shortfalls(result: &ScenarioResult) -> String {
    use crate::results::Measurement;
    let mut s = String::new();
    for step in &result.steps {
        let (what, sent, intended, achieved, rate) = match &step.measurement {
            Some(Measurement::HttpLoad(r)) => ("requests", r.sent, r.intended, r.achieved_rate, r.rate),
            Some(Measurement::DnsLoad(r)) => ("queries", r.sent, r.intended, r.achieved_rate, Some(r.rate)),
            _ => continue,
        };
        if sent >= intended {
            continue;
        }
        let intended_rate = rate.filter(|r| *r > 0.0).map(|r| format!(" of {r:.0}/s intended")).unwrap_or_default();
        s.push_str(&format!(
            "  note: step {} (line {}) sent {sent} of {intended} {what} ({achieved:.0}/s achieved{intended_rate}): \
             the generator or the target could not keep up before the step's duration\n",
            step.index, step.line
        ));
    }
    s
}

/// A scenario's result under an expected-failure profile: `XFAIL` with the reason (and the failure, indented, so a
/// changed way of failing is still visible), `XPASS` with the stale entry, otherwise as [`format_scenario`].
pub fn format_scenario_with_profile(result: &ScenarioResult, profile: &Profile) -> String {
    let Some(entry) = profile.expected_failure(&result.name) else { return format_scenario(result) };
    let head = |tag: &str| {
        format!(
            "{tag} {}::{} ({} steps, {:.2}s)\n",
            result.target,
            result.name,
            result.steps.len(),
            result.duration_ms / 1000.0
        )
    };
    match verdict(result, Some(profile)) {
        Verdict::ExpectedFail => {
            let mut s = head("XFAIL");
            s.push_str(&format!("  expected failure ({}:{}): {}\n", profile.path.display(), entry.line, entry.reason));
            if let Some(step) = result.first_failure() {
                s.push_str(&format_failure(result, step));
            }
            s
        }
        Verdict::UnexpectedPass => {
            let mut s = head("XPASS");
            s.push_str(&format!(
                "  listed as an expected failure in {}:{} but passed: remove it from the profile if the fix is intended\n  \
                 its reason: {}\n",
                profile.path.display(),
                entry.line,
                entry.reason
            ));
            s
        }
        _ => format_scenario(result),
    }
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
