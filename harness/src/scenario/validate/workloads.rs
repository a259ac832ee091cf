//! Namespaces, workloads (Deployments, StatefulSets) and Services: names, ports, selectors, uniqueness.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use serde_saphyr::{Location, Spanned};

use super::{
    super::{file::*, names, plan::*},
    DeploymentInfo, ServiceKind, Validator,
};

impl Validator {
    /// `createNamespace`: a DNS-1123 label, not created before; a literal one must not look like a generated or a
    /// system namespace.
    pub(super) fn create_namespace(&mut self, raw: &Spanned<RawNamespace>) -> Option<StepKind> {
        let (ns, literal) = match &raw.value {
            RawNamespace::Name(name) => {
                (SpannedStr { value: name.clone(), referenced: raw.referenced, defined: raw.defined }, false)
            }
            RawNamespace::Spec { name, literal } => (name.clone(), *literal),
        };
        if !self.label("namespace", &ns, false) {
            return None;
        }
        if literal && (ns.value.starts_with("svcb-") || ns.value.starts_with("kube-")) {
            self.err(
                &ns.referenced,
                format!(
                    "literal namespace `{}`: `svcb-` is the prefix of generated namespaces and `kube-` is reserved",
                    ns.value
                ),
            );
            return None;
        }
        if super::CLUSTER_NAMESPACES.contains(&ns.value.as_str()) {
            self.err(&ns.referenced, format!("namespace `{}` exists on every cluster from the start", ns.value));
            return None;
        }
        if !self.namespaces.insert(ns.value.clone()) {
            self.err(&ns.referenced, format!("namespace `{}` already exists", ns.value));
            return None;
        }
        Some(if literal {
            StepKind::LiteralNamespace { name: ns.value }
        } else {
            StepKind::Action(Action::CreateNamespace { name: ns.value })
        })
    }

    pub(super) fn workload(
        &mut self,
        namespace: &SpannedStr,
        name: &SpannedStr,
        replicas: &Option<Spanned<u32>>,
    ) -> Option<(ObjectRef, u32)> {
        let ns = self.own_namespace(namespace)?;
        if !self.label("workload name", name, false) {
            return None;
        }
        let object = ObjectRef { namespace: ns, name: name.value.clone() };
        if self.deployments.contains_key(&object) {
            self.err(&name.referenced, format!("workload `{object}` already exists"));
            return None;
        }
        let count = replicas.as_ref().map_or(1, |r| r.value);
        if count > 1000 {
            self.err(&replicas.as_ref()?.referenced, "replicas must be at most 1000");
            return None;
        }
        Some((object, count))
    }

    pub(super) fn create_deployment(&mut self, d: &RawDeployment) -> Option<Action> {
        let (object, replicas) = self.workload(&d.namespace, &d.name, &d.replicas)?;
        let ports = self.container_ports(&d.ports)?;
        let mut labels = d.labels.clone().unwrap_or_default();
        labels.insert("app".into(), object.name.clone());
        for (k, v) in &labels {
            if k.is_empty() || k.len() > 63 || v.len() > 63 {
                self.err(&d.name.referenced, format!("label `{k}={v}`: keys 1-63 characters, values at most 63"));
                return None;
            }
        }
        for field in [&d.hostname, &d.subdomain].into_iter().flatten() {
            if !self.label("hostname/subdomain", field, false) {
                return None;
            }
        }
        let node = match &d.node {
            Some(n) => Some(self.node_index(&n.referenced, n.value)?),
            None => None,
        };
        let grace = d.termination_grace_period_seconds.unwrap_or(0);
        if grace > 600 {
            self.err(&d.name.referenced, "terminationGracePeriodSeconds must be at most 600");
            return None;
        }
        self.deployments.insert(object.clone(), DeploymentInfo { ports: ports.clone(), replicas });
        Some(Action::CreateDeployment(DeploymentSpec {
            object,
            replicas,
            ports,
            labels,
            hostname: d.hostname.as_ref().map(|h| h.value.clone()),
            subdomain: d.subdomain.as_ref().map(|h| h.value.clone()),
            stateful: false,
            termination_grace: Duration::from_secs(u64::from(grace)),
            node,
        }))
    }

