//! The Service proxy: a real TCP listener on every ClusterIP:port that has endpoints, forwarding each new connection
//! to an endpoint chosen at random (kube-proxy iptables/nftables behaviour). With no endpoints there is no listener,
//! so a client's SYN is answered with RST — connection refused, as kube-proxy's REJECT rule does.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use rand::seq::IndexedRandom;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};

use super::{ports::PortMap, state::Snapshot};

/// How long the proxy waits for a backend to accept.
const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps one listener per programmed ClusterIP:port in line with the newest snapshot, until the snapshot sender
/// is dropped. After each pass it publishes the generation it programmed on `programmed`.
pub async fn reconcile(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    ports: Arc<PortMap>,
    programmed: watch::Sender<u64>,
) {
    let mut listeners: HashMap<SocketAddr, AbortOnDrop> = HashMap::new();
    loop {
        let snap = snapshots.borrow_and_update().clone();
        listeners.retain(|addr, _| snap.proxy.contains_key(addr));
        for addr in snap.proxy.keys() {
            if listeners.contains_key(addr) {
                continue;
            }
            match ports.bind_tcp(*addr) {
                Ok(listener) => {
                    let task = tokio::spawn(serve(listener, *addr, snapshots.clone(), ports.clone()));
                    listeners.insert(*addr, AbortOnDrop(task));
                }
                Err(e) => tracing::warn!(%addr, error = %e, "proxy cannot listen"),
            }
        }
        programmed.send_replace(snap.generation);
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    service: SocketAddr,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    ports: Arc<PortMap>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, peer)) = accepted else { continue };
                // Read the endpoints at accept time: a change applies to new connections only, like conntrack.
                let backend = snapshots.borrow().proxy.get(&service).and_then(|b| b.choose(&mut rand::rng()).copied());
                match backend {
                    Some(backend) => {
                        connections.spawn(forward(client, peer, backend, ports.clone()));
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
