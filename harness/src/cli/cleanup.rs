//! `svcbench cleanup`: delete namespaces earlier kube-target runs left behind (found by their svcbench labels).

use std::process::ExitCode;

use clap::Args;

use super::EXIT_INVALID;
use crate::targets::kube::{KubeConfig, KubeTarget};

/// Arguments of `svcbench cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Only this run id (default: every svcbench namespace).
    #[arg(long)]
    run: Option<String>,
}

pub async fn cleanup(args: CleanupArgs) -> ExitCode {
    let mut config = KubeConfig::from_env();
    if args.context.is_some() {
        config.context = args.context;
    }
    let target = match KubeTarget::connect(config).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match KubeTarget::cleanup(&target.client(), args.run.as_deref()).await {
        Ok(deleted) => {
            for ns in &deleted {
                println!("deleted namespace {ns}");
            }
            println!("{} namespaces deleted", deleted.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
