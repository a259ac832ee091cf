//! Targets: the Service/DNS implementations under test. A [`Target`] applies actions, reports the API view of
//! the cluster, and runs probes from inside a namespace. One folder per implementation.

/// The name of the pod a namespace client runs in: the kube target's agent pod, and the embedded client's
/// hostname, so `/etc/hosts` names it the same on every target.
pub const AGENT_POD_NAME: &str = "svcbench-agent";

pub mod embedded;
pub mod kube;
pub mod model;

use async_trait::async_trait;

pub use model::*;

use crate::{
    probe::{ProbeRequest, ProbeResponse},
    scenario::{Action, Client, ObjectRef},
};

/// A target could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The action cannot be applied in the current state.
    #[error("{0}")]
    Rejected(String),
    /// A probe could not run.
    #[error("probe: {0}")]
    Probe(#[from] crate::probe::ProbeError),
    /// The harness's identity may not do this (HTTP 403: RBAC, or an admission policy): a limit of who runs the
    /// scenario, not a verdict on the implementation, so the step is reported as not run.
    #[error("{0}")]
    NotPermitted(String),
    /// Anything else (I/O, API errors).
    #[error("{0}")]
    Other(String),
}

/// A Service and DNS implementation that scenarios run against.
#[async_trait]
pub trait Target: Send + Sync {
    /// Short name used in trial names and reports (`embedded`, `kube`).
    fn name(&self) -> &str;

    /// One line describing the implementation (versions, modes).
    fn description(&self) -> String;

    /// Applies a change to the cluster; returns once the API accepted it (not once it converged).
    async fn apply(&self, action: &Action) -> Result<(), TargetError>;

    /// The Service, if it exists.
    async fn service(&self, service: &ObjectRef) -> Result<Option<ServiceView>, TargetError>;

    /// The live pods of a Deployment, oldest first.
    async fn pods(&self, deployment: &ObjectRef) -> Result<Vec<PodView>, TargetError>;

    /// The EndpointSlices of a Service.
    async fn endpoint_slices(&self, service: &ObjectRef) -> Result<Vec<EndpointSliceView>, TargetError>;

    /// Runs a probe from a pod in namespace `from`.
    async fn probe(&self, from: &str, request: &ProbeRequest) -> Result<ProbeResponse, TargetError>;

    /// The cluster's nodes, ordered by name (scenarios name them by index in this order).
    async fn nodes(&self) -> Result<Vec<NodeView>, TargetError>;

    /// Runs a probe as `client`: a pod in a namespace, a pod on a given node, a node, or a backend pod.
    async fn probe_as(&self, client: &Client, request: &ProbeRequest) -> Result<ProbeResponse, TargetError>;

    /// The node of index `index`, or an error saying how many nodes the target has.
    async fn node(&self, index: u32) -> Result<NodeView, TargetError> {
        let nodes = self.nodes().await?;
        let count = nodes.len();
        nodes.into_iter().nth(index as usize).ok_or_else(|| {
            TargetError::Rejected(format!("the scenario names node {index}, but the target has {count} node(s)"))
        })
    }

    /// Creates a namespace under exactly `name` (`createNamespace: {name, literal: true}`), for scenarios whose DNS
    /// names depend on it. A target that gives namespaces run-unique names must not rename this one; the default is
    /// an ordinary namespace, for targets that keep names as written.
    async fn create_literal_namespace(&self, name: &str) -> Result<(), TargetError> {
        self.apply(&Action::CreateNamespace { name: name.to_owned() }).await
    }

    /// Each of `services` (`None` when it does not exist) with its EndpointSlices, for bulk checks. A target whose
    /// API calls each cost a round trip answers with a few list calls; the default asks service by service.
    async fn services_with_slices(&self, services: &[ObjectRef]) -> Result<Vec<Option<ServiceState>>, TargetError> {
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            out.push(match self.service(s).await? {
                Some(service) => Some(ServiceState { service, slices: self.endpoint_slices(s).await? }),
                None => None,
            });
        }
        Ok(out)
    }

    /// The cluster domain (`cluster.local`).
    fn cluster_domain(&self) -> String {
        "cluster.local".into()
    }

    /// How often the runner re-checks an assertion that does not hold yet.
    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(50)
    }

    /// Releases everything the target started (listeners, namespaces, processes).
    async fn shutdown(&self) {}
}
