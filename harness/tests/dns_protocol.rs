//! The embedded DNS at the protocol's edges, over real UDP packets: opcodes other than QUERY get NOTIMP, classes
//! other than IN get REFUSED, an EDNS version above 0 gets BADVERS (RFC 6891), as an authoritative server answers;
//! and ordinary queries still answer.

use std::net::{IpAddr, SocketAddr};

use hickory_server::proto::{
    op::{Edns, Message, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RecordType},
};
use svcbench::{
    probe::AddressMap,
    targets::embedded::{EmbeddedConfig, EmbeddedTarget},
};
use tokio::net::UdpSocket;

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
