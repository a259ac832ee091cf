//! The runner: executes a [`Plan`] against a [`Target`], polling each assertion until it holds or times out, and
//! hands owned [`RunEvent`]s to a callback. It never prints; reporters consume the events and the results.

mod candidates;
pub mod check;
mod converge;
mod http;
mod measure;
mod pods;
mod summary;
mod udp;

use std::time::{Duration, Instant};

use crate::{
    probe::pace::{DEFAULT_TOLERANCE, PaceMonitor},
    results::{Outcome, ScenarioResult, StepResult},
    scenario::{Plan, Step, StepKind},
    targets::{Target, TargetError},
};

pub use summary::summarize;

/// Progress of a run, in order.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A scenario begins.
    ScenarioStarted {
        /// Scenario name.
        name: String,
        /// Target name.
        target: String,
        /// Number of steps.
        steps: usize,
    },
    /// A step begins.
    StepStarted {
        /// Scenario name.
        scenario: String,
        /// 1-based step index.
        index: usize,
        /// One-line description.
        summary: String,
    },
    /// A step finished.
    StepFinished {
        /// Scenario name.
        scenario: String,
        /// Its result (boxed: it carries measurements).
        result: Box<StepResult>,
    },
    /// A scenario finished.
    ScenarioFinished(ScenarioResult),
}

/// Inconclusive measurements of one step before the step is reported inconclusive.
pub const INCONCLUSIVE_ATTEMPTS: u32 = 3;

/// Attempts a polled assertion always gets before it fails: on a starved machine one attempt (52 connections for a
/// `reachesAll`, say) can take a whole short timeout, and a single sample cannot tell a transient from a fault.
pub const MIN_ATTEMPTS: u32 = 2;

/// Consecutive attempts a "nothing answers" expectation (a connect refused or timing out, a UDP datagram refused or
/// unanswered) must hold before it passes. A backend that is going away answers exactly like that for a moment (its
/// process gone, its address still programmed), so one such answer says nothing about the converged data plane:
/// measured on Cilium, a Service scaled to zero gave ECONNREFUSED from the dying pod, then EHOSTUNREACH for good.
pub const SETTLED_ATTEMPTS: u32 = 3;

/// Whether `check` expects nothing to answer (see [`SETTLED_ATTEMPTS`]).
fn must_settle(check: &crate::scenario::Check) -> bool {
    use crate::scenario::{Check, ConnectOutcome, UdpOutcome};
    matches!(
        check,
        Check::Connect { outcome: ConnectOutcome::Refused | ConnectOutcome::Timeout, .. }
            | Check::Udp { outcome: UdpOutcome::Refused | UdpOutcome::Timeout, .. }
    )
}

/// How often a polled assertion's watch on the harness wakes: fine enough for stalls over the tolerance.
pub(crate) const HARNESS_TICK: Duration = Duration::from_millis(10);

