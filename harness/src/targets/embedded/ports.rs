//! Binding listeners at the addresses the model says, without root.
//!
//! The embedded cluster first binds the real address (`ClusterIP:80`, `podIP:80`, `DNS:53`). When the OS refuses a
//! port below 1024 (not root, and `net.ipv4.ip_unprivileged_port_start` is 1024), it binds the same IP on a free
//! high port instead and records the translation here. Everything in the model — ClusterIPs, ports, endpoints, DNS
//! records — keeps the Kubernetes values; only the socket a client really opens differs, and in-process probes, the
//! state file's `connect` fields and the proxy's backend dials all apply this map.
//!
//! IPv6 model addresses (the cluster is dual-stack) exist on no interface: loopback has only `::1`. Every IPv6
//! listener therefore binds a port of `::1` and is found through this map — one translation per protocol, since a
//! TCP and a UDP socket of different model addresses may share a port number of `::1` —, and every IPv6 socket a pod
//! or the proxy opens binds `::1` and records its port as that pod's address (`bound`), so a server learns who
//! connected ([`PortMap::peer_model`]): `/clientip`, session affinity and hairpin masquerade see model addresses in
//! both families.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
};

use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use super::programming::{ProxyKey, View};
use crate::{probe::AddressMap, scenario::Protocol};

/// Whether to try privileged ports at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortPolicy {
    /// Bind the real port; fall back to a high port when refused.
    #[default]
    Auto,
    /// Always use high ports for ports below 1024 (what a non-root user gets).
    Unprivileged,
}

/// Model address → listening address, for every translated listener.
///
/// A listener that serves only some clients (the proxy's per-node views: kube-proxy programs each node on its own)
/// listens on a high port of the model IP; [`PortMap::for_client`] gives each client the map that finds its view.
#[derive(Debug, Default)]
pub struct PortMap {
    policy: PortPolicy,
    map: RwLock<HashMap<SocketAddr, SocketAddr>>,
    views: RwLock<HashMap<(View, SocketAddr), SocketAddr>>,
    /// IPv6 model address → the `::1` port of its UDP socket (IPv4 shares `map` for both protocols).
    udp6: RwLock<HashMap<SocketAddr, SocketAddr>>,
    /// Protocol and local `[::1]:port` of a socket → the IPv6 model address it sends as. Bounded by the port space
    /// of `::1`; a port reused by a new socket is overwritten when that socket binds.
    sources: RwLock<HashMap<(Protocol, SocketAddr), IpAddr>>,
}

/// Where a model address really listens: IPv6 model addresses on `::1`, the rest on themselves.
pub fn host_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Where a client runs, for choosing the proxy view it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPlace {
    /// Its node's index.
    pub node: u32,
    /// Its node's address.
    pub node_ip: IpAddr,
    /// A pod (rather than the node's own network).
    pub pod: bool,
}

/// A [`PortMap`] as one client sees it.
struct ClientMap {
    ports: Arc<PortMap>,
    place: ClientPlace,
}

impl AddressMap for ClientMap {
    fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        let views = self.ports.views.read().expect("port map lock");
        if let Some(real) = views.get(&(View::Node(self.place.node), addr)) {
            return *real;
        }
        // kube-proxy sends pods, and a node dialing its own node port, to cluster endpoints under a Local policy.
        if (self.place.pod || addr.ip() == self.place.node_ip)
            && let Some(real) = views.get(&(View::Internal, addr))
        {
            return *real;
        }
        drop(views);
        self.ports.resolve(addr)
    }

    fn resolve_udp(&self, addr: SocketAddr) -> SocketAddr {
        // UDP ports have no per-node views (the embedded target refuses UDP with Local policies).
        self.ports.resolve_udp(addr)
    }

    fn local_for(&self, source: IpAddr) -> IpAddr {
        self.ports.local_for(source)
    }

    fn bound(&self, protocol: Protocol, local: SocketAddr, source: IpAddr) {
        self.ports.bound(protocol, local, source);
    }
}

/// Whether `addr` is an IPv6 model address (translated to `::1`).
fn is_v6_model(addr: SocketAddr) -> bool {
    host_ip(addr.ip()) != addr.ip()
}

/// An IPv6 model address nothing listens for: `[::1]:0`, which refuses at once. Dialling the model address itself
/// would leave loopback (the host routes `fd00::/8` to its interfaces).
fn unlistened(addr: SocketAddr) -> SocketAddr {
    if is_v6_model(addr) { SocketAddr::new(host_ip(addr.ip()), 0) } else { addr }
}

