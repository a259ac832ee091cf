//! Where traffic comes from and how a Service lets it in, across nodes: the client of a probe (a pod in a namespace,
//! a pod on a given node, a node itself, or a backend pod), the path it takes (`via`), and a Service's exposure
//! (`type`, node ports, traffic policies, `trafficDistribution`).
//!
//! Nodes are named by index (0 = the first node by name), so one scenario means the same on every target.

use serde::Serialize;

use super::plan::{ObjectRef, PodRef};

/// Who runs a probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "client", rename_all = "snake_case")]
pub enum Client {
    /// A pod in this namespace, wherever the target places it (`from: test`).
    Namespace {
        /// The namespace.
        namespace: String,
    },
    /// A pod in `namespace` on node `node` (`from: {namespace: test, node: 1}`).
    PodOnNode {
        /// The namespace.
        namespace: String,
        /// Node index.
        node: u32,
    },
    /// The node itself: a host-network client with the node's address (`from: {node: 0}`).
    Node {
        /// Node index.
        node: u32,
    },
    /// A backend pod of a workload (`from: {pod: {deployment: web, index: 0}}`): what that pod sees when it dials.
    Pod {
        /// The pod.
        pod: PodRef,
    },
}

impl Client {
    /// A pod in `namespace`, placed by the target.
    pub fn namespace(namespace: &str) -> Self {
        Client::Namespace { namespace: namespace.to_owned() }
    }

    /// The namespace whose resolver configuration the client uses (`None` for a node).
    pub fn namespace_name(&self) -> Option<&str> {
        match self {
            Client::Namespace { namespace } | Client::PodOnNode { namespace, .. } => Some(namespace),
            Client::Node { .. } => None,
            Client::Pod { pod } => Some(&pod.deployment.namespace),
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::Namespace { namespace } => f.write_str(namespace),
            Client::PodOnNode { namespace, node } => write!(f, "a pod in {namespace} on node {node}"),
            Client::Node { node } => write!(f, "node {node}"),
            Client::Pod { pod } => write!(f, "pod #{} of {}", pod.index, pod.deployment),
        }
    }
}

/// How a check reaches a Service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Via {
    /// Through the name in the URL, resolved by the client's resolver (the default).
    Dns,
    /// At the Service's ClusterIP, read from the API (no DNS).
    ClusterIp {
        /// The service.
        service: ObjectRef,
    },
    /// At a node's address and the Service port's nodePort.
    NodePort {
        /// The service.
        service: ObjectRef,
        /// Node index.
        node: u32,
    },
}

/// What source address the backend must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceIp {
    /// The client's own address (no SNAT).
    Preserved,
    /// An address of a node other than the client's own: the proxy masqueraded the connection.
    Node,
}

/// `spec.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub enum ServiceType {
    /// A virtual IP inside the cluster.
    #[default]
    ClusterIP,
    /// A ClusterIP plus a port on every node.
    NodePort,
    /// A NodePort plus an external load balancer (none here: the nodePorts and the health check are what exists).
    LoadBalancer,
}

impl ServiceType {
    /// Whether the type allocates node ports.
    pub fn has_node_ports(self) -> bool {
        matches!(self, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

/// `internalTrafficPolicy` / `externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub enum TrafficPolicy {
    /// Any ready endpoint in the cluster.
    #[default]
    Cluster,
    /// Only endpoints on the node the traffic arrived at (none: dropped).
    Local,
}

/// How a Service is reachable beyond its ClusterIP; defaults are Kubernetes' defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Exposure {
    /// `spec.type`.
    pub service_type: ServiceType,
    /// `spec.internalTrafficPolicy`.
    pub internal_traffic_policy: TrafficPolicy,
    /// `spec.externalTrafficPolicy` (node ports only).
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.trafficDistribution: PreferClose`.
    pub prefer_close: bool,
    /// `spec.healthCheckNodePort` asked for (LoadBalancer with `externalTrafficPolicy: Local`; else allocated).
    pub health_check_node_port: Option<u16>,
    /// `spec.ipFamilyPolicy` and `spec.ipFamilies` as written.
    pub ip_families: super::IpFamilies,
}

impl Exposure {
    /// Whether kube-proxy serves a health check node port for it (`LoadBalancer` with `externalTrafficPolicy:
    /// Local`).
    pub fn has_health_check(&self) -> bool {
        self.service_type == ServiceType::LoadBalancer && self.external_traffic_policy == TrafficPolicy::Local
    }
}

/// The range node ports are allocated from (the API server's default `--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;
