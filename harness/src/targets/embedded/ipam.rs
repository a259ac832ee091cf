//! Address plan of one embedded cluster, all on loopback (127.0.0.0/8 routes to `lo` on Linux, no root needed).
//!
//! Each cluster owns a /16 "slot" `127.S.0.0/16`, held with a lock socket so concurrent clusters (parallel tests,
//! `svcbench up` beside `cargo test`) never share addresses:
//! - `127.S.0.1`: the lock (and the place the `kubernetes` API service would be);
//! - `127.S.0.2 – 127.S.0.9`: the nodes' addresses;
//! - `127.S.0.10`: cluster DNS (like kubeadm's `10.96.0.10`);
//! - `127.S.0.11 – 127.S.127.254`: ClusterIPs, allocated at random like the apiserver does;
//! - `127.S.128.0 – 127.S.255.254`: pod IPs, allocated in order.
//!
//! The cluster is dual-stack, IPv4 first. IPv6 loopback is the one address `::1`, so IPv6 model addresses are
//! Kubernetes-like ULA addresses that never reach a socket: every one of them listens on a port of `::1` (see
//! [`super::ports`]). Each IPv4 address of the plan has one IPv6 twin with the same 16-bit offset, in the slot's own
//! /64 of the range it belongs to: `fd00:10:0:S::/64` nodes and DNS, `fd00:10:96:S::/64` ClusterIPs,
//! `fd00:10:244:S::/64` pods. A Service's IPv6 ClusterIP is allocated from the same pool of offsets as IPv4 ones,
//! so no two addresses of a cluster ever share one.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
};

use rand::Rng;

use crate::scenario::NODE_PORT_RANGE;

/// Most nodes an embedded cluster has (their addresses sit between the lock and DNS).
pub const MAX_NODES: u32 = 8;

/// Port of the lock socket on `127.S.0.1`.
const LOCK_PORT: u16 = 41_977;

/// The slot this cluster owns; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    octet: u8,
    _lock: std::net::TcpListener,
}

impl Slot {
    /// Claims a free slot, searching from `first` (or a random slot).
    ///
    /// # Errors
    /// Every slot is taken (254 clusters on one machine).
    pub fn claim(first: Option<u8>) -> std::io::Result<Self> {
        let start: u8 = first.filter(|o| *o != 0 && *o != 255).unwrap_or_else(|| rand::rng().random_range(1..=254));
        for i in 0..254u16 {
            let octet = ((u16::from(start) - 1 + i) % 254 + 1) as u8;
            let addr = SocketAddr::from((Ipv4Addr::new(127, octet, 0, 1), LOCK_PORT));
            if let Ok(lock) = std::net::TcpListener::bind(addr) {
                return Ok(Self { octet, _lock: lock });
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "all 254 embedded cluster address slots are in use"))
    }

    /// The second octet of every address of this cluster.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// The cluster DNS address.
    pub fn dns_ip(&self) -> Ipv4Addr {
        Self::dns_ip_of(self.octet)
    }

    /// The address of node `index` (below [`MAX_NODES`]).
    pub fn node_ip(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.octet, 0, 2 + index.min(MAX_NODES - 1) as u8)
    }

    /// The cluster DNS address of slot `octet`.
    pub fn dns_ip_of(octet: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, octet, 0, 10)
    }
}

/// The IPv6 twin of a cluster address `127.S.hi.lo`: `fd00:10:<range>:S::<hi lo>`, where the range is the third group
/// of kubeadm-like prefixes (`0` nodes and DNS, `96` ClusterIPs, `244` pods).
pub fn v6_twin(ip: Ipv4Addr) -> Ipv6Addr {
    let [_, slot, hi, lo] = ip.octets();
    let offset = u32::from(hi) << 8 | u32::from(lo);
    let range = match offset {
        o if o >= POD_FIRST - 2 => 0x244,
        o if o >= SERVICE_FIRST => 0x96,
        _ => 0,
    };
    Ipv6Addr::new(0xfd00, 0x10, range, u16::from(slot), 0, 0, 0, offset as u16)
}

/// Hands out ClusterIPs, pod IPs and node ports of one slot.
#[derive(Debug)]
pub struct Ipam {
    octet: u8,
    cluster_ips: HashSet<Ipv4Addr>,
    next_pod: u32,
    /// Node ports and health check node ports in use.
    node_ports: HashSet<u16>,
}

/// A free value among `candidates(range)` chosen at random, as the API server's allocators do, and marked used: 64
/// guesses, then one scan of a nearly full range instead of guessing forever. `None` when none is free.
fn allocate_random<T: Copy + Eq + std::hash::Hash>(
    used: &mut HashSet<T>,
    range: std::ops::RangeInclusive<u32>,
    candidate: impl Fn(u32) -> Option<T>,
) -> Option<T> {
    let mut rng = rand::rng();
    for _ in 0..64 {
        if let Some(v) = candidate(rng.random_range(range.clone()))
            && used.insert(v)
        {
            return Some(v);
        }
    }
    let free = range.filter_map(&candidate).find(|v| !used.contains(v))?;
    used.insert(free);
    Some(free)
}

/// First and last offsets (within the /16) of the two ranges.
const SERVICE_FIRST: u32 = 11;
const SERVICE_LAST: u32 = 127 * 256 + 254;
const POD_FIRST: u32 = 128 * 256 + 2;
const POD_LAST: u32 = 255 * 256 + 254;

