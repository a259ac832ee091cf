//! The Service proxy for UDP ports: a real UDP socket on every ClusterIP:port (and nodeIP:nodePort) that has
//! endpoints, forwarding per *flow* as conntrack does — the first datagram of a client address picks a backend at
//! random, later ones follow it, replies come back from the Service address. A flow whose backend is no longer an
//! endpoint is forgotten, so its next datagram picks a live one: kube-proxy deletes the conntrack entries of removed
//! UDP endpoints for exactly this (under [`Fault::ProxyStaleUdpConntrack`] it is kept). With no endpoints there is no
//! socket, so the kernel answers ICMP port unreachable, as kube-proxy's REJECT rule does.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use rand::seq::IndexedRandom;
use tokio::{net::UdpSocket, sync::watch, task::JoinHandle};
use tokio_util::task::TaskTracker;

use crate::scenario::Protocol;

use super::{
    faults::Fault,
    ports::PortMap,
    state::{ProxyEntry, ProxyKey, Snapshot},
};

/// How long an idle flow lives: `nf_conntrack_udp_timeout`'s default (the kernel's longer timeout for flows that
/// have seen traffic both ways, `nf_conntrack_udp_timeout_stream`, is not modelled).
pub const FLOW_IDLE: Duration = Duration::from_secs(30);

/// Most flows one Service port keeps; the least recently used goes first (conntrack's table is bounded too). Each
/// holds a socket and a relay task, so this also bounds file descriptors and memory.
const MAX_FLOWS: usize = 256;

/// Largest datagram forwarded.
const MAX_DATAGRAM: usize = 65_535;

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One client address's conntrack entry.
struct Flow {
    backend: SocketAddr,
    upstream: Arc<UdpSocket>,
    last: Instant,
    _replies: AbortOnDrop,
}

/// The flows of one Service port. It outlives the port's socket while the fault keeps stale entries, as conntrack
/// entries outlive a REJECT rule.
#[derive(Default)]
struct FlowTable {
    /// The Service socket replies are sent from (none while the port has no endpoints).
    socket: Mutex<Option<Arc<UdpSocket>>>,
    flows: Mutex<HashMap<SocketAddr, Flow>>,
}

/// The UDP side of the proxy: one socket per programmed UDP port, and its flows.
#[derive(Default)]
pub struct UdpProxy {
    sockets: HashMap<ProxyKey, AbortOnDrop>,
    tables: HashMap<ProxyKey, Arc<FlowTable>>,
    /// Keys whose socket could not be bound yet: retried on every pass.
    unbound: std::collections::HashSet<ProxyKey>,
}

impl UdpProxy {
    /// Brings the sockets in line with `snap`, visiting the UDP keys that changed since `previous`.
    pub fn reconcile(
        &mut self,
        previous: &Snapshot,
        snap: &Snapshot,
        snapshots: &watch::Receiver<Arc<Snapshot>>,
        ports: &Arc<PortMap>,
        tracker: &TaskTracker,
    ) {
        let mut changed: Vec<ProxyKey> = previous
            .udp
            .diff(&snap.udp)
            .map(|d| match d {
                imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => *k,
                imbl::ordmap::DiffItem::Update { new: (k, _), .. } => *k,
            })
            .collect();
        changed.extend(self.unbound.drain());
        for key in changed {
            if !snap.udp.contains_key(&key) {
                if self.sockets.remove(&key).is_some() && key.1 == super::state::View::Shared {
                    ports.forget(Protocol::Udp, key.0);
                }
                if let Some(table) = self.tables.get(&key) {
                    *table.socket.lock().expect("flow table lock") = None;
                }
                // A correct proxy forgets every flow of a port without endpoints; a stale one keeps them.
                if !snap.faults.has(Fault::ProxyStaleUdpConntrack) {
                    self.tables.remove(&key);
                }
                continue;
            }
            if self.sockets.contains_key(&key) {
                continue;
            }
            let socket = match ports.bind_udp(key.0) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::warn!(addr = %key.0, error = %e, "UDP proxy cannot bind; retrying on the next change");
                    self.unbound.insert(key);
                    continue;
                }
            };
            let table = self.tables.entry(key).or_default().clone();
            *table.socket.lock().expect("flow table lock") = Some(socket.clone());
            let task = tracker.spawn(serve(socket, key, table, snapshots.clone(), ports.clone(), tracker.clone()));
            self.sockets.insert(key, AbortOnDrop(task));
        }
    }
}

