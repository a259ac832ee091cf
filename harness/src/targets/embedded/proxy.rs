//! The Service proxy: a real TCP listener on every ClusterIP:port and nodeIP:nodePort that has endpoints (one per
//! view, see [`super::programming`]), forwarding each new connection to an endpoint chosen at random (kube-proxy
//! iptables/nftables behaviour), masqueraded where kube-proxy masquerades. With no endpoints there is no listener,
//! so a client's SYN is answered with RST — connection refused, as kube-proxy's REJECT rule does; where a `Local`
//! policy finds no endpoint the listener never accepts, so SYNs go unanswered — DROP. It also serves the health
//! check node ports, and drives the UDP side ([`super::udp_proxy`]).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{Rng, seq::IndexedRandom};
use tokio::{
    net::TcpStream,
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tokio_util::task::TaskTracker;

use crate::scenario::{IpFamily, Protocol};

use super::{
    faults::Fault,
    ports::PortMap,
    state::{ProxyEntry, ProxyKey, Snapshot},
};

/// How long the proxy waits for a backend to accept.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerKind {
    /// Forwards to backends.
    Forward,
    /// Never accepts: SYNs are dropped once its queue is full ([`Fault::ProxyDropsInsteadOfReject`]).
    Blackhole,
}

/// The listeners a snapshot calls for.
fn desired(snap: &Snapshot, key: &ProxyKey) -> Option<ListenerKind> {
    if snap.proxy.contains_key(key) {
        Some(ListenerKind::Forward)
    } else if snap.dropped.contains(key)
        || (snap.faults.has(Fault::ProxyDropsInsteadOfReject) && snap.unbacked.contains(key))
    {
        Some(ListenerKind::Blackhole)
    } else {
        None
    }
}

