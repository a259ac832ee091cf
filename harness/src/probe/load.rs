//! HTTP load generator: `GET /hostname` through a service, counting answers per pod.
//!
//! Three connection modes, because ClusterIP balancing happens per *connection*:
//! - `new-connection`: one TCP connection per request — what spreads load over endpoints;
//! - `keep-alive`: N long-lived connections — each pinned to one backend by conntrack, reported as such;
//! - `reqwest`: the pod's pooled `reqwest::Client` with up to N requests in flight — what a Rust service's client
//!   does: it opens connections as concurrency needs them and reuses them, each pinned to its backend.
//!
//! Open-loop by default (wrk2-style): request *i* is due at `start + i / rate`, and its latency is measured from that
//! intended time, so a stall shows up as latency instead of silently lowering the send rate (coordinated omission).
//! Closed-loop mode (no rate) measures maximum throughput. Every run is bounded by request count and wall time:
//! nothing is sent after `duration` (even when the generator or target is behind schedule), and what was sent is
//! reported against what the schedule intended, so an overloaded run is visible instead of silently stretching.
//!
//! The client is a minimal HTTP/1.1 implementation on a raw socket (status line, Content-Length body): the load loop is
//! a hot path measured against wrk, and a full client's per-connection task and buffering would dominate it.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Semaphore, mpsc},
};

use super::{
    ProbeContext, ProbeError,
    http::resolve_host,
    pace::{ClientPace, PaceMonitor},
    schedule,
};
use crate::stats::latency::{self, LatencySummary};

/// How requests map onto connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionMode {
    /// A new TCP connection per request.
    NewConnection,
    /// Requests over a fixed set of kept-alive connections.
    KeepAlive,
    /// Requests through the pod's pooled `reqwest::Client`.
    Reqwest,
}

/// What load to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    /// Host: a service name (resolved once through the pod's resolver, glibc) or an IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path; `/hostname` identifies the answering pod.
    pub path: String,
    /// Connection mode.
    pub mode: ConnectionMode,
    /// Keep-alive connections, or the maximum requests in flight for new-connection mode.
    pub connections: u32,
    /// Open-loop rate in requests/s; `None` for closed-loop (as fast as the connections allow).
    pub rate: Option<f64>,
    /// Stop after this many requests.
    pub requests: u64,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Per-request timeout (a timeout is also a latency sample).
    pub timeout: Duration,
    /// Resolve `host` for this family (`AAAA` for IPv6); default IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<crate::scenario::IpFamily>,
    /// Lateness above which the client counts as behind its schedule (see [`super::pace`]).
    #[serde(default = "default_tolerance", with = "crate::results::duration_ms")]
    pub client_tolerance: Duration,
}

pub(super) fn default_tolerance() -> Duration {
    super::pace::DEFAULT_TOLERANCE
}

/// What a load run observed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadOutcome {
    /// Where the requests went (resolved address, before translation).
    pub address: SocketAddr,
    /// Requests sent.
    pub sent: u64,
    /// Requests the schedule intended within `duration` (open loop: those due before it, at most `requests`;
    /// closed loop: `requests`). `sent < intended` is a shortfall: the generator or the target could not keep up.
    #[serde(default)]
    pub intended: u64,
    /// Requests sent per second of sending (over the run, at most `duration`).
    #[serde(default)]
    pub achieved_rate: f64,
    /// Requests answered with 2xx.
    pub ok: u64,
    /// From first send to last completion.
    pub elapsed: Duration,
    /// 2xx answers per pod.
    pub per_backend: BTreeMap<String, u64>,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Latency distribution.
    pub latency: LatencySummary,
    /// Whether the client kept up, and the run over the part where it did (`None` from an agent without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<ClientPace>,
}

/// Why one request failed.
fn classify(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "refused".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe => "reset".into(),
        TimedOut => "timeout".into(),
        UnexpectedEof => "closed".into(),
        _ => format!("io: {e}"),
    }
}

/// One request's result: the answering pod, or the failure class.
type Answer = Result<String, String>;

/// Reads one HTTP/1.1 response (status line, headers, Content-Length body) from `stream`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Answer {
    buf.clear();
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("bad response: headers too long".into());
        }
        read_more(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..header_end]).map_err(|_| "bad response: not UTF-8".to_owned())?;
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad response: no status")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .ok_or("bad response: no Content-Length")?;
    while buf.len() < header_end + length {
        read_more(stream, buf).await?;
    }
    if !(200..300).contains(&status) {
        return Err(format!("status {status}"));
    }
    Ok(String::from_utf8_lossy(&buf[header_end..header_end + length]).into_owned())
}

/// Appends what the socket has to `buf`. Reading into the buffer's spare capacity (not a stack chunk) keeps each
/// connection's future small: with 10,000 connections a 4 KiB chunk held across the await is 40 MB.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.reserve(1024);
    match stream.read_buf(buf).await {
        Ok(0) => Err("closed".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(classify(&e)),
    }
}

