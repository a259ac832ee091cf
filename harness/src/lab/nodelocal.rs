//! NodeLocal DNSCache, per node, as the `node-local-dns` add-on runs it (kubernetes
//! `cluster/addons/dns/nodelocaldns/nodelocaldns.yaml`, the variant where kubelet's `clusterDNS` is the link-local
//! address): the `kube-dns-upstream` Service in front of CoreDNS, and on every node (host network) the local address
//! 169.254.20.10, node-cache's NOTRACK/ACCEPT rules, and CoreDNS serving the add-on's
//! Corefile (cluster.local answers cached 30 s, denials 5 s, forwarded to kube-dns-upstream over TCP).
//!
//! `k8s.io/dns` (node-cache's module) is not served by the Go module proxy here (its tags are not semver; listing,
//! the tags and pseudo-versions are all refused), so the node-cache binary itself cannot be built. node-cache is
//! CoreDNS plus a setup step; the lab does that step (the interface, the rules of `cmd/node-cache/app/cache_app.go`,
//! the `__PILLAR__` substitution of the Corefile) and runs the lab's CoreDNS build with the add-on's Corefile, so the
//! answers and the caching are CoreDNS's own.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Service;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{control_plane, install::Installation, netns, process::Supervised};

/// The cache's link-local address (the add-on's `__PILLAR__LOCAL__DNS__`), kubelet's `clusterDNS` with the cache.
pub const LOCAL_DNS: Ipv4Addr = Ipv4Addr::new(169, 254, 20, 10);
/// Where the address goes. node-cache creates a `nodelocaldns` dummy interface, but these kernels have no dummy
/// driver ("Unknown device type"); the node namespace's loopback serves the same purpose (a local address no route
/// leads away from), like node-cache's `-setupinterface=false` with the address configured beforehand.
const INTERFACE: &str = "lo";
/// node-cache's health port (`health __PILLAR__LOCAL__DNS__:8080`).
const HEALTH_PORT: u16 = 8080;

/// The add-on's Corefile with its `__PILLAR__` variables filled in, as node-cache writes it: the domain, the local
/// address (bound alone: kubelet points at it, so kube-dns's ClusterIP is not taken over), the kube-dns-upstream
/// ClusterIP for the cluster zones and the node's resolver for everything else.
pub fn corefile(domain: &str, upstream_service: Ipv4Addr, node_resolver: Ipv4Addr) -> String {
    let zone = |name: &str, cache: &str, forward: &str| {
        format!(
            "{name}:53 {{\n    errors\n    {cache}\n    reload\n    loop\n    bind {LOCAL_DNS}\n    forward . {forward}\n    prometheus :9253\n{health}    }}\n",
            health = if name == domain { format!("    health {LOCAL_DNS}:{HEALTH_PORT}\n") } else { String::new() },
        )
    };
    let cluster = format!("{upstream_service} {{\n            force_tcp\n    }}");
    [
        zone(domain, "cache {\n            success 9984 30\n            denial 9984 5\n    }", &cluster),
        zone("in-addr.arpa", "cache 30", &cluster),
        zone("ip6.arpa", "cache 30", &cluster),
        zone(".", "cache 30", &node_resolver.to_string()),
    ]
    .concat()
}

/// Creates the `kube-dns-upstream` Service (CoreDNS's pods behind a second ClusterIP, so the cache's own queries
/// are not sent back to itself) and returns its ClusterIP.
///
/// # Errors
/// The API server refused it or allocated no address.
pub async fn apply_upstream_service(client: &Client) -> anyhow::Result<Ipv4Addr> {
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let manifest = json!({"apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "kube-dns-upstream", "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "KubeDNSUpstream"}},
    "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
    ]}});
    let service = services
        .patch("kube-dns-upstream", &PatchParams::apply("svcbench-lab").force(), &Patch::Apply(&manifest))
        .await
        .context("cannot create Service kube-system/kube-dns-upstream")?;
    service
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse().ok())
        .context("Service kube-system/kube-dns-upstream has no IPv4 ClusterIP")
}

