//! Evaluating one check against a target: resolve the symbolic expectation ("the ready pods of nginx") with the
//! target's API view, observe with a probe, compare exactly.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
};

use serde_json::{Value, json};

use crate::{
    probe::{ProbeRequest, ProbeResponse, dns::DnsRecord},
    scenario::{Check, ExpectedRecord, PodSet, Rcode},
    target::{Target, TargetError},
};

/// The outcome of one evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Whether the check holds now.
    pub holds: bool,
    /// Expected value, resolved.
    pub expected: Value,
    /// Observed value.
    pub actual: Value,
    /// Why it does not hold (empty when it does).
    pub message: String,
}

impl Evaluation {
    fn new(holds: bool, expected: Value, actual: Value, message: impl Into<String>) -> Self {
        Self { holds, expected, actual, message: message.into() }
    }
}

/// Pod IPs of a pod set, as the target shows them now.
async fn pod_ips(target: &dyn Target, set: &PodSet) -> Result<BTreeSet<IpAddr>, TargetError> {
    Ok(match set {
        PodSet::Empty => BTreeSet::new(),
        PodSet::ReadyPodsOf { deployment } => {
            target.pods(deployment).await?.into_iter().filter(|p| p.ready && !p.terminating).map(|p| p.ip).collect()
        }
        PodSet::PodsOf { deployment } => target.pods(deployment).await?.into_iter().map(|p| p.ip).collect(),
    })
}

/// Pod names of a pod set.
async fn pod_names(target: &dyn Target, set: &PodSet) -> Result<BTreeSet<String>, TargetError> {
    Ok(match set {
        PodSet::Empty => BTreeSet::new(),
        PodSet::ReadyPodsOf { deployment } => {
            target.pods(deployment).await?.into_iter().filter(|p| p.ready && !p.terminating).map(|p| p.name).collect()
        }
        PodSet::PodsOf { deployment } => target.pods(deployment).await?.into_iter().map(|p| p.name).collect(),
    })
}

/// "missing: …; unexpected: …" for two sets.
fn set_diff<T: Ord + std::fmt::Display>(expected: &BTreeSet<T>, actual: &BTreeSet<T>) -> String {
    let missing: Vec<String> = expected.difference(actual).map(ToString::to_string).collect();
    let extra: Vec<String> = actual.difference(expected).map(ToString::to_string).collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", extra.join(", ")));
    }
    parts.join("; ")
}

/// Connections needed so a uniform random balancer over `n` backends misses one with probability below 1e-9.
pub fn requests_to_reach_all(n: usize) -> u32 {
    if n <= 1 {
        return 3;
    }
    let n_f = n as f64;
    let k = ((1e-9 / n_f).ln() / (1.0 - 1.0 / n_f).ln()).ceil();
    (k as u32).clamp(3, 100_000)
}

