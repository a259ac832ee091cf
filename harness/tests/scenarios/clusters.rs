//! The trials on real clusters (`lab-<mode>::…`, `kube::…`): each cluster runs its selected scenarios as one
//! battery, `SVCBENCH_JOBS` in flight (default: the CLI's for a cluster), started by the first of its trials; every
//! trial then reads its own scenario's result. One battery at a time: a battery's scenarios that run alone must not
//! have another cluster's battery beside them either. A lab is started for its battery and stopped after it; with
//! `SVCBENCH_LAB_LOGS=<dir>`, a battery where something failed first copies the components' logs to
//! `<dir>/<lab>/`, with every node's data plane as it was when a step failed (`snapshots/<scenario>-step<n>/`).

use std::{collections::BTreeMap, path::PathBuf, sync::OnceLock, time::Instant};

use async_trait::async_trait;
use svcbench::{
    lab::{Lab, LabConfig, ProxyMode},
    report::{files, json},
    results::{Outcome, RunResults, SCHEMA_VERSION, ScenarioResult, TargetInfo},
    runner::RunEvent,
    scenario::Plan,
    suite::battery::{self, BatteryOptions, DEFAULT_CLUSTER_JOBS, TargetSource},
    targets::{
        Target, TargetError,
        kube::{KubeConfig, KubeTarget},
    },
};
use tokio::sync::{Mutex, OnceCell};

use super::RUNTIME;

/// A cluster the trials run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// A lab of this proxy mode, started for its battery.
    Lab(ProxyMode),
    /// The cluster of the current kubeconfig context (`SVCBENCH_TARGET=kube`).
    Kube,
}

impl Cluster {
    /// Every cluster, in slot order.
    pub const ALL: [Cluster; 4] = [
        Cluster::Lab(ProxyMode::Nftables),
        Cluster::Lab(ProxyMode::Iptables),
        Cluster::Lab(ProxyMode::Cilium),
        Cluster::Kube,
    ];

    /// Trial name prefix.
    pub fn name(self) -> String {
        match self {
            Cluster::Lab(mode) => format!("lab-{}", mode.as_str()),
            Cluster::Kube => "kube".into(),
        }
    }

    fn slot(self) -> usize {
        Cluster::ALL.iter().position(|c| *c == self).unwrap_or_default()
    }
}

/// The (cluster, plan index, plan) of every cluster trial this invocation runs (after filters).
static SELECTED: OnceLock<Vec<(Cluster, usize, Plan)>> = OnceLock::new();

/// How many scenarios the suite has (a battery writes `SVCBENCH_LAB_RESULTS` only when it ran them all).
static SUITE_SIZE: OnceLock<usize> = OnceLock::new();

type BatteryOutcome = Result<BTreeMap<usize, ScenarioResult>, String>;
static BATTERIES: [OnceCell<BatteryOutcome>; Cluster::ALL.len()] =
    [const { OnceCell::const_new() }; Cluster::ALL.len()];

/// One battery at a time.
static TURN: Mutex<()> = Mutex::const_new(());

/// Records which trials will run; call once, before the trials start.
pub fn select(selected: Vec<(Cluster, usize, Plan)>, suite_size: usize) {
    let _ = SELECTED.set(selected);
    let _ = SUITE_SIZE.set(suite_size);
}

/// `SVCBENCH_JOBS`, or the default.
///
/// # Errors
/// Not a number in 1..=64.
pub fn jobs() -> Result<usize, String> {
    match std::env::var("SVCBENCH_JOBS") {
        Err(_) => Ok(DEFAULT_CLUSTER_JOBS),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => Ok(n),
            _ => Err(format!("SVCBENCH_JOBS={v}: expected scenarios in flight, 1 to 64")),
        },
    }
}

/// The result of scenario `index` on `cluster`, running the cluster's battery first if no trial has yet.
pub fn result(cluster: Cluster, index: usize) -> Result<ScenarioResult, String> {
    let outcome = RUNTIME.block_on(BATTERIES[cluster.slot()].get_or_init(|| async {
        // On a runtime worker: the lab's processes die with the thread that started them.
        RUNTIME.spawn(run(cluster)).await.map_err(|e| format!("battery task: {e}"))?
    }));
    match outcome {
        Ok(results) => results.get(&index).cloned().ok_or_else(|| format!("{} did not run it", cluster.name())),
        Err(e) => Err(e.clone()),
    }
}

/// New namespaces on one connected cluster per scenario.
struct Namespaces {
    client: kube::Client,
    config: KubeConfig,
}

#[async_trait]
impl TargetSource for Namespaces {
    fn name(&self) -> String {
        "kube".into()
    }

    async fn start(&self) -> Result<Box<dyn Target>, TargetError> {
        let run = svcbench::targets::embedded::names::random(6);
        Ok(Box::new(KubeTarget::with_client(self.client.clone(), self.config.clone(), &run)))
    }
}

