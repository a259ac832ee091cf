//! One-line, kubectl-flavoured descriptions of steps for consoles and reports.

use crate::scenario::{Action, Check, DnsQueryName, ExpectedRecord, PodSet, Step, StepKind, TargetPort, Via};

fn pods(set: &PodSet) -> String {
    match set {
        PodSet::Empty => "no pods".into(),
        PodSet::ReadyPodsOf { deployment, .. } => format!("ready pods of {deployment}"),
        PodSet::PodsOf { deployment, .. } => format!("pods of {deployment}"),
        PodSet::TerminatingPodsOf { deployment } => format!("terminating pods of {deployment}"),
        PodSet::OnNode { set, node } => format!("{} on node {node}", pods(set)),
    }
}

/// Describes an action in one line.
pub fn action(a: &Action) -> String {
    match a {
        Action::CreateNamespace { name } => format!("create namespace {name}"),
        Action::CreateDeployment(d) => format!("create deployment {} with {} replicas", d.object, d.replicas),
        Action::CreateService(s) => {
            let ports: Vec<String> = s
                .ports
                .iter()
                .map(|p| {
                    let target = match &p.target_port {
                        TargetPort::Number(n) => n.to_string(),
                        TargetPort::Name(n) => n.clone(),
                    };
                    format!("{}{}→{target}", p.name.as_ref().map(|n| format!("{n}:")).unwrap_or_default(), p.port)
                })
                .collect();
            if let Some(target) = &s.external_name {
                return format!("create ExternalName {} → {target}", s.object);
            }
            let kind = match (s.headless, s.exposure.service_type) {
                (true, _) => " (headless)".to_owned(),
                (false, crate::scenario::ServiceType::ClusterIP) => String::new(),
                (false, t) => format!(" ({t:?})"),
            };
            let on = if ports.is_empty() { "with no ports".to_owned() } else { format!("on {}", ports.join(", ")) };
            format!("expose {}{kind} {on}", s.object)
        }
        Action::Scale { deployment, replicas } => format!("scale {deployment} to {replicas}"),
        Action::SetPodReady { pod, ready } => {
            format!("make pod #{} of {} {}", pod.index, pod.deployment, if *ready { "ready" } else { "not ready" })
        }
        Action::CreateEndpointSlice(s) => {
            let addresses: Vec<String> = s.endpoints.iter().map(|e| e.address.to_string()).collect();
            format!("write EndpointSlice {} of {}: {}", s.name, s.service, addresses.join(", "))
        }
        Action::DeleteService { service } => format!("delete service {service}"),
        Action::DeleteDeployment { deployment } => format!("delete deployment {deployment}"),
        Action::CreateServices { namespace, deployment, prefix, count, port } => {
            format!("create {count} services {namespace}/{prefix}-0… in front of {deployment} on port {port}")
        }
    }
}

/// Describes a step in one line.
pub fn summarize(step: &Step) -> String {
    match &step.kind {
        StepKind::Action(a) => action(a),
        StepKind::LiteralNamespace { name } => format!("create namespace {name} (literal name)"),
        StepKind::Wait { duration } => format!("wait {}", humantime::format_duration(*duration)),
        StepKind::Converge(c) => format!("{} and time endpoints, DNS and traffic of {}", action(&c.action), c.service),
        StepKind::Assert(a) => match &a.check {
            Check::Service { service, has_cluster_ip, .. } => {
                format!("service {service} {}", if *has_cluster_ip { "has a ClusterIP" } else { "is headless" })
            }
            Check::Endpoints { service, ready, not_ready, serving, terminating, ports, .. } => {
                let mut parts = Vec::new();
                if let Some(r) = ready {
                    parts.push(format!("ready = {}", pods(r)));
                }
                if let Some(n) = not_ready {
                    parts.push(format!("not ready = {}", pods(n)));
                }
                if let Some(n) = serving {
                    parts.push(format!("serving = {}", pods(n)));
                }
                if let Some(n) = terminating {
                    parts.push(format!("terminating = {}", pods(n)));
                }
                if let Some(p) = ports {
                    parts.push(format!(
                        "ports = {}",
                        p.iter().map(|(_, n)| n.to_string()).collect::<Vec<_>>().join(",")
                    ));
                }
                format!("endpoints of {service}: {}", parts.join(", "))
            }
            Check::Dns { from, name, query_type, flavour, rcodes, records, .. } => {
                let name = match name {
                    DnsQueryName::Name(n) => n.clone(),
                    DnsQueryName::ReverseOf(r, family) => format!("reverse of {} ({family})", record(r)),
                };
                let want = match records {
                    Some(r) if !r.is_empty() => r.iter().map(record).collect::<Vec<_>>().join(" + "),
                    _ => rcodes.iter().map(|r| format!("{r:?}").to_uppercase()).collect::<Vec<_>>().join("|"),
                };
                let flavour =
                    serde_json::to_value(flavour).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                format!("from {from}: {flavour} {name} {query_type:?} → {want}")
            }
            Check::ResolvConf { .. }
            | Check::Http { .. }
            | Check::Connect { .. }
            | Check::HealthCheck { .. }
            | Check::Udp { .. } => other(&a.check),
            Check::Services { namespace, prefix, count, ready_endpoints, .. } => format!(
                "{count} services {namespace}/{prefix}-… each have {ready_endpoints} ready endpoints, resolve and connect"
            ),
            Check::MeasureHttp(m) => {
                let rate = m.rate.map_or("closed loop".to_owned(), |r| format!("{r}/s"));
                let mode =
                    serde_json::to_value(m.mode).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                format!(
                    "from {}: {} requests to http://{}:{}{}{} ({mode}, {} connections, {rate})",
                    m.from,
                    m.requests,
                    m.host,
                    m.port,
                    m.path,
                    over(&m.ip_family),
                    m.connections
                )
            }
            Check::MeasureDns(m) => {
                let rate = m.rate.map_or("closed loop".to_owned(), |r| format!("{r}/s"));
                format!(
                    "from {}: {} DNS queries over {} names ({rate}, {} source ports)",
                    m.from,
                    m.queries,
                    m.names.len(),
                    m.source_ports
                )
            }
        },
    }
}

