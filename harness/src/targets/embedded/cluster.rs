//! The embedded control plane: applies actions to the object store, runs pods, and publishes a new
//! [`Snapshot`] after every change for DNS and the proxy to follow.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
};

use tokio::{sync::watch, task::JoinSet};
use tokio_util::task::TaskTracker;

use super::{
    EmbeddedConfig,
    dns_server::{ClusterDns, TCP_IDLE},
    faults::{Fault, Faults},
    ipam::{Ipam, Slot},
    names,
    pod::{self, PodProcess},
    ports::{ClientPlace, PortMap},
    proxy,
    state::{NodeInfo, Pod, Service, Snapshot},
};
use crate::{
    scenario::{Action, Client, DeploymentSpec, IpFamily, ObjectRef, Protocol, ServiceSpec, TrafficPolicy},
    targets::{TargetError, model::ServicePortView},
};

#[derive(Debug)]
struct Deployment {
    spec: DeploymentSpec,
    template_hash: String,
}

struct Inner {
    snap: Snapshot,
    ipam: Ipam,
    deployments: BTreeMap<ObjectRef, Deployment>,
    processes: HashMap<ObjectRef, PodProcess>,
    /// The address probes in each namespace connect from (an agent pod's IP), per node.
    clients: HashMap<(String, u32), Ipv4Addr>,
    next_seq: u64,
}

/// How long [`Cluster::shutdown`] waits for the last socket to close before it gives up on the slot.
const SOCKETS_CLOSED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running embedded cluster. Dropping it stops DNS, the proxy and every pod; [`Cluster::shutdown`] also waits
/// until every socket is closed before it frees the address slot.
pub struct Cluster {
    config: EmbeddedConfig,
    /// The second octet of the slot's addresses (the slot itself may already be released).
    octet: u8,
    /// Held until every socket of the cluster is closed, so the next cluster on this slot finds its addresses free.
    slot: Mutex<Option<Slot>>,
    /// Every task that owns a socket (proxy and pod listeners and their connections).
    sockets: TaskTracker,
    ports: Arc<PortMap>,
    inner: Mutex<Inner>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// The snapshot generation the proxy has programmed.
    programmed: watch::Receiver<u64>,
    dns: Mutex<Option<hickory_server::Server<ClusterDns>>>,
    tasks: Mutex<JoinSet<()>>,
}

