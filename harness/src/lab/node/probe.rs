//! Container probes as kubelet runs them: `exec` inside the container's namespaces, `httpGet` and `tcpSocket` from
//! the node's network namespace to the pod IP, each bounded by `timeoutSeconds`.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use k8s_openapi::{api::core::v1::Probe, apimachinery::pkg::util::intstr::IntOrString};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The schedule and thresholds of one probe.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Before the first run.
    pub initial_delay: Duration,
    /// Between runs.
    pub period: Duration,
    /// Bound on one run.
    pub timeout: Duration,
    /// Consecutive successes to become ready.
    pub success_threshold: u32,
    /// Consecutive failures to become unready.
    pub failure_threshold: u32,
}

impl Schedule {
    /// kubelet's defaults for unset fields (period 10 s, timeout 1 s, thresholds 1 and 3).
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.map_or(default, |v| u64::try_from(v).unwrap_or(default)))
        };
        let count =
            |v: Option<i32>, default: u32| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0).unwrap_or(default);
        Self {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// Where a probe runs.
pub struct Target<'a> {
    /// The svcbench executable (for `lab pod-exec --enter-pid`).
    pub svcbench: &'a Path,
    /// The container's main process.
    pub pid: u32,
    /// The node's network namespace.
    pub node_netns: &'a str,
    /// The pod IP.
    pub pod_ip: Ipv4Addr,
}

/// Runs `probe` once: `Ok(())` on success, else why it failed.
pub async fn run(probe: &Probe, target: &Target<'_>, ports: &[(String, u16)]) -> Result<(), String> {
    let timeout = Schedule::of(probe).timeout;
    let port_of = |p: &IntOrString| match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("bad port {n}")),
        IntOrString::String(name) => {
            ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p).ok_or_else(|| format!("no port named {name}"))
        }
    };
    let attempt = async {
        if let Some(exec) = &probe.exec {
            let command = exec.command.clone().unwrap_or_default();
            let status = tokio::process::Command::new(target.svcbench)
                .args(["lab", "pod-exec", "--enter-pid", &target.pid.to_string(), "--"])
                .args(&command)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| e.to_string())?;
            return if status.success() { Ok(()) } else { Err(format!("exec {command:?}: {status}")) };
        }
        if let Some(http) = &probe.http_get {
            let port = port_of(&http.port)?;
            let addr = (target.pod_ip, port).into();
            let mut stream =
                super::super::netns::connect(target.node_netns, addr, timeout).await.map_err(|e| e.to_string())?;
            let path = http.path.as_deref().unwrap_or("/");
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {}:{port}\r\nUser-Agent: kube-probe/1.34\r\nConnection: close\r\n\r\n",
                target.pod_ip
            );
            stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut head = vec![0u8; 64];
            let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&head[..n]);
            let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("no HTTP status")?;
            return if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = port_of(&tcp.port)?;
            super::super::netns::connect(target.node_netns, (target.pod_ip, port).into(), timeout)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        Err("probe has no handler (exec, httpGet or tcpSocket)".to_owned())
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
}
