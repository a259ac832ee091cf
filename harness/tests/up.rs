//! `svcbench up` serves a real cluster to real tools: dig and curl (when installed; `.ci/run` installs them) and
//! svcbench's own wire-level DNS client, all through the addresses in the state file.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use svcbench::{
    probe::{AddressMap, Dialer, ProbeContext, ResolvConf, dns},
    scenario::{Rcode, Transport},
};

/// Kills the child if the test fails half-way, so no cluster outlives the test; collects what it logs.
struct Guard(Child, Option<std::thread::JoinHandle<String>>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Sends port-53 traffic for the DNS IP to the port the state file gives.
struct DnsPort(SocketAddr);

impl AddressMap for DnsPort {
    fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        if addr.ip() == self.0.ip() && addr.port() == 53 { self.0 } else { addr }
    }
}

const SCENARIO: &str = "name: up-demo
description: two nginx pods behind a ClusterIP and a headless service
steps:
  - createNamespace: test
  - createDeployment: {namespace: test, name: nginx, replicas: 2}
  - expose: {namespace: test, deployment: nginx, port: 80}
  - expose: {namespace: test, deployment: nginx, name: nginx-headless, port: 80, clusterIP: None}
  - expose: {namespace: test, deployment: nginx, name: nginx-ds, port: 80, ipFamilyPolicy: RequireDualStack}
  - createExternalName: {namespace: test, name: ext, externalName: example.com}
  - expectEndpoints: {namespace: test, service: nginx, ready: {readyPodsOf: nginx}}
";