impl Cluster {
    /// Claims an address slot and starts DNS and the proxy.
    ///
    /// # Errors
    /// No free address slot, or DNS could not bind.
    pub async fn start(config: EmbeddedConfig) -> Result<Self, TargetError> {
        let slot = Slot::claim(config.first_slot).map_err(|e| TargetError::Other(format!("embedded cluster: {e}")))?;
        let ports = Arc::new(PortMap::new(config.port_policy));
        let mut ipam = Ipam::new(&slot);
        let mut snap = Snapshot::default();
        snap.cluster_domain = config.cluster_domain.clone();
        snap.dns_ip = Some(slot.dns_ip());
        snap.faults = config.faults.clone();
        snap.nodes = Arc::new(
            (0..config.nodes.clamp(1, super::ipam::MAX_NODES))
                .map(|i| NodeInfo {
                    name: format!("embedded-node-{i}"),
                    ip: slot.node_ip(i),
                    zone: format!("zone-{}", i % 2 + 1),
                })
                .collect(),
        );
        let mut clients = HashMap::new();
        for ns in ["default", "kube-system"] {
            snap.namespaces.insert(ns.to_owned());
            clients.insert((ns.to_owned(), 0), ipam.allocate_pod_ip());
        }
        let (tx, rx) = watch::channel(Arc::new(snap.clone()));

        let dns_addr = SocketAddr::new(IpAddr::V4(slot.dns_ip()), 53);
        let (udp, tcp) = ports
            .bind_udp_tcp(dns_addr)
            .await
            .map_err(|e| TargetError::Other(format!("cluster DNS cannot bind {dns_addr}: {e}")))?;
        let mut server = hickory_server::Server::new(ClusterDns::new(rx.clone()));
        server.register_socket(udp);
        if config.faults.has(Fault::DnsNoTcp) {
            drop(tcp);
        } else {
            server.register_listener(tcp, TCP_IDLE, 64);
        }

        let mut tasks = JoinSet::new();
        let sockets = TaskTracker::new();
        let (programmed_tx, programmed) = watch::channel(0);
        tasks.spawn(sockets.track_future(proxy::reconcile(rx, ports.clone(), programmed_tx, sockets.clone())));

        Ok(Self {
            config,
            octet: slot.octet(),
            slot: Mutex::new(Some(slot)),
            sockets,
            ports,
            inner: Mutex::new(Inner {
                snap,
                ipam,
                deployments: BTreeMap::new(),
                processes: HashMap::new(),
                clients,
                next_seq: 0,
            }),
            snapshots: tx,
            programmed,
            dns: Mutex::new(Some(server)),
            tasks: Mutex::new(tasks),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EmbeddedConfig {
        &self.config
    }

    /// The model → listening address translation (identity when running as root).
    pub fn ports(&self) -> Arc<PortMap> {
        self.ports.clone()
    }

    /// Cluster DNS address (port 53 in the model).
    pub fn dns_ip(&self) -> Ipv4Addr {
        Slot::dns_ip_of(self.octet)
    }

    /// The newest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// Follows snapshots as they change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.subscribe()
    }

    /// Waits until the proxy has programmed snapshot `generation` (or a later one).
    pub async fn wait_programmed(&self, generation: u64) {
        let mut programmed = self.programmed.clone();
        let _ = programmed.wait_for(|g| *g >= generation).await;
    }

    /// Where `client` runs: its source address, the namespace whose resolver it uses, and its place for the proxy.
    ///
    /// # Errors
    /// The namespace, node or pod does not exist.
    pub fn place(&self, client: &Client) -> Result<(Ipv4Addr, String, ClientPlace), TargetError> {
        let mut inner = self.inner.lock().expect("cluster lock");
        let nodes = inner.snap.nodes.clone();
        let node_ip = |i: u32| {
            nodes.get(i as usize).map(|n| n.ip).ok_or_else(|| {
                TargetError::Rejected(format!(
                    "the scenario names node {i}, but the target has {} node(s)",
                    nodes.len()
                ))
            })
        };
        let (source, namespace, node, pod) = match client {
            Client::Namespace { namespace } | Client::PodOnNode { namespace, .. } => {
                let node = if let Client::PodOnNode { node, .. } = client { *node } else { 0 };
                node_ip(node)?;
                if !inner.snap.namespaces.contains(namespace) {
                    return Err(TargetError::Rejected(format!("namespace `{namespace}` does not exist")));
                }
                let key = (namespace.clone(), node);
                let ip = match inner.clients.get(&key) {
                    Some(ip) => *ip,
                    None => {
                        let ip = inner.ipam.allocate_pod_ip();
                        inner.clients.insert(key, ip);
                        ip
                    }
                };
                (ip, namespace.clone(), node, true)
            }
            Client::Node { node } => (node_ip(*node)?, "default".to_owned(), *node, false),
            Client::Pod { pod } => {
                let pods: Vec<_> =
                    inner.snap.deployment_pods(&pod.deployment).into_iter().filter(|(_, p)| !p.terminating).collect();
                let (_, p) = pods.get(pod.index as usize).ok_or_else(|| {
                    TargetError::Rejected(format!("{} has no pod #{} ({} pods)", pod.deployment, pod.index, pods.len()))
                })?;
                (p.ip, pod.deployment.namespace.clone(), p.node, true)
            }
        };
        let place = ClientPlace { node, node_ip: IpAddr::V4(node_ip(node)?), pod };
        Ok((source, namespace, place))
    }

    /// Stops DNS, the proxy and all pods, waits until every one of their sockets is closed, then frees the slot.
    ///
    /// Aborting a task only schedules its cancellation: its sockets close when a worker drops it, later. Releasing
    /// the slot before that let a new cluster on the same slot find `podIP:80` still bound.
    pub async fn shutdown(&self) {
        let server = self.dns.lock().expect("dns lock").take();
        if let Some(mut server) = server {
            let _ = server.shutdown_gracefully().await;
        }
        self.tasks.lock().expect("tasks lock").abort_all();
        self.inner.lock().expect("cluster lock").processes.clear();
        self.sockets.close();
        let closed = tokio::time::timeout(SOCKETS_CLOSED_TIMEOUT, self.sockets.wait()).await.is_ok();
        let slot = self.slot.lock().expect("slot lock").take();
        if closed {
            drop(slot);
        } else {
            // Never hand out a slot that may still have live sockets: keep its lock for the rest of the process.
            tracing::warn!(
                slot = self.octet,
                tasks = self.sockets.len(),
                "sockets still open after shutdown; slot kept"
            );
            std::mem::forget(slot);
        }
    }

    /// Applies one action and publishes the result.
    ///
    /// # Errors
    /// The action does not fit the current state, or a pod could not bind its address.
    pub fn apply(self: &Arc<Self>, action: &Action) -> Result<(), TargetError> {
        let mut inner = self.inner.lock().expect("cluster lock");
        let before = inner.snap.clone();
        let result = self.apply_locked(&mut inner, action);
        // Publish even after a partial failure, so the data plane matches the store.
        self.publish(&mut inner, &before);
        result
    }

    /// Reconciles what changed since `before` and hands the new snapshot to DNS and the proxy.
    fn publish(&self, inner: &mut Inner, before: &Snapshot) {
        inner.snap.generation += 1;
        inner.snap.reconcile_changes(before);
        self.snapshots.send_replace(Arc::new(inner.snap.clone()));
    }

    /// Deletes a pod: at once, or after marking it terminating for its grace period (it keeps serving meanwhile).
    fn delete_pod(self: &Arc<Self>, inner: &mut Inner, key: &ObjectRef, grace: std::time::Duration) {
        if grace.is_zero() {
            self.stop_pod(inner, key);
            return;
        }
        let Some(pod) = inner.snap.pods.get_mut(key) else { return };
        if pod.terminating {
            return;
        }
        pod.terminating = true;
        let seq = pod.seq;
        let weak = Arc::downgrade(self);
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(cluster) = weak.upgrade() {
                cluster.reap(&key, seq);
            }
        });
    }

