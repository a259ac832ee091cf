//! Whether a load generator kept up with its own schedule, and the figures of the part of the run where it did.
//!
//! A generator that is starved of CPU (a busy machine, a shared CI runner) sends late and reads replies late; it then
//! sees timeouts and latencies that are its own delay, not the target's (coordinated omission from the client side).
//! [`PaceMonitor`] watches the generator from three sides while it runs:
//! - a ticker task that asks to wake every millisecond and records how late it woke: the runtime's delay before any
//!   ready socket is read (a reply that arrived is read that much later);
//! - the send loop's own lateness after sleeping until a send was due (only the client can make a timer late);
//! - the CPU the process got and how long its threads waited for one (`/proc/self/task/*/schedstat`).
//!
//! Any lateness over the tolerance is a *stall*: an interval in which the client was not on schedule. Every request
//! is recorded with its due time and its latency (8 bytes each; at most [`MAX_RECORDS`], 80 MB, the largest run
//! validation allows — a longer benchmark run records its first ones only), and at the end the requests that were
//! sent and finished on schedule are the *on-schedule* part: a request is left out when a stall meets its send (its
//! due time, up to a tolerance after) or its end (the answer or timeout was handled up to a tolerance after a stall
//! began) — a stall in the middle of a request's wait changes nothing about it. The runner judges timeouts, errors
//! and latency over that part, or calls the step inconclusive when it is too small.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::stats::latency::{self, LatencySummary};

/// Lateness above which the client counts as behind, when the step states no tighter latency bound.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(50);

/// Most requests recorded per run (80 MB): validation allows no scenario load above it.
pub const MAX_RECORDS: usize = 10_000_000;

/// Record shards: workers record into `worker % RECORD_SHARDS`, so a hot loop does not serialize on one lock.
const RECORD_SHARDS: usize = 16;

/// How often a load generator's ticker asks to wake.
const TICK: Duration = Duration::from_millis(1);

/// What a load generator's client did while it ran: how late it was, and the run judged over its on-schedule part.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientPace {
    /// Lateness above which the client counted as behind, ms.
    pub tolerance_ms: f64,
    /// Intervals in which the client was behind by more than the tolerance (merged where they overlap).
    pub stalls: u64,
    /// Their total length, ms.
    pub stalled_ms: f64,
    /// The longest of them, ms.
    pub worst_stall_ms: f64,
    /// 99th percentile of the ticker's wake-up lateness, ms: how late a reply that had arrived was read.
    pub wake_lag_p99_ms: f64,
    /// The send loop's worst lateness after sleeping until a send was due, ms.
    pub send_lag_max_ms: f64,
    /// CPU time the generator's process got during the run, ms (`None` where `/proc` does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
    /// Time its threads were ready to run but waited for a CPU, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_wait_ms: Option<f64>,
    /// Requests (queries) whose whole life, from due time to answer or timeout, lay outside every stall.
    pub on_schedule: u64,
    /// Of those, how many failed (timed out, for DNS).
    pub on_schedule_failed: u64,
    /// Latency over the on-schedule requests only.
    pub on_schedule_latency: LatencySummary,
}

impl ClientPace {
    /// Whether the client was ever behind by more than the tolerance.
    pub fn fell_behind(&self) -> bool {
        self.stalls > 0
    }

    /// One line on how the client fell behind, for messages.
    pub fn describe(&self, sent: u64, intended: u64, unit: &str) -> String {
        let mut parts = vec![format!(
            "stalled {} in {} interval{} over {} (worst {})",
            ms_text(self.stalled_ms),
            self.stalls,
            if self.stalls == 1 { "" } else { "s" },
            ms_text(self.tolerance_ms),
            ms_text(self.worst_stall_ms)
        )];
        if let (Some(cpu), Some(wait)) = (self.cpu_ms, self.cpu_wait_ms) {
            parts.push(format!("waited {} for a CPU and ran {}", ms_text(wait), ms_text(cpu)));
        }
        if sent < intended {
            parts.push(format!("sent {sent} of the {intended} {unit} its schedule intended"));
        }
        parts.join(", ")
    }
}

fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.0} ms") }
}

