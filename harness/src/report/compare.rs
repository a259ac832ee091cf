//! The comparison every rendered report is built from: one or more runs (a results document, its profile, where it
//! came from) as labelled columns, and the union of their scenarios as rows.

use std::path::PathBuf;

use super::profile::{Profile, Verdict, verdict};
use crate::results::{RunResults, ScenarioResult};

/// One results document and what the report needs beside it.
#[derive(Debug, Clone)]
pub struct RunInput {
    /// The results.
    pub results: RunResults,
    /// Expected failures of the implementation that ran, if any.
    pub profile: Option<Profile>,
    /// The file the results were read from (`None` for a run rendered straight from memory).
    pub source: Option<PathBuf>,
}

/// A run as a column of the report.
#[derive(Debug, Clone)]
pub struct RunColumn {
    /// Column heading: the target name, plus the run id where two runs share a target.
    pub label: String,
    /// The run.
    pub input: RunInput,
}

/// How many scenarios of a run ended how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed, not expected to.
    pub failed: usize,
    /// Failed as the profile expects.
    pub expected_fail: usize,
    /// Passed although the profile expects a failure.
    pub unexpected_pass: usize,
    /// Not run.
    pub skipped: usize,
    /// A measurement could not be judged (the harness's generator fell behind).
    pub inconclusive: usize,
}

impl Counts {
    /// All scenarios counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.expected_fail + self.unexpected_pass + self.skipped + self.inconclusive
    }
}

/// Runs side by side.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Columns, in the order given.
    pub runs: Vec<RunColumn>,
    /// Scenario names over all runs, in order of first appearance.
    pub scenarios: Vec<String>,
    /// Said about the comparison as a whole, e.g. implementations that could not run here and why.
    pub notes: Vec<String>,
}

impl Comparison {
    /// Labels the runs (target name; `target · run-id` where targets repeat; `#n` where even that repeats) and
    /// collects their scenarios.
    pub fn new(inputs: Vec<RunInput>) -> Self {
        let targets: Vec<&str> = inputs.iter().map(|i| i.results.target.name.as_str()).collect();
        let mut labels: Vec<String> = inputs
            .iter()
            .map(|i| {
                let t = i.results.target.name.as_str();
                if targets.iter().filter(|o| **o == t).count() > 1 {
                    format!("{t} · {}", i.results.run_id)
                } else {
                    t.to_owned()
                }
            })
            .collect();
        // The same file given twice: number the repeats so every column stays addressable.
        for i in 0..labels.len() {
            let repeats = labels[..i].iter().filter(|l| **l == labels[i]).count();
            if repeats > 0 {
                labels[i] = format!("{} #{}", labels[i], repeats + 1);
            }
        }
        let mut scenarios: Vec<String> = Vec::new();
        for input in &inputs {
            for s in &input.results.scenarios {
                if !scenarios.contains(&s.name) {
                    scenarios.push(s.name.clone());
                }
            }
        }
        let runs = labels.into_iter().zip(inputs).map(|(label, input)| RunColumn { label, input }).collect();
        Self { runs, scenarios, notes: Vec::new() }
    }

    /// With notes shown above the results.
    pub fn with_notes(mut self, notes: Vec<String>) -> Self {
        self.notes = notes;
        self
    }

    /// A scenario's result in one run.
    pub fn result(&self, run: usize, scenario: &str) -> Option<&ScenarioResult> {
        self.runs.get(run)?.input.results.scenarios.iter().find(|s| s.name == scenario)
    }

    /// A scenario's verdict in one run; `None` when that run did not include it.
    pub fn verdict(&self, run: usize, scenario: &str) -> Option<Verdict> {
        let result = self.result(run, scenario)?;
        Some(verdict(result, self.runs[run].input.profile.as_ref()))
    }

    /// Verdict counts of one run.
    pub fn counts(&self, run: usize) -> Counts {
        let mut c = Counts::default();
        let Some(column) = self.runs.get(run) else { return c };
        for s in &column.input.results.scenarios {
            match verdict(s, column.input.profile.as_ref()) {
                Verdict::Passed => c.passed += 1,
                Verdict::Failed => c.failed += 1,
                Verdict::ExpectedFail => c.expected_fail += 1,
                Verdict::UnexpectedPass => c.unexpected_pass += 1,
                Verdict::Skipped => c.skipped += 1,
                Verdict::Inconclusive => c.inconclusive += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Outcome, TargetInfo};

    fn run(target: &str, run_id: &str, scenarios: &[(&str, Outcome)]) -> RunInput {
        RunInput {
            results: RunResults {
                schema_version: 1,
                run_id: run_id.into(),
                started_at: String::new(),
                duration_ms: 0.0,
                target: TargetInfo { name: target.into(), description: String::new() },
                scenarios: scenarios
                    .iter()
                    .map(|(name, outcome)| ScenarioResult {
                        name: (*name).into(),
                        description: String::new(),
                        source: String::new(),
                        target: target.into(),
                        outcome: *outcome,
                        duration_ms: 0.0,
                        steps: Vec::new(),
                    })
                    .collect(),
            },
            profile: None,
            source: None,
        }
    }

    #[test]
    fn labels_disambiguate_repeated_targets() {
        let c = Comparison::new(vec![
            run("iptables", "r1", &[("a", Outcome::Passed)]),
            run("nftables", "r2", &[("b", Outcome::Failed)]),
            run("iptables", "r3", &[("a", Outcome::Passed)]),
            run("iptables", "r3", &[]),
        ]);
        let labels: Vec<&str> = c.runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["iptables · r1", "nftables", "iptables · r3", "iptables · r3 #2"]);
        assert_eq!(c.scenarios, ["a", "b"]);
        assert_eq!(c.verdict(1, "b"), Some(Verdict::Failed));
        assert_eq!(c.verdict(1, "a"), None);
        assert_eq!(c.counts(1), Counts { failed: 1, ..Counts::default() });
    }
}
