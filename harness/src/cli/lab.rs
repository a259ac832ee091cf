//! `svcbench lab`: install, start and clean up the lab (real Kubernetes components on this machine), plus the two
//! programs the lab's node agent runs inside pods (`pod-exec`, `netexec`; hidden).

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};

use super::{EXIT_INTERRUPTED, EXIT_INVALID, run::shutdown_signal};
use crate::lab::{
    self, Lab, LabConfig, ProxyMode,
    versions::{LabVersions, Release},
};

/// Arguments of `svcbench lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Build the pinned Kubernetes, etcd and CoreDNS (and any other releases named) from their Go modules into
    /// ~/.cache/svcbench/lab.
    Install(InstallArgs),
    /// Start a lab, write its kubeconfig once it is ready, serve until Ctrl-C / SIGTERM, then tear it down.
    Up(UpArgs),
    /// Remove processes, network namespaces and files of labs whose owner is gone (after a kill -9).
    Cleanup,
    /// (internal) Enter a pod's namespaces and exec its container program.
    #[command(hide = true)]
    PodExec(PodExecArgs),
    /// (internal) agnhost netexec, as the lab runs it for backend pods.
    #[command(hide = true)]
    Netexec(lab::netexec::NetexecArgs),
}

/// Arguments of `svcbench lab install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Also build this Kubernetes release's kube-proxy (and its control plane when it is newer than the pinned
    /// one, or older than the version skew policy allows); repeatable.
    #[arg(long, value_name = "RELEASE")]
    pub kubernetes: Vec<Release>,
    /// Also build this CoreDNS release; repeatable.
    #[arg(long, value_name = "RELEASE")]
    pub coredns: Vec<Release>,
    /// Also build every release the real-bug matrix needs (`<scenarios-dir>/real-bugs/bugs.yaml`).
    #[arg(long)]
    pub real_bugs: bool,
    /// Where the scenarios are (for `--real-bugs`).
    #[arg(long, default_value = "scenarios")]
    pub scenarios_dir: PathBuf,
}

/// The releases a lab runs (`--kubernetes`, `--coredns`), shared by every command that starts one.
#[derive(Debug, Clone, Copy, Args)]
pub struct ReleaseArgs {
    /// Kubernetes release of the lab's kube-proxy, e.g. 1.33.5 (default: the pinned one); the control plane stays
    /// pinned unless kube-proxy is newer, or older than the version skew policy allows (`svcbench lab install
    /// --kubernetes` builds it).
    #[arg(long, value_name = "RELEASE")]
    pub kubernetes: Option<Release>,
    /// CoreDNS release of the lab's cluster DNS, e.g. 1.10.1 (default: the pinned one).
    #[arg(long, value_name = "RELEASE")]
    pub coredns: Option<Release>,
}

impl ReleaseArgs {
    /// Whether either release was given (they mean something only where a lab starts).
    pub fn given(self) -> bool {
        self.kubernetes.is_some() || self.coredns.is_some()
    }

    /// The lab's releases.
    pub fn versions(self) -> LabVersions {
        LabVersions::new(self.kubernetes, self.coredns)
    }
}

/// Arguments of `svcbench lab up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Service data plane: kube-proxy nftables or iptables mode, or Cilium (no kube-proxy).
    #[arg(long, value_enum, default_value_t = ProxyMode::Nftables)]
    pub proxy_mode: ProxyMode,
    /// Cluster DNS: CoreDNS, or NodeLocal DNSCache in front of it.
    #[arg(long, value_enum, default_value_t = lab::DnsMode::Coredns)]
    pub dns: lab::DnsMode,
    /// Number of nodes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub nodes: u8,
    /// Where to write the kubeconfig (once the cluster is ready).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    #[command(flatten)]
    releases: ReleaseArgs,
}

