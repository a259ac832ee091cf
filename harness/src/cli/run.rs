//! `svcbench run`.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Args;

use super::{
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID,
    targets::{TargetFactory, TargetKind},
};
use crate::{
    report::{
        compare::{Comparison, RunInput},
        console::ConsoleReporter,
        files, json,
        profile::Profile,
        progress::Progress,
    },
    results::{RunResults, SCHEMA_VERSION, TargetInfo},
    runner,
    suite::battery::{self, BatteryError, BatteryOptions},
    targets::embedded::{EmbeddedConfig, Fault},
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
    /// The implementation to run against.
    #[arg(long, value_enum, default_value_t = TargetKind::Embedded)]
    target: TargetKind,
    /// kubeconfig context for `--target kube` (default: the current context).
    #[arg(long)]
    context: Option<String>,
    /// Service data plane of `--target lab`: kube-proxy nftables or iptables mode, or Cilium.
    #[arg(long, value_enum, default_value_t = crate::lab::ProxyMode::Nftables)]
    proxy_mode: crate::lab::ProxyMode,
    /// Cluster DNS of `--target lab`: CoreDNS, or NodeLocal DNSCache in front of it.
    #[arg(long, value_enum, default_value_t = crate::lab::DnsMode::Coredns)]
    dns: crate::lab::DnsMode,
    /// Nodes of `--target lab`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    nodes: u8,
    /// Releases of `--target lab`.
    #[command(flatten)]
    releases: super::lab::ReleaseArgs,
    /// Seed a bug into the embedded target (repeatable; see `svcbench faults --list`). Also `SVCBENCH_FAULTS=a,b`.
    #[arg(long = "fault", value_name = "FAULT")]
    faults: Vec<Fault>,
    /// Scenarios in flight at once (default: the target's; see `svcbench run --help`'s targets). Scenarios whose
    /// figures neighbours would distort, or that load the whole cluster, still run alone.
    #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Expected-failure profile of the implementation under test (see scenarios/profiles/): listed failures do not
    /// fail the run; listed scenarios that pass are flagged. Copied into the run folder.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
}

/// A run id that sorts by time: `20261127T174000Z-ab12c`.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), crate::targets::embedded::names::random(5))
}

pub async fn run(args: RunArgs) -> ExitCode {
    let discovered = args.scenarios.is_empty();
    let plans = match super::load_plans(&args.scenarios, &args.scenarios_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };

    let profile = match args.profile.as_deref().map(Profile::load).transpose() {
        Ok(p) => p,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Some(p) = &profile {
        // Against the whole suite an unknown name is a typo or a removed scenario; against a chosen subset it is
        // only a scenario not run this time.
        let unknown = p.unknown_scenarios(plans.iter().map(|p| p.name.as_str()));
        for e in &unknown {
            if discovered { eprintln!("{e}") } else { eprintln!("warning: {e}") }
        }
        if discovered && !unknown.is_empty() {
            return ExitCode::from(EXIT_INVALID);
        }
    }

    let run_id = new_run_id();
    let out_dir = args.reports_dir.join(&run_id);
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return ExitCode::from(EXIT_INVALID);
    }
    let started_at = jiff::Timestamp::now().to_string();
    let started = Instant::now();
    let mut config = match EmbeddedConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    config.faults.0.extend(args.faults.iter().copied());
    if args.target != TargetKind::Lab && args.releases.given() {
        eprintln!("error: --kubernetes and --coredns choose the releases of `--target lab`");
        return ExitCode::from(EXIT_INVALID);
    }
    let lab = crate::lab::LabConfig::new(args.proxy_mode, args.nodes)
        .with_dns(args.dns)
        .with_versions(args.releases.versions());
    let factory = match start_factory(args.target, config, args.context.clone(), lab).await {
        Ok(f) => f,
        Err(code) => return code,
    };
    let (scenarios, description) =
        match run_plans(&plans, &factory, args.verbose, profile.as_ref(), args.target.jobs(args.jobs)).await {
            Ok(r) => r,
            Err(code) => {
                factory.stop().await;
                return code;
            }
        };
    let target_name = factory.name();
    factory.stop().await;
    let results = RunResults {
        schema_version: SCHEMA_VERSION,
        run_id,
        started_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        target: TargetInfo { name: target_name, description },
        scenarios,
    };
    let path = out_dir.join("results.json");
    if let Err(e) = json::write(&path, &results) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_INVALID);
    }
    if let Some(p) = &profile
        && let Err(e) = files::keep_profile(&out_dir, p)
    {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_INVALID);
    }
    let comparison = Comparison::new(vec![RunInput { results, profile, source: Some(path.clone()) }]);
    let rendered = match files::write_rendered(&out_dir, &comparison) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let counts = comparison.counts(0);
    let results = &comparison.runs[0].input.results;
    let mut extra = String::new();
    if counts.expected_fail > 0 {
        extra.push_str(&format!(", {} failed as expected", counts.expected_fail));
    }
    if counts.unexpected_pass > 0 {
        extra.push_str(&format!(", {} expected to fail but passed (XPASS)", counts.unexpected_pass));
    }
    if counts.inconclusive > 0 {
        extra.push_str(&format!(
            ", {} inconclusive (the load generator fell behind: see the steps' reasons)",
            counts.inconclusive
        ));
    }
    println!(
        "\n{}/{} scenarios passed{extra} in {:.2}s; results: {}\nreport: {}\njunit:  {}",
        counts.passed + counts.unexpected_pass,
        results.scenarios.len(),
        results.duration_ms / 1000.0,
        path.display(),
        rendered.html.display(),
        rendered.junit.display()
    );
    // Expected failures, unexpected passes and inconclusive measurements do not fail the run; unexpected failures
    // (and scenarios not run) do.
    if counts.failed + counts.skipped > 0 { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS }
}