fn request_bytes(spec: &LoadSpec, keep_alive: bool) -> Arc<[u8]> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: svcbench\r\nConnection: {connection}\r\n\r\n",
        spec.path, spec.host
    )
    .into_bytes()
    .into()
}

/// Tallies shared by the workers, merged at the end. A histogram is ~140 KB (1 µs–60 s at 3 digits), so one per
/// connection would cost 1.4 GB at 10,000 connections: workers share a few shards instead, locked only to record.
struct Shards(Vec<std::sync::Mutex<Tally>>);

impl Shards {
    fn new(workers: u32) -> Arc<Self> {
        let n = (workers as usize).clamp(1, 16);
        Arc::new(Self((0..n).map(|_| std::sync::Mutex::new(Tally::new())).collect()))
    }

    fn record(&self, worker: u64, answer: Answer, latency: Duration) {
        let shard = &self.0[(worker % self.0.len() as u64) as usize];
        shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(answer, latency);
    }

    /// Everything recorded, once the workers are done.
    fn total(&self) -> Tally {
        let mut total = Tally::new();
        for shard in &self.0 {
            let t = std::mem::replace(
                &mut *shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                Tally::empty(),
            );
            total.merge(t);
        }
        total
    }
}

/// What one run recorded.
struct Tally {
    histogram: hdrhistogram::Histogram<u64>,
    per_backend: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    ok: u64,
}

impl Tally {
    fn new() -> Self {
        Self { histogram: latency::new_histogram(), per_backend: BTreeMap::new(), errors: BTreeMap::new(), ok: 0 }
    }

    /// A placeholder without a histogram's counts (what a drained shard holds).
    fn empty() -> Self {
        let histogram = hdrhistogram::Histogram::new(1).expect("1 significant digit is valid");
        Self { histogram, per_backend: BTreeMap::new(), errors: BTreeMap::new(), ok: 0 }
    }