#[derive(Debug, Args)]
struct PodExecArgs {
    #[arg(long)]
    netns: Option<String>,
    #[arg(long)]
    enter_pid: Option<u32>,
    #[arg(long)]
    hostname: Option<String>,
    #[arg(long)]
    pod_dir: Option<PathBuf>,
    #[arg(long = "bind")]
    binds: Vec<String>,
    #[arg(long)]
    workdir: Option<PathBuf>,
    #[arg(long)]
    cgroup: Option<PathBuf>,
    #[arg(long)]
    bpffs: Option<PathBuf>,
    #[arg(long)]
    read_only: Vec<PathBuf>,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Runs `svcbench lab …`. `pod-exec` must run before any runtime thread exists (entering a mount namespace needs a
/// single-threaded process), so this function makes its own runtime for the other commands.
pub fn lab(args: LabArgs) -> ExitCode {
    match args.command {
        LabCommand::PodExec(a) => {
            let spec = lab::podexec::PodExec {
                netns: a.netns,
                enter_pid: a.enter_pid,
                hostname: a.hostname,
                pod_dir: a.pod_dir,
                binds: a.binds,
                workdir: a.workdir,
                cgroup: a.cgroup,
                bpffs: a.bpffs,
                read_only: a.read_only,
                command: a.command,
            };
            match lab::podexec::exec(&spec) {
                Ok(never) => match never {},
                Err(e) => {
                    eprintln!("pod-exec: {e:#}");
                    ExitCode::from(127)
                }
            }
        }
        LabCommand::Install(a) => {
            let mut extra: Vec<LabVersions> = a
                .kubernetes
                .iter()
                .map(|k| LabVersions::new(Some(*k), None))
                .chain(a.coredns.iter().map(|c| LabVersions::new(None, Some(*c))))
                .collect();
            if a.real_bugs {
                match crate::suite::real_bugs::load(&crate::suite::real_bugs::catalogue_path(&a.scenarios_dir)) {
                    Ok(bugs) => extra
                        .extend(bugs.iter().flat_map(|b| [b.lab(b.broken, 1).versions, b.lab(b.fixed, 1).versions])),
                    Err(errors) => {
                        errors.iter().for_each(|e| eprintln!("{e}"));
                        return ExitCode::from(EXIT_INVALID);
                    }
                }
            }
            let mut unique: Vec<LabVersions> = Vec::new();
            for versions in extra {
                if !unique.contains(&versions) {
                    unique.push(versions);
                }
            }
            let extra = unique;
            match lab::install::install(&extra) {
                Ok(_) => {
                    println!("{}", lab::install::cache_root().join("bin").display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: lab install: {e}");
                    ExitCode::from(EXIT_INVALID)
                }
            }
        }
        LabCommand::Cleanup => {
            let r = lab::cleanup::cleanup_dead();
            println!(
                "removed {} processes, {} network namespaces, {} state directories, {} cgroups",
                r.processes, r.namespaces, r.directories, r.cgroups
            );
            ExitCode::SUCCESS
        }
        LabCommand::Netexec(a) => super::with_runtime(async move {
            match lab::netexec::run(a).await {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    eprintln!("netexec: {e:#}");
                    ExitCode::from(1)
                }
            }
        }),
        LabCommand::Up(a) => super::with_runtime(up(a)),
    }
}

async fn up(args: UpArgs) -> ExitCode {
    let config = LabConfig::new(args.proxy_mode, args.nodes).with_dns(args.dns).with_versions(args.releases.versions());
    let lab = tokio::select! {
        lab = Lab::start(config) => lab,
        _ = shutdown_signal() => {
            // Dropping the half-started lab's future tears down what it started.
            eprintln!("interrupted");
            return ExitCode::from(EXIT_INTERRUPTED);
        }
    };
    let lab = match lab {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("error: lab: {e:#}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Err(e) = lab.write_kubeconfig(&args.kubeconfig) {
        eprintln!("error: {e:#}");
        lab.stop().await;
        return ExitCode::from(EXIT_INVALID);
    }
    println!("{}", lab.description());
    println!("ready in {:.1} s; kubeconfig: {}", lab.start_time().as_secs_f64(), args.kubeconfig.display());
    println!("  KUBECONFIG={} svcbench run --target kube", args.kubeconfig.display());
    println!("  KUBECONFIG={} kubectl get nodes,pods -A", args.kubeconfig.display());
    println!("logs: {}", lab.state_dir().display());
    println!("Ctrl-C or SIGTERM stops the lab and removes everything it made.");
    shutdown_signal().await;
    eprintln!("stopping the lab …");
    lab.stop().await;
    let _ = std::fs::remove_file(&args.kubeconfig);
    ExitCode::SUCCESS
}
