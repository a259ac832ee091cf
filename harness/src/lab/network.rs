//! The lab network, dual-stack (IPv4 primary, IPv6 secondary) as a dual-stack kubeadm or kind cluster: the ranges
//! the components are given, the control-plane bridge, each node's link and addresses, and the routes from the
//! control plane to each node's podCIDRs.
//!
//! Every address here exists only inside namespaces the lab creates; the host's own interfaces never carry or route
//! them. The IPv6 ranges are unique-local (`fd00::/8`), the ones kind's dual-stack clusters use.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::netns::{Netns, ip_batch};

/// The control plane's IPv4 address on the lab network (the API server's advertise address, the upstream resolver).
pub const CONTROL_PLANE_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
/// The control plane's IPv6 address on the lab network (the nodes' IPv6 default gateway).
pub const CONTROL_PLANE_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x172, 0x30, 0, 0, 0, 0, 1);
/// The lab network's IPv6 prefix length (the IPv4 network is a /24).
const LAB_PREFIX6: u8 = 64;
/// The Service ranges, IPv4 first (`--service-cluster-ip-range`).
pub const SERVICE_CIDRS: [&str; 2] = ["10.96.0.0/12", "fd00:10:96::/112"];
/// The pod ranges, IPv4 first (`--cluster-cidr`); each node gets a /24 and a /64 of them.
pub const CLUSTER_CIDRS: [&str; 2] = ["10.244.0.0/16", "fd00:10:244::/56"];
/// The node podCIDR sizes (`--node-cidr-mask-size-ipv4`, `--node-cidr-mask-size-ipv6`).
pub const NODE_CIDR_MASKS: [u8; 2] = [24, 64];
/// The `kubernetes` Service's ClusterIP: the first address of the primary Service range (the apiserver gives the
/// `kubernetes` Service the primary family only, as in any dual-stack cluster).
pub const API_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// The pod ranges as one flag value (`10.244.0.0/16,fd00:10:244::/56`).
pub fn cluster_cidrs() -> String {
    CLUSTER_CIDRS.join(",")
}

/// The Service ranges as one flag value.
pub fn service_cidrs() -> String {
    SERVICE_CIDRS.join(",")
}

/// A node's addresses on the lab network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddresses {
    /// IPv4 (primary): 172.30.0.(10+i).
    pub v4: Ipv4Addr,
    /// IPv6 (secondary): fd00:172:30::1i, written like the IPv4 one (node 2: `fd00:172:30::12`).
    pub v6: Ipv6Addr,
}

impl NodeAddresses {
    /// Node `i`'s addresses (i from 1).
    pub fn of(i: u8) -> Self {
        // 0x10 + i: the last group reads as the IPv4 address's last byte (at most 8 nodes).
        let host = 0x10 + u16::from(i);
        Self { v4: Ipv4Addr::new(172, 30, 0, 10 + i), v6: Ipv6Addr::new(0xfd00, 0x172, 0x30, 0, 0, 0, 0, host) }
    }
}

/// Creates the control plane's namespace `cp`: bridge `br0` with both control-plane addresses, forwarding on for
/// both families (it routes between nodes), ICMP redirects off (nodes must keep sending through it).
///
/// # Errors
/// A namespace, link, address or sysctl could not be made.
pub fn control_plane(cp: &str) -> anyhow::Result<Netns> {
    let ns = Netns::create(cp)?;
    ip_batch(
        cp,
        &[
            "link add br0 type bridge".into(),
            format!("addr add {CONTROL_PLANE_IP}/24 dev br0"),
            // nodad: duplicate address detection would leave the address tentative for a second or two, and
            // there is nothing on this bridge for it to collide with.
            format!("addr add {CONTROL_PLANE_IP6}/{LAB_PREFIX6} dev br0 nodad"),
            "link set br0 up".into(),
        ],
    )?;
    ns.sysctl("ipv4/ip_forward", "1")?;
    ns.sysctl("ipv4/conf/all/send_redirects", "0")?;
    ns.sysctl("ipv6/conf/all/forwarding", "1")?;
    Ok(ns)
}

/// Creates node `i`'s namespace `name`, linked to the control plane's bridge, with both node addresses, default
/// routes of both families via the control plane, forwarding on (it routes its pods) and reverse-path filtering off
/// (replies of DNATed traffic come back through the bridge for addresses routed elsewhere).
///
/// # Errors
/// A namespace, link, address, route or sysctl could not be made.
pub fn node(cp: &str, i: u8, name: &str) -> anyhow::Result<Netns> {
    let ns = Netns::create(name)?;
    let NodeAddresses { v4, v6 } = NodeAddresses::of(i);
    ip_batch(
        cp,
        &[format!("link add n{i} type veth peer name eth0 netns {name}"), format!("link set n{i} master br0 up")],
    )?;
    ip_batch(
        name,
        &[
            format!("addr add {v4}/24 dev eth0"),
            format!("addr add {v6}/{LAB_PREFIX6} dev eth0 nodad"),
            "link set eth0 up".into(),
            format!("route add default via {CONTROL_PLANE_IP}"),
            format!("route add default via {CONTROL_PLANE_IP6} dev eth0"),
        ],
    )?;
    ns.sysctl("ipv4/ip_forward", "1")?;
    ns.sysctl("ipv4/conf/all/rp_filter", "0")?;
    ns.sysctl("ipv4/conf/default/rp_filter", "0")?;
    ns.sysctl("ipv6/conf/all/forwarding", "1")?;
    Ok(ns)
}

/// Routes node `i`'s podCIDRs (spec.podCIDRs: the IPv4 one, and the IPv6 one) from the control plane to the node.
///
/// # Errors
/// A CIDR is of neither family, or `ip` refused the route.
pub fn route_pod_cidrs(cp: &str, i: u8, cidrs: &[String]) -> anyhow::Result<()> {
    let node = NodeAddresses::of(i);
    let routes: Vec<String> = cidrs
        .iter()
        .map(|cidr| {
            let via = if cidr.contains(':') { node.v6.to_string() } else { node.v4.to_string() };
            format!("route replace {cidr} via {via}")
        })
        .collect();
    ip_batch(cp, &routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_share_the_host_number() {
        let n = NodeAddresses::of(2);
        assert_eq!(n.v4.to_string(), "172.30.0.12");
        assert_eq!(n.v6.to_string(), "fd00:172:30::12");
        assert_eq!(cluster_cidrs(), "10.244.0.0/16,fd00:10:244::/56");
        assert_eq!(service_cidrs(), "10.96.0.0/12,fd00:10:96::/112");
    }
}
