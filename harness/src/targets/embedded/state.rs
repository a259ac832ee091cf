//! The embedded control plane's objects, and the EndpointSlice controller as a pure function of them.
//!
//! Every change produces a new immutable [`Snapshot`] that the DNS server and the proxy read; nothing else is shared.
//!
//! Memory: services that select the same pods with the same ports (`createServices` makes thousands of them) share
//! one copy of their endpoints and one backend list per port, and only headless services index their endpoint IPs for
//! reverse DNS, so 20,000 services × 1,000 pods cost per service, not per service × pod.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use imbl::{HashMap as ImHashMap, OrdMap, OrdSet, ordmap::DiffItem};

pub use super::programming::{HealthEntry, NodeInfo, ProxyEntry, ProxyKey, View};
use super::{
    faults::{Fault, Faults},
    programming::{self, Programmed, ProxiedService},
    slices::{self, SliceKey, endpoint_slices, selects, slice_name},
};
use crate::{
    scenario::{ContainerPort, EndpointSliceSpec, Exposure, IpFamily, ObjectRef},
    targets::{
        TargetError,
        model::{EndpointSliceView, PodView, ServicePortView, ServiceView},
    },
};

/// A Service object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    /// Allocated ClusterIPs, one per family of `families` in its order; empty when headless.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.ipFamilies` as the API server settled them, primary first (empty for ExternalName).
    pub families: Vec<IpFamily>,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `spec.ports`.
    pub ports: Vec<ServicePortView>,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// `sessionAffinity: ClientIP` timeout.
    pub session_affinity: Option<Duration>,
    /// `type: ExternalName` target.
    pub external_name: Option<String>,
    /// A virtual IP DNS answers for a headless service under [`Fault::DnsHeadlessAnswersVip`].
    pub shadow_vip: Option<IpAddr>,
    /// Type, traffic policies and distribution.
    pub exposure: Exposure,
    /// `spec.healthCheckNodePort`.
    pub health_check_node_port: Option<u16>,
}

impl Service {
    /// Whether it is headless (or an ExternalName): no ClusterIP.
    pub fn headless(&self) -> bool {
        self.cluster_ips.is_empty()
    }

    fn proxied(&self) -> ProxiedService<'_> {
        ProxiedService {
            cluster_ips: &self.cluster_ips,
            ports: &self.ports,
            exposure: &self.exposure,
            affinity: self.session_affinity,
            health_check_node_port: self.health_check_node_port,
        }
    }
}

/// A Pod object (its server runs in [`super::pod`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// Pod IP (`status.podIPs[0]`).
    pub ip: Ipv4Addr,
    /// Its IPv6 address (`status.podIPs[1]`: the embedded cluster is dual-stack, IPv4 first).
    pub ip6: Ipv6Addr,
    /// Labels (`app=<deployment>`).
    pub labels: BTreeMap<String, String>,
    /// Owning deployment name.
    pub deployment: String,
    /// Ready condition.
    pub ready: bool,
    /// Deletion timestamp set.
    pub terminating: bool,
    /// Creation order within the cluster.
    pub seq: u64,
    /// Container ports.
    pub ports: Vec<ContainerPort>,
    /// `spec.hostname`.
    pub hostname: Option<String>,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// Index of the node it runs on.
    pub node: u32,
}

impl Pod {
    /// Its address of `family`.
    pub fn ip_of(&self, family: IpFamily) -> IpAddr {
        match family {
            IpFamily::IPv4 => IpAddr::V4(self.ip),
            IpFamily::IPv6 => IpAddr::V6(self.ip6),
        }
    }

    /// Both its addresses, primary first (`status.podIPs`).
    pub fn ips(&self) -> Vec<IpAddr> {
        vec![IpAddr::V4(self.ip), IpAddr::V6(self.ip6)]
    }
}