/// node-cache's rules for one protocol and the local address (`initIptables`): skip conntrack both ways, accept in
/// the filter table (what conntrack-based ACCEPT rules would otherwise do), and skip conntrack for the health port.
fn rules() -> Vec<Vec<String>> {
    let ip = LOCAL_DNS.to_string();
    let comment_skip = "NodeLocal DNS Cache: skip conntrack";
    let comment_allow = "NodeLocal DNS Cache: allow DNS traffic";
    let rule = |table: &str, chain: &str, proto: &str, dir: &str, port: &str, target: &str, comment: &str| {
        let (addr, port_flag) = if dir == "d" { ("-d", "--dport") } else { ("-s", "--sport") };
        [
            table,
            "-A",
            chain,
            "-p",
            proto,
            addr,
            &ip,
            port_flag,
            port,
            "-j",
            target,
            "-m",
            "comment",
            "--comment",
            comment,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for proto in ["tcp", "udp"] {
        out.push(rule("raw", "PREROUTING", proto, "d", "53", "NOTRACK", comment_skip));
        out.push(rule("filter", "INPUT", proto, "d", "53", "ACCEPT", comment_allow));
        out.push(rule("raw", "OUTPUT", proto, "s", "53", "NOTRACK", comment_skip));
        out.push(rule("filter", "OUTPUT", proto, "s", "53", "ACCEPT", comment_allow));
        out.push(rule("raw", "OUTPUT", proto, "d", "53", "NOTRACK", comment_skip));
    }
    let health = HEALTH_PORT.to_string();
    out.push(rule("raw", "OUTPUT", "tcp", "d", &health, "NOTRACK", comment_skip));
    out.push(rule("raw", "OUTPUT", "tcp", "s", &health, "NOTRACK", comment_skip));
    out
}

/// Sets the cache up on node namespace `node_ns` and starts it. The interface and rules live in the node's
/// namespace and go with it.
///
/// # Errors
/// The interface, a rule or the process could not be set up.
pub fn start(
    node_ns: &str,
    node: &str,
    bins: &Installation,
    conf: &str,
    dir: &Path,
    lab: &str,
) -> anyhow::Result<Supervised> {
    // `scope host`: on `lo` (ifindex 1) a global address would be the first the kernel picks as the source of
    // masqueraded traffic to local pods; node-cache's dummy interface comes after eth0 and never is. The address is
    // still local, so queries to it are delivered.
    netns::ip_batch(node_ns, &[format!("addr add {LOCAL_DNS}/32 dev {INTERFACE} scope host")])?;
    for rule in rules() {
        let (table, rest) = rule.split_first().context("empty rule")?;
        let out = control_plane::in_ns(node_ns, Path::new("iptables"))
            .args(["-w", "5", "-t", table])
            .args(rest)
            .output()
            .context("cannot run iptables")?;
        if !out.status.success() {
            bail!("iptables -t {table} {}: {}", rest.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    let path = dir.join(format!("node-local-dns-{node}.Corefile"));
    std::fs::write(&path, conf)?;
    let mut cmd = control_plane::in_ns(node_ns, &bins.binary("coredns"));
    cmd.arg("-conf").arg(&path);
    Supervised::spawn("node-local-dns", cmd, &dir.join(format!("node-local-dns-{node}.log")), lab)
}

/// Waits until the cache on `node_ns` answers its health check (bounded).
///
/// # Errors
/// Not healthy within 60 s.
pub async fn wait_healthy(node_ns: &str, process: &mut Supervised) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = process.exited() {
            bail!("node-local-dns exited ({status}):\n{}", process.log_tail(15));
        }
        let addr = SocketAddr::from((LOCAL_DNS, HEALTH_PORT));
        if let Ok(mut stream) = netns::connect(node_ns, addr, Duration::from_secs(1)).await {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut reply = Vec::new();
            let answered = async {
                stream.write_all(request.as_bytes()).await?;
                stream.read_to_end(&mut reply).await
            };
            let done = tokio::time::timeout(Duration::from_secs(2), answered).await.is_ok_and(|r| r.is_ok());
            if done && std::str::from_utf8(&reply).is_ok_and(|r| r.split_whitespace().nth(1) == Some("200")) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node-local-dns on {node_ns} not healthy within 60 s:\n{}", process.log_tail(15));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corefile_fills_every_pillar_variable() {
        let conf = corefile("cluster.local", Ipv4Addr::new(10, 96, 12, 3), Ipv4Addr::new(172, 30, 0, 1));
        assert!(!conf.contains("__PILLAR__"), "{conf}");
        assert!(conf.starts_with("cluster.local:53 {"), "{conf}");
        assert!(conf.contains("success 9984 30") && conf.contains("denial 9984 5"), "{conf}");
        assert!(conf.contains("forward . 10.96.12.3 {\n            force_tcp"), "{conf}");
        assert!(conf.contains(".:53 {") && conf.contains("forward . 172.30.0.1\n"), "{conf}");
        assert_eq!(conf.matches("bind 169.254.20.10\n").count(), 4, "{conf}");
        assert_eq!(conf.matches("health 169.254.20.10:8080").count(), 1, "{conf}");
    }

    #[test]
    fn rules_are_node_caches_twelve() {
        let rules = rules();
        assert_eq!(rules.len(), 12);
        assert!(rules.iter().all(|r| r.contains(&"169.254.20.10".to_owned())));
    }
}
