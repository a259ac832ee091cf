//! HTTP-level checks: `expectHttp` (which pods answer, how fairly, what source address they see, by DNS name, at the
//! ClusterIP or through a node port) and `expectHealthCheck` (kube-proxy's health check node port), plus the address
//! a Service port is reached at.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
};

use serde_json::{Value, json};

use super::{
    check::{Evaluation, requests_to_reach_all},
    pods::pod_names,
};
use crate::{
    probe::{ProbeRequest, ProbeResponse},
    scenario::{Check, Client, IpFamily, ObjectRef, PodSet, SourceIp, Via},
    stats::Fairness,
    targets::{Target, TargetError, model::EndpointSliceView},
};

/// Where a Service port is dialled: its ClusterIP (of `family`, else the primary one), or node `node`'s address at
/// the port's nodePort. `Ok(Err(why))` while the Service (or the port's nodePort) does not exist.
pub(crate) async fn service_address(
    target: &dyn Target,
    service: &ObjectRef,
    port: u16,
    node: Option<u32>,
    family: Option<IpFamily>,
) -> Result<Result<SocketAddr, String>, TargetError> {
    let Some(view) = target.service(service).await? else {
        return Ok(Err(format!("service {service} does not exist")));
    };
    match node {
        None => {
            let ip = view.cluster_ip_for(family);
            let which = family.map(|f| format!("{f} ")).unwrap_or_default();
            Ok(ip.map(|ip| SocketAddr::new(ip, port)).ok_or(format!("service {service} has no {which}ClusterIP")))
        }
        Some(node) => {
            let Some(node_port) = view.ports.iter().find(|p| p.port == port).and_then(|p| p.node_port) else {
                return Ok(Err(format!("service {service} has no nodePort for port {port}")));
            };
            Ok(Ok(SocketAddr::new(target.node(node).await?.ip, node_port)))
        }
    }
}

/// The names of a pod set, recorded in `expected` under `key`; `Err` with an evaluation while it is unsettled.
async fn names_of(
    target: &dyn Target,
    set: &Option<PodSet>,
    key: &str,
    expected: &mut serde_json::Map<String, Value>,
) -> Result<Result<Option<BTreeSet<String>>, String>, TargetError> {
    let Some(set) = set else { return Ok(Ok(None)) };
    Ok(match pod_names(target, set).await? {
        Ok(names) => {
            expected.insert(key.into(), json!(names));
            Ok(Some(names))
        }
        Err(why) => Err(why),
    })
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    names.into_iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>().join(", ")
}

/// Requests `sameBackend` sends when no count is given: a random balancer over two or more pods sends all 31 to one
/// pod with probability at most 2 · 2⁻³¹ < 1e-9, so a Service without affinity fails.
pub const SAME_BACKEND_REQUESTS: u32 = 31;

