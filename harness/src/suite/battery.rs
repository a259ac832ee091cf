//! A battery against one implementation with several scenarios in flight: the scheduler that keeps apart what must
//! not overlap (each plan's [`Isolation`]), teardown in the background, every scenario's events in one stream, results
//! in plan order, and on cancellation every target in flight shut down before returning.
//!
//! Scheduling rules ("Parallel scenarios on one cluster" in harness/doc/writing-scenarios.md lists them for authors):
//! - at most `jobs` scenarios run at once; a scenario being torn down does not count, so deleting a finished
//!   scenario's namespaces never blocks the next one;
//! - a scenario that holds something (a literal namespace, a node port by number, a node's host-network agent)
//!   waits until no running or terminating scenario holds the same thing;
//! - a scenario that runs alone starts only when nothing else is running or terminating, and nothing starts beside
//!   it until its own namespaces are gone. With more than one job these run first, before the shared ones.

use std::{collections::HashMap, future::Future, sync::Arc};

use async_trait::async_trait;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    results::ScenarioResult,
    runner::{self, RunEvent, RunOptions},
    scenario::{Isolation, Plan, isolation},
    targets::{Target, TargetError},
};

/// Scenarios in flight on a real cluster unless asked otherwise (measured on two cores: see
/// harness/doc/writing-scenarios.md). There scenarios mostly wait for controllers and proxies, so several overlap
/// even on two cores.
pub const DEFAULT_CLUSTER_JOBS: usize = 4;

/// Starts a fresh target for each scenario (new namespaces on a cluster, or a new embedded cluster).
#[async_trait]
pub trait TargetSource: Send + Sync {
    /// The target name results carry.
    fn name(&self) -> String;

    /// A fresh target for one scenario.
    async fn start(&self) -> Result<Box<dyn Target>, TargetError>;
}

/// How a battery runs.
#[derive(Debug, Clone, Copy)]
pub struct BatteryOptions {
    /// Scenarios in flight at once (1: one after another).
    pub jobs: usize,
    /// Passed to the runner.
    pub run: RunOptions,
}

impl Default for BatteryOptions {
    fn default() -> Self {
        Self { jobs: 1, run: RunOptions::default() }
    }
}

/// Why a battery stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BatteryError {
    /// A scenario's target could not be started; everything in flight was shut down.
    #[error("cannot start target {target}: {error}")]
    Start {
        /// The target name.
        target: String,
        /// What went wrong.
        error: TargetError,
    },
    /// Cancelled (Ctrl-C); everything in flight was shut down.
    #[error("interrupted")]
    Interrupted,
}

/// What a battery produced.
#[derive(Debug, Clone)]
pub struct BatteryResults {
    /// One result per plan, in plan order.
    pub scenarios: Vec<ScenarioResult>,
    /// The first target's description of the implementation (`None` when no scenario started).
    pub description: Option<String>,
    /// When each scenario started, finished and was gone, from the battery's start; in plan order.
    pub spans: Vec<Span>,
}

/// One scenario's life in a battery, in seconds from the battery's start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Span {
    /// Its target started.
    pub started: f64,
    /// Its last step ended.
    pub finished: f64,
    /// Its teardown ended (its namespaces are gone).
    pub gone: f64,
    /// It ran alone.
    pub alone: bool,
}

impl BatteryResults {
    /// The most scenarios running at once (teardowns not counted).
    pub fn peak_in_flight(&self) -> usize {
        let mut edges: Vec<(f64, i32)> = self.spans.iter().flat_map(|s| [(s.started, 1), (s.finished, -1)]).collect();
        // Ends before starts at the same instant: a slot handed on is not two at once.
        edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, d) in edges {
            now += d;
            peak = peak.max(now);
        }
        usize::try_from(peak).unwrap_or_default()
    }

    /// Seconds the scenarios that run alone held the cluster, start to gone.
    pub fn alone_seconds(&self) -> f64 {
        self.spans.iter().filter(|s| s.alone).map(|s| s.gone - s.started).fold(0.0, |sum, s| sum + s)
    }
}

