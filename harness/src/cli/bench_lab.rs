//! `svcbench bench --target lab`: the real implementations measured side by side, one lab per data plane (kube-proxy
//! iptables and nftables with NodeLocal DNSCache in front of CoreDNS, Cilium with CoreDNS; one node), every figure
//! printed per implementation with its ratio to iptables mode measured in the same run:
//!
//! - HTTP through the ClusterIP vs straight to the pod, closed loop (throughput; wrk beside svcbench) and open loop
//!   (HDR latency at a fixed rate, no coordinated omission);
//! - DNS queries/s and latency of CoreDNS (through kube-dns's ClusterIP), NodeLocal DNSCache and the embedded
//!   reference DNS, with svcbench's generator and dnsperf on the same names;
//! - programming latency at growing service counts (10 endpoints each), from the data plane — API change until the
//!   first connection reaches the new endpoint — beside kube-proxy's own `kubeproxy_network_programming_duration_seconds`
//!   (scraped from its metrics port) and its rule-sync time; first-connection latency at that size;
//! - memory and CPU time of every component while it was measured.
//!
//! Clients run in the node's network namespace, so traffic takes the data plane's path for host-originated traffic
//! (with Cilium this process joins the node's cgroup for the measurement, as a host-network pod is in it). Cilium
//! exports no programming-latency metric (cilium/cilium#34147), so its column has only the data plane's own figures.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};

use super::EXIT_INVALID;
use crate::{
    lab::{
        DnsMode, Lab, LabConfig, ProxyMode, addons,
        measure::{self, Histogram},
        nodelocal,
    },
    probe::{
        self, ProbeContext,
        dialer::Dialer,
        dnsload::DnsLoadSpec,
        load::{ConnectionMode, LoadSpec},
        resolv_conf::ResolvConf,
    },
    stats::latency,
};

/// What `bench --target lab` measures.
#[derive(Debug, Clone)]
pub struct LabBench {
    /// Seconds per load measurement.
    pub seconds: u64,
    /// Connections of the closed-loop HTTP load.
    pub connections: u32,
    /// Requests/s of the open-loop HTTP load.
    pub rate: f64,
    /// Service counts to time programming latency at (ascending; services are added between levels).
    pub services: Vec<u32>,
    /// Changes timed per level.
    pub changes: u32,
    /// kube-proxy modes.
    pub modes: Vec<ProxyMode>,
    /// The lab's releases.
    pub versions: crate::lab::versions::LabVersions,
}

const NS: &str = "bench";
const POD_PORT: u16 = 8080;

fn print_machine() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cores} shared cores, Linux {} — the generators, kube-proxy, the control plane and the backends all \
         share them; compare figures of one run, not across machines.",
        kernel.trim()
    );
}

