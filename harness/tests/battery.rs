//! The parallel battery against real embedded clusters: the same outcomes as one scenario at a time, results in
//! plan order, scenarios that run alone without a neighbour, holders of one thing never together, and a cancelled
//! battery that shuts down every target it started. The targets are real embedded clusters; the only wrapper counts
//! their starts and shutdowns.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use svcbench::{
    probe::{ProbeRequest, ProbeResponse},
    runner::RunEvent,
    scenario::{self, Action, Client, ObjectRef, Plan},
    suite::battery::{BatteryError, BatteryOptions, TargetSource, run_battery},
    targets::{
        EndpointSliceView, NodeView, PodView, ServiceState, ServiceView, Target, TargetError,
        embedded::{EmbeddedConfig, EmbeddedTarget},
    },
};

/// Fresh embedded clusters, counting starts and shutdowns.
#[derive(Default)]
struct Clusters {
    started: Arc<AtomicUsize>,
    shut_down: Arc<AtomicUsize>,
}

#[async_trait]
impl TargetSource for Clusters {
    fn name(&self) -> String {
        "embedded".into()
    }

    async fn start(&self) -> Result<Box<dyn Target>, TargetError> {
        let inner = EmbeddedTarget::start(EmbeddedConfig::default()).await?;
        self.started.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Counted { inner, shut_down: self.shut_down.clone() }))
    }
}

/// An embedded target whose shutdown is counted.
struct Counted {
    inner: EmbeddedTarget,
    shut_down: Arc<AtomicUsize>,
}

#[async_trait]
impl Target for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn description(&self) -> String {
        self.inner.description()
    }
    async fn apply(&self, action: &Action) -> Result<(), TargetError> {
        self.inner.apply(action).await
    }
    async fn service(&self, service: &ObjectRef) -> Result<Option<ServiceView>, TargetError> {
        self.inner.service(service).await
    }
    async fn pods(&self, deployment: &ObjectRef) -> Result<Vec<PodView>, TargetError> {
        self.inner.pods(deployment).await
    }
    async fn endpoint_slices(&self, service: &ObjectRef) -> Result<Vec<EndpointSliceView>, TargetError> {
        self.inner.endpoint_slices(service).await
    }
    async fn probe(&self, from: &str, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        self.inner.probe(from, request).await
    }
    async fn nodes(&self) -> Result<Vec<NodeView>, TargetError> {
        self.inner.nodes().await
    }
    async fn probe_as(&self, client: &Client, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        self.inner.probe_as(client, request).await
    }
    async fn create_literal_namespace(&self, name: &str) -> Result<(), TargetError> {
        self.inner.create_literal_namespace(name).await
    }
    async fn services_with_slices(&self, services: &[ObjectRef]) -> Result<Vec<Option<ServiceState>>, TargetError> {
        self.inner.services_with_slices(services).await
    }
    fn cluster_domain(&self) -> String {
        self.inner.cluster_domain()
    }
    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }
    async fn shutdown(&self) {
        self.inner.shutdown().await;
        self.shut_down.fetch_add(1, Ordering::SeqCst);
    }
}

fn shipped(name: &str) -> Plan {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.yaml"));
    scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Shared scenarios, two that run alone (a fairness test, an HTTP measurement) and two holders of one literal
/// namespace (the second a renamed copy).
fn plans() -> Vec<Plan> {
    let mut second = shipped("resolver-flavours");
    second.name = "resolver-flavours-again".into();
    [
        "dns-basics",
        "fairness",
        "resolver-flavours",
        "readiness",
        "http-by-service-name",
        "rust-clients",
        "scale-to-zero",
        "ptr-records",
    ]
    .into_iter()
    .map(shipped)
    .chain([second])
    .collect()
}

/// Each scenario's (first event, last event) instants.
fn intervals(events: &[(Instant, String)], name: &str) -> (Instant, Instant) {
    let mine: Vec<Instant> = events.iter().filter(|(_, n)| n == name).map(|(t, _)| *t).collect();
    (*mine.first().expect("events"), *mine.last().expect("events"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_agrees_with_sequential_and_keeps_apart_what_must_not_overlap() {
    let plans = plans();
    let mut outcomes = Vec::new();
    for jobs in [1, 4] {
        let clusters = Clusters::default();
        let mut events: Vec<(Instant, String)> = Vec::new();
        let mut on_event = |e: RunEvent| {
            let name = match &e {
                RunEvent::ScenarioStarted { name, .. } => name.clone(),
                RunEvent::StepStarted { scenario, .. } | RunEvent::StepFinished { scenario, .. } => scenario.clone(),
                RunEvent::ScenarioFinished(r) => r.name.clone(),
            };
            events.push((Instant::now(), name));
        };
        let options = BatteryOptions { jobs, ..BatteryOptions::default() };
        let run = run_battery(&plans, &clusters, options, &mut on_event, std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = run.scenarios.iter().map(|r| r.name.as_str()).collect();
        let planned: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, planned, "results in plan order");
        assert_eq!(clusters.started.load(Ordering::SeqCst), plans.len());
        assert_eq!(clusters.shut_down.load(Ordering::SeqCst), plans.len(), "every target torn down before the end");
        for alone in ["fairness", "rust-clients"] {
            let (from, to) = intervals(&events, alone);
            let neighbours: Vec<&str> =
                events.iter().filter(|(t, n)| n != alone && *t > from && *t < to).map(|(_, n)| n.as_str()).collect();
            assert!(neighbours.is_empty(), "jobs {jobs}: {alone} runs alone, yet {neighbours:?} ran beside it");
        }
        let (a, b) = (intervals(&events, "resolver-flavours"), intervals(&events, "resolver-flavours-again"));
        assert!(a.1 < b.0 || b.1 < a.0, "jobs {jobs}: two holders of namespace dns-version overlapped");
        if jobs > 1 {
            assert!(run.peak_in_flight() > 1, "jobs {jobs}: nothing overlapped ({:?})", run.spans);
        }
        outcomes.push(run.scenarios.iter().map(|r| (r.name.clone(), r.outcome)).collect::<Vec<_>>());
    }
    assert_eq!(outcomes[0], outcomes[1], "the same outcomes one at a time and four at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_shuts_down_every_target_in_flight() {
    let plans = plans();
    let clusters = Clusters::default();
    let options = BatteryOptions { jobs: 4, ..BatteryOptions::default() };
    // Cancel (as Ctrl-C would) once the third shared scenario has started: the two that run alone are done, and
    // up to four shared ones are in flight.
    let third_shared = Arc::new(tokio::sync::Notify::new());
    let mut shared_started = 0;
    let mut on_event = |e: RunEvent| {
        if let RunEvent::ScenarioStarted { name, .. } = e
            && !["fairness", "rust-clients"].contains(&name.as_str())
        {
            shared_started += 1;
            if shared_started == 3 {
                third_shared.notify_one();
            }
        }
    };
    let outcome = run_battery(&plans, &clusters, options, &mut on_event, third_shared.notified()).await;
    assert!(matches!(outcome, Err(BatteryError::Interrupted)), "{:?}", outcome.map(|r| r.scenarios.len()));
    let started = clusters.started.load(Ordering::SeqCst);
    assert!(started > 0 && started < plans.len(), "cancelled mid-battery: {started} started");
    assert_eq!(clusters.shut_down.load(Ordering::SeqCst), started, "every started target shut down");
}
