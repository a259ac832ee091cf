//! Measuring checks: HTTP load, DNS load and bulk service checks. Each attempt is a full measurement; the runner
//! retries a failing one until the step's timeout, so a fair balancer that fails a χ² test at α fails the step with
//! probability α^attempts while a real skew fails every attempt.
//!
//! Timeouts, errors and latency are judged only over what the client sent and read on schedule ([`ClientPace`]): a
//! load whose own generator fell behind is judged over its on-schedule part when that is at least half the run, and
//! is otherwise *inconclusive* — never a failure of the target. What does not depend on timing (wrong rcodes, pods
//! outside the set, pods never reached, the spread) is judged over the whole run either way.

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use serde_json::{Value, json};

use super::{check::Evaluation, pods::pods_in};
use crate::{
    probe::{
        ProbeRequest, ProbeResponse,
        batch::{BatchResult, BatchSpec},
        dns::DnsRecord,
        dnsload::DnsLoadSpec,
        load::{ConnectionMode, LoadSpec},
        pace::{ClientPace, DEFAULT_TOLERANCE},
    },
    results::{DnsLoadReport, HttpLoadReport, Measurement},
    scenario::{ConnectOutcome, MeasureDns, MeasureHttp, ObjectRef, QueryType, Rcode, ResolverFlavour, Transport},
    stats::Fairness,
    targets::{Target, TargetError},
};

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Least share of a run's requests that must have run on schedule for the run to be judged over them.
const MIN_ON_SCHEDULE: f64 = 0.5;

/// Below this a stall cannot be told from the 1 ms timer granularity the monitor wakes at.
const MIN_TOLERANCE: Duration = Duration::from_millis(2);

/// How late the client may be before it counts as behind: [`DEFAULT_TOLERANCE`], or a quarter of a stated p99
/// bound when that is tighter (a stall of the bound's size would decide it).
fn client_tolerance(p99_below: Option<Duration>) -> Duration {
    p99_below.map_or(DEFAULT_TOLERANCE, |b| (b / 4).min(DEFAULT_TOLERANCE)).max(MIN_TOLERANCE)
}

/// Over which requests a load's timeouts, errors and latency are judged.
enum Basis<'a> {
    /// The whole run: the client kept up (or an agent without pacing did not say).
    Whole,
    /// The requests whose whole life fell outside the client's stalls.
    OnSchedule(&'a ClientPace),
    /// Too little ran on schedule: why the step cannot be judged.
    Inconclusive(String),
}

/// `max_failed` is the step's tolerated failure share: failures seen while the client was on schedule are the
/// target's whatever else happened, so once they alone exceed it over everything sent the run is judged (and fails)
/// however little of it was on schedule.
impl Basis<'_> {
    /// Why the run cannot be judged, if it cannot.
    fn inconclusive(self) -> Option<String> {
        match self {
            Basis::Inconclusive(why) => Some(why),
            _ => None,
        }
    }
}

fn basis<'a>(pace: Option<&'a ClientPace>, sent: u64, intended: u64, unit: &str, max_failed: f64) -> Basis<'a> {
    let Some(pace) = pace.filter(|p| p.fell_behind()) else { return Basis::Whole };
    let share = if sent == 0 { 0.0 } else { pace.on_schedule as f64 / sent as f64 };
    let failed_anyway = sent > 0 && pace.on_schedule_failed as f64 / sent as f64 > max_failed;
    if pace.on_schedule > 0 && (share >= MIN_ON_SCHEDULE || failed_anyway) {
        Basis::OnSchedule(pace)
    } else {
        Basis::Inconclusive(format!(
            "the load generator fell behind its own schedule ({}); only {} of {sent} {unit} ran while \
             it kept up, and at least half must to judge the target",
            pace.describe(sent, intended, unit),
            pace.on_schedule
        ))
    }
}

/// A note on what a judged-in-part run left out.
fn basis_note(basis: &Basis<'_>, sent: u64, intended: u64, unit: &str) -> Option<String> {
    match basis {
        Basis::OnSchedule(p) => Some(format!(
            "timeouts and latency judged over the {} of {sent} {unit} sent and read on schedule (the client {})",
            p.on_schedule,
            p.describe(sent, intended, unit)
        )),
        _ => None,
    }
}

