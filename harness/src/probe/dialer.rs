//! Opening sockets as a pod would: from the pod's source address, to an address the network translates.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::scenario::Protocol;

/// Translates the address a pod dials into the address that actually listens.
///
/// A real cluster needs none (identity). The embedded target uses it when it runs without root: a service port below
/// 1024 then listens on a high port of the same IP, and this map is how clients find it.
pub trait AddressMap: Send + Sync {
    /// The address to connect to for `addr`.
    fn resolve(&self, addr: SocketAddr) -> SocketAddr;

    /// The address to send UDP to for `addr` (the embedded target translates IPv6 ports per protocol).
    fn resolve_udp(&self, addr: SocketAddr) -> SocketAddr {
        self.resolve(addr)
    }

    /// The local address a socket sending as `source` binds (the embedded target binds `::1` for its IPv6 model
    /// addresses, which no interface has).
    fn local_for(&self, source: IpAddr) -> IpAddr {
        source
    }

    /// Notes that the `protocol` socket bound at `local` sends as `source`, so whoever receives from it can tell
    /// who it is.
    fn bound(&self, _protocol: Protocol, _local: SocketAddr, _source: IpAddr) {}
}

/// No translation (inside a real cluster).
#[derive(Debug, Default)]
pub struct Identity;

impl AddressMap for Identity {
    fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        addr
    }
}

/// Opens sockets from a pod's point of view.
#[derive(Clone)]
pub struct Dialer {
    map: Arc<dyn AddressMap>,
    source: Option<IpAddr>,
    /// The pod's address of the other family (a dual-stack pod has one per family).
    other_source: Option<IpAddr>,
}

impl Default for Dialer {
    fn default() -> Self {
        Self { map: Arc::new(Identity), source: None, other_source: None }
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("source", &self.source)
            .field("other_source", &self.other_source)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer that translates with `map` and binds `source` as the client address when given.
    pub fn new(map: Arc<dyn AddressMap>, source: Option<IpAddr>) -> Self {
        Self { map, source, other_source: None }
    }

    /// The same dialer, with `ip` as the pod's address of the other family (sockets to that family bind it).
    pub fn with_other_source(mut self, ip: IpAddr) -> Self {
        self.other_source = Some(ip);
        self
    }

    /// The client address sockets are bound to, if any.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }

    /// The pod's source address for a destination of `addr`'s family, if it has one.
    fn source_for(&self, addr: SocketAddr) -> Option<IpAddr> {
        [self.source, self.other_source].into_iter().flatten().find(|s| s.is_ipv4() == addr.is_ipv4())
    }

    /// The address a socket to `addr` that got local address `local` sends as: the pod's address of that family
    /// where sockets bind one (the embedded target's IPv6 sockets are on `::1`), else `local`.
    pub fn model_source(&self, addr: SocketAddr, local: IpAddr) -> IpAddr {
        self.source_for(addr).unwrap_or(local)
    }

    /// The local address to bind for a socket from the pod to `addr` (model) reaching `real`, if any.
    fn local(&self, addr: SocketAddr, real: SocketAddr) -> Option<(SocketAddr, IpAddr)> {
        let source = self.source_for(addr)?;
        let local = self.map.local_for(source);
        (local.is_ipv4() == real.is_ipv4()).then_some((SocketAddr::new(local, 0), source))
    }

    /// Where a connection to `addr` really goes.
    pub fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        self.map.resolve(addr)
    }

    /// TCP connect to `addr` (translated), from the source address.
    ///
    /// # Errors
    /// The OS error of `connect` (refused, unreachable, …).
    pub async fn connect_tcp(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let real = self.resolve(addr);
        let socket = if real.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some((local, source)) = self.local(addr, real) {
            socket.bind(local)?;
            self.map.bound(Protocol::Tcp, socket.local_addr()?, source);
        }
        let stream = socket.connect(real).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// A UDP socket connected to `addr` (translated), bound to the source address.
    ///
    /// # Errors
    /// The OS error of `bind` or `connect`.
    pub async fn connect_udp(&self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        self.connect_udp_now(addr)
    }

    /// [`Self::connect_udp`] without awaiting (binding and connecting a UDP socket never block), for callers that
    /// hold a lock. Needs a tokio runtime.
    ///
    /// # Errors
    /// The OS error of `bind` or `connect`.
    pub fn connect_udp_now(&self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        let real = self.map.resolve_udp(addr);
        let (local, source) = match self.local(addr, real) {
            Some((local, source)) => (local, Some(source)),
            None if real.is_ipv4() => (SocketAddr::from(([0, 0, 0, 0], 0)), None),
            None => (SocketAddr::from(([0u16; 8], 0)), None),
        };
        let socket = std::net::UdpSocket::bind(local)?;
        if let Some(source) = source {
            self.map.bound(Protocol::Udp, socket.local_addr()?, source);
        }
        socket.connect(real)?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket)
    }
}
