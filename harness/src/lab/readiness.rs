//! Waiting for a starting lab to be ready — the API server, then CoreDNS — and, when it is not, saying why: which
//! component died, what the CoreDNS pods and kube-proxy logged.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::bail;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

use super::process::Supervised;

pub(super) fn check_alive(processes: &mut [Supervised]) -> anyhow::Result<()> {
    for p in processes.iter_mut() {
        if let Some(status) = p.exited() {
            bail!("{} exited ({status}); last lines of {}:\n{}", p.log().display(), p.log().display(), p.log_tail(15));
        }
    }
    Ok(())
}

pub(super) async fn wait_ready(client: &Client, processes: &mut [Supervised]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        check_alive(processes)?;
        let request = http::Request::get("/readyz").body(Vec::new())?;
        if client.request_text(request).await.is_ok_and(|t| t.trim() == "ok") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("kube-apiserver not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the CoreDNS pods are doing, for an error message: their phase and conditions, and their logs' last lines
/// (the state directory is removed with the failed lab).
async fn dns_diagnosis(client: &Client, dir: &Path) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "kube-system");
    let listed = tokio::time::timeout(
        Duration::from_secs(5),
        pods.list(&kube::api::ListParams::default().labels("k8s-app=kube-dns")),
    )
    .await;
    if listed.is_err() {
        out.push_str("(the API server did not list the CoreDNS pods within 5 s)\n");
    }
    if let Ok(Ok(list)) = listed {
        for pod in list.items {
            let status = pod.status.unwrap_or_default();
            let conditions: Vec<String> = status
                .conditions
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    format!(
                        "{}={}{}",
                        c.type_,
                        c.status,
                        c.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default()
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "pod {} on {}: {} {} [{}]",
                pod.metadata.name.unwrap_or_default(),
                pod.spec.and_then(|s| s.node_name).unwrap_or_else(|| "no node".into()),
                status.phase.unwrap_or_default(),
                status.pod_ip.unwrap_or_default(),
                conditions.join(", ")
            );
        }
    }
    // Pod directories (`pods/<uid>`) hold `logs/<container>.log`.
    let logs =
        std::fs::read_dir(dir.join("pods")).into_iter().flatten().flatten().map(|e| e.path().join("logs/coredns.log"));
    for log in logs.filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let _ = writeln!(out, "{}:", log.display());
        for line in tail.iter().rev() {
            let _ = writeln!(out, "  {line}");
        }
    }
    // CoreDNS reaches the API server through the kubernetes Service: kube-proxy failing to program it shows here.
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("kube-proxy-") && name.ends_with(".log")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with('E')).collect();
        for line in errors.iter().rev().take(2).rev() {
            let _ = writeln!(out, "{name}: {}", line.chars().take(400).collect::<String>());
        }
    }
    out
}

pub(super) async fn wait_coredns(client: &Client, processes: &mut [Supervised], dir: &Path) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    // Room for a first pod sandbox that takes kubelet's whole 2 min (Cilium compiling its datapath on a busy machine)
    // and a retry that does not: two whole timeouts would not fit, and would mean the data plane is broken anyway.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        check_alive(processes)?;
        let ready = deployments.get("coredns").await.ok().and_then(|d| d.status?.ready_replicas).unwrap_or(0);
        if ready >= 2 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("CoreDNS not ready within 240 s ({ready} of 2 replicas ready)\n{}", dns_diagnosis(client, dir).await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
