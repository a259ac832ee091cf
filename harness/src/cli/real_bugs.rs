//! `svcbench real-bugs`: the real-bug matrix. For each bug of `scenarios/real-bugs/bugs.yaml`, its scenario runs on
//! a lab at the last broken release of the component and on one at the first fixed release (everything else
//! pinned); a bug is caught when the first run fails (at the pinned step) and the second passes. Labs of the same
//! releases are started once for every bug that needs them. Writes `index.html`, `matrix.txt` and `matrix.json`.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};

use clap::Args;

use super::{
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID,
    run::{run_plans, shutdown_signal},
    targets::{TargetFactory, TargetKind},
};
use crate::{
    lab::install::Installation,
    suite::real_bugs::{self, Row, Side},
    targets::embedded::EmbeddedConfig,
};

/// Arguments of `svcbench real-bugs`.
#[derive(Debug, Args)]
pub struct RealBugsArgs {
    /// Where the scenarios and `real-bugs/bugs.yaml` are.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Only these bugs (ids, comma-separated; default: all).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    only: Vec<String>,
    /// Folder for the matrix (created if missing).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Nodes of each lab.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    nodes: u8,
    /// Print every step.
    #[arg(short, long)]
    verbose: bool,
    /// List the bugs and exit.
    #[arg(long)]
    list: bool,
}

pub async fn real_bugs(args: RealBugsArgs) -> ExitCode {
    let catalogue = real_bugs::catalogue_path(&args.scenarios_dir);
    let bugs = match real_bugs::load(&catalogue) {
        Ok(b) => b,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Some(unknown) = args.only.iter().find(|id| !bugs.iter().any(|b| &b.id == *id)) {
        eprintln!("error: --only: no bug `{unknown}` in {}", catalogue.display());
        return ExitCode::from(EXIT_INVALID);
    }
    let bugs: Vec<_> = bugs.into_iter().filter(|b| args.only.is_empty() || args.only.contains(&b.id)).collect();
    if args.list {
        print!(
            "{}",
            real_bugs::render_text(
                &bugs.iter().map(|b| Row { bug: b.clone(), broken: None, fixed: None }).collect::<Vec<_>>()
            )
        );
        return ExitCode::SUCCESS;
    }
    let plans = match super::load_plans(&[], &args.scenarios_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(bug) = bugs.iter().find(|b| !plans.iter().any(|p| p.name == b.scenario)) {
        eprintln!(
            "{}:{}:1: bug `{}`: no scenario named `{}` in {}",
            catalogue.display(),
            bug.line,
            bug.id,
            bug.scenario,
            args.scenarios_dir.display()
        );
        return ExitCode::from(EXIT_INVALID);
    }
    if let Some(why) = crate::lab::unavailable() {
        eprintln!("error: {why}");
        return ExitCode::from(EXIT_INVALID);
    }
    // One lab per (mode, releases): the scenarios of every bug that needs it run there together.
    let mut labs: BTreeMap<String, (crate::lab::LabConfig, Vec<(usize, Side)>)> = BTreeMap::new();
    for (i, bug) in bugs.iter().enumerate() {
        for (side, release) in [(Side::Broken, bug.broken), (Side::Fixed, bug.fixed)] {
            let config = bug.lab(release, args.nodes);
            if Installation::find(&config.versions).is_none() {
                eprintln!(
                    "error: bug `{}` needs {release}: run `{}`",
                    bug.id,
                    Installation::install_command(&config.versions)
                );
                return ExitCode::from(EXIT_INVALID);
            }
            labs.entry(bug.lab_key(side, &config)).or_insert_with(|| (config, Vec::new())).1.push((i, side));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.output) {
        eprintln!("error: cannot create {}: {e}", args.output.display());
        return ExitCode::from(EXIT_INVALID);
    }
    let started = Instant::now();
    let mut rows: Vec<Row> = bugs.iter().map(|b| Row { bug: b.clone(), broken: None, fixed: None }).collect();
    let embedded = EmbeddedConfig::default();
    for (config, uses) in labs.values() {
        let name = config.name();
        let wanted: Vec<_> =
            plans.iter().filter(|p| uses.iter().any(|(i, _)| bugs[*i].scenario == p.name)).cloned().collect();
        println!("\n== {name}: {}", wanted.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "));
        let started = tokio::select! {
            f = TargetFactory::new(TargetKind::Lab, embedded.clone(), None, config.clone()) => f,
            _ = shutdown_signal() => {
                eprintln!("interrupted");
                return ExitCode::from(EXIT_INTERRUPTED);
            }
        };
        let factory = match started {
            Ok(f) => f,
            // A broken release can break the cluster itself (no Service reachable, so CoreDNS never gets ready):
            // that fails the broken side of bugs whose entry pins no step; anything else is an error.
            Err(e) if uses.iter().all(|(i, side)| *side == Side::Broken && bugs[*i].step.is_none()) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                println!("{name}: the lab did not become ready: {e:#}");
                for (i, _) in uses {
                    rows[*i].broken = Some(real_bugs::SideVerdict {
                        as_expected: true,
                        detail: format!("the lab never became ready with this release: {first}"),
                    });
                }
                continue;
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        };
        let outcome = run_plans(&wanted, &factory, args.verbose, None, TargetKind::Lab.jobs(None)).await;
        factory.stop().await;
        let (results, _) = match outcome {
            Ok(r) => r,
            Err(code) => return code,
        };
        for (i, side) in uses {
            let Some(result) = results.iter().find(|r| r.name == bugs[*i].scenario) else { continue };
            let verdict = real_bugs::judge(&bugs[*i], *side, result);
            match side {
                Side::Broken => rows[*i].broken = Some(verdict),
                Side::Fixed => rows[*i].fixed = Some(verdict),
            }
        }
    }
    let text = real_bugs::render_text(&rows);
    println!("\n{text}");
    for row in &rows {
        for (side, v) in [("broken", &row.broken), ("fixed", &row.fixed)] {
            if let Some(v) = v {
                println!("{} {side}: {}", row.bug.id, v.detail);
            }
        }
    }
    let html = real_bugs::render_html(&rows, &jiff::Timestamp::now().to_string());
    let json = serde_json::to_string_pretty(&real_bugs::rows_json(&rows)).unwrap_or_default();
    for (file, body) in [("matrix.txt", text.as_str()), ("index.html", html.as_str()), ("matrix.json", json.as_str())] {
        if let Err(e) = std::fs::write(args.output.join(file), body) {
            eprintln!("error: cannot write {}: {e}", args.output.join(file).display());
            return ExitCode::from(EXIT_INVALID);
        }
    }
    let caught = rows.iter().filter(|r| r.caught()).count();
    println!(
        "{caught} of {} bugs caught in {:.0} s; matrix: {}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        args.output.join("index.html").display()
    );
    if caught == rows.len() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}
