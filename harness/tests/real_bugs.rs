//! The real-bug matrix as `cargo test` trials, `real-bug::<id>`: each bug of `scenarios/real-bugs/bugs.yaml` must
//! fail its scenario on the last broken release and pass it on the first fixed one, on real components in the lab.
//! The first trial runs `svcbench real-bugs` once for every selected bug (labs of the same releases are shared);
//! each trial then reads its bug's row. Without root, or without the releases installed (`svcbench lab install
//! --coredns … --kubernetes …`, which `.ci/run` does), the trials print `SKIPPED` and pass.

use std::{path::PathBuf, process::Command, sync::OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};
use svcbench::{lab::install::Installation, suite::real_bugs};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// The matrix of the selected bugs, run once: `Ok(rows)` from `matrix.json`, or why it could not run.
static MATRIX: OnceLock<Result<Vec<serde_json::Value>, String>> = OnceLock::new();

fn matrix(ids: &[String]) -> &'static Result<Vec<serde_json::Value>, String> {
    MATRIX.get_or_init(|| {
        let out = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new(env!("CARGO_BIN_EXE_svcbench"))
            .args(["real-bugs", "--scenarios-dir"])
            .arg(scenarios_dir())
            .arg("--only")
            .arg(ids.join(","))
            .arg("-o")
            .arg(out.path())
            .env("SVCBENCH_LAB_QUIET", "1")
            .output()
            .map_err(|e| format!("cannot run svcbench: {e}"))?;
        let text = std::fs::read_to_string(out.path().join("matrix.json")).map_err(|e| {
            format!(
                "svcbench real-bugs wrote no matrix ({e}): {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        serde_json::from_str::<Vec<serde_json::Value>>(&text).map_err(|e| e.to_string())
    })
}

fn main() {
    let args = Arguments::from_args();
    let bugs = real_bugs::load(&real_bugs::catalogue_path(&scenarios_dir())).unwrap_or_else(|errors| {
        errors.iter().for_each(|e| eprintln!("{e}"));
        std::process::exit(2);
    });
    let kind = |bug: &real_bugs::RealBug| match bug.component {
        real_bugs::BuggyComponent::Coredns => "coredns",
        real_bugs::BuggyComponent::KubeProxy => "kube-proxy",
    };
    // The bugs whose trials run (the filters libtest-mimic applies) and whose releases are installed, so the shared
    // run starts only their labs (a bug whose release is missing is skipped, not a reason to fail the others).
    let installed = |bug: &real_bugs::RealBug| {
        [bug.broken, bug.fixed].iter().all(|r| Installation::find(&bug.lab(*r, 2).versions).is_some())
    };
    let selected: Vec<String> = bugs
        .iter()
        .filter(|b| !args.is_filtered_out(&Trial::test(format!("real-bug::{}", b.id), || Ok(())).with_kind(kind(b))))
        .filter(|b| installed(b))
        .map(|b| b.id.clone())
        .collect();
    let trials = bugs
        .into_iter()
        .map(|bug| {
            let selected = selected.clone();
            let kind = kind(&bug);
            Trial::test(format!("real-bug::{}", bug.id), move || {
                if let Some(why) = svcbench::lab::unavailable() {
                    println!("SKIPPED: {why}");
                    return Ok(());
                }
                for release in [bug.broken, bug.fixed] {
                    let versions = bug.lab(release, 2).versions;
                    if Installation::find(&versions).is_none() {
                        println!(
                            "SKIPPED: {release} is not installed (`{}`)",
                            Installation::install_command(&versions)
                        );
                        return Ok(());
                    }
                }
                let rows = matrix(&selected).as_ref().map_err(|e| Failed::from(e.clone()))?;
                let row = rows
                    .iter()
                    .find(|r| r["id"] == bug.id)
                    .ok_or_else(|| Failed::from(format!("{} is not in the matrix", bug.id)))?;
                if row["caught"] == true {
                    return Ok(());
                }
                Err(Failed::from(format!(
                    "not caught: on {} (broken) {}; on {} (fixed) {}",
                    bug.broken,
                    row["broken"]["detail"].as_str().unwrap_or("not run"),
                    bug.fixed,
                    row["fixed"]["detail"].as_str().unwrap_or("not run")
                )))
            })
            .with_kind(kind)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
