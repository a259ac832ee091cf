//! What a scenario shares with the others running on the same cluster, read from its plan: the cluster-wide things
//! it holds (a literal namespace, a node port asked by number, an agent in a cluster namespace or on a node's own
//! network), which no two scenarios in flight may hold at once, and why it must run alone (figures neighbours would
//! distort, or load that every neighbour would feel). The battery's scheduler acts on it;
//! harness/doc/writing-scenarios.md lists the rules.

use std::{collections::BTreeSet, ops::RangeInclusive};

use serde::Serialize;

use super::{Action, Check, Client, Plan, StepKind, validate::CLUSTER_NAMESPACES};

/// `createServices` of at least this many Services runs alone: every kube-proxy reprograms them all, and the
/// controller manager's EndpointSlice controller (20 API requests/s by default) is busy with them for every neighbour.
pub const LARGE_BULK: u32 = 100;

/// The static band of the default node port range (KEP-3668): automatic allocation takes ports from above it while
/// any remain, so a port asked here cannot be taken by a neighbour's automatically allocated one.
pub const STATIC_NODE_PORTS: RangeInclusive<u16> = 30000..=30085;

/// How a scenario may share a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Isolation {
    /// Why it runs alone, one reason per step that needs it (empty: it may overlap with others).
    pub alone: Vec<String>,
    /// Cluster-wide things it holds from its start until its namespaces are gone.
    pub holds: BTreeSet<String>,
}

impl Isolation {
    /// Whether the scenario runs alone.
    pub fn is_alone(&self) -> bool {
        !self.alone.is_empty()
    }

    /// Whether the two may be in flight together.
    pub fn conflicts_with(&self, other: &Isolation) -> bool {
        self.is_alone() || other.is_alone() || !self.holds.is_disjoint(&other.holds)
    }
}

