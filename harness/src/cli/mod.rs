//! The `svcbench` command line: thin glue over the library. Exit codes: 0 all passed, 1 a scenario failed,
//! 2 invalid input or usage, 130 interrupted.

mod agent;
mod bench;
mod bench_lab;
mod cleanup;
mod compare;
mod explain;
mod faults;
mod lab;
mod real_bugs;
mod report;
mod run;
mod targets;
mod up;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::scenario::{self, Plan, ScenarioErrors};

/// Conformance harness and benchmarker for Kubernetes Services and cluster DNS.
#[derive(Debug, Parser)]
#[command(name = "svcbench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios against a target and write reports/<run-id>/results.json.
    Run(run::RunArgs),
    /// Parse and validate scenario files without running them.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema (draft 2020-12) of scenario files, for editors and validators (or of the files svcbench
    /// writes: `--results`, `--state`).
    Schema {
        /// The schema of `results.json` instead.
        #[arg(long, conflicts_with = "state")]
        results: bool,
        /// The schema of `svcbench up`'s state file instead.
        #[arg(long)]
        state: bool,
    },
    /// Describe a step or a step's field: what it does, its type, and an example from the shipped scenarios.
    Explain(explain::ExplainArgs),
    /// Run a scenario's steps on the embedded cluster, then keep it serving until Ctrl-C / SIGTERM.
    Up(up::UpArgs),
    /// Run the scenarios on several implementations (the embedded reference, lab kube-proxy iptables/nftables with
    /// CoreDNS or NodeLocal DNSCache) and write one report comparing them.
    Compare(compare::CompareArgs),
    /// Render saved results (one run, or several side by side) as index.html and junit.xml.
    Report(report::ReportArgs),
    /// Compare svcbench's load generators with wrk and dnsperf, the proxy with direct traffic, and time programming
    /// latency at scale, all against the embedded target.
    Bench(bench::BenchArgs),
    /// Delete leftover namespaces of earlier kube-target runs (by label).
    Cleanup(cleanup::CleanupArgs),
    /// Seeded-fault detection matrix: run the scenarios once per fault and show which scenarios catch which fault.
    Faults(faults::FaultsArgs),
    /// The real-bug matrix: each bug's scenario on the last broken and the first fixed release, in the lab.
    RealBugs(real_bugs::RealBugsArgs),
    /// In-cluster probe server: runs probes with this host's resolv.conf and network and answers JSON over HTTP.
    Agent(agent::AgentArgs),
    /// The lab: real Kubernetes components (kube-apiserver, controller-manager, scheduler, kube-proxy, CoreDNS) on
    /// this machine, built from their Go modules (`install`, `up`, `cleanup`).
    Lab(lab::LabArgs),
}

/// Exit code: invalid input.
pub const EXIT_INVALID: u8 = 2;
/// Exit code: a scenario failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: interrupted by a signal.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything else (and before any thread exists): the lab's container runtime step.
    if let Command::Lab(args) = cli.command {
        init_tracing();
        return lab::lab(args);
    }
    init_tracing();
    // A cluster of thousands of services needs a socket per ClusterIP port; validation checks against this limit.
    crate::scenario::validate::capacity::raise_open_file_limit();
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Schema { results, state } => {
            let schema = match (results, state) {
                (true, _) => scenario::schema::schema_of::<crate::results::RunResults>("svcbench results.json"),
                (_, true) => scenario::schema::schema_of::<crate::targets::embedded::state_file::StateFile>(
                    "svcbench up state file",
                ),
                _ => scenario::schema::scenario_schema(),
            };
            println!("{schema:#}");
            ExitCode::SUCCESS
        }
        Command::Explain(args) => explain::explain(args),
        Command::Run(args) => with_runtime(run::run(args)),
        Command::Compare(args) => with_runtime(compare::compare(args)),
        Command::Up(args) => with_runtime(up::up(args)),
        Command::Report(args) => report::report(args),
        Command::Faults(args) => with_runtime(faults::faults(args)),
        Command::RealBugs(args) => with_runtime(real_bugs::real_bugs(args)),
        Command::Bench(args) => with_runtime(bench::bench(args)),
        Command::Agent(args) => with_runtime(agent::agent(args)),
        Command::Cleanup(args) => with_runtime(cleanup::cleanup(args)),
        Command::Lab(_) => unreachable!("handled above"),
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SVCBENCH_LOG")
                .unwrap_or_else(|_| "warn,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn with_runtime(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    match load_all(files) {
        Ok(plans) => {
            for p in &plans {
                println!("ok {} ({}, {} steps)", p.source.display(), p.name, p.steps.len());
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(&errors);
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// The scenario files to run: those given, else every `*.yaml` of `dir`; `Err` (already reported) is exit code 2.
fn scenario_files(given: &[PathBuf], dir: &std::path::Path) -> Result<Vec<PathBuf>, ExitCode> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    match scenario::discover(dir) {
        Ok(f) if !f.is_empty() => Ok(f),
        Ok(_) => {
            eprintln!("error: no *.yaml scenarios in {}", dir.display());
            Err(ExitCode::from(EXIT_INVALID))
        }
        Err(e) => {
            eprintln!(
                "error: cannot read scenario directory {}: {e} (run from the repository root or pass --scenarios-dir)",
                dir.display()
            );
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// [`scenario_files`] then [`load_all`]; `Err` (already reported) is exit code 2.
fn load_plans(given: &[PathBuf], dir: &std::path::Path) -> Result<Vec<Plan>, ExitCode> {
    load_all(&scenario_files(given, dir)?).map_err(|errors| {
        print_errors(&errors);
        ExitCode::from(EXIT_INVALID)
    })
}

/// Loads and validates every file; also rejects two scenarios with the same name.
fn load_all(files: &[PathBuf]) -> Result<Vec<Plan>, Vec<ScenarioErrors>> {
    let mut plans: Vec<Plan> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match scenario::load(f) {
            Ok(p) => {
                if let Some(other) = plans.iter().find(|o| o.name == p.name) {
                    errors.push(ScenarioErrors(vec![scenario::ScenarioError {
                        path: f.clone(),
                        line: 1,
                        column: 1,
                        reason: format!("scenario name `{}` is also used by {}", p.name, other.source.display()),
                    }]));
                } else {
                    plans.push(p);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(plans) } else { Err(errors) }
}

fn print_errors(errors: &[ScenarioErrors]) {
    for e in errors {
        eprintln!("{e}");
    }
}
