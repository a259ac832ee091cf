//! The Service proxy: a real TCP listener on every ClusterIP:port that has endpoints, forwarding each new connection
//! to an endpoint chosen at random (kube-proxy iptables/nftables behaviour). With no endpoints there is no listener,
//! so a client's SYN is answered with RST — connection refused, as kube-proxy's REJECT rule does.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{Rng, seq::IndexedRandom};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use tokio_util::task::TaskTracker;

use super::{
    faults::Fault,
    ports::PortMap,
    state::{ProxyEntry, Snapshot},
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
fn desired(snap: &Snapshot, addr: &SocketAddr) -> Option<ListenerKind> {
    if snap.proxy.contains_key(addr) {
        Some(ListenerKind::Forward)
    } else if snap.faults.has(Fault::ProxyDropsInsteadOfReject) && snap.unbacked.contains(addr) {
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
    let mut listeners: HashMap<SocketAddr, (ListenerKind, AbortOnDrop)> = HashMap::new();
    let mut previous = Arc::new(Snapshot::default());
    loop {
        let snap = snapshots.borrow_and_update().clone();
        let mut changed: Vec<SocketAddr> = previous.proxy.diff(&snap.proxy).map(|d| *diff_key(&d)).collect();
        changed.extend(previous.unbacked.diff(&snap.unbacked).map(|d| match d {
            imbl::ordset::DiffItem::Add(a) | imbl::ordset::DiffItem::Remove(a) => *a,
        }));
        for addr in changed {
            let want = desired(&snap, &addr);
            if listeners.get(&addr).map(|(k, _)| *k) == want {
                continue;
            }
            listeners.remove(&addr);
            let Some(kind) = want else { continue };
            let bound = match kind {
                ListenerKind::Forward => ports.bind_tcp(addr),
                ListenerKind::Blackhole => ports.bind_tcp_backlog(addr, 0),
            };
            match bound {
                Ok(listener) => {
                    let task = match kind {
                        ListenerKind::Forward => {
                            tracker.spawn(serve(listener, addr, snapshots.clone(), ports.clone(), tracker.clone()))
                        }
                        ListenerKind::Blackhole => tracker.spawn(blackhole(listener)),
                    };
                    listeners.insert(addr, (kind, AbortOnDrop(task)));
                }
                Err(e) => tracing::warn!(%addr, error = %e, "proxy cannot listen"),
            }
        }
        programmed.send_replace(snap.generation);
        previous = snap;
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

fn diff_key<'a>(d: &imbl::ordmap::DiffItem<'a, 'a, SocketAddr, ProxyEntry>) -> &'a SocketAddr {
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
    service: SocketAddr,
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
                // Read the endpoints at accept time: a change applies to new connections only, like conntrack.
                let entry = snapshots.borrow().proxy.get(&service).cloned();
                match entry.and_then(|e| balancer.pick(&e, peer.ip())) {
                    Some(backend) => {
                        connections.spawn(tracker.track_future(forward(client, peer, backend, ports.clone())));
                    }
                    None => reset(client),
                }
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

async fn forward(mut client: TcpStream, peer: SocketAddr, backend: SocketAddr, ports: Arc<PortMap>) {
    let real = crate::probe::AddressMap::resolve(ports.as_ref(), backend);
    let connect = async {
        let socket = if real.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // Keep the client's address visible to the pod (kube-proxy DNATs and does not SNAT in-cluster traffic).
        if peer.is_ipv4() == real.is_ipv4() {
            socket.bind(SocketAddr::new(peer.ip(), 0))?;
        }
        socket.connect(real).await
    };
    match tokio::time::timeout(BACKEND_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(mut upstream)) => {
            let _ = upstream.set_nodelay(true);
            let _ = client.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        _ => reset(client),
    }
}
