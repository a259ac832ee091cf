//! DNS load generator: queries for a set of names, spread over many UDP source ports (as dnsperf does, so the
//! server's per-socket handling and any conntrack-based DNAT see many flows), open-loop at a fixed rate or
//! closed-loop with a cap on outstanding queries. Latency is measured from each query's intended send time; a query
//! without an answer in time is a timeout *and* a latency sample. `duration` bounds the run in wall time (no query is
//! sent after it, then stragglers get `timeout`), and the outcome says how many queries the schedule intended, so a
//! generator or server that cannot keep up shows as a shortfall rather than a longer run.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    ProbeContext, ProbeError,
    pace::{ClientPace, PaceMonitor},
    schedule,
};
use crate::stats::latency::{self, LatencySummary};

/// What DNS load to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsLoadSpec {
    /// Absolute names, queried round robin.
    pub names: Vec<String>,
    /// Open-loop rate in queries/s; `None`: closed loop with `max_outstanding` queries in flight.
    pub rate: Option<f64>,
    /// Closed loop: queries in flight (dnsperf's `-q`).
    pub max_outstanding: usize,
    /// UDP source ports (sockets) to spread queries over (at least 128, as dnsperf).
    pub source_ports: usize,
    /// Stop after this many queries.
    pub queries: u64,
    /// Stop sending after this long.
    pub duration: Duration,
    /// A query unanswered this long is a timeout.
    pub timeout: Duration,
    /// Lateness above which the client counts as behind its schedule (see [`super::pace`]).
    #[serde(default = "super::load::default_tolerance", with = "crate::results::duration_ms")]
    pub client_tolerance: Duration,
}

/// What a DNS load run observed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsLoadOutcome {
    /// The server queried (before translation).
    pub server: SocketAddr,
    /// Queries sent.
    pub sent: u64,
    /// Queries the schedule intended within `duration` (open loop: those due before it, at most `queries`; closed
    /// loop: `queries`); `sent < intended` is a shortfall.
    #[serde(default)]
    pub intended: u64,
    /// Queries sent per second of sending (over the run, at most `duration`).
    #[serde(default)]
    pub achieved_rate: f64,
    /// Answers received in time.
    pub answered: u64,
    /// Queries not answered in time.
    pub timeouts: u64,
    /// From first send to the last answer or timeout.
    pub elapsed: Duration,
    /// Answers by rcode name.
    pub rcodes: BTreeMap<String, u64>,
    /// Latency distribution.
    pub latency: LatencySummary,
    /// Whether the client kept up, and the run over the part where it did (`None` from an agent without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<ClientPace>,
}

struct Pending {
    at: Instant,
    _slot: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Shared {
    histogram: Option<hdrhistogram::Histogram<u64>>,
    answered: u64,
    timeouts: u64,
    rcodes: BTreeMap<String, u64>,
}

fn rcode_name(code: u8) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// Runs the DNS load from the pod described by `ctx` against its first nameserver.
///
/// # Errors
/// No nameserver configured, a name is invalid, or sockets cannot be opened.
pub async fn run(ctx: &ProbeContext, spec: &DnsLoadSpec) -> Result<DnsLoadOutcome, ProbeError> {
    let server = SocketAddr::new(*ctx.resolv_conf.nameservers.first().ok_or(ProbeError::NoNameserver)?, 53);
    if spec.names.is_empty() {
        return Err(ProbeError::Dns("no names to query".into()));
    }
    // Pre-built wire queries; only the 2-byte ID changes per send.
    let mut wires = Vec::new();
    for name in &spec.names {
        let qname = Name::from_ascii(name).map_err(|e| ProbeError::Dns(format!("bad name `{name}`: {e}")))?;
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(qname, RecordType::A));
        wires.push(msg.to_vec().map_err(|e| ProbeError::Dns(e.to_string()))?);
    }
    let ports = spec.source_ports.max(1);
    let mut sockets = Vec::with_capacity(ports);
    for _ in 0..ports {
        let s = ctx
            .dialer
            .connect_udp(server)
            .await
            .map_err(|source| ProbeError::Io { context: format!("udp {server}"), source })?;
        sockets.push(Arc::new(s));
    }
    let pending: Vec<Arc<Mutex<HashMap<u16, Pending>>>> =
        (0..ports).map(|_| Arc::new(Mutex::new(HashMap::new()))).collect();
    let shared = Arc::new(Mutex::new(Shared { histogram: Some(latency::new_histogram()), ..Default::default() }));
    let started = Instant::now();
    let pace = Arc::new(PaceMonitor::start(started, spec.client_tolerance));

