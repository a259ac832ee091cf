//! What the embedded proxy programs for one Service, as kube-proxy would: per ClusterIP:port and nodeIP:nodePort, and
//! per *view* (who is dialing), the endpoints a new connection may go to, whether it is masqueraded, or whether it
//! is rejected or dropped; and what each node's health check node port answers.
//!
//! The rules are kube-proxy's `CategorizeEndpoints` (pkg/proxy/topology.go) and its NodePort chains:
//! - cluster endpoints: ready ones, only those hinted for the node's zone when every ready endpoint has a hint and
//!   one is for this zone (`trafficDistribution: PreferClose`), else all; none ready → serving terminating ones;
//! - local endpoints (a `Local` policy): ready ones on the node, else its serving terminating ones; none → DROP,
//!   unless the Service has no usable endpoint on any node: then REJECT, as without a `Local` policy;
//! - ClusterIP traffic is handled on the client's node; node-port traffic on the node it arrives at. With
//!   `externalTrafficPolicy: Cluster` it is masqueraded to that node's address; with `Local` it is not, and only
//!   traffic from outside the cluster gets the local-only rule: pods and the node itself go to cluster endpoints.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use super::faults::{Fault, Faults};
use crate::{
    scenario::{Exposure, IpFamily, ObjectRef, Protocol, TrafficPolicy},
    targets::model::{EndpointSliceView, ServicePortView},
};

/// One node of the embedded cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Its address (a loopback address of the cluster's slot).
    pub ip: Ipv4Addr,
    /// `topology.kubernetes.io/zone`.
    pub zone: String,
}

/// Which clients a proxy listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum View {
    /// Every client (on a node address: traffic arriving from outside the cluster).
    Shared,
    /// Clients on this node, for a Service whose backends depend on where the client runs.
    Node(u32),
    /// Pods anywhere, and the node itself, dialing a node port whose `externalTrafficPolicy` is `Local`.
    Internal,
}

/// A listener: the address dialled and the view it serves.
pub type ProxyKey = (SocketAddr, View);

/// Where new connections of one listener go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEntry {
    /// Backends a new connection may go to (shared by every service with the same endpoints and port).
    pub backends: Arc<Vec<SocketAddr>>,
    /// ClientIP affinity timeout.
    pub affinity: Option<Duration>,
    /// The source address the backend sees when the connection is masqueraded.
    pub snat: Option<IpAddr>,
}

/// What one listener does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Programmed {
    /// Forward to a backend.
    Forward(ProxyEntry),
    /// No endpoints: REJECT (connection refused).
    Reject,
    /// No endpoints where a `Local` policy allows them: DROP (the client times out).
    Drop,
}

/// What a health check node port answers on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEntry {
    /// The Service.
    pub service: ObjectRef,
    /// Ready endpoints on this node.
    pub local_endpoints: u32,
    /// 200 rather than 503.
    pub healthy: bool,
}

/// An endpoint as kube-proxy sees it for one service port.
struct Endpoint<'a> {
    addr: SocketAddr,
    ready: bool,
    serving_terminating: bool,
    node: Option<&'a str>,
    zones: Option<&'a [String]>,
}

fn endpoints<'a>(sp: &ServicePortView, family: IpFamily, slices: &'a [EndpointSliceView]) -> Vec<Endpoint<'a>> {
    let mut out = Vec::new();
    // kube-proxy runs one proxier per family: a ClusterIP's backends are the slices of its family.
    for slice in slices.iter().filter(|s| s.address_type == family) {
        let Some(port) = slice.ports.iter().find(|p| p.name == sp.name && p.protocol == sp.protocol) else {
            continue;
        };
        for ep in &slice.endpoints {
            out.push(Endpoint {
                addr: SocketAddr::new(ep.address, port.port),
                ready: ep.ready,
                serving_terminating: ep.serving && ep.terminating,
                node: ep.node.as_deref(),
                zones: ep.for_zones.as_deref(),
            });
        }
    }
    out
}

/// Ready endpoints passing `keep`, else the serving terminating ones passing it (KEP-1669).
fn ready_or_terminating(eps: &[Endpoint], keep: impl Fn(&Endpoint) -> bool, faults: &Faults) -> Vec<SocketAddr> {
    let ready: Vec<SocketAddr> = eps.iter().filter(|e| e.ready && keep(e)).map(|e| e.addr).collect();
    if !ready.is_empty() || faults.has(Fault::ProxyNoTerminatingFallback) {
        return ready;
    }
    eps.iter().filter(|e| e.serving_terminating && keep(e)).map(|e| e.addr).collect()
}

