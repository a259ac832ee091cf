//! CNI plugins, called the way kubelet's container runtime calls them (CNI spec 1.0, "Execution protocol"): the
//! plugin binary runs in the node's network namespace with `CNI_COMMAND` (`ADD`/`DEL`), `CNI_CONTAINERID`,
//! `CNI_NETNS` (the pod's namespace path), `CNI_IFNAME`, `CNI_ARGS` (`K8S_POD_NAMESPACE=…;K8S_POD_NAME=…;
//! K8S_POD_INFRA_CONTAINER_ID=…;K8S_POD_UID=…`, as the CRI runtimes pass them) and `CNI_PATH`, the network
//! configuration on stdin, a result (or a `{code, msg}` error) on stdout.
//!
//! The lab's own pod wiring (a routed veth, see [`super::pod`]) is the first plugin of the chain; a node's
//! [`Plugin`] is chained after it and gets its result as `prevResult`, as Cilium's `generic-veth` chaining mode
//! expects. Calls are bounded: a plugin that does not answer in time is killed and the call fails.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::lab::netns::netns_path;

/// The CNI spec version the lab speaks.
const CNI_VERSION: &str = "1.0.0";
/// How long an ADD may take: kubelet's `--runtime-request-timeout` (2 min) bounds `RunPodSandbox`. Cilium's first ADD
/// on a node waits for its endpoint datapath to compile: 20–36 s per object file measured on a loaded machine.
const ADD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a DEL may take.
const DEL_TIMEOUT: Duration = Duration::from_secs(10);

/// A CNI plugin chained after the lab's wiring on one node.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// The plugin binary.
    pub binary: PathBuf,
    /// The network configuration (without `cniVersion` and `prevResult`, which each call adds).
    pub config: Value,
    /// The node's network namespace, where the plugin runs.
    pub node_netns: String,
    /// Extra environment the plugin needs (e.g. where its daemon's socket is).
    pub env: Vec<(String, String)>,
}

/// The pod a call is about.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The sandbox's id (hex, like a CRI runtime's: the pod UID without dashes).
    pub container_id: String,
    /// The pod's network namespace (by name).
    pub netns: String,
    /// The lab's end of the pod's veth, in the node's namespace.
    pub host_veth: String,
    /// The pod's IPv4 address.
    pub ip: Ipv4Addr,
    /// The pod's IPv6 address.
    pub ip6: Ipv6Addr,
    /// The pod's gateways.
    pub gateways: (Ipv4Addr, Ipv6Addr),
}

impl Attachment {
    /// What the lab's own wiring did, as a CNI result (`prevResult` for the next plugin).
    pub fn wiring_result(&self) -> Value {
        json!({
            "cniVersion": CNI_VERSION,
            "interfaces": [
                {"name": self.host_veth},
                {"name": "eth0", "sandbox": netns_path(&self.netns)},
            ],
            "ips": [
                {"address": format!("{}/32", self.ip), "gateway": self.gateways.0.to_string(), "interface": 1},
                {"address": format!("{}/128", self.ip6), "gateway": self.gateways.1.to_string(), "interface": 1},
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        })
    }
}

impl Plugin {
    /// `ADD`: attaches the pod; returns the plugin's result.
    ///
    /// # Errors
    /// The plugin failed (its `msg` and `details`), did not answer within [`ADD_TIMEOUT`], or could not be run.
    pub async fn add(&self, pod: &Attachment) -> anyhow::Result<Value> {
        self.call("ADD", pod, ADD_TIMEOUT).await
    }

    /// `DEL`: detaches the pod (idempotent, as the spec requires of plugins).
    ///
    /// # Errors
    /// As [`Self::add`], within 10 s.
    pub async fn del(&self, pod: &Attachment) -> anyhow::Result<()> {
        self.call("DEL", pod, DEL_TIMEOUT).await.map(drop)
    }

    async fn call(&self, command: &str, pod: &Attachment, timeout: Duration) -> anyhow::Result<Value> {
        let mut config = self.config.clone();
        if let Value::Object(map) = &mut config {
            map.insert("cniVersion".into(), CNI_VERSION.into());
            map.insert("prevResult".into(), pod.wiring_result());
        }
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.container_id, pod.uid
        );
        let plugin_dir = self.binary.parent().map(|p| p.display().to_string()).unwrap_or_default();
        let mut cmd = tokio::process::Command::new("nsenter");
        cmd.arg(format!("--net={}", netns_path(&self.node_netns).display()))
            .arg("--")
            .arg(&self.binary)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.container_id)
            .env("CNI_NETNS", netns_path(&pod.netns))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", args)
            .env("CNI_PATH", plugin_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("CNI {command} {} for pod {}/{}", self.binary.display(), pod.namespace, pod.name);
        let mut child = cmd.spawn().with_context(|| format!("{what}: cannot run nsenter"))?;
        let mut stdin = child.stdin.take().context("plugin stdin")?;
        let input = serde_json::to_vec(&config)?;
        let output = tokio::time::timeout(timeout, async move {
            stdin.write_all(&input).await?;
            drop(stdin);
            child.wait_with_output().await
        })
        .await
        .with_context(|| format!("{what}: no answer within {timeout:?}"))?
        .with_context(|| format!("{what}: failed to run"))?;
        let stdout: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if !output.status.success() {
            let msg = stdout.get("msg").and_then(Value::as_str).unwrap_or("");
            let details = stdout.get("details").and_then(Value::as_str).unwrap_or("");
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "{what}: {} (code {}){}{}",
                if msg.is_empty() { "failed" } else { msg },
                stdout.get("code").map_or_else(|| "?".into(), Value::to_string),
                if details.is_empty() { String::new() } else { format!(": {details}") },
                if stderr.trim().is_empty() { String::new() } else { format!("; stderr: {}", stderr.trim()) }
            );
        }
        Ok(stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiring_result_names_both_ends_and_both_families() {
        let pod = Attachment {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            container_id: "0fe78b5cad0e4c1b9d2e3f4a5b6c7d8e".into(),
            netns: "svcb-x-n1-p3".into(),
            host_veth: "vp3".into(),
            ip: Ipv4Addr::new(10, 244, 1, 5),
            ip6: "fd00:10:244:1::5".parse().unwrap(),
            gateways: (Ipv4Addr::new(169, 254, 1, 1), "fe80::1".parse().unwrap()),
        };
        let result = pod.wiring_result();
        assert_eq!(result["interfaces"][0]["name"], "vp3");
        assert_eq!(result["interfaces"][1]["sandbox"], "/run/netns/svcb-x-n1-p3");
        assert_eq!(result["ips"][0]["address"], "10.244.1.5/32");
        assert_eq!(result["ips"][1]["address"], "fd00:10:244:1::5/128");
        assert_eq!(result["ips"][1]["gateway"], "fe80::1");
    }
}