pub async fn bench_lab(args: LabBench) -> ExitCode {
    print_machine();
    let mut services = args.services.clone();
    services.sort_unstable();
    services.dedup();
    let mut modes = Vec::new();
    for mode in &args.modes {
        let plane = if mode.runs_kube_proxy() {
            format!("kube-proxy {} {} · NodeLocal DNSCache +", args.versions.kube_proxy, mode.as_str())
        } else {
            format!("Cilium {} kube-proxy replacement ·", crate::lab::versions::CILIUM)
        };
        println!("\n=== {plane} CoreDNS {} (lab, 1 node)", args.versions.coredns);
        match bench_mode(*mode, &args, &services).await {
            Ok(figures) => modes.push(figures),
            Err(e) if e.to_string() == "interrupted" => {
                eprintln!("interrupted");
                return ExitCode::from(super::EXIT_INTERRUPTED);
            }
            Err(e) => {
                eprintln!("error: lab ({}): {e:#}", mode.as_str());
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    println!("\n=== embedded reference DNS (same names)");
    reference_dns(&args).await;
    summary(&modes);
    ExitCode::SUCCESS
}

/// The headline figures of one mode, for the summary.
struct ModeFigures {
    mode: ProxyMode,
    via_over_direct: Option<f64>,
    levels: Vec<LevelFigures>,
}

/// The headline figures of one service count.
struct LevelFigures {
    services: u32,
    /// Data-plane programming latency p50, ms.
    p50_ms: f64,
    /// Data-plane programming latency p99, ms.
    p99_ms: f64,
    /// kube-proxy's own mean for the same changes, ms.
    kube_proxy_mean_ms: Option<f64>,
    /// Connect through a ClusterIP, p50 µs.
    connect_p50_us: Option<f64>,
}

async fn bench_mode(mode: ProxyMode, args: &LabBench, services: &[u32]) -> anyhow::Result<ModeFigures> {
    // Ctrl-C / SIGTERM: dropping the start future or stopping the lab removes everything it made.
    let lab = tokio::select! {
        lab = Lab::start(LabConfig::new(mode, 1).with_dns(lab_dns(mode)).with_versions(args.versions)) => lab?,
        _ = super::run::shutdown_signal() => bail!("interrupted"),
    };
    let result = tokio::select! {
        r = measure_lab(&lab, mode, args, services) => r,
        _ = super::run::shutdown_signal() => {
            // The blocking loops in the node's namespace stop at their next attempt.
            measure::CANCELLED.store(true, std::sync::atomic::Ordering::Relaxed);
            Err(anyhow::anyhow!("interrupted"))
        }
    };
    lab.stop().await;
    result
}

/// Cluster DNS of a benchmark lab: NodeLocal DNSCache in front of CoreDNS, except with Cilium (the lab sets the cache
/// up for kube-proxy only), where CoreDNS alone.
fn lab_dns(mode: ProxyMode) -> DnsMode {
    if mode.runs_kube_proxy() { DnsMode::Nodelocal } else { DnsMode::Coredns }
}

async fn measure_lab(lab: &Lab, mode: ProxyMode, args: &LabBench, services: &[u32]) -> anyhow::Result<ModeFigures> {
    let client = crate::lab::client_for(lab.kubeconfig()).await?;
    let node = lab.node_namespaces().first().cloned().context("the lab has no node")?;
    // Cilium serves a node's host-network clients through the socket load balancer of the node's cgroup: the
    // clients here (threads of this process in the node's namespace) join it, as a host-network pod does.
    let _member = if mode.runs_kube_proxy() {
        None
    } else {
        Some(crate::lab::cgroup::Joined::node(&crate::lab::cgroup::node_path(lab.id(), 1)?)?)
    };
    let (cluster_ip, pods) = setup(&client).await?;
    let pod = *pods.first().context("no backend pod")?;
    // Ready endpoints are not a programmed proxy: load through a ClusterIP kube-proxy has not written yet would
    // time out and be counted against it.
    measure::first_connect(&node, SocketAddr::new(cluster_ip, 80), Duration::from_millis(5), Duration::from_secs(120))
        .await
        .context("the backend Service's ClusterIP never became reachable")?;
    let mut figures = ModeFigures { mode, via_over_direct: None, levels: Vec::new() };
    println!("-- {}: lab ready in {:.1} s", lab.config().name(), lab.start_time().as_secs_f64());
    let cpu_before = measure::usage(lab.id());

    println!(
        "-- HTTP: ClusterIP {cluster_ip}:80 vs pod {pod}:{POD_PORT} (closed loop, {} connections, {} s)",
        args.connections, args.seconds
    );
    let via = http_load(&node, cluster_ip, 80, args, None).await;
    let direct = http_load(&node, pod, POD_PORT, args, None).await;
    if let (Some(v), Some(d)) = (&via, &direct) {
        let ratio = if d.0 > 0.0 { v.0 / d.0 } else { f64::NAN };
        figures.via_over_direct = Some(ratio).filter(|r| r.is_finite());
        println!(
            "   svcbench: via ClusterIP {:.0} req/s, direct {:.0} req/s → ratio {ratio:.2} (p99 {:.0} µs vs {:.0} µs)",
            v.0, d.0, v.1, d.1
        );
    }
    let wrk_via = wrk_in(&node, &format!("http://{cluster_ip}/hostname"), args);
    let wrk_direct = wrk_in(&node, &format!("http://{pod}:{POD_PORT}/hostname"), args);
    match (wrk_via, wrk_direct) {
        (Some(v), Some(d)) if d > 0.0 => {
            println!("   wrk:      via ClusterIP {v:.0} req/s, direct {d:.0} req/s → ratio {:.2}", v / d)
        }
        _ => println!("   wrk:      not installed or no result"),
    }
    println!(
        "-- HTTP open loop at {:.0} req/s for {} s (HDR, latency from the intended send time)",
        args.rate, args.seconds
    );
    let via = http_load(&node, cluster_ip, 80, args, Some(args.rate)).await;
    let direct = http_load(&node, pod, POD_PORT, args, Some(args.rate)).await;
    if let (Some(v), Some(d)) = (via, direct) {
        println!(
            "   p50 {:.0} µs via vs {:.0} µs direct; p99 {:.0} µs vs {:.0} µs; p99.9 {:.0} µs vs {:.0} µs",
            v.2.p50_us, d.2.p50_us, v.2.p99_us, d.2.p99_us, v.2.p999_us, d.2.p999_us
        );
    }

    println!("-- DNS ({} s, the same load shape as the reference below)", args.seconds);
    let names = vec![format!("web.{NS}.svc.cluster.local."), format!("missing.{NS}.svc.cluster.local.")];
    let servers = [
        ("CoreDNS via kube-dns ClusterIP", addons::CLUSTER_DNS.parse::<Ipv4Addr>()?),
        ("NodeLocal DNSCache 169.254.20.10", nodelocal::LOCAL_DNS),
    ];
    let servers = if lab_dns(mode) == DnsMode::Nodelocal { &servers[..] } else { &servers[..1] };
    for &(label, server) in servers {
        let ours = dns_load(&node, server.into(), &names, args.seconds).await;
        let theirs = super::bench::dnsperf(Some(&node), SocketAddr::new(server.into(), 53), &names, args.seconds);
        println!(
            "   {label:<34} svcbench {:>8.0} q/s (p50 {:.0} µs, p99 {:.0} µs)   dnsperf {}",
            ours.as_ref().map_or(f64::NAN, |o| o.0),
            ours.as_ref().map_or(f64::NAN, |o| o.1),
            ours.as_ref().map_or(f64::NAN, |o| o.2),
            theirs.map_or("no result".into(), |t| format!("{t:.0} q/s"))
        );
    }
    usage_line(lab, &cpu_before, "during HTTP and DNS load");

    println!(
        "-- programming latency: API change → first connection reaches the new endpoint (a timed Service with 1 \
         endpoint, among background Services of 10 endpoints each)"
    );
    println!(
        "   {:>8} {:>12} {:>12} {:>12} │ {:>32} {:>14} │ {:>19}",
        "services",
        "p50 ms",
        "p99 ms",
        "max ms",
        "kube-proxy metric mean/p50≤/p99≤",
        "sync mean ms",
        "first connect p50/p99 µs"
    );
    let mut existing = 0u32;
    for &level in services {
        let cpu_level = measure::usage(lab.id());
        let built = Instant::now();
        create_background(&client, existing, level).await?;
        existing = existing.max(level);
        wait_synced(&client, &node, pod, level).await?;
        let build_s = built.elapsed().as_secs_f64();
        let metrics_before = scrape(&node, mode).await;
        let mut h = latency::new_histogram();
        for k in 0..args.changes {
            let t = program_one(&client, &node, pod, &format!("probe-{level}-{k}"), true).await?;
            latency::record(&mut h, t);
        }
        let metrics_after = scrape(&node, mode).await;
        let s = latency::summarize(&h);
        let (prog, sync) = match (&metrics_before, &metrics_after) {
            (Ok(b), Ok(a)) => (a.0.since(&b.0), a.1.since(&b.1)),
            (Err(e), _) | (_, Err(e)) => {
                println!("   ({e})");
                (Histogram::default(), Histogram::default())
            }
        };
        let connects = first_connect_latency(&node, cluster_ip, 80, 200).await;
        let connect_text = match connects {
            Some((p50, p99, 0)) => format!("{p50:>8.0} / {p99:<8.0}"),
            Some((p50, p99, failed)) => format!("{p50:>8.0} / {p99:<8.0} ({failed} of 200 failed)"),
            None => "all 200 failed".into(),
        };
        let kp = match (prog.mean(), prog.quantile_bound(0.5), prog.quantile_bound(0.99)) {
            (Some(m), Some(p50), Some(p99)) => {
                format!("{:.0} / {} / {} ms ({} obs)", m * 1e3, bound(p50), bound(p99), prog.count)
            }
            _ => "no observations".into(),
        };
        println!(
            "   {level:>8} {:>12.1} {:>12.1} {:>12.1} │ {kp:>32} {:>14} │ {connect_text}  (built in {build_s:.1} s)",
            s.p50_us / 1e3,
            s.p99_us / 1e3,
            s.max_us / 1e3,
            sync.mean().map_or("-".into(), |m| format!("{:.0}", m * 1e3)),
        );
        figures.levels.push(LevelFigures {
            services: level,
            p50_ms: s.p50_us / 1e3,
            p99_ms: s.p99_us / 1e3,
            kube_proxy_mean_ms: prog.mean().map(|m| m * 1e3),
            connect_p50_us: connects.map(|c| c.0),
        });
        usage_line(lab, &cpu_level, &format!("at {level} services (building + changes)"));
    }
    Ok(figures)
}

fn bound(le: f64) -> String {
    if le.is_infinite() { "+Inf".into() } else { format!("{:.0}", le * 1e3) }
}

fn usage_line(lab: &Lab, before: &BTreeMap<String, measure::Usage>, when: &str) {
    let now = measure::usage(lab.id());
    let parts: Vec<String> = now
        .iter()
        .filter(|(name, _)| !name.starts_with("svcbench") && name.as_str() != "ip")
        .map(|(name, u)| {
            let cpu = u.cpu_s - before.get(name).map_or(0.0, |b| b.cpu_s);
            format!("{name} {:.0} MiB / {cpu:.1} s CPU", u.rss_mib)
        })
        .collect();
    println!("   resources {when}: {}", parts.join(", "));
}

fn summary(modes: &[ModeFigures]) {
    println!("\n=== summary (ratios in this run)");
    for m in modes {
        if let Some(r) = m.via_over_direct {
            println!("{:<10} HTTP via ClusterIP / direct to pod: {r:.2}", m.mode.as_str());
        }
    }
    // Every other data plane against iptables mode, the oldest reference, measured in the same run.
    let Some(ipt) = modes.iter().find(|m| m.mode == ProxyMode::Iptables) else { return };
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if x > 0.0 && y.is_finite() => format!("{:.2}", y / x),
        _ => "-".into(),
    };
    for other in modes.iter().filter(|m| m.mode != ProxyMode::Iptables) {
        let name = other.mode.as_str();
        for (a, b) in ipt.levels.iter().zip(&other.levels) {
            println!(
                "{:>6} services: programming p50 {name}/iptables {}, p99 {}; kube-proxy metric mean {}; first connect \
                 p50 {}",
                a.services,
                ratio(Some(a.p50_ms), Some(b.p50_ms)),
                ratio(Some(a.p99_ms), Some(b.p99_ms)),
                ratio(a.kube_proxy_mean_ms, b.kube_proxy_mean_ms),
                ratio(a.connect_p50_us, b.connect_p50_us)
            );
        }
    }
}

/// A backend Deployment (2 netexec pods) behind Service `web`; waits for both endpoints. Returns the ClusterIP and the pod IPs.
async fn setup(client: &Client) -> anyhow::Result<(IpAddr, Vec<IpAddr>)> {
    let apply = |manifest: Value| async move { addons::apply(client, &manifest, "svcbench-bench").await };
    apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})).await?;
    let labels = json!({"app": "web"});
    apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "netexec", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                "args": ["netexec", format!("--http-port={POD_PORT}")]}]}}}}))
    .await?;
    apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": POD_PORT}]}}))
    .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await?;
        let ready: Vec<IpAddr> = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .filter_map(|e| e.addresses.first()?.parse().ok())
            .collect();
        if ready.len() >= 2 {
            let svc: Service = Api::namespaced(client.clone(), NS).get("web").await?;
            let ip = svc.spec.and_then(|s| s.cluster_ip).context("web has no ClusterIP")?.parse()?;
            return Ok((ip, ready));
        }
        if Instant::now() > deadline {
            bail!("the backend pods were not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A selector-less Service and its EndpointSlice (as a controller would write it; with `trigger`, the
/// `last-change-trigger-time` annotation that makes kube-proxy's programming-latency metric observe the change).
fn service_and_slice(name: &str, endpoints: &[IpAddr], port: u16, trigger: Option<&str>) -> (Service, EndpointSlice) {
    let annotations = match trigger {
        Some(t) => json!({"endpoints.kubernetes.io/last-change-trigger-time": t}),
        None => json!({}),
    };
    let service: Service = serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS},
        "spec": {"ports": [{"port": 80, "targetPort": port, "protocol": "TCP"}]}}))
    .expect("a valid Service");
    let slice: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": format!("{name}-1"), "namespace": NS,
            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "svcbench"},
            "annotations": annotations},
        "addressType": "IPv4",
        "ports": [{"port": port, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}})).collect::<Vec<_>>()}))
    .expect("a valid EndpointSlice");
    (service, slice)
}

