//! Cilium as the lab's Service data plane (`--proxy-mode cilium`): no kube-proxy; one `cilium-agent` per node with
//! kube-proxy replacement (socket load balancing for pods, BPF NodePort on the node's `eth0`), and `cilium-cni`
//! chained after the lab's own pod wiring (`generic-veth` chaining, see [`super::node::cni`]).
//!
//! Routing is native: the lab's network already routes every node's podCIDRs through the control plane (as a cloud
//! VPC routes them), so no tunnel is needed; IPv4 and IPv6 both, like the kube-proxy modes. No masquerading: pod
//! traffic never leaves the lab.
//!
//! Containment (nothing Cilium attaches may reach the machine outside the lab):
//! - the agent runs in its node's network namespace, so its tc programs, routes, iptables rules and `cilium_*`
//!   interfaces are the node's and go with it;
//! - in a mount namespace of its own ([`super::podexec`]): a private BPF filesystem at `/sys/fs/bpf` (pinned maps
//!   and links vanish with the agent), private `/run` (its state) and `/etc`, `/proc/sys/kernel` read-only (Cilium
//!   would otherwise set `kernel.unprivileged_bpf_disabled` and `kernel.timer_migration` machine-wide);
//! - its cgroup root is the node's cgroup subtree ([`super::cgroup`]), bound at `/run/cilium/cgroupv2`: the socket
//!   load balancer's hooks see the node's pods, never a process of the host. Pods join that cgroup before they exec.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use kube::Client;
use serde_json::json;

use super::{
    addons,
    install::Installation,
    node::cni,
    process::Supervised,
    versions::{self, Release},
};

/// The Cilium release the lab builds and runs.
pub const RELEASE: Release = versions::CILIUM;

/// Where a node's agent keeps what the host side must reach (its API socket, the CNI plugin's log).
pub fn node_dir(state_dir: &Path, node: &str) -> PathBuf {
    state_dir.join("cilium").join(node)
}

/// A node's agent API socket.
pub fn socket(state_dir: &Path, node: &str) -> PathBuf {
    node_dir(state_dir, node).join("cilium.sock")
}