/// A duration rounded to whole milliseconds, as text (`1s 420ms`).
fn whole_ms(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How a plan is run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Upper bound on assertion timeouts up to the default (the fault matrix uses a short one: the embedded target
    /// converges in milliseconds, and a seeded fault would otherwise wait out every full timeout). Timeouts a
    /// scenario sets above the default are kept.
    pub timeout_cap: Option<Duration>,
}

/// Runs one scenario. Steps after the first failure are reported as skipped: they build on it.
pub async fn run_plan(plan: &Plan, target: &dyn Target, on_event: &mut (dyn FnMut(RunEvent) + Send)) -> ScenarioResult {
    run_plan_with(plan, target, RunOptions::default(), on_event).await
}

/// [`run_plan`] with options.
pub async fn run_plan_with(
    plan: &Plan,
    target: &dyn Target,
    options: RunOptions,
    on_event: &mut (dyn FnMut(RunEvent) + Send),
) -> ScenarioResult {
    let started = Instant::now();
    on_event(RunEvent::ScenarioStarted {
        name: plan.name.clone(),
        target: target.name().to_owned(),
        steps: plan.steps.len(),
    });
    let mut steps = Vec::new();
    let mut failed = false;
    let mut inconclusive = false;
    // A step the harness's identity may not run (HTTP 403): it and every later step are not run.
    let mut not_permitted = false;
    for step in &plan.steps {
        let summary = summarize(step);
        let result = if failed || not_permitted {
            skipped(step, summary)
        } else {
            on_event(RunEvent::StepStarted {
                scenario: plan.name.clone(),
                index: step.index,
                summary: summary.clone(),
            });
            let r = run_step(step, summary, target, options).await;
            failed = r.outcome == Outcome::Failed;
            not_permitted = r.outcome == Outcome::Skipped;
            // A step that could not be judged changed nothing the next steps build on: they still run.
            inconclusive |= r.outcome == Outcome::Inconclusive;
            r
        };
        on_event(RunEvent::StepFinished { scenario: plan.name.clone(), result: Box::new(result.clone()) });
        steps.push(result);
    }
    let result = ScenarioResult {
        name: plan.name.clone(),
        description: plan.description.clone(),
        source: plan.source.display().to_string(),
        target: target.name().to_owned(),
        outcome: match (failed, not_permitted, inconclusive) {
            (true, ..) => Outcome::Failed,
            (false, true, _) => Outcome::Skipped,
            (false, false, true) => Outcome::Inconclusive,
            (false, false, false) => Outcome::Passed,
        },
        duration_ms: ms(started.elapsed()),
        steps,
    };
    on_event(RunEvent::ScenarioFinished(result.clone()));
    result
}

fn base(step: &Step, summary: String) -> StepResult {
    StepResult {
        index: step.index,
        line: step.line,
        kind: match step.kind {
            StepKind::Action(_) | StepKind::LiteralNamespace { .. } => "action".into(),
            StepKind::Assert(_) => "assert".into(),
            StepKind::Converge(_) => "converge".into(),
            StepKind::Wait { .. } => "wait".into(),
        },
        summary,
        step: serde_json::to_value(&step.kind).unwrap_or_default(),
        outcome: Outcome::Passed,
        duration_ms: 0.0,
        convergence_ms: None,
        attempts: 0,
        expected: None,
        actual: None,
        message: None,
        note: None,
        measurement: None,
    }
}

fn skipped(step: &Step, summary: String) -> StepResult {
    StepResult { outcome: Outcome::Skipped, ..base(step, summary) }
}

/// A step that failed with `e`: rejected, or not run when the harness's identity may not do it.
fn refused(result: &mut StepResult, e: &TargetError) {
    if matches!(e, TargetError::NotPermitted(_)) {
        result.outcome = Outcome::Skipped;
        result.message = Some(format!("not run: the harness's identity may not do this: {e}"));
    } else {
        result.outcome = Outcome::Failed;
        result.message = Some(format!("action rejected: {e}"));
    }
}

async fn run_step(step: &Step, summary: String, target: &dyn Target, options: RunOptions) -> StepResult {
    let started = Instant::now();
    let mut result = base(step, summary);
    match &step.kind {
        StepKind::Action(action) => {
            result.attempts = 1;
            if let Err(e) = target.apply(action).await {
                refused(&mut result, &e);
            }
        }
        StepKind::Wait { duration } => {
            result.attempts = 1;
            tokio::time::sleep(*duration).await;
        }
        StepKind::LiteralNamespace { name } => {
            result.attempts = 1;
            if let Err(e) = target.create_literal_namespace(name).await {
                refused(&mut result, &e);
            }
        }
        StepKind::Converge(c) => {
            result.attempts = 1;
            match converge::run(c, target).await {
                Ok((e, report)) => {
                    result.expected = Some(e.expected);
                    result.actual = Some(e.actual);
                    result.convergence_ms =
                        [report.endpoints_ms, report.dns_ms, report.traffic_ms].into_iter().flatten().reduce(f64::max);
                    result.measurement = Some(crate::results::Measurement::Convergence(report));
                    if !e.holds {
                        result.outcome = Outcome::Failed;
                        result.message = Some(e.message);
                    }
                }
                Err(e) => {
                    refused(&mut result, &e);
                }
            }
        }
        StepKind::Assert(assertion) => {
            // The cap shortens default timeouts only: a scenario that asks for longer (bulk checks) needs it.
            let timeout = match options.timeout_cap {
                Some(cap) if assertion.timeout <= crate::scenario::DEFAULT_TIMEOUT => cap.min(assertion.timeout),
                _ => assertion.timeout,
            };
            let deadline = started + timeout;
            // Time in which the harness itself could not run (a starved machine) does not count against the
            // target: the deadline moves out by it, up to one more timeout.
            let harness = PaceMonitor::with_tick(started, DEFAULT_TOLERANCE, HARNESS_TICK);
            let mut inconclusive = 0;
            // The last attempt that failed on its own merits: later inconclusive attempts do not hide it.
            let mut failure: Option<String> = None;
            let required = if must_settle(&assertion.check) { SETTLED_ATTEMPTS } else { 1 };
            // Consecutive attempts that held, and when the first of them began.
            let mut streak: (u32, Option<Duration>) = (0, None);
            loop {
                result.attempts += 1;
                let attempt_began = started.elapsed();
                let evaluation = check::evaluate(&assertion.check, target).await;
                if !matches!(&evaluation, Ok(e) if e.holds) {
                    streak = (0, None);
                }
                match evaluation {
                    Ok(e) => {
                        result.expected = Some(e.expected);
                        result.actual = Some(e.actual);
                        result.measurement = e.measurement;
                        if e.holds {
                            streak = (streak.0 + 1, streak.1.or(Some(attempt_began)));
                            if streak.0 >= required {
                                // A no-answer state converged when its streak began; any other check when it held.
                                result.convergence_ms = Some(ms(if required == 1 {
                                    started.elapsed()
                                } else {
                                    streak.1.unwrap_or_default()
                                }));
                                result.message = None;
                                result.note = e.note;
                                break;
                            }
                            result.message = Some(format!(
                                "held on {} of the {required} consecutive attempts a no-answer expectation needs",
                                streak.0
                            ));
                            // Not held to the deadline: a streak that began before it finishes (at most
                            // SETTLED_ATTEMPTS - 1 more attempts), and a state that held from then on held at the
                            // deadline; one answer in between ends it at the deadline check below.
                            tokio::time::sleep(target.poll_interval()).await;
                            continue;
                        }
                        result.message = Some(e.message);
                        if let Some(why) = e.inconclusive {
                            // The client, not the target, fell behind: measure again, a bounded number of times
                            // (past the step's timeout too: each attempt is itself bounded by the load's duration).
                            inconclusive += 1;
                            if inconclusive >= INCONCLUSIVE_ATTEMPTS {
                                result.outcome = Outcome::Inconclusive;
                                result.message = Some(format!("{why} ({} attempts)", result.attempts));
                                if let Some(failed) = failure {
                                    result.outcome = Outcome::Failed;
                                    result.message = Some(format!(
                                        "{failed} (an earlier of {} attempts; the later ones were inconclusive)",
                                        result.attempts
                                    ));
                                }
                                break;
                            }
                            continue;
                        }
                        failure = result.message.clone();
                    }
                    Err(e @ TargetError::NotPermitted(_)) => {
                        refused(&mut result, &e);
                        break;
                    }
                    Err(e) => result.message = Some(e.to_string()),
                }
                let stalled = harness.stalled();
                let deadline = deadline + stalled.min(timeout);
                // A deadline that one slow attempt used up entirely still gets a second, whole sample.
                if Instant::now() >= deadline && result.attempts >= MIN_ATTEMPTS {
                    let why = result.message.take().unwrap_or_default();
                    let attempts = result.attempts;
                    // The target had its whole timeout of running harness unless the stalls outgrew the one
                    // timeout of extension.
                    if stalled > timeout {
                        result.outcome = Outcome::Inconclusive;
                        result.message = Some(format!(
                            "the harness itself could not run for {} of the step's {timeout:?} (a \
                             starved machine), so the timeout says nothing about the target; last of {attempts} \
                             attempts: {why}",
                            whole_ms(stalled)
                        ));
                    } else {
                        result.outcome = Outcome::Failed;
                        let extra = if stalled.is_zero() {
                            String::new()
                        } else {
                            format!(" (+{} the harness could not run)", whole_ms(stalled))
                        };
                        result.message =
                            Some(format!("still failing after {timeout:?}{extra} ({attempts} attempts): {why}"));
                    }
                    break;
                }
                tokio::time::sleep(target.poll_interval().min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
        }
    }
    result.duration_ms = ms(started.elapsed());
    result
}
