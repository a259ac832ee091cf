//! What a lab is asked to be: its Service data plane, its cluster DNS, its releases and size, and the names and
//! descriptions reports give it.

use std::path::PathBuf;

use super::versions::{self, LabVersions};

/// The Service data plane: kube-proxy in one of its modes, or Cilium replacing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum ProxyMode {
    /// kube-proxy nftables mode (GA in 1.33).
    Nftables,
    /// kube-proxy iptables mode.
    Iptables,
    /// Cilium 1.20.2's eBPF kube-proxy replacement (no kube-proxy).
    Cilium,
}

impl ProxyMode {
    /// The mode's name in kube-proxy's configuration, or `cilium`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nftables => "nftables",
            Self::Iptables => "iptables",
            Self::Cilium => "cilium",
        }
    }

    /// Whether kube-proxy runs (every mode but Cilium's replacement).
    pub fn runs_kube_proxy(self) -> bool {
        self != Self::Cilium
    }

    /// The tools the data plane calls (dual-stack: iptables mode needs ip6tables for the IPv6 rules, or kube-proxy
    /// quietly serves IPv4 only; Cilium installs iptables rules of both families beside its BPF programs).
    pub(super) fn tools(self) -> &'static [&'static str] {
        match self {
            Self::Nftables => &["nft"],
            Self::Iptables | Self::Cilium => &["iptables", "ip6tables", "nsenter"],
        }
    }
}

/// What answers the pods' DNS queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
pub enum DnsMode {
    /// CoreDNS behind the kube-dns Service (kubelet's clusterDNS 10.96.0.10), kubeadm's Corefile.
    #[default]
    Coredns,
    /// NodeLocal DNSCache on every node (clusterDNS 169.254.20.10) in front of the same CoreDNS.
    Nodelocal,
}

/// How kube-proxy tells traffic from the node's pods apart (`detectLocalMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum LocalTraffic {
    /// From a source address in the cluster CIDRs (kube-proxy's default).
    #[default]
    ClusterCidr,
    /// From an interface whose name starts with the pods' veth prefix.
    InterfaceNamePrefix,
}

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// kube-proxy mode.
    pub proxy_mode: ProxyMode,
    /// Cluster DNS.
    pub dns: DnsMode,
    /// Number of nodes.
    pub nodes: u8,
    /// The svcbench executable pods run (`lab pod-exec`, `lab netexec`, `agent`); `None`: this executable.
    pub svcbench: Option<PathBuf>,
    /// The components' releases.
    pub versions: LabVersions,
    /// kube-proxy's local-traffic detection.
    pub local_traffic: LocalTraffic,
}

impl LabConfig {
    /// `nodes` nodes in `mode`, pods run by this executable.
    pub fn new(proxy_mode: ProxyMode, nodes: u8) -> Self {
        Self {
            proxy_mode,
            dns: DnsMode::Coredns,
            nodes,
            svcbench: None,
            versions: LabVersions::default(),
            local_traffic: LocalTraffic::ClusterCidr,
        }
    }

    /// Running the components at `versions`.
    pub fn with_versions(mut self, versions: LabVersions) -> Self {
        self.versions = versions;
        self
    }

    /// With cluster DNS `dns`.
    pub fn with_dns(mut self, dns: DnsMode) -> Self {
        self.dns = dns;
        self
    }

    /// The implementation under test, for reports (versions, proxy mode, DNS, nodes).
    pub fn description(&self) -> String {
        let v = &self.versions;
        let dns = match self.dns {
            DnsMode::Coredns => format!("CoreDNS {} (kubeadm Corefile)", v.coredns),
            DnsMode::Nodelocal => format!(
                "NodeLocal DNSCache (node-local-dns add-on Corefile on CoreDNS {0}, per node) in front of CoreDNS {0}",
                v.coredns
            ),
        };
        let proxy = if self.proxy_mode.runs_kube_proxy() {
            format!(
                "kube-proxy {} {}{}",
                v.kube_proxy,
                self.proxy_mode.as_str(),
                match self.local_traffic {
                    LocalTraffic::ClusterCidr => "",
                    LocalTraffic::InterfaceNamePrefix => " (detectLocalMode InterfaceNamePrefix)",
                }
            )
        } else {
            format!(
                "Cilium {} kube-proxy replacement (socket LB, BPF NodePort, native routing, generic-veth chaining; no \
                 kube-proxy)",
                versions::CILIUM
            )
        };
        format!(
            "svcbench lab: Kubernetes {} (kube-apiserver, kube-controller-manager, kube-scheduler), {proxy}, {dns}, \
             etcd {}, {} nodes",
            v.control_plane,
            versions::ETCD,
            self.nodes
        )
    }

    /// The expected-failure profiles (files in `scenarios/profiles/`) that may describe this lab, most specific
    /// first: the kube-proxy release's own when it is not the pinned one (`kube-proxy-1.33.5_coredns-1.12.1.yaml`),
    /// then the cluster DNS's, which every kube-proxy shares (`coredns-1.12.1.yaml`,
    /// `nodelocal-dnscache-coredns-1.12.1.yaml`).
    pub fn profile_files(&self) -> Vec<String> {
        let coredns = self.versions.coredns.bare();
        let dns = match self.dns {
            DnsMode::Coredns => format!("coredns-{coredns}.yaml"),
            DnsMode::Nodelocal => format!("nodelocal-dnscache-coredns-{coredns}.yaml"),
        };
        if !self.proxy_mode.runs_kube_proxy() {
            vec![format!("cilium-{}_{dns}", versions::CILIUM.bare()), dns]
        } else if self.versions.kube_proxy == versions::KUBERNETES {
            vec![dns]
        } else {
            vec![format!("kube-proxy-{}_{dns}", self.versions.kube_proxy.bare()), dns]
        }
    }

    /// The implementation's short name in results and trial names: `lab-nftables`, `lab-iptables-nodelocal`,
    /// `lab-nftables@1.33.5`, `lab-iptables@coredns-1.15.0`.
    pub fn name(&self) -> String {
        let suffix = self.versions.name_suffix();
        match self.dns {
            DnsMode::Coredns => format!("lab-{}{suffix}", self.proxy_mode.as_str()),
            DnsMode::Nodelocal => format!("lab-{}-nodelocal{suffix}", self.proxy_mode.as_str()),
        }
    }
}
