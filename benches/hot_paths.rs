//! Criterion benchmarks of svcbench's hot paths: answering a DNS question from the cluster state, a request through
//! the embedded proxy (against the same request straight to the pod), and the statistics.

use std::{collections::BTreeMap, hint::black_box, net::Ipv4Addr, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::rr::{Name, RecordType};
use svcbench::{
    probe::{load, load::ConnectionMode},
    scenario::{Action, DeploymentSpec, IpFamily, ObjectRef, Protocol, ServiceSpec, TargetPort},
    stats::{Fairness, latency},
    targets::{
        embedded::{
            EmbeddedConfig, EmbeddedTarget, dns,
            state::{Pod, Service, Snapshot},
        },
        model::ServicePortView,
    },
};

/// A snapshot with 1,000 ClusterIP services and 1,000 headless ones over 10 pods each.
fn snapshot() -> Snapshot {
    let mut s = Snapshot::new("cluster.local");
    s.namespaces.insert("bench".into());
    let port = ServicePortView {
        name: Some("http".into()),
        port: 80,
        target_port: TargetPort::Number(80),
        protocol: Protocol::Tcp,
        node_port: None,
    };
    for d in 0..100u32 {
        let selector: BTreeMap<String, String> = [("app".to_owned(), format!("w{d}"))].into();
        for p in 0..10u32 {
            let n = d * 10 + p;
            s.pods.insert(
                ObjectRef { namespace: "bench".into(), name: format!("w{d}-{p}") },
                Pod {
                    ip: Ipv4Addr::new(127, 1, 128 + (n / 250) as u8, (n % 250 + 2) as u8),
                    ip6: svcbench::targets::embedded::ipam::v6_twin(Ipv4Addr::new(
                        127,
                        1,
                        128 + (n / 250) as u8,
                        (n % 250 + 2) as u8,
                    )),
                    labels: selector.clone(),
                    deployment: format!("w{d}"),
                    ready: true,
                    terminating: false,
                    seq: u64::from(n),
                    ports: vec![],
                    hostname: None,
                    subdomain: None,
                    node: p % 2,
                },
            );
        }
        for i in 0..10u32 {
            let n = d * 10 + i;
            let ip = Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 11) as u8);
            let svc = Service {
                cluster_ips: vec![std::net::IpAddr::V4(ip)],
                families: vec![IpFamily::IPv4],
                selector: selector.clone(),
                ports: vec![port.clone()],
                ..Default::default()
            };
            s.services.insert(ObjectRef { namespace: "bench".into(), name: format!("s{n}") }, svc);
            let headless = Service {
                families: vec![IpFamily::IPv4],
                selector: selector.clone(),
                ports: vec![port.clone()],
                ..Default::default()
            };
            s.services.insert(ObjectRef { namespace: "bench".into(), name: format!("h{n}") }, headless);
        }
    }
    s.reconcile();
    s
}

fn dns_answer(c: &mut Criterion) {
    let s = snapshot();
    let mut g = c.benchmark_group("dns_answer");
    for (label, name, t) in [
        ("clusterip_a", "s500.bench.svc.cluster.local.", RecordType::A),
        ("headless_a_10", "h500.bench.svc.cluster.local.", RecordType::A),
        ("headless_srv_10", "_http._tcp.h500.bench.svc.cluster.local.", RecordType::SRV),
        ("nxdomain", "nope.bench.svc.cluster.local.", RecordType::A),
        ("ptr", "11.0.1.127.in-addr.arpa.", RecordType::PTR),
    ] {
        let name = Name::from_ascii(name).unwrap();
        g.bench_function(label, |b| b.iter(|| black_box(dns::answer(&s, black_box(&name), t))));
    }
    g.finish();
}

fn statistics(c: &mut Criterion) {
    let counts: Vec<u64> = (0..100).map(|i| 1000 + (i * 37) % 50).collect();
    c.bench_function("fairness_100_backends", |b| b.iter(|| black_box(Fairness::of(black_box(&counts)))));
    let mut h = latency::new_histogram();
    for i in 0..100_000u64 {
        latency::record(&mut h, Duration::from_micros(100 + (i * 7919) % 10_000));
    }
    c.bench_function("latency_summarize_100k", |b| b.iter(|| black_box(latency::summarize(black_box(&h)))));
    c.bench_function("latency_record", |b| {
        let mut h = latency::new_histogram();
        b.iter(|| latency::record(&mut h, black_box(Duration::from_micros(1234))))
    });
}

fn proxy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let _runtime = rt.enter();
    let target = rt.block_on(EmbeddedTarget::start(EmbeddedConfig::default())).unwrap();
    let cluster = target.cluster().clone();
    for a in [
        Action::CreateNamespace { name: "bench".into() },
        Action::CreateDeployment(DeploymentSpec::netexec("bench", "web", 1)),
        Action::CreateService(ServiceSpec::cluster_ip("bench", "web", "web", 80)),
    ] {
        cluster.apply(&a).unwrap();
    }
    rt.block_on(cluster.wait_programmed(cluster.snapshot().generation));
    let snap = cluster.snapshot();
    let vip = snap.services.values().next().unwrap().cluster_ips[0];
    let pod = std::net::IpAddr::V4(snap.pods.values().next().unwrap().ip);
    let ctx = target.probe_context("bench").unwrap();
    let mut g = c.benchmark_group("http_100_requests_new_connection");
    g.sample_size(20);
    for (label, host) in [("via_proxy", vip), ("direct_to_pod", pod)] {
        let spec = load::LoadSpec {
            host: host.to_string(),
            port: 80,
            path: "/hostname".into(),
            mode: ConnectionMode::NewConnection,
            connections: 4,
            rate: None,
            requests: 100,
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            family: None,
            client_tolerance: svcbench::probe::pace::DEFAULT_TOLERANCE,
        };
        g.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async { black_box(load::run(&ctx, &spec).await.unwrap()) })
        });
    }
    g.finish();
}

criterion_group!(benches, dns_answer, statistics, proxy);
criterion_main!(benches);