/// One request: due time (µs after the start) and latency (µs), the top bit of which marks a failure.
#[derive(Clone, Copy)]
struct Record {
    due_us: u32,
    latency_us: u32,
}

const FAILED: u32 = 1 << 31;

/// Shared between the generator's tasks and the ticker.
struct Shared {
    started: Instant,
    tolerance: Duration,
    /// Stall intervals, µs after the start (possibly overlapping; one that continues the last is merged into it).
    stalls: Mutex<Vec<(u64, u64)>>,
    records: Vec<Mutex<Vec<Record>>>,
    recorded: AtomicU64,
    send_lag_max_us: AtomicU64,
}

impl Shared {
    fn offset_us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_micros()).unwrap_or(u64::MAX)
    }

    fn stall(&self, from: Instant, to: Instant) {
        let (a, b) = (self.offset_us(from), self.offset_us(to));
        let mut stalls = self.stalls.lock().unwrap_or_else(PoisonError::into_inner);
        // A starved send loop is late on every send: one interval per stall, not one per query.
        match stalls.last_mut() {
            Some(last) if a <= last.1 && b >= last.0 => *last = (last.0.min(a), last.1.max(b)),
            _ => stalls.push((a, b)),
        }
    }
}

/// Watches a load generator while it runs; see the module docs.
pub struct PaceMonitor {
    shared: Arc<Shared>,
    stop: Arc<tokio::sync::Notify>,
    ticker: Option<tokio::task::JoinHandle<hdrhistogram::Histogram<u64>>>,
    cpu_at_start: Option<CpuTimes>,
}

impl PaceMonitor {
    /// Starts watching; `started` is the instant the generator's schedule counts from.
    pub fn start(started: Instant, tolerance: Duration) -> Self {
        Self::with_tick(started, tolerance, TICK)
    }

    /// Starts watching with a ticker that wakes every `tick` (coarser for long, cheap watches such as a polled
    /// assertion's whole timeout).
    pub fn with_tick(started: Instant, tolerance: Duration, tick: Duration) -> Self {
        let shared = Arc::new(Shared {
            started,
            tolerance,
            stalls: Mutex::new(Vec::new()),
            records: (0..RECORD_SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            recorded: AtomicU64::new(0),
            send_lag_max_us: AtomicU64::new(0),
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let ticker = tokio::spawn(ticks(Arc::clone(&shared), Arc::clone(&stop), tick));
        Self { shared, stop, ticker: Some(ticker), cpu_at_start: CpuTimes::now() }
    }

    /// The send loop slept until `due` and woke now: lateness over the tolerance is a stall (a timer fires late
    /// only when the client's process did not get to run).
    pub fn woke(&self, due: Instant) {
        let now = Instant::now();
        let late = now.saturating_duration_since(due);
        let late_us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.shared.send_lag_max_us.fetch_max(late_us, Ordering::Relaxed);
        if late > self.shared.tolerance {
            self.shared.stall(due, now);
        }
    }

    /// A request due at `due` finished (answered or given up on) after `latency`; `worker` picks the record shard.
    pub fn finished(&self, worker: u64, due: Instant, latency: Duration, failed: bool) {
        if self.shared.recorded.fetch_add(1, Ordering::Relaxed) >= MAX_RECORDS as u64 {
            return;
        }
        let due_us = u32::try_from(self.shared.offset_us(due)).unwrap_or(u32::MAX);
        let latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX).min(FAILED - 1);
        let record = Record { due_us, latency_us: latency_us | if failed { FAILED } else { 0 } };
        let shard = &self.shared.records[(worker % RECORD_SHARDS as u64) as usize];
        shard.lock().unwrap_or_else(PoisonError::into_inner).push(record);
    }

    /// How long the client has been behind so far (the union of its stalls).
    pub fn stalled(&self) -> Duration {
        let stalls = merged(self.shared.stalls.lock().unwrap_or_else(PoisonError::into_inner).clone());
        Duration::from_micros(stalls.iter().map(|(a, b)| b - a).sum())
    }

    /// [`finish`](Self::finish) for a monitor the generator's tasks shared: `None` if one of them still holds it
    /// (a generator must join its tasks first).
    pub async fn finish_shared(monitor: Arc<Self>) -> Option<ClientPace> {
        match Arc::try_unwrap(monitor) {
            Ok(monitor) => Some(monitor.finish().await),
            Err(_) => None,
        }
    }

    /// Stops watching and sums up.
    pub async fn finish(mut self) -> ClientPace {
        self.stop.notify_one();
        let wake_lag = match self.ticker.take() {
            Some(ticker) => ticker.await.unwrap_or_else(|_| latency::new_histogram()),
            None => latency::new_histogram(),
        };
        let cpu = match (self.cpu_at_start, CpuTimes::now()) {
            (Some(a), Some(b)) => Some(b.since(a)),
            _ => None,
        };
        let stalls = merged(std::mem::take(&mut *self.shared.stalls.lock().unwrap_or_else(PoisonError::into_inner)));
        let records: Vec<Record> = self
            .shared
            .records
            .iter()
            .flat_map(|shard| std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner)))
            .collect();
        let tolerance_us = u64::try_from(self.shared.tolerance.as_micros()).unwrap_or(u64::MAX);
        let (on_schedule, failed, histogram) = on_schedule_part(&records, &stalls, tolerance_us);
        let us_to_ms = |us: u64| us as f64 / 1000.0;
        ClientPace {
            tolerance_ms: self.shared.tolerance.as_secs_f64() * 1000.0,
            stalls: stalls.len() as u64,
            stalled_ms: us_to_ms(stalls.iter().map(|(a, b)| b - a).sum()),
            worst_stall_ms: us_to_ms(stalls.iter().map(|(a, b)| b - a).max().unwrap_or(0)),
            wake_lag_p99_ms: if wake_lag.is_empty() { 0.0 } else { us_to_ms(wake_lag.value_at_quantile(0.99)) },
            send_lag_max_ms: us_to_ms(self.shared.send_lag_max_us.load(Ordering::Relaxed)),
            cpu_ms: cpu.map(|c| c.on_cpu_ns as f64 / 1e6),
            cpu_wait_ms: cpu.map(|c| c.waiting_ns as f64 / 1e6),
            on_schedule,
            on_schedule_failed: failed,
            on_schedule_latency: latency::summarize(&histogram),
        }
    }
}

