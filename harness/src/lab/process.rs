//! The lab's child processes: each in its own process group, its output in a log file, marked with the lab's id
//! (`SVCBENCH_LAB=<id>` in its environment, so `svcbench lab cleanup` finds it after a `kill -9`), killed with the
//! lab (SIGKILL when the thread that started it dies, SIGTERM → SIGKILL on drop).

use std::{
    fs::File,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

/// Environment variable that marks a process as the lab's.
pub const LAB_ENV: &str = "SVCBENCH_LAB";

/// A running child process, stopped on drop.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
    log: PathBuf,
    /// How long SIGTERM may take before SIGKILL.
    grace: Duration,
}

impl Supervised {
    /// Starts `cmd` as `name`, output appended to `log`, marked with `lab_id`.
    ///
    /// # Errors
    /// The program cannot be started or the log not created.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, lab_id: &str) -> anyhow::Result<Self> {
        let out =
            File::options().create(true).append(true).open(log).with_context(|| format!("log {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).env(LAB_ENV, lab_id).process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Self { name: name.to_owned(), child, log: log.to_owned(), grace: Duration::from_secs(3) })
    }

    /// Sets how long a stop waits after SIGTERM.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status text)` once it has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// The last `n` lines of its log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGTERM to its group (it starts its own shutdown).
    pub fn terminate(&self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
    }

    /// SIGTERM, then SIGKILL after the grace period; reaps it.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        self.terminate();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        tracing::debug!(process = %self.name, "killed after grace period");
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops several processes at once: SIGTERM to all, then SIGKILL to those still running after their grace period.
pub fn stop_all(mut processes: Vec<Supervised>) {
    for p in &processes {
        p.terminate();
    }
    let deadline = Instant::now() + processes.iter().map(|p| p.grace).max().unwrap_or_default();
    while Instant::now() < deadline && processes.iter_mut().any(|p| p.exited().is_none()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in &mut processes {
        p.stop();
    }
}

/// Pids of live processes carrying `SVCBENCH_LAB=<id>` (any id when `None`), with the id they carry.
pub fn marked_processes(id: Option<&str>) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let prefix = format!("{LAB_ENV}=");
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let lab = environ
            .split(|b| *b == 0)
            .find_map(|kv| std::str::from_utf8(kv).ok()?.strip_prefix(&prefix).map(str::to_owned))?;
        id.is_none_or(|id| id == lab).then_some((pid, lab))
    })
    .collect()
}