/// Which scenario may start next.
#[derive(Debug)]
struct Scheduler {
    isolation: Vec<Isolation>,
    /// Plan indices in the order they are considered.
    order: Vec<usize>,
    started: Vec<bool>,
    running: Vec<usize>,
    terminating: Vec<usize>,
    jobs: usize,
}

impl Scheduler {
    fn new(isolation: Vec<Isolation>, jobs: usize) -> Self {
        let jobs = jobs.max(1);
        let mut order: Vec<usize> = (0..isolation.len()).collect();
        if jobs > 1 {
            // Alone first: the shared ones then fill every slot to the end instead of draining for each.
            order.sort_by_key(|&i| !isolation[i].is_alone());
        }
        let started = vec![false; isolation.len()];
        Self { isolation, order, started, running: Vec::new(), terminating: Vec::new(), jobs }
    }

    /// The next scenario that may start now, if any.
    fn next(&self) -> Option<usize> {
        if self.running.len() >= self.jobs || self.running.iter().any(|&r| self.isolation[r].is_alone()) {
            return None;
        }
        let busy = || self.running.iter().chain(&self.terminating);
        for &i in self.order.iter().filter(|&&i| !self.started[i]) {
            let iso = &self.isolation[i];
            if iso.is_alone() {
                // A barrier: nothing considered after it starts before it.
                return (self.running.is_empty() && self.terminating.is_empty()).then_some(i);
            }
            if busy().any(|&b| self.isolation[b].conflicts_with(iso)) {
                continue;
            }
            return Some(i);
        }
        None
    }

    fn start(&mut self, i: usize) {
        self.started[i] = true;
        self.running.push(i);
    }

    fn finished(&mut self, i: usize) {
        self.running.retain(|&r| r != i);
        self.terminating.push(i);
    }

    fn gone(&mut self, i: usize) {
        self.terminating.retain(|&t| t != i);
    }

    /// A scenario whose target never came up: it ran, and nothing of it is left.
    fn never_came_up(&mut self, i: usize) {
        self.finished(i);
        self.gone(i);
    }

    fn done(&self) -> bool {
        self.started.iter().all(|s| *s) && self.running.is_empty() && self.terminating.is_empty()
    }
}

