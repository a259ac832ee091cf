//! Cilium in the lab (issue #21), contained: its socket load balancer translates the connect() of the node's pods and
//! of no other process on the machine; a Cilium lab and an nftables lab run side by side, each serving its own
//! Services; and `svcbench lab cleanup` after a `kill -9` leaves nothing — counted, BPF objects included.
//!
//! Needs root, `svcbench lab install` (which builds Cilium) and clang-19; prints `SKIPPED` otherwise (`.ci/run`
//! installs all of it).

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use svcbench::lab::{Lab, LabConfig, ProxyMode, cgroup, netns, process};

/// The cluster DNS ClusterIP both labs have (CoreDNS behind it).
const KUBE_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// One lab test at a time: each starts labs of its own, and the machine has two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This test's turn on the machine, or `None` (having said `SKIPPED` and why) when a Cilium lab cannot run here.
fn turn() -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match svcbench::lab::unavailable_for(ProxyMode::Cilium) {
        Some(why) => {
            println!("SKIPPED: {why}");
            None
        }
        None => Some(guard),
    }
}

fn svcbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svcbench"))
}

/// BPF programs, maps and links on the whole machine (`BPF_*_GET_NEXT_ID`, as `bpftool … list` counts them).
fn bpf_objects() -> [usize; 3] {
    const PROG: libc::c_long = 11; // BPF_PROG_GET_NEXT_ID
    const MAP: libc::c_long = 12; // BPF_MAP_GET_NEXT_ID
    const LINK: libc::c_long = 31; // BPF_LINK_GET_NEXT_ID
    [PROG, MAP, LINK].map(|cmd| {
        let mut count = 0;
        // union bpf_attr for *_GET_NEXT_ID: start_id, next_id, open_flags.
        let mut attr = [0u32; 3];
        loop {
            // SAFETY: the attr buffer outlives the call and its size is passed.
            let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(&attr)) };
            if rc != 0 {
                break count;
            }
            count += 1;
            attr = [attr[1], 0, 0];
        }
    })
}

/// Everything a lab could leave on the machine, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footprint {
    /// BPF programs, maps, links (machine-wide: compared with the count before the lab).
    bpf: [usize; 3],
    /// `svcb-*` network namespaces.
    namespaces: usize,
    /// `svcbench-lab-*` state directories.
    directories: usize,
    /// `svcbench-lab-*` cgroups.
    cgroups: usize,
    /// Processes marked as a lab's.
    processes: usize,
    /// Mount namespaces with a BPF filesystem mounted (one per running agent; the host has none of its own here).
    bpffs_mounts: usize,
    /// `cilium_*` interfaces in the host's namespace.
    host_interfaces: usize,
    /// `CILIUM` iptables chains in the host's namespace (IPv4 and IPv6).
    host_chains: usize,
}

fn footprint() -> Footprint {
    let mut mount_namespaces = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let has_bpffs = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .is_ok_and(|m| m.lines().any(|l| l.split_once(" - ").is_some_and(|(_, r)| r.starts_with("bpf "))));
        if has_bpffs && let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) {
            mount_namespaces.insert(ns);
        }
    }
    let output = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let host_chains = ["iptables-save", "ip6tables-save"]
        .iter()
        .map(|tool| output(tool, &[]).lines().filter(|l| l.starts_with(':') && l.contains("CILIUM")).count())
        .sum();
    Footprint {
        bpf: bpf_objects(),
        namespaces: netns::list().iter().filter(|n| n.starts_with("svcb-")).count(),
        directories: std::fs::read_dir("/var/tmp")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("svcbench-lab-"))
            .count(),
        cgroups: cgroup::lab_ids().len(),
        processes: process::marked_processes(None).len(),
        bpffs_mounts: mount_namespaces.len(),
        host_interfaces: output("ip", &["-o", "link"]).lines().filter(|l| l.contains("cilium_")).count(),
        host_chains,
    }
}

/// Connects to `KUBE_DNS:53` from a network namespace of the test's own where that address is a local listener,
/// optionally from inside `cgroup`; whether the connection reached that listener (an untranslated connect) .
fn connects_locally(netns_name: &str, cgroup: Option<&Path>) -> bool {
    let mut cmd = svcbench();
    cmd.args(["lab", "pod-exec", "--netns", netns_name]);
    if let Some(cgroup) = cgroup {
        cmd.arg("--cgroup").arg(cgroup);
    }
    // bash's /dev/tcp: connect(2) and nothing else.
    cmd.args(["--", "bash", "-c", &format!("exec 3<>/dev/tcp/{KUBE_DNS}/53")]).stderr(Stdio::null());
    cmd.status().unwrap().success()
}

