//! `svcbench up`: build a cluster with a scenario, then serve it to real tools until told to stop.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{EXIT_INVALID, print_errors, run::shutdown_signal};
use crate::{
    report::console::ConsoleReporter,
    runner, scenario,
    targets::{
        Target,
        embedded::{EmbeddedConfig, EmbeddedTarget, state_file},
    },
};

/// Arguments of `svcbench up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The scenario whose steps build the cluster.
    scenario: PathBuf,
    /// JSON file kept up to date with the DNS address, services and pods (removed on exit).
    #[arg(long)]
    state_file: PathBuf,
}

pub async fn up(args: UpArgs) -> ExitCode {
    let plan = match scenario::load(&args.scenario) {
        Ok(p) => p,
        Err(e) => {
            print_errors(&[e]);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let target = match EmbeddedTarget::start(EmbeddedConfig::default()).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot start the embedded cluster: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let cluster = target.cluster().clone();
    let ports = cluster.ports();
    // One writer for the background task and the final write: serialized, never older than what is on disk.
    let state_writer = std::sync::Arc::new(state_file::StateWriter::new(args.state_file.clone()));
    let writes = state_writer.clone();
    let mut snapshots = cluster.subscribe();
    let follower = cluster.clone();
    // Rewrite the state file after every change, once the proxy has programmed it (its `connect` addresses
    // exist only then), for as long as the cluster lives.
    let writer = tokio::spawn(async move {
        loop {
            let snap = snapshots.borrow_and_update().clone();
            follower.wait_programmed(snap.generation).await;
            if let Err(e) = writes.write(&state_file::build(&snap, &ports)) {
                eprintln!("warning: cannot write state file {}: {e}", writes.path().display());
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    });

    let mut console = ConsoleReporter::new(std::io::stdout(), true);
    let mut on_event = |e: runner::RunEvent| console.on_event(&e);
    let interrupted = tokio::select! {
        _ = runner::run_plan(&plan, &target, &mut on_event) => false,
        _ = shutdown_signal() => true,
    };
    if !interrupted {
        let snap = cluster.snapshot();
        cluster.wait_programmed(snap.generation).await;
        let state = state_file::build(&snap, &cluster.ports());
        if let Err(e) = state_writer.write(&state) {
            eprintln!("error: cannot write state file {}: {e}", args.state_file.display());
        }
        println!(
            "\nserving: DNS {} (dig @{} -p {} <name>), state in {}; Ctrl-C to stop",
            state.dns,
            state.dns.ip(),
            state.dns.port(),
            args.state_file.display()
        );
        shutdown_signal().await;
    }
    writer.abort();
    // The task may be mid-write on another thread: wait for it, or its rename could recreate the file removed below.
    let _ = writer.await;
    target.shutdown().await;
    let _ = std::fs::remove_file(&args.state_file);
    ExitCode::SUCCESS
}