fn start(dir: &std::path::Path, unprivileged: bool) -> (Guard, serde_json::Value, std::path::PathBuf) {
    let scenario = dir.join("up.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let state_path = dir.join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_svcbench"))
        .arg("up")
        .arg(&scenario)
        .arg("--state-file")
        .arg(&state_path)
        .env("SVCBENCH_UNPRIVILEGED_PORTS", if unprivileged { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Read as it comes, so a chatty child never blocks on a full pipe.
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let guard = Guard(child, Some(log));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let ready = line.starts_with("serving:");
            let _ = tx.send(line);
            if ready {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("svcbench up never said `serving:`");
        if line.starts_with("serving:") {
            break;
        }
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    (guard, state, state_path)
}

/// Stops the cluster with SIGTERM and returns what it logged.
fn stop(mut guard: Guard, state_path: &std::path::Path) -> String {
    let pid = nix::unistd::Pid::from_raw(guard.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            assert!(status.success(), "svcbench up exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "svcbench up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!state_path.exists(), "state file is removed on exit");
    let log = guard.1.take().unwrap().join().unwrap();
    eprint!("{log}");
    log
}

fn check_state(state: &serde_json::Value, unprivileged: bool) {
    let dns: SocketAddr = state["dns"].as_str().unwrap().parse().unwrap();
    let port_is_real = dns.port() == 53;
    // As root the real port is used; with the unprivileged layout a high port stands in for it.
    assert_eq!(port_is_real, !unprivileged && nix::unistd::geteuid().is_root(), "dns {dns}");
    assert_eq!(state["cluster_domain"], "cluster.local");
    assert_eq!(state["schema_version"], 2);
    let services = state["services"].as_array().unwrap();
    assert_eq!(services.len(), 4);
    let service = |name: &str| services.iter().find(|s| s["name"] == name).unwrap();
    let nginx = service("nginx");
    assert_eq!(nginx["type"], "ClusterIP");
    assert!(nginx["cluster_ip"].is_string());
    assert_eq!(nginx["ports"][0]["port"], 80);
    assert!(nginx["ports"][0]["connect"].is_string());
    let headless = service("nginx-headless");
    assert_eq!(headless["type"], "Headless");
    assert!(headless["cluster_ip"].is_null() && headless["cluster_ips"] == serde_json::json!([]));
    // A dual-stack user finds the AAAA side: both ClusterIPs, both connect addresses, primary first.
    let dual = service("nginx-ds");
    assert_eq!(dual["ip_families"], serde_json::json!(["IPv4", "IPv6"]));
    let ips: Vec<std::net::IpAddr> =
        dual["cluster_ips"].as_array().unwrap().iter().map(|ip| ip.as_str().unwrap().parse().unwrap()).collect();
    assert!(ips.len() == 2 && ips[0].is_ipv4() && ips[1].is_ipv6(), "{ips:?}");
    assert_eq!(dual["cluster_ip"], dual["cluster_ips"][0]);
    assert_eq!(dual["ports"][0]["connect_all"].as_array().unwrap().len(), 2);
    let ext = service("ext");
    assert_eq!((ext["type"].as_str(), ext["external_name"].as_str()), (Some("ExternalName"), Some("example.com")));
    let pods = state["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["ready"] == true && p["connect"].is_string() && p["ip"].is_string()));
    assert!(pods.iter().all(|p| p["ips"].as_array().unwrap().len() == 2 && p["ips"][0] == p["ip"]));
    // And the file is what `svcbench schema --state` says it is.
    let schema = Command::new(env!("CARGO_BIN_EXE_svcbench")).args(["schema", "--state"]).output().unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(state).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn run_tools(state: &serde_json::Value) {
    let dns: SocketAddr = state["dns"].as_str().unwrap().parse().unwrap();
    let nginx = state["services"].as_array().unwrap().iter().find(|s| s["name"] == "nginx").unwrap().clone();
    let cluster_ip = nginx["cluster_ip"].as_str().unwrap().to_owned();
    let connect = nginx["ports"][0]["connect"].as_str().unwrap().to_owned();
    let mut pod_ips: Vec<String> =
        state["pods"].as_array().unwrap().iter().map(|p| p["ip"].as_str().unwrap().to_owned()).collect();
    pod_ips.sort();
    let pod_names: Vec<String> =
        state["pods"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();

    // svcbench's own wire client, UDP and TCP.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx = ProbeContext {
        resolv_conf: ResolvConf::cluster_first(dns.ip(), "test", "cluster.local"),
        dialer: Dialer::new(Arc::new(DnsPort(dns)), None),
        timeout: Duration::from_secs(2),
        hosts: Default::default(),
        http_pool: Default::default(),
        udp_flows: Default::default(),
    };
    for transport in [Transport::Udp, Transport::Tcp] {
        let a = rt
            .block_on(dns::query(&ctx, "nginx.test.svc.cluster.local.", hickory_proto::rr::RecordType::A, transport))
            .unwrap();
        assert_eq!(a.rcode, Rcode::NoError);
        assert_eq!(a.records, vec![dns::DnsRecord::Address { ip: cluster_ip.parse().unwrap() }]);
        assert!(a.authoritative);
        let h = rt
            .block_on(dns::query(
                &ctx,
                "nginx-headless.test.svc.cluster.local.",
                hickory_proto::rr::RecordType::A,
                transport,
            ))
            .unwrap();
        let mut got: Vec<String> = h
            .records
            .iter()
            .map(|r| match r {
                dns::DnsRecord::Address { ip } => ip.to_string(),
                other => panic!("unexpected {other}"),
            })
            .collect();
        got.sort();
        assert_eq!(got, pod_ips, "one A record per ready pod");
    }

    if have("dig") {
        let dig = |name: &str, extra: &[&str]| {
            let out = Command::new("dig")
                .args([
                    format!("@{}", dns.ip()),
                    "-p".into(),
                    dns.port().to_string(),
                    name.into(),
                    "+short".into(),
                    "+time=2".into(),
                    "+tries=1".into(),
                ])
                .args(extra)
                .output()
                .unwrap();
            assert!(out.status.success(), "dig failed: {}", String::from_utf8_lossy(&out.stderr));
            let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        assert_eq!(dig("nginx.test.svc.cluster.local", &[]), vec![cluster_ip.clone()]);
        assert_eq!(dig("nginx-headless.test.svc.cluster.local", &[]), pod_ips);
        assert_eq!(dig("nginx-headless.test.svc.cluster.local", &["+tcp"]), pod_ips);
    } else {
        eprintln!("SKIPPED dig checks: dig not installed (apt-get install bind9-dnsutils; .ci/run installs it)");
    }

    if have("curl") {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", &format!("http://{connect}/hostname")])
            .output()
            .unwrap();
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(pod_names.contains(&body), "`{body}` is one of {pod_names:?}");
    } else {
        eprintln!("SKIPPED curl checks: curl not installed (.ci/run installs it)");
    }
    // And without curl: a plain HTTP/1.0 request over a socket.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&connect).unwrap();
    s.write_all(b"GET /hostname HTTP/1.0\r\nHost: nginx\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(pod_names.iter().any(|n| response.ends_with(n.as_str())), "{response}");
}

#[test]
fn up_serves_dig_and_curl_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, state, path) = start(dir.path(), false);
    check_state(&state, false);
    run_tools(&state);
    stop(guard, &path);
}

#[test]
fn up_without_privileged_ports_keeps_the_model_and_translates_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, state, path) = start(dir.path(), true);
    check_state(&state, true);
    let nginx = state["services"].as_array().unwrap().iter().find(|s| s["name"] == "nginx").unwrap();
    // The model still says port 80; only the socket to connect to differs.
    assert_eq!(nginx["ports"][0]["port"], 80);
    let connect: SocketAddr = nginx["ports"][0]["connect"].as_str().unwrap().parse().unwrap();
    assert_eq!(connect.ip().to_string(), nginx["cluster_ip"].as_str().unwrap());
    assert!(connect.port() >= 1024);
    run_tools(&state);
    stop(guard, &path);
}

#[test]
fn malformed_dns_packets_get_answers_not_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, state, path) = start(dir.path(), true);
    let dns: SocketAddr = state["dns"].as_str().unwrap().parse().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let question = b"\x05nginx\x04test\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01";
    let header = |id: u16, flags: u16, qd: u16, an: u16, ar: u16| {
        [
            id.to_be_bytes(),
            flags.to_be_bytes(),
            qd.to_be_bytes(),
            an.to_be_bytes(),
            0u16.to_be_bytes(),
            ar.to_be_bytes(),
        ]
        .concat()
    };
    let malformed: Vec<Vec<u8>> = vec![
        vec![0x42; 5],                                                                  // shorter than a header
        header(2, 0x0100, 2, 0, 0), // two questions counted, none sent
        [header(3, 0x0100, 1, 0, 0), question[..question.len() - 3].to_vec()].concat(), // question cut short
        [header(4, 0x0100, 1, 0, 0), b"\xc0\x0c\x00\x01\x00\x01".to_vec()].concat(), // name pointing at itself
        [header(5, 0x0100, 1, 3, 0), question.to_vec()].concat(), // answers counted, none sent
        [header(6, 0x0100, 1, 0, 1), question.to_vec(), vec![0, 0, 41]].concat(), // OPT record cut short
    ];
    // Each shape many times over: one log line per packet would show as hundreds.
    for round in 0..50u8 {
        for packet in &malformed {
            let mut packet = packet.clone();
            packet[0] = round;
            socket.send_to(&packet, dns).unwrap();
        }
    }
    // Drain the error answers (a full socket buffer would drop the one we wait for), then ask a good query.
    let mut buf = [0u8; 1500];
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    while socket.recv(&mut buf).is_ok() {}
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket.send_to(&[header(7, 0x0100, 1, 0, 0), question.to_vec()].concat(), dns).unwrap();
    let n = socket.recv(&mut buf).expect("an answer to a good query after 300 malformed ones");
    let answered = n >= 12 && buf[..2] == 7u16.to_be_bytes() && buf[3] & 0x0f == 0 && buf[6..8] == [0, 1];
    assert!(answered, "a well-formed query after 300 malformed ones is answered with its record");
    let log = stop(guard, &path);
    let noisy: Vec<&str> = log.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
    assert!(noisy.len() <= 1, "300 malformed packets logged {} lines: {noisy:?}", noisy.len());
}
