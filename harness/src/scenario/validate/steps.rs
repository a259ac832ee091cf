//! The step dispatcher: each raw step to its plan step, with the simple actions and assertions checked inline.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::{
    super::{IpFamily, file::*, names, plan::*},
    ServiceKind, Validator,
};

/// The longest `wait` a scenario may state: longer ones belong in a benchmark, not a conformance run.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl Validator {
    pub(super) fn step(&mut self, step: &Spanned<RawStep>) -> Option<StepKind> {
        let at = step.referenced;
        Some(match &step.value {
            RawStep::CreateNamespace(ns) => return self.create_namespace(ns),
            RawStep::CreateDeployment(d) => StepKind::Action(self.create_deployment(d)?),
            RawStep::CreateStatefulSet(d) => StepKind::Action(self.create_stateful_set(d)?),
            RawStep::CreateExternalName(e) => {
                let ns = self.own_namespace(&e.namespace)?;
                if !self.label("service name", &e.name, true) {
                    return None;
                }
                let object = ObjectRef { namespace: ns, name: e.name.value.clone() };
                if self.services.contains_key(&object) {
                    self.err(&e.name.referenced, format!("service `{object}` already exists"));
                    return None;
                }
                let target = e.external_name.value.trim_end_matches('.');
                if let Err(why) = names::dns_name(target) {
                    self.err(
                        &e.external_name.referenced,
                        format!("externalName `{}` is not a DNS name: {why}", e.external_name.value),
                    );
                    return None;
                }
                self.services.insert(object.clone(), ServiceKind::ExternalName);
                StepKind::Action(Action::CreateService(ServiceSpec {
                    object,
                    selector: BTreeMap::new(),
                    ports: Vec::new(),
                    headless: false,
                    publish_not_ready: false,
                    session_affinity: None,
                    external_name: Some(target.to_ascii_lowercase()),
                    exposure: Default::default(),
                }))
            }
            RawStep::Expose(e) => StepKind::Action(self.expose(&at, e)?),
            RawStep::Scale(s) => {
                let ns = self.namespace(&s.namespace)?;
                let deployment = self.deployment(&ns, &s.deployment)?;
                if s.replicas.value > 1000 {
                    self.err(&s.replicas.referenced, "replicas must be at most 1000");
                    return None;
                }
                self.deployments.get_mut(&deployment)?.replicas = s.replicas.value;
                StepKind::Action(Action::Scale { deployment, replicas: s.replicas.value })
            }
            RawStep::SetPodReady(p) => {
                let ns = self.namespace(&p.namespace)?;
                let deployment = self.deployment(&ns, &p.deployment)?;
                let replicas = self.deployments[&deployment].replicas;
                if p.index.value >= replicas {
                    self.err(
                        &p.index.referenced,
                        format!(
                            "pod index {} is out of range: `{deployment}` has {replicas} replicas here",
                            p.index.value
                        ),
                    );
                    return None;
                }
                StepKind::Action(Action::SetPodReady {
                    pod: PodRef { deployment, index: p.index.value },
                    ready: p.ready,
                })
            }
            RawStep::CreateEndpointSlice(e) => StepKind::Action(self.endpoint_slice(e)?),
            RawStep::Wait(w) => match humantime::parse_duration(&w.value) {
                Ok(duration) if (std::time::Duration::from_millis(1)..=MAX_WAIT).contains(&duration) => {
                    StepKind::Wait { duration }
                }
                Ok(_) => {
                    self.err(&w.referenced, format!("wait `{}` must be between 1ms and 10m", w.value));
                    return None;
                }
                Err(e) => {
                    self.err(&w.referenced, format!("wait `{}`: {e} (write e.g. `5s` or `500ms`)", w.value));
                    return None;
                }
            },
            RawStep::DeleteService(o) => {
                let ns = self.namespace(&o.namespace)?;
                let service = self.service(&ns, &o.name)?;
                self.services.remove(&service);
                self.selectorless.remove(&service);
                self.slice_counts.remove(&service);
                self.slice_names.retain(|_, owner| *owner != service);
                self.listeners.remove(&service);
                self.exposures.remove(&service);
                self.udp_ports.remove(&service);
                self.node_ports.retain(|_, holder| *holder != service);
                StepKind::Action(Action::DeleteService { service })
            }
            RawStep::DeleteDeployment(o) => {
                let ns = self.namespace(&o.namespace)?;
                let deployment = self.deployment(&ns, &o.name)?;
                self.deployments.remove(&deployment);
                StepKind::Action(Action::DeleteDeployment { deployment })
            }
            RawStep::ExpectService(e) => {
                let ns = self.namespace(&e.namespace)?;
                let service = self.service(&ns, &e.name)?;
                let has_cluster_ip = match e.cluster_ip.value.as_str() {
                    "allocated" => true,
                    "None" => false,
                    other => {
                        self.err(
                            &e.cluster_ip.referenced,
                            format!("clusterIP must be `allocated` or `None`, not `{other}`"),
                        );
                        return None;
                    }
                };
                let ip_families = match &e.ip_families {
                    None => None,
                    Some(list) => {
                        let families = self.family_list(list)?;
                        if families.is_empty() {
                            self.err(&list.referenced, "ipFamilies lists one or two families");
                            return None;
                        }
                        Some(families)
                    }
                };
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion { timeout, check: Check::Service { service, has_cluster_ip, ip_families } })
            }
            RawStep::ExpectEndpoints(e) => {
                let ns = self.namespace(&e.namespace)?;
                let service = self.service(&ns, &e.service)?;
                let ready = self.optional_pod_set(&ns, &e.ready).ok()?;
                let not_ready = self.optional_pod_set(&ns, &e.not_ready).ok()?;
                let serving = self.optional_pod_set(&ns, &e.serving).ok()?;
                let terminating = self.optional_pod_set(&ns, &e.terminating).ok()?;
                if ready.is_none()
                    && not_ready.is_none()
                    && serving.is_none()
                    && terminating.is_none()
                    && e.ports.is_none()
                {
                    self.err(
                        &at,
                        "expectEndpoints needs at least one of `ready`, `notReady`, `serving`, `terminating`, `ports`",
                    );
                    return None;
                }
                let ports = e.ports.as_ref().map(|ps| ps.iter().map(|p| (p.name.clone(), p.port)).collect());
                let address_type = match &e.address_type {
                    None => None,
                    Some(_) => Some(self.choice(&e.address_type, IpFamily::IPv4, "addressType", "IPv4 or IPv6")?),
                };
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion {
                    timeout,
                    check: Check::Endpoints { service, ready, not_ready, serving, terminating, ports, address_type },
                })
            }
            RawStep::ExpectDns(e) => StepKind::Assert(self.expect_dns(&at, e)?),
            RawStep::ExpectResolvConf(e) => {
                let from = self.namespace(&e.from)?;
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion {
                    timeout,
                    check: Check::ResolvConf { from, search: e.search.clone(), ndots: e.ndots },
                })
            }
            RawStep::ExpectHttp(e) => StepKind::Assert(self.expect_http(e)?),
            RawStep::CreateServices(c) => {
                let ns = self.own_namespace(&c.namespace)?;
                let deployment = self.deployment(&ns, &c.deployment)?;
                if !self.label("service prefix", &c.prefix, true) {
                    return None;
                }
                if c.count.value == 0 || c.count.value > 20_000 {
                    self.err(&c.count.referenced, "count must be 1-20000");
                    return None;
                }
                if c.port.value == 0 {
                    self.err(&c.port.referenced, "port must be 1-65535");
                    return None;
                }
                // The longest generated name must still be a service name (a DNS-1035 label of at most 63).
                let longest = format!("{}-{}", c.prefix.value, c.count.value - 1);
                if longest.len() > names::MAX_LABEL {
                    self.err(
                        &c.prefix.referenced,
                        format!(
                            "service prefix `{}` makes names like `{longest}` ({} characters), over the {} of a \
                             DNS label",
                            c.prefix.value,
                            longest.len(),
                            names::MAX_LABEL
                        ),
                    );
                    return None;
                }

                for i in 0..c.count.value {
                    let object = ObjectRef { namespace: ns.clone(), name: format!("{}-{i}", c.prefix.value) };
                    self.listeners.insert(object.clone(), 1);
                    if self.services.insert(object.clone(), ServiceKind::ClusterIp).is_some() {
                        self.err(&c.prefix.referenced, format!("service `{object}` already exists"));
                        return None;
                    }
                }
                StepKind::Action(Action::CreateServices {
                    namespace: ns,
                    deployment: deployment.name,
                    prefix: c.prefix.value.clone(),
                    count: c.count.value,
                    port: c.port.value,
                })
            }
            RawStep::ExpectServices(e) => {
                let from = self.namespace(&e.from)?;
                let ns = self.namespace(&e.namespace)?;
                let last = ObjectRef {
                    namespace: ns.clone(),
                    name: format!("{}-{}", e.prefix.value, e.count.value.saturating_sub(1)),
                };
                if e.count.value == 0 || !self.services.contains_key(&last) {
                    self.err(
                        &e.count.referenced,
                        format!("services `{}-0 … {last}` are not all created", e.prefix.value),
                    );
                    return None;
                }
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion {
                    timeout,
                    check: Check::Services {
                        from,
                        namespace: ns,
                        prefix: e.prefix.value.clone(),
                        count: e.count.value,
                        ready_endpoints: e.ready_endpoints,
                    },
                })
            }
            RawStep::MeasureHttp(m) => StepKind::Assert(self.measure_http(m)?),
            RawStep::MeasureDns(m) => StepKind::Assert(self.measure_dns(&at, m)?),
            RawStep::Converge(c) => {
                let errors_before = self.errors.len();
                let Some(StepKind::Action(action)) = self.step(&c.action) else {
                    // Report the inner step's own error if it had one; otherwise it was not an action.
                    if self.errors.len() == errors_before {
                        self.err(
                            &c.action.referenced,
                            "converge needs an action step here (scale, setPodReady, expose, …)",
                        );
                    }
                    return None;
                };
                let ns = self.namespace(&c.namespace)?;
                let from = self.namespace(&c.from)?;
                let service = self.service(&ns, &c.service)?;
                let (deployment, replicas) = self.workload_ref(&ns, &c.deployment)?;
                let timeout = self.timeout(&c.timeout);
                StepKind::Converge(Converge { action, service, deployment, replicas, from, timeout })
            }
            RawStep::ExpectHealthCheck(e) => StepKind::Assert(self.expect_health_check(e)?),
            RawStep::ExpectUdp(e) => StepKind::Assert(self.expect_udp(e)?),
            RawStep::ExpectConnect(e) => {
                let from = self.client(&e.from, false)?;
                let ns = self.namespace(&e.namespace)?;
                let service = self.service(&ns, &e.service)?;
                if e.port.value == 0 {
                    self.err(&e.port.referenced, "port must be 1-65535");
                    return None;
                }
                let outcome = match e.result.value.as_str() {
                    "connected" => ConnectOutcome::Connected,
                    "refused" => ConnectOutcome::Refused,
                    "timeout" => ConnectOutcome::Timeout,
                    other => {
                        self.err(
                            &e.result.referenced,
                            format!("result must be connected, refused or timeout, not `{other}`"),
                        );
                        return None;
                    }
                };
                let node = self.node_via(&e.via, &e.port.referenced, &e.service.referenced, &service)?;
                let ip_family = self.ip_family(&e.ip_family)?;
                self.node_port_family(&e.port.referenced, node, ip_family)?;
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion {
                    timeout,
                    check: Check::Connect { from, service, port: e.port.value, node, outcome, ip_family },
                })
            }
        })
    }
}