/// Starts the target's factory (for the lab: the whole cluster), giving up on Ctrl-C / SIGTERM.
///
/// # Errors
/// The exit code to end with: interrupted, or the target cannot be reached or started.
pub async fn start_factory(
    kind: TargetKind,
    embedded: EmbeddedConfig,
    context: Option<String>,
    lab: crate::lab::LabConfig,
) -> Result<TargetFactory, ExitCode> {
    let started = tokio::select! {
        f = TargetFactory::new(kind, embedded, context, lab) => f,
        _ = shutdown_signal() => {
            eprintln!("interrupted");
            return Err(ExitCode::from(EXIT_INTERRUPTED));
        }
    };
    started.map_err(|e| {
        eprintln!("error: target {kind}: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}

/// Runs `plans` on fresh targets from `factory`, `jobs` at a time (see [`crate::suite::battery`] for what may
/// overlap), printing PASS/FAIL lines (and progress on a terminal) as they finish. Returns the results in plan order
/// and the implementation's description. The factory is left running.
///
/// # Errors
/// The exit code to end with: interrupted (every scenario in flight cleaned up), or a target could not be started.
pub async fn run_plans(
    plans: &[crate::scenario::Plan],
    factory: &TargetFactory,
    verbose: bool,
    profile: Option<&Profile>,
    jobs: usize,
) -> Result<(Vec<crate::results::ScenarioResult>, String), ExitCode> {
    let mut console =
        ConsoleReporter::new(std::io::stdout(), verbose).with_profile(profile.cloned()).naming_scenarios(jobs > 1);
    let mut progress = Progress::new(plans.len());
    let mut on_event = |e: runner::RunEvent| {
        progress.suspend(|| console.on_event(&e));
        progress.on_event(&e);
    };
    let options = BatteryOptions { jobs, ..BatteryOptions::default() };
    let outcome = battery::run_battery(plans, factory, options, &mut on_event, shutdown_signal()).await;
    progress.finish();
    match outcome {
        Ok(run) => {
            if jobs > 1 {
                println!(
                    "{} scenarios, up to {jobs} in flight (peak {}); {} ran alone, holding the cluster for {:.1} s",
                    plans.len(),
                    run.peak_in_flight(),
                    run.spans.iter().filter(|s| s.alone).count(),
                    run.alone_seconds()
                );
            }
            let description = factory.description().or(run.description).unwrap_or_else(|| factory.name());
            Ok((run.scenarios, description))
        }
        Err(BatteryError::Interrupted) => {
            eprintln!("interrupted");
            Err(ExitCode::from(EXIT_INTERRUPTED))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
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