/// Keeps one listener per programmed ClusterIP:port in line with the newest snapshot, until the snapshot sender
/// is dropped. Only the keys that changed since the last pass are visited (the snapshot maps are persistent and
/// diff in time proportional to the change). After each pass it publishes the generation it programmed. Every
/// listener and connection task is tracked by `tracker`, so the cluster can wait until each socket is closed.
pub async fn reconcile(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    ports: Arc<PortMap>,
    programmed: watch::Sender<u64>,
    tracker: TaskTracker,
) {
    let mut listeners: HashMap<ProxyKey, (ListenerKind, AbortOnDrop)> = HashMap::new();
    let mut health: HashMap<SocketAddr, AbortOnDrop> = HashMap::new();
    let mut udp = super::udp_proxy::UdpProxy::default();
    let mut previous = Arc::new(Snapshot::default());
    let set_key = |d: imbl::ordset::DiffItem<'_, '_, ProxyKey>| match d {
        imbl::ordset::DiffItem::Add(a) | imbl::ordset::DiffItem::Remove(a) => *a,
    };
    loop {
        let snap = snapshots.borrow_and_update().clone();
        let mut changed: Vec<ProxyKey> = previous.proxy.diff(&snap.proxy).map(|d| *diff_key(&d)).collect();
        changed.extend(previous.unbacked.diff(&snap.unbacked).map(set_key));
        changed.extend(previous.dropped.diff(&snap.dropped).map(set_key));
        for key in changed {
            let want = desired(&snap, &key);
            if listeners.get(&key).map(|(k, _)| *k) == want {
                continue;
            }
            if listeners.remove(&key).is_some() {
                ports.forget_view(key);
                if key.1 == super::state::View::Shared {
                    ports.forget(Protocol::Tcp, key.0);
                }
            }
            let Some(kind) = want else {
                // A view with no endpoints must refuse, not fall back to the shared listener: send its clients to
                // a port nothing listens on (the cluster DNS address serves port 53 only).
                if let (true, Some(dns)) = (snap.unbacked.contains(&key), snap.dns_ip) {
                    ports.reject_view(key, SocketAddr::new(IpAddr::V4(dns), 1));
                } else {
                    ports.forget_view(key);
                }
                continue;
            };
            match bind_when_free(&ports, key, if kind == ListenerKind::Blackhole { 0 } else { 1024 }).await {
                Ok(listener) => {
                    let task = match kind {
                        ListenerKind::Forward => {
                            tracker.spawn(serve(listener, key, snapshots.clone(), ports.clone(), tracker.clone()))
                        }
                        ListenerKind::Blackhole => tracker.spawn(blackhole(listener)),
                    };
                    listeners.insert(key, (kind, AbortOnDrop(task)));
                }
                Err(e) => tracing::warn!(addr = %key.0, view = ?key.1, error = %e, "proxy cannot listen"),
            }
        }
        for d in previous.health.diff(&snap.health) {
            let addr = match d {
                imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => *k,
                imbl::ordmap::DiffItem::Update { .. } => continue,
            };
            if !snap.health.contains_key(&addr) {
                health.remove(&addr);
            } else if let std::collections::hash_map::Entry::Vacant(slot) = health.entry(addr) {
                match ports.bind_tcp(addr) {
                    Ok(l) => {
                        let task = tracker.spawn(super::health::serve(l, addr, snapshots.clone(), tracker.clone()));
                        slot.insert(AbortOnDrop(task));
                    }
                    Err(e) => tracing::warn!(%addr, error = %e, "health check node port cannot listen"),
                }
            }
        }
        udp.reconcile(&previous, &snap, &snapshots, &ports, &tracker);
        programmed.send_replace(snap.generation);
        previous = snap;
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// Binds a listener for `key`, waiting up to 1 s while the listener it replaces (aborted a moment ago: its socket
/// closes when its task is dropped) still holds the address.
async fn bind_when_free(ports: &PortMap, key: ProxyKey, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let mut attempts = 0;
    loop {
        match ports.bind_view(key, backlog) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

fn diff_key<'a>(d: &imbl::ordmap::DiffItem<'a, 'a, ProxyKey, ProxyEntry>) -> &'a ProxyKey {
    match d {
        imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => k,
        imbl::ordmap::DiffItem::Update { new: (k, _), .. } => k,
    }
}

/// Fills the listener's accept queue and never accepts, so further SYNs are dropped and clients time out.
async fn blackhole(listener: tokio::net::TcpListener) {
    let Ok(addr) = listener.local_addr() else { return };
    let mut fillers = Vec::new();
    for _ in 0..2 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    std::future::pending::<()>().await;
    drop((listener, fillers));
}

/// Picks the backend for a new connection: the client's affinity backend while it is valid, else one at random.
struct Balancer {
    affinity: HashMap<IpAddr, (SocketAddr, Instant)>,
    skewed: bool,
}

impl Balancer {
    fn pick(&mut self, entry: &ProxyEntry, client: IpAddr) -> Option<SocketAddr> {
        let now = Instant::now();
        if let Some(timeout) = entry.affinity
            && let Some((backend, last)) = self.affinity.get(&client)
            && now.duration_since(*last) < timeout
            && entry.backends.contains(backend)
        {
            let backend = *backend;
            self.affinity.insert(client, (backend, now));
            return Some(backend);
        }
        let mut rng = rand::rng();
        let backend = if self.skewed && entry.backends.len() > 1 && rng.random_bool(0.8) {
            entry.backends.first().copied()
        } else {
            entry.backends.choose(&mut rng).copied()
        }?;
        if entry.affinity.is_some() {
            self.affinity.insert(client, (backend, now));
        }
        Some(backend)
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    service: ProxyKey,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    ports: Arc<PortMap>,
    tracker: TaskTracker,
) {
    let mut connections = JoinSet::new();
    let skewed = snapshots.borrow().faults.has(Fault::ProxySkewedBalancer);
    let mut balancer = Balancer { affinity: HashMap::new(), skewed };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, peer)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let peer = ports.peer_model(Protocol::Tcp, peer);
                // Read the endpoints at accept time: a change applies to new connections only, like conntrack.
                let (entry, snap) = {
                    let snap = snapshots.borrow();
                    (snap.proxy.get(&service).cloned(), snap.clone())
                };
                let Some((entry, backend)) = entry.and_then(|e| balancer.pick(&e, peer.ip()).map(|b| (e, b))) else {
                    reset(client);
                    continue;
                };
                let source = match hairpin_source(&snap, peer.ip(), backend.ip()) {
                    Some(None) => {
                        reset(client);
                        continue;
                    }
                    Some(Some(node_ip)) => node_ip,
                    None => entry.snat.unwrap_or(peer.ip()),
                };
                connections.spawn(tracker.track_future(forward(client, source, backend, ports.clone())));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Closes with RST rather than FIN, as a REJECT or a dead backend would look to the client.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// A pod whose connection lands on itself: kube-proxy masquerades it to the node's address (`Some(Some(ip))`), or
/// under [`Fault::ProxyNoHairpin`] it is reset (`Some(None)`); `None` when it is not hairpin traffic.
pub(super) fn hairpin_source(snap: &Snapshot, client: IpAddr, backend: IpAddr) -> Option<Option<IpAddr>> {
    if client != backend {
        return None;
    }
    if snap.faults.has(Fault::ProxyNoHairpin) {
        return Some(None);
    }
    let family = IpFamily::of(client);
    let node = snap.pods.values().find(|p| p.ip_of(family) == client).map(|p| p.node)?;
    Some(snap.nodes.get(node as usize).map(|n| match family {
        IpFamily::IPv4 => IpAddr::V4(n.ip),
        IpFamily::IPv6 => IpAddr::V6(super::ipam::v6_twin(n.ip)),
    }))
}

async fn forward(mut client: TcpStream, source: IpAddr, backend: SocketAddr, ports: Arc<PortMap>) {
    // The pod sees the client's address (kube-proxy DNATs and does not SNAT in-cluster traffic), or the node's
    // where kube-proxy masquerades: the proxy dials from it as a pod would.
    let dialer = crate::probe::Dialer::new(ports, Some(source));
    match tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, dialer.connect_tcp(backend)).await {
        Ok(Ok(mut upstream)) => {
            let _ = client.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        _ => reset(client),
    }
}
