//! Opening sockets as a pod would: from the pod's source address, to an address the network translates.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Translates the address a pod dials into the address that actually listens.
///
/// A real cluster needs none (identity). The embedded target uses it when it runs without root: a service port below
/// 1024 then listens on a high port of the same IP, and this map is how clients find it.
pub trait AddressMap: Send + Sync {
    /// The address to connect to for `addr`.
    fn resolve(&self, addr: SocketAddr) -> SocketAddr;
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
}

impl Default for Dialer {
    fn default() -> Self {
        Self { map: Arc::new(Identity), source: None }
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer that translates with `map` and binds `source` as the client address when given.
    pub fn new(map: Arc<dyn AddressMap>, source: Option<IpAddr>) -> Self {
        Self { map, source }
    }

    /// The client address sockets are bound to, if any.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
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
        if let Some(src) = self.source.filter(|s| s.is_ipv4() == real.is_ipv4()) {
            socket.bind(SocketAddr::new(src, 0))?;
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
        let real = self.resolve(addr);
        let local = match self.source.filter(|s| s.is_ipv4() == real.is_ipv4()) {
            Some(src) => SocketAddr::new(src, 0),
            None if real.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
            None => SocketAddr::from(([0u16; 8], 0)),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(real).await?;
        Ok(socket)
    }
}
