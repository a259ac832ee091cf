//! kube-proxy's start-up race for its node's zone, and the lab's guard against it.
//!
//! From 1.34, kube-proxy learns its node's `topology.kubernetes.io/zone` through a `NodeTopologyConfig` whose
//! informer handler is added to the node informer *after* that informer was started and synced
//! (`cmd/kube-proxy/app/server.go`: `NewNodeTopologyConfig(…)`, then `RegisterEventHandler(s.Proxier)`). The informer
//! replays the Node to the new handler on a goroutine of its own; when that replay runs before the proxier is appended
//! to the handler list, the zone is cached with nobody told, and every later event finds it unchanged
//! (`handleNodeEvent` compares with the cache). The proxier then never knows its zone: it ignores every Service's
//! zone hints ("Ignoring same-zone topology hints for service since node is missing label") until the label changes
//! or kube-proxy restarts. Measured in the lab: see `harness/doc/lab.md`.
//!
//! The lab's batteries test Services, not this start-up race, so a lab checks each kube-proxy's log for the line the
//! proxier writes when it learns its zone (at `-v=4` for `proxier.go`) and restarts a kube-proxy that lost the race,
//! saying so.

use std::{path::Path, time::Duration};

use super::{process::Supervised, versions::Release};

/// What kube-proxy's proxier logs (V(4)) when it is told its node's topology labels.
pub const LEARNED: &str = "Updated proxier node topology labels";

/// Restarts a kube-proxy gets before the lab gives up on it.
const MAX_RESTARTS: u32 = 3;

/// How long a (re)started kube-proxy has to learn its zone (it does within a second of start when it wins the race).
pub const LEARN_WITHIN: Duration = Duration::from_secs(15);

/// Whether kube-proxy `release` has the race: the `NodeTopologyConfig` wiring came with 1.34's node manager and 1.37.2
/// (the newest release served here) still has it; 1.33 registered its node handlers before starting the informer.
pub fn affected(release: Release) -> bool {
    release >= Release::new(1, 34, 0)
}

/// Whether a kube-proxy log says the proxier learned its node's topology labels.
pub fn learned_zone(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| text.contains(LEARNED))
}

/// Waits until every kube-proxy in `processes` whose log is one of `logs` has learned its zone; restarts (with
/// `restart(i)`, which starts the kube-proxy of `logs[i]` again) one that has not within `within` ([`LEARN_WITHIN`]).
/// Returns how many restarts it took, each reported through `report`.
///
/// # Errors
/// A kube-proxy still without its zone after [`MAX_RESTARTS`], or a restart failed.
pub async fn ensure_learned(
    processes: &mut Vec<Supervised>,
    logs: &[std::path::PathBuf],
    within: Duration,
    mut restart: impl FnMut(usize) -> anyhow::Result<Supervised>,
    mut report: impl FnMut(&str),
) -> anyhow::Result<u32> {
    let mut restarts = 0;
    for (i, log) in logs.iter().enumerate() {
        let mut attempts = 0;
        loop {
            if wait_learned(log, within, processes).await? {
                break;
            }
            if attempts == MAX_RESTARTS {
                anyhow::bail!(
                    "kube-proxy ({}) did not learn its node's zone after {MAX_RESTARTS} restarts: no `{LEARNED}` in \
                     its log",
                    log.display()
                );
            }
            attempts += 1;
            restarts += 1;
            report(&format!(
                "kube-proxy ({}) started without its node's zone (kube-proxy's topology-handler race): restart {attempts}",
                log.file_name().map_or_else(|| log.display().to_string(), |n| n.to_string_lossy().into_owned())
            ));
            if let Some(at) = processes.iter().position(|p| p.log() == log.as_path()) {
                let mut lost = processes.remove(at);
                // stop() waits out the grace period: off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || lost.stop()).await;
            }
            processes.push(restart(i)?);
        }
    }
    Ok(restarts)
}

/// Whether the log shows the zone learned within `within`.
///
/// # Errors
/// The kube-proxy writing `log` exited (with its log's tail): no point waiting for it.
async fn wait_learned(log: &Path, within: Duration, processes: &mut [Supervised]) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if learned_zone(log) {
            return Ok(true);
        }
        if let Some(p) = processes.iter_mut().find(|p| p.log() == log)
            && let Some(exit) = p.exited()
        {
            anyhow::bail!("kube-proxy ({}) exited ({exit}):\n{}", log.display(), p.log_tail(20));
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_race_exists_from_1_34() {
        assert!(!affected(Release::new(1, 33, 6)));
        assert!(affected(Release::new(1, 34, 4)));
    }

    #[test]
    fn a_log_tells_whether_the_zone_was_learned() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kube-proxy.log");
        std::fs::write(&log, "I1207 proxier.go:1132] \"SyncProxyRules complete\" elapsed=\"10ms\"\n").unwrap();
        assert!(!learned_zone(&log));
        std::fs::write(
            &log,
            "I1207 proxier.go:849] \"Updated proxier node topology labels\" ipFamily=\"IPv4\" \
             labels={\"topology.kubernetes.io/zone\":\"zone-1\"}\n",
        )
        .unwrap();
        assert!(learned_zone(&log));
        assert!(!learned_zone(&dir.path().join("missing.log")));
    }

    /// Real processes stand in for kube-proxy (the race cannot be forced): one that never logs the line is stopped
    /// and replaced by what `restart` starts, which does.
    #[tokio::test]
    async fn a_kube_proxy_that_lost_is_restarted_until_it_learned() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kube-proxy-lab-node-1.log");
        let lost = |log: &Path| {
            let mut cmd = std::process::Command::new("sleep");
            cmd.arg("30");
            Supervised::spawn("kube-proxy", cmd, log, "proxy-zone-test").unwrap()
        };
        let mut processes = vec![lost(&log)];
        let old_pid = processes[0].pid();
        let mut reports = Vec::new();
        let restarts = ensure_learned(
            &mut processes,
            std::slice::from_ref(&log),
            Duration::from_millis(300),
            |i| {
                assert_eq!(i, 0);
                let mut cmd = std::process::Command::new("sh");
                cmd.args(["-c", &format!("echo '\"{LEARNED}\" labels={{}}'; sleep 30")]);
                Supervised::spawn("kube-proxy", cmd, &log, "proxy-zone-test")
            },
            |what| reports.push(what.to_owned()),
        )
        .await
        .unwrap();
        assert_eq!(restarts, 1);
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].contains("kube-proxy-lab-node-1.log") && reports[0].contains("restart 1"), "{reports:?}");
        assert_eq!(processes.len(), 1);
        assert_ne!(processes[0].pid(), old_pid, "the process that lost is replaced");
        assert!(!std::path::Path::new(&format!("/proc/{old_pid}")).exists(), "the one that lost is stopped");

        // One that never learns is given up on after the restarts, with the reason.
        let log2 = dir.path().join("kube-proxy-lab-node-2.log");
        let mut processes = vec![lost(&log2)];
        let err = ensure_learned(
            &mut processes,
            std::slice::from_ref(&log2),
            Duration::from_millis(100),
            |_| Ok(lost(&log2)),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("did not learn its node's zone after 3 restarts"), "{err}");
    }
}
