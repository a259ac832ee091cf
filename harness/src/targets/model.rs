//! What a target reports about the cluster, in one shape for every implementation (embedded state, or the
//! Kubernetes API's Services, Pods and EndpointSlices).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::scenario::{IpFamily, Protocol, TargetPort};

/// A Service as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.clusterIP`; `None` when headless.
    pub cluster_ip: Option<IpAddr>,
    /// `spec.clusterIPs`: one per family, primary first (the first is `cluster_ip`); empty when headless.
    #[serde(default)]
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.ipFamilies`, primary first (headless Services have them too).
    #[serde(default)]
    pub ip_families: Vec<IpFamily>,
    /// `spec.ports`.
    pub ports: Vec<ServicePortView>,
    /// `spec.healthCheckNodePort` (LoadBalancer with `externalTrafficPolicy: Local`).
    #[serde(default)]
    pub health_check_node_port: Option<u16>,
}

/// One entry of `spec.ports`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServicePortView {
    /// Port name.
    pub name: Option<String>,
    /// Service port.
    pub port: u16,
    /// Target port on the pods.
    pub target_port: TargetPort,
    /// Protocol.
    pub protocol: Protocol,
    /// `nodePort` (NodePort and LoadBalancer services).
    #[serde(default)]
    pub node_port: Option<u16>,
}

/// A Node as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Its `InternalIP`.
    pub ip: IpAddr,
    /// `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
}

/// A Pod as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Generated name (`nginx-5c8d7f9b4d-x2k4p`).
    pub name: String,
    /// `status.podIP`.
    pub ip: IpAddr,
    /// `status.podIPs`: one per family, primary first (the first is `ip`).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// The Ready condition.
    pub ready: bool,
    /// Deletion timestamp set.
    pub terminating: bool,
    /// `spec.nodeName`, once scheduled.
    #[serde(default)]
    pub node: Option<String>,
}

/// One EndpointSlice (`discovery.k8s.io/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSliceView {
    /// Slice name.
    pub name: String,
    /// `addressType`: the family of every endpoint address in it.
    #[serde(default = "ipv4")]
    pub address_type: IpFamily,
    /// Ports every endpoint of the slice serves.
    pub ports: Vec<EndpointPortView>,
    /// Endpoints.
    pub endpoints: Vec<EndpointView>,
    /// When the API server last stored it (the latest `managedFields` time, to the second), for diagnostics:
    /// with the step's times it says whether a proxy had the slice for long. `None` where no API server keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written: Option<String>,
}

fn ipv4() -> IpFamily {
    IpFamily::IPv4
}

impl ServiceView {
    /// The ClusterIP of `family`, if the Service has one.
    pub fn cluster_ip_of(&self, family: IpFamily) -> Option<IpAddr> {
        self.cluster_ips.iter().copied().chain(self.cluster_ip).find(|ip| IpFamily::of(*ip) == family)
    }

    /// The ClusterIP of `family`, or the primary ClusterIP when no family is asked.
    pub fn cluster_ip_for(&self, family: Option<IpFamily>) -> Option<IpAddr> {
        match family {
            None => self.cluster_ip,
            Some(f) => self.cluster_ip_of(f),
        }
    }

    /// The Service's primary family (`spec.ipFamilies[0]`; IPv4 when the target reports none).
    pub fn primary_family(&self) -> IpFamily {
        self.ip_families.first().copied().unwrap_or(IpFamily::IPv4)
    }
}

impl PodView {
    /// The pod's address of `family`, if it has one.
    pub fn ip_of(&self, family: IpFamily) -> Option<IpAddr> {
        self.ips.iter().copied().chain(std::iter::once(self.ip)).find(|ip| IpFamily::of(*ip) == family)
    }
}

/// A slice port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EndpointPortView {
    /// Matches the service port's name.
    pub name: Option<String>,
    /// Resolved port number on the pod.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// One endpoint and its conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    /// The pod IP.
    pub address: IpAddr,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// `hostname`, when the pod sets one.
    pub hostname: Option<String>,
    /// `targetRef.name`.
    pub pod: Option<String>,
    /// `nodeName`.
    #[serde(default)]
    pub node: Option<String>,
    /// `zone`.
    #[serde(default)]
    pub zone: Option<String>,
    /// `hints.forZones` (set for `trafficDistribution: PreferClose`).
    #[serde(default)]
    pub for_zones: Option<Vec<String>>,
}

/// A Service with its EndpointSlices, as bulk checks read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The Service.
    pub service: ServiceView,
    /// Its EndpointSlices.
    pub slices: Vec<EndpointSliceView>,
}
