//! Tests of the zone logic of [`super`]: answers as pure functions of a snapshot.

use std::collections::BTreeMap;

use super::*;
use crate::{
    scenario::{Protocol, TargetPort},
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
            cluster_ip: Some(Ipv4Addr::new(127, 1, 0, 20)),
            selector: sel.clone(),
            ports: vec![port.clone()],
            ..Default::default()
        },
    );
    s.services.insert(
        key("web-h"),
        Service { cluster_ip: None, selector: sel.clone(), ports: vec![port], ..Default::default() },
    );
    s.services.insert(
        key("empty-h"),
        Service {
            cluster_ip: None,
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