async fn serve(
    socket: Arc<UdpSocket>,
    key: ProxyKey,
    table: Arc<FlowTable>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    ports: Arc<PortMap>,
    tracker: TaskTracker,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Idle flows expire on a clock, also while no datagram arrives (their sockets and relays go with them).
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = sweep.tick() => {
                let now = Instant::now();
                table.flows.lock().expect("flow table lock").retain(|_, f| now.duration_since(f.last) < FLOW_IDLE);
                continue;
            }
        };
        let Ok((n, client)) = received else {
            // An ICMP error from an earlier reply, or out of buffers: not this socket's end.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let snap = snapshots.borrow().clone();
        let Some(upstream) = route(&table, &snap, key, client, &ports, &tracker) else { continue };
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// The upstream socket of `client`'s flow: its conntrack entry while its backend is still an endpoint (or always,
/// under the stale fault), else a new flow to a backend picked at random. `None` when there is no backend.
fn route(
    table: &Arc<FlowTable>,
    snap: &Snapshot,
    key: ProxyKey,
    client: SocketAddr,
    ports: &Arc<PortMap>,
    tracker: &TaskTracker,
) -> Option<Arc<UdpSocket>> {
    let entry = snap.udp.get(&key);
    let stale = snap.faults.has(Fault::ProxyStaleUdpConntrack);
    let mut flows = table.flows.lock().expect("flow table lock");
    if let Some(flow) = flows.get_mut(&client) {
        if stale || entry.is_some_and(|e| e.backends.contains(&flow.backend)) {
            flow.last = Instant::now();
            return Some(flow.upstream.clone());
        }
        flows.remove(&client);
    }
    let entry = entry?;
    let backend = *entry.backends.choose(&mut rand::rng())?;
    let upstream =
        Arc::new(open_upstream(snap, entry, ports.peer_model(Protocol::Udp, client).ip(), backend, ports).ok()?);
    // Weak: the flow owns this task, so a strong reference back would keep the table alive forever.
    let replies = tracker.spawn(relay_replies(upstream.clone(), Arc::downgrade(table), client));
    if flows.len() >= MAX_FLOWS
        && let Some(oldest) = flows.iter().min_by_key(|(_, f)| f.last).map(|(c, _)| *c)
    {
        flows.remove(&oldest);
    }
    let flow = Flow { backend, upstream: upstream.clone(), last: Instant::now(), _replies: AbortOnDrop(replies) };
    flows.insert(client, flow);
    Some(upstream)
}

/// A socket from the address the backend must see (the client's, or the node's where kube-proxy masquerades)
/// connected to the backend's real address.
fn open_upstream(
    snap: &Snapshot,
    entry: &ProxyEntry,
    client: IpAddr,
    backend: SocketAddr,
    ports: &Arc<PortMap>,
) -> std::io::Result<UdpSocket> {
    // The TCP proxy's rule: a pod reaching itself is masqueraded to its node (or, without hairpin, not forwarded).
    let source = match super::proxy::hairpin_source(snap, client, backend.ip()) {
        Some(Some(node_ip)) => node_ip,
        Some(None) => return Err(std::io::Error::other("no hairpin")),
        None => entry.snat.unwrap_or(client),
    };
    crate::probe::Dialer::new(ports.clone(), Some(source)).connect_udp_now(backend)
}

/// Sends the backend's replies to `client` from the Service socket of the moment.
async fn relay_replies(upstream: Arc<UdpSocket>, table: Weak<FlowTable>, client: SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(n) => {
                let Some(table) = table.upgrade() else { return };
                // Replies keep the entry alive too, as conntrack counts both directions.
                if let Some(flow) = table.flows.lock().expect("flow table lock").get_mut(&client) {
                    flow.last = Instant::now();
                }
                let socket = table.socket.lock().expect("flow table lock").clone();
                if let Some(socket) = socket {
                    let _ = socket.send_to(&buf[..n], client).await;
                }
            }
            // The backend is gone (ICMP port unreachable): the flow stays, as a conntrack entry does.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => return,
        }
    }
}