/// The endpoints traffic handled on `node` may use when the policy is `Cluster` (`None`: no node, no topology).
fn cluster_endpoints(eps: &[Endpoint], node: Option<&NodeInfo>, faults: &Faults) -> Vec<SocketAddr> {
    let zone = node.map(|n| n.zone.as_str());
    let ready = || eps.iter().filter(|e| e.ready);
    let all_hinted = ready().next().is_some() && ready().all(|e| e.zones.is_some_and(|z| !z.is_empty()));
    let for_zone = |e: &Endpoint| zone.is_some_and(|zone| e.zones.is_some_and(|z| z.iter().any(|h| h == zone)));
    let use_topology = !faults.has(Fault::ProxyIgnoresTrafficDistribution) && all_hinted && zone.is_some();
    if use_topology && (ready().any(for_zone) || faults.has(Fault::ProxyNoZoneSpillover)) {
        return ready().filter(|e| for_zone(e)).map(|e| e.addr).collect();
    }
    ready_or_terminating(eps, |_| true, faults)
}

/// The endpoints on `node` (for a `Local` policy).
fn local_endpoints(eps: &[Endpoint], node: &NodeInfo, faults: &Faults) -> Vec<SocketAddr> {
    ready_or_terminating(eps, |e| e.node == Some(node.name.as_str()), faults)
}

/// A Service as the proxy needs it.
pub struct ProxiedService<'a> {
    /// The ClusterIPs, one per family (none: headless, nothing to program).
    pub cluster_ips: &'a [IpAddr],
    /// `spec.ports` with their node ports.
    pub ports: &'a [ServicePortView],
    /// Type and policies.
    pub exposure: &'a Exposure,
    /// ClientIP affinity timeout.
    pub affinity: Option<Duration>,
    /// The health check node port, when the Service has one.
    pub health_check_node_port: Option<u16>,
}

/// Every TCP listener one service needs, with what it does. `shared_cluster` computes the view-independent backends
/// of a port and family (so that thousands of services over the same pods share one list).
pub fn program(
    svc: &ProxiedService,
    slices: &[EndpointSliceView],
    nodes: &[NodeInfo],
    faults: &Faults,
    shared_cluster: impl FnMut(&Option<String>, IpFamily, &dyn Fn() -> Vec<SocketAddr>) -> Arc<Vec<SocketAddr>>,
) -> Vec<(ProxyKey, Programmed)> {
    program_protocol(Protocol::Tcp, svc, slices, nodes, faults, shared_cluster)
}

/// Every UDP socket one service needs: the same rules as [`program`], for its UDP ports.
pub fn program_udp(
    svc: &ProxiedService,
    slices: &[EndpointSliceView],
    nodes: &[NodeInfo],
    faults: &Faults,
    shared_cluster: impl FnMut(&Option<String>, IpFamily, &dyn Fn() -> Vec<SocketAddr>) -> Arc<Vec<SocketAddr>>,
) -> Vec<(ProxyKey, Programmed)> {
    program_protocol(Protocol::Udp, svc, slices, nodes, faults, shared_cluster)
}

fn program_protocol(
    protocol: Protocol,
    svc: &ProxiedService,
    slices: &[EndpointSliceView],
    nodes: &[NodeInfo],
    faults: &Faults,
    mut shared_cluster: impl FnMut(&Option<String>, IpFamily, &dyn Fn() -> Vec<SocketAddr>) -> Arc<Vec<SocketAddr>>,
) -> Vec<(ProxyKey, Programmed)> {
    let mut out = Vec::new();
    for &cip in svc.cluster_ips.iter().filter(|ip| !(ip.is_ipv6() && faults.has(Fault::ProxyIgnoresIpv6))) {
        program_family(protocol, cip, svc, slices, nodes, faults, &mut shared_cluster, &mut out);
    }
    out
}