/// Everything the data plane (DNS, proxy) needs, frozen at one generation.
///
/// The maps are persistent (imbl): publishing a snapshot is O(1) and a change copies only the paths it touches, so
/// programming latency does not grow with the number of services.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increments with every change.
    pub generation: u64,
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Cluster DNS address.
    pub dns_ip: Option<Ipv4Addr>,
    /// Existing namespaces.
    pub namespaces: BTreeSet<String>,
    /// Services by namespace/name.
    pub services: OrdMap<ObjectRef, Service>,
    /// Pods by namespace/name.
    pub pods: OrdMap<ObjectRef, Pod>,
    /// EndpointSlices by service. Services with the same endpoints share one `Arc`, so the slice names stored are
    /// those of one of them: read a service's slices with [`Snapshot::slice_views`].
    pub slices: OrdMap<ObjectRef, Arc<Vec<EndpointSliceView>>>,
    /// EndpointSlices users wrote for selectorless services (`createEndpointSlice`), by service, in creation order.
    pub manual_slices: OrdMap<ObjectRef, Arc<Vec<EndpointSliceView>>>,
    /// The nodes, by index.
    pub nodes: Arc<Vec<NodeInfo>>,
    /// Proxy table: (ClusterIP:port or nodeIP:nodePort, view) → backends it may send a new connection to. No entry:
    /// REJECT.
    pub proxy: OrdMap<ProxyKey, ProxyEntry>,
    /// Listeners of services that have no backends (REJECT, or DROP under a fault).
    pub unbacked: OrdSet<ProxyKey>,
    /// Listeners whose `Local` policy finds no endpoint: DROP.
    pub dropped: OrdSet<ProxyKey>,
    /// UDP proxy table: (ClusterIP:port or nodeIP:nodePort, view) of a UDP port → backends a new flow may go to.
    /// No entry: no socket, so the client gets ICMP port unreachable (REJECT).
    pub udp: OrdMap<ProxyKey, ProxyEntry>,
    /// Health check node ports (nodeIP:port) and their answers.
    pub health: OrdMap<SocketAddr, HealthEntry>,
    /// Seeded faults.
    pub faults: Faults,
    /// Services by the addresses they own (ClusterIP, endpoint IPs): the reverse-lookup index.
    pub ip_owners: ImHashMap<IpAddr, OrdSet<ObjectRef>>,
    /// What each service contributed to `proxy`/`unbacked` and `ip_owners`, to undo it on the next change.
    contributions: OrdMap<ObjectRef, Contribution>,
}

/// A label set (and a selector).
type Labels = BTreeMap<String, String>;

/// The proxy keys and owned addresses one service added to a snapshot.
#[derive(Debug, Clone, Default)]
struct Contribution {
    keys: Vec<ProxyKey>,
    udp: Vec<ProxyKey>,
    health: Vec<SocketAddr>,
    ips: Vec<IpAddr>,
}

impl Snapshot {
    /// An empty cluster with this domain.
    pub fn new(cluster_domain: &str) -> Self {
        Self { cluster_domain: cluster_domain.to_owned(), ..Self::default() }
    }

    /// The API view of a service.
    pub fn service_view(&self, key: &ObjectRef) -> Option<ServiceView> {
        self.services.get(key).map(|s| ServiceView {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            cluster_ip: s.cluster_ips.first().copied(),
            cluster_ips: s.cluster_ips.clone(),
            ip_families: s.families.clone(),
            ports: s.ports.clone(),
            health_check_node_port: s.health_check_node_port,
        })
    }

    /// Stores a hand-written EndpointSlice of a selectorless service (see [`slices::hand_written`]).
    ///
    /// # Errors
    /// A slice of that name already exists in the namespace.
    pub fn write_slice(&mut self, spec: &EndpointSliceSpec) -> Result<(), TargetError> {
        let taken = self
            .manual_slices
            .iter()
            .filter(|(k, _)| k.namespace == spec.service.namespace)
            .any(|(_, slices)| slices.iter().any(|s| s.name == spec.name));
        if taken {
            return Err(TargetError::Rejected(format!("EndpointSlice `{}` already exists", spec.name)));
        }
        let view = slices::hand_written(spec);
        let mut slices = self.manual_slices.get(&spec.service).map(|s| s.as_ref().clone()).unwrap_or_default();
        slices.push(view);
        self.manual_slices.insert(spec.service.clone(), Arc::new(slices));
        Ok(())
    }

    /// The API view of a service's EndpointSlices, named for it.
    pub fn slice_views(&self, key: &ObjectRef) -> Vec<EndpointSliceView> {
        let Some(slices) = self.slices.get(key) else { return Vec::new() };
        // Hand-written slices keep the names their users gave them.
        if self.services.get(key).is_some_and(|s| s.selector.is_empty()) {
            return slices.as_ref().clone();
        }
        slices.iter().enumerate().map(|(i, s)| EndpointSliceView { name: slice_name(key, i), ..s.clone() }).collect()
    }

