//! The node agent: svcbench's kubelet. One per lab node, with the node's own identity (`system:node:<name>`).
//!
//! It registers its Node (both InternalIPs, IPv4 first, as kubelet with `--node-ip=<v4>,<v6>`; capacity; Ready),
//! renews its Lease and heartbeats its status every 10 s, waits for the two podCIDRs (IPv4, IPv6) the
//! controller-manager allocates, then follows the pods bound to it (a list served from the
//! watch cache every 100 ms): each new pod gets a sandbox and its containers ([`pod`]); a pod with a deletion
//! timestamp is terminated gracefully and then deleted with grace 0 and a UID precondition, as kubelet does.

pub mod cni;
pub mod images;
pub mod pod;
pub mod probe;

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use k8s_openapi::{
    api::{
        coordination::v1::{Lease, LeaseSpec},
        core::v1::{Node, Pod},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference},
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::install::Installation;

/// How often the node heartbeats (status and Lease), as kubelet's defaults.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often it lists its pods.
const POD_POLL: Duration = Duration::from_millis(100);

/// What every node of one lab shares.
#[derive(Debug)]
pub struct NodeContext {
    /// Lab id (names of namespaces and processes).
    pub lab_id: String,
    /// Where pods' directories and logs go.
    pub state_dir: PathBuf,
    /// The lab's binaries.
    pub installation: Installation,
    /// The svcbench executable (pod runtime helper, netexec, agent).
    pub svcbench: PathBuf,
    /// Cluster DNS for `dnsPolicy: ClusterFirst` (kubelet's `clusterDNS`).
    pub cluster_dns: Ipv4Addr,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The `nameserver` of the node's own resolv.conf (`dnsPolicy: Default`): the lab's upstream.
    pub upstream_dns: Ipv4Addr,
    /// The API server as pods see it (`KUBERNETES_SERVICE_HOST`).
    pub api_service: (Ipv4Addr, u16),
}

/// One node's identity and place in the lab network.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its IPv4 address on the lab network (the primary node IP).
    pub ip: Ipv4Addr,
    /// Its IPv6 address on the lab network (the secondary node IP).
    pub ip6: Ipv6Addr,
    /// Zone label.
    pub zone: String,
    /// The node's cgroup, which its pods join (a data plane with cgroup hooks is attached there).
    pub cgroup: Option<PathBuf>,
    /// The CNI plugin chained after the lab's pod wiring, if the data plane has one.
    pub cni: Option<cni::Plugin>,
}

/// A running node agent; stopping it terminates every pod it runs.
pub struct NodeAgent {
    identity: NodeIdentity,
    runtime: Arc<pod::Runtime>,
    task: tokio::task::JoinHandle<()>,
    pods: Arc<Mutex<HashMap<String, pod::PodHandle>>>,
}

impl NodeAgent {
    /// Registers the node and starts following its pods; returns once the node has its podCIDRs (spec.podCIDRs:
    /// IPv4, then IPv6).
    ///
    /// # Errors
    /// Registration failed or no podCIDRs came within 60 s.
    pub async fn start(
        ctx: Arc<NodeContext>,
        identity: NodeIdentity,
        client: Client,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let nodes: Api<Node> = Api::all(client.clone());
        register(&nodes, &identity).await?;
        let cidrs = wait_for_pod_cidrs(&nodes, &identity.name).await?;
        let pods = Arc::new(Mutex::new(HashMap::new()));
        let runtime = Arc::new(pod::Runtime::new(ctx, identity.clone(), client.clone(), &cidrs)?);
        let task = tokio::spawn(run(runtime.clone(), client, identity.clone(), pods.clone()));
        Ok((Self { identity, runtime, task, pods }, cidrs))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Keeps the node's own address `ip` out of pod IP allocation (see [`pod::Runtime::reserve`]).
    pub fn reserve(&self, ip: std::net::IpAddr) {
        self.runtime.reserve(ip);
    }

    /// Stops following pods and kills every container at once (the lab is going away).
    pub async fn stop(mut self) {
        self.runtime.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.abort();
        let _ = (&mut self.task).await;
        let handles: Vec<_> = self.pods.lock().expect("pods lock").drain().map(|(_, h)| h).collect();
        let mut killing = tokio::task::JoinSet::new();
        for handle in handles {
            killing.spawn(handle.kill());
        }
        while killing.join_next().await.is_some() {}
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        // Without `stop` (a failed start, Ctrl-C): abort; each pod task kills its containers as it is dropped.
        self.runtime.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.abort();
        for (_, handle) in self.pods.lock().expect("pods lock").drain() {
            handle.abort();
        }
    }
}

async fn register(nodes: &Api<Node>, id: &NodeIdentity) -> anyhow::Result<()> {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": id.name,
            "labels": {
                "kubernetes.io/hostname": id.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "topology.kubernetes.io/zone": id.zone,
            },
        },
        "status": status_body(id)["status"],
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).with_context(|| format!("cannot register node {}", id.name)),
    }
    heartbeat(nodes, id).await
}

