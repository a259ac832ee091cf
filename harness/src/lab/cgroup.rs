//! The lab's cgroup2 subtrees: `svcbench-lab-<id>/n<i>` under the machine's cgroup2 mount, one per node, holding
//! that node's pod processes. A data plane that attaches cgroup BPF hooks (Cilium's socket load balancer) is given
//! its node's subtree as its cgroup root, so its hooks see the node's pods and nothing else on the machine — what a
//! kind node gets from its private cgroup namespace.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Prefix of a lab's subtree under the cgroup2 mount.
const PREFIX: &str = "svcbench-lab-";

/// Where cgroup2 is mounted (`/sys/fs/cgroup` on a unified host, `/sys/fs/cgroup/unified` on a hybrid one).
///
/// # Errors
/// No cgroup2 mount (a pure cgroup v1 host): the lab cannot contain cgroup hooks there.
pub fn unified_mount() -> anyhow::Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    mountinfo
        .lines()
        .find_map(|line| {
            // `id parent major:minor root mountpoint options … - fstype source superoptions`
            let (left, right) = line.split_once(" - ")?;
            let mountpoint = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mountpoint))
        })
        .context(
            "no cgroup2 mount on this machine (/proc/self/mountinfo): a Cilium lab needs one for its nodes' cgroups",
        )
}

/// Lab `lab_id`'s subtree.
fn lab_root(mount: &Path, lab_id: &str) -> PathBuf {
    mount.join(format!("{PREFIX}{lab_id}"))
}

/// Creates node `node`'s cgroup (`svcbench-lab-<id>/n<node>`) and returns its path.
///
/// # Errors
/// No cgroup2 mount, or the directory cannot be made.
pub fn create_node(lab_id: &str, node: u8) -> anyhow::Result<PathBuf> {
    let path = node_path(lab_id, node)?;
    std::fs::create_dir_all(&path).with_context(|| format!("create cgroup {}", path.display()))?;
    Ok(path)
}

/// Where node `node` of lab `lab_id` has its cgroup (whether or not it exists).
///
/// # Errors
/// No cgroup2 mount.
pub fn node_path(lab_id: &str, node: u8) -> anyhow::Result<PathBuf> {
    Ok(lab_root(&unified_mount()?, lab_id).join(format!("n{node}")))
}

/// Moves the calling process into `cgroup` (a pod process does this before exec, so nothing it runs escapes).
///
/// # Errors
/// `cgroup.procs` cannot be written.
pub fn enter(cgroup: &Path) -> anyhow::Result<()> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, "0").with_context(|| format!("join cgroup {}", cgroup.display()))
}

/// The lab node cgroup process `pid` is in, if it is in one (an exec into a container joins its cgroup, as kubelet's
/// exec does: a command run in a Cilium node's pod must meet the same socket load balancer as the pod).
pub fn of_lab_process(pid: u32) -> Option<PathBuf> {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    // cgroup2's line is `0::<path>`.
    let path = membership.lines().find_map(|line| line.strip_prefix("0::"))?;
    let relative = path.trim_start_matches('/');
    relative.starts_with(PREFIX).then(|| unified_mount().ok().map(|m| m.join(relative)))?
}

/// This process's membership of a node's cgroup, for a measurement that must see the node's data plane as its pods
/// do (Cilium translates Service addresses in the connect() of processes in the node's cgroup); leaves it on drop.
pub struct Joined {
    previous: PathBuf,
}

impl Joined {
    /// Moves this whole process (every thread) into `cgroup`.
    ///
    /// # Errors
    /// No cgroup2 mount, or the move is refused.
    pub fn node(cgroup: &Path) -> anyhow::Result<Self> {
        let own = std::fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
        let relative =
            own.lines().find_map(|l| l.strip_prefix("0::")).context("no cgroup2 line in /proc/self/cgroup")?;
        let previous = unified_mount()?.join(relative.trim_start_matches('/'));
        enter(cgroup)?;
        Ok(Self { previous })
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        // Out again before the lab removes the cgroup (a cgroup with members cannot be removed).
        if let Err(e) = enter(&self.previous) {
            tracing::warn!(error = format!("{e:#}"), "cannot leave the node's cgroup");
        }
    }
}

/// Removes lab `lab_id`'s cgroups (their processes must be gone: a cgroup with members cannot be removed); returns
/// how many were removed.
pub fn remove_lab(lab_id: &str) -> usize {
    let Ok(mount) = unified_mount() else { return 0 };
    let root = lab_root(&mount, lab_id);
    let mut removed = 0;
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            removed += usize::from(remove_when_empty(&entry.path()));
        }
    }
    removed + usize::from(root.exists() && remove_when_empty(&root))
}

/// `rmdir`, retried briefly: a killed process leaves its cgroup a moment after the signal.
fn remove_when_empty(dir: &Path) -> bool {
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!(cgroup = %dir.display(), "cgroup still busy, not removed");
    false
}

/// Ids of every lab with a cgroup subtree (for `svcbench lab cleanup`).
pub fn lab_ids() -> Vec<String> {
    let Ok(mount) = unified_mount() else { return Vec::new() };
    std::fs::read_dir(mount)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix(PREFIX).map(str::to_owned))
        .collect()
}

/// Pids in lab `lab_id`'s cgroups (every node's).
pub fn members(lab_id: &str) -> Vec<i32> {
    let Ok(mount) = unified_mount() else { return Vec::new() };
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(lab_root(&mount, lab_id)).into_iter().flatten().flatten() {
        let procs = std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    pids
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_cgroup2_mount() {
        // Every machine the lab runs on has one (hybrid or unified); the unit test only checks the parse.
        if let Ok(mount) = super::unified_mount() {
            assert!(mount.join("cgroup.procs").exists(), "{} is not a cgroup2 root", mount.display());
        }
    }
}