    /// Removes a terminating pod whose grace period ended (unless it was replaced meanwhile).
    fn reap(&self, key: &ObjectRef, seq: u64) {
        let mut inner = self.inner.lock().expect("cluster lock");
        if inner.snap.pods.get(key).is_some_and(|p| p.seq == seq) {
            let before = inner.snap.clone();
            self.stop_pod(&mut inner, key);
            self.publish(&mut inner, &before);
        }
    }

    /// Removes a pod and stops its container, forgetting where its IPv6 listeners were.
    fn stop_pod(&self, inner: &mut Inner, key: &ObjectRef) {
        if let Some(pod) = inner.snap.pods.remove(key) {
            for port in &pod.ports {
                let model = SocketAddr::new(IpAddr::V6(pod.ip6), port.port);
                self.ports.forget(Protocol::Tcp, model);
                self.ports.forget(Protocol::Udp, model);
            }
        }
        inner.processes.remove(key);
    }

    fn apply_locked(self: &Arc<Self>, inner: &mut Inner, action: &Action) -> Result<(), TargetError> {
        match action {
            Action::CreateNamespace { name } => {
                if !inner.snap.namespaces.insert(name.clone()) {
                    return Err(TargetError::Rejected(format!("namespace `{name}` already exists")));
                }
                let ip = inner.ipam.allocate_pod_ip();
                inner.clients.insert((name.clone(), 0), ip);
                Ok(())
            }
            Action::CreateDeployment(spec) => self.create_deployment(inner, spec),
            Action::CreateService(spec) => create_service(inner, spec, &self.config.faults),
            Action::CreateEndpointSlice(spec) => inner.snap.write_slice(spec),
            Action::CreateServices { .. } => {
                for spec in action.bulk_services() {
                    create_service(inner, &spec, &self.config.faults)?;
                }
                Ok(())
            }
            Action::Scale { deployment, replicas } => {
                let d = inner
                    .deployments
                    .get_mut(deployment)
                    .ok_or_else(|| TargetError::Rejected(format!("deployment `{deployment}` not found")))?;
                d.spec.replicas = *replicas;
                self.scale(inner, deployment)
            }
            Action::SetPodReady { pod, ready } => {
                let pods: Vec<_> =
                    inner.snap.deployment_pods(&pod.deployment).into_iter().filter(|(_, p)| !p.terminating).collect();
                let (key, _) = pods.get(pod.index as usize).ok_or_else(|| {
                    TargetError::Rejected(format!(
                        "deployment `{}` has no pod #{} ({} pods)",
                        pod.deployment,
                        pod.index,
                        pods.len()
                    ))
                })?;
                if let Some(p) = inner.snap.pods.get_mut(key) {
                    p.ready = *ready;
                }
                Ok(())
            }
            Action::DeleteService { service } => {
                let svc = inner
                    .snap
                    .services
                    .remove(service)
                    .ok_or_else(|| TargetError::Rejected(format!("service `{service}` not found")))?;
                // Its hand-written slices go with it (their owner is the Service).
                inner.snap.manual_slices.remove(service);
                for ip in svc.cluster_ips.iter().chain(&svc.shadow_vip) {
                    inner.ipam.release_cluster_ip(*ip);
                }
                for port in svc.ports.iter().filter_map(|p| p.node_port).chain(svc.health_check_node_port) {
                    inner.ipam.release_node_port(port);
                }
                Ok(())
            }
            Action::DeleteDeployment { deployment } => {
                inner
                    .deployments
                    .remove(deployment)
                    .ok_or_else(|| TargetError::Rejected(format!("deployment `{deployment}` not found")))?;
                for (key, _) in inner.snap.deployment_pods(deployment) {
                    self.stop_pod(inner, &key);
                }
                Ok(())
            }
        }
    }

