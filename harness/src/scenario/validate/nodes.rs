//! Node-aware parts of a scenario: `from:` clients, `via:` paths, a Service's exposure (type, node ports, traffic
//! policies, `trafficDistribution`) and `expectHealthCheck`.

use serde_saphyr::{Location, Spanned};

use super::{
    super::{families::*, file::*, nodes::*, plan::*},
    Validator,
};

/// Highest node index a scenario may name (the target says at run time whether it has that many nodes).
pub const MAX_NODE_INDEX: u32 = 15;

impl Validator {
    /// A node index within [`MAX_NODE_INDEX`].
    pub(super) fn node_index(&mut self, at: &Location, node: u32) -> Option<u32> {
        if node > MAX_NODE_INDEX {
            self.err(at, format!("node {node}: nodes are numbered 0-{MAX_NODE_INDEX} (0 is the first node by name)"));
            return None;
        }
        Some(node)
    }

    /// `from:` — which client runs the probe. `pods` says whether a backend pod may be the client.
    pub(super) fn client(&mut self, raw: &Spanned<RawClient>, pods: bool) -> Option<Client> {
        let at = raw.referenced;
        let c = &raw.value;
        match (&c.namespace, c.node, &c.pod) {
            (Some(ns), None, None) => Some(Client::Namespace { namespace: self.namespace_at(&at, ns)? }),
            (Some(ns), Some(node), None) => {
                Some(Client::PodOnNode { namespace: self.namespace_at(&at, ns)?, node: self.node_index(&at, node)? })
            }
            (None, Some(node), None) => Some(Client::Node { node: self.node_index(&at, node)? }),
            (ns, None, Some(pod)) if pods => {
                let default_ns = match ns {
                    Some(ns) => self.namespace_at(&at, ns)?,
                    None => match pod.deployment.value.split_once('/') {
                        Some((ns, _)) => ns.to_owned(),
                        None => {
                            self.err(&at, "`from: {pod: …}` needs `namespace` (or `deployment: ns/name`)");
                            return None;
                        }
                    },
                };
                let deployment = self.deployment(&default_ns, &pod.deployment)?;
                Some(Client::Pod { pod: PodRef { deployment, index: pod.index } })
            }
            (_, None, Some(_)) => {
                self.err(&at, "a backend pod can only be the client of `expectHttp`");
                None
            }
            _ => {
                self.err(&at, "`from` is a namespace, `{namespace, node}`, `{node}` or `{pod: {deployment, index}}`");
                None
            }
        }
    }

    fn namespace_at(&mut self, at: &Location, ns: &str) -> Option<String> {
        self.namespace(&Spanned { value: ns.to_owned(), referenced: *at, defined: *at })
    }

    /// `expectHttp`'s `via`: the url host names a Service (in the client's namespace unless `name.namespace`).
    pub(super) fn via(&mut self, via: &Option<Spanned<RawVia>>, from: &Client, host: &str) -> Option<Via> {
        let Some(via) = via else {
            if matches!(from, Client::Pod { .. }) {
                // A pod's dial (netexec `/dial`) goes to an address: it does not use the resolver svcbench emulates.
                let at = self.fallback.unwrap_or(Location::UNKNOWN);
                self.err(&at, "a backend pod client needs `via: clusterIP` or `via: {node: N}`");
                return None;
            }
            return Some(Via::Dns);
        };
        let at = via.referenced;
        let default_ns = from.namespace_name().map(str::to_owned).unwrap_or_else(|| "default".into());
        let service_ref = match host.split_once('.') {
            Some((name, ns)) if !ns.contains('.') => format!("{ns}/{name}"),
            Some(_) => {
                self.err(
                    &at,
                    format!("with `via`, the url host names a Service (`name` or `name.namespace`), not `{host}`"),
                );
                return None;
            }
            None => host.to_owned(),
        };
        let service = self.service(&default_ns, &Spanned { value: service_ref, referenced: at, defined: at })?;
        match &via.value {
            RawVia::Named(n) if n == "dns" && matches!(from, Client::Pod { .. }) => {
                self.err(&at, "a backend pod client dials addresses: use `via: clusterIP` or `via: {node: N}`");
                None
            }
            RawVia::Named(n) if n == "dns" => Some(Via::Dns),
            RawVia::Named(n) if n == "clusterIP" => Some(Via::ClusterIp { service }),
            RawVia::Named(n) => {
                self.err(&at, format!("via must be `dns`, `clusterIP` or `{{node: N}}`, not `{n}`"));
                None
            }
            RawVia::NodePort { node } => {
                let node = self.node_index(&at, *node)?;
                self.needs_node_ports(&at, &service)?;
                Some(Via::NodePort { service, node })
            }
        }
    }

