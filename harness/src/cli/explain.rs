//! `svcbench explain`: a step's or field's description, type, allowed values and an example, as `kubectl explain`
//! does for API fields; `--markdown` prints the whole reference (`scenarios/README.md`).

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::EXIT_INVALID;
use crate::scenario::reference::Reference;

/// Arguments of `svcbench explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// `STEP` or `STEP.FIELD[.FIELD…]` (e.g. `expectUdp`, `expectDns.reverseOf`); none lists the steps.
    path: Option<String>,
    /// Print the whole reference as Markdown instead.
    #[arg(long, conflicts_with = "path")]
    markdown: bool,
    /// Where the example scenarios are.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
}

/// Runs `svcbench explain`.
pub fn explain(args: ExplainArgs) -> ExitCode {
    let reference = Reference::new(&args.scenarios_dir);
    if args.markdown {
        print!("{}", reference.markdown());
        return ExitCode::SUCCESS;
    }
    match reference.explain(args.path.as_deref()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}