async fn contained(cilium: &Lab, nftables: &Lab) {
    // A namespace of the test's own, where 10.96.0.10 is a local address with a listener: an untranslated connect()
    // reaches it; one the socket load balancer rewrote goes to a CoreDNS pod IP, which has no route here.
    let name = format!("svcbt-{}", std::process::id());
    let own = netns::Netns::create(&name).unwrap();
    netns::ip_batch(&name, &["link set lo up".into(), format!("addr add {KUBE_DNS}/32 dev lo")]).unwrap();
    let listener = netns::in_netns(&name, || TcpListener::bind(SocketAddr::from((KUBE_DNS, 53)))).unwrap();
    listener.set_nonblocking(true).unwrap();
    let accepted = || std::iter::from_fn(|| listener.accept().ok()).count();

    assert!(connects_locally(&name, None), "a host process's connect() to {KUBE_DNS}:53 was translated");
    assert_eq!(accepted(), 1, "the listener should have seen the host process's connection");
    // The control: the same connect() from a process in a Cilium node's cgroup is translated (and fails here).
    let node_cgroup = cgroup::node_path(cilium.id(), 1).unwrap();
    assert!(
        !connects_locally(&name, Some(&node_cgroup)),
        "a process in {} was not translated: the socket load balancer is not attached where the lab says",
        node_cgroup.display()
    );
    assert_eq!(accepted(), 0, "a translated connect() must not reach the local listener");
    // The nftables lab's nodes have no cgroup of Cilium's: its pods are served by kube-proxy alone.
    assert!(!cgroup::node_path(nftables.id(), 1).unwrap().exists(), "the nftables lab has node cgroups");
    // Every process in the Cilium lab's cgroups is one of its own pods.
    let cilium_pids: Vec<i32> = process::marked_processes(Some(cilium.id())).into_iter().map(|(pid, _)| pid).collect();
    let members = cgroup::members(cilium.id());
    assert!(!members.is_empty(), "no pod joined the Cilium lab's node cgroups");
    assert!(members.iter().all(|p| cilium_pids.contains(p)), "a process of another lab in Cilium's cgroups");
    println!(
        "host connect() to {KUBE_DNS}:53 untranslated (reached the test's listener); from {} translated; {} pod \
         processes in the Cilium lab's cgroups",
        node_cgroup.display(),
        members.len()
    );
    drop(own);

    // Both labs serve Services at once, each through its own data plane.
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let reports = tempfile::tempdir().unwrap();
    let run = |lab: &Lab| {
        let mut cmd = svcbench();
        cmd.args(["run", "--target", "kube", "--reports-dir"])
            .arg(reports.path())
            .arg(scenarios.join("http-by-service-name.yaml"))
            .arg(scenarios.join("udp-services.yaml"))
            .env("KUBECONFIG", lab.kubeconfig());
        cmd
    };
    let (a, b) = (run(cilium).output().unwrap(), run(nftables).output().unwrap());
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    println!("lab-cilium:\n{}\nlab-nftables:\n{}", text(&a), text(&b));
    assert!(text(&a).contains("PASS kube::http-by-service-name"), "Cilium lab: {}", text(&a));
    assert!(b.status.success(), "nftables lab beside a Cilium lab: {}", text(&b));
}

#[test]
fn cilium_is_contained_and_runs_beside_an_nftables_lab() {
    let Some(_turn) = turn() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config =
            |mode| LabConfig { svcbench: Some(env!("CARGO_BIN_EXE_svcbench").into()), ..LabConfig::new(mode, 2) };
        let (cilium, nftables) =
            tokio::join!(Lab::start(config(ProxyMode::Cilium)), Lab::start(config(ProxyMode::Nftables)));
        let (cilium, nftables) = (cilium.expect("Cilium lab"), nftables.expect("nftables lab"));
        let outcome = tokio::spawn(async move {
            contained(&cilium, &nftables).await;
            (cilium, nftables)
        })
        .await;
        match outcome {
            Ok((cilium, nftables)) => tokio::join!(cilium.stop(), nftables.stop()).0,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    });
}

#[test]
fn cleanup_after_kill_9_leaves_nothing_of_a_cilium_lab() {
    let Some(_turn) = turn() else { return };
    let before = footprint();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut up = svcbench()
        .args(["lab", "up", "--proxy-mode", "cilium", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !kubeconfig.exists() {
        assert!(up.try_wait().unwrap().is_none(), "svcbench lab up exited before the lab was ready");
        assert!(Instant::now() < deadline, "the Cilium lab was not ready within 600 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = footprint();
    println!("before: {before:?}\nduring: {during:?}");
    assert!(during.bpf[0] > before.bpf[0], "no BPF program loaded while Cilium ran");
    assert!(during.bpffs_mounts >= before.bpffs_mounts + 2, "each agent has its own BPF filesystem");
    assert_eq!(during.cgroups, before.cgroups + 1);
    assert_eq!((during.host_interfaces, during.host_chains), (before.host_interfaces, before.host_chains));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    up.wait().unwrap();
    let cleanup = svcbench().args(["lab", "cleanup"]).output().unwrap();
    println!("lab cleanup: {}", String::from_utf8_lossy(&cleanup.stdout).trim());
    assert!(cleanup.status.success());
    // The kernel frees a dead agent's programs and maps once the last reference (an fd, a pin, a link) is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = footprint();
    while after.bpf != before.bpf && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = footprint();
    }
    println!("after:  {after:?}");
    assert_eq!(after, before, "the machine after `kill -9` and `svcbench lab cleanup` differs from before the lab");
}
