//! The lab: the real Kubernetes Service components — etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! kube-proxy per node and CoreDNS as a Deployment — built from their Go modules and run as processes on this
//! machine, with pods as processes in their own network namespaces and svcbench's node agent as the kubelet.
//!
//! The lab is dual-stack, IPv4 primary and IPv6 secondary, as a dual-stack kubeadm or kind cluster: Services
//! `10.96.0.0/12,fd00:10:96::/112`, pods `10.244.0.0/16,fd00:10:244::/56` (a /24 and a /64 per node), so
//! `ipFamilyPolicy: PreferDualStack`/`RequireDualStack` and `ipFamilies: [IPv6]` Services work end to end.
//! Network ([`network`]; every address exists only inside the lab's namespaces, nothing is routed to or from the
//! host):
//! - `svcb-<id>-cp`: the control plane; bridge `br0` 172.30.0.1/24 and fd00:172:30::1/64 (the API server's
//!   advertise address, the upstream resolver), routes to each node's two podCIDRs via the node;
//! - `svcb-<id>-n<i>`: node *i*, `eth0` 172.30.0.(10+i) and fd00:172:30::(10+i) on the bridge, kube-proxy, and a
//!   routed veth per pod;
//! - `svcb-<id>-n<i>-p<k>`: a pod (`eth0` 10.244.x.y/32 and fd00:10:244:x::y/128, default routes via the
//!   link-local 169.254.1.1 and fe80::1).
//!
//! The host reaches the API server only through a forwarder on 127.0.0.1; the kube target uses the kubeconfig the
//! lab writes like any other cluster's.

pub mod addons;
pub mod cgroup;
pub mod cilium;
pub mod cleanup;
mod config;
pub mod control_plane;
pub mod files;
pub mod identity;
pub mod install;
pub mod measure;
pub mod netexec;
pub mod netns;
pub mod network;
pub mod node;
pub mod nodelocal;
pub mod pki;
pub mod podexec;
mod preflight;
pub mod process;
pub mod proxy_zone;
mod readiness;
pub mod snapshot;
pub mod versions;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use kube::{Client, Config, config::KubeConfigOptions};

use self::{
    install::Installation,
    netns::{Forwarder, Netns},
    network::NodeAddresses,
    node::{NodeAgent, NodeContext, NodeIdentity},
    pki::Pki,
    process::Supervised,
};

pub use self::{
    config::{DnsMode, LabConfig, LocalTraffic, ProxyMode},
    network::CONTROL_PLANE_IP,
    preflight::{unavailable, unavailable_for},
};

/// A running lab; [`Lab::stop`] tears it down (dropping it does too, less gracefully).
pub struct Lab {
    id: String,
    dir: PathBuf,
    kubeconfig: PathBuf,
    config: LabConfig,
    agents: Vec<NodeAgent>,
    processes: Vec<Supervised>,
    forwarder: Option<Forwarder>,
    /// Control plane first, then nodes; torn down in reverse.
    namespaces: Vec<Netns>,
    started: Duration,
}

/// Where labs keep their files: not under /tmp or /run, which are private tmpfs inside pods.
pub fn state_root() -> PathBuf {
    PathBuf::from("/var/tmp")
}

/// Node `i`'s name (`lab-node-1` …).
fn node_name(i: u8) -> String {
    format!("lab-node-{i}")
}

/// Node `i`'s network namespace in lab `id`.
fn node_netns(id: &str, i: u8) -> String {
    format!("svcb-{id}-n{i}")
}

/// One line of progress.
fn step(what: &str) {
    tracing::info!("lab: {what}");
    if std::env::var_os("SVCBENCH_LAB_QUIET").is_none() {
        eprintln!("lab: {what}");
    }
}