    /// Pods of one namespace (the map is ordered by namespace, then name).
    fn namespace_pods<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = (&'a ObjectRef, &'a Pod)> + 'a {
        let start = ObjectRef { namespace: namespace.to_owned(), name: String::new() };
        self.pods.range(start..).take_while(move |(k, _)| k.namespace == namespace)
    }

    /// Live pods of a deployment, oldest first.
    pub fn deployment_pods(&self, deployment: &ObjectRef) -> Vec<(ObjectRef, Pod)> {
        let mut pods: Vec<_> = self
            .namespace_pods(&deployment.namespace)
            .filter(|(_, p)| p.deployment == deployment.name)
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        pods.sort_by_key(|(_, p)| p.seq);
        pods
    }

    /// The API view of a deployment's pods.
    pub fn pod_views(&self, deployment: &ObjectRef) -> Vec<PodView> {
        self.deployment_pods(deployment)
            .into_iter()
            .map(|(k, p)| PodView {
                namespace: k.namespace,
                name: k.name,
                ip: IpAddr::V4(p.ip),
                ips: p.ips(),
                ready: p.ready,
                terminating: p.terminating,
                node: self.nodes.get(p.node as usize).map(|n| n.name.clone()),
            })
            .collect()
    }

    /// Recomputes slices and the proxy table of every service.
    pub fn reconcile(&mut self) {
        let all: Vec<ObjectRef> = self.services.keys().cloned().chain(self.contributions.keys().cloned()).collect();
        self.reconcile_services(all);
    }

    /// Recomputes what changed between `before` and `self`: services that changed, and services whose selector
    /// matches (before or after) a pod that changed. This is the EndpointSlice controller's and kube-proxy's work
    /// for one API change.
    pub fn reconcile_changes(&mut self, before: &Snapshot) {
        let mut affected: BTreeSet<ObjectRef> = BTreeSet::new();
        for d in before.services.diff(&self.services) {
            match d {
                DiffItem::Add(k, _) | DiffItem::Remove(k, _) | DiffItem::Update { new: (k, _), .. } => {
                    affected.insert(k.clone());
                }
            }
        }
        for d in before.manual_slices.diff(&self.manual_slices) {
            match d {
                DiffItem::Add(k, _) | DiffItem::Remove(k, _) | DiffItem::Update { new: (k, _), .. } => {
                    affected.insert(k.clone());
                }
            }
        }
        let mut changed_pods: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for d in before.pods.diff(&self.pods) {
            match d {
                DiffItem::Add(k, p) | DiffItem::Remove(k, p) => {
                    changed_pods.push((k.namespace.clone(), p.labels.clone()))
                }
                DiffItem::Update { old: (k, o), new: (_, n) } => {
                    changed_pods.push((k.namespace.clone(), o.labels.clone()));
                    if n.labels != o.labels {
                        changed_pods.push((k.namespace.clone(), n.labels.clone()));
                    }
                }
            }
        }
        changed_pods.sort();
        changed_pods.dedup();
        for (ns, labels) in &changed_pods {
            let start = ObjectRef { namespace: ns.clone(), name: String::new() };
            for (k, svc) in self.services.range(start..).take_while(|(k, _)| &k.namespace == ns) {
                if selects(&svc.selector, labels) {
                    affected.insert(k.clone());
                }
            }
        }
        self.reconcile_services(affected);
    }

    fn reconcile_services(&mut self, keys: impl IntoIterator<Item = ObjectRef>) {
        // Pods matched per (namespace, selector): many services often share one selector.
        let mut matched_cache: HashMap<(String, Labels), Vec<(ObjectRef, Pod)>> = HashMap::new();
        // Slices per everything they depend on but the service's name, and backends per (slices, port): thousands of
        // services over the same pods then hold one copy instead of one each.
        let mut slices_cache: HashMap<SliceKey, Arc<Vec<EndpointSliceView>>> = HashMap::new();
        let mut backends_cache: HashMap<(usize, Option<String>, IpFamily), Arc<Vec<SocketAddr>>> = HashMap::new();
        for key in keys {
            // Undo what this service contributed last time, remembering its proxy entries for the faulty proxies.
            let mut previous: HashMap<ProxyKey, ProxyEntry> = HashMap::new();
            if let Some(old) = self.contributions.remove(&key) {
                for k in old.keys {
                    if let Some(e) = self.proxy.remove(&k) {
                        previous.insert(k, e);
                    }
                    self.unbacked.remove(&k);
                    self.dropped.remove(&k);
                }
                for k in old.udp {
                    self.udp.remove(&k);
                }
                for k in old.health {
                    self.health.remove(&k);
                }
                for ip in old.ips {
                    // Sets are persistent too: updating one shares the rest instead of copying every owner.
                    if let Some(owners) = self.ip_owners.get_mut(&ip) {
                        owners.remove(&key);
                        if owners.is_empty() {
                            self.ip_owners.remove(&ip);
                        }
                    }
                }
            }
            let Some(svc) = self.services.get(&key).cloned() else {
                self.slices.remove(&key);
                continue;
            };
            let mut contribution = Contribution::default();
            contribution.ips.extend(svc.cluster_ips.iter().copied());
            if svc.external_name.is_some() {
                self.slices.remove(&key);
            } else {
                let slices = if svc.selector.is_empty() {
                    // Selectorless: the slices its users wrote, as they wrote them.
                    self.manual_slices.get(&key).cloned().unwrap_or_default()
                } else {
                    let cache_key = (key.namespace.clone(), svc.selector.clone());
                    let matched = matched_cache.entry(cache_key).or_insert_with(|| {
                        self.namespace_pods(&key.namespace)
                            .filter(|(_, p)| selects(&svc.selector, &p.labels))
                            .map(|(k, p)| (k.clone(), p.clone()))
                            .collect()
                    });
                    // An endpoint hostname names the service (pod subdomain = service name): those slices are its own.
                    let own = matched.iter().any(|(_, p)| p.subdomain.as_deref() == Some(key.name.as_str()));
                    let slice_key = SliceKey {
                        namespace: key.namespace.clone(),
                        selector: svc.selector.clone(),
                        ports: svc.ports.clone(),
                        publish_not_ready: svc.publish_not_ready,
                        own_name: own.then(|| key.name.clone()),
                        prefer_close: svc.exposure.prefer_close,
                        families: svc.families.clone(),
                    };
                    let nodes = &self.nodes;
                    slices_cache
                        .entry(slice_key)
                        .or_insert_with(|| {
                            Arc::new(endpoint_slices(
                                &key,
                                &svc,
                                matched.iter().map(|(k, p)| (k, p)),
                                nodes,
                                &self.faults,
                            ))
                        })
                        .clone()
                };
                // Reverse DNS answers endpoint IPs only for headless services; a ClusterIP service owns its VIP.
                if svc.headless() {
                    for ep in slices.iter().flat_map(|s| &s.endpoints) {
                        if !contribution.ips.contains(&ep.address) {
                            contribution.ips.push(ep.address);
                        }
                    }
                }
                let slices_id = Arc::as_ptr(&slices) as usize;
                let proxied = svc.proxied();
                let mut shared = |port: &Option<String>, family, compute: &dyn Fn() -> Vec<SocketAddr>| {
                    backends_cache
                        .entry((slices_id, port.clone(), family))
                        .or_insert_with(|| Arc::new(compute()))
                        .clone()
                };
                let programmed = programming::program(&proxied, &slices, &self.nodes, &self.faults, &mut shared);
                for (k, programmed) in programmed {
                    contribution.keys.push(k);
                    let entry = match programmed {
                        Programmed::Forward(e) => Some(e),
                        Programmed::Reject => None,
                        Programmed::Drop => {
                            self.dropped.insert(k);
                            continue;
                        }
                    };
                    match remembered(entry, previous.get(&k), &self.faults) {
                        Some(e) => {
                            self.proxy.insert(k, e);
                        }
                        None => {
                            self.unbacked.insert(k);
                        }
                    }
                }
                let udp = programming::program_udp(&proxied, &slices, &self.nodes, &self.faults, &mut shared);
                for (k, programmed) in udp {
                    contribution.udp.push(k);
                    if let Programmed::Forward(e) = programmed {
                        self.udp.insert(k, e);
                    }
                }
                for (addr, entry) in programming::health_checks(&key, &proxied, &slices, &self.nodes, &self.faults) {
                    contribution.health.push(addr);
                    self.health.insert(addr, entry);
                }
                self.slices.insert(key.clone(), slices);
            }
            for ip in &contribution.ips {
                self.ip_owners.entry(*ip).or_default().insert(key.clone());
            }
            self.contributions.insert(key, contribution);
        }
    }
}

