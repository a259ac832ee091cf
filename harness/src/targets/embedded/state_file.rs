//! The JSON state file `svcbench up` keeps current, so real tools (dig, curl, wrk, dnsperf) can reach the cluster.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{ports::PortMap, state::Snapshot};
use crate::{
    probe::AddressMap,
    scenario::{Protocol, TargetPort},
};

/// Top level of the state file.
#[derive(Debug, Serialize)]
pub struct StateFile {
    /// Where to send DNS queries (`dig @ip -p port`).
    pub dns: SocketAddr,
    /// Cluster domain.
    pub cluster_domain: String,
    /// Snapshot generation this file shows.
    pub generation: u64,
    /// Services.
    pub services: Vec<ServiceEntry>,
    /// Pods.
    pub pods: Vec<PodEntry>,
}

/// A service.
#[derive(Debug, Serialize)]
pub struct ServiceEntry {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// ClusterIP, null when headless.
    pub cluster_ip: Option<IpAddr>,
    /// Ports.
    pub ports: Vec<PortEntry>,
}

/// A service port.
#[derive(Debug, Serialize)]
pub struct PortEntry {
    /// Port name.
    pub name: Option<String>,
    /// Service port.
    pub port: u16,
    /// Target port (number or name).
    pub target_port: TargetPort,
    /// Protocol.
    pub protocol: Protocol,
    /// `ip:port` an external client connects to (null when headless).
    pub connect: Option<SocketAddr>,
}

/// A pod.
#[derive(Debug, Serialize)]
pub struct PodEntry {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod IP.
    pub ip: IpAddr,
    /// Ready condition.
    pub ready: bool,
    /// `ip:port` of the pod's first container port as a client reaches it.
    pub connect: SocketAddr,
}

/// Builds the state file for a snapshot.
pub fn build(snap: &Snapshot, ports: &PortMap) -> StateFile {
    let dns_ip = IpAddr::V4(snap.dns_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST));
    StateFile {
        dns: ports.resolve(SocketAddr::new(dns_ip, 53)),
        cluster_domain: snap.cluster_domain.clone(),
        generation: snap.generation,
        services: snap
            .services
            .iter()
            .map(|(k, s)| ServiceEntry {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                cluster_ip: s.cluster_ip.map(IpAddr::V4),
                ports: s
                    .ports
                    .iter()
                    .map(|p| PortEntry {
                        name: p.name.clone(),
                        port: p.port,
                        target_port: p.target_port.clone(),
                        protocol: p.protocol,
                        connect: s.cluster_ip.map(|ip| ports.resolve(SocketAddr::new(IpAddr::V4(ip), p.port))),
                    })
                    .collect(),
            })
            .collect(),
        pods: snap
            .pods
            .iter()
            .map(|(k, p)| {
                let port = p.ports.first().map_or(80, |c| c.port);
                PodEntry {
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                    ip: IpAddr::V4(p.ip),
                    ready: p.ready,
                    connect: ports.resolve(SocketAddr::new(IpAddr::V4(p.ip), port)),
                }
            })
            .collect(),
    }
}

/// Writes the state file atomically (temp file + rename), so readers never see half a document.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &std::path::Path, state: &StateFile) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}