/// Evaluates an [`Check::Http`].
pub(crate) async fn evaluate(check: &Check, target: &dyn Target) -> Result<Evaluation, TargetError> {
    let Check::Http {
        from,
        host,
        port,
        path,
        via,
        status,
        answered_by,
        reaches_all,
        reaches_only,
        requests,
        same_backend,
        fair_alpha,
        source_ip,
        client,
        ip_family,
    } = check
    else {
        return Err(TargetError::Other("not an HTTP check".into()));
    };
    let mut expected = serde_json::Map::new();
    expected.insert("status".into(), json!(status));
    let fail = |expected: serde_json::Map<String, Value>, why: String| {
        Ok(Evaluation::new(false, Value::Object(expected), json!({}), why))
    };
    let request = match via {
        Via::Dns => ProbeRequest::Http {
            host: host.clone(),
            port: *port,
            path: path.clone(),
            client: *client,
            family: *ip_family,
        },
        Via::ClusterIp { service } | Via::NodePort { service, .. } => {
            let node = if let Via::NodePort { node, .. } = via { Some(*node) } else { None };
            match service_address(target, service, *port, node, *ip_family).await? {
                Ok(a) => {
                    expected.insert("address".into(), json!(a));
                    ProbeRequest::Http {
                        host: a.ip().to_string(),
                        port: a.port(),
                        path: path.clone(),
                        client: *client,
                        family: *ip_family,
                    }
                }
                Err(why) => return fail(expected, why),
            }
        }
    };
    let mut sets = Vec::new();
    for (set, key) in [(answered_by, "answered_by"), (reaches_all, "reaches_all"), (reaches_only, "reaches_only")] {
        match names_of(target, set, key, &mut expected).await? {
            Ok(names) => sets.push(names),
            Err(why) => return fail(expected, why),
        }
    }
    let [allowed, must_reach, only] = <[_; 3]>::try_from(sets).expect("three sets");
    let node_ips: BTreeSet<IpAddr> = match source_ip {
        Some(SourceIp::Node) => target.nodes().await?.into_iter().map(|n| n.ip).collect(),
        _ => BTreeSet::new(),
    };
    let n = match (requests, must_reach.as_ref().or(only.as_ref())) {
        (Some(n), _) => *n,
        (None, Some(names)) => requests_to_reach_all(names.len()),
        // One request is always "the same backend": enough that a balancer without affinity is caught.
        (None, None) if *same_backend => SAME_BACKEND_REQUESTS,
        (None, None) => 1,
    };
    expected.insert("requests".into(), json!(n));
    let mut problems = Vec::new();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    let mut sources: BTreeMap<String, u32> = BTreeMap::new();
    let mut wrong_source = None;
    for _ in 0..n {
        let ProbeResponse::Http(result) = target.probe_as(from, &request).await? else {
            return Err(TargetError::Other("HTTP probe returned another kind of result".into()));
        };
        match result {
            Ok(r) => {
                *statuses.entry(r.status).or_default() += 1;
                *counts.entry(r.pod.clone().unwrap_or_else(|| "<unknown>".into())).or_default() += 1;
                if let Some(want) = source_ip {
                    // netexec's /clientip answers `ip:port` of the peer it sees.
                    let seen = r.body.trim().parse::<SocketAddr>().ok().map(|a| a.ip());
                    *sources.entry(seen.map_or_else(|| r.body.clone(), |ip| ip.to_string())).or_default() += 1;
                    let ok = match (want, seen) {
                        (SourceIp::Preserved, Some(ip)) => Some(ip) == r.local,
                        (SourceIp::Node, Some(ip)) => node_ips.contains(&ip) && Some(ip) != r.local,
                        (_, None) => false,
                    };
                    if !ok && wrong_source.is_none() {
                        wrong_source = Some(format!(
                            "the backend saw source {}, the client is {}",
                            r.body.trim(),
                            r.local.map_or("unknown".into(), |ip| ip.to_string())
                        ));
                    }
                }
            }
            Err(f) => *failures.entry(f.to_string()).or_default() += 1,
        }
    }
    if !failures.is_empty() {
        problems.push(format!("{} of {n} requests failed: {}", failures.values().sum::<u32>(), list(failures.keys())));
    }
    if let Some((bad, c)) = statuses.iter().find(|(s, _)| *s != status) {
        problems.push(format!("{c} responses with status {bad}, expected {status}"));
    }
    if let (Some(want), Some(why)) = (source_ip, wrong_source) {
        expected.insert("source_ip".into(), json!(want));
        let want = match want {
            SourceIp::Preserved => "the client's own address (not rewritten)",
            SourceIp::Node => "a node's address (masqueraded)",
        };
        problems.push(format!("source address: expected {want}; {why}"));
    }
    let answered: BTreeSet<String> = counts.keys().cloned().collect();
    if let Some(allowed) = &allowed
        && (answered.is_empty() || !answered.is_subset(allowed))
    {
        problems.push(format!("answered by [{}], expected one of [{}]", list(&answered), list(allowed)));
    }
    if let Some(only) = &only
        && (answered.is_empty() || !answered.is_subset(only))
    {
        let outside: Vec<&String> = answered.difference(only).collect();
        problems.push(format!("in {n} new connections, pods outside [{}] answered: {}", list(only), list(outside)));
    }
    if let Some(all) = &must_reach {
        let missing: Vec<&String> = all.difference(&answered).collect();
        if !missing.is_empty() || all.is_empty() {
            problems.push(format!("never reached {} in {n} new connections", list(missing)));
        }
        let outside: Vec<&String> = answered.difference(all).collect();
        if !outside.is_empty() {
            problems.push(format!("reached pods outside the set: {}", list(outside)));
        }
    }
    if *same_backend {
        expected.insert("same_backend".into(), json!(true));
        if counts.len() > 1 {
            problems.push(format!("answered by {} different pods, expected one", counts.len()));
        }
    }
    let mut fairness = None;
    if let (Some(alpha), Some(all)) = (fair_alpha, &must_reach) {
        let per_pod: Vec<u64> = all.iter().map(|p| u64::from(counts.get(p).copied().unwrap_or(0))).collect();
        expected.insert("fair_alpha".into(), json!(alpha));
        match Fairness::of(&per_pod) {
            Some(f) => {
                if !f.is_fair(*alpha) {
                    problems.push(format!(
                        "unfair spread: χ² = {:.1}, p = {:.2e} < α = {alpha} (Jain {:.3}, expected ≈ {:.3} for a random balancer; max/min {:.1})",
                        f.chi_square, f.p_value, f.jain, f.expected_jain, f.max_min_ratio
                    ));
                }
                fairness = Some(f);
            }
            None => problems.push("fairness needs at least two pods and one answered request".into()),
        }
    }
    let mut actual = json!({ "per_pod": counts, "statuses": statuses, "failures": failures, "fairness": fairness });
    if source_ip.is_some() {
        actual["sources"] = json!(sources);
    }
    // The wrong pods answered: what the proxy was given to choose from says whether it or the control plane erred.
    let wrong_pods =
        [&allowed, &only, &must_reach].iter().any(|set| set.as_ref().is_some_and(|s| !answered.is_subset(s)));
    if wrong_pods
        && let Some(service) = service_of(host, via, from)
        && let Ok(slices) = target.endpoint_slices(&service).await
    {
        actual["endpoint_slices"] = slice_summary(&slices);
    }
    Ok(Evaluation::new(problems.is_empty(), Value::Object(expected), actual, problems.join("; ")))
}