/// The listeners of one ClusterIP (and, for the IPv4 one, the node ports: the embedded nodes' addresses are IPv4).
#[allow(clippy::too_many_arguments)]
fn program_family(
    protocol: Protocol,
    cip: IpAddr,
    svc: &ProxiedService,
    slices: &[EndpointSliceView],
    nodes: &[NodeInfo],
    faults: &Faults,
    shared_cluster: &mut impl FnMut(&Option<String>, IpFamily, &dyn Fn() -> Vec<SocketAddr>) -> Arc<Vec<SocketAddr>>,
    out: &mut Vec<(ProxyKey, Programmed)>,
) {
    let family = IpFamily::of(cip);
    let affinity = svc.affinity.filter(|_| !faults.has(Fault::ProxyIgnoresSessionAffinity));
    let forward = |backends: Arc<Vec<SocketAddr>>, snat: Option<IpAddr>, empty: Programmed| {
        if backends.is_empty() { empty } else { Programmed::Forward(ProxyEntry { backends, affinity, snat }) }
    };
    let itp_local = svc.exposure.internal_traffic_policy == TrafficPolicy::Local
        && !faults.has(Fault::ProxyIgnoresInternalTrafficPolicy);
    let etp_local = svc.exposure.external_traffic_policy == TrafficPolicy::Local
        && !faults.has(Fault::ProxyIgnoresExternalTrafficPolicy);
    for sp in svc.ports.iter().filter(|p| p.protocol == protocol) {
        let eps = endpoints(sp, family, slices);
        // kube-proxy drops for "no local endpoints" only when some node has one (measured: with none anywhere a
        // Local node port refuses).
        let no_local =
            if ready_or_terminating(&eps, |_| true, faults).is_empty() { Programmed::Reject } else { Programmed::Drop };
        let vip = SocketAddr::new(cip, sp.port);
        // A client outside every node (`svcbench up`'s users on the host): no node, no topology, no local endpoints.
        let shared = if itp_local {
            no_local.clone()
        } else {
            forward(
                shared_cluster(&sp.name, family, &|| cluster_endpoints(&eps, None, faults)),
                None,
                Programmed::Reject,
            )
        };
        out.push(((vip, View::Shared), shared));
        if itp_local || svc.exposure.prefer_close {
            for (i, node) in nodes.iter().enumerate() {
                let programmed = if itp_local {
                    forward(Arc::new(local_endpoints(&eps, node, faults)), None, no_local.clone())
                } else {
                    forward(Arc::new(cluster_endpoints(&eps, Some(node), faults)), None, Programmed::Reject)
                };
                out.push(((vip, View::Node(i as u32)), programmed));
            }
        }
        let Some(node_port) =
            sp.node_port.filter(|_| svc.exposure.service_type.has_node_ports() && family == IpFamily::IPv4)
        else {
            continue;
        };
        for node in nodes.iter().take(if faults.has(Fault::ProxyNodePortFirstNodeOnly) { 1 } else { nodes.len() }) {
            let addr = SocketAddr::new(IpAddr::V4(node.ip), node_port);
            let node_ip = Some(IpAddr::V4(node.ip));
            let cluster = || Arc::new(cluster_endpoints(&eps, Some(node), faults));
            if etp_local {
                let snat = node_ip.filter(|_| faults.has(Fault::ProxySnatsLocalExternalTraffic));
                out.push((
                    (addr, View::Shared),
                    forward(Arc::new(local_endpoints(&eps, node, faults)), snat, no_local.clone()),
                ));
                out.push(((addr, View::Internal), forward(cluster(), None, Programmed::Reject)));
            } else {
                out.push(((addr, View::Shared), forward(cluster(), node_ip, Programmed::Reject)));
            }
        }
    }
}

