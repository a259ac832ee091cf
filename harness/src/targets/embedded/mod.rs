//! The embedded reference cluster: control plane in process, pods as real HTTP servers on their own loopback IPs, a
//! real DNS server, and a real L4 proxy on each ClusterIP. No cluster, no containers, no root.

pub mod cluster;
pub mod dns;
pub mod dns_server;
pub mod faults;
pub mod health;
pub mod ipam;
pub mod names;
pub mod pod;
pub mod ports;
pub mod programming;
pub mod proxy;
pub mod slices;
pub mod state;
pub mod state_file;
pub mod udp_proxy;

use std::{net::IpAddr, sync::Arc, time::Duration};

use async_trait::async_trait;

pub use cluster::Cluster;
pub use faults::{Fault, Faults};
pub use ports::PortPolicy;

use super::{EndpointSliceView, NodeView, PodView, ServiceView, Target, TargetError};
use crate::{
    probe::{self, Dialer, ProbeContext, ProbeRequest, ProbeResponse, ResolvConf, hosts::HostsFile},
    scenario::{Action, Client, ObjectRef},
};

/// How the embedded cluster is set up.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Whether to try ports below 1024.
    pub port_policy: PortPolicy,
    /// Per-attempt timeout of probes.
    pub probe_timeout: Duration,
    /// Seeded bugs (empty for the reference behaviour).
    pub faults: Faults,
    /// Where the search for a free address slot starts (random when `None`); tests use it to force slot reuse.
    pub first_slot: Option<u8>,
    /// Nodes (1-8), in zones `zone-1`, `zone-2`, `zone-1`, …
    pub nodes: u32,
}

impl Default for EmbeddedConfig {
    /// `cluster.local`, no faults; `SVCBENCH_UNPRIVILEGED_PORTS=1` forces the non-root port layout.
    fn default() -> Self {
        let unprivileged = std::env::var("SVCBENCH_UNPRIVILEGED_PORTS").is_ok_and(|v| v == "1" || v == "true");
        Self {
            cluster_domain: "cluster.local".into(),
            port_policy: if unprivileged { PortPolicy::Unprivileged } else { PortPolicy::Auto },
            probe_timeout: Duration::from_secs(2),
            faults: Faults::default(),
            first_slot: None,
            nodes: 2,
        }
    }
}

impl EmbeddedConfig {
    /// The default configuration with the faults named in `SVCBENCH_FAULTS` (comma-separated).
    ///
    /// # Errors
    /// An unknown fault name.
    pub fn from_env() -> Result<Self, String> {
        let faults = match std::env::var("SVCBENCH_FAULTS") {
            Ok(list) => Faults::parse_list(&list).map_err(|e| format!("SVCBENCH_FAULTS: {e}"))?,
            Err(_) => Faults::default(),
        };
        Ok(Self { faults, ..Self::default() })
    }
}

/// The embedded target.
pub struct EmbeddedTarget {
    cluster: Arc<Cluster>,
    /// Kept UDP flows of every client.
    udp_flows: Arc<probe::udp::UdpFlows>,
    /// Pooled `reqwest` clients of every client (one per source address).
    http_pool: Arc<probe::pooled::HttpPool>,
}

impl EmbeddedTarget {
    /// Starts a fresh embedded cluster.
    ///
    /// # Errors
    /// See [`Cluster::start`].
    pub async fn start(config: EmbeddedConfig) -> Result<Self, TargetError> {
        Ok(Self {
            cluster: Arc::new(Cluster::start(config).await?),
            udp_flows: Default::default(),
            http_pool: Default::default(),
        })
    }

    /// The cluster behind the target.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The probe context of a pod in `namespace`.
    pub fn probe_context(&self, namespace: &str) -> Result<ProbeContext, TargetError> {
        self.client_context(&Client::namespace(namespace))
    }

