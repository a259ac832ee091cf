//! The control plane processes, as `hack/local-up-cluster.sh` runs them, inside the lab's control-plane network
//! namespace: etcd, kube-apiserver (TLS from the lab's CA, Node+RBAC authorization, NodeRestriction, service-account
//! keys, dual-stack `--service-cluster-ip-range 10.96.0.0/12,fd00:10:96::/112`), kube-controller-manager (every
//! default controller, node CIDR allocation of a /24 and a /64 from `10.244.0.0/16,fd00:10:244::/56`) and
//! kube-scheduler; and per node, kube-proxy in the chosen mode, dual-stack (both cluster CIDRs). The ranges are
//! [`super::network`]'s.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    install::Installation,
    network::{NODE_CIDR_MASKS, cluster_cidrs, service_cidrs},
    pki::Pki,
    process::Supervised,
};

/// The API server's port inside the control-plane namespace.
pub const API_PORT: u16 = 6443;

/// `ip netns exec NS PROGRAM`.
pub fn in_ns(netns: &str, program: &Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns]).arg(program);
    cmd
}

/// Starts etcd on 127.0.0.1 of the control-plane namespace.
///
/// # Errors
/// It cannot be started.
pub fn etcd(netns: &str, bins: &Installation, dir: &Path, lab: &str) -> anyhow::Result<Supervised> {
    let mut cmd = in_ns(netns, &bins.binary("etcd"));
    cmd.arg(format!("--data-dir={}", dir.join("etcd").display())).args([
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=default=http://127.0.0.1:2380",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--log-level=warn",
        // A throwaway cluster: durability buys nothing and fsync costs seconds on a shared disk.
        "--unsafe-no-fsync",
    ]);
    Supervised::spawn("etcd", cmd, &dir.join("etcd.log"), lab)
}

/// Starts kube-apiserver, advertising `advertise` (the endpoint of the `kubernetes` Service).
///
/// # Errors
/// It cannot be started.
pub fn apiserver(
    netns: &str,
    bins: &Installation,
    pki: &Pki,
    advertise: Ipv4Addr,
    dir: &Path,
    lab: &str,
) -> anyhow::Result<Supervised> {
    let mut cmd = in_ns(netns, &bins.binary("kube-apiserver"));
    let p = |path: std::path::PathBuf| path.display().to_string();
    cmd.args([
        format!("--advertise-address={advertise}"),
        "--bind-address=0.0.0.0".into(),
        format!("--secure-port={API_PORT}"),
        "--etcd-servers=http://127.0.0.1:2379".into(),
        format!("--service-cluster-ip-range={}", service_cidrs()),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        format!("--client-ca-file={}", p(pki.ca_cert_path())),
        format!("--tls-cert-file={}", p(pki.apiserver_cert_path())),
        format!("--tls-private-key-file={}", p(pki.apiserver_key_path())),
        format!("--service-account-key-file={}", p(pki.sa_pub_path())),
        format!("--service-account-signing-key-file={}", p(pki.sa_key_path())),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--cert-dir={}", dir.join("apiserver-certs").display()),
        "--profiling=false".into(),
        "--v=1".into(),
    ]);
    Supervised::spawn("kube-apiserver", cmd, &dir.join("kube-apiserver.log"), lab)
}

/// Starts kube-controller-manager with `kubeconfig`.
///
/// # Errors
/// It cannot be started.
pub fn controller_manager(
    netns: &str,
    bins: &Installation,
    pki: &Pki,
    kubeconfig: &Path,
    dir: &Path,
    lab: &str,
) -> anyhow::Result<Supervised> {
    let mut cmd = in_ns(netns, &bins.binary("kube-controller-manager"));
    let p = |path: std::path::PathBuf| path.display().to_string();
    cmd.args([
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
        "--bind-address=127.0.0.1".into(),
        format!("--service-account-private-key-file={}", p(pki.sa_key_path())),
        format!("--root-ca-file={}", p(pki.ca_cert_path())),
        format!("--cluster-signing-cert-file={}", p(pki.ca_cert_path())),
        format!("--cluster-signing-key-file={}", p(pki.ca_key_path())),
        "--use-service-account-credentials".into(),
        "--controllers=*".into(),
        "--leader-elect=false".into(),
        "--allocate-node-cidrs=true".into(),
        format!("--cluster-cidr={}", cluster_cidrs()),
        // With two cluster CIDRs kube-controller-manager refuses the family-less --node-cidr-mask-size.
        format!("--node-cidr-mask-size-ipv4={}", NODE_CIDR_MASKS[0]),
        format!("--node-cidr-mask-size-ipv6={}", NODE_CIDR_MASKS[1]),
        format!("--service-cluster-ip-range={}", service_cidrs()),
        format!("--cert-dir={}", dir.join("kcm-certs").display()),
        "--v=1".into(),
    ]);
    Supervised::spawn("kube-controller-manager", cmd, &dir.join("kube-controller-manager.log"), lab)
}