async fn run(cluster: Cluster) -> BatteryOutcome {
    let _turn = TURN.lock().await;
    let selected: Vec<(usize, Plan)> =
        SELECTED.get().into_iter().flatten().filter(|(c, ..)| *c == cluster).map(|(_, i, p)| (*i, p.clone())).collect();
    let jobs = jobs()?;
    let (lab, client) = match cluster {
        Cluster::Lab(mode) => {
            let config = LabConfig { svcbench: Some(env!("CARGO_BIN_EXE_svcbench").into()), ..LabConfig::new(mode, 2) };
            let lab = Lab::start(config).await.map_err(|e| format!("lab ({}) did not start: {e:#}", mode.as_str()))?;
            match svcbench::lab::client_for(lab.kubeconfig()).await {
                Ok(client) => (Some(lab), client),
                Err(e) => {
                    lab.stop().await;
                    return Err(format!("lab ({}): {e:#}", mode.as_str()));
                }
            }
        }
        Cluster::Kube => {
            let probe = KubeTarget::connect(KubeConfig::from_env()).await.map_err(|e| format!("kube target: {e}"))?;
            (None, probe.client())
        }
    };
    let source = Namespaces { client, config: KubeConfig::from_env() };
    let plans: Vec<Plan> = selected.iter().map(|(_, p)| p.clone()).collect();
    let started = Instant::now();
    let options = BatteryOptions { jobs, ..BatteryOptions::default() };
    // Where logs are kept, a failed step also keeps each node's data plane as it was then: taken on one thread of
    // its own, one at a time (the scenarios in flight must not wait on it), which is joined before the logs are copied.
    let (snapshots, to_take) = std::sync::mpsc::channel::<String>();
    let taker = lab.as_ref().filter(|_| std::env::var_os("SVCBENCH_LAB_LOGS").is_some()).map(|lab| {
        let snapshotter = lab.snapshotter();
        std::thread::spawn(move || {
            for label in to_take {
                if let Err(e) = snapshotter.take(&label) {
                    eprintln!("no data-plane snapshot for {label}: {e}");
                }
            }
        })
    });
    let mut on_event = |event: RunEvent| {
        if let RunEvent::StepFinished { scenario, result } = event
            && result.outcome == Outcome::Failed
        {
            let _ = snapshots.send(format!("{scenario}-step{}", result.index));
        }
    };
    let outcome = battery::run_battery(&plans, &source, options, &mut on_event, std::future::pending()).await;
    drop(snapshots);
    if let Some(taker) = taker {
        let _ = taker.join();
    }
    let wall = started.elapsed();
    let outcome = outcome.map_err(|e| format!("{}: {e}", cluster.name())).inspect(|run| {
        println!(
            "{}: {} scenarios in {:.1} s wall time, up to {jobs} in flight (peak {}); {} alone for {:.1} s; sum of \
             scenario times {:.1} s",
            cluster.name(),
            plans.len(),
            wall.as_secs_f64(),
            run.peak_in_flight(),
            run.spans.iter().filter(|s| s.alone).count(),
            run.alone_seconds(),
            run.scenarios.iter().map(|r| r.duration_ms).sum::<f64>() / 1000.0
        );
        if let Some(path) = std::env::var_os("SVCBENCH_BATTERY_SPANS") {
            let lines: String = plans
                .iter()
                .zip(&run.spans)
                .map(|(p, s)| format!("{:8.1} {:8.1} {:8.1} {} {}\n", s.started, s.finished, s.gone, s.alone, p.name))
                .collect();
            let _ = std::fs::write(path, lines);
        }
    });
    if let (Some(lab), Ok(run)) = (&lab, &outcome)
        && Some(&plans.len()) == SUITE_SIZE.get()
        && let Some(dir) = std::env::var_os("SVCBENCH_LAB_RESULTS").map(PathBuf::from)
    {
        keep_results(&dir, lab, run.scenarios.clone(), wall.as_secs_f64() * 1000.0);
    }
    if let Some(lab) = lab {
        // The components' logs go with the lab: keep them where asked when something failed, to read why.
        let failed = outcome.as_ref().map_or(true, |run| run.scenarios.iter().any(|r| r.outcome == Outcome::Failed));
        if failed && let Some(dir) = std::env::var_os("SVCBENCH_LAB_LOGS").map(PathBuf::from) {
            let into = dir.join(lab.config().name());
            let copied = lab.copy_logs(&into);
            println!("lab logs ({copied} files): {}", into.display());
        }
        lab.stop().await;
    }
    let run = outcome?;
    Ok(selected.into_iter().map(|(i, _)| i).zip(run.scenarios).collect())
}

/// Writes a lab's results for `svcbench compare --reuse`.
fn keep_results(dir: &std::path::Path, lab: &Lab, scenarios: Vec<ScenarioResult>, duration_ms: f64) {
    let run = RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: format!("cargo-test-{}", lab.config().name()),
        started_at: jiff::Timestamp::now().to_string(),
        duration_ms,
        target: TargetInfo { name: lab.config().name(), description: lab.description() },
        scenarios,
    };
    let path = dir.join(lab.config().name()).join(files::RESULTS_NAME);
    let written = std::fs::create_dir_all(dir.join(lab.config().name()))
        .map_err(|e| e.to_string())
        .and_then(|()| json::write(&path, &run).map_err(|e| e.to_string()));
    match written {
        Ok(()) => println!("lab results: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
