//! Embedded clusters torn down and started back to back on the *same* address slot, several at once, with pods,
//! services and connections still open at teardown: no listener may still hold an address when the next cluster
//! claims the slot (issue: "a new embedded cluster can collide with the sockets of one that is still shutting down").
//!
//! Every worker starts its slot search at the same octet, so each new cluster takes the slot another has just freed.
//! The collision needs real ports (a pod on `podIP:80`), so the test is meaningful as root, as CI runs; without root
//! pods bind free high ports and it only checks that teardown completes.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use svcbench::{
    probe::AddressMap,
    scenario::{Action, DeploymentSpec, ServiceSpec},
    targets::{
        Target,
        embedded::{EmbeddedConfig, EmbeddedTarget},
    },
};

const WORKERS: usize = 3;
const CYCLES: usize = 25;
/// Bound on the whole test, far above its usual few seconds.
const DEADLINE: Duration = Duration::from_secs(120);

/// Opens a keep-alive HTTP connection and reads one answer, leaving the connection open.
fn open_connection(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf)?;
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "unexpected answer from {addr}: {:?}", &buf[..n]);
    Ok(stream)
}

async fn cycle(worker: usize, round: usize) -> Result<(), String> {
    let config = EmbeddedConfig { first_slot: Some(201), ..EmbeddedConfig::default() };
    let target = EmbeddedTarget::start(config).await.map_err(|e| format!("start: {e}"))?;
    let cluster = target.cluster().clone();
    let result = async {
        cluster.apply(&Action::CreateNamespace { name: "test".into() }).map_err(|e| e.to_string())?;
        cluster
            .apply(&Action::CreateDeployment(DeploymentSpec::netexec("test", "web", 3)))
            .map_err(|e| e.to_string())?;
        cluster
            .apply(&Action::CreateService(ServiceSpec::cluster_ip("test", "web", "web", 80)))
            .map_err(|e| e.to_string())?;
        let snap = cluster.snapshot();
        cluster.wait_programmed(snap.generation).await;
        let ports = cluster.ports();
        let mut targets: Vec<SocketAddr> =
            snap.pods.values().map(|p| ports.resolve(SocketAddr::from((p.ip, 80)))).collect();
        targets.extend(snap.proxy.keys().map(|k| ports.resolve(k.0)));
        // Blocking connects on a blocking thread: the cluster serves them on the runtime meanwhile.
        let open = tokio::task::spawn_blocking(move || {
            targets
                .iter()
                .map(|a| open_connection(*a).map_err(|e| format!("connect {a}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| e.to_string())??;
        // Scale down with connections open, so some listeners close mid-cycle too.
        cluster
            .apply(&Action::Scale { deployment: DeploymentSpec::netexec("test", "web", 1).object, replicas: 1 })
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(open)
    }
    .await;
    target.shutdown().await;
    let open = result.map_err(|e| format!("worker {worker} round {round}: {e}"))?;
    drop(open);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_reusing_a_slot_never_find_its_addresses_bound() {
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(async move {
                for round in 0..CYCLES {
                    if started.elapsed() > DEADLINE {
                        return Err(format!("worker {w}: deadline passed after {round} rounds"));
                    }
                    cycle(w, round).await?;
                }
                Ok(())
            })
        })
        .collect();
    let mut errors = Vec::new();
    for worker in workers {
        if let Err(e) = worker.await.unwrap_or_else(|e| Err(format!("worker panicked: {e}"))) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "{} of {WORKERS} workers failed:\n{}", errors.len(), errors.join("\n"));
}
