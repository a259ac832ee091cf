//! Tests of the control plane's snapshot: the EndpointSlice controller, the proxy table, incremental reconcile.

use super::*;
use crate::scenario::{Protocol, TargetPort};

fn pod(ip: u8, ready: bool, seq: u64, ports: Vec<ContainerPort>) -> Pod {
    Pod {
        ip: Ipv4Addr::new(127, 1, 128, ip),
        ip6: super::super::ipam::v6_twin(Ipv4Addr::new(127, 1, 128, ip)),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        deployment: "web".into(),
        ready,
        terminating: false,
        seq,
        ports,
        hostname: None,
        subdomain: None,
        node: 0,
    }
}

fn service(cluster_ip: Option<Ipv4Addr>, app: &str, ports: Vec<ServicePortView>) -> Service {
    Service {
        cluster_ips: cluster_ip.map(IpAddr::V4).into_iter().collect(),
        families: vec![IpFamily::IPv4],
        selector: [("app".to_owned(), app.to_owned())].into(),
        ports,
        publish_not_ready: false,
        session_affinity: None,
        external_name: None,
        shadow_vip: None,
        exposure: Exposure::default(),
        health_check_node_port: None,
    }
}

fn key(name: &str) -> ObjectRef {
    ObjectRef { namespace: "test".into(), name: name.into() }
}

#[test]
fn named_target_port_resolves_per_pod_and_not_ready_is_kept() {
    let svc = service(
        Some(Ipv4Addr::new(127, 1, 0, 20)),
        "web",
        vec![ServicePortView {
            name: Some("http".into()),
            port: 80,
            target_port: TargetPort::Name("web".into()),
            protocol: Protocol::Tcp,
            node_port: None,
        }],
    );
    let mut pods = BTreeMap::new();
    pods.insert(key("a"), pod(2, true, 1, vec![ContainerPort { name: Some("web".into()), port: 8080 }]));
    pods.insert(key("b"), pod(3, false, 2, vec![ContainerPort { name: Some("web".into()), port: 9090 }]));
    let slices = endpoint_slices(&key("svc"), &svc, &pods, &[], &Faults::default());
    assert_eq!(slices.len(), 2);
    let ports: BTreeSet<u16> = slices.iter().map(|s| s.ports[0].port).collect();
    assert_eq!(ports, [8080, 9090].into());
    let services = BTreeMap::from([(key("svc"), svc)]);
    let table = proxy_table(&services, &BTreeMap::from([(key("svc"), slices)]), &Faults::default());
    assert_eq!(*table.values().next().unwrap().backends, vec!["127.1.128.2:8080".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn empty_selector_match_gives_one_empty_slice_and_no_backends() {
    let svc = service(
        Some(Ipv4Addr::new(127, 1, 0, 20)),
        "none",
        vec![ServicePortView {
            name: None,
            port: 80,
            target_port: TargetPort::Number(80),
            protocol: Protocol::Tcp,
            node_port: None,
        }],
    );
    let slices = endpoint_slices(&key("svc"), &svc, &BTreeMap::new(), &[], &Faults::default());
    assert_eq!(slices.len(), 1);
    assert!(slices[0].endpoints.is_empty());
    let table =
        proxy_table(&BTreeMap::from([(key("svc"), svc)]), &BTreeMap::from([(key("svc"), slices)]), &Faults::default());
    assert!(table.is_empty());
}

/// The incremental reconcile must always equal a from-scratch one, whatever the sequence of changes.
#[test]
fn incremental_reconcile_matches_full_recompute() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let mut rng = StdRng::seed_from_u64(7);
    let mut snap = Snapshot::new("cluster.local");
    let apps = ["a", "b", "c"];
    let mut seq = 0u64;
    for step in 0..400 {
        let before = snap.clone();
        match rng.random_range(0..6) {
            0 | 1 => {
                seq += 1;
                let app = apps[rng.random_range(0..apps.len())];
                let mut p = pod(
                    (seq % 250) as u8 + 2,
                    rng.random_bool(0.7),
                    seq,
                    vec![ContainerPort { name: Some("web".into()), port: 8080 + (seq % 2) as u16 }],
                );
                p.labels = [("app".to_owned(), app.to_owned())].into();
                snap.pods.insert(key(&format!("p{seq}")), p);
            }
            2 => {
                if let Some(k) = snap.pods.keys().nth(rng.random_range(0..snap.pods.len().max(1))).cloned() {
                    if rng.random_bool(0.5) {
                        snap.pods.remove(&k);
                    } else if let Some(p) = snap.pods.get_mut(&k) {
                        p.ready = !p.ready;
                        p.terminating = rng.random_bool(0.2);
                    }
                }
            }
            3 | 4 => {
                let app = apps[rng.random_range(0..apps.len())];
                let named = rng.random_bool(0.5);
                // ClusterIPs are unique per service, as the allocator guarantees.
                let n: u8 = rng.random_range(0..8);
                let mut svc = service(
                    rng.random_bool(0.7).then(|| Ipv4Addr::new(127, 1, 0, 11 + n)),
                    app,
                    vec![ServicePortView {
                        name: named.then(|| "http".to_owned()),
                        port: 80,
                        target_port: if named { TargetPort::Name("web".into()) } else { TargetPort::Number(8080) },
                        protocol: Protocol::Tcp,
                        node_port: None,
                    }],
                );
                svc.publish_not_ready = rng.random_bool(0.2);
                snap.services.insert(key(&format!("s{n}")), svc);
            }
            _ => {
                if let Some(k) = snap.services.keys().nth(rng.random_range(0..snap.services.len().max(1))).cloned() {
                    snap.services.remove(&k);
                }
            }
        }
        snap.reconcile_changes(&before);
        let mut full = Snapshot::new("cluster.local");
        full.services = snap.services.clone();
        full.pods = snap.pods.clone();
        full.reconcile();
        // Stored slices are shared between services with the same endpoints; compare them as each is read.
        let views = |s: &Snapshot| -> Vec<(ObjectRef, Vec<EndpointSliceView>)> {
            s.slices.keys().map(|k| (k.clone(), s.slice_views(k))).collect()
        };
        assert_eq!(views(&snap), views(&full), "slices differ after step {step}");
        assert_eq!(snap.proxy, full.proxy, "proxy differs after step {step}");
        assert_eq!(snap.unbacked, full.unbacked, "unbacked differs after step {step}");
        assert_eq!(snap.ip_owners, full.ip_owners, "reverse index differs after step {step}");
    }
}
