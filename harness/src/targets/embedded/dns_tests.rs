//! Tests of the zone logic of [`super`]: answers as pure functions of a snapshot.

use std::collections::BTreeMap;

use super::*;
use crate::{
    scenario::{IpFamily, Protocol, TargetPort},
    targets::{
        embedded::state::{Pod, Service},
        model::ServicePortView,
    },
};

fn snap() -> Snapshot {
    let mut s = Snapshot::new("cluster.local");
    s.namespaces.insert("test".into());
    let key = |n: &str| ObjectRef { namespace: "test".into(), name: n.into() };
    let port = ServicePortView {
        name: Some("http".into()),
        port: 80,
        target_port: TargetPort::Number(8080),
        protocol: Protocol::Tcp,
        node_port: None,
    };
    let sel: BTreeMap<String, String> = [("app".to_owned(), "web".to_owned())].into();
    s.services.insert(
        key("web"),
        Service {
            cluster_ips: vec![IpAddr::V4(Ipv4Addr::new(127, 1, 0, 20))],
            families: vec![IpFamily::IPv4],
            selector: sel.clone(),
            ports: vec![port.clone()],
            ..Default::default()
        },
    );
    s.services.insert(
        key("dual"),
        Service {
            cluster_ips: vec!["fd00:10:96:1::15".parse().unwrap(), IpAddr::V4(Ipv4Addr::new(127, 1, 0, 21))],
            families: vec![IpFamily::IPv6, IpFamily::IPv4],
            selector: sel.clone(),
            ports: vec![port.clone()],
            ..Default::default()
        },
    );
    s.services.insert(
        key("dual-h"),
        Service {
            families: vec![IpFamily::IPv4, IpFamily::IPv6],
            selector: sel.clone(),
            ports: vec![port.clone()],
            ..Default::default()
        },
    );
    s.services.insert(
        key("web-h"),
        Service { families: vec![IpFamily::IPv4], selector: sel.clone(), ports: vec![port], ..Default::default() },
    );
    s.services.insert(
        key("empty-h"),
        Service {
            families: vec![IpFamily::IPv4],
            selector: [("app".to_owned(), "x".to_owned())].into(),
            ports: vec![],
            ..Default::default()
        },
    );
    for (i, ready) in [(2u8, true), (3, true), (4, false)] {
        s.pods.insert(
            key(&format!("web-{i}")),
            Pod {
                ip: Ipv4Addr::new(127, 1, 128, i),
                ip6: crate::targets::embedded::ipam::v6_twin(Ipv4Addr::new(127, 1, 128, i)),
                labels: sel.clone(),
                deployment: "web".into(),
                ready,
                terminating: false,
                seq: u64::from(i),
                ports: vec![],
                hostname: None,
                subdomain: None,
                node: 0,
            },
        );
    }
    s.reconcile();
    s
}

fn q(s: &Snapshot, name: &str, t: RecordType) -> ZoneAnswer {
    answer(s, &Name::from_ascii(name).unwrap(), t)
}

fn ips(a: &ZoneAnswer) -> Vec<String> {
    let mut v: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

#[test]
fn cluster_ip_a_and_case_insensitivity() {
    let s = snap();
    let a = q(&s, "WEB.Test.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(ips(&a), ["127.1.0.20"]);
    let aaaa = q(&s, "web.test.svc.cluster.local.", RecordType::AAAA);
    assert_eq!((aaaa.rcode, aaaa.answers.len(), aaaa.soa.is_some()), (ResponseCode::NoError, 0, true));
}

#[test]
fn headless_lists_ready_endpoints_only() {
    let s = snap();
    assert_eq!(ips(&q(&s, "web-h.test.svc.cluster.local.", RecordType::A)), ["127.1.128.2", "127.1.128.3"]);
    let e = q(&s, "empty-h.test.svc.cluster.local.", RecordType::A);
    assert_eq!(e.rcode, ResponseCode::NXDomain);
    assert!(e.soa.is_some());
    assert_eq!(ips(&q(&s, "127-1-128-3.web-h.test.svc.cluster.local.", RecordType::A)), ["127.1.128.3"]);
}

#[test]
fn negative_answers() {
    let s = snap();
    assert_eq!(q(&s, "nope.test.svc.cluster.local.", RecordType::A).rcode, ResponseCode::NXDomain);
    let ns = q(&s, "test.svc.cluster.local.", RecordType::A);
    assert_eq!((ns.rcode, ns.answers.len()), (ResponseCode::NoError, 0));
    assert_eq!(q(&s, "other.svc.cluster.local.", RecordType::A).rcode, ResponseCode::NXDomain);
    assert_eq!(q(&s, "a.b.web.test.svc.cluster.local.", RecordType::A).rcode, ResponseCode::NXDomain);
    assert_eq!(q(&s, "web.", RecordType::A).rcode, ResponseCode::NXDomain);
}

#[test]
fn srv_ptr_txt() {
    let s = snap();
    let srv = q(&s, "_http._tcp.web.test.svc.cluster.local.", RecordType::SRV);
    assert_eq!(ips(&srv), ["0 100 80 web.test.svc.cluster.local."]);
    let hsrv = q(&s, "_http._tcp.web-h.test.svc.cluster.local.", RecordType::SRV);
    assert_eq!(hsrv.answers.len(), 2);
    assert!(ips(&hsrv)[0].contains(" 8080 127-1-128-2.web-h.test.svc.cluster.local."));
    let ptr = q(&s, "20.0.1.127.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ips(&ptr), ["web.test.svc.cluster.local."]);
    let txt = q(&s, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(ips(&txt), ["1.1.0"]);
}

#[test]
fn dual_stack_answers_one_record_per_family_and_ip6_arpa() {
    let s = snap();
    // A dual-stack Service: one A and one AAAA, whatever its primary family.
    assert_eq!(ips(&q(&s, "dual.test.svc.cluster.local.", RecordType::A)), ["127.1.0.21"]);
    assert_eq!(ips(&q(&s, "dual.test.svc.cluster.local.", RecordType::AAAA)), ["fd00:10:96:1::15"]);
    // Headless: the ready pods' addresses of the family asked.
    assert_eq!(ips(&q(&s, "dual-h.test.svc.cluster.local.", RecordType::A)), ["127.1.128.2", "127.1.128.3"]);
    assert_eq!(
        ips(&q(&s, "dual-h.test.svc.cluster.local.", RecordType::AAAA)),
        ["fd00:10:244:1::8002", "fd00:10:244:1::8003"]
    );
    // An endpoint without a hostname is named by its address with dashes, as CoreDNS names it.
    assert_eq!(
        ips(&q(&s, "fd00-10-244-1--8003.dual-h.test.svc.cluster.local.", RecordType::AAAA)),
        ["fd00:10:244:1::8003"]
    );
    // PTR of the IPv6 ClusterIP and of a headless pod address, by their 32-nibble ip6.arpa names.
    let ptr = |ip: &str| {
        let name = crate::runner::check::reverse_name(ip.parse().unwrap());
        ips(&q(&s, &name, RecordType::PTR))
    };
    assert_eq!(ptr("fd00:10:96:1::15"), ["dual.test.svc.cluster.local."]);
    assert_eq!(ptr("fd00:10:244:1::8002"), ["fd00-10-244-1--8002.dual-h.test.svc.cluster.local."]);
    assert_eq!(q(&s, "5.1.0.0.ip6.arpa.", RecordType::PTR).rcode, ResponseCode::NXDomain);
}