    let mut receivers = tokio::task::JoinSet::new();
    for (port, (socket, pending)) in sockets.iter().zip(&pending).enumerate() {
        let (socket, pending, shared, pace) = (socket.clone(), pending.clone(), shared.clone(), pace.clone());
        receivers.spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf).await {
                if n < 4 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let Some(p) = pending.lock().expect("pending lock").remove(&id) else { continue };
                let latency = p.at.elapsed();
                pace.finished(port as u64, p.at, latency, false);
                let mut s = shared.lock().expect("shared lock");
                if let Some(h) = s.histogram.as_mut() {
                    latency::record(h, latency);
                }
                s.answered += 1;
                *s.rcodes.entry(rcode_name(buf[3] & 0x0f)).or_default() += 1;
            }
        });
    }
    // Expire unanswered queries: they are timeouts, recorded at the time they were given up on. In a JoinSet, so
    // that a run dropped midway (an agent's caller gone) aborts it, and with it its hold on the pace monitor.
    let mut sweeper = tokio::task::JoinSet::new();
    {
        let (pending, shared, timeout, pace) = (pending.clone(), shared.clone(), spec.timeout, pace.clone());
        sweeper.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                expire(&pending, &shared, &pace, timeout);
            }
        });
    }

    // The wall-clock bound: nothing is sent after it, whatever the schedule says.
    let deadline = schedule::after(started, spec.duration);
    let slots = Arc::new(Semaphore::new(spec.max_outstanding.max(1)));
    let mut sent = 0u64;
    let mut next_id = vec![0u16; ports];
    while sent < spec.queries {
        let at = match spec.rate {
            Some(rate) => match schedule::due(started, rate, sent) {
                Some(at) => at,
                None => break,
            },
            None => Instant::now(),
        };
        if at >= deadline || Instant::now() >= deadline {
            break;
        }
        let slot = match spec.rate {
            Some(_) => {
                // Only a loop that arrived early and woke late was held back (its process did not run); one that
                // is simply behind its rate shows as a shortfall, and its process's stalls in the ticker.
                if Instant::now() < at {
                    tokio::time::sleep_until(at.into()).await;
                    pace.woke(at);
                }
                None
            }
            // Slots free up only as answers arrive or queries expire: waiting must not outlast the run.
            None => match tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned()).await {
                Ok(Ok(slot)) => Some(slot),
                _ => break,
            },
        };
        let port = (sent % ports as u64) as usize;
        let id = next_id[port];
        next_id[port] = id.wrapping_add(1);
        let mut wire = wires[(sent % wires.len() as u64) as usize].clone();
        wire[..2].copy_from_slice(&id.to_be_bytes());
        // An ID still pending on this socket (65536 queries ago) is given up on.
        pending[port].lock().expect("pending lock").insert(id, Pending { at, _slot: slot });
        if let Err(e) = sockets[port].send(&wire).await {
            pending[port].lock().expect("pending lock").remove(&id);
            *shared.lock().expect("shared lock").rcodes.entry(format!("send error: {}", e.kind())).or_default() += 1;
        }
        sent += 1;
    }
    // Wait for stragglers up to the timeout, then count what is left.
    let drain_deadline = schedule::after(Instant::now(), spec.timeout);
    while Instant::now() < drain_deadline && pending.iter().any(|p| !p.lock().expect("pending lock").is_empty()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sweeper.abort_all();
    expire(&pending, &shared, &pace, Duration::ZERO);
    receivers.abort_all();
    // Aborted tasks drop their handles to the monitor once they are polled again: wait for that.
    while receivers.join_next().await.is_some() {}
    while sweeper.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let pace = PaceMonitor::finish_shared(pace).await;
    let mut s = shared.lock().expect("shared lock");
    let histogram = s.histogram.take().unwrap_or_else(latency::new_histogram);
    Ok(DnsLoadOutcome {
        server,
        sent,
        intended: schedule::intended(spec.rate, spec.duration, spec.queries),
        achieved_rate: schedule::achieved_rate(sent, elapsed.min(spec.duration)),
        answered: s.answered,
        timeouts: s.timeouts,
        elapsed,
        rcodes: std::mem::take(&mut s.rcodes),
        latency: latency::summarize(&histogram),
        pace,
    })
}

fn expire(
    pending: &[Arc<Mutex<HashMap<u16, Pending>>>],
    shared: &Mutex<Shared>,
    pace: &PaceMonitor,
    timeout: Duration,
) {
    let mut expired = Vec::new();
    for p in pending {
        p.lock().expect("pending lock").retain(|_, q| {
            let age = q.at.elapsed();
            if age >= timeout {
                pace.finished(0, q.at, age, true);
                expired.push(age);
                false
            } else {
                true
            }
        });
    }
    if expired.is_empty() {
        return;
    }
    let mut s = shared.lock().expect("shared lock");
    s.timeouts += expired.len() as u64;
    if let Some(h) = s.histogram.as_mut() {
        for age in expired {
            latency::record(h, age);
        }
    }
}