    fn create_deployment(self: &Arc<Self>, inner: &mut Inner, spec: &DeploymentSpec) -> Result<(), TargetError> {
        if !inner.snap.namespaces.contains(&spec.object.namespace) {
            return Err(TargetError::Rejected(format!("namespace `{}` not found", spec.object.namespace)));
        }
        if inner.deployments.contains_key(&spec.object) {
            return Err(TargetError::Rejected(format!("workload `{}` already exists", spec.object)));
        }
        if let Some(node) = spec.node
            && node as usize >= inner.snap.nodes.len()
        {
            return Err(TargetError::Rejected(format!(
                "workload `{}` is pinned to node {node}, but the cluster has {} node(s)",
                spec.object,
                inner.snap.nodes.len()
            )));
        }
        let template_hash = names::suffix(&format!("{}#{}", spec.object, self.octet), 10);
        inner.deployments.insert(spec.object.clone(), Deployment { spec: spec.clone(), template_hash });
        self.scale(inner, &spec.object)
    }

    /// Brings the workload's live pods to its replica count. Scale-down removes not-ready pods first, then the
    /// newest (the ReplicaSet controller's ranking); a StatefulSet removes the highest ordinal.
    fn scale(self: &Arc<Self>, inner: &mut Inner, key: &ObjectRef) -> Result<(), TargetError> {
        let d = &inner.deployments[key];
        let (spec, hash) = (d.spec.clone(), d.template_hash.clone());
        let want = spec.replicas as usize;
        let mut live: Vec<_> = inner.snap.deployment_pods(key).into_iter().filter(|(_, p)| !p.terminating).collect();
        while live.len() > want {
            let victim = if spec.stateful {
                live.iter().enumerate().max_by_key(|(_, (k, _))| ordinal(&k.name)).map(|(i, _)| i)
            } else {
                live.iter().enumerate().max_by_key(|(_, (_, p))| (!p.ready, p.seq)).map(|(i, _)| i)
            };
            let (pod_key, _) = live.remove(victim.expect("non-empty"));
            self.delete_pod(inner, &pod_key, spec.termination_grace);
        }
        // Live pods per node, for spreading new ones like the scheduler's default topology spreading.
        let mut per_node = vec![0u32; inner.snap.nodes.len().max(1)];
        for (_, p) in &live {
            if let Some(n) = per_node.get_mut(p.node as usize) {
                *n += 1;
            }
        }
        for _ in live.len()..want {
            let name = if spec.stateful {
                (0..).map(|i| format!("{}-{i}", key.name)).find(|n| {
                    !inner.snap.pods.contains_key(&ObjectRef { namespace: key.namespace.clone(), name: n.clone() })
                })
            } else {
                loop {
                    let candidate = format!("{}-{hash}-{}", key.name, names::random(5));
                    if !inner
                        .snap
                        .pods
                        .contains_key(&ObjectRef { namespace: key.namespace.clone(), name: candidate.clone() })
                    {
                        break Some(candidate);
                    }
                }
            }
            .expect("a free name exists");
            let pod_key = ObjectRef { namespace: key.namespace.clone(), name };
            // Pinned, or the node with fewest of the workload's pods.
            let node =
                spec.node.unwrap_or_else(|| (0..per_node.len()).min_by_key(|i| (per_node[*i], *i)).unwrap_or(0) as u32);
            if let Some(n) = per_node.get_mut(node as usize) {
                *n += 1;
            }
            let ip = inner.ipam.allocate_pod_ip();
            let ip6 = super::ipam::v6_twin(ip);
            let (mut listeners, mut udp) = (Vec::new(), Vec::new());
            for addr in
                spec.ports.iter().flat_map(|cp| [IpAddr::V4(ip), IpAddr::V6(ip6)].map(|a| SocketAddr::new(a, cp.port)))
            {
                let cannot = |e: std::io::Error| {
                    TargetError::Other(format!("pod {} cannot listen on {addr}: {e}", pod_key.name))
                };
                let (tcp, datagrams) = self.ports.bind_tcp_udp(addr).map_err(cannot)?;
                listeners.push(tcp);
                udp.push(datagrams);
            }
            inner
                .processes
                .insert(pod_key.clone(), pod::start(&pod_key.name, listeners, udp, &self.ports, &self.sockets));
            inner.next_seq += 1;
            let pod = Pod {
                ip,
                ip6,
                labels: spec.labels.clone(),
                deployment: key.name.clone(),
                ready: true,
                terminating: false,
                seq: inner.next_seq,
                ports: spec.ports.clone(),
                hostname: if spec.stateful { Some(pod_key.name.clone()) } else { spec.hostname.clone() },
                subdomain: spec.subdomain.clone(),
                node,
            };
            inner.snap.pods.insert(pod_key, pod);
        }
        Ok(())
    }
}

