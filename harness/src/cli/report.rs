//! `svcbench report`: re-renders saved results (one run, or several side by side) as `index.html` and `junit.xml`.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::EXIT_INVALID;
use crate::report::{compare::Comparison, files, profile::Profile};

/// Arguments of `svcbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files (`results.json`) or run folders holding one; several are compared side by side.
    #[arg(required = true, value_name = "RESULTS")]
    results: Vec<PathBuf>,
    /// Directory to write index.html and junit.xml into (created if missing).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Expected-failure profile for every given run (default: the `profile.yaml` next to each results file, if any).
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
}

/// Runs `svcbench report`. Exit 0 when written (whatever the results say), 2 for invalid input.
pub fn report(args: ReportArgs) -> ExitCode {
    let profile = match args.profile.as_deref().map(Profile::load).transpose() {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let mut inputs = Vec::new();
    let mut failed = false;
    for path in &args.results {
        match files::load_input(path, profile.as_ref()) {
            Ok(input) => inputs.push(input),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return ExitCode::from(EXIT_INVALID);
    }
    // A profile entry no given run contains is most likely a typo: say so, but old results may be any subset.
    if let Some(p) = &profile {
        let known: Vec<&str> =
            inputs.iter().flat_map(|i| i.results.scenarios.iter().map(|s| s.name.as_str())).collect();
        for e in p.unknown_scenarios(known.iter().copied()) {
            eprintln!("warning: {e}");
        }
    }
    let comparison = Comparison::new(inputs);
    match files::write_rendered(&args.output, &comparison) {
        Ok(written) => {
            for (i, run) in comparison.runs.iter().enumerate() {
                let n = comparison.counts(i);
                let inconclusive =
                    if n.inconclusive > 0 { format!(", {} inconclusive", n.inconclusive) } else { String::new() };
                println!(
                    "{}: {}/{} passed, {} failed, {} expected failures, {} unexpected passes{inconclusive}",
                    run.label,
                    n.passed,
                    n.total(),
                    n.failed,
                    n.expected_fail,
                    n.unexpected_pass
                );
            }
            println!("report: {}", written.html.display());
            println!("junit:  {}", written.junit.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