impl Drop for PaceMonitor {
    fn drop(&mut self) {
        // A generator that errs out early drops the monitor unfinished: the ticker must not outlive it.
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}

/// Wakes every `tick` until stopped, recording how late each wake-up was; lateness over the tolerance is a stall.
async fn ticks(shared: Arc<Shared>, stop: Arc<tokio::sync::Notify>, tick: Duration) -> hdrhistogram::Histogram<u64> {
    let mut lag = latency::new_histogram();
    loop {
        let due = Instant::now() + tick;
        tokio::select! {
            () = stop.notified() => break,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(due);
        latency::record(&mut lag, late);
        if late > shared.tolerance {
            shared.stall(due, now);
        }
    }
    lag
}

/// The requests sent and handled on schedule (see the module docs): how many, how many of them failed, and their
/// latency distribution.
fn on_schedule_part(
    records: &[Record],
    stalls: &[(u64, u64)],
    tolerance_us: u64,
) -> (u64, u64, hdrhistogram::Histogram<u64>) {
    let mut histogram = latency::new_histogram();
    let (mut on_schedule, mut failed) = (0u64, 0u64);
    for r in records {
        let start = u64::from(r.due_us);
        let end = start + u64::from(r.latency_us & !FAILED);
        let sent_late = overlaps(stalls, start, start.saturating_add(tolerance_us));
        let handled_late = overlaps(stalls, end.saturating_sub(tolerance_us), end);
        if sent_late || handled_late {
            continue;
        }
        on_schedule += 1;
        if r.latency_us & FAILED != 0 {
            failed += 1;
        }
        latency::record(&mut histogram, Duration::from_micros(u64::from(r.latency_us & !FAILED)));
    }
    (on_schedule, failed, histogram)
}

/// Sorted, non-overlapping union of intervals.
fn merged(mut intervals: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    intervals.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for (a, b) in intervals {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Whether `[start, end]` meets any of the sorted, disjoint `intervals`.
fn overlaps(intervals: &[(u64, u64)], start: u64, end: u64) -> bool {
    // The first interval that ends at or after `start` is the only candidate that can begin before `end`.
    let i = intervals.partition_point(|&(_, b)| b < start);
    intervals.get(i).is_some_and(|&(a, _)| a <= end)
}

/// CPU time of this process's threads: on a CPU, and ready but waiting for one.
#[derive(Clone, Copy)]
struct CpuTimes {
    on_cpu_ns: u64,
    waiting_ns: u64,
}

impl CpuTimes {
    /// Sums `/proc/self/task/*/schedstat` (`<on-cpu ns> <run-queue wait ns> <slices>`); `None` where unreadable.
    fn now() -> Option<Self> {
        let mut total = Self { on_cpu_ns: 0, waiting_ns: 0 };
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            // A thread may end between the listing and the read: skip it.
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
            let mut fields = text.split_whitespace().map(str::parse::<u64>);
            if let (Some(Ok(cpu)), Some(Ok(wait))) = (fields.next(), fields.next()) {
                total.on_cpu_ns += cpu;
                total.waiting_ns += wait;
            }
        }
        Some(total)
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            on_cpu_ns: self.on_cpu_ns.saturating_sub(earlier.on_cpu_ns),
            waiting_ns: self.waiting_ns.saturating_sub(earlier.waiting_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_overlap() {
        let m = merged(vec![(50, 60), (10, 20), (15, 30), (31, 40)]);
        assert_eq!(m, vec![(10, 30), (31, 40), (50, 60)]);
        assert!(overlaps(&m, 0, 10));
        assert!(overlaps(&m, 25, 26));
        assert!(!overlaps(&m, 41, 49));
        assert!(overlaps(&m, 41, 50));
        assert!(!overlaps(&m, 61, 100));
        assert!(!overlaps(&[], 0, 100));
    }

    /// Which requests a stall takes out: those it met at their send or at their handling, not those whose wait it
    /// only crossed in the middle.
    #[test]
    fn a_stall_takes_out_what_it_delayed() {
        let record = |due_ms: u32, latency_ms: u32, failed: bool| Record {
            due_us: due_ms * 1000,
            latency_us: (latency_ms * 1000) | if failed { FAILED } else { 0 },
        };
        let stalls = [(1_000_000, 1_200_000)];
        let records = [
            record(0, 5, false),     // long before
            record(990, 5, false),   // sent 10 ms before the stall: its send window (50 ms) meets it
            record(1100, 150, true), // due inside it
            record(900, 320, false), // handled 20 ms after it ended: read late
            record(500, 2000, true), // a timeout the stall crossed in the middle: the target's
            record(1300, 5, false),  // after
        ];
        let (on_schedule, failed, histogram) = on_schedule_part(&records, &stalls, 50_000);
        assert_eq!((on_schedule, failed, histogram.len()), (3, 1, 3));
    }

    /// A runtime thread blocked for 200 ms is a stall the ticker sees, and the request it delayed is left out.
    /// (Other stalls of a loaded machine may take out more: only what must hold is asserted.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_a_stall() {
        let started = Instant::now();
        let monitor = PaceMonitor::start(started, Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let blocked_at = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Due at the stall and answered after it: not on schedule, whatever the answer.
        monitor.finished(1, blocked_at, blocked_at.elapsed(), true);
        let pace = monitor.finish().await;
        assert!(pace.fell_behind(), "{pace:?}");
        assert!(pace.worst_stall_ms >= 150.0, "{pace:?}");
        assert_eq!((pace.on_schedule, pace.on_schedule_failed), (0, 0), "{pace:?}");
    }

    #[tokio::test]
    async fn an_idle_run_stays_on_schedule() {
        let started = Instant::now();
        let monitor = PaceMonitor::start(started, Duration::from_millis(500));
        for i in 0..20u64 {
            let due = started + Duration::from_millis(5 * i);
            tokio::time::sleep_until(due.into()).await;
            monitor.woke(due);
            monitor.finished(i, due, Duration::from_millis(1), i == 3);
        }
        let pace = monitor.finish().await;
        assert!(!pace.fell_behind(), "{pace:?}");
        assert_eq!((pace.on_schedule, pace.on_schedule_failed), (20, 1));
    }
}