/// The health check node port's answer on every node, for a `LoadBalancer` Service with `externalTrafficPolicy:
/// Local` (kube-proxy serves it so that load balancers only send to nodes with endpoints).
pub fn health_checks(
    service: &ObjectRef,
    svc: &ProxiedService,
    slices: &[EndpointSliceView],
    nodes: &[NodeInfo],
    faults: &Faults,
) -> Vec<(SocketAddr, HealthEntry)> {
    let Some(port) = svc.health_check_node_port.filter(|_| svc.exposure.has_health_check()) else {
        return Vec::new();
    };
    nodes
        .iter()
        .map(|node| {
            // kube-proxy counts the ready endpoints on its node, once per address (not per port), in the
            // Service's primary family (a dual-stack pod is one endpoint, not two).
            let primary = svc.cluster_ips.first().map_or(IpFamily::IPv4, |ip| IpFamily::of(*ip));
            let mut local: Vec<IpAddr> = slices
                .iter()
                .filter(|s| s.address_type == primary)
                .flat_map(|s| &s.endpoints)
                .filter(|e| e.ready && e.node.as_deref() == Some(node.name.as_str()))
                .map(|e| e.address)
                .collect();
            local.sort();
            local.dedup();
            let count = local.len() as u32;
            let entry = HealthEntry {
                service: service.clone(),
                local_endpoints: count,
                healthy: count > 0 || faults.has(Fault::HealthCheckAlwaysHealthy),
            };
            (SocketAddr::new(IpAddr::V4(node.ip), port), entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        scenario::ServiceType,
        targets::model::{EndpointPortView, EndpointView},
    };

    fn nodes() -> Vec<NodeInfo> {
        (0..2)
            .map(|i| NodeInfo {
                name: format!("n{i}"),
                ip: Ipv4Addr::new(127, 9, 0, 2 + i),
                zone: format!("zone-{}", i + 1),
            })
            .collect()
    }

    fn slice(eps: &[(u8, u32, bool)], hinted: bool) -> Vec<EndpointSliceView> {
        vec![EndpointSliceView {
            name: "s".into(),
            address_type: IpFamily::IPv4,
            ports: vec![EndpointPortView { name: None, port: 80, protocol: Protocol::Tcp }],
            endpoints: eps
                .iter()
                .map(|(ip, node, ready)| EndpointView {
                    address: IpAddr::V4(Ipv4Addr::new(127, 9, 128, *ip)),
                    ready: *ready,
                    serving: *ready,
                    terminating: false,
                    hostname: None,
                    pod: None,
                    node: Some(format!("n{node}")),
                    zone: Some(format!("zone-{}", node + 1)),
                    for_zones: hinted.then(|| vec![format!("zone-{}", node + 1)]),
                })
                .collect(),
            last_written: None,
        }]
    }

    fn run(exposure: Exposure, slices: &[EndpointSliceView], faults: &Faults) -> Vec<(ProxyKey, Programmed)> {
        let ports = [ServicePortView {
            name: None,
            port: 80,
            target_port: crate::scenario::TargetPort::Number(80),
            protocol: Protocol::Tcp,
            node_port: Some(30080),
        }];
        let svc = ProxiedService {
            cluster_ips: &[IpAddr::V4(Ipv4Addr::new(127, 9, 0, 20))],
            ports: &ports,
            exposure: &exposure,
            affinity: None,
            health_check_node_port: None,
        };
        program(&svc, slices, &nodes(), faults, |_, _, f| Arc::new(f()))
    }

    fn at(out: &[(ProxyKey, Programmed)], ip: [u8; 4], port: u16, view: View) -> Programmed {
        let key = (SocketAddr::from((ip, port)), view);
        out.iter().find(|(k, _)| *k == key).map(|(_, p)| p.clone()).unwrap_or_else(|| panic!("no {key:?}"))
    }

    fn backends(p: &Programmed) -> Vec<u8> {
        match p {
            Programmed::Forward(e) => e
                .backends
                .iter()
                .map(|a| match a.ip() {
                    IpAddr::V4(v4) => v4.octets()[3],
                    IpAddr::V6(_) => 0,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn internal_local_uses_the_clients_node_and_drops_without_one() {
        let exposure = Exposure { internal_traffic_policy: TrafficPolicy::Local, ..Exposure::default() };
        let out = run(exposure, &slice(&[(5, 0, true), (6, 0, true)], false), &Faults::default());
        assert_eq!(backends(&at(&out, [127, 9, 0, 20], 80, View::Node(0))), vec![5, 6]);
        assert_eq!(at(&out, [127, 9, 0, 20], 80, View::Node(1)), Programmed::Drop);
        let out = run(
            Exposure { internal_traffic_policy: TrafficPolicy::Local, ..Exposure::default() },
            &slice(&[], false),
            &Faults::default(),
        );
        assert_eq!(at(&out, [127, 9, 0, 20], 80, View::Node(1)), Programmed::Reject, "no endpoint anywhere: REJECT");
    }

    #[test]
    fn prefer_close_keeps_the_zone_and_spills_over() {
        let exposure = Exposure { prefer_close: true, ..Exposure::default() };
        let out = run(exposure.clone(), &slice(&[(5, 0, true), (6, 1, true)], true), &Faults::default());
        assert_eq!(backends(&at(&out, [127, 9, 0, 20], 80, View::Node(0))), vec![5]);
        assert_eq!(backends(&at(&out, [127, 9, 0, 20], 80, View::Node(1))), vec![6]);
        let out = run(exposure, &slice(&[(6, 1, true)], true), &Faults::default());
        assert_eq!(backends(&at(&out, [127, 9, 0, 20], 80, View::Node(0))), vec![6], "spill-over to the other zone");
    }

    #[test]
    fn node_ports_masquerade_unless_local() {
        let cluster = Exposure { service_type: ServiceType::NodePort, ..Exposure::default() };
        let out = run(cluster, &slice(&[(5, 0, true)], false), &Faults::default());
        let Programmed::Forward(e) = at(&out, [127, 9, 0, 3], 30080, View::Shared) else { panic!() };
        assert_eq!(e.snat, Some(IpAddr::V4(Ipv4Addr::new(127, 9, 0, 3))));
        let local = Exposure {
            service_type: ServiceType::NodePort,
            external_traffic_policy: TrafficPolicy::Local,
            ..Exposure::default()
        };
        let out = run(local, &slice(&[(5, 0, true)], false), &Faults::default());
        let Programmed::Forward(e) = at(&out, [127, 9, 0, 2], 30080, View::Shared) else { panic!() };
        assert_eq!(e.snat, None);
        assert_eq!(at(&out, [127, 9, 0, 3], 30080, View::Shared), Programmed::Drop);
        assert_eq!(backends(&at(&out, [127, 9, 0, 3], 30080, View::Internal)), vec![5]);
    }
}
