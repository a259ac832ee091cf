//! `svcbench bench`: svcbench's generators against the reference tools, in one run against the same embedded target,
//! printed as pairs and ratios; plus the proxy's cost and the control plane's programming latency at scale.

use std::{
    net::{IpAddr, SocketAddr},
    process::{Command, ExitCode},
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Args;

use super::EXIT_INVALID;
use crate::lab::ProxyMode;
use crate::{
    probe::{
        self, AddressMap,
        dnsload::DnsLoadSpec,
        load::{ConnectionMode, LoadSpec},
    },
    scenario::{Action, DeploymentSpec, ObjectRef, ServiceSpec},
    stats::latency,
    targets::{
        Target,
        embedded::{Cluster, EmbeddedConfig, EmbeddedTarget},
    },
};

/// Arguments of `svcbench bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Connections (HTTP) for both generators.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Services for the programming-latency measurement, 10 endpoints each (default: 10000; with `--target lab`
    /// a comma-separated list of levels, default 100,1000,5000,10000).
    #[arg(long, value_delimiter = ',')]
    services: Vec<u32>,
    /// Changes to time for the programming latency (per level; default 50, with `--target lab` 20).
    #[arg(long)]
    changes: Option<u32>,
    /// What to measure: the embedded target against the reference tools, or the lab's real implementations.
    #[arg(long, value_enum, default_value_t = BenchTarget::Embedded)]
    target: BenchTarget,
    /// Service data planes for `--target lab` (kube-proxy modes; `cilium` on request).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ProxyMode::Iptables, ProxyMode::Nftables])]
    proxy_modes: Vec<ProxyMode>,
    /// Requests/s of the open-loop HTTP measurement of `--target lab`.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Releases of `--target lab`.
    #[command(flatten)]
    releases: super::lab::ReleaseArgs,
}

/// What `svcbench bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchTarget {
    /// The embedded target, with svcbench's generators beside wrk and dnsperf.
    Embedded,
    /// The lab: kube-proxy iptables vs nftables, CoreDNS vs NodeLocal DNSCache vs the reference DNS.
    Lab,
}

fn deployment(ns: &str, name: &str, replicas: u32) -> Action {
    Action::CreateDeployment(DeploymentSpec::netexec(ns, name, replicas))
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok() || Command::new(tool).arg("-h").output().is_ok()
}

/// One line of the comparison table.
fn pair(what: &str, ours: f64, theirs: Option<f64>, unit: &str) {
    match theirs {
        Some(t) if t > 0.0 => {
            println!("{what:<46} svcbench {ours:>12.0} {unit:<6} reference {t:>12.0} {unit:<6} ratio {:.2}", ours / t)
        }
        _ => println!("{what:<46} svcbench {ours:>12.0} {unit:<6} reference (not installed / no result)"),
    }
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs wrk and returns (requests/s, p99 µs).
fn wrk(url: &str, connections: u32, seconds: u64, close: bool) -> Option<(f64, f64)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = wrk_requests_per_s(&text)?;
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(parse_wrk_time);
    Some((rps, p99.unwrap_or(f64::NAN)))
}

/// wrk's `Requests/sec:` figure.
pub fn wrk_requests_per_s(stdout: &str) -> Option<f64> {
    stdout.lines().find(|l| l.starts_with("Requests/sec:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn parse_wrk_time(s: &str) -> Option<f64> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map(|i| s.split_at(i))?;
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1e3,
        "s" => v * 1e6,
        _ => return None,
    })
}

/// DNS load shape of both generators: source ports (dnsperf `-c`) and queries in flight (dnsperf `-q`).
pub const DNS_SOURCE_PORTS: usize = 128;
/// See [`DNS_SOURCE_PORTS`].
pub const DNS_OUTSTANDING: usize = 100;

/// Runs dnsperf (inside network namespace `netns`, if given) and returns queries/s.
pub fn dnsperf(netns: Option<&str>, server: SocketAddr, names: &[String], seconds: u64) -> Option<f64> {
    let dir = tempfile_dir()?;
    let data = dir.join("queries.txt");
    std::fs::write(&data, names.iter().map(|n| format!("{n} A\n")).collect::<String>()).ok()?;
    let mut cmd = match netns {
        Some(ns) => crate::lab::control_plane::in_ns(ns, std::path::Path::new("dnsperf")),
        None => Command::new("dnsperf"),
    };
    let out = cmd
        .args(["-s", &server.ip().to_string(), "-p", &server.port().to_string(), "-d"])
        .arg(&data)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            &DNS_SOURCE_PORTS.to_string(),
            "-q",
            &DNS_OUTSTANDING.to_string(),
            "-T",
            "2",
        ])
        .output()
        .ok();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out?.stdout).into_owned();
    text.lines().find(|l| l.trim_start().starts_with("Queries per second:"))?.split(':').nth(1)?.trim().parse().ok()
}

