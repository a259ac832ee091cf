//! `svcbench agent`: the in-cluster probe server (see [`crate::agent`]); this is only its command line.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;

use super::EXIT_INVALID;
use crate::agent::{Agent, AgentConfig};

/// Arguments of `svcbench agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed as `listening: ADDR`).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The resolver configuration probes use (the pod's own).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// The hosts file the glibc and musl resolver flavours read before DNS (the pod's own; missing reads as empty).
    #[arg(long, default_value = "/etc/hosts")]
    hosts: PathBuf,
    /// Test/debug only: send DNS traffic for the nameservers' port 53 to this port instead (an embedded cluster
    /// run without root serves DNS on a high port). Never needed in a pod.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    dns_port: Option<u16>,
    /// Per-attempt timeout of one DNS query, connect or HTTP exchange (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    probe_timeout: Duration,
    /// Probes run at once; more wait for a free slot (then 503).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent: u16,
    /// File holding the token every request must carry in `X-Svcbench-Token` (the kube target mounts a per-run
    /// Secret here). One of this or `--no-auth` is required.
    #[arg(long, required_unless_present = "no_auth")]
    token_file: Option<PathBuf>,
    /// Serve anyone: only for an agent on your own machine, never in a shared cluster.
    #[arg(long, conflicts_with = "token_file")]
    no_auth: bool,
}

/// Longest token file read (a token is a few dozen bytes).
const MAX_TOKEN_FILE: u64 = 4096;

/// The token in `path`, trimmed; errors name the file.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_FILE).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// Runs the agent until Ctrl-C or SIGTERM; exit 0 after a clean shutdown, 2 when it cannot start.
pub async fn agent(args: AgentArgs) -> ExitCode {
    // Handlers are installed before the address is announced, so a signal sent right after can never kill the
    // process uncleanly.
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let token = match &args.token_file {
        Some(path) => match read_token(path) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        None => None,
    };
    let config = AgentConfig {
        listen: args.listen,
        resolv_conf: args.resolv_conf,
        hosts: args.hosts,
        dns_port: args.dns_port,
        probe_timeout: args.probe_timeout,
        max_concurrent: usize::from(args.max_concurrent),
        token,
        ..AgentConfig::default()
    };
    let agent = match Agent::bind(&config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let addr = match agent.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot read the bound address: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let info = agent.info();
    if info.resolv_conf.nameservers.is_empty() {
        eprintln!("warning: {} has no nameserver; DNS probes will fail with 422", info.resolv_conf_path.display());
    }
    tracing::info!(resolv_conf = ?info.resolv_conf, dns_port = ?info.dns_port, "agent starting");
    // Tests and scripts wait for this line; flush so it is not stuck in a pipe buffer.
    println!("listening: {addr}");
    let _ = std::io::stdout().flush();
    agent.serve(shutdown).await;
    ExitCode::SUCCESS
}

/// Installs SIGTERM and SIGINT handlers now and resolves when either arrives.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
