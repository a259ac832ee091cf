//! The validated plan: every name checked, every reference resolved to something an earlier step created.
//!
//! Targets execute [`Action`]s; the runner evaluates [`Check`]s. Both are target-neutral: they say *which* object
//! ("the ClusterIP of service `nginx`"), never a concrete address.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Serialize;

pub use super::{checks::*, nodes::*};

/// A scenario ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Scenario name (DNS-1035 label).
    pub name: String,
    /// What the scenario proves.
    pub description: String,
    /// The file it came from.
    pub source: PathBuf,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One step with where it was written.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based position in the scenario.
    pub index: usize,
    /// Line in the source file.
    pub line: u64,
    /// What to do or check.
    pub kind: StepKind,
}

/// An action changes the cluster; an assertion waits until a check holds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    /// Change the cluster.
    Action(Action),
    /// Create a namespace under exactly this name on every target (`createNamespace: {name, literal: true}`).
    LiteralNamespace {
        /// The name, used verbatim.
        name: String,
    },
    /// Poll until the check holds or the timeout runs out.
    Assert(Assertion),
    /// Apply an action, then measure how long endpoints, DNS and traffic take to reflect it.
    Converge(Converge),
    /// Let this much time pass, changing and checking nothing.
    Wait {
        /// How long.
        #[serde(with = "crate::results::duration_ms")]
        duration: Duration,
    },
}

/// A change and what to watch while it propagates.
#[derive(Debug, Clone, Serialize)]
pub struct Converge {
    /// The change.
    pub action: Action,
    /// The service watched.
    pub service: ObjectRef,
    /// The workload behind it.
    pub deployment: ObjectRef,
    /// The workload's replica count once the action is applied.
    pub replicas: u32,
    /// Namespace DNS and traffic are probed from.
    pub from: String,
    /// How long all three may take.
    #[serde(with = "crate::results::duration_ms")]
    pub timeout: Duration,
}

/// A namespaced object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Changes to the cluster, as a user would make them with kubectl.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create a namespace.
    CreateNamespace {
        /// Namespace name.
        name: String,
    },
    /// Create a deployment of netexec pods labelled `app=<name>`.
    CreateDeployment(DeploymentSpec),
    /// Create a service.
    CreateService(ServiceSpec),
    /// Set a deployment's replicas.
    Scale {
        /// The deployment.
        deployment: ObjectRef,
        /// New replica count.
        replicas: u32,
    },
    /// Mark a pod ready or not ready (its readiness probe starts passing or failing).
    SetPodReady {
        /// The pod, by deployment and creation index.
        pod: PodRef,
        /// New readiness.
        ready: bool,
    },
    /// Create an EndpointSlice by hand (for a selectorless service).
    CreateEndpointSlice(EndpointSliceSpec),
    /// Delete a service.
    DeleteService {
        /// The service.
        service: ObjectRef,
    },
    /// Delete a deployment and its pods.
    DeleteDeployment {
        /// The deployment.
        deployment: ObjectRef,
    },
    /// Create services `<prefix>-0 … <prefix>-<count-1>`, each selecting `app=<deployment>` on `port`.
    CreateServices {
        /// Namespace.
        namespace: String,
        /// The workload every service selects.
        deployment: String,
        /// Name prefix.
        prefix: String,
        /// How many.
        count: u32,
        /// Service port (= target port).
        port: u16,
    },
}

/// A deployment to create.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentSpec {
    /// Namespace and name.
    pub object: ObjectRef,
    /// Replica count.
    pub replicas: u32,
    /// Container ports the pods serve HTTP (netexec) on.
    pub ports: Vec<ContainerPort>,
    /// Pod labels (always including `app=<name>`).
    pub labels: BTreeMap<String, String>,
    /// Pod `spec.hostname` (a StatefulSet sets each pod's own name).
    pub hostname: Option<String>,
    /// Pod `spec.subdomain`.
    pub subdomain: Option<String>,
    /// StatefulSet semantics: pods named `<name>-<ordinal>`, hostname = pod name, scale-down removes the highest.
    pub stateful: bool,
    /// How long a deleted pod stays terminating (still serving) before it is gone.
    #[serde(with = "crate::results::duration_ms")]
    pub termination_grace: Duration,
    /// Every pod runs on this node (by index; `None`: wherever the scheduler puts it).
    pub node: Option<u32>,
}

impl DeploymentSpec {
    /// `replicas` netexec pods on port 80 labelled `app=<name>` (benchmarks and tests build clusters with it).
    pub fn netexec(namespace: &str, name: &str, replicas: u32) -> Self {
        Self {
            object: ObjectRef { namespace: namespace.into(), name: name.into() },
            replicas,
            ports: vec![ContainerPort { name: None, port: 80 }],
            labels: [("app".to_owned(), name.to_owned())].into(),
            hostname: None,
            subdomain: None,
            stateful: false,
            termination_grace: Duration::ZERO,
            node: None,
        }
    }
}