    /// The service has node ports (`type: NodePort` or `LoadBalancer`).
    /// `via: {node: N}` on a Service port step: the node index, once the service is known to have node ports.
    pub(super) fn node_via(
        &mut self,
        via: &Option<RawNodeVia>,
        at: &Location,
        service_at: &Location,
        service: &ObjectRef,
    ) -> Option<Option<u32>> {
        let Some(via) = via else { return Some(None) };
        let node = self.node_index(at, via.node)?;
        self.needs_node_ports(service_at, service)?;
        Some(Some(node))
    }

    pub(super) fn needs_node_ports(&mut self, at: &Location, service: &ObjectRef) -> Option<()> {
        if self.exposures.get(service).is_some_and(|e| e.service_type.has_node_ports()) {
            Some(())
        } else {
            self.err(
                at,
                format!("service `{service}` has no node ports (it needs `type: NodePort` or `LoadBalancer`)"),
            );
            None
        }
    }

    /// `type`, node ports, policies and distribution of `expose`; fills each port's `node_port`.
    /// `ipFamilyPolicy` and `ipFamilies` as the API server validates them: known values, two distinct families at
    /// most, and two only with a dual-stack policy.
    fn ip_families(&mut self, e: &RawExpose) -> Option<IpFamilies> {
        let policy = match &e.ip_family_policy {
            None => None,
            Some(_) => Some(self.choice(
                &e.ip_family_policy,
                IpFamilyPolicy::SingleStack,
                "ipFamilyPolicy",
                "SingleStack, PreferDualStack or RequireDualStack",
            )?),
        };
        let mut families = Vec::new();
        if let Some(list) = &e.ip_families {
            families = self.family_list(list)?;
            if families.len() == 2 && matches!(policy, None | Some(IpFamilyPolicy::SingleStack)) {
                self.err(
                    &list.referenced,
                    "two ipFamilies need `ipFamilyPolicy: PreferDualStack` or `RequireDualStack` (the API server \
                     refuses them with SingleStack, the default)",
                );
                return None;
            }
        }
        Some(IpFamilies { policy, families })
    }

    pub(super) fn exposure(
        &mut self,
        at: &Location,
        e: &RawExpose,
        object: &ObjectRef,
        headless: bool,
        ports: &mut [ServicePortSpec],
    ) -> Option<Exposure> {
        let mut exposure = Exposure {
            service_type: self.choice(
                &e.service_type,
                ServiceType::ClusterIP,
                "type",
                "ClusterIP, NodePort or LoadBalancer",
            )?,
            internal_traffic_policy: self.choice(
                &e.internal_traffic_policy,
                TrafficPolicy::Cluster,
                "internalTrafficPolicy",
                "Cluster or Local",
            )?,
            ..Exposure::default()
        };
        if headless && exposure.service_type != ServiceType::ClusterIP {
            self.err(at, "a headless service (`clusterIP: None`) cannot have node ports");
            return None;
        }
        exposure.ip_families = self.ip_families(e)?;
        if let Some(p) = &e.external_traffic_policy {
            if !exposure.service_type.has_node_ports() {
                self.err(&p.referenced, "externalTrafficPolicy applies to `type: NodePort` or `LoadBalancer` only");
                return None;
            }
            exposure.external_traffic_policy = self.choice(
                &e.external_traffic_policy,
                TrafficPolicy::Cluster,
                "externalTrafficPolicy",
                "Cluster or Local",
            )?;
        }
        if let Some(d) = &e.traffic_distribution {
            if d.value != "PreferClose" {
                self.err(&d.referenced, format!("trafficDistribution must be `PreferClose`, not `{}`", d.value));
                return None;
            }
            exposure.prefer_close = true;
        }
        let node_ports: Vec<Option<&Spanned<u16>>> = match (&e.node_port, &e.ports) {
            (Some(p), _) if e.ports.is_some() => {
                self.err(&p.referenced, "with `ports`, give `nodePort` inside each entry");
                return None;
            }
            (one, None) => vec![one.as_ref()],
            (_, Some(list)) => list.iter().map(|p| p.node_port.as_ref()).collect(),
        };
        for (port, asked) in ports.iter_mut().zip(node_ports) {
            let Some(asked) = asked else { continue };
            if !exposure.service_type.has_node_ports() {
                self.err(&asked.referenced, "nodePort needs `type: NodePort` or `LoadBalancer`");
                return None;
            }
            self.node_port_free(asked, object)?;
            port.node_port = Some(asked.value);
        }
        if let Some(hc) = &e.health_check_node_port {
            if !exposure.has_health_check() {
                self.err(
                    &hc.referenced,
                    "healthCheckNodePort needs `type: LoadBalancer` and `externalTrafficPolicy: Local`",
                );
                return None;
            }
            self.node_port_free(hc, object)?;
            exposure.health_check_node_port = Some(hc.value);
        }
        Some(exposure)
    }