/// Runs an HTTP load measurement and judges it.
///
/// # Errors
/// The target could not run the probe.
pub async fn http(m: &MeasureHttp, target: &dyn Target) -> Result<Evaluation, TargetError> {
    let spec = LoadSpec {
        host: m.host.clone(),
        port: m.port,
        path: m.path.clone(),
        mode: m.mode,
        connections: m.connections,
        rate: m.rate,
        requests: m.requests,
        duration: m.duration,
        timeout: Duration::from_secs(2),
        family: m.ip_family,
        client_tolerance: client_tolerance(m.p99_below),
    };
    let ProbeResponse::Load(outcome) = target.probe(&m.from, &ProbeRequest::Load(spec)).await? else {
        return Err(TargetError::Other("load probe returned another kind of result".into()));
    };
    let mut problems = Vec::new();
    let mut expected = serde_json::Map::new();
    let basis = basis(outcome.pace.as_ref(), outcome.sent, outcome.intended, "requests", m.max_error_rate);
    let (judged, failed, latency) = match &basis {
        Basis::OnSchedule(p) => (p.on_schedule, p.on_schedule_failed, &p.on_schedule_latency),
        _ => (outcome.sent, outcome.errors.values().sum(), &outcome.latency),
    };
    let error_rate = if judged == 0 { 1.0 } else { failed as f64 / judged as f64 };
    expected.insert("max_error_rate".into(), json!(m.max_error_rate));
    if error_rate > m.max_error_rate && !matches!(basis, Basis::Inconclusive(_)) {
        let classes: Vec<String> = outcome.errors.iter().map(|(k, v)| format!("{v}× {k}")).collect();
        problems.push(format!("{failed} of {judged} requests failed (whole run: {})", classes.join(", ")));
    }
    let mut fairness = None;
    if let Some(set) = &m.backends {
        let pods: BTreeSet<String> = match pods_in(target, set).await? {
            Ok(pods) => pods.into_iter().map(|p| p.name).collect(),
            Err(why) => {
                problems.push(format!("backends: {why}"));
                BTreeSet::new()
            }
        };
        expected.insert("backends".into(), json!(pods));
        let missing: Vec<&String> = pods.iter().filter(|p| !outcome.per_backend.contains_key(*p)).collect();
        if !missing.is_empty() {
            problems
                .push(format!("never reached {}", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
        }
        let outside: Vec<&String> = outcome.per_backend.keys().filter(|p| !pods.contains(*p)).collect();
        if !outside.is_empty() {
            problems.push(format!(
                "reached pods outside the set: {}",
                outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let counts: Vec<u64> = pods.iter().map(|p| outcome.per_backend.get(p).copied().unwrap_or(0)).collect();
        fairness = Fairness::of(&counts);
        if let Some(alpha) = m.fair_alpha {
            expected.insert("fair_alpha".into(), json!(alpha));
            match &fairness {
                Some(f) if !f.is_fair(alpha) => problems.push(format!(
                    "unfair spread: χ² = {:.1}, p = {:.2e} < α = {alpha} (Jain {:.4}, a random balancer expects ≈ {:.4}; max/min {:.2})",
                    f.chi_square, f.p_value, f.jain, f.expected_jain, f.max_min_ratio
                )),
                Some(_) => {}
                None => problems.push("fairness needs at least two backends and one answer".into()),
            }
        }
    }
    if let Some(bound) = m.p99_below.filter(|_| !matches!(basis, Basis::Inconclusive(_))) {
        expected.insert("p99_below_us".into(), json!(bound.as_micros() as f64));
        let p99 = Duration::from_micros(latency.p99_us as u64);
        if p99 >= bound {
            problems.push(format!("p99 {p99:?} is not below {bound:?}"));
        }
    }
    let note = basis_note(&basis, outcome.sent, outcome.intended, "requests");
    let inconclusive = basis.inconclusive();
    let report = HttpLoadReport {
        target: format!("http://{}:{}{} from {}", m.host, m.port, m.path, m.from),
        mode: match m.mode {
            ConnectionMode::NewConnection => "new-connection".into(),
            ConnectionMode::KeepAlive => "keep-alive".into(),
            ConnectionMode::Reqwest => "reqwest".into(),
        },
        connections: m.connections,
        rate: m.rate,
        sent: outcome.sent,
        intended: outcome.intended,
        achieved_rate: outcome.achieved_rate,
        ok: outcome.ok,
        duration_ms: outcome.elapsed.as_secs_f64() * 1000.0,
        throughput: outcome.ok as f64 / outcome.elapsed.as_secs_f64().max(1e-9),
        per_backend: outcome.per_backend.clone(),
        errors: outcome.errors.clone(),
        fairness,
        latency: outcome.latency.clone(),
        cores: cores(),
        pace: outcome.pace.clone(),
    };
    let actual = json!({
        "sent": report.sent, "intended": report.intended, "achieved_rate": report.achieved_rate, "ok": report.ok, "throughput": report.throughput, "per_backend": report.per_backend,
        "errors": report.errors, "p50_us": report.latency.p50_us, "p99_us": report.latency.p99_us,
        "fairness": report.fairness, "client": report.pace,
    });
    Ok(judged_load(problems, inconclusive, note, Value::Object(expected), actual)
        .with_measurement(Measurement::HttpLoad(report)))
}

/// Runs a DNS load measurement and judges it.
///
/// # Errors
/// The target could not run the probe.
pub async fn dns(m: &MeasureDns, target: &dyn Target) -> Result<Evaluation, TargetError> {
    let spec = DnsLoadSpec {
        names: m.names.clone(),
        rate: m.rate,
        max_outstanding: 100,
        source_ports: m.source_ports,
        queries: m.queries,
        duration: m.duration,
        timeout: Duration::from_secs(2),
        client_tolerance: client_tolerance(m.p99_below),
    };
    let ProbeResponse::DnsLoad(outcome) = target.probe(&m.from, &ProbeRequest::DnsLoad(spec)).await? else {
        return Err(TargetError::Other("DNS load probe returned another kind of result".into()));
    };
    let mut problems = Vec::new();
    let want = match m.rcode {
        Rcode::NoError | Rcode::NoData => "NOERROR",
        Rcode::NxDomain => "NXDOMAIN",
        Rcode::ServFail => "SERVFAIL",
        Rcode::Refused => "REFUSED",
    };
    let wrong: Vec<String> =
        outcome.rcodes.iter().filter(|(k, _)| k.as_str() != want).map(|(k, v)| format!("{v}× {k}")).collect();
    if !wrong.is_empty() {
        problems.push(format!("answers other than {want}: {}", wrong.join(", ")));
    }
    let basis = basis(outcome.pace.as_ref(), outcome.sent, outcome.intended, "queries", m.max_timeout_rate);
    let (judged, timeouts, latency) = match &basis {
        Basis::OnSchedule(p) => (p.on_schedule, p.on_schedule_failed, &p.on_schedule_latency),
        _ => (outcome.sent, outcome.timeouts, &outcome.latency),
    };
    let conclusive = !matches!(basis, Basis::Inconclusive(_));
    let timeout_rate = if judged == 0 { 1.0 } else { timeouts as f64 / judged as f64 };
    if timeout_rate > m.max_timeout_rate && conclusive {
        problems.push(format!("{timeouts} of {judged} queries timed out"));
    }
    if let Some(bound) = m.p99_below.filter(|_| conclusive) {
        let p99 = Duration::from_micros(latency.p99_us as u64);
        if p99 >= bound {
            problems.push(format!("p99 {p99:?} is not below {bound:?}"));
        }
    }
    let report = DnsLoadReport {
        names: m.names.clone(),
        rate: m.rate.unwrap_or(0.0),
        source_ports: m.source_ports,
        sent: outcome.sent,
        intended: outcome.intended,
        achieved_rate: outcome.achieved_rate,
        answered: outcome.answered,
        timeouts: outcome.timeouts,
        qps: outcome.answered as f64 / outcome.elapsed.as_secs_f64().max(1e-9),
        rcodes: outcome.rcodes.clone(),
        latency: outcome.latency.clone(),
        pace: outcome.pace.clone(),
    };
    let note = basis_note(&basis, outcome.sent, outcome.intended, "queries");
    let inconclusive = basis.inconclusive();
    let expected = json!({ "rcode": want, "max_timeout_rate": m.max_timeout_rate, "p99_below_us": m.p99_below.map(|d| d.as_micros() as f64) });
    let actual = json!({ "sent": report.sent, "intended": report.intended, "achieved_rate": report.achieved_rate, "answered": report.answered, "timeouts": report.timeouts, "qps": report.qps,
        "rcodes": report.rcodes, "p50_us": report.latency.p50_us, "p99_us": report.latency.p99_us, "client": report.pace });
    Ok(judged_load(problems, inconclusive, note, expected, actual).with_measurement(Measurement::DnsLoad(report)))
}

/// A load's evaluation: a failure when the target showed a problem; otherwise inconclusive when the run could not
/// be judged, or a pass (saying what was left out when only the on-schedule part was judged).
fn judged_load(
    problems: Vec<String>,
    inconclusive: Option<String>,
    note: Option<String>,
    expected: Value,
    actual: Value,
) -> Evaluation {
    if !problems.is_empty() {
        let message = problems.into_iter().chain(note).collect::<Vec<_>>().join("; ");
        return Evaluation::new(false, expected, actual, message);
    }
    match inconclusive {
        Some(why) => Evaluation::new(false, expected, actual, why.clone()).inconclusive(why),
        None => Evaluation::new(true, expected, actual, "").with_note(note),
    }
}

/// Probes per batch request of a bulk service check (two per service: a lookup and a connect).
const BATCH_PROBES: usize = 2000;
/// Probes of a batch in flight at once: worst case (every probe timing out at 2 s, twice for DNS) a full batch
/// takes 2000 / 128 × 4 s ≈ 63 s, inside the agent's 120 s cap.
const BATCH_CONCURRENCY: usize = 128;
/// Failures listed in a bulk check's message.
const SHOWN: usize = 5;

/// Checks `count` services: API endpoints, DNS answer, and a TCP connect each. The API view comes from
/// [`Target::services_with_slices`] and the probes go out as batches, so 1,000 services take a few round trips.
///
/// # Errors
/// The target could not answer.
pub async fn services(
    target: &dyn Target,
    from: &str,
    namespace: &str,
    prefix: &str,
    count: u32,
    ready_endpoints: u32,
) -> Result<Evaluation, TargetError> {
    let mut problems = Vec::new();
    let keys: Vec<ObjectRef> =
        (0..count).map(|i| ObjectRef { namespace: namespace.to_owned(), name: format!("{prefix}-{i}") }).collect();
    let states = target.services_with_slices(&keys).await?;
    let mut endpoints_ok = 0u32;
    // Per probed service: its key and ClusterIP; the batch holds its lookup then its connect.
    let mut probed = Vec::new();
    let mut probes = Vec::new();
    for (key, state) in keys.iter().zip(states) {
        let Some(state) = state else {
            note(&mut problems, format!("{key} does not exist"));
            continue;
        };
        let ready = state.slices.iter().flat_map(|s| &s.endpoints).filter(|e| e.ready).count() as u32;
        if ready == ready_endpoints {
            endpoints_ok += 1;
        } else {
            note(&mut problems, format!("{key}: {ready} ready endpoints, expected {ready_endpoints}"));
        }
        let Some(ip) = state.service.cluster_ip else {
            note(&mut problems, format!("{key} has no ClusterIP"));
            continue;
        };
        let port = state.service.ports.first().map_or(80, |p| p.port);
        probes.push(ProbeRequest::Dns {
            name: format!("{}.{}.svc.{}.", key.name, key.namespace, target.cluster_domain()),
            query_type: QueryType::A,
            flavour: ResolverFlavour::Dig,
            transport: Transport::Udp,
        });
        probes.push(ProbeRequest::Connect { address: SocketAddr::new(ip, port) });
        probed.push((key, ip));
    }
    let mut results = Vec::with_capacity(probes.len());
    for chunk in probes.chunks(BATCH_PROBES) {
        let spec = BatchSpec { concurrency: BATCH_CONCURRENCY, probes: chunk.to_vec() };
        let ProbeResponse::Batch(outcome) = target.probe(from, &ProbeRequest::Batch(spec)).await? else {
            return Err(TargetError::Other("batch probe returned another kind of result".into()));
        };
        if outcome.results.len() != chunk.len() {
            return Err(TargetError::Other(format!(
                "batch probe answered {} results for {} probes",
                outcome.results.len(),
                chunk.len()
            )));
        }
        results.extend(outcome.results);
    }
    let (mut dns_ok, mut connect_ok) = (0u32, 0u32);
    for ((key, ip), pair) in probed.iter().zip(results.chunks(2)) {
        match &pair[0] {
            BatchResult::Ok(ProbeResponse::Dns(lookup)) if lookup.records == [DnsRecord::Address { ip: *ip }] => {
                dns_ok += 1;
            }
            BatchResult::Ok(ProbeResponse::Dns(lookup)) => {
                note(&mut problems, format!("{key}: DNS answered {:?} {:?}", lookup.rcode, lookup.records));
            }
            other => note(&mut problems, format!("{key}: DNS probe: {}", unexpected(other))),
        }
        match &pair[1] {
            BatchResult::Ok(ProbeResponse::Connect(c)) if c.outcome == Some(ConnectOutcome::Connected) => {
                connect_ok += 1;
            }
            BatchResult::Ok(ProbeResponse::Connect(c)) => {
                note(&mut problems, format!("{key}: connect {}: {:?}", c.address, c.outcome));
            }
            other => note(&mut problems, format!("{key}: connect probe: {}", unexpected(other))),
        }
    }
    let holds = endpoints_ok == count && dns_ok == count && connect_ok == count;
    let expected = json!({ "services": count, "ready_endpoints_each": ready_endpoints });
    let actual = json!({ "endpoints_ok": endpoints_ok, "dns_ok": dns_ok, "connect_ok": connect_ok });
    Ok(Evaluation::new(holds, expected, actual, problems.join("; ")))
}

/// Keeps the first [`SHOWN`] problems of a bulk check.
fn note(problems: &mut Vec<String>, problem: String) {
    if problems.len() < SHOWN {
        problems.push(problem);
    }
}

fn unexpected(result: &BatchResult) -> String {
    match result {
        BatchResult::Error(e) => e.clone(),
        BatchResult::Ok(other) => format!("unexpected answer {other:?}"),
    }
}