/// Creates background services `from..to` (`bg-<i>`, 10 endpoints each on addresses no pod has), 32 at a time.
async fn create_background(client: &Client, from: u32, to: u32) -> anyhow::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in from..to {
        let permit = permits.clone().acquire_owned().await?;
        let client = client.clone();
        tasks.spawn(async move {
            let _permit = permit;
            // 10.244.128.0/17: beyond every node's podCIDR (nodes get 10.244.0.0/24, 10.244.1.0/24, …).
            let endpoints: Vec<IpAddr> = (0..10u32)
                .map(|j| {
                    let n = i * 10 + j;
                    IpAddr::V4(Ipv4Addr::new(10, 244, 128 + ((n >> 8) % 128) as u8, (n & 0xff) as u8))
                })
                .collect();
            // No trigger time: kube-proxy's metric then observes only the timed changes, the ones compared with it.
            let (svc, slice) = service_and_slice(&format!("bg-{i}"), &endpoints, POD_PORT, None);
            Api::<Service>::namespaced(client.clone(), NS).create(&PostParams::default(), &svc).await?;
            Api::<EndpointSlice>::namespaced(client, NS).create(&PostParams::default(), &slice).await?;
            anyhow::Ok(())
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Waits until kube-proxy has programmed everything created so far: a canary created last is reachable.
async fn wait_synced(client: &Client, node: &str, pod: IpAddr, level: u32) -> anyhow::Result<()> {
    // No trigger time: the canary's sync carries every new background service and must not count as a timed change.
    program_one(client, node, pod, &format!("canary-{level}"), false).await.map(drop)
}

/// Creates one Service + EndpointSlice pointing at a real pod and returns how long until a connection from the node
/// through its ClusterIP was accepted.
async fn program_one(client: &Client, node: &str, pod: IpAddr, name: &str, timed: bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let trigger = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    let (svc, slice) = service_and_slice(name, &[pod], POD_PORT, timed.then_some(trigger.as_str()));
    let created = Api::<Service>::namespaced(client.clone(), NS).create(&PostParams::default(), &svc).await?;
    Api::<EndpointSlice>::namespaced(client.clone(), NS).create(&PostParams::default(), &slice).await?;
    let ip: IpAddr = created.spec.and_then(|s| s.cluster_ip).context("no ClusterIP")?.parse()?;
    let accepted =
        measure::first_connect(node, SocketAddr::new(ip, 80), Duration::from_millis(5), Duration::from_secs(300))
            .await
            .with_context(|| format!("{name} ({ip}) never became reachable"))?;
    Ok(accepted.duration_since(started))
}

/// kube-proxy's programming-latency and sync-duration histograms (a histogram not exposed yet is empty).
///
/// # Errors
/// The metrics port did not answer 200.
async fn scrape(node: &str, mode: ProxyMode) -> Result<(Histogram, Histogram), String> {
    if !mode.runs_kube_proxy() {
        return Err("no kube-proxy: Cilium exports no network-programming metric (cilium/cilium#34147)".into());
    }
    let text = measure::http_get(node, SocketAddr::from(([127, 0, 0, 1], 10249)), "/metrics")
        .await
        .map_err(|e| format!("kube-proxy metrics: {e}"))?;
    let get = |name| measure::parse_histogram(&text, name).unwrap_or_default();
    Ok((get("kubeproxy_network_programming_duration_seconds"), get("kubeproxy_sync_proxy_rules_duration_seconds")))
}

/// `n` sequential new connections (connect only): p50 and p99, µs, and how many failed; `None` if none succeeded.
async fn first_connect_latency(node: &str, ip: IpAddr, port: u16, n: u32) -> Option<(f64, f64, u32)> {
    let addr = SocketAddr::new(ip, port);
    let measured = measure::run_in(node, move || async move {
        let mut h = latency::new_histogram();
        let mut failed = 0;
        for _ in 0..n {
            if measure::CANCELLED.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let t = Instant::now();
            if tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                latency::record(&mut h, t.elapsed());
            } else {
                failed += 1;
            }
        }
        (!h.is_empty()).then(|| {
            let s = latency::summarize(&h);
            (s.p50_us, s.p99_us, failed)
        })
    })
    .await;
    measured.ok().flatten()
}

fn context(dns: IpAddr) -> ProbeContext {
    ProbeContext {
        resolv_conf: ResolvConf { nameservers: vec![dns], search: Vec::new(), ndots: 1 },
        dialer: Dialer::default(),
        timeout: Duration::from_secs(2),
        hosts: Default::default(),
        http_pool: Default::default(),
        udp_flows: Default::default(),
    }
}

/// svcbench's HTTP load from the node: (answered/s, p99 µs, latency summary).
async fn http_load(
    node: &str,
    ip: IpAddr,
    port: u16,
    args: &LabBench,
    rate: Option<f64>,
) -> Option<(f64, f64, latency::LatencySummary)> {
    let spec = LoadSpec {
        host: ip.to_string(),
        port,
        path: "/hostname".into(),
        mode: ConnectionMode::KeepAlive,
        connections: args.connections,
        rate,
        requests: rate.map_or(u64::MAX, |r| (r * args.seconds as f64) as u64),
        duration: Duration::from_secs(args.seconds),
        timeout: Duration::from_secs(2),
        family: None,
        client_tolerance: crate::probe::pace::DEFAULT_TOLERANCE,
    };
    let ctx = context(ip);
    let outcome = measure::run_in(node, move || async move { probe::load::run(&ctx, &spec).await }).await.ok()?.ok()?;
    // Failed requests are not throughput, but they say why a figure is low.
    if !outcome.errors.is_empty() {
        println!(
            "   ({ip}:{port}: {} of {} requests failed: {:?})",
            outcome.sent - outcome.ok,
            outcome.sent,
            outcome.errors
        );
    }
    Some((outcome.ok as f64 / outcome.elapsed.as_secs_f64(), outcome.latency.p99_us, outcome.latency))
}

/// svcbench's DNS load from the node: (answered/s, p50 µs, p99 µs).
async fn dns_load(node: &str, server: IpAddr, names: &[String], seconds: u64) -> Option<(f64, f64, f64)> {
    let spec = DnsLoadSpec {
        names: names.to_vec(),
        rate: None,
        max_outstanding: super::bench::DNS_OUTSTANDING,
        source_ports: super::bench::DNS_SOURCE_PORTS,
        queries: u64::MAX,
        duration: Duration::from_secs(seconds),
        timeout: Duration::from_secs(2),
        client_tolerance: crate::probe::pace::DEFAULT_TOLERANCE,
    };
    let ctx = context(server);
    let o = measure::run_in(node, move || async move { probe::dnsload::run(&ctx, &spec).await }).await.ok()?.ok()?;
    Some((o.answered as f64 / o.elapsed.as_secs_f64(), o.latency.p50_us, o.latency.p99_us))
}

/// wrk (one thread, closed loop) from the node's namespace: requests/s.
fn wrk_in(node: &str, url: &str, args: &LabBench) -> Option<f64> {
    let out = crate::lab::control_plane::in_ns(node, std::path::Path::new("wrk"))
        .args(["-t1", &format!("-c{}", args.connections), &format!("-d{}s", args.seconds), url])
        .output()
        .ok()?;
    super::bench::wrk_requests_per_s(&String::from_utf8_lossy(&out.stdout))
}

/// The embedded reference DNS answering the same names, measured the same way (on loopback).
async fn reference_dns(args: &LabBench) {
    use crate::{
        scenario::{Action, DeploymentSpec, ServiceSpec},
        targets::{
            Target as _,
            embedded::{EmbeddedConfig, EmbeddedTarget},
        },
    };
    let Ok(target) = EmbeddedTarget::start(EmbeddedConfig::default()).await else {
        println!("   embedded target did not start");
        return;
    };
    let cluster = target.cluster().clone();
    for a in [
        Action::CreateNamespace { name: NS.into() },
        Action::CreateDeployment(DeploymentSpec::netexec(NS, "web", 2)),
        Action::CreateService(ServiceSpec::cluster_ip(NS, "web", "web", 80)),
    ] {
        let _ = cluster.apply(&a);
    }
    cluster.wait_programmed(cluster.snapshot().generation).await;
    let server =
        crate::probe::AddressMap::resolve(cluster.ports().as_ref(), SocketAddr::new(IpAddr::V4(cluster.dns_ip()), 53));
    let names = vec![format!("web.{NS}.svc.cluster.local."), format!("missing.{NS}.svc.cluster.local.")];
    let spec = DnsLoadSpec {
        names: names.clone(),
        rate: None,
        max_outstanding: super::bench::DNS_OUTSTANDING,
        source_ports: super::bench::DNS_SOURCE_PORTS,
        queries: u64::MAX,
        duration: Duration::from_secs(args.seconds),
        timeout: Duration::from_secs(2),
        client_tolerance: crate::probe::pace::DEFAULT_TOLERANCE,
    };
    let ctx = target.probe_context(NS);
    let ours = match ctx {
        Ok(ctx) => probe::dnsload::run(&ctx, &spec).await.ok(),
        Err(_) => None,
    };
    let theirs = super::bench::dnsperf(None, server, &names, args.seconds);
    println!(
        "   {:<34} svcbench {:>8.0} q/s (p50 {:.0} µs, p99 {:.0} µs)   dnsperf {}",
        "svcbench reference DNS",
        ours.as_ref().map_or(f64::NAN, |o| o.answered as f64 / o.elapsed.as_secs_f64()),
        ours.as_ref().map_or(f64::NAN, |o| o.latency.p50_us),
        ours.as_ref().map_or(f64::NAN, |o| o.latency.p99_us),
        theirs.map_or("no result".into(), |t| format!("{t:.0} q/s"))
    );
    target.shutdown().await;
}
