//! `svcbench faults`: the seeded-fault detection matrix.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::Args;

use super::EXIT_FAILED;
use crate::{
    results::Outcome,
    suite::{self, SuiteOptions},
    targets::embedded::{EmbeddedConfig, Fault},
};

/// Arguments of `svcbench faults`.
#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// Scenario files (default: every *.yaml in --scenarios-dir).
    scenarios: Vec<PathBuf>,
    /// Where to find scenarios when none are given.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Only these faults (default: all).
    #[arg(long = "fault", value_name = "FAULT")]
    faults: Vec<Fault>,
    /// Print why each scenario caught each fault.
    #[arg(short, long)]
    verbose: bool,
    /// List the faults and exit.
    #[arg(long)]
    list: bool,
}

pub async fn faults(args: FaultsArgs) -> ExitCode {
    if args.list {
        for f in Fault::ALL {
            println!("{f}");
        }
        return ExitCode::SUCCESS;
    }
    let plans = match super::load_plans(&args.scenarios, &args.scenarios_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let started = Instant::now();
    let options = SuiteOptions::matrix();
    let clean = suite::run_embedded(&plans, &EmbeddedConfig::default(), options).await;
    let clean_failures: Vec<_> = clean
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Skipped))
        .map(|r| r.name.clone())
        .collect();
    let clean_inconclusive: Vec<_> =
        clean.iter().filter(|r| r.outcome == Outcome::Inconclusive).map(|r| r.name.clone()).collect();
    let faults = if args.faults.is_empty() { Fault::ALL.to_vec() } else { args.faults.clone() };
    let mut rows = Vec::new();
    for fault in faults {
        rows.push(suite::fault_row(&plans, fault, options).await);
    }
    print!("{}", suite::render_matrix(&plans, &rows));
    if args.verbose {
        for row in &rows {
            println!("\n{}:", row.fault);
            for (scenario, cell) in row.cells.iter().filter(|(_, c)| c.caught) {
                println!("  {scenario}: {}", cell.detail.clone().unwrap_or_default());
            }
        }
    }
    // A fault only inconclusive scenarios could have caught is neither caught nor missed: reported apart.
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| r.caught_by().is_empty() && r.inconclusive_in().is_empty())
        .map(|r| r.fault.name())
        .collect();
    let undecided: Vec<String> = rows
        .iter()
        .filter(|r| r.caught_by().is_empty() && !r.inconclusive_in().is_empty())
        .map(|r| r.fault.name())
        .collect();
    println!(
        "\nclean target: {}/{} scenarios passed; {} of {} faults caught; {:.1}s",
        clean.len() - clean_failures.len() - clean_inconclusive.len(),
        clean.len(),
        rows.len() - missed.len() - undecided.len(),
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if !clean_failures.is_empty() {
        println!("clean failures: {}", clean_failures.join(", "));
    }
    if !clean_inconclusive.is_empty() {
        println!(
            "clean target, inconclusive (the load generator fell behind; `~` in the matrix): {}",
            clean_inconclusive.join(", ")
        );
    }
    if !missed.is_empty() {
        println!("missed: {}", missed.join(", "));
    }
    if !undecided.is_empty() {
        println!("not caught, but only because scenarios were inconclusive: {}", undecided.join(", "));
    }
    if clean_failures.is_empty() && missed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}