impl Drop for Cluster {
    /// Without [`Cluster::shutdown`] (a panic, an early return), the slot still outlives the sockets: a task frees it
    /// once every tracked task is gone.
    fn drop(&mut self) {
        let Some(slot) = self.slot.get_mut().ok().and_then(Option::take) else { return };
        self.tasks.get_mut().map(JoinSet::abort_all).ok();
        self.sockets.close();
        let sockets = self.sockets.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                sockets.wait().await;
                drop(slot);
            })),
            Err(_) => std::mem::forget(slot),
        }
    }
}

/// The ordinal of a StatefulSet pod name (`web-3` → 3).
fn ordinal(name: &str) -> u32 {
    name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The service IP families of the embedded cluster, primary first (a dual-stack kubeadm cluster's order).
pub const CLUSTER_FAMILIES: [IpFamily; 2] = [IpFamily::IPv4, IpFamily::IPv6];

fn create_service(inner: &mut Inner, spec: &ServiceSpec, faults: &Faults) -> Result<(), TargetError> {
    if !inner.snap.namespaces.contains(&spec.object.namespace) {
        return Err(TargetError::Rejected(format!("namespace `{}` not found", spec.object.namespace)));
    }
    if inner.snap.services.contains_key(&spec.object) {
        return Err(TargetError::Rejected(format!("service `{}` already exists", spec.object)));
    }
    let exposure = &spec.exposure;
    let per_node_views = exposure.internal_traffic_policy == TrafficPolicy::Local
        || exposure.prefer_close
        || (exposure.service_type.has_node_ports() && exposure.external_traffic_policy == TrafficPolicy::Local);
    if (per_node_views || spec.session_affinity.is_some()) && spec.ports.iter().any(|p| p.protocol == Protocol::Udp) {
        // Each client finds its node's view through a port map shared by both protocols; UDP has none per node yet,
        // and its flows pick backends per client address and port, without ClientIP affinity.
        return Err(TargetError::Rejected(format!(
            "service `{}`: the embedded proxy serves UDP ports only with cluster-wide policies and no session \
             affinity (no Local traffic policy, no trafficDistribution, no sessionAffinity: ClientIP)",
            spec.object
        )));
    }
    // The embedded cluster is dual-stack, IPv4 first; an ExternalName Service has no families.
    let families = match &spec.external_name {
        Some(_) => Vec::new(),
        None => spec
            .exposure
            .ip_families
            .resolve(&CLUSTER_FAMILIES)
            .map_err(|why| TargetError::Rejected(format!("service `{}`: {why}", spec.object)))?,
    };
    if spec.exposure.service_type.has_node_ports() && !families.contains(&IpFamily::IPv4) {
        return Err(TargetError::Rejected(format!(
            "service `{}`: the embedded nodes have IPv4 addresses only, so an IPv6 single-stack Service has no node \
             port to serve",
            spec.object
        )));
    }
    let mut allocate = |family: IpFamily| {
        let ip =
            inner.ipam.allocate_cluster_ip().ok_or_else(|| TargetError::Rejected("service IP range is full".into()))?;
        Ok::<_, TargetError>(match family {
            IpFamily::IPv4 => IpAddr::V4(ip),
            IpFamily::IPv6 => IpAddr::V6(super::ipam::v6_twin(ip)),
        })
    };
    let mut cluster_ips = Vec::new();
    if !spec.headless && spec.external_name.is_none() {
        for &family in &families {
            cluster_ips.push(allocate(family)?);
        }
    }
    let shadow_vip =
        if spec.headless && faults.has(Fault::DnsHeadlessAnswersVip) { Some(allocate(IpFamily::IPv4)?) } else { None };
    let node_ports = spec.exposure.service_type.has_node_ports();
    let mut ports = Vec::new();
    for p in &spec.ports {
        let node_port = if node_ports {
            Some(inner.ipam.allocate_node_port(p.node_port).map_err(TargetError::Rejected)?)
        } else {
            None
        };
        ports.push(ServicePortView {
            name: p.name.clone(),
            port: p.port,
            target_port: p.target_port.clone(),
            protocol: p.protocol,
            node_port,
        });
    }
    let health_check_node_port = if spec.exposure.has_health_check() {
        Some(inner.ipam.allocate_node_port(spec.exposure.health_check_node_port).map_err(TargetError::Rejected)?)
    } else {
        None
    };
    inner.snap.services.insert(
        spec.object.clone(),
        Service {
            cluster_ips,
            families,
            selector: spec.selector.clone(),
            ports,
            publish_not_ready: spec.publish_not_ready,
            session_affinity: spec.session_affinity,
            external_name: spec.external_name.clone(),
            shadow_vip,
            exposure: spec.exposure.clone(),
            health_check_node_port,
        },
    );
    Ok(())
}
