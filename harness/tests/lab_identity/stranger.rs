//! A stranger in the cluster against a running agent: another pod sends requests without the run's token straight
//! to the agent's pod IP, asking it to dial a listener in the stranger's own pod. Each gets 401 and the listener
//! sees nothing, while the same listener is reachable from the agent's network namespace (so silence means the
//! agent did not dial). And the NetworkPolicy svcbench gave the namespace names the source the API server's pod
//! proxy really connects from (seen by a backend's `/clientip`).

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::{core::v1::Pod, networking::v1::NetworkPolicy};
use kube::{Api, api::ListParams};
use svcbench::{
    lab::{Lab, netns},
    probe::{
        ProbeRequest,
        load::{ConnectionMode, LoadSpec},
    },
    results::Outcome,
    runner,
    targets::{
        Target,
        kube::{KubeConfig, KubeTarget},
    },
};

const PLAN: &str = "name: stranger\ndescription: an agent in test, a backend in other\nsteps:\n  \
    - createNamespace: test\n  - createNamespace: other\n  - createDeployment: {namespace: other, name: stranger}\n  \
    - expose: {namespace: other, deployment: stranger, port: 80}\n  \
    - expectHttp: {from: test, url: http://stranger.other/hostname, answeredBy: {readyPodsOf: other/stranger}}\n";

async fn pod_ip(admin: &kube::Client, ns: &str, selector: Option<&str>) -> (String, IpAddr) {
    let params = selector.map_or_else(ListParams::default, |s| ListParams::default().labels(s));
    let pods = Api::<Pod>::namespaced(admin.clone(), ns).list(&params).await.expect("pods");
    let pod = pods.items.into_iter().next().unwrap_or_else(|| panic!("a pod in {ns}"));
    let ip = pod.status.and_then(|s| s.pod_ip).expect("a pod IP").parse().expect("an IP");
    (pod.metadata.name.unwrap_or_default(), ip)
}

/// One HTTP/1.1 request without any token; the status code.
fn post_without_token(addr: SocketAddr, path: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("reach the agent's pod IP");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).expect("send");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {reply:?}"))
}

pub async fn strangers_get_401(lab: &Lab, admin: &kube::Client, harness: kube::Client) {
    let plan = svcbench::scenario::parse(std::path::Path::new("stranger.yaml"), PLAN).expect("valid");
    let target = KubeTarget::with_client(harness, KubeConfig::from_env(), "idtstr");
    // The plan's steps leave the agent running until shutdown.
    let result = runner::run_plan(&plan, &target, &mut |_| {}).await;
    // The checks run on a task, so that the namespaces are deleted whether they pass or not.
    let (lab_id, admin_client) = (lab.id().to_owned(), admin.clone());
    let outcome = tokio::spawn(async move {
        assert_eq!(result.outcome, Outcome::Passed, "{:?}", result.first_failure());
        checks(&lab_id, &admin_client).await;
    })
    .await;
    target.shutdown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn checks(lab_id: &str, admin: &kube::Client) {
    let (agent_ns, other_ns) = ("svcb-idtstr-test", "svcb-idtstr-other");
    let (_, agent_ip) = pod_ip(admin, agent_ns, Some("app=svcbench-agent")).await;
    let (backend, stranger_ip) = pod_ip(admin, other_ns, None).await;
    let prefix = format!("svcb-{lab_id}-");
    let stranger_ns = netns::holding(&prefix, stranger_ip).expect("the stranger pod's network namespace");
    let agent_netns = netns::holding(&prefix, agent_ip).expect("the agent pod's network namespace");

    // The stranger's listener: counts every connection it gets.
    let listener = netns::in_netns(&stranger_ns, move || TcpListener::bind((stranger_ip, 0))).expect("listen");
    let bait = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counting = {
        let (accepted, stop) = (accepted.clone(), stop.clone());
        // Bounded: it stops when told, or after a minute whatever happens.
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                match listener.accept() {
                    Ok(_) => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let connect = serde_json::to_vec(&ProbeRequest::Connect { address: bait }).unwrap();
    let load = serde_json::to_vec(&ProbeRequest::Load(LoadSpec {
        host: bait.ip().to_string(),
        port: bait.port(),
        path: "/".into(),
        mode: ConnectionMode::NewConnection,
        connections: 2,
        rate: Some(50.0),
        requests: 50,
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        family: None,
        client_tolerance: svcbench::probe::pace::DEFAULT_TOLERANCE,
    }))
    .unwrap();
    let agent = SocketAddr::new(agent_ip, svcbench::targets::kube::objects::AGENT_PORT);
    let statuses = netns::in_netns(&stranger_ns, move || {
        Ok([post_without_token(agent, "/probe", &connect), post_without_token(agent, "/probe", &load)])
    })
    .unwrap();
    assert_eq!(statuses, [401, 401], "a stranger pod ({stranger_ip}) asking the agent ({agent}) to dial {bait}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a refused request made the agent dial the stranger's listener");
    // The listener is reachable from the agent's own network namespace: silence above was the agent refusing.
    netns::in_netns(&agent_netns, move || TcpStream::connect_timeout(&bait, Duration::from_secs(5)).map(drop))
        .expect("the stranger's listener, from the agent's netns");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while accepted.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the listener counts connections from the agent's netns");
    stop.store(true, Ordering::SeqCst);
    let _ = counting.join();
    println!("stranger {stranger_ip} → agent {agent}: 401 twice (connect, load), 0 connections to {bait}");

    // The namespace's NetworkPolicy admits only where the pod proxy comes from: ask a backend who is calling.
    let policy = Api::<NetworkPolicy>::namespaced(admin.clone(), agent_ns).get("svcbench-agent").await.expect("policy");
    let cidrs: Vec<ipnet::IpNet> = policy
        .spec
        .and_then(|s| s.ingress)
        .into_iter()
        .flatten()
        .flat_map(|rule| rule.from.unwrap_or_default())
        .filter_map(|peer| peer.ip_block?.cidr.parse().ok())
        .collect();
    let request = http::Request::get(format!("/api/v1/namespaces/{other_ns}/pods/{backend}:80/proxy/clientip"))
        .body(Vec::new())
        .unwrap();
    let caller = admin.request_text(request).await.expect("clientip through the pod proxy");
    let caller: SocketAddr = caller.trim().parse().unwrap_or_else(|_| panic!("clientip answered {caller:?}"));
    assert!(
        cidrs.iter().any(|c| c.contains(&caller.ip())),
        "the pod proxy connects from {caller}, which the agent's NetworkPolicy ({cidrs:?}) does not admit"
    );
    println!("NetworkPolicy svcbench-agent admits {cidrs:?}; the pod proxy connects from {}", caller.ip());
}