/// What a faulty proxy programs, given what it programmed before: one that never adds keeps the old entry, one that
/// never removes keeps old backends too.
fn remembered(new: Option<ProxyEntry>, old: Option<&ProxyEntry>, faults: &Faults) -> Option<ProxyEntry> {
    let Some(old) = old else { return new };
    if faults.has(Fault::ProxyIgnoresNewEndpoints) {
        return Some(old.clone());
    }
    if faults.has(Fault::ProxyKeepsRemovedEndpoints) {
        let mut entry =
            new.unwrap_or_else(|| ProxyEntry { backends: Arc::default(), affinity: old.affinity, snat: old.snat });
        let backends = Arc::make_mut(&mut entry.backends);
        for b in old.backends.iter() {
            if !backends.contains(b) {
                backends.push(*b);
            }
        }
        return Some(entry);
    }
    new
}

/// The whole proxy table for a set of services (no entry: REJECT).
pub fn proxy_table(
    services: &BTreeMap<ObjectRef, Service>,
    slices: &BTreeMap<ObjectRef, Vec<EndpointSliceView>>,
    faults: &Faults,
) -> HashMap<ProxyKey, ProxyEntry> {
    services
        .iter()
        .flat_map(|(k, svc)| {
            let slices = slices.get(k).map(Vec::as_slice).unwrap_or_default();
            programming::program(&svc.proxied(), slices, &[], faults, |_, _, compute| Arc::new(compute()))
        })
        .filter_map(|(key, p)| match p {
            Programmed::Forward(e) => Some((key, e)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