/// `GET /v1/<path>` on an agent's API socket (blocking, bounded: 5 s per read or write, 16 MiB); the body.
///
/// # Errors
/// No agent answers on the socket, or it timed out.
pub fn agent_get(socket: &Path, path: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    // HTTP/1.0: the agent closes after its answer, never chunked.
    write!(stream, "GET /v1/{path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.take(16 << 20).read_to_end(&mut reply)?;
    let text = String::from_utf8_lossy(&reply);
    Ok(text.split_once("\r\n\r\n").map_or(&*text, |(_, body)| body).to_owned())
}

/// Applies Cilium's CustomResourceDefinitions (the operator would; the lab has no operator) and waits until the API
/// server serves them.
///
/// # Errors
/// A file does not parse or the API server refuses a definition.
pub async fn apply_crds(client: &Client, installation: &Installation) -> anyhow::Result<()> {
    let dir = installation.cilium_dir().join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("Cilium CRDs in {}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let crd: serde_json::Value =
            serde_saphyr::from_str(&text).with_context(|| format!("Cilium CRD {}", path.display()))?;
        names.push(crd["metadata"]["name"].as_str().unwrap_or_default().to_owned());
        addons::apply(client, &crd, "svcbench-lab").await?;
    }
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let established = crds
                .get(&name)
                .await
                .ok()
                .and_then(|c| c.status?.conditions)
                .is_some_and(|conds| conds.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Cilium's CRD {name} was not established within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// One node's Cilium: where its pieces are.
pub struct NodeCilium<'a> {
    /// Node name (`K8S_NODE_NAME`).
    pub node: &'a str,
    /// The node's network namespace.
    pub netns: &'a str,
    /// The node's cgroup (the agent's cgroup root).
    pub cgroup: &'a Path,
    /// A kubeconfig for the agent (API server at its lab address).
    pub kubeconfig: &'a Path,
    /// The lab's state directory.
    pub state_dir: &'a Path,
    /// The svcbench executable (`lab pod-exec`).
    pub svcbench: &'a Path,
    /// The lab's id.
    pub lab_id: &'a str,
}

impl NodeCilium<'_> {
    /// The agent's API socket.
    pub fn socket(&self) -> PathBuf {
        socket(self.state_dir, self.node)
    }

    /// Starts the node's agent.
    ///
    /// # Errors
    /// Its directories cannot be made or the process not started.
    pub fn start_agent(&self, installation: &Installation) -> anyhow::Result<Supervised> {
        let dir = node_dir(self.state_dir, self.node);
        for sub in ["etc-upper", "etc-work"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let cilium = installation.cilium_dir();
        let mut cmd = Command::new(self.svcbench);
        cmd.args(["lab", "pod-exec", "--netns", self.netns, "--hostname", self.node, "--pod-dir"])
            .arg(&dir)
            .arg("--bpffs")
            .arg("/sys/fs/bpf")
            .arg("--read-only")
            .arg("/proc/sys/kernel")
            .arg("--bind")
            .arg(format!("{}:/run/cilium/cgroupv2", self.cgroup.display()))
            .arg("--")
            .arg(cilium.join("cilium-agent"))
            .args(agent_flags(self.kubeconfig, &self.socket(), &cilium.join("lib")));
        // clang and llc for the datapath: Debian's LLVM 19 first.
        cmd.env_clear()
            .env("PATH", "/usr/lib/llvm-19/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("K8S_NODE_NAME", self.node);
        Supervised::spawn(&format!("cilium-agent {}", self.node), cmd, &dir.join("cilium-agent.log"), self.lab_id)
    }

    /// The CNI plugin pods on this node are attached with.
    pub fn cni(&self, installation: &Installation) -> cni::Plugin {
        cni::Plugin {
            binary: installation.cilium_dir().join("cilium-cni"),
            config: json!({
                "name": "generic-veth",
                "type": "cilium-cni",
                "chaining-mode": "generic-veth",
                "log-file": node_dir(self.state_dir, self.node).join("cilium-cni.log"),
            }),
            node_netns: self.netns.to_owned(),
            env: vec![("CILIUM_SOCK".into(), self.socket().display().to_string())],
        }
    }

    /// Waits until the agent's API answers that it is healthy (it compiles its datapath first: tens of seconds on a
    /// busy machine).
    ///
    /// # Errors
    /// The agent exited (with its log's tail) or was not healthy within 5 minutes.
    pub async fn wait_ready(&self, agent: &mut Supervised) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(exit) = agent.exited() {
                bail!("cilium-agent on {} exited ({exit}):\n{}", self.node, agent.log_tail(30));
            }
            let last = match healthz(&self.socket()).await {
                Ok(status) if is_healthy(&status) => return Ok(()),
                Ok(status) => status.to_string(),
                Err(e) => format!("{e:#}"),
            };
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "cilium-agent on {} not healthy within 300 s: {}\n{}",
                    self.node,
                    last.chars().take(600).collect::<String>(),
                    agent.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The addresses Cilium gave its router device (`cilium_host`) in the node's namespace: its IPAM takes them from the
/// node's podCIDR, unaware of the lab's pod addresses, so the lab must never hand them to a pod (a pod with the router's
/// address is unreachable: the node delivers its traffic locally).
///
/// # Errors
/// `ip` fails or its output does not parse.
pub fn router_addresses(netns: &str) -> anyhow::Result<Vec<std::net::IpAddr>> {
    let output = Command::new("ip").args(["-n", netns, "-j", "addr", "show", "dev", "cilium_host"]).output()?;
    if !output.status.success() {
        bail!("ip addr show cilium_host in {netns}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let links: serde_json::Value = serde_json::from_slice(&output.stdout).context("ip -j addr")?;
    Ok(links
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .collect())
}

/// [`router_addresses`] once there is one of each family (the agent configures `cilium_host` as it starts), within
/// 30 s.
///
/// # Errors
/// Not both families within 30 s.
pub async fn wait_router_addresses(netns: &str) -> anyhow::Result<Vec<std::net::IpAddr>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = router_addresses(netns).unwrap_or_default();
        if found.iter().any(std::net::IpAddr::is_ipv4) && found.iter().any(std::net::IpAddr::is_ipv6) {
            return Ok(found);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("cilium_host in {netns} has no router address of each family within 30 s: {found:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agent's flags (all in one place: they are the lab's Cilium configuration, as a Helm values file would be).
fn agent_flags(kubeconfig: &Path, socket: &Path, lib_dir: &Path) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--kube-proxy-replacement=true",
        "--routing-mode=native",
        "--ipv4-native-routing-cidr=10.244.0.0/16",
        "--ipv6-native-routing-cidr=fd00:10:244::/56",
        "--enable-ipv4=true",
        "--enable-ipv6=true",
        "--enable-ipv4-masquerade=false",
        "--enable-ipv6-masquerade=false",
        "--ipam=kubernetes",
        "--cni-chaining-mode=generic-veth",
        "--cni-exclusive=false",
        "--devices=eth0",
        "--direct-routing-device=eth0",
        "--enable-identity-mark=false",
        "--enable-l7-proxy=false",
        "--enable-health-checking=false",
        "--enable-endpoint-health-checking=false",
        "--enable-hubble=false",
        "--bpf-root=/sys/fs/bpf",
        "--cgroup-root=/run/cilium/cgroupv2",
        "--state-dir=/var/run/cilium",
    ]
    .map(str::to_owned)
    .to_vec();
    flags.push(format!("--k8s-kubeconfig-path={}", kubeconfig.display()));
    flags.push(format!("--socket-path={}", socket.display()));
    flags.push(format!("--lib-dir={}", lib_dir.display()));
    flags
}

/// Whether an agent's status says it is up: the agent itself `Ok` and no subsystem (Kubernetes, kube-proxy
/// replacement, the controllers, …) in `Failure`.
fn is_healthy(status: &serde_json::Value) -> bool {
    fn any_failure(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => {
                map.get("state").is_some_and(|s| s == "Failure") || map.values().any(any_failure)
            }
            serde_json::Value::Array(items) => items.iter().any(any_failure),
            _ => false,
        }
    }
    status["cilium"]["state"] == "Ok" && !any_failure(status)
}

/// `GET /v1/healthz` on the agent's socket; the status it answers.
async fn healthz(socket: &Path) -> anyhow::Result<serde_json::Value> {
    let socket = socket.to_owned();
    let body = tokio::task::spawn_blocking(move || agent_get(&socket, "healthz")).await??;
    serde_json::from_str(&body)
        .with_context(|| format!("healthz answered {}", body.chars().take(200).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::is_healthy;

    #[test]
    fn healthy_needs_the_agent_ok_and_no_subsystem_failing() {
        assert!(is_healthy(&json!({"cilium": {"state": "Ok"}, "kubernetes": {"state": "Ok"}})));
        assert!(!is_healthy(&json!({"cilium": {"state": "Warning"}})));
        assert!(!is_healthy(&json!({"cilium": {"state": "Ok"}, "controllers": [{"status": {"state": "Failure"}}]})));
        assert!(!is_healthy(&json!({"kubernetes": {"state": "Ok"}})));
    }
}