/// Starts kube-scheduler with `kubeconfig`.
///
/// # Errors
/// It cannot be started.
pub fn scheduler(
    netns: &str,
    bins: &Installation,
    kubeconfig: &Path,
    dir: &Path,
    lab: &str,
) -> anyhow::Result<Supervised> {
    let config = dir.join("kube-scheduler.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  \
             kubeconfig: {}\nleaderElection:\n  leaderElect: false\n",
            kubeconfig.display()
        ),
    )?;
    let mut cmd = in_ns(netns, &bins.binary("kube-scheduler"));
    cmd.arg(format!("--config={}", config.display()))
        .arg(format!("--authentication-kubeconfig={}", kubeconfig.display()))
        .arg(format!("--authorization-kubeconfig={}", kubeconfig.display()))
        .args(["--bind-address=127.0.0.1", "--v=1"]);
    Supervised::spawn("kube-scheduler", cmd, &dir.join("kube-scheduler.log"), lab)
}

/// The node a kube-proxy serves.
#[derive(Debug, Clone, Copy)]
pub struct ProxyNode<'a> {
    /// The node's network namespace.
    pub netns: &'a str,
    /// Node name (`hostnameOverride`).
    pub name: &'a str,
    /// Node IP (IPv4, the primary family: kube-proxy takes its primary family from `bindAddress` and the IPv6
    /// node IP from the Node's addresses).
    pub ip: Ipv4Addr,
}

/// Where kube-proxy of node `node` logs.
pub fn kube_proxy_log(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("kube-proxy-{node}.log"))
}

/// Starts kube-proxy for `node` (in its namespace) in `mode`, dual-stack, without touching global sysctls.
///
/// # Errors
/// It cannot be started.
pub fn kube_proxy(
    node: ProxyNode<'_>,
    bins: &Installation,
    mode: &str,
    local_traffic: super::LocalTraffic,
    kubeconfig: &Path,
    dir: &Path,
    lab: &str,
) -> anyhow::Result<Supervised> {
    let ProxyNode { netns, name: node, ip: node_ip } = node;
    let config = dir.join(format!("kube-proxy-{node}.yaml"));
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node}
bindAddress: {node_ip}
clusterCIDR: {cluster_cidr}
mode: {mode}
{detect_local}oomScoreAdj: 0
# 0 skips the global conntrack sysctls (hashsize cannot be written from a network namespace), as local-up-cluster.sh.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
nodePortAddresses: [\"primary\"]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: {node_ip}:10256
",
            kubeconfig = kubeconfig.display(),
            cluster_cidr = cluster_cidrs(),
            detect_local = match local_traffic {
                super::LocalTraffic::ClusterCidr => String::new(),
                // The node's end of every pod veth is `vp<n>` (node/pod.rs).
                super::LocalTraffic::InterfaceNamePrefix => {
                    "detectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  interfaceNamePrefix: vp\n".to_owned()
                }
            },
        ),
    )?;
    let mut cmd = in_ns(netns, &bins.binary("kube-proxy"));
    // -v=2: kube-proxy then says why it ignores topology hints ("no hints were provided for zone", "node is missing
    // label"), which a failing PreferClose step needs (issue #20's prefer-close flake); topology.go at 7 adds the one
    // case it logs only there, "one or more endpoints is missing a zone hint"; proxier.go at 4 says when the proxier
    // learns its node's zone, which the lab checks ([`super::proxy_zone`]).
    cmd.arg(format!("--config={}", config.display())).args(["--v=2", "--vmodule=topology=7,proxier=4"]);
    Supervised::spawn("kube-proxy", cmd, &kube_proxy_log(dir, node), lab)
}