    pub(super) fn create_stateful_set(&mut self, d: &RawStatefulSet) -> Option<Action> {
        let (object, replicas) = self.workload(&d.namespace, &d.name, &d.replicas)?;
        let ports = self.container_ports(&d.ports)?;
        if !self.label("serviceName", &d.service_name, true) {
            return None;
        }
        self.deployments.insert(object.clone(), DeploymentInfo { ports: ports.clone(), replicas });
        Some(Action::CreateDeployment(DeploymentSpec {
            labels: [("app".to_owned(), object.name.clone())].into(),
            object,
            replicas,
            ports,
            hostname: None,
            subdomain: Some(d.service_name.value.clone()),
            stateful: true,
            termination_grace: Duration::ZERO,
            node: None,
        }))
    }

    pub(super) fn container_ports(&mut self, raw: &Option<Vec<RawContainerPort>>) -> Option<Vec<ContainerPort>> {
        let mut ports = Vec::new();
        for p in raw.iter().flatten() {
            if p.container_port.value == 0 {
                self.err(&p.container_port.referenced, "containerPort must be 1-65535");
                return None;
            }
            if let Some(n) = &p.name
                && let Err(e) = names::port_name(&n.value)
            {
                self.err(&n.referenced, e);
                return None;
            }
            ports.push(ContainerPort { name: p.name.as_ref().map(|n| n.value.clone()), port: p.container_port.value });
        }
        if ports.is_empty() {
            ports.push(ContainerPort { name: None, port: 80 });
        }
        Some(ports)
    }

    pub(super) fn target_port(
        &mut self,
        port: u16,
        t: &Option<Spanned<RawTargetPort>>,
        pod_ports: &[ContainerPort],
        check_names: bool,
    ) -> Option<TargetPort> {
        Some(match t {
            None => TargetPort::Number(port),
            Some(Spanned { value: RawTargetPort::Number(0), referenced, .. }) => {
                self.err(referenced, "targetPort must be 1-65535");
                return None;
            }
            Some(Spanned { value: RawTargetPort::Number(n), .. }) => TargetPort::Number(*n),
            Some(Spanned { value: RawTargetPort::Name(n), referenced, .. }) => {
                if let Err(e) = names::port_name(n) {
                    self.err(referenced, format!("targetPort: {e}"));
                    return None;
                }
                if check_names && !pod_ports.iter().any(|p| p.name.as_deref() == Some(n)) {
                    self.err(referenced, format!("targetPort `{n}` names no container port of the deployment"));
                    return None;
                }
                TargetPort::Name(n.clone())
            }
        })
    }

    /// A port's `protocol`: `TCP` (the default) or `UDP`.
    pub(super) fn protocol(&mut self, protocol: &Option<SpannedStr>) -> Option<Protocol> {
        match protocol.as_ref().map(|s| (s.value.as_str(), s.referenced)) {
            None | Some(("TCP", _)) => Some(Protocol::Tcp),
            Some(("UDP", _)) => Some(Protocol::Udp),
            Some((other, at)) => {
                self.err(&at, format!("protocol must be TCP or UDP, not `{other}`"));
                None
            }
        }
    }

