//! One pod on a lab node, from sandbox to deletion: its network namespace wired with a routed veth, dual-stack (an
//! IPv4 /32 and an IPv6 /128 from the node's two podCIDRs; the pod's default routes go to link-local gateways the
//! node answers, 169.254.1.1 by proxy ARP and fe80::1 as an address of the node's end, so every packet crosses the
//! node's netfilter), the files kubelet writes (`resolv.conf`, `hosts`, `hostname`, volumes, the service-account token),
//! its containers as processes (restarted when they exit), readiness probes driving the Ready condition, and
//! graceful termination (SIGTERM, the grace period, SIGKILL, then delete with grace 0 and a UID precondition).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use serde_json::json;
use tokio::sync::watch;

mod sandbox;

use self::sandbox::{Sandbox, create_sandbox};
use super::{NodeContext, NodeIdentity, images, probe};
use crate::lab::{files, process::Supervised};

/// The pods' IPv6 default gateway: a link-local address on the node's end of each pod veth.
const POD_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// Node-wide state for starting pods.
pub struct Runtime {
    pub(crate) ctx: Arc<NodeContext>,
    pub(crate) node: NodeIdentity,
    pub(crate) client: Client,
    /// The node's IPv4 pod network (`10.244.N.0/24`): base address and next host number.
    base: Ipv4Addr,
    /// The node's IPv6 pod network (`fd00:10:244:N::/64`): a pod's IPv6 address has its IPv4 host number.
    base6: Ipv6Addr,
    next_host: AtomicU32,
    /// Pod IPs held by live sandboxes: allocation wraps around the /24 and must skip them.
    in_use: std::sync::Mutex<std::collections::HashSet<Ipv4Addr>>,
    next_sandbox: AtomicU32,
    /// The node is going away with its data plane: sandboxes are not detached from the CNI plugin one by one.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl Runtime {
    /// State for a node whose podCIDRs are `cidrs` (an IPv4 /24 or wider and an IPv6 /64 or wider, any order).
    ///
    /// # Errors
    /// `cidrs` lacks a family or one does not parse.
    pub fn new(ctx: Arc<NodeContext>, node: NodeIdentity, client: Client, cidrs: &[String]) -> anyhow::Result<Self> {
        let bases: Vec<IpAddr> = cidrs
            .iter()
            .map(|cidr| cidr.split('/').next().unwrap_or_default().parse().with_context(|| format!("podCIDR {cidr}")))
            .collect::<anyhow::Result<_>>()?;
        let base = bases.iter().find_map(|b| if let IpAddr::V4(b) = b { Some(*b) } else { None });
        let base6 = bases.iter().find_map(|b| if let IpAddr::V6(b) = b { Some(*b) } else { None });
        let (Some(base), Some(base6)) = (base, base6) else {
            anyhow::bail!("node {} has podCIDRs {cidrs:?}: the lab needs an IPv4 and an IPv6 one", node.name)
        };
        Ok(Self {
            ctx,
            node,
            client,
            base,
            base6,
            next_host: AtomicU32::new(0),
            in_use: std::sync::Mutex::new(std::collections::HashSet::new()),
            next_sandbox: AtomicU32::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The next free pod IPs (.2 … .254 of the node's /24, in order, wrapping around past the ones in use; the
    /// IPv6 one has the same host number in the node's /64, so it is free whenever the IPv4 one is).
    fn allocate_ip(&self) -> anyhow::Result<(Ipv4Addr, Ipv6Addr)> {
        let mut in_use = self.in_use.lock().expect("ip lock");
        for _ in 0..253 {
            let host = 2 + self.next_host.fetch_add(1, Ordering::Relaxed) % 253;
            let ip = Ipv4Addr::from(u32::from(self.base) + host);
            if in_use.insert(ip) {
                return Ok((ip, Ipv6Addr::from(u128::from(self.base6) + u128::from(host))));
            }
        }
        anyhow::bail!("node {} has no free pod IP: 253 pods run on it", self.node.name)
    }

    /// Keeps `ip` from ever going to a pod: an address of the node's own in its podCIDR (Cilium's router address on
    /// `cilium_host`, which its IPAM takes from the same podCIDR). An IPv6 one reserves its host number, which pods'
    /// IPv6 addresses share with their IPv4 ones.
    pub fn reserve(&self, ip: IpAddr) {
        let host = match ip {
            IpAddr::V4(v4) => u32::from(v4).checked_sub(u32::from(self.base)),
            IpAddr::V6(v6) => u128::from(v6).checked_sub(u128::from(self.base6)).and_then(|h| u32::try_from(h).ok()),
        };
        if let Some(host) = host.filter(|h| (2..=254).contains(h)) {
            self.in_use.lock().expect("ip lock").insert(Ipv4Addr::from(u32::from(self.base) + host));
        }
    }

    fn release_ip(&self, ip: Ipv4Addr) {
        self.in_use.lock().expect("ip lock").remove(&ip);
    }
}

/// A pod being run; dropping the handle does not stop it, [`PodHandle::kill`] does.
pub struct PodHandle {
    updates: watch::Sender<Pod>,
    task: tokio::task::JoinHandle<()>,
}

impl PodHandle {
    /// Starts running `pod`.
    pub fn start(runtime: Arc<Runtime>, pod: Pod) -> Self {
        let (updates, rx) = watch::channel(pod);
        let task = tokio::spawn(async move {
            let name = rx.borrow().metadata.name.clone().unwrap_or_default();
            if let Err(e) = lifecycle(runtime, rx).await {
                tracing::warn!(pod = %name, error = format!("{e:#}"), "pod failed");
            }
        });
        Self { updates, task }
    }

    /// Hands it the newest object from the API.
    pub fn update(&self, pod: Pod) {
        self.updates.send_if_modified(|old| {
            let changed = old.metadata.resource_version != pod.metadata.resource_version;
            *old = pod;
            changed
        });
    }

    /// Stops it at once (its sandbox is removed as the task unwinds).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Like [`Self::kill`] without waiting.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Makes the pod's sandbox, retrying a failure (a CNI plugin that did not answer in time, say) as kubelet retries
/// `RunPodSandbox` at its next pod sync: after 1 s, 2 s, 4 s … at most 10 s, until it is made or the pod is deleted
/// (then the pod object is finalized and there is no sandbox).
async fn sandbox_until_made(
    rt: &Arc<Runtime>,
    pod: &Pod,
    rx: &mut watch::Receiver<Pod>,
    api: &Api<Pod>,
) -> Option<Sandbox> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut backoff = Duration::from_secs(1);
    loop {
        match create_sandbox(rt, pod).await {
            Ok(sandbox) => return Some(sandbox),
            Err(e) => tracing::warn!(pod = %name, error = format!("{e:#}"), retry_in = ?backoff, "sandbox not made"),
        }
        let retry = tokio::time::sleep(backoff);
        tokio::pin!(retry);
        loop {
            if rx.borrow().metadata.deletion_timestamp.is_some() {
                let uid = pod.metadata.uid.clone();
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid, resource_version: None }),
                    ..DeleteParams::default()
                };
                if let Err(e) = api.delete(&name, &params).await {
                    tracing::debug!(pod = %name, error = %e, "final delete failed");
                }
                return None;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return None },
                () = &mut retry => break,
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One container's process and readiness.
struct ContainerState {
    spec: Container,
    launch: Result<images::Launch, String>,
    process: Option<Supervised>,
    restarts: u32,
    ready: bool,
    started_at: String,
    successes: u32,
    failures: u32,
    next_probe: Instant,
    last_exit: Option<String>,
    /// When a container that exited may start again (kubelet's CrashLoopBackOff, doubling from 1 s up to 30 s).
    restart_at: Instant,
}

async fn lifecycle(rt: Arc<Runtime>, mut rx: watch::Receiver<Pod>) -> anyhow::Result<()> {
    let pod = rx.borrow_and_update().clone();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(rt.client.clone(), &namespace);
    let spec = pod.spec.clone().unwrap_or_default();
    let Some(mut sandbox) = sandbox_until_made(&rt, &pod, &mut rx, &api).await else { return Ok(()) };
    let start_time = now();
    let volumes = files::write_pod_files(&rt, &pod, &sandbox.dir, &sandbox.ips()).await;
    let mut containers: Vec<ContainerState> = spec
        .containers
        .iter()
        .map(|c| ContainerState {
            launch: volumes.as_ref().map_err(|e| format!("{e:#}")).and_then(|_| {
                images::resolve(&rt.ctx, c.image.as_deref().unwrap_or(""), c.command.as_deref(), c.args.as_deref())
            }),
            spec: c.clone(),
            process: None,
            restarts: 0,
            ready: false,
            started_at: String::new(),
            successes: 0,
            failures: 0,
            next_probe: Instant::now(),
            last_exit: None,
            restart_at: Instant::now(),
        })
        .collect();
    let binds = volumes.unwrap_or_default();
    let mut last_status = serde_json::Value::Null;
    let mut transitions: HashMap<&'static str, (bool, String)> = HashMap::new();
    loop {
        let deleting = rx.borrow().metadata.deletion_timestamp.is_some();
        if deleting {
            break;
        }
        for c in &mut containers {
            let Ok(launch) = &c.launch else { continue };
            if let Some(p) = &mut c.process
                && let Some(exit) = p.exited()
            {
                tracing::debug!(pod = %name, container = %c.spec.name, %exit, "container exited");
                c.last_exit = Some(exit);
                c.process = None;
                c.ready = false;
                c.restarts += 1;
                c.restart_at =
                    Instant::now() + Duration::from_secs(1 << c.restarts.min(5)).min(Duration::from_secs(30));
            }
            let may_start = c.restarts == 0 || spec.restart_policy.as_deref() != Some("Never");
            if c.process.is_none() && may_start && Instant::now() >= c.restart_at {
                match start_container(&rt, &pod, &sandbox, &binds, &c.spec, launch) {
                    Ok(p) => {
                        c.process = Some(p);
                        c.started_at = now();
                        c.successes = 0;
                        c.failures = 0;
                        c.ready = c.spec.readiness_probe.is_none();
                        let delay = c.spec.readiness_probe.as_ref().map(|p| probe::Schedule::of(p).initial_delay);
                        c.next_probe = Instant::now() + delay.unwrap_or_default();
                    }
                    Err(e) => c.launch = Err(format!("{e:#}")),
                }
            }
        }
        probe_all(&rt, &sandbox, &mut containers).await;
        let status = status_body(&rt, &pod, &sandbox, &start_time, &containers, &mut transitions, false);
        if status != last_status {
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await {
                Ok(_) => last_status = status,
                Err(e) => tracing::debug!(pod = %name, error = %e, "status patch failed"),
            }
        }
        let next = containers.iter().filter(|c| c.process.is_some()).map(|c| c.next_probe).min();
        let wait = next.map_or(Duration::from_millis(500), |t| t.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = rx.changed() => {}
            () = tokio::time::sleep(wait.clamp(Duration::from_millis(20), Duration::from_millis(500))) => {}
        }
    }
    // Graceful termination: SIGTERM now, SIGKILL when the grace period ends, while probes keep running.
    let grace = rx
        .borrow()
        .metadata
        .deletion_grace_period_seconds
        .or(spec.termination_grace_period_seconds)
        .map_or(Duration::from_secs(30), |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let mut deadline = Instant::now() + grace;
    for c in &containers {
        if let Some(p) = &c.process {
            p.terminate();
        }
    }
    while Instant::now() < deadline
        && containers.iter_mut().any(|c| c.process.as_mut().is_some_and(|p| p.exited().is_none()))
    {
        // A later delete with a shorter grace period shortens this one, as kubelet does.
        if let Some(shorter) = rx.borrow().metadata.deletion_grace_period_seconds {
            deadline = deadline.min(Instant::now() + Duration::from_secs(u64::try_from(shorter).unwrap_or(0)));
        }
        probe_all(&rt, &sandbox, &mut containers).await;
        let status = status_body(&rt, &pod, &sandbox, &start_time, &containers, &mut transitions, false);
        if status != last_status
            && api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.is_ok()
        {
            last_status = status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &mut containers {
        if let Some(mut p) = c.process.take() {
            p.stop();
            c.last_exit = p.exited();
        }
        c.ready = false;
    }
    let status = status_body(&rt, &pod, &sandbox, &start_time, &containers, &mut transitions, true);
    let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await;
    // As kubelet: the sandbox's network is torn down (CNI DEL) before the pod object goes.
    sandbox.detach().await;
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
        ..DeleteParams::default()
    };
    if let Err(e) = api.delete(&name, &params).await {
        tracing::debug!(pod = %name, error = %e, "final delete failed");
    }
    drop(sandbox);
    Ok(())
}

fn start_container(
    rt: &Runtime,
    pod: &Pod,
    sandbox: &Sandbox,
    binds: &[String],
    container: &Container,
    launch: &images::Launch,
) -> anyhow::Result<Supervised> {
    // A host-network pod shares the node's UTS namespace too: its hostname is the node's.
    let hostname = if sandbox.own_netns.is_none() { rt.node.name.clone() } else { files::pod_hostname(pod) };
    let mut cmd = Command::new(&rt.ctx.svcbench);
    cmd.args(["lab", "pod-exec", "--netns", sandbox.netns(), "--hostname", &hostname, "--pod-dir"]).arg(&sandbox.dir);
    for bind in binds {
        cmd.arg("--bind").arg(bind);
    }
    if let Some(cgroup) = &rt.node.cgroup {
        cmd.arg("--cgroup").arg(cgroup);
    }
    cmd.arg("--").arg(&launch.program).args(&launch.args);
    cmd.env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOSTNAME", &hostname);
    let (api_ip, api_port) = rt.ctx.api_service;
    cmd.env("KUBERNETES_SERVICE_HOST", api_ip.to_string()).env("KUBERNETES_SERVICE_PORT", api_port.to_string());
    for var in container.env.iter().flatten() {
        let value = var.value.clone().or_else(|| {
            let field = var.value_from.as_ref()?.field_ref.as_ref()?.field_path.clone();
            Some(match field.as_str() {
                "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
                "status.podIP" => sandbox.ip.to_string(),
                "status.podIPs" => format!("{},{}", sandbox.ip, sandbox.ip6),
                "status.hostIP" => rt.node.ip.to_string(),
                "status.hostIPs" => format!("{},{}", rt.node.ip, rt.node.ip6),
                "spec.nodeName" => rt.node.name.clone(),
                _ => String::new(),
            })
        });
        cmd.env(&var.name, value.unwrap_or_default());
    }
    let log = sandbox.dir.join("logs").join(format!("{}.log", container.name));
    // The grace period is enforced by the lifecycle; a stop of the process itself is the final, short one.
    Ok(Supervised::spawn(&container.name, cmd, &log, &rt.ctx.lab_id)?.with_grace(Duration::from_secs(1)))
}

async fn probe_all(rt: &Runtime, sandbox: &Sandbox, containers: &mut [ContainerState]) {
    let ports: Vec<(String, u16)> = containers
        .iter()
        .flat_map(|c| c.spec.ports.iter().flatten())
        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
        .collect();
    for c in containers.iter_mut() {
        let (Some(spec), Some(process)) = (c.spec.readiness_probe.clone(), c.process.as_ref()) else { continue };
        if Instant::now() < c.next_probe {
            continue;
        }
        let schedule = probe::Schedule::of(&spec);
        let target = probe::Target {
            svcbench: &rt.ctx.svcbench,
            pid: process.pid(),
            node_netns: &rt.node.netns,
            pod_ip: sandbox.ip,
        };
        let result = probe::run(&spec, &target, &ports).await;
        c.next_probe = Instant::now() + schedule.period;
        if result.is_ok() {
            c.failures = 0;
            c.successes += 1;
            if c.successes >= schedule.success_threshold {
                c.ready = true;
            }
        } else {
            c.successes = 0;
            c.failures += 1;
            if c.failures >= schedule.failure_threshold {
                c.ready = false;
            }
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string()
}

fn status_body(
    rt: &Runtime,
    pod: &Pod,
    sandbox: &Sandbox,
    start_time: &str,
    containers: &[ContainerState],
    transitions: &mut HashMap<&'static str, (bool, String)>,
    finished: bool,
) -> serde_json::Value {
    let all_ready = !finished && containers.iter().all(|c| c.ready);
    let mut condition = |kind: &'static str, ok: bool, reason: Option<&str>| {
        let entry = transitions.entry(kind).or_insert_with(|| (ok, now()));
        if entry.0 != ok {
            *entry = (ok, now());
        }
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": entry.1});
        if let (false, Some(reason)) = (ok, reason) {
            c["reason"] = json!(reason);
        }
        c
    };
    let conditions = json!([
        condition("PodReadyToStartContainers", !finished, None),
        condition("Initialized", true, None),
        condition("Ready", all_ready, Some(if finished { "PodCompleted" } else { "ContainersNotReady" })),
        condition("ContainersReady", all_ready, Some(if finished { "PodCompleted" } else { "ContainersNotReady" })),
        condition("PodScheduled", true, None),
    ]);
    let statuses: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| {
            let state = match (&c.launch, &c.process) {
                (Err(message), _) => json!({"waiting": {"reason": "ErrImagePull", "message": message}}),
                (Ok(_), Some(_)) => json!({"running": {"startedAt": c.started_at}}),
                (Ok(_), None) => json!({"terminated": {"exitCode": 0, "reason": c.last_exit.as_deref().unwrap_or("Completed"), "finishedAt": now()}}),
            };
            json!({"name": c.spec.name, "image": c.spec.image, "imageID": "", "ready": c.ready,
                   "started": c.process.is_some(), "restartCount": c.restarts, "state": state,
                   "containerID": c.process.as_ref().map(|p| format!("svcbench-lab://{}", p.pid()))})
        })
        .collect();
    let waiting = containers.iter().any(|c| c.launch.is_err());
    let phase = if finished {
        "Succeeded"
    } else if waiting {
        "Pending"
    } else {
        "Running"
    };
    let _ = pod;
    json!({"status": {
        "phase": phase,
        "podIP": sandbox.ip.to_string(), "podIPs": [{"ip": sandbox.ip.to_string()}, {"ip": sandbox.ip6.to_string()}],
        "hostIP": rt.node.ip.to_string(), "hostIPs": [{"ip": rt.node.ip.to_string()}, {"ip": rt.node.ip6.to_string()}],
        "startTime": start_time,
        "conditions": conditions,
        "containerStatuses": statuses,
    }})
}

/// A path inside the pod's directory.
pub fn in_dir(dir: &Path, rel: &str) -> PathBuf {
    dir.join(rel.trim_start_matches('/'))
}
