//! Synthetic CPU contention: busy-loop processes beside a run, so that "the verdicts do not depend on what else the
//! machine is doing" is tested rather than hoped for (`SVCBENCH_CONTENTION=<loops>[:<seconds>]` on `cargo test`).
//!
//! Each loop is a child process (the current executable, re-entered through [`busy_loop_if_requested`]) and not a
//! thread: a thread would count in the generator's own `/proc/self/task` CPU figures and share its process's
//! scheduling group, where the processes of a busy machine do not. Every loop is bounded three ways: it stops at
//! its deadline, it dies with its parent (`PR_SET_PDEATHSIG`, so a killed test run leaves none behind), and
//! [`Contention`] kills and reaps the loops when dropped.

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

/// The variable `cargo test` reads: `<loops>` or `<loops>:<seconds>`.
pub const ENV: &str = "SVCBENCH_CONTENTION";
/// Set on a child to make it a busy loop for that many seconds.
const CHILD_ENV: &str = "SVCBENCH_BUSY_LOOP_SECONDS";
/// Most loops one run starts.
pub const MAX_LOOPS: u32 = 64;
/// The longest a loop spins when the variable gives no time.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(3600);
/// The longest a loop may be asked to spin.
pub const MAX_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Busy loops running beside a run; dropping it stops them.
pub struct Contention {
    children: Vec<Child>,
}

impl Contention {
    /// Starts the loops `SVCBENCH_CONTENTION` asks for, if it is set.
    ///
    /// # Errors
    /// The variable is malformed or out of range, or a loop cannot be started.
    pub fn from_env() -> Result<Option<Self>, String> {
        let Some(value) = std::env::var_os(ENV) else { return Ok(None) };
        let value = value.to_string_lossy();
        let (loops, limit) = parse(&value).map_err(|why| format!("{ENV}={value}: {why}"))?;
        Self::start(loops, limit).map(Some).map_err(|e| format!("{ENV}: cannot start a busy loop: {e}"))
    }

    /// Starts `loops` busy loops, each stopping after `limit` at the latest.
    ///
    /// # Errors
    /// The current executable cannot be found or started.
    pub fn start(loops: u32, limit: Duration) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut contention = Self { children: Vec::new() };
        for _ in 0..loops.min(MAX_LOOPS) {
            let child = Command::new(&exe)
                .env(CHILD_ENV, limit.min(MAX_LIMIT).as_secs().to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn()?;
            contention.children.push(child);
        }
        Ok(contention)
    }

    /// How many loops run.
    pub fn loops(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `<loops>` or `<loops>:<seconds>`.
fn parse(value: &str) -> Result<(u32, Duration), String> {
    let (loops, seconds) = match value.split_once(':') {
        Some((l, s)) => (l, Some(s)),
        None => (value, None),
    };
    let loops: u32 = loops.trim().parse().map_err(|_| format!("`{loops}` is not a number of loops (0-{MAX_LOOPS})"))?;
    if loops > MAX_LOOPS {
        return Err(format!("at most {MAX_LOOPS} loops, not {loops}"));
    }
    let limit = match seconds {
        None => DEFAULT_LIMIT,
        Some(s) => match s.trim().parse::<u64>() {
            Ok(secs) if (1..=MAX_LIMIT.as_secs()).contains(&secs) => Duration::from_secs(secs),
            _ => return Err(format!("`{s}` is not a number of seconds (1-{})", MAX_LIMIT.as_secs())),
        },
    };
    Ok((loops, limit))
}

/// Call first in `main`: when this process was started as a busy loop, spins until its deadline (or its parent's
/// death) and exits; otherwise returns at once.
pub fn busy_loop_if_requested() {
    let Some(seconds) = std::env::var(CHILD_ENV).ok().and_then(|s| s.parse::<u64>().ok()) else { return };
    // Die with the parent; if it is already gone (re-parented to init) there is nobody to load the machine for.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        std::process::exit(0);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds).min(MAX_LIMIT);
    let mut x = 0u64;
    while Instant::now() < deadline {
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_is_parsed_and_bounded() {
        assert_eq!(parse("2"), Ok((2, DEFAULT_LIMIT)));
        assert_eq!(parse("2:600"), Ok((2, Duration::from_secs(600))));
        assert_eq!(parse("0"), Ok((0, DEFAULT_LIMIT)));
        assert!(parse("65").unwrap_err().contains("at most 64"));
        assert!(parse("two").unwrap_err().contains("not a number of loops"));
        assert!(parse("2:0").unwrap_err().contains("seconds"));
        assert!(parse("2:999999").unwrap_err().contains("seconds"));
    }
}
