//! Bounded in-test fuzzing (issue #12): mutated scenario files through the parser and validator, and random
//! questions through the embedded DNS `answer` function, against clusters with random seeded faults. Neither may
//! panic; every input is derived from `(seed, index)`, so a failure prints both and saves the input.
//!
//! Each loop runs `SVCBENCH_FUZZ_SECS` seconds (default 2); `SVCBENCH_FUZZ_SEED` picks the base seed (default 12).
//! `SVCBENCH_FUZZ_SECS=300 cargo test --release -p svcbench --test fuzz -- --nocapture` runs a long campaign.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::ResponseCode,
    rr::{Name, RecordType},
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use svcbench::{
    scenario::{IpFamily, ObjectRef, Protocol, TargetPort},
    targets::{
        embedded::{
            Fault, Faults, dns,
            state::{Pod, Service, Snapshot},
        },
        model::ServicePortView,
    },
};

fn budget() -> Duration {
    let secs = std::env::var("SVCBENCH_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn base_seed() -> u64 {
    std::env::var("SVCBENCH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(12)
}

/// The RNG of input `index`: each input is reproducible on its own.
fn rng_for(seed: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs `one(rng)` for inputs 0, 1, … until the budget is spent; a panic fails the test naming seed and input.
fn fuzz(what: &str, mut one: impl FnMut(&mut StdRng, u64) -> Option<Vec<u8>>) {
    let (seed, budget) = (base_seed(), budget());
    let started = Instant::now();
    let mut index = 0u64;
    // A panic is reported here with its input; the default hook's message would only repeat it.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while started.elapsed() < budget || index == 0 {
        let mut rng = rng_for(seed, index);
        let mut input = None;
        let result = catch_unwind(AssertUnwindSafe(|| input = one(&mut rng, index)));
        if let Err(panic) = result {
            std::panic::set_hook(hook);
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let saved = std::env::temp_dir().join(format!("svcbench-fuzz-{what}-{seed}-{index}.bin"));
            if let Some(bytes) = &input {
                let _ = std::fs::write(&saved, bytes);
            }
            panic!(
                "{what}: input {index} of seed {seed} panicked: {message} (rerun: SVCBENCH_FUZZ_SEED={seed}; input \
                 saved to {})",
                saved.display()
            );
        }
        index += 1;
    }
    std::panic::set_hook(hook);
    println!("fuzz {what}: {index} inputs in {:.1?}, seed {seed}, 0 crashes", started.elapsed());
}

/// Pieces spliced into scenarios: keys, values and YAML syntax a hostile file might hold.
const FRAGMENTS: &[&str] = &[
    "rate: 1e-300",
    "rate: -1",
    "rate: .nan",
    "rate: 1e308",
    "timeout: 1ns",
    "timeout: 99999h",
    "duration: 0s",
    "replicas: 4294967295",
    "count: 20000",
    "port: 0",
    "port: 65536",
    "index: 999",
    "!custom ",
    "!!binary ",
    "&a ",
    "*a",
    "<<: *a",
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    "\n  - ",
    "'",
    "\"",
    "\\u0000",
    "~",
    "null",
    "[]",
    "{}",
    "readyPodsOf: nope",
    "ready: {readyPodsOf: web}",
    "clusterIP: None",
    "externalName: ",
    "prefix: ",
    "ports: [{name: a, port: 80}, {name: a, port: 80}]",
    "namespace: test",
    "from: test",
    "name: x",
    "records: [{clusterIPOf: x}]",
    "rcode: [NXDOMAIN, NODATA]",
    "type: SRV",
    "reverseOf: {ip: 1.2.3.4}",
    "url: http://x:0/",
    "url: http://",
    "?",
    "|",
    ">",
    "#",
    "%YAML 1.2\n---\n",
    "\t",
    "\u{feff}",
];

fn mutate(rng: &mut StdRng, base: &[u8]) -> Vec<u8> {
    let mut text = base.to_vec();
    for _ in 0..rng.random_range(1..=6) {
        let at = if text.is_empty() { 0 } else { rng.random_range(0..=text.len()) };
        match rng.random_range(0..7) {
            0 => text.splice(at..at, FRAGMENTS.choose(rng).unwrap().bytes()).for_each(drop),
            1 if !text.is_empty() => {
                let end = (at + rng.random_range(1..64)).min(text.len());
                text.drain(at.min(end)..end);
            }
            2 if at < text.len() => text[at] = rng.random(),
            3 => text.truncate(at),
            4 if !text.is_empty() => {
                // Duplicate a slice (repeated steps and keys).
                let start = rng.random_range(0..text.len());
                let end = (start + rng.random_range(1..200)).min(text.len());
                let copy = text[start..end].to_vec();
                text.splice(at..at, copy).for_each(drop);
            }
            5 => text.splice(at..at, rng.random::<u64>().to_string().bytes()).for_each(drop),
            _ => text.splice(at..at, std::iter::repeat_n(b'a', rng.random_range(1..300))).for_each(drop),
        }
    }
    text
}

#[test]
fn fuzz_scenario_parser_and_validator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    corpus.sort();
    assert!(!corpus.is_empty());
    let (mut accepted, mut refused) = (0u64, 0u64);
    fuzz("scenario", |rng, _| {
        let base = corpus.choose(rng).unwrap();
        let input = mutate(rng, base);
        let Ok(text) = std::str::from_utf8(&input) else { return Some(input) };
        match svcbench::scenario::parse(Path::new("fuzz.yaml"), text) {
            Ok(_) => accepted += 1,
            Err(errors) => {
                refused += 1;
                // Every error must name a real position: no `0:0` reaches the user.
                for e in &errors.0 {
                    assert!(e.line > 0 && e.column > 0, "error without a location: {e}");
                }
            }
        }
        Some(input)
    });
    println!("fuzz scenario: {accepted} accepted, {refused} refused");
}

/// A cluster with ClusterIP, headless (with hostnames), named-port and ExternalName services, and random faults.
fn snapshot(rng: &mut StdRng) -> Snapshot {
    let mut s = Snapshot::new("cluster.local");
    for ns in ["test", "other", "dns-version"] {
        s.namespaces.insert(ns.into());
    }
    let port = |name: Option<&str>, port: u16| ServicePortView {
        name: name.map(str::to_owned),
        port,
        target_port: TargetPort::Number(8080),
        protocol: if port == 53 { Protocol::Udp } else { Protocol::Tcp },
        node_port: None,
    };
    let selector: BTreeMap<String, String> = [("app".to_owned(), "web".to_owned())].into();
    for i in 0..4u8 {
        s.pods.insert(
            ObjectRef { namespace: "test".into(), name: format!("web-{i}") },
            Pod {
                ip: Ipv4Addr::new(127, 1, 128, 2 + i),
                ip6: svcbench::targets::embedded::ipam::v6_twin(Ipv4Addr::new(127, 1, 128, 2 + i)),
                labels: selector.clone(),
                deployment: "web".into(),
                ready: i != 3,
                terminating: i == 2,
                seq: u64::from(i),
                ports: vec![],
                hostname: (i < 2).then(|| format!("host-{i}")),
                subdomain: (i < 2).then(|| "headless".to_owned()),
                node: u32::from(i % 2),
            },
        );
    }
    let services = [
        ("web", vec![Ipv4Addr::new(127, 1, 0, 11).into()], vec![port(Some("http"), 80), port(Some("dns"), 53)], None),
        ("plain", vec![Ipv4Addr::new(127, 1, 0, 12).into()], vec![port(None, 80)], None),
        // Dual-stack, IPv6 first.
        (
            "dual",
            vec!["fd00:10:96:1::d".parse().unwrap(), Ipv4Addr::new(127, 1, 0, 13).into()],
            vec![port(None, 80)],
            None,
        ),
        ("headless", vec![], vec![port(Some("http"), 80)], None),
        ("ext", vec![], vec![], Some("example.com".to_owned())),
    ];
    for (name, cluster_ips, ports, external_name) in services {
        let families = match (&external_name, name) {
            (Some(_), _) => vec![],
            (None, "dual" | "headless") => vec![IpFamily::IPv6, IpFamily::IPv4],
            _ => vec![IpFamily::IPv4],
        };
        let svc =
            Service { cluster_ips, families, selector: selector.clone(), ports, external_name, ..Default::default() };
        s.services.insert(ObjectRef { namespace: "test".into(), name: name.into() }, svc);
    }
    s.faults = Faults(Fault::ALL.iter().copied().filter(|_| rng.random_bool(0.15)).collect());
    s.reconcile();
    s
}

const LABELS: &[&str] = &[
    "web",
    "plain",
    "headless",
    "ext",
    "host-0",
    "host-1",
    "test",
    "other",
    "dns-version",
    "svc",
    "cluster",
    "local",
    "_http",
    "_tcp",
    "_udp",
    "_dns",
    "pod",
    "in-addr",
    "arpa",
    "127",
    "1",
    "0",
    "11",
    "128",
    "2",
    "*",
    "WEB",
    "Svc",
    "127-1-128-2",
    "",
    "xn--",
    "-",
    "a-",
    "x",
];

fn question(rng: &mut StdRng) -> (Vec<Vec<u8>>, RecordType) {
    let mut labels: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rng.random_range(0..9) {
        labels.push(match rng.random_range(0..10) {
            0 => (0..rng.random_range(1..64)).map(|_| rng.random()).collect(),
            1 => vec![b'a'; rng.random_range(1..64)],
            _ => LABELS.choose(rng).unwrap().as_bytes().to_vec(),
        });
    }
    // Often a well-formed tail, so answers go deep into the zone rather than stopping at "not ours".
    if rng.random_bool(0.7) {
        labels.extend([b"cluster".to_vec(), b"local".to_vec()]);
    }
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::SOA,
        RecordType::NS,
        RecordType::ANY,
        RecordType::MX,
    ];
    let qtype = if rng.random_bool(0.1) { RecordType::from(rng.random::<u16>()) } else { *types.choose(rng).unwrap() };
    (labels, qtype)
}

