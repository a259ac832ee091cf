//! Choosing the target from the command line: `--target embedded` (default) or `--target kube [--context NAME]`.

use std::fmt;

use crate::targets::{
    Target, TargetError,
    embedded::{EmbeddedConfig, EmbeddedTarget},
    kube::{KubeConfig, KubeTarget},
};

/// Which implementation to run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TargetKind {
    /// The embedded reference cluster (no cluster needed).
    #[default]
    Embedded,
    /// A real cluster through kubeconfig (`SVCBENCH_TARGET=kube` for `cargo test`).
    Kube,
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Embedded => "embedded",
            TargetKind::Kube => "kube",
        })
    }
}

/// Makes a fresh target per scenario.
pub enum TargetFactory {
    /// A new embedded cluster per scenario.
    Embedded(EmbeddedConfig),
    /// New namespaces (a new run id) per scenario on one connected cluster.
    Kube(kube::Client, KubeConfig),
}

impl TargetFactory {
    /// Prepares the factory; for kube this connects and fails fast when no cluster is reachable.
    ///
    /// # Errors
    /// No kubeconfig, unreachable API server.
    pub async fn new(kind: TargetKind, embedded: EmbeddedConfig, context: Option<String>) -> Result<Self, TargetError> {
        Ok(match kind {
            TargetKind::Embedded => TargetFactory::Embedded(embedded),
            TargetKind::Kube => {
                let mut config = KubeConfig::from_env();
                if context.is_some() {
                    config.context = context;
                }
                let probe = KubeTarget::connect(config.clone()).await?;
                TargetFactory::Kube(probe.client(), config)
            }
        })
    }

    /// The target name used in results.
    pub fn name(&self) -> &'static str {
        match self {
            TargetFactory::Embedded(_) => "embedded",
            TargetFactory::Kube(..) => "kube",
        }
    }

    /// A fresh target for one scenario.
    ///
    /// # Errors
    /// The embedded cluster cannot start.
    pub async fn start(&self) -> Result<Box<dyn Target>, TargetError> {
        Ok(match self {
            TargetFactory::Embedded(config) => Box::new(EmbeddedTarget::start(config.clone()).await?),
            TargetFactory::Kube(client, config) => Box::new(KubeTarget::with_client(
                client.clone(),
                config.clone(),
                &crate::targets::embedded::names::random(6),
            )),
        })
    }
}