fn record(r: &ExpectedRecord) -> String {
    match r {
        ExpectedRecord::ClusterIpOf { service } => format!("ClusterIP of {service}"),
        ExpectedRecord::ReadyPodIpsOf { deployment, .. } => format!("ready pod IPs of {deployment}"),
        ExpectedRecord::Ip { ip } => ip.to_string(),
        ExpectedRecord::Txt { text } => format!("\"{text}\""),
        ExpectedRecord::PodIpOf { pod } => format!("IP of pod #{} of {}", pod.index, pod.deployment),
        ExpectedRecord::Srv { port, target } => format!("SRV {port} {target}"),
        ExpectedRecord::Ptr { target } => format!("PTR {target}"),
        ExpectedRecord::Cname { target } => format!("CNAME {target}"),
    }
}

/// ` over IPv6` (or IPv4) when a traffic check names its family.
fn over(family: &Option<crate::scenario::IpFamily>) -> String {
    family.map(|f| format!(" over {f}")).unwrap_or_default()
}

fn other(check: &Check) -> String {
    match check {
        Check::ResolvConf { from, search, ndots } => {
            format!("resolv.conf in {from}: search {} ndots:{ndots}", search.join(" "))
        }
        Check::Http {
            from,
            host,
            port,
            path,
            via,
            answered_by,
            reaches_all,
            reaches_only,
            source_ip,
            ip_family,
            ..
        } => {
            let who = match (answered_by, reaches_all, reaches_only) {
                (_, Some(all), _) => format!(" reaches all {}", pods(all)),
                (_, None, Some(only)) => format!(" reaches only {}", pods(only)),
                (Some(a), None, None) => format!(" answered by {}", pods(a)),
                _ => String::new(),
            };
            let via = match via {
                Via::Dns => String::new(),
                Via::ClusterIp { .. } => " via its ClusterIP".into(),
                Via::NodePort { node, .. } => format!(" via its nodePort on node {node}"),
            };
            let source = source_ip.map(|s| format!(", source IP {s:?}")).unwrap_or_default();
            format!("from {from}: GET http://{host}:{port}{path}{}{via}{who}{source}", over(ip_family))
        }
        Check::Connect { from, service, port, node, outcome, ip_family } => {
            let via = node.map(|n| format!(" via its nodePort on node {n}")).unwrap_or_default();
            format!("from {from}: connect {service}:{port}{}{via} → {outcome:?}", over(ip_family))
        }
        Check::Udp { from, service, port, node, send, flow, outcome, answered_by, reply, ip_family } => {
            let via = format!(
                "{}{}",
                over(ip_family),
                node.map(|n| format!(" via its nodePort on node {n}")).unwrap_or_default()
            );
            let flow = flow.as_ref().map(|f| format!(" on flow {f}")).unwrap_or_default();
            let want = match (answered_by, reply) {
                (Some(set), _) => format!("answered by {}", pods(set)),
                (None, Some(text)) => format!("reply `{text}`"),
                (None, None) => format!("{outcome:?}").to_lowercase(),
            };
            format!("from {from}: UDP `{send}` to {service}:{port}{via}{flow} → {want}")
        }
        Check::HealthCheck { from, service, node, status, .. } => {
            format!("from {from}: health check node port of {service} on node {node} → {status}")
        }
        _ => String::new(),
    }
}