impl Ipam {
    /// Allocator for `slot`.
    pub fn new(slot: &Slot) -> Self {
        Self { octet: slot.octet(), cluster_ips: HashSet::new(), next_pod: POD_FIRST, node_ports: HashSet::new() }
    }

    fn ip(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.octet, (offset >> 8) as u8, (offset & 0xff) as u8)
    }

    /// A free ClusterIP, chosen at random.
    pub fn allocate_cluster_ip(&mut self) -> Option<Ipv4Addr> {
        let size = (SERVICE_LAST - SERVICE_FIRST + 1) as usize;
        if self.cluster_ips.len() >= size {
            return None;
        }
        let octet = self.octet;
        allocate_random(&mut self.cluster_ips, SERVICE_FIRST..=SERVICE_LAST, |o| {
            let ip = Ipv4Addr::new(127, octet, (o >> 8) as u8, (o & 0xff) as u8);
            (ip.octets()[3] != 0 && ip.octets()[3] != 255).then_some(ip)
        })
    }

    /// The node port asked for if it is free, or a free one at random from 30000-32767.
    ///
    /// # Errors
    /// The port asked for is taken, or the range is full.
    pub fn allocate_node_port(&mut self, asked: Option<u16>) -> Result<u16, String> {
        match asked {
            Some(port) if self.node_ports.insert(port) => Ok(port),
            Some(port) => Err(format!("node port {port} is already allocated")),
            None => {
                let range = u32::from(*NODE_PORT_RANGE.start())..=u32::from(*NODE_PORT_RANGE.end());
                allocate_random(&mut self.node_ports, range, |p| u16::try_from(p).ok())
                    .ok_or_else(|| "the node port range is full".to_owned())
            }
        }
    }

    /// Returns a node port to the pool.
    pub fn release_node_port(&mut self, port: u16) {
        self.node_ports.remove(&port);
    }

    /// Returns a ClusterIP (of either family) to the pool.
    pub fn release_cluster_ip(&mut self, ip: std::net::IpAddr) {
        let v4 = match ip {
            std::net::IpAddr::V4(v4) => v4,
            // The IPv6 twin's last group is the offset it was allocated as.
            std::net::IpAddr::V6(v6) => {
                let [hi, lo] = v6.segments()[7].to_be_bytes();
                Ipv4Addr::new(127, self.octet, hi, lo)
            }
        };
        self.cluster_ips.remove(&v4);
    }

    /// Whether `ip` is in this cluster's service range.
    pub fn in_service_range(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        o[0] == 127 && o[1] == self.octet && o[2] < 128
    }

    /// The next pod IP (never reused while the cluster lives, until the range wraps).
    pub fn allocate_pod_ip(&mut self) -> Ipv4Addr {
        loop {
            let offset = self.next_pod;
            self.next_pod = if offset >= POD_LAST { POD_FIRST } else { offset + 1 };
            let last = offset & 0xff;
            if last != 0 && last != 255 && last != 1 {
                return self.ip(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_ranges_disjoint() {
        let a = Slot::claim(None).unwrap();
        let b = Slot::claim(None).unwrap();
        assert_ne!(a.octet(), b.octet());
        let mut ipam = Ipam::new(&a);
        for _ in 0..200 {
            let c = ipam.allocate_cluster_ip().unwrap();
            assert!(ipam.in_service_range(c));
            assert_ne!(c, a.dns_ip());
            let p = ipam.allocate_pod_ip();
            assert!(!ipam.in_service_range(p));
            assert_eq!(p.octets()[1], a.octet());
        }
    }

    #[test]
    fn ipv6_twins_keep_the_ranges_apart() {
        let slot = Slot::claim(None).unwrap();
        let mut ipam = Ipam::new(&slot);
        let (c, p, n) = (ipam.allocate_cluster_ip().unwrap(), ipam.allocate_pod_ip(), slot.node_ip(0));
        let s = u16::from(slot.octet());
        assert_eq!(v6_twin(c).segments()[..4], [0xfd00, 0x10, 0x96, s]);
        assert_eq!(v6_twin(p).segments()[..4], [0xfd00, 0x10, 0x244, s]);
        assert_eq!(v6_twin(n), Ipv6Addr::new(0xfd00, 0x10, 0, s, 0, 0, 0, 2));
        assert_eq!(v6_twin(c).segments()[7], u16::from_be_bytes([c.octets()[2], c.octets()[3]]));
    }

    #[test]
    fn node_ports_are_given_as_asked_or_at_random_and_never_twice() {
        let slot = Slot::claim(None).unwrap();
        let mut ipam = Ipam::new(&slot);
        assert_eq!(ipam.allocate_node_port(Some(30080)), Ok(30080));
        assert!(ipam.allocate_node_port(Some(30080)).unwrap_err().contains("already allocated"));
        let mut seen = HashSet::from([30080]);
        for _ in 0..500 {
            let p = ipam.allocate_node_port(None).unwrap();
            assert!(NODE_PORT_RANGE.contains(&p) && seen.insert(p));
        }
        ipam.release_node_port(30080);
        assert_eq!(ipam.allocate_node_port(Some(30080)), Ok(30080));
    }
}
