//! What a scenario may ask of the machine the embedded cluster runs on: every live pod port and ClusterIP service
//! port is a listening socket, so together they must fit the process's open-file limit, and pods and ClusterIPs
//! must fit their address ranges. A scenario over a limit is refused at the step that crosses it, naming the limit,
//! instead of failing at run time with "Too many open files" or exhausting memory.

use serde_saphyr::Location;

use super::Validator;

/// Most pods alive at once (each is a loopback IP with its own HTTP server; the pod range holds ~32,000).
pub const MAX_LIVE_PODS: u64 = 10_000;
/// Most ClusterIP service ports alive at once (the ClusterIP range `127.S.0.11–127.S.127.254` holds ~32,500).
pub const MAX_LIVE_SERVICE_PORTS: u64 = 30_000;
/// Sockets kept free for everything else: DNS, the state file, probes and load connections of a step.
pub const RESERVED_SOCKETS: u64 = 1024;

/// The hard open-file limit of this process (what svcbench raises its soft limit to at start).
pub fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_max == libc::RLIM_INFINITY { u64::MAX } else { limit.rlim_max }
}

/// Raises the soft open-file limit to the hard one (a cluster of thousands of services needs the sockets); errors
/// are ignored, the validator then refuses what does not fit.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

impl Validator {
    /// Checks the pods and service ports alive after the step at `at`; reports the first limit crossed, once.
    pub(super) fn check_capacity(&mut self, at: &Location) {
        if self.capacity_reported {
            return;
        }
        let pods: u64 = self.deployments.values().map(|d| u64::from(d.replicas)).sum();
        let pod_ports: u64 =
            self.deployments.values().map(|d| u64::from(d.replicas) * d.ports.len().max(1) as u64).sum();
        let service_ports: u64 = self.listeners.values().map(|n| u64::from(*n)).sum();
        let files = open_file_limit();
        let reason = if pods > MAX_LIVE_PODS {
            format!("{pods} pods alive after this step, over the limit of {MAX_LIVE_PODS} pods at once")
        } else if service_ports > MAX_LIVE_SERVICE_PORTS {
            format!(
                "{service_ports} ClusterIP service ports alive after this step, over the limit of \
                 {MAX_LIVE_SERVICE_PORTS} at once (the ClusterIP range)"
            )
        } else if pod_ports + service_ports + RESERVED_SOCKETS > files {
            format!(
                "{pod_ports} pod ports and {service_ports} ClusterIP service ports need as many listening sockets, \
                 which with {RESERVED_SOCKETS} kept for DNS and probes is over the open-file limit of {files} \
                 (ulimit -n)"
            )
        } else {
            return;
        };
        self.capacity_reported = true;
        self.err(at, reason);
    }
}