impl Lab {
    /// Starts a lab and waits until it is ready (nodes Ready, CoreDNS Ready).
    ///
    /// # Errors
    /// Not root, not installed, a tool missing, or a component failed to start (with its log's last lines).
    pub async fn start(config: LabConfig) -> anyhow::Result<Self> {
        preflight::preflight(&config)?;
        let installation = Installation::find(&config.versions).with_context(|| {
            format!(
                "the lab is not installed for these releases: run `{}`",
                Installation::install_command(&config.versions)
            )
        })?;
        let begun = Instant::now();
        let id = format!("{:x}{:02x}", std::process::id(), rand::random::<u8>());
        let dir = state_root().join(format!("svcbench-lab-{id}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("owner"), std::process::id().to_string())?;
        // Built up step by step: if a step fails, or the caller drops this future (Ctrl-C), dropping `lab` removes
        // everything started so far.
        let mut lab = Self {
            id: id.clone(),
            dir: dir.clone(),
            kubeconfig: dir.join("kubeconfig"),
            config: config.clone(),
            agents: Vec::new(),
            processes: Vec::new(),
            forwarder: None,
            namespaces: Vec::new(),
            started: Duration::ZERO,
        };
        let cp = format!("svcb-{id}-cp");
        lab.namespaces.push(network::control_plane(&cp)?);

        step("certificates");
        let pki = Pki::create(
            &dir.join("pki"),
            &[Ipv4Addr::LOCALHOST.into(), CONTROL_PLANE_IP.into(), network::API_SERVICE_IP.into()],
            &[],
        )?;
        step(&format!("etcd {}, kube-apiserver {}", versions::ETCD, config.versions.control_plane));
        lab.processes.push(control_plane::etcd(&cp, &installation, &dir, &id)?);
        lab.processes.push(control_plane::apiserver(&cp, &installation, &pki, CONTROL_PLANE_IP, &dir, &id)?);
        let forwarder = Forwarder::start(&cp, SocketAddr::from((CONTROL_PLANE_IP, control_plane::API_PORT))).await?;
        let server = format!("https://{}", forwarder.local);
        lab.forwarder = Some(forwarder);
        let admin = pki.client("admin", "svcbench-admin", &["system:masters"])?;
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        pki.kubeconfig(&admin_kubeconfig, &server, &admin, "svcbench-lab")?;
        let client = client_for(&admin_kubeconfig).await?;
        readiness::wait_ready(&client, &mut lab.processes).await?;

        step("kube-controller-manager, kube-scheduler");
        let internal = format!("https://127.0.0.1:{}", control_plane::API_PORT);
        let kcm = pki.client("kcm", "system:kube-controller-manager", &[])?;
        pki.kubeconfig(&dir.join("kcm.kubeconfig"), &internal, &kcm, "lab")?;
        lab.processes.push(control_plane::controller_manager(
            &cp,
            &installation,
            &pki,
            &dir.join("kcm.kubeconfig"),
            &dir,
            &id,
        )?);
        let sched = pki.client("scheduler", "system:kube-scheduler", &[])?;
        pki.kubeconfig(&dir.join("scheduler.kubeconfig"), &internal, &sched, "lab")?;
        lab.processes.push(control_plane::scheduler(&cp, &installation, &dir.join("scheduler.kubeconfig"), &dir, &id)?);

        let upstream_conf = dir.join("upstream.Corefile");
        std::fs::write(&upstream_conf, addons::upstream_corefile(&CONTROL_PLANE_IP.to_string()))?;
        let mut cmd = control_plane::in_ns(&cp, &installation.upstream_dns());
        cmd.arg("-conf").arg(&upstream_conf);
        lab.processes.push(Supervised::spawn("upstream-dns", cmd, &dir.join("upstream-dns.log"), &id)?);

        let ctx = Arc::new(NodeContext {
            lab_id: id.clone(),
            state_dir: dir.clone(),
            installation: installation.clone(),
            svcbench: svcbench_executable(&config)?,
            cluster_dns: match config.dns {
                DnsMode::Coredns => addons::CLUSTER_DNS.parse()?,
                DnsMode::Nodelocal => nodelocal::LOCAL_DNS,
            },
            cluster_domain: "cluster.local".into(),
            upstream_dns: CONTROL_PLANE_IP,
            api_service: (network::API_SERVICE_IP, 443),
        });
        let proxy_cert = pki.client("kube-proxy", "system:kube-proxy", &[])?;
        let proxy_kubeconfig = dir.join("kube-proxy.kubeconfig");
        pki.kubeconfig(
            &proxy_kubeconfig,
            &format!("https://{CONTROL_PLANE_IP}:{}", control_plane::API_PORT),
            &proxy_cert,
            "lab",
        )?;
        // Node `i`'s kube-proxy, started the same way at first and when the zone guard restarts it.
        let start_kube_proxy = |i: u8| {
            control_plane::kube_proxy(
                control_plane::ProxyNode {
                    netns: &node_netns(&id, i),
                    name: &node_name(i),
                    ip: NodeAddresses::of(i).v4,
                },
                &installation,
                config.proxy_mode.as_str(),
                config.local_traffic,
                &proxy_kubeconfig,
                &dir,
                &id,
            )
        };
        let cilium_kubeconfig = dir.join("cilium.kubeconfig");
        if config.proxy_mode == ProxyMode::Cilium {
            if !installation.has_cilium() {
                bail!("Cilium is not built: run `svcbench lab install`");
            }
            step(&format!("Cilium {} CRDs", versions::CILIUM));
            cilium::apply_crds(&client, &installation).await?;
            let cert = pki.client("cilium", "svcbench-lab:cilium", &["system:masters"])?;
            pki.kubeconfig(
                &cilium_kubeconfig,
                &format!("https://{CONTROL_PLANE_IP}:{}", control_plane::API_PORT),
                &cert,
                "lab",
            )?;
        }
        for i in 1..=config.nodes {
            let name = node_name(i);
            if config.proxy_mode.runs_kube_proxy() {
                step(&format!(
                    "node {name}: kube-proxy {} ({})",
                    config.versions.kube_proxy,
                    config.proxy_mode.as_str()
                ));
            } else {
                step(&format!("node {name}: cilium-agent {}", versions::CILIUM));
            }
            let ns_name = node_netns(&id, i);
            let node_ns = network::node(&cp, i, &ns_name)?;
            let node_ip = NodeAddresses::of(i);
            let cert = pki.client(&name, &format!("system:node:{name}"), &["system:nodes"])?;
            let kubeconfig = dir.join(format!("{name}.kubeconfig"));
            pki.kubeconfig(&kubeconfig, &server, &cert, "lab")?;
            let identity = NodeIdentity {
                name: name.clone(),
                netns: ns_name.clone(),
                ip: node_ip.v4,
                ip6: node_ip.v6,
                zone: format!("zone-{}", (i - 1) % 2 + 1),
                cgroup: None,
                cni: None,
            };
            lab.namespaces.push(node_ns);
            let cgroup = if config.proxy_mode == ProxyMode::Cilium { Some(cgroup::create_node(&id, i)?) } else { None };
            let node_cilium = cgroup.as_deref().map(|cgroup| cilium::NodeCilium {
                node: &name,
                netns: &ns_name,
                cgroup,
                kubeconfig: &cilium_kubeconfig,
                state_dir: &dir,
                svcbench: &ctx.svcbench,
                lab_id: &id,
            });
            let identity = NodeIdentity {
                cgroup: cgroup.clone(),
                cni: node_cilium.as_ref().map(|c| c.cni(&installation)),
                ..identity
            };
            let (agent, cidrs) = NodeAgent::start(ctx.clone(), identity, client_for(&kubeconfig).await?).await?;
            lab.agents.push(agent);
            network::route_pod_cidrs(&cp, i, &cidrs)?;
            if let Some(node_cilium) = node_cilium {
                // Started once the node has its podCIDRs (`--ipam=kubernetes` reads them), ready before any pod.
                let agent_started = Instant::now();
                let mut agent = node_cilium.start_agent(&installation)?;
                let ready = node_cilium.wait_ready(&mut agent).await;
                lab.processes.push(agent);
                ready?;
                for ip in cilium::wait_router_addresses(&ns_name).await? {
                    lab.agents.last().expect("this node's agent").reserve(ip);
                }
                step(&format!("node {name}: cilium-agent healthy in {:.1} s", agent_started.elapsed().as_secs_f64()));
                continue;
            }
            lab.processes.push(start_kube_proxy(i)?);
        }
        step(&format!(
            "CoreDNS {} (kube-system/coredns, Service kube-dns {})",
            config.versions.coredns,
            addons::CLUSTER_DNS
        ));
        addons::apply_dns(&client, &config.versions.coredns.to_string()).await?;
        readiness::wait_coredns(&client, &mut lab.processes, &dir).await?;
        if config.proxy_mode.runs_kube_proxy() && proxy_zone::affected(config.versions.kube_proxy) {
            let logs: Vec<PathBuf> =
                (1..=config.nodes).map(|i| control_plane::kube_proxy_log(&dir, &node_name(i))).collect();
            // `logs[i]` is node i + 1's.
            let restart = |i: usize| start_kube_proxy(u8::try_from(i + 1).unwrap_or(u8::MAX));
            proxy_zone::ensure_learned(&mut lab.processes, &logs, proxy_zone::LEARN_WITHIN, restart, step).await?;
        }
        if config.dns == DnsMode::Nodelocal {
            step("NodeLocal DNSCache on every node (169.254.20.10, Service kube-dns-upstream)");
            let upstream = nodelocal::apply_upstream_service(&client).await?;
            let conf = nodelocal::corefile(&ctx.cluster_domain, upstream, ctx.upstream_dns);
            for i in 1..=config.nodes {
                let ns_name = node_netns(&id, i);
                let mut cache = nodelocal::start(&ns_name, &node_name(i), &installation, &conf, &dir, &id)?;
                let healthy = nodelocal::wait_healthy(&ns_name, &mut cache).await;
                lab.processes.push(cache);
                healthy?;
            }
        }
        pki.kubeconfig(&lab.kubeconfig, &server, &admin, "svcbench-lab")?;
        lab.started = begun.elapsed();
        step(&format!("ready in {:.1} s", lab.started.as_secs_f64()));
        Ok(lab)
    }

    /// The lab's id (in namespace and process names).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An admin kubeconfig for the lab (server on 127.0.0.1).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Where the components' logs and the pods' files are (removed on stop).
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// kube-proxy's mode.
    pub fn proxy_mode(&self) -> ProxyMode {
        self.config.proxy_mode
    }

    /// How long the start took.
    pub fn start_time(&self) -> Duration {
        self.started
    }

    /// The nodes' network namespaces, node 1 first.
    pub fn node_namespaces(&self) -> Vec<String> {
        self.namespaces.iter().skip(1).map(|ns| ns.name().to_owned()).collect()
    }

    /// The lab's configuration.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// The implementation under test, for reports.
    pub fn description(&self) -> String {
        self.config.description()
    }

    /// Takes [snapshots](snapshot) of this lab's nodes' data plane.
    pub fn snapshotter(&self) -> snapshot::Snapshotter {
        let names = self.agents.iter().map(|a| a.name().to_owned());
        snapshot::Snapshotter::new(&self.dir, self.config.proxy_mode, names.zip(self.node_namespaces()).collect())
    }

    /// Copies the components' logs (every `*.log` under the state directory) and the data-plane snapshots to the same
    /// places under `into`, to read after the lab is gone; returns how many were copied.
    pub fn copy_logs(&self, into: &Path) -> usize {
        let mut copied = 0;
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() && !path.is_symlink() {
                    dirs.push(path);
                } else if (path.extension().is_some_and(|e| e == "log")
                    || path.strip_prefix(&self.dir).is_ok_and(|r| r.starts_with(snapshot::SNAPSHOTS_DIR)))
                    && let Ok(relative) = path.strip_prefix(&self.dir)
                {
                    let to = into.join(relative);
                    let ok = to.parent().is_some_and(|p| std::fs::create_dir_all(p).is_ok());
                    copied += usize::from(ok && std::fs::copy(&path, &to).is_ok());
                }
            }
        }
        copied
    }