    /// The `/etc/hosts` kubelet gives the client: a namespace client is the agent pod the kube target runs there; a
    /// node client (`hostNetwork`) gets the node's file, which names the node.
    fn hosts_file(&self, client: &Client, source: std::net::Ipv4Addr) -> HostsFile {
        let snap = self.cluster.snapshot();
        let name = match client {
            Client::Namespace { .. } => Some(super::AGENT_POD_NAME.to_owned()),
            Client::PodOnNode { node, .. } => {
                snap.nodes.get(*node as usize).map(|n| format!("{}-{}", super::AGENT_POD_NAME, n.name))
            }
            Client::Node { node } => snap.nodes.get(*node as usize).map(|n| n.name.clone()),
            Client::Pod { pod } => snap
                .deployment_pods(&pod.deployment)
                .into_iter()
                .find(|(_, p)| p.ip == source)
                .map(|(k, _)| k.name.clone()),
        };
        let ips = [IpAddr::V4(source), IpAddr::V6(ipam::v6_twin(source))];
        HostsFile::kubelet(&ips, name.as_deref().unwrap_or("localhost"), None)
    }

    /// The probe context of `client`: its source address, its resolver configuration, and the proxy view it gets.
    pub fn client_context(&self, client: &Client) -> Result<ProbeContext, TargetError> {
        let (source, namespace, place) = self.cluster.place(client)?;
        let config = self.cluster.config();
        let mut resolv_conf =
            ResolvConf::cluster_first(IpAddr::V4(self.cluster.dns_ip()), &namespace, &config.cluster_domain);
        if config.faults.has(Fault::ResolvMissingNamespaceSearch) {
            resolv_conf.search.remove(0);
        }
        if config.faults.has(Fault::ResolvNdotsOne) {
            resolv_conf.ndots = 1;
        }
        Ok(ProbeContext {
            resolv_conf,
            dialer: Dialer::new(self.cluster.ports().for_client(place), Some(IpAddr::V4(source)))
                .with_other_source(IpAddr::V6(ipam::v6_twin(source))),
            timeout: config.probe_timeout,
            hosts: self.hosts_file(client, source),
            http_pool: self.http_pool.clone(),
            udp_flows: self.udp_flows.clone(),
        })
    }
}

#[async_trait]
impl Target for EmbeddedTarget {
    fn name(&self) -> &str {
        "embedded"
    }

    fn description(&self) -> String {
        let config = self.cluster.config();
        let faults = if config.faults.0.is_empty() {
            String::new()
        } else {
            format!("; seeded faults: {}", config.faults.0.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "))
        };
        format!(
            "svcbench embedded reference cluster (DNS {}, domain {}, random per-connection proxy{faults})",
            self.cluster.dns_ip(),
            config.cluster_domain
        )
    }

    async fn apply(&self, action: &Action) -> Result<(), TargetError> {
        self.cluster.apply(action)
    }

    async fn service(&self, service: &ObjectRef) -> Result<Option<ServiceView>, TargetError> {
        Ok(self.cluster.snapshot().service_view(service))
    }

    async fn pods(&self, deployment: &ObjectRef) -> Result<Vec<PodView>, TargetError> {
        Ok(self.cluster.snapshot().pod_views(deployment))
    }

    async fn endpoint_slices(&self, service: &ObjectRef) -> Result<Vec<EndpointSliceView>, TargetError> {
        Ok(self.cluster.snapshot().slice_views(service))
    }

    async fn probe(&self, from: &str, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        let ctx = self.probe_context(from)?;
        Ok(probe::run(&ctx, request).await?)
    }

    async fn nodes(&self) -> Result<Vec<NodeView>, TargetError> {
        Ok(self
            .cluster
            .snapshot()
            .nodes
            .iter()
            .map(|n| NodeView { name: n.name.clone(), ip: IpAddr::V4(n.ip), zone: Some(n.zone.clone()) })
            .collect())
    }

    async fn probe_as(&self, client: &Client, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        let ctx = self.client_context(client)?;
        Ok(probe::run(&ctx, request).await?)
    }

    fn cluster_domain(&self) -> String {
        self.cluster.config().cluster_domain.clone()
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(20)
    }

    async fn shutdown(&self) {
        self.cluster.shutdown().await;
    }
}