fn status_body(id: &NodeIdentity) -> serde_json::Value {
    let now = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let resources = json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    json!({"status": {
        // kubelet's order with two node IPs (pkg/kubelet/nodestatus NodeAddress): primary, secondary, hostname.
        "addresses": [
            {"type": "InternalIP", "address": id.ip.to_string()},
            {"type": "InternalIP", "address": id.ip6.to_string()},
            {"type": "Hostname", "address": id.name},
        ],
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "svcbench lab",
            "containerRuntimeVersion": "svcbench-lab://0.1", "kubeletVersion": super::versions::KUBERNETES.to_string(),
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    }})
}

async fn heartbeat(nodes: &Api<Node>, id: &NodeIdentity) -> anyhow::Result<()> {
    nodes
        .patch_status(&id.name, &PatchParams::default(), &Patch::Merge(status_body(id)))
        .await
        .with_context(|| format!("node {} status", id.name))?;
    Ok(())
}

async fn renew_lease(client: &Client, id: &NodeIdentity, uid: Option<String>) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            namespace: Some("kube-node-lease".into()),
            owner_references: uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: id.name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(id.name.clone()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    leases.patch(&id.name, &PatchParams::apply("svcbench-node").force(), &Patch::Apply(&lease)).await?;
    Ok(())
}

/// The node's podCIDRs once kube-controller-manager has allocated both families (it sets them in one update).
async fn wait_for_pod_cidrs(nodes: &Api<Node>, name: &str) -> anyhow::Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let cidrs = nodes.get(name).await?.spec.and_then(|s| s.pod_cidrs).unwrap_or_default();
        if cidrs.len() == 2 {
            return Ok(cidrs);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "node {name} got no IPv4 and IPv6 podCIDRs from kube-controller-manager within 60 s: {cidrs:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run(
    runtime: Arc<pod::Runtime>,
    client: Client,
    id: NodeIdentity,
    pods: Arc<Mutex<HashMap<String, pod::PodHandle>>>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let all_pods: Api<Pod> = Api::all(client.clone());
    let mut next_heartbeat = tokio::time::Instant::now();
    let list = ListParams::default().fields(&format!("spec.nodeName={}", id.name));
    loop {
        if tokio::time::Instant::now() >= next_heartbeat {
            next_heartbeat += HEARTBEAT;
            let uid = nodes.get(&id.name).await.ok().and_then(|n| n.metadata.uid);
            if let Err(e) = heartbeat(&nodes, &id).await {
                tracing::warn!(node = %id.name, error = %e, "heartbeat failed");
            }
            if let Err(e) = renew_lease(&client, &id, uid).await {
                tracing::warn!(node = %id.name, error = %e, "lease renewal failed");
            }
        }
        match all_pods.list(&list).await {
            Ok(list) => sync_pods(&runtime, &pods, list.items),
            Err(e) => tracing::debug!(node = %id.name, error = %e, "pod list failed"),
        }
        tokio::time::sleep(POD_POLL).await;
    }
}

/// Starts pods that are new, hands every known pod its newest object, forgets pods that are gone.
fn sync_pods(runtime: &Arc<pod::Runtime>, pods: &Mutex<HashMap<String, pod::PodHandle>>, items: Vec<Pod>) {
    let mut pods = pods.lock().expect("pods lock");
    let mut seen = std::collections::HashSet::new();
    for item in items {
        let Some(uid) = item.metadata.uid.clone() else { continue };
        seen.insert(uid.clone());
        match pods.get(&uid) {
            Some(handle) => handle.update(item),
            None => {
                if item
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|p| p == "Succeeded" || p == "Failed")
                {
                    continue;
                }
                pods.insert(uid, pod::PodHandle::start(runtime.clone(), item));
            }
        }
    }
    // Gone from the API (deleted with grace 0 by us or by someone else): kill what is left.
    let gone: Vec<String> = pods.keys().filter(|uid| !seen.contains(*uid)).cloned().collect();
    for uid in gone {
        if let Some(handle) = pods.remove(&uid) {
            tokio::spawn(handle.kill());
        }
    }
}