    fn record(&mut self, answer: Answer, latency: Duration) {
        latency::record(&mut self.histogram, latency);
        match answer {
            Ok(pod) => {
                self.ok += 1;
                *self.per_backend.entry(pod).or_default() += 1;
            }
            Err(class) => *self.errors.entry(class).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(other.histogram);
        self.ok += other.ok;
        for (k, v) in other.per_backend {
            *self.per_backend.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// Runs the load described by `spec` from the pod described by `ctx`.
///
/// # Errors
/// The host name cannot be resolved, or the nameserver is unreachable.
pub async fn run(ctx: &ProbeContext, spec: &LoadSpec) -> Result<LoadOutcome, ProbeError> {
    let ip = match resolve_host(ctx, &spec.host, spec.family).await? {
        Ok(ip) => ip,
        Err(rcode) => return Err(ProbeError::Dns(format!("{} does not resolve ({rcode:?})", spec.host))),
    };
    let address = SocketAddr::new(ip, spec.port);
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let pace = Arc::new(PaceMonitor::start(started, spec.client_tolerance));
    let run = Run { ctx, spec, address, started, sent: &sent, pace: &pace };
    let tally = match spec.mode {
        ConnectionMode::NewConnection | ConnectionMode::Reqwest => new_connection(&run).await,
        ConnectionMode::KeepAlive => keep_alive(&run).await,
    };
    let (sent, elapsed) = (sent.load(Ordering::Relaxed), started.elapsed());
    // Every task holding the monitor has ended (the generators join or drain theirs).
    let pace = PaceMonitor::finish_shared(pace).await;
    Ok(LoadOutcome {
        address,
        sent,
        intended: schedule::intended(spec.rate, spec.duration, spec.requests),
        achieved_rate: schedule::achieved_rate(sent, elapsed.min(spec.duration)),
        ok: tally.ok,
        elapsed,
        per_backend: tally.per_backend,
        errors: tally.errors,
        latency: latency::summarize(&tally.histogram),
        pace,
    })
}

/// One load run's fixed inputs, shared by the generator loops.
struct Run<'a> {
    ctx: &'a ProbeContext,
    spec: &'a LoadSpec,
    address: SocketAddr,
    started: Instant,
    sent: &'a Arc<AtomicU64>,
    pace: &'a Arc<PaceMonitor>,
}

/// One request as `spec.mode` sends it: over a new connection, or with the pod's pooled reqwest client.
async fn one_request(ctx: &ProbeContext, spec: &LoadSpec, address: SocketAddr, request: &[u8]) -> Answer {
    match spec.mode {
        ConnectionMode::Reqwest => super::pooled::answer(ctx, address, &spec.host, &spec.path).await,
        ConnectionMode::NewConnection | ConnectionMode::KeepAlive => one_new_connection(ctx, address, request).await,
    }
}

async fn one_new_connection(ctx: &ProbeContext, address: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = ctx.dialer.connect_tcp(address).await.map_err(|e| classify(&e))?;
    stream.write_all(request).await.map_err(|e| classify(&e))?;
    let mut buf = Vec::with_capacity(512);
    read_response(&mut stream, &mut buf).await
}

async fn new_connection(run: &Run<'_>) -> Tally {
    let Run { ctx, spec, address, started, sent, pace } = *run;
    let request = request_bytes(spec, false);
    let shared = Arc::new(spec.clone());
    // The wall-clock bound: nothing is sent after it, whatever the schedule says.
    let deadline = schedule::after(started, spec.duration);
    let workers = spec.connections.max(1);
    match spec.rate {
        Some(rate) => {
            // Open loop: the scheduler never waits for answers; in-flight requests are capped at `connections`, and
            // time spent waiting for a slot counts as latency (it is measured from the due time).
            let slots = Arc::new(Semaphore::new(workers as usize));
            let (tx, mut rx) = mpsc::unbounded_channel::<(Answer, Instant, Duration)>();
            let collector_pace = Arc::clone(pace);
            let collector = tokio::spawn(async move {
                let mut tally = Tally::new();
                while let Some((answer, at, latency)) = rx.recv().await {
                    collector_pace.finished(0, at, latency, answer.is_err());
                    tally.record(answer, latency);
                }
                tally
            });
            for i in 0..spec.requests {
                let Some(at) = schedule::due(started, rate, i) else { break };
                if at >= deadline || Instant::now() >= deadline {
                    break;
                }
                // Only a loop that arrived early and woke late was held back by its own process; one that arrived
                // late was waiting for a slot, i.e. for the target's answers.
                if Instant::now() < at {
                    tokio::time::sleep_until(at.into()).await;
                    pace.woke(at);
                }
                // A slot frees up only when a request ends: waiting for one must not outlast the run either.
                let Ok(Ok(permit)) = tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned()).await
                else {
                    break;
                };
                sent.fetch_add(1, Ordering::Relaxed);
                let (ctx, tx, request, spec) = (ctx.clone(), tx.clone(), request.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    let answer = tokio::time::timeout(spec.timeout, one_request(&ctx, &spec, address, &request))
                        .await
                        .unwrap_or_else(|_| Err("timeout".into()));
                    let _ = tx.send((answer, at, at.elapsed()));
                    drop(permit);
                });
            }
            drop(tx);
            collector.await.unwrap_or_else(|_| Tally::new())
        }
        None => {
            let shards = Shards::new(workers);
            let mut tasks = tokio::task::JoinSet::new();
            for worker in 0..u64::from(workers) {
                let (ctx, request, sent, shards) = (ctx.clone(), request.clone(), sent.clone(), shards.clone());
                let (spec, pace) = (Arc::clone(&shared), Arc::clone(pace));
                tasks.spawn(async move {
                    while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < spec.requests {
                        let t = Instant::now();
                        let answer = tokio::time::timeout(spec.timeout, one_request(&ctx, &spec, address, &request))
                            .await
                            .unwrap_or_else(|_| Err("timeout".into()));
                        pace.finished(worker, t, t.elapsed(), answer.is_err());
                        shards.record(worker, answer, t.elapsed());
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            let tally = shards.total();
            // Workers over-count by one each on exit; the true count is what they recorded.
            sent.store(tally.histogram.len(), Ordering::Relaxed);
            tally
        }
    }
}

async fn keep_alive(run: &Run<'_>) -> Tally {
    let Run { ctx, spec, address, started, sent, pace } = *run;
    let request = request_bytes(spec, true);
    // The wall-clock bound: nothing is sent after it, whatever the schedule says.
    let deadline = schedule::after(started, spec.duration);
    let n = u64::from(spec.connections.max(1));
    let shards = Shards::new(spec.connections);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..n {
        let (ctx, request, sent, shards, pace) =
            (ctx.clone(), request.clone(), sent.clone(), shards.clone(), Arc::clone(pace));
        let (rate, requests, timeout) = (spec.rate, spec.requests, spec.timeout);
        tasks.spawn(async move {
            let mut stream: Option<TcpStream> = None;
            let mut buf = Vec::with_capacity(512);
            // Open loop: this connection owns requests worker, worker + n, …; closed loop: the next free number.
            let mut i = worker;
            loop {
                let (index, at) = match rate {
                    Some(rate) => match schedule::due(started, rate, i) {
                        Some(at) => (i, at),
                        None => break,
                    },
                    None => (sent.load(Ordering::Relaxed), Instant::now()),
                };
                if index >= requests || at >= deadline || Instant::now() >= deadline {
                    break;
                }
                // As in new-connection mode: arriving late means the previous answer on this connection was slow.
                if rate.is_some() && Instant::now() < at {
                    tokio::time::sleep_until(at.into()).await;
                    pace.woke(at);
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let exchange = async {
                    if stream.is_none() {
                        stream = Some(ctx.dialer.connect_tcp(address).await.map_err(|e| classify(&e))?);
                    }
                    let s = stream.as_mut().expect("connected above");
                    s.write_all(&request).await.map_err(|e| classify(&e))?;
                    read_response(s, &mut buf).await
                };
                let answer = tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err("timeout".into()));
                if answer.is_err() {
                    // The connection is in an unknown state: start a new one for the next request.
                    stream = None;
                }
                pace.finished(worker, at, at.elapsed(), answer.is_err());
                shards.record(worker, answer, at.elapsed());
                i += n;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    shards.total()
}