impl AddressMap for PortMap {
    fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        self.map.read().expect("port map lock").get(&addr).copied().unwrap_or_else(|| unlistened(addr))
    }

    fn resolve_udp(&self, addr: SocketAddr) -> SocketAddr {
        if !is_v6_model(addr) {
            return self.resolve(addr);
        }
        self.udp6.read().expect("port map lock").get(&addr).copied().unwrap_or_else(|| unlistened(addr))
    }

    fn local_for(&self, source: IpAddr) -> IpAddr {
        host_ip(source)
    }

    fn bound(&self, protocol: Protocol, local: SocketAddr, source: IpAddr) {
        if local.ip() != source {
            self.sources.write().expect("port map lock").insert((protocol, local), source);
        }
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    listen_backlog(addr, 1024)
}

fn listen_backlog(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // Listeners are closed and reopened as endpoints come and go; TIME_WAIT must not block the rebind.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

impl PortMap {
    /// An empty map with `policy`.
    pub fn new(policy: PortPolicy) -> Self {
        Self {
            policy,
            map: RwLock::new(HashMap::new()),
            views: RwLock::new(HashMap::new()),
            udp6: RwLock::new(HashMap::new()),
            sources: RwLock::new(HashMap::new()),
        }
    }

    /// The model address of a `protocol` peer a socket received from: an IPv6 socket's recorded pod address, else
    /// itself.
    pub fn peer_model(&self, protocol: Protocol, peer: SocketAddr) -> SocketAddr {
        match self.sources.read().expect("port map lock").get(&(protocol, peer)) {
            Some(ip) => SocketAddr::new(*ip, peer.port()),
            None => peer,
        }
    }

    /// Forgets where an IPv6 model address's `protocol` socket listened, once it is closed: every IPv6 socket
    /// shares `::1`, so the port may go to another address's socket next (IPv4 ones keep theirs, to be reused on
    /// rebind).
    pub fn forget(&self, protocol: Protocol, model: SocketAddr) {
        if is_v6_model(model) {
            let map = if protocol == Protocol::Udp { &self.udp6 } else { &self.map };
            map.write().expect("port map lock").remove(&model);
        }
    }

    /// Where `model` listens when that is not `model` itself.
    fn translation(&self, model: SocketAddr) -> Option<SocketAddr> {
        self.map.read().expect("port map lock").get(&model).copied()
    }

    fn wants_real(&self, addr: SocketAddr) -> bool {
        !is_v6_model(addr) && (self.policy == PortPolicy::Auto || addr.port() >= 1024)
    }

    fn record(&self, model: SocketAddr, real: SocketAddr) {
        let mut map = self.map.write().expect("port map lock");
        if model == real {
            map.remove(&model);
        } else {
            map.insert(model, real);
        }
    }

    /// A TCP listener for `model`, on the real port if allowed, else on a high port of the same IP.
    ///
    /// # Errors
    /// Neither the real nor a fallback port could be bound.
    pub fn bind_tcp(&self, model: SocketAddr) -> io::Result<TcpListener> {
        self.bind_tcp_backlog(model, 1024)
    }

    /// Like [`Self::bind_tcp`] with an explicit accept-queue length.
    ///
    /// # Errors
    /// Neither the real nor a fallback port could be bound.
    pub fn bind_tcp_backlog(&self, model: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
        let listen = |addr| listen_backlog(addr, backlog);
        if self.wants_real(model) {
            match listen(model) {
                Ok(l) => {
                    self.record(model, model);
                    return Ok(l);
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(e),
            }
        }
        // Reuse the earlier translation so clients holding it keep working across listener restarts.
        let listener = match self.translation(model).map(listen) {
            Some(Ok(l)) => l,
            _ => listen(SocketAddr::new(host_ip(model.ip()), 0))?,
        };
        self.record(model, listener.local_addr()?);
        Ok(listener)
    }

    /// A UDP socket for `model`: the real port if allowed, else the port its TCP listener was given (so one
    /// translation serves both protocols), else a free high port of the same IP.
    ///
    /// # Errors
    /// No port could be bound.
    pub fn bind_udp(&self, model: SocketAddr) -> io::Result<UdpSocket> {
        let bind = |addr: SocketAddr| {
            let socket = std::net::UdpSocket::bind(addr)?;
            socket.set_nonblocking(true)?;
            UdpSocket::from_std(socket)
        };
        if self.wants_real(model) {
            match bind(model) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(e),
            }
        }
        if is_v6_model(model) {
            // A port of its own on `::1`: the TCP side's port may be another socket's for UDP.
            let socket = bind(SocketAddr::new(host_ip(model.ip()), 0))?;
            self.udp6.write().expect("port map lock").insert(model, socket.local_addr()?);
            return Ok(socket);
        }
        if let Some(previous) = self.translation(model) {
            return bind(previous);
        }
        let socket = bind(SocketAddr::new(host_ip(model.ip()), 0))?;
        self.record(model, socket.local_addr()?);
        Ok(socket)
    }

    /// A TCP listener and a UDP socket for `model` on one port (a pod serves both protocols on each container port):
    /// the real port if allowed, else a high port free for both, tried a few times.
    ///
    /// # Errors
    /// No port could be bound for both.
    pub fn bind_tcp_udp(&self, model: SocketAddr) -> io::Result<(TcpListener, UdpSocket)> {
        let tcp = self.bind_tcp(model)?;
        let first = self.bind_udp(model);
        if first.is_ok() || is_v6_model(model) || self.translation(model).is_none() {
            // Bound, or a real-port conflict that another high port cannot fix.
            return first.map(|udp| (tcp, udp));
        }
        let mut last = first.err();
        for _ in 0..16 {
            let tcp = listen(SocketAddr::new(host_ip(model.ip()), 0))?;
            let real = tcp.local_addr()?;
            let udp = std::net::UdpSocket::bind(real).and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            });
            match udp {
                Ok(udp) => {
                    self.record(model, real);
                    return Ok((tcp, udp));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port free for both TCP and UDP")))
    }

    /// A listener for a proxy key: the model address itself for the shared view, else a high port of its IP that
    /// only the clients of that view are sent to.
    ///
    /// # Errors
    /// No port could be bound.
    pub fn bind_view(&self, key: ProxyKey, backlog: u32) -> io::Result<TcpListener> {
        let (model, view) = key;
        if view == View::Shared {
            return self.bind_tcp_backlog(model, backlog);
        }
        let listener = listen_backlog(SocketAddr::new(host_ip(model.ip()), 0), backlog)?;
        self.views.write().expect("port map lock").insert((view, model), listener.local_addr()?);
        Ok(listener)
    }

    /// Sends a view's clients to `closed`, an address nothing listens on, so they are refused.
    pub fn reject_view(&self, key: ProxyKey, closed: SocketAddr) {
        if key.1 != View::Shared {
            self.views.write().expect("port map lock").insert((key.1, key.0), closed);
        }
    }

    /// Forgets a view's listener (it was closed).
    pub fn forget_view(&self, key: ProxyKey) {
        if key.1 != View::Shared {
            self.views.write().expect("port map lock").remove(&(key.1, key.0));
        }
    }

    /// The address map of a client at `place`.
    pub fn for_client(self: &Arc<Self>, place: ClientPlace) -> Arc<dyn AddressMap> {
        Arc::new(ClientMap { ports: self.clone(), place })
    }

    /// A UDP socket and TCP listener for `model` on the same port (DNS serves both).
    ///
    /// # Errors
    /// No port could be bound for both.
    pub async fn bind_udp_tcp(&self, model: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
        if self.wants_real(model) {
            match UdpSocket::bind(model).await {
                Ok(udp) => {
                    let tcp = listen(model)?;
                    self.record(model, model);
                    return Ok((udp, tcp));
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(e),
            }
        }
        let mut last = None;
        for _ in 0..16 {
            let udp = UdpSocket::bind(SocketAddr::new(host_ip(model.ip()), 0)).await?;
            let real = udp.local_addr()?;
            match listen(real) {
                Ok(tcp) => {
                    self.record(model, real);
                    return Ok((udp, tcp));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unprivileged_policy_translates_low_ports() {
        let map = PortMap::new(PortPolicy::Unprivileged);
        let model: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let l = map.bind_tcp(model).unwrap();
        let real = l.local_addr().unwrap();
        assert_ne!(real.port(), 80);
        assert_eq!(map.resolve(model), real);
        drop(l);
        // Rebinding keeps the same translation.
        let l2 = map.bind_tcp(model).unwrap();
        assert_eq!(l2.local_addr().unwrap(), real);
        // High ports are never translated.
        let high: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let l3 = map.bind_tcp(high).unwrap();
        assert_eq!(map.resolve(l3.local_addr().unwrap()), l3.local_addr().unwrap());
    }
}