    /// A node port asked for explicitly: in range and not taken by another live service of the scenario.
    fn node_port_free(&mut self, port: &Spanned<u16>, service: &ObjectRef) -> Option<()> {
        if !NODE_PORT_RANGE.contains(&port.value) {
            self.err(
                &port.referenced,
                format!("node port {} is outside {}-{}", port.value, NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end()),
            );
            return None;
        }
        if self.node_ports.insert(port.value, service.clone()).is_some() {
            self.err(&port.referenced, format!("node port {} is already taken by another service", port.value));
            return None;
        }
        Some(())
    }

    pub(super) fn expect_health_check(&mut self, e: &RawExpectHealthCheck) -> Option<Assertion> {
        let from = self.client(&e.from, false)?;
        let ns = self.namespace(&e.namespace)?;
        let service = self.service(&ns, &e.service)?;
        let node = self.node_index(&e.node.referenced, e.node.value)?;
        if !self.exposures.get(&service).is_some_and(Exposure::has_health_check) {
            self.err(
                &e.service.referenced,
                format!("service `{service}` has no health check node port: it needs `type: LoadBalancer` and `externalTrafficPolicy: Local`"),
            );
            return None;
        }
        if e.status.value != 200 && e.status.value != 503 {
            self.err(&e.status.referenced, "status must be 200 (local endpoints) or 503 (none)");
            return None;
        }
        let timeout = self.timeout(&e.timeout);
        Some(Assertion {
            timeout,
            check: Check::HealthCheck {
                from,
                service,
                node,
                status: e.status.value,
                local_endpoints: e.local_endpoints,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::{Check, Client, StepKind, Via, parse};

    const HEAD: &str = "name: t\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: solo, replicas: 1}\n";

    fn errors(steps: &str) -> String {
        match parse(Path::new("t.yaml"), &format!("{HEAD}{steps}")) {
            Ok(_) => panic!("accepted:\n{steps}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn node_aware_steps_are_checked_with_their_place() {
        let e = errors("  - expose: {namespace: test, deployment: solo, port: 80, internalTrafficPolicy: Nearby}\n");
        assert!(e.contains("t.yaml:6:") && e.contains("unknown internalTrafficPolicy `Nearby`"), "{e}");
        let e = errors("  - expose: {namespace: test, deployment: solo, port: 80, type: NodePort, nodePort: 80}\n");
        assert!(e.contains("node port 80 is outside 30000-32767"), "{e}");
        let e = errors("  - expose: {namespace: test, deployment: solo, port: 80, nodePort: 30080}\n");
        assert!(e.contains("nodePort needs `type: NodePort` or `LoadBalancer`"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  - expectConnect: {from: test, namespace: test, service: solo, port: 80, via: {node: 1}, result: connected}\n",
        );
        assert!(e.contains("has no node ports"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  - expectHttp: {from: {pod: {deployment: solo, index: 0}, namespace: test}, url: http://solo/hostname}\n",
        );
        assert!(e.contains("needs `via: clusterIP`"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  - expectHttp: {from: {pod: {deployment: solo, index: 0}, namespace: test}, url: http://solo/clientip, via: clusterIP, answeredBy: {podsOf: solo}}\n",
        );
        assert!(e.contains("only for the path `/hostname`"), "{e}");
        let e =
            errors("  - expectHealthCheck: {from: {node: 0}, namespace: test, service: solo, node: 0, status: 200}\n");
        assert!(e.contains("does not exist"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80, type: NodePort}\n  - expectHealthCheck: {from: {node: 0}, namespace: test, service: solo, node: 0, status: 200}\n",
        );
        assert!(e.contains("has no health check node port"), "{e}");
        let e = errors(
            "  - expectConnect: {from: {node: 16}, namespace: test, service: solo, port: 80, result: refused}\n",
        );
        assert!(e.contains("node 16: nodes are numbered 0-15"), "{e}");
    }

    #[test]
    fn a_deleted_services_node_port_can_be_asked_for_again() {
        let again = "  - expose: {namespace: test, deployment: solo, port: 80, type: NodePort, nodePort: 30917}\n";
        let text = format!("{HEAD}{again}  - deleteService: {{namespace: test, name: solo}}\n{again}");
        parse(Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let e = errors(&format!(
            "{again}  - expose: {{namespace: test, deployment: solo, name: other, port: 80, type: NodePort, nodePort: 30917}}\n"
        ));
        assert!(e.contains("node port 30917 is already taken"), "{e}");
    }

    #[test]
    fn node_clients_name_pods_in_the_dialled_services_namespace() {
        let text = format!(
            "{HEAD}  - expose: {{namespace: test, deployment: solo, port: 80, type: NodePort}}\n  - expectHttp: {{from: {{node: 1}}, url: http://solo.test/hostname, via: {{node: 0}}, answeredBy: {{readyPodsOf: solo, onNode: 0}}}}\n"
        );
        let plan = parse(Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let StepKind::Assert(a) = &plan.steps.last().unwrap().kind else { panic!() };
        let Check::Http { from, via, answered_by, .. } = &a.check else { panic!() };
        assert_eq!(*from, Client::Node { node: 1 });
        assert!(matches!(via, Via::NodePort { node: 0, service } if service.namespace == "test"));
        assert!(format!("{answered_by:?}").contains("namespace: \"test\""));
    }

    #[test]
    fn ip_families_are_checked_as_the_api_server_checks_them() {
        let expose =
            |extra: &str| errors(&format!("  - expose: {{namespace: test, deployment: solo, port: 80, {extra}}}\n"));
        let e = expose("ipFamilyPolicy: DualStack");
        assert!(e.contains("t.yaml:6:") && e.contains("unknown ipFamilyPolicy `DualStack`"), "{e}");
        let e = expose("ipFamilies: [IPv4, IPv6]");
        assert!(e.contains("t.yaml:6:") && e.contains("two ipFamilies need `ipFamilyPolicy: PreferDualStack`"), "{e}");
        let e = expose("ipFamilyPolicy: SingleStack, ipFamilies: [IPv6, IPv4]");
        assert!(e.contains("two ipFamilies need"), "{e}");
        let e = expose("ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv6, IPv6]");
        assert!(e.contains("ipFamilies lists IPv6 twice"), "{e}");
        let e = expose("ipFamilies: [ipv6]");
        assert!(e.contains("unknown ipFamily `ipv6` (IPv4 or IPv6)"), "{e}");
        let e = expose("ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6, IPv4]");
        assert!(e.contains("at most two entries"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80, type: NodePort}\n  \
             - expectConnect: {from: test, namespace: test, service: solo, port: 80, via: {node: 0}, ipFamily: IPv6, result: connected}\n",
        );
        assert!(e.contains("t.yaml:7:") && e.contains("no `ipFamily: IPv6` with `via: {node}`"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  \
             - expectHttp: {from: test, url: http://solo/hostname, client: reqwest, ipFamily: IPv6}\n",
        );
        assert!(e.contains("t.yaml:7:") && e.contains("no `ipFamily: IPv6` with `client: reqwest`"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  \
             - expectHttp: {from: test, url: http://solo/clientip, sourceIP: node, ipFamily: IPv6}\n",
        );
        assert!(e.contains("not with `ipFamily: IPv6`"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  \
             - expectService: {namespace: test, name: solo, clusterIP: allocated, ipFamilies: [IPv4, IPv4]}\n",
        );
        assert!(e.contains("t.yaml:7:") && e.contains("ipFamilies lists IPv4 twice"), "{e}");
        let e = errors("  - expectDns: {from: test, name: solo, ipFamily: IPv6}\n");
        assert!(e.contains("with `name`, give `type: AAAA`"), "{e}");
        let e = errors(
            "  - expose: {namespace: test, deployment: solo, port: 80}\n  \
             - expectEndpoints: {namespace: test, service: solo, addressType: FQDN, ready: []}\n",
        );
        assert!(e.contains("unknown addressType `FQDN`"), "{e}");
    }
}