    pub(super) fn expose(&mut self, at: &Location, e: &RawExpose) -> Option<Action> {
        let ns = self.own_namespace(&e.namespace)?;
        let deployment = match &e.deployment {
            Some(d) => Some(self.deployment(&ns, d)?),
            None => None,
        };
        let selector = match (&e.selector, &deployment) {
            // `selector: {}`: a selectorless Service, whose EndpointSlices `createEndpointSlice` writes.
            (Some(sel), Some(_)) if sel.value.is_empty() => {
                self.err(&sel.referenced, "a selectorless service (`selector: {}`) selects no deployment");
                return None;
            }
            (Some(sel), _) => sel.value.clone(),
            (None, Some(d)) => BTreeMap::from([("app".to_owned(), d.name.clone())]),
            (None, None) => {
                self.err(at, "expose needs `deployment` or `selector`");
                return None;
            }
        };
        let Some(name) = e.name.as_ref().or(e.deployment.as_ref()) else {
            self.err(at, "expose with a `selector` needs a service `name`");
            return None;
        };
        if !self.label("service name", name, true) {
            return None;
        }
        let object = ObjectRef { namespace: ns, name: name.value.clone() };
        if self.services.contains_key(&object) {
            self.err(&name.referenced, format!("service `{object}` already exists"));
            return None;
        }
        let session_affinity = match e.session_affinity.as_ref().map(|s| (s.value.as_str(), s.referenced)) {
            None | Some(("None", _)) => None,
            Some(("ClientIP", _)) => {
                let secs = match &e.session_affinity_timeout_seconds {
                    Some(t) if t.value == 0 || t.value > 86_400 => {
                        self.err(&t.referenced, "sessionAffinityTimeoutSeconds must be 1-86400");
                        return None;
                    }
                    Some(t) => t.value,
                    None => 10_800,
                };
                Some(Duration::from_secs(u64::from(secs)))
            }
            Some((other, loc)) => {
                self.err(&loc, format!("sessionAffinity must be `None` or `ClientIP`, not `{other}`"));
                return None;
            }
        };
        // Named target ports must exist on the selected workload (when there is one to check against).
        let pod_ports = match &deployment {
            Some(d) => self.deployments[d].ports.clone(),
            None => Vec::new(),
        };
        let check_names = deployment.is_some();
        let mut ports = Vec::new();
        match (&e.port, &e.ports) {
            (Some(port), None) => {
                if port.value == 0 {
                    self.err(&port.referenced, "port must be 1-65535");
                    return None;
                }
                let target_port = self.target_port(port.value, &e.target_port, &pod_ports, check_names)?;
                let pname = match &e.port_name {
                    Some(n) => {
                        if let Err(err) = names::port_name(&n.value) {
                            self.err(&n.referenced, err);
                            return None;
                        }
                        Some(n.value.clone())
                    }
                    None => None,
                };
                ports.push(ServicePortSpec {
                    name: pname,
                    port: port.value,
                    target_port,
                    protocol: Protocol::Tcp,
                    node_port: None,
                });
            }
            (None, Some(list)) if !list.is_empty() => {
                if e.target_port.is_some() || e.port_name.is_some() {
                    self.err(at, "`targetPort`/`portName` belong inside each entry of `ports`");
                    return None;
                }
                let mut seen = HashSet::new();
                let mut seen_ports = HashSet::new();
                for p in list {
                    let pname = match &p.name {
                        Some(n) => {
                            if let Err(err) = names::port_name(&n.value) {
                                self.err(&n.referenced, err);
                                return None;
                            }
                            if !seen.insert(n.value.clone()) {
                                self.err(&n.referenced, format!("duplicate port name `{}`", n.value));
                                return None;
                            }
                            Some(n.value.clone())
                        }
                        None if list.len() > 1 => {
                            self.err(&p.port.referenced, "every port needs a `name` when a service has several ports");
                            return None;
                        }
                        None => None,
                    };
                    let protocol = self.protocol(&p.protocol)?;
                    if p.port.value == 0 {
                        self.err(&p.port.referenced, "port must be 1-65535");
                        return None;
                    }
                    // The API server refuses two ports with the same number and protocol (the proxy could not
                    // tell them apart).
                    if !seen_ports.insert((p.port.value, protocol)) {
                        self.err(
                            &p.port.referenced,
                            format!(
                                "duplicate port {}/{}: a service has each port number once per protocol",
                                p.port.value,
                                if protocol == Protocol::Tcp { "TCP" } else { "UDP" }
                            ),
                        );
                        return None;
                    }
                    let target_port = self.target_port(p.port.value, &p.target_port, &pod_ports, check_names)?;
                    ports.push(ServicePortSpec {
                        name: pname,
                        port: p.port.value,
                        target_port,
                        protocol,
                        node_port: None,
                    });
                }
            }
            // A headless Service may have no ports: DNS still names its endpoints (the API allows it).
            (None, None) if e.cluster_ip.as_ref().is_some_and(|c| c.value == "None") => {}
            _ => {
                self.err(at, "expose needs exactly one of `port` or a non-empty `ports` list (only a headless service may have none)");
                return None;
            }
        }
        let headless = match &e.cluster_ip {
            None => false,
            Some(s) if s.value == "None" => true,
            Some(s) => {
                self.err(&s.referenced, format!("clusterIP may only be `None` (headless), not `{}`", s.value));
                return None;
            }
        };
        let exposure = self.exposure(at, e, &object, headless, &mut ports)?;
        self.exposures.insert(object.clone(), exposure.clone());
        if !headless {
            self.listeners.insert(object.clone(), ports.iter().filter(|p| p.protocol == Protocol::Tcp).count() as u32);
            let udp = ports.iter().filter(|p| p.protocol == Protocol::Udp).map(|p| p.port).collect();
            self.udp_ports.insert(object.clone(), udp);
        }
        if selector.is_empty() {
            self.selectorless.insert(object.clone());
        }
        self.services.insert(object.clone(), if headless { ServiceKind::Headless } else { ServiceKind::ClusterIp });
        Some(Action::CreateService(ServiceSpec {
            object,
            selector,
            ports,
            headless,
            publish_not_ready: e.publish_not_ready_addresses,
            session_affinity,
            external_name: None,
            exposure,
        }))
    }
}
