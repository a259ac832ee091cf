//! Convergence: apply a change, then time separately how long the EndpointSlices, DNS answers and traffic through
//! the ClusterIP take to reflect it (SIG-scalability's network and DNS programming latency, seen from a client).

use std::time::Instant;

use serde_json::json;

use super::{
    check::{Evaluation, evaluate},
    pods::pods_in,
};
use crate::{
    probe::pace::{DEFAULT_TOLERANCE, PaceMonitor},
    results::ConvergenceReport,
    scenario::{
        Check, Client, ConnectOutcome, Converge, DnsQueryName, ExpectedRecord, HttpClient, PodSet, QueryType, Rcode,
        ResolverFlavour, Transport, Via,
    },
    targets::{Target, TargetError},
};

/// Where the change has to show.
#[derive(Clone, Copy)]
enum Place {
    Endpoints,
    Dns,
    Traffic,
}

/// The check that holds once `place` reflects the current state of the workload.
async fn check_for(place: Place, c: &Converge, target: &dyn Target) -> Result<Option<Check>, TargetError> {
    let ready = PodSet::ReadyPodsOf { deployment: c.deployment.clone(), replicas: c.replicas };
    // While the workload's pods are not all there the set is unknown: the Endpoints check reports why.
    let none_ready = pods_in(target, &ready).await?.is_ok_and(|pods| pods.is_empty());
    let Some(service) = target.service(&c.service).await? else { return Ok(None) };
    Ok(match place {
        Place::Endpoints => Some(Check::Endpoints {
            service: c.service.clone(),
            ready: Some(ready),
            not_ready: None,
            serving: None,
            terminating: None,
            ports: None,
            address_type: None,
        }),
        Place::Dns => {
            let name = format!("{}.{}.svc.{}.", c.service.name, c.service.namespace, target.cluster_domain());
            let (rcodes, records) = match (service.cluster_ip, none_ready) {
                (Some(_), _) => (vec![], Some(vec![ExpectedRecord::ClusterIpOf { service: c.service.clone() }])),
                (None, true) => (vec![Rcode::NxDomain], None),
                (None, false) => {
                    let records =
                        ExpectedRecord::ReadyPodIpsOf { deployment: c.deployment.clone(), replicas: c.replicas };
                    (vec![], Some(vec![records]))
                }
            };
            Some(Check::Dns {
                from: c.from.clone(),
                name: DnsQueryName::Name(name),
                query_type: QueryType::A,
                flavour: ResolverFlavour::Dig,
                transport: Transport::Udp,
                rcodes,
                records,
                additional: None,
                candidates: None,
                min_ttl: None,
                authority_soa: false,
            })
        }
        Place::Traffic => match (service.cluster_ip, service.ports.first()) {
            (Some(ip), Some(port)) if none_ready => {
                let _ = ip;
                Some(Check::Connect {
                    from: Client::namespace(&c.from),
                    service: c.service.clone(),
                    port: port.port,
                    node: None,
                    outcome: ConnectOutcome::Refused,
                    ip_family: None,
                })
            }
            (Some(ip), Some(port)) => Some(Check::Http {
                from: Client::namespace(&c.from),
                host: ip.to_string(),
                port: port.port,
                path: "/hostname".into(),
                via: Via::Dns,
                status: 200,
                answered_by: None,
                reaches_all: Some(ready),
                reaches_only: None,
                requests: None,
                same_backend: false,
                fair_alpha: None,
                source_ip: None,
                client: HttpClient::Plain,
                ip_family: None,
            }),
            _ => None,
        },
    })
}

/// Applies the change and measures; `Err` when the action is rejected.
pub async fn run(c: &Converge, target: &dyn Target) -> Result<(Evaluation, ConvergenceReport), TargetError> {
    target.apply(&c.action).await?;
    let started = Instant::now();
    let deadline = started + c.timeout;
    // As for polled assertions: time the harness itself could not run does not count against the target.
    let harness = PaceMonitor::with_tick(started, DEFAULT_TOLERANCE, super::HARNESS_TICK);
    let places = [Place::Endpoints, Place::Dns, Place::Traffic];
    let mut done: [Option<f64>; 3] = [None; 3];
    let mut applicable = [true; 3];
    let mut last_problem = [String::new(), String::new(), String::new()];
    loop {
        for (i, place) in places.iter().enumerate() {
            if done[i].is_some() || !applicable[i] {
                continue;
            }
            match check_for(*place, c, target).await? {
                None => applicable[i] = false,
                Some(check) => match evaluate(&check, target).await {
                    Ok(e) if e.holds => done[i] = Some(started.elapsed().as_secs_f64() * 1000.0),
                    Ok(e) => last_problem[i] = e.message,
                    // The harness's identity may not probe from there: no amount of waiting changes that.
                    Err(e @ TargetError::NotPermitted(_)) => return Err(e),
                    Err(e) => last_problem[i] = e.to_string(),
                },
            }
        }
        let finished = (0..3).all(|i| done[i].is_some() || !applicable[i]);
        if finished || Instant::now() >= deadline + harness.stalled().min(c.timeout) {
            break;
        }
        tokio::time::sleep(target.poll_interval()).await;
    }
    let report = ConvergenceReport {
        change: super::summary::action(&c.action),
        endpoints_ms: done[0],
        dns_ms: done[1],
        traffic_ms: done[2],
    };
    let names = ["endpoints", "DNS", "traffic"];
    let pending: Vec<String> = (0..3)
        .filter(|&i| applicable[i] && done[i].is_none())
        .map(|i| format!("{} not converged: {}", names[i], last_problem[i]))
        .collect();
    let evaluation = Evaluation::new(
        pending.is_empty(),
        json!({ "converged_within_ms": c.timeout.as_secs_f64() * 1000.0 }),
        json!({ "endpoints_ms": done[0], "dns_ms": done[1], "traffic_ms": done[2] }),
        pending.join("; "),
    );
    Ok((evaluation, report))
}
