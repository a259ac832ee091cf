//! Every scenario in `scenarios/` against every available target, as ordinary `cargo test` trials named
//! `<target>::<scenario>` (libtest-mimic: filters, `--list`, `--ignored` work as usual).

use std::{path::PathBuf, sync::LazyLock};

use libtest_mimic::{Arguments, Failed, Trial};
use svcbench::{
    report::console::format_failure,
    results::Outcome,
    runner,
    scenario::{self, Plan},
    suite::{self, SuiteOptions},
    targets::{
        Target,
        embedded::{EmbeddedConfig, EmbeddedTarget, Fault, PortPolicy},
        kube::{KubeConfig, KubeTarget},
    },
};

/// One runtime shared by all trials (libtest-mimic runs trials on its own threads).
static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime"));

fn scenario_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    dir.canonicalize().unwrap_or(dir)
}

fn run_embedded(plan: &Plan, config: EmbeddedConfig) -> Result<(), Failed> {
    RUNTIME.block_on(async {
        let target = EmbeddedTarget::start(config)
            .await
            .map_err(|e| Failed::from(format!("cannot start embedded cluster: {e}")))?;
        let result = runner::run_plan(plan, &target, &mut |_| {}).await;
        target.shutdown().await;
        match result.first_failure() {
            None if result.outcome == Outcome::Passed => Ok(()),
            Some(step) => Err(Failed::from(format_failure(&result, step))),
            None => Err(Failed::from("scenario did not pass")),
        }
    })
}

/// The seeded-fault detection matrix, one trial per fault: the whole battery runs with that fault and at least one
/// scenario must fail. `faults::none` runs the battery clean under the same (short) timeouts: nothing may fail.
fn fault_trials(plans: &[Plan]) -> Vec<Trial> {
    let mut trials = Vec::new();
    let all = plans.to_vec();
    trials.push(
        Trial::test("faults::none", move || {
            let results =
                RUNTIME.block_on(suite::run_embedded(&all, &EmbeddedConfig::default(), SuiteOptions::matrix()));
            let failures: Vec<String> = results
                .iter()
                .filter_map(|r| r.first_failure().map(|s| format!("{}: {}", r.name, format_failure(r, s))))
                .collect();
            if failures.is_empty() { Ok(()) } else { Err(Failed::from(failures.join("\n"))) }
        })
        .with_kind("matrix"),
    );
    for fault in Fault::ALL {
        let plans = plans.to_vec();
        trials.push(
            Trial::test(format!("faults::{}", fault.name()), move || {
                let row = RUNTIME.block_on(suite::fault_row(&plans, fault, SuiteOptions::matrix()));
                let caught = row.caught_by();
                if caught.is_empty() {
                    Err(Failed::from(format!("no scenario catches `{}`: write one", fault.name())))
                } else {
                    println!("  {} caught by {}", fault.name(), caught.join(", "));
                    Ok(())
                }
            })
            .with_kind("matrix"),
        );
    }
    trials
}

/// One scenario against the real cluster of the current kubeconfig context (`SVCBENCH_TARGET=kube`).
fn run_kube(plan: &Plan) -> Result<(), Failed> {
    RUNTIME.block_on(async {
        let target =
            KubeTarget::connect(KubeConfig::from_env()).await.map_err(|e| Failed::from(format!("kube target: {e}")))?;
        let result = runner::run_plan(plan, &target, &mut |_| {}).await;
        target.shutdown().await;
        match result.first_failure() {
            None => Ok(()),
            Some(step) => Err(Failed::from(format_failure(&result, step))),
        }
    })
}

fn main() {
    let args = Arguments::from_args();
    let kube = std::env::var("SVCBENCH_TARGET").is_ok_and(|t| t.split(',').any(|t| t.trim() == "kube"));
    let mut trials = Vec::new();
    let mut plans = Vec::new();
    let files = scenario::discover(&scenario_dir()).expect("scenarios/ is readable");
    assert!(!files.is_empty(), "no scenarios found in {}", scenario_dir().display());
    for file in files {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match scenario::load(&file) {
            Ok(plan) => {
                plans.push(plan.clone());
                if kube {
                    let p = plan.clone();
                    trials
                        .push(Trial::test(format!("kube::{}", plan.name), move || run_kube(&p)).with_kind("scenario"));
                }
                // The same battery twice: real ports (as root) and the non-root layout, whose meaning must not differ.
                let unprivileged =
                    EmbeddedConfig { port_policy: PortPolicy::Unprivileged, ..EmbeddedConfig::default() };
                let p = plan.clone();
                trials.push(
                    Trial::test(format!("embedded::{}", plan.name), move || {
                        run_embedded(&p, EmbeddedConfig::default())
                    })
                    .with_kind("scenario"),
                );
                trials.push(
                    Trial::test(format!("embedded-unprivileged::{}", plan.name), move || {
                        run_embedded(&plan, unprivileged.clone())
                    })
                    .with_kind("scenario"),
                );
            }
            Err(errors) => {
                let message = errors.to_string();
                trials.push(Trial::test(format!("validate::{stem}"), move || Err(Failed::from(message))));
            }
        }
    }
    trials.extend(fault_trials(&plans));
    libtest_mimic::run(&args, trials).exit();
}
