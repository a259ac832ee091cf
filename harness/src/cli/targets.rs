//! Choosing the target from the command line: `--target embedded` (default), `--target kube [--context NAME]`, or
//! `--target lab [--proxy-mode M]` (a lab started for the run, used through its kubeconfig like any cluster).

use std::fmt;

use async_trait::async_trait;

use crate::{
    suite::battery::{DEFAULT_CLUSTER_JOBS, TargetSource},
    targets::{
        Target, TargetError,
        embedded::{EmbeddedConfig, EmbeddedTarget},
        kube::{KubeConfig, KubeTarget},
    },
};

/// Which implementation to run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TargetKind {
    /// The embedded reference cluster (no cluster needed).
    #[default]
    Embedded,
    /// A real cluster through kubeconfig (`SVCBENCH_TARGET=kube` for `cargo test`).
    Kube,
    /// A lab started for this run (real kube-apiserver, kube-proxy, CoreDNS; needs root and `svcbench lab install`).
    Lab,
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Embedded => "embedded",
            TargetKind::Kube => "kube",
            TargetKind::Lab => "lab",
        })
    }
}

impl TargetKind {
    /// Scenarios in flight at once: `asked`, or the target's default. The embedded target runs a cluster per
    /// scenario and is CPU-bound (one per core); on a real cluster scenarios mostly wait for controllers and proxies,
    /// so several overlap even on two cores.
    pub fn jobs(self, asked: Option<u16>) -> usize {
        match (asked, self) {
            (Some(n), _) => usize::from(n),
            (None, TargetKind::Embedded) => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            (None, TargetKind::Kube | TargetKind::Lab) => DEFAULT_CLUSTER_JOBS,
        }
    }
}

/// Makes a fresh target per scenario.
pub enum TargetFactory {
    /// A new embedded cluster per scenario.
    Embedded(EmbeddedConfig),
    /// New namespaces (a new run id) per scenario on one connected cluster.
    Kube(kube::Client, KubeConfig),
    /// The kube target on a lab this factory started (and stops in [`TargetFactory::stop`]).
    Lab(Box<crate::lab::Lab>, kube::Client, KubeConfig),
}

impl TargetFactory {
    /// Prepares the factory; for kube this connects and fails fast when no cluster is reachable.
    ///
    /// # Errors
    /// No kubeconfig, unreachable API server.
    pub async fn new(
        kind: TargetKind,
        embedded: EmbeddedConfig,
        context: Option<String>,
        lab: crate::lab::LabConfig,
    ) -> Result<Self, TargetError> {
        // Checked before a lab starts: a bad setting is the user's to fix at once.
        let kube_config = KubeConfig::try_from_env().map_err(TargetError::Other);
        Ok(match kind {
            TargetKind::Lab => {
                let config = kube_config?;
                let lab = crate::lab::Lab::start(lab).await.map_err(|e| TargetError::Other(format!("{e:#}")))?;
                let client =
                    crate::lab::client_for(lab.kubeconfig()).await.map_err(|e| TargetError::Other(format!("{e:#}")))?;
                TargetFactory::Lab(Box::new(lab), client, config)
            }
            TargetKind::Embedded => TargetFactory::Embedded(embedded),
            TargetKind::Kube => {
                let mut config = kube_config?;
                if context.is_some() {
                    config.context = context;
                }
                let probe = KubeTarget::connect(config.clone()).await?;
                TargetFactory::Kube(probe.client(), config)
            }
        })
    }

    /// The target name used in results.
    pub fn name(&self) -> String {
        match self {
            TargetFactory::Embedded(_) => "embedded".into(),
            TargetFactory::Kube(..) => "kube".into(),
            TargetFactory::Lab(lab, ..) => lab.config().name(),
        }
    }

    /// What the implementation under test is, when the factory knows better than the target (the lab's versions).
    pub fn description(&self) -> Option<String> {
        match self {
            TargetFactory::Lab(lab, ..) => Some(lab.description()),
            _ => None,
        }
    }

    /// Copies the lab's component logs under `into` (see [`crate::lab::Lab::copy_logs`]); `None` when the factory
    /// started no lab.
    pub fn copy_logs(&self, into: &std::path::Path) -> Option<usize> {
        match self {
            TargetFactory::Lab(lab, ..) => Some(lab.copy_logs(into)),
            _ => None,
        }
    }

    /// Stops what the factory started (the lab).
    pub async fn stop(self) {
        if let TargetFactory::Lab(lab, ..) = self {
            lab.stop().await;
        }
    }

    /// A fresh target for one scenario.
    ///
    /// # Errors
    /// The embedded cluster cannot start.
    pub async fn start(&self) -> Result<Box<dyn Target>, TargetError> {
        Ok(match self {
            TargetFactory::Embedded(config) => Box::new(EmbeddedTarget::start(config.clone()).await?),
            TargetFactory::Kube(client, config) | TargetFactory::Lab(_, client, config) => Box::new(
                KubeTarget::with_client(client.clone(), config.clone(), &crate::targets::embedded::names::random(6)),
            ),
        })
    }
}

#[async_trait]
impl TargetSource for TargetFactory {
    fn name(&self) -> String {
        TargetFactory::name(self)
    }

    async fn start(&self) -> Result<Box<dyn Target>, TargetError> {
        TargetFactory::start(self).await
    }
}
