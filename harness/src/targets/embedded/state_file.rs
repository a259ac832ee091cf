//! The JSON state file `svcbench up` keeps current, so real tools (dig, curl, wrk, dnsperf) can reach the cluster.

use std::{
    io::Write,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::Serialize;

use super::{ports::PortMap, state::Snapshot};
use crate::{
    probe::AddressMap,
    scenario::{IpFamily, Protocol, TargetPort, nodes::ServiceType},
};

/// The state file's format version: scripts check it; it changes when a field changes meaning or goes away.
pub const STATE_SCHEMA_VERSION: u32 = 2;

/// Top level of the state file.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StateFile {
    /// [`STATE_SCHEMA_VERSION`]: 2 added every address of both families, the Service type and the ExternalName
    /// target.
    pub schema_version: u32,
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
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ServiceEntry {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `ClusterIP`, `Headless`, `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub service_type: ServiceKind,
    /// The DNS name an `ExternalName` Service is an alias of; null for other types.
    pub external_name: Option<String>,
    /// The primary ClusterIP (`cluster_ips[0]`), null when headless or ExternalName.
    pub cluster_ip: Option<IpAddr>,
    /// Every ClusterIP, one per family, primary first (`spec.clusterIPs`).
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.ipFamilies`, primary first.
    pub ip_families: Vec<IpFamily>,
    /// Ports.
    pub ports: Vec<PortEntry>,
}

/// What a Service is, as a script needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum ServiceKind {
    /// A virtual IP inside the cluster.
    ClusterIP,
    /// No ClusterIP: DNS answers with the endpoints.
    Headless,
    /// A ClusterIP plus a port on every node.
    NodePort,
    /// A NodePort plus the (absent here) load balancer's health check.
    LoadBalancer,
    /// A DNS alias (`external_name`).
    ExternalName,
}

/// A service port.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PortEntry {
    /// Port name.
    pub name: Option<String>,
    /// Service port.
    pub port: u16,
    /// Target port (number or name).
    pub target_port: TargetPort,
    /// Protocol.
    pub protocol: Protocol,
    /// `ip:port` an external client connects to for the primary ClusterIP (null when headless).
    pub connect: Option<SocketAddr>,
    /// `ip:port` an external client connects to for each ClusterIP, in `cluster_ips` order.
    pub connect_all: Vec<SocketAddr>,
}

/// A pod.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PodEntry {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod IP (the IPv4 one, `ips[0]`).
    pub ip: IpAddr,
    /// Every pod IP, IPv4 first (`status.podIPs`).
    pub ips: Vec<IpAddr>,
    /// Ready condition.
    pub ready: bool,
    /// `ip:port` of the pod's first container port as a client reaches it.
    pub connect: SocketAddr,
}

/// Builds the state file for a snapshot.
pub fn build(snap: &Snapshot, ports: &PortMap) -> StateFile {
    let dns_ip = IpAddr::V4(snap.dns_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST));
    StateFile {
        schema_version: STATE_SCHEMA_VERSION,
        dns: ports.resolve(SocketAddr::new(dns_ip, 53)),
        cluster_domain: snap.cluster_domain.clone(),
        generation: snap.generation,
        services: snap
            .services
            .iter()
            .map(|(k, s)| ServiceEntry {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                service_type: kind_of(s),
                external_name: s.external_name.clone(),
                cluster_ip: s.cluster_ips.first().copied(),
                cluster_ips: s.cluster_ips.clone(),
                ip_families: s.families.clone(),
                ports: s
                    .ports
                    .iter()
                    .map(|p| {
                        let connect = |ip: &IpAddr| {
                            let model = SocketAddr::new(*ip, p.port);
                            if p.protocol == Protocol::Udp { ports.resolve_udp(model) } else { ports.resolve(model) }
                        };
                        PortEntry {
                            name: p.name.clone(),
                            port: p.port,
                            target_port: p.target_port.clone(),
                            protocol: p.protocol,
                            connect: s.cluster_ips.first().map(connect),
                            connect_all: s.cluster_ips.iter().map(connect).collect(),
                        }
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
                    ips: vec![IpAddr::V4(p.ip), IpAddr::V6(p.ip6)],
                    ready: p.ready,
                    connect: ports.resolve(SocketAddr::new(IpAddr::V4(p.ip), port)),
                }
            })
            .collect(),
    }
}

/// The type a script sees: ExternalName and headless first, then the exposure's type.
fn kind_of(service: &super::state::Service) -> ServiceKind {
    match (&service.external_name, service.cluster_ips.is_empty(), service.exposure.service_type) {
        (Some(_), _, _) => ServiceKind::ExternalName,
        (None, true, _) => ServiceKind::Headless,
        (None, false, ServiceType::ClusterIP) => ServiceKind::ClusterIP,
        (None, false, ServiceType::NodePort) => ServiceKind::NodePort,
        (None, false, ServiceType::LoadBalancer) => ServiceKind::LoadBalancer,
    }
}

/// Writes the state file atomically, so readers never see half a document: a temp file with a unique name in the
/// same directory (so concurrent writers never share one), then a rename over `path`.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, state: &StateFile) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".svcbench-state.").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(&body)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The one writer of a state file: writes are serialized and never go back in time (a slow write of an older
/// generation finishing after a newer one must not replace it).
pub struct StateWriter {
    path: PathBuf,
    /// The newest generation written so far.
    written: Mutex<Option<u64>>,
}

impl StateWriter {
    /// A writer for `path`; nothing is written yet.
    pub fn new(path: PathBuf) -> Self {
        Self { path, written: Mutex::new(None) }
    }

    /// The file this writer keeps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `state` unless a newer generation is already written; `Ok(false)` when skipped.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, state: &StateFile) -> std::io::Result<bool> {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if written.is_some_and(|g| g > state.generation) {
            return Ok(false);
        }
        write(&self.path, state)?;
        *written = Some(state.generation);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(generation: u64) -> StateFile {
        StateFile {
            schema_version: STATE_SCHEMA_VERSION,
            dns: "127.0.0.1:53".parse().unwrap(),
            cluster_domain: "cluster.local".into(),
            generation,
            services: Vec::new(),
            pods: Vec::new(),
        }
    }

    /// The race of issue #12: writers sharing one `<state>.tmp` renamed each other's file away ("No such file or
    /// directory"). Many concurrent writers to one path must all succeed and leave one whole document.
    #[test]
    fn concurrent_writes_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let path = &path;
                s.spawn(move || {
                    for i in 0..200 {
                        write(path, &state(t * 1000 + i)).unwrap_or_else(|e| panic!("writer {t}, write {i}: {e}"));
                    }
                });
            }
        });
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(doc["generation"].is_u64());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("state.json")], "temp files left behind");
    }

    #[test]
    fn the_writer_never_goes_back_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let writer = StateWriter::new(dir.path().join("state.json"));
        assert!(writer.write(&state(5)).unwrap());
        assert!(!writer.write(&state(4)).unwrap());
        assert!(writer.write(&state(5)).unwrap());
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(writer.path()).unwrap()).unwrap();
        assert_eq!(doc["generation"], 5);
    }
}