impl ServiceSpec {
    /// A ClusterIP service selecting `app=<app>` on one unnamed TCP port (target port = port).
    pub fn cluster_ip(namespace: &str, name: &str, app: &str, port: u16) -> Self {
        Self {
            object: ObjectRef { namespace: namespace.into(), name: name.into() },
            selector: [("app".to_owned(), app.to_owned())].into(),
            ports: vec![ServicePortSpec {
                name: None,
                port,
                target_port: TargetPort::Number(port),
                protocol: Protocol::Tcp,
                node_port: None,
            }],
            headless: false,
            publish_not_ready: false,
            session_affinity: None,
            external_name: None,
            exposure: Exposure::default(),
        }
    }
}

impl Action {
    /// The services an [`Action::CreateServices`] stands for (empty for other actions).
    pub fn bulk_services(&self) -> Vec<ServiceSpec> {
        match self {
            Action::CreateServices { namespace, deployment, prefix, count, port } => (0..*count)
                .map(|i| ServiceSpec::cluster_ip(namespace, &format!("{prefix}-{i}"), deployment, *port))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A named or unnamed container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerPort {
    /// Optional port name (IANA_SVC_NAME).
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
}

/// A hand-written EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointSliceSpec {
    /// The selectorless service it belongs to.
    pub service: ObjectRef,
    /// Slice name.
    pub name: String,
    /// The family of every address in it.
    pub family: super::IpFamily,
    /// Its ports (a port may have no number: the API allows it).
    pub ports: Vec<SlicePortSpec>,
    /// Its endpoints.
    pub endpoints: Vec<SliceEndpointSpec>,
}

/// A port of a hand-written EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlicePortSpec {
    /// Name (`None`: the unnamed port).
    pub name: Option<String>,
    /// Number, if given.
    pub port: Option<u16>,
    /// Protocol.
    pub protocol: Protocol,
}

/// An endpoint of a hand-written EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SliceEndpointSpec {
    /// Its address.
    pub address: std::net::IpAddr,
    /// `conditions.ready` (and serving).
    pub ready: bool,
    /// `hostname`.
    pub hostname: Option<String>,
}

/// A service to create.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    /// Namespace and name.
    pub object: ObjectRef,
    /// Label selector.
    pub selector: BTreeMap<String, String>,
    /// Ports.
    pub ports: Vec<ServicePortSpec>,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// `sessionAffinity: ClientIP` with this timeout.
    #[serde(with = "opt_duration_ms")]
    pub session_affinity: Option<Duration>,
    /// `type: ExternalName` with this name (no selector, no ports).
    pub external_name: Option<String>,
    /// Type, node ports' policies and traffic distribution.
    pub exposure: Exposure,
}

/// Serde helper for `Option<Duration>` as milliseconds.
pub(crate) mod opt_duration_ms {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
}

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePortSpec {
    /// Port name; required when there are several ports.
    pub name: Option<String>,
    /// The service port.
    pub port: u16,
    /// Where traffic goes on the pod.
    pub target_port: TargetPort,
    /// Transport protocol.
    pub protocol: Protocol,
    /// The node port asked for (NodePort/LoadBalancer; allocated from 30000-32767 when `None`).
    pub node_port: Option<u16>,
}

/// `targetPort`: a number, or the name of a container port resolved per pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// Transport protocol of a port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lower-case label used in SRV names (`_tcp`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A pod named by its deployment and creation order (0 = oldest live pod).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PodRef {
    /// The owning deployment.
    pub deployment: ObjectRef,
    /// Index among the deployment's pods ordered by creation.
    pub index: u32,
}

/// A check with its polling timeout.
#[derive(Debug, Clone, Serialize)]
pub struct Assertion {
    /// How long the check may take to become true.
    #[serde(with = "crate::results::duration_ms")]
    pub timeout: Duration,
    /// What must hold.
    pub check: Check,
}

/// Which pods a set means; resolved against the target each time the check runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "pods", rename_all = "snake_case")]
pub enum PodSet {
    /// No pods.
    Empty,
    /// The ready pods of a deployment.
    ReadyPodsOf {
        /// The deployment.
        deployment: ObjectRef,
        /// Its replica count at this step: the set is known once that many live pods exist.
        replicas: u32,
    },
    /// All live (not terminating) pods of a deployment.
    PodsOf {
        /// The deployment.
        deployment: ObjectRef,
        /// Its replica count at this step: the set is known once that many live pods exist.
        replicas: u32,
    },
    /// The terminating pods of a deployment.
    TerminatingPodsOf {
        /// The deployment.
        deployment: ObjectRef,
    },
    /// The pods of `set` that run on node `node`.
    OnNode {
        /// The pods before the node filter.
        set: Box<PodSet>,
        /// Node index.
        node: u32,
    },
}
