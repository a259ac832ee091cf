//! `svcbench lab cleanup`: removes what labs left behind after a `kill -9` or a crash — their processes (marked
//! with `SVCBENCH_LAB=<id>`), network namespaces (`svcb-<id>-…`, which takes their veths, IPv4 and IPv6 addresses and
//! routes, forwarding sysctls and nftables/iptables/ip6tables tables with them) and state directories — for every lab
//! whose owning process is gone. A running lab is left alone. The lab changes nothing outside its namespaces (no host
//! address, route or sysctl of either family), so there is nothing else to undo.

use std::path::PathBuf;

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::{netns, process};

/// What a cleanup removed.
#[derive(Debug, Default)]
pub struct Removed {
    /// Processes killed.
    pub processes: usize,
    /// Network namespaces deleted.
    pub namespaces: usize,
    /// State directories removed.
    pub directories: usize,
    /// Node cgroups (and the lab's cgroup subtree) removed.
    pub cgroups: usize,
}

fn state_dir(id: &str) -> PathBuf {
    super::state_root().join(format!("svcbench-lab-{id}"))
}

/// Whether the lab `id`'s owner process is alive.
fn owner_alive(id: &str) -> bool {
    let Ok(owner) = std::fs::read_to_string(state_dir(id).join("owner")) else { return false };
    let Ok(pid) = owner.trim().parse::<i32>() else { return false };
    pid != std::process::id() as i32 && kill(Pid::from_raw(pid), None).is_ok()
}

/// Removes every trace of lab `id` (the caller owns it or it is dead).
pub fn remove_lab(id: &str) -> Removed {
    let mut removed = Removed::default();
    // A pod process that dropped its environment is still in its node's cgroup.
    let members = super::cgroup::members(id).into_iter().map(|pid| (pid, String::new()));
    for (pid, _) in process::marked_processes(Some(id)).into_iter().chain(members) {
        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            removed.processes += 1;
        }
    }
    // Give the kernel a moment to reap, so namespaces are not held by dying processes.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let prefix = format!("svcb-{id}-");
    for name in netns::list().into_iter().filter(|n| n.starts_with(&prefix)) {
        if netns::ip(&["netns", "delete", &name]).is_ok() {
            removed.namespaces += 1;
        }
    }
    if std::fs::remove_dir_all(state_dir(id)).is_ok() {
        removed.directories += 1;
    }
    removed.cgroups = super::cgroup::remove_lab(id);
    removed
}

/// Removes the leftovers of every lab whose owner is gone.
pub fn cleanup_dead() -> Removed {
    let mut ids: std::collections::BTreeSet<String> =
        process::marked_processes(None).into_iter().map(|(_, id)| id).collect();
    ids.extend(super::cgroup::lab_ids());
    ids.extend(netns::list().into_iter().filter_map(|n| Some(n.strip_prefix("svcb-")?.split('-').next()?.to_owned())));
    if let Ok(dir) = std::fs::read_dir(super::state_root()) {
        ids.extend(dir.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("svcbench-lab-").map(str::to_owned)));
    }
    let mut total = Removed::default();
    for id in ids.into_iter().filter(|id| !owner_alive(id)) {
        let r = remove_lab(&id);
        total.processes += r.processes;
        total.namespaces += r.namespaces;
        total.directories += r.directories;
        total.cgroups += r.cgroups;
    }
    total
}
