//! `svcbench run`.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Args;

use super::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, load_all, print_errors};
use crate::{
    report::{console::ConsoleReporter, json},
    results::{RunResults, SCHEMA_VERSION, TargetInfo},
    runner, scenario,
    target::{
        Target,
        embedded::{EmbeddedConfig, EmbeddedTarget, Fault},
    },
};

/// Arguments of `svcbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files (default: every *.yaml in --scenarios-dir).
    scenarios: Vec<PathBuf>,
    /// Where to find scenarios when none are given.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Where run folders are written.
    #[arg(long, default_value = "reports")]
    reports_dir: PathBuf,
    /// Print every step.
    #[arg(short, long)]
    verbose: bool,
    /// Seed a bug into the embedded target (repeatable; see `svcbench faults --list`). Also `SVCBENCH_FAULTS=a,b`.
    #[arg(long = "fault", value_name = "FAULT")]
    faults: Vec<Fault>,
}

/// A run id that sorts by time: `20261127T174000Z-ab12c`.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), crate::target::embedded::names::random(5))
}

pub async fn run(args: RunArgs) -> ExitCode {
    let files = if args.scenarios.is_empty() {
        match scenario::discover(&args.scenarios_dir) {
            Ok(f) if !f.is_empty() => f,
            Ok(_) => {
                eprintln!("error: no *.yaml scenarios in {}", args.scenarios_dir.display());
                return ExitCode::from(EXIT_INVALID);
            }
            Err(e) => {
                eprintln!(
                    "error: cannot read scenario directory {}: {e} (run from the repository root or pass --scenarios-dir)",
                    args.scenarios_dir.display()
                );
                return ExitCode::from(EXIT_INVALID);
            }
        }
    } else {
        args.scenarios.clone()
    };
    let plans = match load_all(&files) {
        Ok(p) => p,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::from(EXIT_INVALID);
        }
    };

    let run_id = new_run_id();
    let out_dir = args.reports_dir.join(&run_id);
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return ExitCode::from(EXIT_INVALID);
    }
    let started_at = jiff::Timestamp::now().to_string();
    let started = Instant::now();
    let mut console = ConsoleReporter::new(std::io::stdout(), args.verbose);
    let mut scenarios = Vec::new();
    let mut description = String::new();
    let mut config = match EmbeddedConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    config.faults.0.extend(args.faults.iter().copied());
    for plan in &plans {
        let target = match EmbeddedTarget::start(config.clone()).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot start the embedded cluster: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        };
        description = target.description();
        let mut on_event = |e: runner::RunEvent| console.on_event(&e);
        let result = tokio::select! {
            r = runner::run_plan(plan, &target, &mut on_event) => r,
            _ = shutdown_signal() => {
                target.shutdown().await;
                eprintln!("interrupted");
                return ExitCode::from(EXIT_INTERRUPTED);
            }
        };
        target.shutdown().await;
        scenarios.push(result);
    }
    let results = RunResults {
        schema_version: SCHEMA_VERSION,
        run_id,
        started_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        target: TargetInfo { name: "embedded".into(), description },
        scenarios,
    };
    let path = out_dir.join("results.json");
    if let Err(e) = json::write(&path, &results) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_INVALID);
    }
    let passed = results.scenarios.iter().filter(|s| s.outcome == crate::results::Outcome::Passed).count();
    println!(
        "\n{passed}/{} scenarios passed in {:.2}s; results: {}",
        results.scenarios.len(),
        results.duration_ms / 1000.0,
        path.display()
    );
    if results.passed() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