/// The Service a request goes to: the one `via` names, or the one the host names (`svc`, `svc.ns`, `svc.ns.svc…`,
/// relative to the client's namespace).
fn service_of(host: &str, via: &Via, from: &Client) -> Option<ObjectRef> {
    match via {
        Via::ClusterIp { service } | Via::NodePort { service, .. } => Some(service.clone()),
        Via::Dns => {
            let mut labels = host.trim_end_matches('.').split('.');
            let name = labels.next().filter(|n| !n.is_empty() && n.parse::<u8>().is_err())?;
            let namespace = labels.next().map(str::to_owned).or_else(|| from.namespace_name().map(str::to_owned))?;
            Some(ObjectRef { namespace, name: name.to_owned() })
        }
    }
}

/// Each endpoint as the proxy sees it: pod, conditions, zone and topology hints.
fn slice_summary(slices: &[EndpointSliceView]) -> Value {
    let endpoints: Vec<Value> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().map(move |e| (s, e)))
        .map(|(s, e)| {
            json!({
                "slice": s.name, "pod": e.pod, "address": e.address, "ready": e.ready, "serving": e.serving,
                "terminating": e.terminating, "node": e.node, "zone": e.zone, "for_zones": e.for_zones,
                "slice_written": s.last_written,
            })
        })
        .collect();
    json!(endpoints)
}

/// Evaluates a [`Check::HealthCheck`]: GET `/` on the node's health check node port.
pub(crate) async fn health_check(check: &Check, target: &dyn Target) -> Result<Evaluation, TargetError> {
    let Check::HealthCheck { from, service, node, status, local_endpoints } = check else {
        return Err(TargetError::Other("not a health check".into()));
    };
    let expected = json!({ "status": status, "local_endpoints": local_endpoints });
    let Some(view) = target.service(service).await? else {
        return Ok(Evaluation::new(false, expected, json!({}), format!("service {service} does not exist")));
    };
    let Some(port) = view.health_check_node_port else {
        return Ok(Evaluation::new(
            false,
            expected,
            json!({}),
            format!("service {service} has no healthCheckNodePort"),
        ));
    };
    let ip = target.node(*node).await?.ip;
    let request =
        ProbeRequest::Http { host: ip.to_string(), port, path: "/".into(), client: Default::default(), family: None };
    let ProbeResponse::Http(result) = target.probe_as(from, &request).await? else {
        return Err(TargetError::Other("HTTP probe returned another kind of result".into()));
    };
    let r = match result {
        Ok(r) => r,
        Err(f) => {
            return Ok(Evaluation::new(
                false,
                expected,
                json!({ "failure": f.to_string() }),
                format!("GET {ip}:{port}/: {f}"),
            ));
        }
    };
    // kube-proxy answers `{"service": {...}, "localEndpoints": N, "serviceProxyHealthy": true}`.
    let count = serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v.get("localEndpoints")?.as_u64());
    let mut problems = Vec::new();
    if r.status != *status {
        problems.push(format!("status {} from {ip}:{port}, expected {status}", r.status));
    }
    if let Some(want) = local_endpoints
        && count != Some(u64::from(*want))
    {
        problems.push(format!("localEndpoints {count:?}, expected {want}"));
    }
    let actual = json!({ "status": r.status, "local_endpoints": count, "body": r.body });
    Ok(Evaluation::new(problems.is_empty(), expected, actual, problems.join("; ")))
}
