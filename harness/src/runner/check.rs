//! Evaluating one check against a target: resolve the symbolic expectation ("the ready pods of nginx") with the
//! target's API view, observe with a probe, compare exactly.

use std::{collections::BTreeSet, net::IpAddr};

use serde_json::{Value, json};

use super::{
    candidates,
    pods::{pod_ip, pod_ips},
};
use crate::{
    probe::{
        ProbeRequest, ProbeResponse,
        dns::{DnsAnswer, DnsRecord},
    },
    scenario::{Check, DnsQueryName, ExpectedRecord, IpFamily, PodSet, QueryType, Rcode},
    targets::{Target, TargetError},
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
    /// What a measuring check measured.
    pub measurement: Option<crate::results::Measurement>,
    /// Why the check could not be judged at all (its own client fell behind): neither holds nor fails.
    pub inconclusive: Option<String>,
    /// What a verdict that holds left out (a load judged over its on-schedule part only).
    pub note: Option<String>,
}

impl Evaluation {
    pub(crate) fn new(holds: bool, expected: Value, actual: Value, message: impl Into<String>) -> Self {
        Self { holds, expected, actual, message: message.into(), measurement: None, inconclusive: None, note: None }
    }

    pub(crate) fn inconclusive(mut self, why: String) -> Self {
        self.holds = false;
        self.inconclusive = Some(why);
        self
    }

    pub(crate) fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    pub(crate) fn with_measurement(mut self, m: crate::results::Measurement) -> Self {
        self.measurement = Some(m);
        self
    }
}

/// The `in-addr.arpa` / `ip6.arpa` name of an address, absolute.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

/// Resolves an expected record against the target: the concrete records it stands for, or why it cannot be.
/// Addresses are those of `family` (an A or AAAA question, a reverse name), or the primary ones (`None`: the
/// additional section, whose expected records name no family).
async fn expected_records(
    target: &dyn Target,
    r: &ExpectedRecord,
    family: Option<IpFamily>,
) -> Result<Result<Vec<DnsRecord>, String>, TargetError> {
    let addresses = |ips: Vec<IpAddr>| ips.into_iter().map(|ip| DnsRecord::Address { ip }).collect::<Vec<_>>();
    Ok(Ok(match r {
        ExpectedRecord::ClusterIpOf { service } => {
            let Some(view) = target.service(service).await? else {
                return Ok(Err(format!("service {service} has no ClusterIP to expect")));
            };
            let Some(ip) = view.cluster_ip_for(family) else {
                let which = family.map(|f| format!("{f} ")).unwrap_or_default();
                return Ok(Err(format!("service {service} has no {which}ClusterIP to expect")));
            };
            addresses(vec![ip])
        }
        ExpectedRecord::ReadyPodIpsOf { deployment, replicas } => {
            let set = PodSet::ReadyPodsOf { deployment: deployment.clone(), replicas: *replicas };
            match pod_ips(target, &set, family).await? {
                Ok(ips) => addresses(ips.into_iter().collect()),
                Err(why) => return Ok(Err(why)),
            }
        }
        ExpectedRecord::PodIpOf { pod } => match pod_ip(target, pod, family).await? {
            Some(ips) if !ips.is_empty() => addresses(ips),
            Some(_) => return Ok(Err(format!("{} pod #{} has no address of that family", pod.deployment, pod.index))),
            None => return Ok(Err(format!("{} has no pod #{}", pod.deployment, pod.index))),
        },
        ExpectedRecord::Ip { ip } => vec![DnsRecord::Address { ip: *ip }],
        ExpectedRecord::Txt { text } => vec![DnsRecord::Txt { text: text.clone() }],
        ExpectedRecord::Srv { port, target: t } => {
            vec![DnsRecord::Srv { priority: 0, weight: 0, port: *port, target: t.clone() }]
        }
        ExpectedRecord::Ptr { target: t } => vec![DnsRecord::Ptr { target: t.clone() }],
        ExpectedRecord::Cname { target: t } => vec![DnsRecord::Cname { target: t.clone() }],
    }))
}

/// Whether an observed record satisfies an expected one: SRV priority and weight are not compared, and an SRV or
/// PTR target starting with `*.` matches any single first label that is a valid hostname label (RFC 1123: what the
/// spec requires of an endpoint's hostname, even one the implementation chose).
fn record_matches(expected: &DnsRecord, actual: &DnsRecord) -> bool {
    let target_matches = |et: &str, at: &str| match et.strip_prefix("*.") {
        Some(rest) => at.split_once('.').is_some_and(|(first, tail)| {
            crate::scenario::names::dns1123_label(&first.to_ascii_lowercase()).is_ok() && tail == rest
        }),
        None => et == at,
    };
    match (expected, actual) {
        (DnsRecord::Srv { port: ep, target: et, .. }, DnsRecord::Srv { port: ap, target: at, .. }) => {
            ep == ap && target_matches(et, at)
        }
        (DnsRecord::Ptr { target: et }, DnsRecord::Ptr { target: at }) => target_matches(et, at),
        _ => expected == actual,
    }
}