#[test]
fn fuzz_dns_answer() {
    let clusters: Vec<Snapshot> = (0..16).map(|i| snapshot(&mut rng_for(base_seed(), u64::MAX - i))).collect();
    let mut names = 0u64;
    fuzz("dns", |rng, _| {
        let snap = clusters.choose(rng).unwrap();
        let (labels, qtype) = question(rng);
        let input = labels.join(&b'.');
        let Ok(name) = Name::from_labels(labels.iter().map(Vec::as_slice)) else { return Some(input) };
        names += 1;
        for name in [name.clone(), name.to_lowercase()] {
            let answer = dns::answer(snap, &name, qtype);
            assert!(
                answer.rcode != ResponseCode::NXDomain || answer.answers.is_empty(),
                "NXDOMAIN with answers: {name}"
            );
        }
        Some(input)
    });
    println!("fuzz dns: {names} well-formed names answered");
}

/// The agent's request parser and its limits (issue #24): whatever bytes reach `POST /probe`, parsing and the limit
/// check never panic, and what passes both stays inside the agent's caps.
#[test]
fn fuzz_agent_request_parser_and_limits() {
    use svcbench::agent::{MAX_PROBE_TIME, check_limits, parse_request};
    let corpus: Vec<Vec<u8>> = [
        r#"{"probe": "dns", "name": "nginx.test", "query_type": "A", "flavour": "glibc", "transport": "udp"}"#,
        r#"{"probe": "http", "host": "nginx", "port": 80, "path": "/hostname"}"#,
        r#"{"probe": "connect", "address": "10.96.0.10:80"}"#,
        r#"{"probe": "udp", "address": "10.96.0.10:53", "payload": "hostname", "flow": null}"#,
        r#"{"probe": "resolv_conf"}"#,
        r#"{"probe": "dns_load", "names": ["a.test.svc.cluster.local."], "rate": 100.0, "max_outstanding": 8,
            "source_ports": 4, "queries": 100, "duration": {"secs": 1, "nanos": 0}, "timeout": {"secs": 1, "nanos": 0}}"#,
        r#"{"probe": "batch", "concurrency": 2, "probes": [{"probe": "connect", "address": "10.96.0.10:80"}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let (mut accepted, mut refused) = (0u64, 0u64);
    fuzz("agent request", |rng, _| {
        let base = corpus.choose(rng).unwrap();
        let input = mutate(rng, base);
        match parse_request(&input) {
            Ok(request) => match check_limits(&request, MAX_PROBE_TIME) {
                Ok(()) => accepted += 1,
                Err(reason) => {
                    assert!(!reason.is_empty(), "a refusal says why");
                    refused += 1;
                }
            },
            Err(message) => {
                assert!(!message.is_empty() && message.len() < 4096, "a parse error is one bounded message");
                refused += 1;
            }
        }
        Some(input)
    });
    println!("fuzz agent request: {accepted} accepted, {refused} refused");
}