/// Runs `plans` against fresh targets from `source`, up to `options.jobs` at once, feeding every event to
/// `on_event`; returns the results in plan order once every scenario's teardown is over (each bounded by its
/// target). `cancel` resolving (Ctrl-C) stops the battery: running scenarios are abandoned and every target in
/// flight is shut down before [`BatteryError::Interrupted`] is returned.
///
/// # Errors
/// A target could not be started, or the battery was cancelled.
pub async fn run_battery(
    plans: &[Plan],
    source: &dyn TargetSource,
    options: BatteryOptions,
    on_event: &mut (dyn FnMut(RunEvent) + Send),
    cancel: impl Future<Output = ()>,
) -> Result<BatteryResults, BatteryError> {
    let mut description = None;
    let clock = std::time::Instant::now();
    let mut spans: Vec<Span> = vec![Span::default(); plans.len()];
    let mut scheduler = Scheduler::new(plans.iter().map(isolation).collect(), options.jobs);
    let (tx, mut rx) = mpsc::unbounded_channel::<RunEvent>();
    let mut tasks: JoinSet<(usize, ScenarioResult)> = JoinSet::new();
    let mut task_index = HashMap::new();
    let mut teardowns = Teardowns::default();
    let mut targets: HashMap<usize, Arc<dyn Target>> = HashMap::new();
    let mut results: Vec<Option<ScenarioResult>> = vec![None; plans.len()];
    let mut failure = None;
    tokio::pin!(cancel);
    loop {
        while failure.is_none()
            && let Some(i) = scheduler.next()
        {
            scheduler.start(i);
            spans[i].started = clock.elapsed().as_secs_f64();
            spans[i].alone = scheduler.isolation[i].is_alone();
            // Raced against the cancel: a Ctrl-C while clusters start is seen (and its handler installed) at once.
            let started = tokio::select! {
                started = source.start() => started,
                () = &mut cancel => {
                    scheduler.never_came_up(i);
                    failure = Some(BatteryError::Interrupted);
                    break;
                }
            };
            let target: Arc<dyn Target> = match started {
                Ok(t) => Arc::from(t),
                Err(error) => {
                    scheduler.never_came_up(i);
                    failure = Some(BatteryError::Start { target: source.name(), error });
                    break;
                }
            };
            description.get_or_insert_with(|| target.description());
            targets.insert(i, target.clone());
            let (plan, tx) = (plans[i].clone(), tx.clone());
            let handle = tasks.spawn(async move {
                let mut forward = |e: RunEvent| {
                    let _ = tx.send(e);
                };
                (i, runner::run_plan_with(&plan, target.as_ref(), options.run, &mut forward).await)
            });
            task_index.insert(handle.id(), i);
        }
        if failure.is_some() && !tasks.is_empty() {
            abandon(&mut tasks, &mut rx, &mut targets, &mut teardowns, on_event).await;
        }
        if scheduler.done() || (failure.is_some() && tasks.is_empty() && teardowns.is_empty()) {
            break;
        }
        tokio::select! {
            Some(event) = rx.recv() => on_event(event),
            Some(joined) = tasks.join_next_with_id() => {
                // Whatever the task sent before it ended comes first.
                while let Ok(event) = rx.try_recv() {
                    on_event(event);
                }
                let (i, result) = match joined {
                    Ok((_, (i, result))) => (i, result),
                    Err(e) => {
                        let i = task_index.get(&e.id()).copied().unwrap_or_default();
                        let crashed = super::crashed(&plans[i], &source.name(), "scenario task panicked");
                        // Reporters still see it end.
                        on_event(RunEvent::ScenarioFinished(crashed.clone()));
                        (i, crashed)
                    }
                };
                scheduler.finished(i);
                spans[i].finished = clock.elapsed().as_secs_f64();
                spans[i].gone = spans[i].finished;
                results[i] = Some(result);
                match targets.remove(&i) {
                    Some(target) => teardowns.start(i, target),
                    None => scheduler.gone(i),
                }
            }
            Some(i) = teardowns.next() => {
                scheduler.gone(i);
                spans[i].gone = clock.elapsed().as_secs_f64();
            }
            () = &mut cancel, if failure.is_none() => failure = Some(BatteryError::Interrupted),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(BatteryResults {
            scenarios: results
                .into_iter()
                .zip(plans)
                .map(|(r, p)| r.unwrap_or_else(|| super::crashed(p, &source.name(), "scenario did not run")))
                .collect(),
            description,
            spans,
        }),
    }
}

/// Targets being shut down in the background, each known by its scenario's index.
#[derive(Default)]
struct Teardowns {
    set: JoinSet<usize>,
    index: HashMap<tokio::task::Id, usize>,
}

impl Teardowns {
    /// Shuts `target` (scenario `i`'s) down in the background.
    fn start(&mut self, i: usize, target: Arc<dyn Target>) {
        let handle = self.set.spawn(async move {
            target.shutdown().await;
            i
        });
        self.index.insert(handle.id(), i);
    }

    /// The scenario whose teardown ended next; `None` when none is running.
    async fn next(&mut self) -> Option<usize> {
        let ended = self.set.join_next_with_id().await?;
        // A teardown that panicked is over too: its scenario must not stay terminating forever.
        Some(match ended {
            Ok((_, i)) => i,
            Err(e) => self.index.get(&e.id()).copied().unwrap_or_default(),
        })
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Stops every running scenario and queues the shutdown of every target they started.
async fn abandon(
    tasks: &mut JoinSet<(usize, ScenarioResult)>,
    rx: &mut mpsc::UnboundedReceiver<RunEvent>,
    targets: &mut HashMap<usize, Arc<dyn Target>>,
    teardowns: &mut Teardowns,
    on_event: &mut (dyn FnMut(RunEvent) + Send),
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    while let Ok(event) = rx.try_recv() {
        on_event(event);
    }
    for (i, target) in targets.drain() {
        teardowns.start(i, target);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn shared() -> Isolation {
        Isolation::default()
    }

    fn alone() -> Isolation {
        Isolation { alone: vec!["measures".into()], holds: BTreeSet::new() }
    }

    fn holding(key: &str) -> Isolation {
        Isolation { alone: Vec::new(), holds: BTreeSet::from([key.to_owned()]) }
    }

    #[test]
    fn one_job_keeps_plan_order_and_alone_means_until_the_namespaces_are_gone() {
        let mut s = Scheduler::new(vec![shared(), alone(), shared()], 1);
        assert_eq!(s.next(), Some(0));
        s.start(0);
        assert_eq!(s.next(), None, "one job");
        s.finished(0);
        assert_eq!(s.next(), None, "alone waits for the teardown before it");
        s.gone(0);
        assert_eq!(s.next(), Some(1));
        s.start(1);
        s.finished(1);
        assert_eq!(s.next(), None, "not even beside an alone one's teardown");
        s.gone(1);
        assert_eq!(s.next(), Some(2));
    }

    #[test]
    fn alone_scenarios_run_first_and_by_themselves() {
        let mut s = Scheduler::new(vec![shared(), alone(), shared(), alone()], 4);
        assert_eq!(s.next(), Some(1));
        s.start(1);
        assert_eq!(s.next(), None, "nothing beside an alone scenario");
        s.finished(1);
        assert_eq!(s.next(), None, "the next alone one waits for the teardown");
        s.gone(1);
        assert_eq!(s.next(), Some(3));
        s.start(3);
        s.finished(3);
        assert_eq!(s.next(), None);
        s.gone(3);
        assert_eq!(s.next(), Some(0));
        s.start(0);
        assert_eq!(s.next(), Some(2));
        s.start(2);
        assert_eq!(s.next(), None);
        s.finished(0);
        s.finished(2);
        s.gone(0);
        assert!(!s.done(), "2 is still terminating");
        s.gone(2);
        assert!(s.done());
    }

    #[test]
    fn holders_of_one_thing_never_overlap_and_others_pass_them() {
        let mut s = Scheduler::new(vec![holding("node port 30017"), holding("node port 30017"), shared()], 3);
        assert_eq!(s.next(), Some(0));
        s.start(0);
        assert_eq!(s.next(), Some(2), "the second holder waits; a scenario after it does not");
        s.start(2);
        s.finished(0);
        assert_eq!(s.next(), None, "held until the holder's namespaces are gone");
        s.gone(0);
        assert_eq!(s.next(), Some(1));
    }

    #[test]
    fn peak_counts_running_scenarios_only() {
        let span = |started, finished, gone| Span { started, finished, gone, alone: false };
        let run = BatteryResults {
            scenarios: Vec::new(),
            description: None,
            spans: vec![
                span(0.0, 2.0, 9.0),
                span(2.0, 3.0, 3.5),
                span(2.5, 4.0, 4.0),
                Span { alone: true, ..span(5.0, 6.0, 7.5) },
            ],
        };
        assert_eq!(run.peak_in_flight(), 2, "a slot handed on at 2.0 is not two at once; teardowns do not count");
        assert!((run.alone_seconds() - 2.5).abs() < 1e-9);
    }

    #[test]
    fn jobs_bound_the_scenarios_in_flight() {
        let mut s = Scheduler::new(vec![shared(); 5], 2);
        for expected in [Some(0), Some(1), None] {
            let next = s.next();
            assert_eq!(next, expected);
            if let Some(i) = next {
                s.start(i);
            }
        }
        s.finished(0);
        assert_eq!(s.next(), Some(2), "a terminating scenario does not take a slot");
    }
}