/// Matches expected against actual records as multisets; returns (missing, unexpected).
fn match_records(expected: &[DnsRecord], actual: &[DnsRecord]) -> (Vec<String>, Vec<String>) {
    let mut remaining: Vec<&DnsRecord> = actual.iter().collect();
    let mut missing = Vec::new();
    // Exact expectations first, so a wildcard does not take a record an exact one needs.
    let mut ordered: Vec<&DnsRecord> = expected.iter().collect();
    ordered.sort_by_key(
        |r| matches!(r, DnsRecord::Srv { target, .. } | DnsRecord::Ptr { target } if target.starts_with("*.")),
    );
    for e in ordered {
        match remaining.iter().position(|a| record_matches(e, a)) {
            Some(i) => {
                remaining.remove(i);
            }
            None => missing.push(e.to_string()),
        }
    }
    (missing, remaining.into_iter().map(ToString::to_string).collect())
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

/// New connections a `reachesAll` check makes over `n` expected backends: enough that, per attempt, a uniform random
/// balancer misses one of them with probability below 1e-9, *and* that one stale extra backend (n + 1 in the
/// balancer) goes unhit with probability below 1e-9. Checks are retried until they hold, so both bounds must be
/// tight for a faulty implementation not to pass by luck.
pub fn requests_to_reach_all(n: usize) -> u32 {
    let n_f = n.max(1) as f64;
    let reach = if n <= 1 { 1.0 } else { ((1e-9 / n_f).ln() / (1.0 - 1.0 / n_f).ln()).ceil() };
    let extra = (1e-9f64.ln() / (n_f / (n_f + 1.0)).ln()).ceil();
    (reach.max(extra) as u32).clamp(3, 100_000)
}

/// Evaluates `check` once.
///
/// # Errors
/// The target could not answer (API or probe failure).
pub async fn evaluate(check: &Check, target: &dyn Target) -> Result<Evaluation, TargetError> {
    match check {
        Check::MeasureHttp(m) => super::measure::http(m, target).await,
        Check::MeasureDns(m) => super::measure::dns(m, target).await,
        Check::Services { from, namespace, prefix, count, ready_endpoints } => {
            super::measure::services(target, from, namespace, prefix, *count, *ready_endpoints).await
        }
        Check::Service { service, has_cluster_ip, ip_families } => {
            let mut expected =
                json!({ "exists": true, "cluster_ip": if *has_cluster_ip { "allocated" } else { "None" } });
            if let Some(families) = ip_families {
                expected["ip_families"] = json!(families);
            }
            Ok(match target.service(service).await? {
                None => Evaluation::new(
                    false,
                    expected,
                    json!({ "exists": false }),
                    format!("service {service} does not exist"),
                ),
                Some(v) => {
                    let mut problems = Vec::new();
                    if v.cluster_ip.is_some() != *has_cluster_ip {
                        problems.push(format!("clusterIP is {:?}", v.cluster_ip));
                    }
                    if let Some(want) = ip_families {
                        let of_ips: Vec<IpFamily> = v.cluster_ips.iter().map(|ip| IpFamily::of(*ip)).collect();
                        if v.ip_families != *want {
                            problems.push(format!("ipFamilies is {:?}, expected {want:?}", v.ip_families));
                        } else if *has_cluster_ip && of_ips != *want {
                            problems
                                .push(format!("clusterIPs {:?} are not one of each family {want:?}", v.cluster_ips));
                        }
                    }
                    let actual = json!({
                        "exists": true,
                        "cluster_ip": v.cluster_ip,
                        "cluster_ips": v.cluster_ips,
                        "ip_families": v.ip_families,
                    });
                    Evaluation::new(problems.is_empty(), expected, actual, problems.join("; "))
                }
            })
        }
        Check::Endpoints { service, ready, not_ready, serving, terminating, ports, address_type } => {
            let family = match address_type {
                Some(f) => *f,
                None => target.service(service).await?.map_or(IpFamily::IPv4, |s| s.primary_family()),
            };
            let slices: Vec<_> =
                target.endpoint_slices(service).await?.into_iter().filter(|s| s.address_type == family).collect();
            let addresses = |f: fn(&crate::targets::EndpointView) -> bool| -> BTreeSet<IpAddr> {
                slices.iter().flat_map(|s| &s.endpoints).filter(|e| f(e)).map(|e| e.address).collect()
            };
            let actual_ready = addresses(|e| e.ready);
            let actual_not_ready = addresses(|e| !e.ready);
            let actual_serving = addresses(|e| e.serving);
            let actual_terminating = addresses(|e| e.terminating);
            let actual_ports: BTreeSet<(Option<String>, u16)> =
                slices.iter().flat_map(|s| &s.ports).map(|p| (p.name.clone(), p.port)).collect();
            let mut expected = serde_json::Map::new();
            let mut problems = Vec::new();
            if let Some(set) = ready {
                match pod_ips(target, set, Some(family)).await? {
                    Ok(want) => {
                        if want != actual_ready {
                            problems.push(format!("ready endpoints: {}", set_diff(&want, &actual_ready)));
                        }
                        expected.insert("ready".into(), json!(want));
                    }
                    Err(why) => problems.push(format!("ready endpoints: expected set not known yet: {why}")),
                }
            }
            if let Some(set) = not_ready {
                match pod_ips(target, set, Some(family)).await? {
                    Ok(want) => {
                        if want != actual_not_ready {
                            problems.push(format!("not-ready endpoints: {}", set_diff(&want, &actual_not_ready)));
                        }
                        expected.insert("not_ready".into(), json!(want));
                    }
                    Err(why) => problems.push(format!("not-ready endpoints: expected set not known yet: {why}")),
                }
            }
            if let Some(set) = serving {
                match pod_ips(target, set, Some(family)).await? {
                    Ok(want) => {
                        if want != actual_serving {
                            problems.push(format!("serving endpoints: {}", set_diff(&want, &actual_serving)));
                        }
                        expected.insert("serving".into(), json!(want));
                    }
                    Err(why) => problems.push(format!("serving endpoints: expected set not known yet: {why}")),
                }
            }
            if let Some(set) = terminating {
                match pod_ips(target, set, Some(family)).await? {
                    Ok(want) => {
                        if want != actual_terminating {
                            problems.push(format!("terminating endpoints: {}", set_diff(&want, &actual_terminating)));
                        }
                        expected.insert("terminating".into(), json!(want));
                    }
                    Err(why) => problems.push(format!("terminating endpoints: expected set not known yet: {why}")),
                }
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
                "serving": actual_serving,
                "terminating": actual_terminating,
                "ports": actual_ports,
                "endpoints": slices.iter().flat_map(|s| s.endpoints.iter().map(|e| json!({
                    "address": e.address, "ready": e.ready, "serving": e.serving, "terminating": e.terminating, "pod": e.pod,
                }))).collect::<Vec<_>>(),
            });
            Ok(Evaluation::new(problems.is_empty(), Value::Object(expected), actual, problems.join("; ")))
        }
        Check::Dns {
            from,
            name,
            query_type,
            flavour,
            transport,
            rcodes,
            records,
            additional,
            candidates,
            min_ttl,
            authority_soa,
        } => {
            let mut problems = Vec::new();
            let mut expected = serde_json::Map::new();
            let qname = match name {
                DnsQueryName::Name(n) => n.clone(),
                DnsQueryName::ReverseOf(r, family) => match expected_records(target, r, Some(*family)).await? {
                    Ok(recs) => match recs.first() {
                        Some(DnsRecord::Address { ip }) => reverse_name(*ip),
                        _ => return Ok(Evaluation::new(false, json!({}), json!({}), "no address to reverse")),
                    },
                    Err(why) => return Ok(Evaluation::new(false, json!({}), json!({}), why)),
                },
            };
            expected.insert("name".into(), json!(qname));
            let request = ProbeRequest::Dns {
                name: qname.clone(),
                query_type: *query_type,
                flavour: *flavour,
                transport: *transport,
            };
            let ProbeResponse::Dns(lookup) = target.probe(from, &request).await? else {
                return Err(TargetError::Other("DNS probe returned another kind of result".into()));
            };
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
                let family = match query_type {
                    QueryType::A => Some(IpFamily::IPv4),
                    QueryType::Aaaa => Some(IpFamily::IPv6),
                    _ => None,
                };
                let mut want = Vec::new();
                for r in records {
                    match expected_records(target, r, family).await? {
                        Ok(recs) => want.extend(recs),
                        Err(why) => problems.push(why),
                    }
                }
                let (missing, unexpected) = match_records(&want, &lookup.records);
                if !missing.is_empty() || !unexpected.is_empty() {
                    let mut parts = Vec::new();
                    if !missing.is_empty() {
                        parts.push(format!("missing {}", missing.join(", ")));
                    }
                    if !unexpected.is_empty() {
                        parts.push(format!("unexpected {}", unexpected.join(", ")));
                    }
                    problems.push(format!("records: {}", parts.join("; ")));
                }
                expected.insert("records".into(), json!(want.iter().map(ToString::to_string).collect::<Vec<_>>()));
            }
            if let Some(additional) = additional {
                let mut want = Vec::new();
                for r in additional {
                    match expected_records(target, r, None).await? {
                        Ok(recs) => want.extend(recs),
                        Err(why) => problems.push(why),
                    }
                }
                let got: Vec<DnsRecord> = lookup.tried.last().map(|t| t.additional.clone()).unwrap_or_default();
                let (missing, unexpected) = match_records(&want, &got);
                if !missing.is_empty() || !unexpected.is_empty() {
                    problems.push(format!(
                        "additional section: missing [{}], unexpected [{}]",
                        missing.join(", "),
                        unexpected.join(", ")
                    ));
                }
                expected.insert("additional".into(), json!(want.iter().map(ToString::to_string).collect::<Vec<_>>()));
            }
            if let Some(cands) = candidates {
                let want: Vec<String> = cands.iter().map(|c| candidates::normalize(c)).collect();
                let got: Vec<String> = lookup.tried.iter().map(|t| candidates::normalize(&t.name)).collect();
                if want != got {
                    // The node's own search domains after the cluster ones add their candidates: allowed, exactly.
                    let ProbeResponse::ResolvConf(conf) = target.probe(from, &ProbeRequest::ResolvConf).await? else {
                        return Err(TargetError::Other("resolv.conf probe returned another kind of result".into()));
                    };
                    let zone = target.cluster_domain();
                    let extra = candidates::extra_search_domains(&conf.search, from, &zone);
                    if !candidates::matches(&want, &got, &qname, &zone, &extra) {
                        let allowed = if extra.is_empty() {
                            String::new()
                        } else {
                            format!(" (with the node's search domains {} after {zone})", extra.join(" "))
                        };
                        problems.push(format!("tried [{}], expected [{}]{allowed}", got.join(", "), want.join(", ")));
                    }
                }
                expected.insert("candidates".into(), json!(want));
            }
            if let Some(min) = min_ttl {
                let low: Vec<u32> =
                    lookup.tried.iter().flat_map(|t| t.ttls.iter().copied()).filter(|t| t < min).collect();
                if !low.is_empty() {
                    problems.push(format!(
                        "TTL {} below {min}",
                        low.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                    ));
                }
                expected.insert("min_ttl".into(), json!(min));
            }
            // Owner names, for every answer: the asked name or a CNAME target; the negative answers' SOA at the zone.
            let stray: Vec<String> = lookup.tried.iter().flat_map(DnsAnswer::stray_owners).collect();
            if !stray.is_empty() {
                problems.push(format!("answer records owned by names other than the asked one: {}", stray.join(", ")));
            }
            if *authority_soa {
                let zone = candidates::normalize(&target.cluster_domain());
                let in_zone = |n: &str| n == zone || n.ends_with(&format!(".{zone}"));
                let misplaced: Vec<String> = lookup
                    .tried
                    .iter()
                    .filter(|t| in_zone(&candidates::normalize(&t.name)))
                    .filter_map(|t| {
                        let owner = t.soa_owner.as_ref()?;
                        (candidates::normalize(owner) != zone).then(|| format!("{} (SOA at {owner})", t.name))
                    })
                    .collect();
                if !misplaced.is_empty() {
                    problems.push(format!("SOA not at the zone apex {zone}: {}", misplaced.join(", ")));
                }
            }
            if *authority_soa {
                let bare: Vec<&str> = lookup
                    .tried
                    .iter()
                    .filter(|t| matches!(t.rcode, Rcode::NxDomain | Rcode::NoData) && !t.soa_in_authority)
                    .map(|t| t.name.as_str())
                    .collect();
                if !bare.is_empty() {
                    problems.push(format!("negative answer without SOA for {}", bare.join(", ")));
                }
                expected.insert("authority_soa".into(), json!(true));
            }
            let actual = json!({
                "rcode": lookup.rcode,
                "records": lookup.records.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "tried": lookup.tried.iter().map(|t| json!({
                    "name": t.name,
                    "rcode": t.rcode,
                    "records": t.records.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "ttls": t.ttls,
                    "transport": t.transport,
                    "authoritative": t.authoritative,
                    "soa_in_authority": t.soa_in_authority,
                    "owners": t.owners,
                    "additional": t.additional.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "soa_owner": t.soa_owner,
                })).collect::<Vec<_>>(),
            });
            Ok(Evaluation::new(problems.is_empty(), Value::Object(expected), actual, problems.join("; ")))
        }
        Check::ResolvConf { from, search, ndots } => {
            let ProbeResponse::ResolvConf(conf) = target.probe(from, &ProbeRequest::ResolvConf).await? else {
                return Err(TargetError::Other("resolv.conf probe returned another kind of result".into()));
            };
            let mut problems = Vec::new();
            // kubelet appends the node's own search domains after the cluster ones: those may follow.
            if !conf.search.starts_with(search) {
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
        Check::Http { .. } => super::http::evaluate(check, target).await,
        Check::HealthCheck { .. } => super::http::health_check(check, target).await,
        Check::Udp { .. } => super::udp::evaluate(check, target).await,
        Check::Connect { from, service, port, node, outcome, ip_family } => {
            let expected = json!({ "result": outcome });
            let address = match super::http::service_address(target, service, *port, *node, *ip_family).await? {
                Ok(address) => address,
                Err(why) => return Ok(Evaluation::new(false, expected, json!({}), why)),
            };
            let ProbeResponse::Connect(result) = target.probe_as(from, &ProbeRequest::Connect { address }).await?
            else {
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
    use super::*;

    fn srv(port: u16, target: &str) -> DnsRecord {
        DnsRecord::Srv { priority: 0, weight: 50, port, target: target.into() }
    }

    #[test]
    fn srv_wildcards_match_one_label_and_exact_ones_win() {
        let actual = [srv(80, "10-0-0-1.web.ns.svc.cluster.local."), srv(80, "web-0.web.ns.svc.cluster.local.")];
        let expected = [srv(80, "*.web.ns.svc.cluster.local."), srv(80, "web-0.web.ns.svc.cluster.local.")];
        assert_eq!(match_records(&expected, &actual), (vec![], vec![]));
        let (missing, unexpected) =
            match_records(&[srv(80, "*.web.ns.svc.cluster.local.")], &[srv(8080, "a.web.ns.svc.cluster.local.")]);
        assert_eq!((missing.len(), unexpected.len()), (1, 1));
        assert!(!record_matches(&srv(80, "*.web.ns.svc.cluster.local."), &srv(80, "a.b.web.ns.svc.cluster.local.")));
        let ptr = |t: &str| DnsRecord::Ptr { target: t.into() };
        assert!(record_matches(&ptr("*.web.ns.svc.cluster.local."), &ptr("10-244-1-7.web.ns.svc.cluster.local.")));
        assert!(!record_matches(&ptr("*.web.ns.svc.cluster.local."), &ptr("web.ns.svc.cluster.local.")));
        // The label must be a hostname label: not `fd00-10-244-1--` (coredns/coredns#7430), `-x` or 64 characters.
        assert!(record_matches(&ptr("*.hl.ns.svc.cluster.local."), &ptr("fd00-10-244-1--0.hl.ns.svc.cluster.local.")));
        assert!(record_matches(&ptr("*.hl.ns.svc.cluster.local."), &ptr("FD00-1--0.hl.ns.svc.cluster.local.")));
        for bad in ["fd00-10-244-1--", "-1", "a_b", &"a".repeat(64)] {
            let actual = srv(80, &format!("{bad}.hl.ns.svc.cluster.local."));
            assert!(!record_matches(&srv(80, "*.hl.ns.svc.cluster.local."), &actual), "{bad}");
        }
    }

    #[test]
    fn reverse_names() {
        assert_eq!(reverse_name("10.96.0.1".parse().unwrap()), "1.0.96.10.in-addr.arpa.");
        assert!(reverse_name("::1".parse().unwrap()).starts_with("1.0.0.0."));
    }

    #[test]
    fn reach_all_request_counts() {
        // 1 backend plus a stale one: 0.5^k < 1e-9  =>  k >= 30.
        assert_eq!(requests_to_reach_all(1), 30);
        for n in 2..10usize {
            let k = requests_to_reach_all(n) as i32;
            let nf = n as f64;
            assert!(nf * (1.0 - 1.0 / nf).powi(k) < 1e-9, "miss one of {n}");
            assert!((nf / (nf + 1.0)).powi(k) < 1e-9, "stale extra among {n}");
            assert!((nf / (nf + 1.0)).powi(k - 1) >= 1e-9 || nf * (1.0 - 1.0 / nf).powi(k - 1) >= 1e-9, "minimal");
        }
    }
}
