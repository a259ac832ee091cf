//! Live progress of `svcbench run` on a terminal: scenarios done of n, and every scenario in flight with the step it
//! is on. Drawn on stderr with indicatif, and only when stderr is a terminal, so CI logs and pipes get just the
//! PASS/FAIL lines.

use std::{collections::BTreeMap, io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runner::RunEvent;

/// A progress line fed by runner events.
pub struct Progress {
    bar: ProgressBar,
    total: usize,
    started: usize,
    /// Scenarios in flight: name → (steps, current step, its summary).
    running: BTreeMap<String, (usize, usize, String)>,
}

impl Progress {
    /// A progress line for `scenarios` scenarios: drawn on stderr when it is a terminal, hidden otherwise.
    pub fn new(scenarios: usize) -> Self {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Self::with_target(scenarios, target)
    }

    /// A progress line drawn on `target`.
    pub fn with_target(scenarios: usize, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(scenarios as u64), target);
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} [{bar:20}] {elapsed:>3} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        if !bar.is_hidden() {
            // Assertions can poll for seconds: keep the spinner and clock moving meanwhile.
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Self { bar, total: scenarios, started: 0, running: BTreeMap::new() }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Follows one runner event.
    pub fn on_event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::ScenarioStarted { name, steps, .. } => {
                self.started += 1;
                self.running.insert(name.clone(), (*steps, 0, String::new()));
            }
            RunEvent::StepStarted { scenario, index, summary } => {
                if let Some(at) = self.running.get_mut(scenario) {
                    (at.1, at.2) = (*index, summary.clone());
                }
            }
            RunEvent::ScenarioFinished(result) => {
                self.running.remove(&result.name);
                self.bar.inc(1);
            }
            RunEvent::StepFinished { .. } => return,
        }
        self.redraw();
    }

    fn redraw(&self) {
        self.bar.set_prefix(match self.running.len() {
            0 | 1 => format!("scenario {}/{}", self.started, self.total),
            n => format!("scenarios {}/{} ({n} running)", self.started, self.total),
        });
        let message = match self.running.iter().collect::<Vec<_>>().as_slice() {
            [] => String::new(),
            [(name, (steps, 0, _))] => format!("{name} · {steps} steps"),
            [(name, (steps, index, summary))] => format!("{name} · step {index}/{steps}: {summary}"),
            several => several
                .iter()
                .map(|(name, (steps, index, _))| format!("{name} {index}/{steps}"))
                .collect::<Vec<_>>()
                .join(" · "),
        };
        self.bar.set_message(message);
    }

    /// Runs `f` (which prints) with the progress line cleared, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the progress line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// The line's current message (`scenario · step 3/12: summary`).
    pub fn message(&self) -> String {
        self.bar.message()
    }

    /// The line's prefix (`scenario 2/25`).
    pub fn prefix(&self) -> String {
        self.bar.prefix()
    }

    /// Scenarios finished.
    pub fn finished(&self) -> u64 {
        self.bar.position()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Outcome, ScenarioResult};

    #[test]
    fn follows_scenarios_and_steps() {
        let mut p = Progress::with_target(2, ProgressDrawTarget::hidden());
        assert!(!p.is_visible());
        p.on_event(&RunEvent::ScenarioStarted { name: "dns-basics".into(), target: "t".into(), steps: 12 });
        p.on_event(&RunEvent::StepStarted { scenario: "dns-basics".into(), index: 3, summary: "scale".into() });
        assert_eq!(p.prefix(), "scenario 1/2");
        assert_eq!(p.message(), "dns-basics · step 3/12: scale");
        assert_eq!(p.finished(), 0);
        p.on_event(&RunEvent::ScenarioFinished(ScenarioResult {
            name: "dns-basics".into(),
            description: String::new(),
            source: String::new(),
            target: "t".into(),
            outcome: Outcome::Passed,
            duration_ms: 0.0,
            steps: Vec::new(),
        }));
        p.on_event(&RunEvent::ScenarioStarted { name: "readiness".into(), target: "t".into(), steps: 4 });
        assert_eq!((p.prefix().as_str(), p.finished()), ("scenario 2/2", 1));
        assert_eq!(p.suspend(|| 7), 7);
    }

    #[test]
    fn names_every_scenario_in_flight() {
        let mut p = Progress::with_target(3, ProgressDrawTarget::hidden());
        for (name, steps) in [("dns-basics", 12), ("readiness", 4)] {
            p.on_event(&RunEvent::ScenarioStarted { name: name.into(), target: "t".into(), steps });
        }
        p.on_event(&RunEvent::StepStarted { scenario: "readiness".into(), index: 2, summary: "scale".into() });
        assert_eq!(p.prefix(), "scenarios 2/3 (2 running)");
        assert_eq!(p.message(), "dns-basics 0/12 · readiness 2/4");
    }
}
