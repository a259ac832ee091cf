//! The data plane's state at one moment, for reading why a step failed: every node's Service table as its proxy
//! holds it (Cilium's agent API: services and endpoints; kube-proxy's nftables ruleset or iptables rules), written
//! under the lab's state directory (`snapshots/<label>/`) where [`super::Lab::copy_logs`] finds it.
//!
//! A step's verdict says what a client saw; this says what the node had programmed when it saw it, which is the
//! difference between "the proxy never learned of the backend" and "it learned a wrong port".

use std::path::{Path, PathBuf};

use super::{ProxyMode, cilium, control_plane};

/// Where snapshots go inside a lab's state directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Takes snapshots of one lab's nodes; cheap to clone and `Send`, so a snapshot can be taken on a thread of its own
/// while scenarios run on.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    state_dir: PathBuf,
    proxy_mode: ProxyMode,
    /// Node name and its network namespace, node 1 first.
    nodes: Vec<(String, String)>,
}

impl Snapshotter {
    /// A snapshotter for a lab's nodes.
    pub fn new(state_dir: &Path, proxy_mode: ProxyMode, nodes: Vec<(String, String)>) -> Self {
        Self { state_dir: state_dir.to_owned(), proxy_mode, nodes }
    }

    /// Writes every node's state to `snapshots/<label>/<node>-<what>` (a name safe as a file name is made of
    /// `label`); returns the directory. What cannot be read is written as the reason, so the file says why it is
    /// empty.
    ///
    /// # Errors
    /// The directory cannot be made.
    pub fn take(&self, label: &str) -> std::io::Result<PathBuf> {
        let label: String =
            label.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.@".contains(c) { c } else { '_' }).collect();
        let dir = self.state_dir.join(SNAPSHOTS_DIR).join(label);
        // Never recreate the state directory of a lab that is gone.
        if !self.state_dir.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the lab's state directory is gone"));
        }
        std::fs::create_dir_all(&dir)?;
        for (node, netns) in &self.nodes {
            for (what, text) in self.node_state(node, netns) {
                std::fs::write(dir.join(format!("{node}-{what}")), text)?;
            }
        }
        Ok(dir)
    }

    /// One node's state: (file suffix, contents).
    fn node_state(&self, node: &str, netns: &str) -> Vec<(&'static str, String)> {
        match self.proxy_mode {
            ProxyMode::Cilium => {
                let socket = cilium::socket(&self.state_dir, node);
                ["service", "endpoint"]
                    .into_iter()
                    .map(|path| {
                        let file = if path == "service" { "cilium-services.json" } else { "cilium-endpoints.json" };
                        let body = cilium::agent_get(&socket, path);
                        (file, body.unwrap_or_else(|e| format!("GET /v1/{path}: {e}\n")))
                    })
                    .collect()
            }
            ProxyMode::Nftables => vec![("nft-ruleset.txt", output_in(netns, &["nft", "list", "ruleset"]))],
            ProxyMode::Iptables => vec![
                ("iptables.txt", output_in(netns, &["iptables-save"])),
                ("ip6tables.txt", output_in(netns, &["ip6tables-save"])),
            ],
        }
    }
}

/// A command's output inside a node's network namespace, or why there is none.
fn output_in(netns: &str, command: &[&str]) -> String {
    let (program, args) = command.split_first().expect("a command");
    match control_plane::in_ns(netns, Path::new(program)).args(args).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => format!("{}: {}\n{}", command.join(" "), out.status, String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("{}: {e}\n", command.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_says_why_a_node_could_not_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let snapshotter =
            Snapshotter::new(dir.path(), ProxyMode::Cilium, vec![("lab-node-1".into(), "svcb-none-n1".into())]);
        let written = snapshotter.take("named-target-port-step6 (try 1)").unwrap();
        assert_eq!(written, dir.path().join("snapshots/named-target-port-step6__try_1_"));
        // No agent listens on the socket: the files say so instead of being empty.
        let services = std::fs::read_to_string(written.join("lab-node-1-cilium-services.json")).unwrap();
        assert!(services.starts_with("GET /v1/service: "), "{services}");
        let endpoints = std::fs::read_to_string(written.join("lab-node-1-cilium-endpoints.json")).unwrap();
        assert!(endpoints.starts_with("GET /v1/endpoint: "), "{endpoints}");
    }
}
