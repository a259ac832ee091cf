//! `svcbench lab pod-exec`: the lab's container runtime in one exec. Run by the node agent as a fresh,
//! single-threaded process, it enters the pod's network namespace, makes private mount and UTS namespaces (or joins
//! those of a running container, for exec probes), puts the pod's files in place and execs the container's program.
//!
//! The pod sees the host's filesystem except: `/etc` is an overlay whose upper layer holds the pod's `resolv.conf`,
//! `hosts`, `hostname` and `/etc/...` volumes; `/tmp` and `/run` are private tmpfs (the service-account token is
//! bound under `/run/secrets/kubernetes.io/serviceaccount`, which `/var/run` links to).
//!
//! A node's own daemon (Cilium's agent) starts the same way, with a BPF filesystem of its own and read-only paths
//! for what it must not change machine-wide.

use std::{ffi::CString, fs::File, path::PathBuf};

use anyhow::{Context as _, bail};
use nix::{
    mount::{MsFlags, mount},
    sched::{CloneFlags, setns, unshare},
};

/// What to set up before exec.
#[derive(Debug, Clone, Default)]
pub struct PodExec {
    /// Named network namespace to enter (a new container).
    pub netns: Option<String>,
    /// Join every namespace of this running process instead (exec into a container).
    pub enter_pid: Option<u32>,
    /// Hostname (new containers).
    pub hostname: Option<String>,
    /// The pod's directory: `etc-upper/`, `etc-work/` and `bind/<path>` live there.
    pub pod_dir: Option<PathBuf>,
    /// `SRC:DST` bind mounts made after `/run` and `/tmp` are private.
    pub binds: Vec<String>,
    /// Working directory.
    pub workdir: Option<PathBuf>,
    /// A cgroup (directory) to join before anything else: the node's, so the node's cgroup hooks see the pod.
    pub cgroup: Option<PathBuf>,
    /// Where to mount a BPF filesystem of this mount namespace's own (a node's data plane pins its maps there).
    pub bpffs: Option<PathBuf>,
    /// Paths made read-only in this mount namespace (e.g. `/proc/sys/kernel`: machine-wide settings a node's
    /// daemon must not change).
    pub read_only: Vec<PathBuf>,
    /// Program and arguments.
    pub command: Vec<String>,
}

/// Sets up and execs; returns only on failure.
///
/// # Errors
/// Any step failed (the message names it).
pub fn exec(spec: &PodExec) -> anyhow::Result<std::convert::Infallible> {
    let Some(program) = spec.command.first() else { bail!("no command") };
    let args: Vec<CString> = spec.command.iter().map(|a| CString::new(a.as_str())).collect::<Result<_, _>>()?;
    // The program is opened before /tmp and /run are replaced: it may live there (a checkout under /tmp).
    let executable = if spec.enter_pid.is_none() { Some(open_program(program)?) } else { None };
    // An exec into a container joins its cgroup unless told which.
    let cgroup = spec.cgroup.clone().or_else(|| spec.enter_pid.and_then(super::cgroup::of_lab_process));
    if let Some(cgroup) = &cgroup {
        super::cgroup::enter(cgroup)?;
    }
    if let Some(pid) = spec.enter_pid {
        // Order matters: the mount namespace last, once /proc/<pid> has been read.
        let files: Vec<(File, CloneFlags)> =
            [("net", CloneFlags::CLONE_NEWNET), ("uts", CloneFlags::CLONE_NEWUTS), ("mnt", CloneFlags::CLONE_NEWNS)]
                .into_iter()
                .map(|(ns, flag)| {
                    Ok((
                        File::open(format!("/proc/{pid}/ns/{ns}"))
                            .with_context(|| format!("container process {pid}"))?,
                        flag,
                    ))
                })
                .collect::<anyhow::Result<_>>()?;
        for (file, flag) in &files {
            setns(file, *flag).with_context(|| format!("setns {flag:?} of {pid}"))?;
        }
    } else {
        if let Some(netns) = &spec.netns {
            let file = File::open(super::netns::netns_path(netns)).with_context(|| format!("netns {netns}"))?;
            setns(&file, CloneFlags::CLONE_NEWNET).context("setns net")?;
        }
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS).context("unshare mount+uts")?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
            .context("make / private")?;
        if let Some(hostname) = &spec.hostname {
            nix::unistd::sethostname(hostname).context("sethostname")?;
        }
        if let Some(dir) = &spec.pod_dir {
            let options = format!(
                "lowerdir=/etc,upperdir={},workdir={}",
                dir.join("etc-upper").display(),
                dir.join("etc-work").display()
            );
            mount(Some("overlay"), "/etc", Some("overlay"), MsFlags::empty(), Some(options.as_str()))
                .context("overlay /etc")?;
        }
        for private in ["/tmp", "/run"] {
            mount(Some("tmpfs"), private, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"))
                .with_context(|| format!("tmpfs {private}"))?;
        }
        for bind in &spec.binds {
            let (src, dst) = bind.split_once(':').with_context(|| format!("bind `{bind}` is not SRC:DST"))?;
            let is_dir = std::fs::metadata(src).with_context(|| format!("bind source {src}"))?.is_dir();
            if is_dir {
                std::fs::create_dir_all(dst).with_context(|| format!("mount point {dst}"))?;
            } else {
                if let Some(parent) = std::path::Path::new(dst).parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("mount point {}", parent.display()))?;
                }
                File::create(dst).with_context(|| format!("mount point {dst}"))?;
            }
            mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .with_context(|| format!("bind {src} → {dst}"))?;
        }
        if let Some(dir) = &spec.bpffs {
            mount(Some("bpffs"), dir, Some("bpf"), MsFlags::empty(), None::<&str>)
                .with_context(|| format!("mount a BPF filesystem on {}", dir.display()))?;
        }
        for path in &spec.read_only {
            mount(Some(path), path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .with_context(|| format!("bind {} to itself", path.display()))?;
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
                .with_context(|| format!("make {} read-only", path.display()))?;
        }
    }
    if let Some(dir) = &spec.workdir {
        std::env::set_current_dir(dir).with_context(|| format!("workdir {}", dir.display()))?;
    }
    let err = match executable {
        Some(file) => {
            let env: Vec<CString> = std::env::vars_os()
                .filter_map(|(k, v)| {
                    let mut kv = k.into_encoded_bytes();
                    kv.push(b'=');
                    kv.extend(v.into_encoded_bytes());
                    CString::new(kv).ok()
                })
                .collect();
            nix::unistd::fexecve(&file, &args, &env).unwrap_err()
        }
        None => nix::unistd::execvp(&CString::new(program.as_str())?, &args).unwrap_err(),
    };
    bail!("exec {program}: {err}")
}

/// Opens `program` as `execvp` would find it (a path, or the first match on PATH).
fn open_program(program: &str) -> anyhow::Result<File> {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(program)).collect()
    };
    candidates.iter().find_map(|p| File::open(p).ok()).with_context(|| format!("exec {program}: not found"))
}