fn tempfile_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("svcbench-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

pub async fn bench(args: BenchArgs) -> ExitCode {
    if args.target != BenchTarget::Lab && args.releases.given() {
        eprintln!("error: --kubernetes and --coredns choose the releases of `--target lab`");
        return ExitCode::from(EXIT_INVALID);
    }
    if args.target == BenchTarget::Lab {
        if !(args.rate.is_finite() && (1.0..=1e6).contains(&args.rate)) {
            eprintln!("error: --rate must be between 1 and 1000000 requests/s");
            return ExitCode::from(EXIT_INVALID);
        }
        if !(1..=3600).contains(&args.seconds) || args.changes.is_some_and(|c| !(1..=10_000).contains(&c)) {
            eprintln!("error: --seconds must be 1–3600 and --changes 1–10000");
            return ExitCode::from(EXIT_INVALID);
        }
        if args.services.iter().any(|&n| n > 50_000) {
            eprintln!("error: --services levels above 50000 exceed what one lab node is sized for");
            return ExitCode::from(EXIT_INVALID);
        }
        let services = if args.services.is_empty() { vec![100, 1_000, 5_000, 10_000] } else { args.services.clone() };
        return super::bench_lab::bench_lab(super::bench_lab::LabBench {
            seconds: args.seconds,
            connections: args.connections,
            rate: args.rate,
            services,
            changes: args.changes.unwrap_or(20),
            modes: args.proxy_modes.clone(),
            versions: args.releases.versions(),
        })
        .await;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "svcbench bench: {cores} cores shared by the generators and the system under test; medians over runs are more telling than one run.\n"
    );
    let target = match EmbeddedTarget::start(EmbeddedConfig::default()).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let setup = [
        Action::CreateNamespace { name: "bench".into() },
        deployment("bench", "web", 4),
        Action::CreateService(ServiceSpec::cluster_ip("bench", "web", "web", 80)),
    ];
    for a in &setup {
        if let Err(e) = target.cluster().apply(a) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    }
    let cluster = target.cluster().clone();
    cluster.wait_programmed(cluster.snapshot().generation).await;
    let snap = cluster.snapshot();
    let ports = cluster.ports();
    let key = ObjectRef { namespace: "bench".into(), name: "web".into() };
    let cip = *snap.services[&key].cluster_ips.first().expect("ClusterIP service");
    let pod_ip = IpAddr::V4(snap.deployment_pods(&ObjectRef { namespace: "bench".into(), name: "web".into() })[0].1.ip);
    let vip = ports.resolve(SocketAddr::new(cip, 80));
    let ctx = match target.probe_context("bench") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let duration = Duration::from_secs(args.seconds);
    let load = |host: IpAddr, mode| LoadSpec {
        host: host.to_string(),
        port: 80,
        path: "/hostname".into(),
        mode,
        connections: args.connections,
        rate: None,
        requests: u64::MAX,
        duration,
        timeout: Duration::from_secs(2),
        family: None,
        client_tolerance: crate::probe::pace::DEFAULT_TOLERANCE,
    };
    let run_load = |spec: LoadSpec| {
        let ctx = ctx.clone();
        async move { probe::load::run(&ctx, &spec).await.ok() }
    };

    println!("== HTTP through the ClusterIP ({} connections, closed loop, {}s each)", args.connections, args.seconds);
    let wrk_ok = have("wrk");
    for (mode, close, label) in [
        (ConnectionMode::KeepAlive, false, "keep-alive"),
        (ConnectionMode::NewConnection, true, "new connection per request"),
    ] {
        let ours = run_load(load(cip, mode)).await;
        let theirs =
            if wrk_ok { wrk(&format!("http://{vip}/hostname"), args.connections, args.seconds, close) } else { None };
        if let Some(o) = &ours {
            let rps = o.ok as f64 / o.elapsed.as_secs_f64();
            pair(&format!("requests/s, {label} (vs wrk)"), rps, theirs.map(|t| t.0), "req/s");
            println!(
                "{:<46} svcbench p99 {:>8.0} µs            wrk p99 {:>8.0} µs (wrk's closed loop has coordinated omission)",
                "",
                o.latency.p99_us,
                theirs.map_or(f64::NAN, |t| t.1)
            );
        }
    }

    println!("\n== Proxy cost: through the ClusterIP vs straight to one pod (keep-alive)");
    let via = run_load(load(cip, ConnectionMode::KeepAlive)).await;
    let straight = run_load(load(pod_ip, ConnectionMode::KeepAlive)).await;
    if let (Some(v), Some(s)) = (via, straight) {
        let (vr, sr) = (v.ok as f64 / v.elapsed.as_secs_f64(), s.ok as f64 / s.elapsed.as_secs_f64());
        pair("requests/s via proxy (reference: direct)", vr, Some(sr), "req/s");
        println!(
            "{:<46} p99 added by the proxy: {:.0} µs (p50 added {:.0} µs)",
            "",
            v.latency.p99_us - s.latency.p99_us,
            v.latency.p50_us - s.latency.p50_us
        );
    }

    println!("\n== DNS ({}s, 128 source ports, 100 outstanding)", args.seconds);
    let names = vec!["web.bench.svc.cluster.local.".to_owned(), "missing.bench.svc.cluster.local.".to_owned()];
    let dns_spec = DnsLoadSpec {
        names: names.clone(),
        rate: None,
        max_outstanding: DNS_OUTSTANDING,
        source_ports: DNS_SOURCE_PORTS,
        queries: u64::MAX,
        duration,
        timeout: Duration::from_secs(2),
        client_tolerance: crate::probe::pace::DEFAULT_TOLERANCE,
    };
    let ours = probe::dnsload::run(&ctx, &dns_spec).await.ok();
    let dns_addr = ports.resolve(SocketAddr::new(IpAddr::V4(cluster.dns_ip()), 53));
    let theirs = if have("dnsperf") { dnsperf(None, dns_addr, &names, args.seconds) } else { None };
    if let Some(o) = ours {
        pair("queries/s (vs dnsperf)", o.answered as f64 / o.elapsed.as_secs_f64(), theirs, "q/s");
        println!(
            "{:<46} svcbench p50 {:.0} µs, p99 {:.0} µs, timeouts {}",
            "", o.latency.p50_us, o.latency.p99_us, o.timeouts
        );
    }
    target.shutdown().await;
    drop(target);

    let services = args.services.iter().copied().max().unwrap_or(10_000);
    println!("\n== Programming latency at {services} services × 10 endpoints");
    programming_latency(services, args.changes.unwrap_or(50)).await;
    if let Some(rss) = rss_mib() {
        println!("process memory (VmRSS): {rss:.0} MiB");
    }
    ExitCode::SUCCESS
}

/// Builds `services` services (10 endpoints each, over 100 deployments of 10 pods), then times `changes` pod readiness
/// flips from the API change until the proxy has programmed it.
async fn programming_latency(services: u32, changes: u32) {
    let target = match EmbeddedTarget::start(EmbeddedConfig::default()).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return;
        }
    };
    let cluster: Arc<Cluster> = target.cluster().clone();
    let started = Instant::now();
    let deployments = 100u32.min(services.max(1));
    let per = services / deployments;
    let mut ok = cluster.apply(&Action::CreateNamespace { name: "scale".into() }).is_ok();
    for d in 0..deployments {
        ok &= cluster.apply(&deployment("scale", &format!("w{d}"), 10)).is_ok();
        ok &= cluster
            .apply(&Action::CreateServices {
                namespace: "scale".into(),
                deployment: format!("w{d}"),
                prefix: format!("s{d}"),
                count: per,
                port: 80,
            })
            .is_ok();
    }
    cluster.wait_programmed(cluster.snapshot().generation).await;
    let endpoints: usize = cluster.snapshot().slices.values().flat_map(|v| v.iter()).map(|s| s.endpoints.len()).sum();
    println!(
        "built {} services, {endpoints} endpoints in {:.1}s (ok: {ok})",
        cluster.snapshot().services.len(),
        started.elapsed().as_secs_f64()
    );
    let mut h = latency::new_histogram();
    for i in 0..changes {
        let d = ObjectRef { namespace: "scale".into(), name: format!("w{}", i % deployments) };
        let t = Instant::now();
        let _ = cluster.apply(&Action::SetPodReady {
            pod: crate::scenario::PodRef { deployment: d, index: 0 },
            ready: i % 2 == 1,
        });
        cluster.wait_programmed(cluster.snapshot().generation).await;
        latency::record(&mut h, t.elapsed());
    }
    let s = latency::summarize(&h);
    println!(
        "API change → proxy programmed: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} changes",
        s.p50_us / 1e3,
        s.p99_us / 1e3,
        s.max_us / 1e3,
        s.count
    );
    target.shutdown().await;
}
