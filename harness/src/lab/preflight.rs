//! Whether this machine can run a lab: root, IPv6, the data plane's tools, Cilium's compiler, an installation.

use std::path::Path;

use anyhow::bail;

use super::{DnsMode, LabConfig, ProxyMode, cgroup, install, versions::LabVersions};

/// Refuses a lab this machine cannot run, saying what to do about it.
pub(super) fn preflight(config: &LabConfig) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root (network namespaces, mounts, netfilter): run it as root");
    }
    // The lab is dual-stack; without IPv6 in the kernel (ipv6.disable=1) kube-proxy would fall back to IPv4 alone.
    if !Path::new("/proc/net/if_inet6").exists() {
        bail!("the lab is dual-stack and this kernel has IPv6 disabled (/proc/net/if_inet6 is missing)");
    }
    // node-cache's rules are iptables rules whatever kube-proxy's mode.
    let cache_tool = (config.dns == DnsMode::Nodelocal).then_some("iptables");
    if config.proxy_mode == ProxyMode::Cilium {
        if config.dns == DnsMode::Nodelocal {
            bail!("NodeLocal DNSCache is not set up with Cilium in the lab (its iptables rules assume kube-proxy)");
        }
        // The agent compiles its datapath at run time with clang/LLVM ≥ 18.1.
        if !Path::new(CILIUM_CLANG).is_file() || !Path::new(CILIUM_CLANG).with_file_name("llc").is_file() {
            bail!(
                "Cilium compiles its datapath with clang and llc 19 (/usr/lib/llvm-19/bin): `apt-get install \
                 --no-install-recommends clang-19 llvm-19`"
            );
        }
        cgroup::unified_mount()?;
    }
    for tool in std::iter::once("ip").chain(config.proxy_mode.tools().iter().copied()).chain(cache_tool) {
        let found =
            std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()));
        if !found {
            bail!(
                "`{tool}` not found: install iproute2, nftables, iptables and conntrack (`apt-get install nftables iptables iproute2 conntrack`)"
            );
        }
    }
    Ok(())
}

/// Why the lab cannot run here, if it cannot: not root, or not installed.
pub fn unavailable() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the lab needs root");
    }
    install::Installation::find(&LabVersions::default())
        .is_none()
        .then_some("the lab is not installed (svcbench lab install)")
}

/// Why a lab of `mode` cannot run here, if it cannot: [`unavailable`], or Cilium not built, or no clang-19 for it.
pub fn unavailable_for(mode: ProxyMode) -> Option<&'static str> {
    if let Some(why) = unavailable() {
        return Some(why);
    }
    if mode != ProxyMode::Cilium {
        return None;
    }
    if !install::Installation::find(&LabVersions::default()).is_some_and(|i| i.has_cilium()) {
        return Some("Cilium is not built (svcbench lab install)");
    }
    (!Path::new(CILIUM_CLANG).is_file()).then_some("Cilium needs clang-19 (apt-get install clang-19 llvm-19)")
}

/// The clang Cilium's agent compiles its datapath with (and `llc` beside it).
const CILIUM_CLANG: &str = "/usr/lib/llvm-19/bin/clang";