    /// Copies the kubeconfig to `path`.
    ///
    /// # Errors
    /// It cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::copy(&self.kubeconfig, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Tears everything down: pods, node agents, kube-proxy and the control plane, namespaces, files.
    pub async fn stop(mut self) {
        // Everything at once: the pods of every node, kube-proxy and the control plane.
        let mut stopping = tokio::task::JoinSet::new();
        for agent in self.agents.drain(..) {
            stopping.spawn(agent.stop());
        }
        let processes = std::mem::take(&mut self.processes);
        stopping.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || process::stop_all(processes)).await;
        });
        while stopping.join_next().await.is_some() {}
        // Killed processes leave their cgroups a moment after the signal: wait for that here, not in teardown's
        // blocking retries.
        for _ in 0..50 {
            if cgroup::members(&self.id).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.teardown();
    }

    fn teardown(&mut self) {
        self.forwarder = None;
        while let Some(ns) = self.namespaces.pop() {
            drop(ns);
        }
        // Whatever a crashed step left (a pod namespace, a process) is found by its name or mark.
        cleanup::remove_lab(&self.id);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // After `stop` this finds nothing left; otherwise (a failed start, Ctrl-C, a panic) kill and remove all.
        self.agents.clear();
        process::stop_all(std::mem::take(&mut self.processes));
        self.teardown();
    }
}

/// The program pods run. A rebuild while svcbench runs replaces the file, and `/proc/self/exe` then names
/// `… (deleted)`: every container start would fail, so say so at once.
fn svcbench_executable(config: &LabConfig) -> anyhow::Result<PathBuf> {
    let path = match &config.svcbench {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("path of the svcbench executable")?,
    };
    if !path.is_file() {
        bail!(
            "the svcbench executable {} is gone (rebuilt or removed while this process runs): pods could not start; \
             run svcbench again",
            path.display()
        );
    }
    Ok(path)
}

/// A client for a kubeconfig file (the lab's own, or a node's).
///
/// # Errors
/// The file is unreadable or invalid.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
