//! The embedded DNS at the protocol's edges, over real UDP packets: opcodes other than QUERY get NOTIMP, classes
//! other than IN get REFUSED, an EDNS version above 0 gets BADVERS (RFC 6891), as an authoritative server answers;
//! and ordinary queries still answer; an answer too large for UDP is cut to whole records with TC set.

use std::net::{IpAddr, SocketAddr};

use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::proto::{
    op::{Edns, Message, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RecordType},
};
use svcbench::{
    probe::AddressMap,
    targets::embedded::{EmbeddedConfig, EmbeddedTarget},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UdpSocket,
};

async fn ask(server: SocketAddr, message: Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&message.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .expect("an answer within 2 s")
        .unwrap();
    Message::from_vec(&buf[..n]).expect("a well-formed answer")
}

fn query(name: &str, class: DNSClass) -> Message {
    let mut message = Message::query();
    message.metadata.id = rand_id();
    let mut q = Query::query(Name::from_ascii(name).unwrap(), RecordType::SOA);
    q.set_query_class(class);
    message.add_query(q);
    message
}

fn rand_id() -> u16 {
    u16::try_from(std::process::id() % 60_000).unwrap_or(1) + 1
}

#[tokio::test]
async fn opcodes_classes_and_edns_versions_are_answered_as_an_authoritative_server_does() {
    let target = EmbeddedTarget::start(EmbeddedConfig::default()).await.unwrap();
    let cluster = target.cluster();
    let server = cluster.ports().resolve(SocketAddr::new(IpAddr::V4(cluster.dns_ip()), 53));

    let ok = ask(server, query("cluster.local.", DNSClass::IN)).await;
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ok.answers.len(), 1, "the zone's SOA");

    let mut notify = query("cluster.local.", DNSClass::IN);
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(ask(server, notify).await.metadata.response_code, ResponseCode::NotImp);
    let mut update = query("cluster.local.", DNSClass::IN);
    update.metadata.op_code = OpCode::Update;
    assert_eq!(ask(server, update).await.metadata.response_code, ResponseCode::NotImp);

    for class in [DNSClass::CH, DNSClass::HS, DNSClass::ANY] {
        let answer = ask(server, query("cluster.local.", class)).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::Refused, "class {class:?}");
        assert!(answer.answers.is_empty());
    }

    let mut v1 = query("cluster.local.", DNSClass::IN);
    let mut edns = Edns::new();
    edns.set_version(1);
    v1.set_edns(edns);
    let answer = ask(server, v1).await;
    // 16 is BADVERS in an OPT record's extended rcode (hickory decodes the shared value as BADSIG, its TSIG name).
    assert_eq!(u16::from(answer.metadata.response_code), u16::from(ResponseCode::BADVERS));
    assert_eq!(answer.edns.as_ref().map(Edns::version), Some(0), "BADVERS comes with the version we speak");

    target.cluster().shutdown().await;
}

#[tokio::test]
async fn a_truncated_udp_answer_is_well_formed_and_tcp_has_it_all() {
    use std::time::Duration;
    use svcbench::scenario::{Action, ContainerPort, DeploymentSpec, ObjectRef, ServiceSpec};

    let target = EmbeddedTarget::start(EmbeddedConfig::default()).await.unwrap();
    let cluster = target.cluster();
    let obj = |name: &str| ObjectRef { namespace: "big".into(), name: name.into() };
    // 100 A records (16 bytes each, compressed) fit neither 512 bytes (no EDNS) nor 1232 (EDNS).
    for action in [
        Action::CreateNamespace { name: "big".into() },
        Action::CreateDeployment(DeploymentSpec {
            object: obj("web"),
            replicas: 100,
            ports: vec![ContainerPort { name: None, port: 80 }],
            labels: [("app".to_owned(), "web".to_owned())].into(),
            hostname: None,
            subdomain: None,
            stateful: false,
            termination_grace: Duration::ZERO,
            node: None,
        }),
        Action::CreateService(ServiceSpec {
            object: obj("web"),
            selector: [("app".to_owned(), "web".to_owned())].into(),
            ports: Vec::new(),
            headless: true,
            publish_not_ready: false,
            session_affinity: None,
            external_name: None,
            exposure: Default::default(),
        }),
    ] {
        cluster.apply(&action).unwrap();
    }
    cluster.wait_programmed(cluster.snapshot().generation).await;
    let server = cluster.ports().resolve(SocketAddr::new(IpAddr::V4(cluster.dns_ip()), 53));

    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.add_query(Query::query(Name::from_ascii("web.big.svc.cluster.local.").unwrap(), RecordType::A));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&message.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.unwrap().unwrap();
    assert!(n <= 512, "a UDP answer without EDNS fits 512 bytes, got {n}");
    // Well formed means the header's counts end exactly at the datagram's end: no bytes of a left-out record.
    let mut decoder = BinDecoder::new(&buf[..n]);
    let answer = Message::read(&mut decoder).expect("a well-formed truncated answer");
    assert_eq!(decoder.len(), 0, "bytes after the {} counted records", answer.answers.len());
    assert!(answer.metadata.truncation, "TC is set");
    assert!((20..40).contains(&answer.answers.len()), "as many records as fit: {}", answer.answers.len());

    // EDNS with 1232 bytes gets more; over TCP, all 100.
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    socket.send_to(&message.to_vec().unwrap(), server).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.unwrap().unwrap();
    assert!(n <= 1232, "an EDNS answer fits the advertised 1232 bytes, got {n}");
    let mut decoder = BinDecoder::new(&buf[..n]);
    let bigger = Message::read(&mut decoder).expect("a well-formed truncated answer");
    assert_eq!(decoder.len(), 0, "bytes after the counted records");
    assert!(bigger.answers.len() > answer.answers.len() && bigger.answers.len() < 100 && bigger.metadata.truncation);
    assert!(bigger.edns.is_some(), "the OPT record survives truncation");

    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let wire = message.to_vec().unwrap();
    let mut framed = u16::try_from(wire.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut whole = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut whole).await.unwrap();
    let whole = Message::from_vec(&whole).unwrap();
    assert_eq!(whole.answers.len(), 100, "TCP carries every record");
    assert!(!whole.metadata.truncation);

    target.cluster().shutdown().await;
}