/// Evaluates `check` once.
///
/// # Errors
/// The target could not answer (API or probe failure).
pub async fn evaluate(check: &Check, target: &dyn Target) -> Result<Evaluation, TargetError> {
    match check {
        Check::Service { service, has_cluster_ip } => {
            let expected = json!({ "exists": true, "cluster_ip": if *has_cluster_ip { "allocated" } else { "None" } });
            Ok(match target.service(service).await? {
                None => Evaluation::new(
                    false,
                    expected,
                    json!({ "exists": false }),
                    format!("service {service} does not exist"),
                ),
                Some(v) => {
                    let holds = v.cluster_ip.is_some() == *has_cluster_ip;
                    let msg = if holds { String::new() } else { format!("clusterIP is {:?}", v.cluster_ip) };
                    Evaluation::new(holds, expected, json!({ "exists": true, "cluster_ip": v.cluster_ip }), msg)
                }
            })
        }
        Check::Endpoints { service, ready, not_ready, ports } => {
            let slices = target.endpoint_slices(service).await?;
            let actual_ready: BTreeSet<IpAddr> =
                slices.iter().flat_map(|s| &s.endpoints).filter(|e| e.ready).map(|e| e.address).collect();
            let actual_not_ready: BTreeSet<IpAddr> =
                slices.iter().flat_map(|s| &s.endpoints).filter(|e| !e.ready).map(|e| e.address).collect();
            let actual_ports: BTreeSet<(Option<String>, u16)> =
                slices.iter().flat_map(|s| &s.ports).map(|p| (p.name.clone(), p.port)).collect();
            let mut expected = serde_json::Map::new();
            let mut problems = Vec::new();
            if let Some(set) = ready {
                let want = pod_ips(target, set).await?;
                if want != actual_ready {
                    problems.push(format!("ready endpoints: {}", set_diff(&want, &actual_ready)));
                }
                expected.insert("ready".into(), json!(want));
            }
            if let Some(set) = not_ready {
                let want = pod_ips(target, set).await?;
                if want != actual_not_ready {
                    problems.push(format!("not-ready endpoints: {}", set_diff(&want, &actual_not_ready)));
                }
                expected.insert("not_ready".into(), json!(want));
            }
            if let Some(ports) = ports {
                let want: BTreeSet<(Option<String>, u16)> = ports.iter().cloned().collect();
                if want != actual_ports {
                    let show = |s: &BTreeSet<(Option<String>, u16)>| {
                        s.iter()
                            .map(|(n, p)| format!("{}:{p}", n.as_deref().unwrap_or("<unnamed>")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    problems.push(format!("ports: expected [{}], got [{}]", show(&want), show(&actual_ports)));
                }
                expected.insert("ports".into(), json!(want));
            }
            let actual = json!({
                "slices": slices.len(),
                "ready": actual_ready,
                "not_ready": actual_not_ready,
                "ports": actual_ports,
                "endpoints": slices.iter().flat_map(|s| s.endpoints.iter().map(|e| json!({
                    "address": e.address, "ready": e.ready, "serving": e.serving, "terminating": e.terminating, "pod": e.pod,
                }))).collect::<Vec<_>>(),
            });
            Ok(Evaluation::new(problems.is_empty(), Value::Object(expected), actual, problems.join("; ")))
        }
        Check::Dns { from, name, query_type, flavour, transport, rcodes, records, candidates } => {
            let request = ProbeRequest::Dns {
                name: name.clone(),
                query_type: *query_type,
                flavour: *flavour,
                transport: *transport,
            };
            let ProbeResponse::Dns(lookup) = target.probe(from, &request).await? else {
                return Err(TargetError::Other("DNS probe returned another kind of result".into()));
            };
            let mut problems = Vec::new();
            let mut expected = serde_json::Map::new();
            let allowed: Vec<Rcode> = if rcodes.is_empty() && records.as_ref().is_some_and(|r| !r.is_empty()) {
                vec![Rcode::NoError]
            } else {
                rcodes.clone()
            };
            if !allowed.is_empty() {
                if !allowed.contains(&lookup.rcode) {
                    problems.push(format!(
                        "rcode {:?}, expected {}",
                        lookup.rcode,
                        allowed.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(" or ")
                    ));
                }
                expected.insert("rcode".into(), json!(allowed));
            }
            if let Some(records) = records {
                let mut want = BTreeSet::new();
                for r in records {
                    match r {
                        ExpectedRecord::ClusterIpOf { service } => {
                            match target.service(service).await?.and_then(|s| s.cluster_ip) {
                                Some(ip) => {
                                    want.insert(DnsRecord::Address { ip });
                                }
                                None => problems.push(format!("service {service} has no ClusterIP to expect")),
                            }
                        }
                        ExpectedRecord::ReadyPodIpsOf { deployment } => {
                            for ip in pod_ips(target, &PodSet::ReadyPodsOf { deployment: deployment.clone() }).await? {
                                want.insert(DnsRecord::Address { ip });
                            }
                        }
                        ExpectedRecord::Ip { ip } => {
                            want.insert(DnsRecord::Address { ip: *ip });
                        }
                        ExpectedRecord::Txt { text } => {
                            want.insert(DnsRecord::Txt { text: text.clone() });
                        }
                    }
                }
                let got: BTreeSet<DnsRecord> = lookup.records.iter().cloned().collect();
                if got.len() != lookup.records.len() {
                    problems.push("duplicate records in the answer".into());
                }
                if want != got {
                    problems.push(format!("records: {}", set_diff(&want, &got)));
                }
                expected.insert("records".into(), json!(want.iter().map(ToString::to_string).collect::<Vec<_>>()));
            }
            if let Some(cands) = candidates {
                let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
                let want: Vec<String> = cands.iter().map(|c| norm(c)).collect();
                let got: Vec<String> = lookup.tried.iter().map(|t| norm(&t.name)).collect();
                if want != got {
                    problems.push(format!("tried [{}], expected [{}]", got.join(", "), want.join(", ")));
                }
                expected.insert("candidates".into(), json!(want));
            }
            let actual = json!({
                "rcode": lookup.rcode,
                "records": lookup.records.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "tried": lookup.tried.iter().map(|t| json!({
                    "name": t.name,
                    "rcode": t.rcode,
                    "records": t.records.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "transport": t.transport,
                    "soa_in_authority": t.soa_in_authority,
                })).collect::<Vec<_>>(),
            });
            Ok(Evaluation::new(problems.is_empty(), Value::Object(expected), actual, problems.join("; ")))
        }
        Check::ResolvConf { from, search, ndots } => {
            let ProbeResponse::ResolvConf(conf) = target.probe(from, &ProbeRequest::ResolvConf).await? else {
                return Err(TargetError::Other("resolv.conf probe returned another kind of result".into()));
            };
            let mut problems = Vec::new();
            if &conf.search != search {
                problems.push(format!("search [{}], expected [{}]", conf.search.join(" "), search.join(" ")));
            }
            if conf.ndots != *ndots {
                problems.push(format!("ndots:{}, expected ndots:{ndots}", conf.ndots));
            }
            if conf.nameservers.is_empty() {
                problems.push("no nameserver".into());
            }
            Ok(Evaluation::new(
                problems.is_empty(),
                json!({ "search": search, "ndots": ndots }),
                json!(conf),
                problems.join("; "),
            ))
        }
        Check::Http { from, host, port, path, status, answered_by, reaches_all, requests } => {
            let request = ProbeRequest::Http { host: host.clone(), port: *port, path: path.clone() };
            let mut expected = serde_json::Map::new();
            expected.insert("status".into(), json!(status));
            let mut problems = Vec::new();
            let allowed = match answered_by {
                Some(set) => {
                    let names = pod_names(target, set).await?;
                    expected.insert("answered_by".into(), json!(names));
                    Some(names)
                }
                None => None,
            };
            let must_reach = match reaches_all {
                Some(set) => {
                    let names = pod_names(target, set).await?;
                    expected.insert("reaches_all".into(), json!(names));
                    Some(names)
                }
                None => None,
            };
            let n = match (&must_reach, requests) {
                (_, Some(n)) => *n,
                (Some(names), None) => requests_to_reach_all(names.len()),
                (None, None) => 1,
            };
            expected.insert("requests".into(), json!(n));
            let mut counts: BTreeMap<String, u32> = BTreeMap::new();
            let mut failures: BTreeMap<String, u32> = BTreeMap::new();
            let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
            for _ in 0..n {
                let ProbeResponse::Http(result) = target.probe(from, &request).await? else {
                    return Err(TargetError::Other("HTTP probe returned another kind of result".into()));
                };
                match result {
                    Ok(r) => {
                        *statuses.entry(r.status).or_default() += 1;
                        *counts.entry(r.pod.unwrap_or_else(|| "<unknown>".into())).or_default() += 1;
                    }
                    Err(f) => *failures.entry(f.to_string()).or_default() += 1,
                }
            }
            if !failures.is_empty() {
                problems.push(format!(
                    "{} of {n} requests failed: {}",
                    failures.values().sum::<u32>(),
                    failures.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if let Some((bad, c)) = statuses.iter().find(|(s, _)| *s != status) {
                problems.push(format!("{c} responses with status {bad}, expected {status}"));
            }
            let answered: BTreeSet<String> = counts.keys().cloned().collect();
            if let Some(allowed) = &allowed {
                let outside: Vec<&String> = answered.difference(allowed).collect();
                if !outside.is_empty() || answered.is_empty() {
                    problems.push(format!(
                        "answered by [{}], expected one of [{}]",
                        answered.iter().cloned().collect::<Vec<_>>().join(", "),
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if let Some(all) = &must_reach {
                let missing: Vec<&String> = all.difference(&answered).collect();
                if !missing.is_empty() || all.is_empty() {
                    problems.push(format!(
                        "never reached {} in {n} new connections",
                        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                let outside: Vec<&String> = answered.difference(all).collect();
                if !outside.is_empty() {
                    problems.push(format!(
                        "reached pods outside the set: {}",
                        outside.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            let actual = json!({ "per_pod": counts, "statuses": statuses, "failures": failures });
            Ok(Evaluation::new(problems.is_empty(), Value::Object(expected), actual, problems.join("; ")))
        }
        Check::Connect { from, service, port, outcome } => {
            let expected = json!({ "result": outcome });
            let Some(ip) = target.service(service).await?.and_then(|s| s.cluster_ip) else {
                return Ok(Evaluation::new(
                    false,
                    expected,
                    json!({ "cluster_ip": null }),
                    format!("service {service} has no ClusterIP"),
                ));
            };
            let address = SocketAddr::new(ip, *port);
            let ProbeResponse::Connect(result) = target.probe(from, &ProbeRequest::Connect { address }).await? else {
                return Err(TargetError::Other("connect probe returned another kind of result".into()));
            };
            let holds = result.outcome == Some(*outcome);
            let msg = if holds {
                String::new()
            } else {
                format!("connect {address}: {:?} ({})", result.outcome, result.error.clone().unwrap_or_default())
            };
            Ok(Evaluation::new(holds, expected, json!(result), msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::requests_to_reach_all;

    #[test]
    fn reach_all_request_counts() {
        assert_eq!(requests_to_reach_all(1), 3);
        // 2 backends: 2 * 0.5^k < 1e-9  =>  k >= 31.
        assert_eq!(requests_to_reach_all(2), 31);
        let k = requests_to_reach_all(5);
        assert!(5.0 * (0.8f64).powi(k as i32) < 1e-9);
        assert!(5.0 * (0.8f64).powi(k as i32 - 1) >= 1e-9);
    }
}
