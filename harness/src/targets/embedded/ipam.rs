//! Address plan of one embedded cluster, all on loopback (127.0.0.0/8 routes to `lo` on Linux, no root needed).
//!
//! Each cluster owns a /16 "slot" `127.S.0.0/16`, held with a lock socket so concurrent clusters (parallel tests,
//! `svcbench up` beside `cargo test`) never share addresses:
//! - `127.S.0.1`: the lock (and the place the `kubernetes` API service would be);
//! - `127.S.0.2 – 127.S.0.9`: the nodes' addresses;
//! - `127.S.0.10`: cluster DNS (like kubeadm's `10.96.0.10`);
//! - `127.S.0.11 – 127.S.127.254`: ClusterIPs, allocated at random like the apiserver does;
//! - `127.S.128.0 – 127.S.255.254`: pod IPs, allocated in order.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, SocketAddr},
};

use rand::Rng;

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

/// Hands out ClusterIPs and pod IPs of one slot.
#[derive(Debug)]
pub struct Ipam {
    octet: u8,
    cluster_ips: HashSet<Ipv4Addr>,
    next_pod: u32,
}

/// First and last offsets (within the /16) of the two ranges.
const SERVICE_FIRST: u32 = 11;
const SERVICE_LAST: u32 = 127 * 256 + 254;
const POD_FIRST: u32 = 128 * 256 + 2;
const POD_LAST: u32 = 255 * 256 + 254;

impl Ipam {
    /// Allocator for `slot`.
    pub fn new(slot: &Slot) -> Self {
        Self { octet: slot.octet(), cluster_ips: HashSet::new(), next_pod: POD_FIRST }
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
        let mut rng = rand::rng();
        for _ in 0..64 {
            let ip = self.ip(rng.random_range(SERVICE_FIRST..=SERVICE_LAST));
            if ip.octets()[3] != 0 && ip.octets()[3] != 255 && self.cluster_ips.insert(ip) {
                return Some(ip);
            }
        }
        // A nearly full range: scan once instead of guessing forever.
        let free = (SERVICE_FIRST..=SERVICE_LAST)
            .map(|o| self.ip(o))
            .find(|ip| ip.octets()[3] != 0 && ip.octets()[3] != 255 && !self.cluster_ips.contains(ip))?;
        self.cluster_ips.insert(free);
        Some(free)
    }

    /// Returns a ClusterIP to the pool.
    pub fn release_cluster_ip(&mut self, ip: Ipv4Addr) {
        self.cluster_ips.remove(&ip);
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
}