/// Reads the isolation a plan needs.
pub fn isolation(plan: &Plan) -> Isolation {
    let mut iso = Isolation::default();
    for step in &plan.steps {
        let line = step.line;
        let mut alone = |why: String| iso.alone.push(format!("line {line}: {why}"));
        let mut clients: Vec<Client> = Vec::new();
        let mut node_ports: Vec<u16> = Vec::new();
        match &step.kind {
            StepKind::LiteralNamespace { name } => {
                iso.holds.insert(format!("namespace {name}"));
            }
            StepKind::Action(Action::CreateService(spec)) => {
                node_ports.extend(spec.ports.iter().filter_map(|p| p.node_port));
                node_ports.extend(spec.exposure.health_check_node_port);
            }
            StepKind::Action(Action::CreateServices { count, .. }) if *count >= LARGE_BULK => alone(format!(
                "creates {count} Services (≥ {LARGE_BULK}): every node's proxy and the EndpointSlice controller are \
                 busy with them for everyone"
            )),
            StepKind::Action(_) | StepKind::Wait { .. } => {}
            StepKind::Converge(c) => {
                alone(
                    "times how long a change takes to reach endpoints, DNS and traffic: neighbours' changes would \
                     queue with it in the controllers and proxies"
                        .into(),
                );
                clients.push(Client::namespace(&c.from));
            }
            StepKind::Assert(a) => match &a.check {
                Check::MeasureHttp(m) => {
                    alone("measures HTTP latency and throughput, which neighbours' CPU use would distort".into());
                    clients.push(Client::namespace(&m.from));
                }
                Check::MeasureDns(m) => {
                    alone("loads the cluster DNS every scenario shares, and measures it".into());
                    clients.push(Client::namespace(&m.from));
                }
                Check::Http { from, fair_alpha: Some(alpha), .. } => {
                    alone(format!(
                        "tests the spread over backends for fairness (χ² at α = {alpha}): it runs on a quiet cluster \
                             so a failure can only be the proxy's choice"
                    ));
                    clients.push(from.clone());
                }
                Check::Http { from, .. }
                | Check::Connect { from, .. }
                | Check::Udp { from, .. }
                | Check::HealthCheck { from, .. } => clients.push(from.clone()),
                Check::Dns { from, .. } | Check::ResolvConf { from, .. } | Check::Services { from, .. } => {
                    clients.push(Client::namespace(from));
                }
                Check::Service { .. } | Check::Endpoints { .. } => {}
            },
        }
        for port in node_ports {
            if STATIC_NODE_PORTS.contains(&port) {
                iso.holds.insert(format!("node port {port}"));
            } else {
                iso.alone.push(format!(
                    "line {line}: asks node port {port} by number outside the static band {}-{} (KEP-3668), where a \
                     neighbour's automatically allocated node port could take it first",
                    STATIC_NODE_PORTS.start(),
                    STATIC_NODE_PORTS.end()
                ));
            }
        }
        for client in clients {
            match client {
                // One host-network agent per node: it listens on the node's own address.
                Client::Node { node } => {
                    iso.holds.insert(format!("host-network agent on node {node}"));
                }
                // The cluster's own namespaces hold one agent of a given name, whichever run made it.
                Client::Namespace { namespace } | Client::PodOnNode { namespace, .. }
                    if CLUSTER_NAMESPACES.contains(&namespace.as_str()) =>
                {
                    iso.holds.insert(format!("agent in namespace {namespace}"));
                }
                _ => {}
            }
        }
    }
    iso
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps: &str) -> Plan {
        let text = format!("name: t\ndescription: d\nsteps:\n{steps}");
        crate::scenario::parse(std::path::Path::new("t.yaml"), &text).expect("valid scenario")
    }

    #[test]
    fn plain_scenarios_share() {
        let p = plan(
            "  - createNamespace: test\n  - createDeployment: {namespace: test, name: web, replicas: 2}\n  \
             - expose: {namespace: test, deployment: web, port: 80}\n  \
             - expectHttp: {from: test, url: 'http://web/hostname', answeredBy: {readyPodsOf: web}}\n",
        );
        assert_eq!(isolation(&p), Isolation::default());
    }

    #[test]
    fn node_ports_in_the_static_band_are_held_and_others_run_alone() {
        let steps = |port: u16| {
            format!(
                "  - createNamespace: test\n  - createDeployment: {{namespace: test, name: web}}\n  \
                 - expose: {{namespace: test, deployment: web, port: 80, type: NodePort, nodePort: {port}}}\n"
            )
        };
        let held = isolation(&plan(&steps(30017)));
        assert!(!held.is_alone());
        assert_eq!(held.holds, BTreeSet::from(["node port 30017".to_owned()]));
        let alone = isolation(&plan(&steps(30917)));
        assert!(alone.is_alone(), "{alone:?}");
        assert!(alone.alone[0].starts_with("line 6: asks node port 30917"), "{:?}", alone.alone);
        assert!(held.conflicts_with(&held) && alone.conflicts_with(&Isolation::default()));
    }

    #[test]
    fn literal_namespaces_node_clients_and_cluster_namespace_agents_are_held() {
        let p = plan(
            "  - createNamespace: {name: dns-version, literal: true}\n  \
             - createDeployment: {namespace: dns-version, name: web}\n  \
             - expose: {namespace: dns-version, deployment: web, port: 80}\n  \
             - expectHttp: {from: {node: 1}, url: 'http://web.dns-version/hostname'}\n  \
             - expectDns: {from: default, name: web.dns-version, type: A, records: [{clusterIPOf: dns-version/web}]}\n",
        );
        let iso = isolation(&p);
        assert!(!iso.is_alone(), "{iso:?}");
        let held: Vec<&str> = iso.holds.iter().map(String::as_str).collect();
        assert_eq!(held, ["agent in namespace default", "host-network agent on node 1", "namespace dns-version"]);
        assert!(!iso.conflicts_with(&Isolation::default()));
    }

    #[test]
    fn measurements_and_bulk_run_alone() {
        let p = plan(
            "  - createNamespace: scale\n  - createDeployment: {namespace: scale, name: web}\n  \
             - createServices: {namespace: scale, deployment: web, prefix: svc, count: 100, port: 80}\n  \
             - createServices: {namespace: scale, deployment: web, prefix: few, count: 99, port: 80}\n",
        );
        let iso = isolation(&p);
        assert_eq!(iso.alone.len(), 1, "{iso:?}");
        assert!(iso.alone[0].starts_with("line 6: creates 100 Services"), "{:?}", iso.alone);
    }
}
