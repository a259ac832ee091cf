//! Raw file → [`Plan`]: names checked, references resolved against what earlier steps created, defaults filled in.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_saphyr::{Location, Spanned};

use super::{
    error::{ScenarioError, ScenarioErrors},
    file::*,
    names,
    plan::*,
};

/// Per-assertion timeout when the scenario does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses and validates scenario text read from `path`.
///
/// # Errors
/// Every problem found, each with `file:line:column`.
pub fn parse(path: &Path, text: &str) -> Result<Plan, ScenarioErrors> {
    let raw: ScenarioFile = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        ScenarioErrors(vec![ScenarioError { path: path.to_owned(), line, column, reason: yaml_reason(&e) }])
    })?;
    Validator::new(path).run(raw)
}

/// Reads, parses and validates one scenario file.
///
/// # Errors
/// An unreadable file, or every problem found in it.
pub fn load(path: &Path) -> Result<Plan, ScenarioErrors> {
    let text = read_source(path).map_err(|(line, column, reason)| {
        ScenarioErrors(vec![ScenarioError { path: path.to_owned(), line, column, reason }])
    })?;
    parse(path, &text)
}

/// A YAML source file as text; `Err((line, column, reason))` for an unreadable file (1:1) or the first byte that is
/// not UTF-8.
pub(crate) fn read_source(path: &Path) -> Result<String, (u64, u64, String)> {
    let bytes = std::fs::read(path).map_err(|e| (1, 1, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = valid.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        (line, column, "not UTF-8 text".into())
    })
}

/// The error's message on one line, without the location and snippet serde-saphyr renders.
pub(crate) fn yaml_reason(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr prefixes "error: line X column Y: "; keep only the reason.
    let reason = first.strip_prefix("error: ").unwrap_or(first);
    let reason = match reason.find(": ") {
        Some(i) if reason[..i].contains("line") => &reason[i + 2..],
        _ => reason,
    };
    // …and the trailing " at line X, column Y" some messages carry.
    let reason = match reason.rfind(" at line ") {
        Some(i) if reason[i..].contains("column") => &reason[..i],
        _ => reason,
    };
    reason.to_owned()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ServiceKind {
    ClusterIp,
    Headless,
    ExternalName,
}

#[derive(Clone)]
struct DeploymentInfo {
    ports: Vec<ContainerPort>,
    replicas: u32,
}

struct Validator {
    path: PathBuf,
    errors: Vec<ScenarioError>,
    namespaces: HashSet<String>,
    deployments: HashMap<ObjectRef, DeploymentInfo>,
    services: HashMap<ObjectRef, ServiceKind>,
    default_timeout: Duration,
}

impl Validator {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            errors: Vec::new(),
            namespaces: ["default".to_owned()].into(),
            deployments: HashMap::new(),
            services: HashMap::new(),
            default_timeout: DEFAULT_TIMEOUT,
        }
    }

    fn err(&mut self, at: &Location, reason: impl Into<String>) {
        self.errors.push(ScenarioError {
            path: self.path.clone(),
            line: at.line(),
            column: at.column(),
            reason: reason.into(),
        });
    }

    fn run(mut self, raw: ScenarioFile) -> Result<Plan, ScenarioErrors> {
        if let Err(e) = names::dns1035_label(&raw.name.value) {
            self.err(&raw.name.referenced, format!("scenario name: {e}"));
        }
        if let Some(t) = &raw.timeout
            && let Some(d) = self.duration(t)
        {
            self.default_timeout = d;
        }
        if raw.steps.is_empty() {
            self.err(&raw.name.referenced, "scenario has no steps");
        }
        let mut steps = Vec::new();
        for (i, step) in raw.steps.iter().enumerate() {
            let errors_before = self.errors.len();
            let kind = self.step(step);
            if let Some(kind) = kind {
                steps.push(Step { index: i + 1, line: step.referenced.line(), kind });
            } else if self.errors.len() == errors_before {
                self.err(&step.referenced, "invalid step");
            }
        }
        if self.errors.is_empty() {
            Ok(Plan { name: raw.name.value, description: raw.description, source: self.path, steps })
        } else {
            Err(ScenarioErrors(self.errors))
        }
    }

    fn duration(&mut self, s: &SpannedStr) -> Option<Duration> {
        match humantime::parse_duration(&s.value) {
            Ok(d) if d > Duration::ZERO && d <= Duration::from_secs(3600) => Some(d),
            Ok(_) => {
                self.err(&s.referenced, format!("timeout `{}` must be between 1ms and 1h", s.value));
                None
            }
            Err(e) => {
                self.err(&s.referenced, format!("timeout `{}`: {e} (write e.g. `10s` or `500ms`)", s.value));
                None
            }
        }
    }

    /// A value of a unit enum by its serde name (case-insensitive), `default` when absent.
    fn choice<T: serde::de::DeserializeOwned>(
        &mut self,
        s: &Option<SpannedStr>,
        default: T,
        what: &str,
        known: &str,
    ) -> Option<T> {
        let Some(s) = s else { return Some(default) };
        let parsed = enum_from_str::<T>(&s.value);
        if parsed.is_none() {
            self.err(&s.referenced, format!("unknown {what} `{}` ({known})", s.value));
        }
        parsed
    }

    fn timeout(&mut self, t: &Option<SpannedStr>) -> Duration {
        match t {
            Some(t) => self.duration(t).unwrap_or(self.default_timeout),
            None => self.default_timeout,
        }
    }

    /// A namespace that must exist at this point.
    fn namespace(&mut self, ns: &SpannedStr) -> Option<String> {
        if self.namespaces.contains(&ns.value) {
            Some(ns.value.clone())
        } else {
            self.err(&ns.referenced, format!("namespace `{}` is not created by an earlier step", ns.value));
            None
        }
    }

    /// `name` or `ns/name`, defaulting to `default_ns`.
    fn object_ref(default_ns: &str, s: &str) -> ObjectRef {
        match s.split_once('/') {
            Some((ns, name)) => ObjectRef { namespace: ns.into(), name: name.into() },
            None => ObjectRef { namespace: default_ns.into(), name: s.into() },
        }
    }

    fn deployment(&mut self, default_ns: &str, s: &SpannedStr) -> Option<ObjectRef> {
        let r = Self::object_ref(default_ns, &s.value);
        if self.deployments.contains_key(&r) {
            Some(r)
        } else {
            self.err(&s.referenced, format!("deployment `{r}` is not created by an earlier step"));
            None
        }
    }

    fn service(&mut self, default_ns: &str, s: &SpannedStr) -> Option<ObjectRef> {
        let r = Self::object_ref(default_ns, &s.value);
        if self.services.contains_key(&r) {
            Some(r)
        } else {
            self.err(&s.referenced, format!("service `{r}` does not exist at this step"));
            None
        }
    }

    fn label(&mut self, what: &str, s: &SpannedStr, dns1035: bool) -> bool {
        let res = if dns1035 { names::dns1035_label(&s.value) } else { names::dns1123_label(&s.value) };
        match res {
            Ok(()) => true,
            Err(e) => {
                self.err(&s.referenced, format!("{what}: {e}"));
                false
            }
        }
    }

    /// A workload that must exist here, with its replica count at this step.
    fn workload_ref(&mut self, default_ns: &str, s: &SpannedStr) -> Option<(ObjectRef, u32)> {
        let deployment = self.deployment(default_ns, s)?;
        let replicas = self.deployments[&deployment].replicas;
        Some((deployment, replicas))
    }

    fn pod_set(&mut self, default_ns: &str, at: &Location, set: &RawPodSet) -> Option<PodSet> {
        match (&set.ready_pods_of, &set.pods_of, &set.terminating_pods_of) {
            (Some(d), None, None) => {
                let (deployment, replicas) = self.workload_ref(default_ns, d)?;
                Some(PodSet::ReadyPodsOf { deployment, replicas })
            }
            (None, Some(d), None) => {
                let (deployment, replicas) = self.workload_ref(default_ns, d)?;
                Some(PodSet::PodsOf { deployment, replicas })
            }
            (None, None, Some(d)) => Some(PodSet::TerminatingPodsOf { deployment: self.deployment(default_ns, d)? }),
            _ => {
                self.err(at, "a pod set needs exactly one of `readyPodsOf`, `podsOf`, `terminatingPodsOf`");
                None
            }
        }
    }

    fn optional_pod_set(
        &mut self,
        default_ns: &str,
        s: &Option<Spanned<RawPodSetOrEmpty>>,
    ) -> Result<Option<PodSet>, ()> {
        match s {
            Some(r) => self.pod_set_or_empty(default_ns, r).map(Some).ok_or(()),
            None => Ok(None),
        }
    }

    fn pod_set_or_empty(&mut self, default_ns: &str, s: &Spanned<RawPodSetOrEmpty>) -> Option<PodSet> {
        match &s.value {
            RawPodSetOrEmpty::Set(set) => self.pod_set(default_ns, &s.referenced, set),
            RawPodSetOrEmpty::Empty(v) if v.is_empty() => Some(PodSet::Empty),
            RawPodSetOrEmpty::Empty(_) => {
                self.err(&s.referenced, "expected `[]` or a pod set such as `{readyPodsOf: nginx}`");
                None
            }
        }
    }

    fn step(&mut self, step: &Spanned<RawStep>) -> Option<StepKind> {
        let at = step.referenced;
        Some(match &step.value {
            RawStep::CreateNamespace(ns) => return self.create_namespace(ns),
            RawStep::CreateDeployment(d) => StepKind::Action(self.create_deployment(d)?),
            RawStep::CreateStatefulSet(d) => StepKind::Action(self.create_stateful_set(d)?),
            RawStep::CreateExternalName(e) => {
                let ns = self.namespace(&e.namespace)?;
                if !self.label("service name", &e.name, true) {
                    return None;
                }
                let object = ObjectRef { namespace: ns, name: e.name.value.clone() };
                if self.services.contains_key(&object) {
                    self.err(&e.name.referenced, format!("service `{object}` already exists"));
                    return None;
                }
                let target = e.external_name.value.trim_end_matches('.');
                if target.is_empty()
                    || target.split('.').any(|l| names::dns1123_label(&l.to_ascii_lowercase()).is_err())
                {
                    self.err(
                        &e.external_name.referenced,
                        format!("externalName `{}` is not a DNS name", e.external_name.value),
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
            RawStep::DeleteService(o) => {
                let ns = self.namespace(&o.namespace)?;
                let service = self.service(&ns, &o.name)?;
                self.services.remove(&service);
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
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion { timeout, check: Check::Service { service, has_cluster_ip } })
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
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion {
                    timeout,
                    check: Check::Endpoints { service, ready, not_ready, serving, terminating, ports },
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
                let ns = self.namespace(&c.namespace)?;
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
                for i in 0..c.count.value {
                    let object = ObjectRef { namespace: ns.clone(), name: format!("{}-{i}", c.prefix.value) };
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
            RawStep::ExpectConnect(e) => {
                let from = self.namespace(&e.from)?;
                let ns = self.namespace(&e.namespace)?;
                let service = self.service(&ns, &e.service)?;
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
                let timeout = self.timeout(&e.timeout);
                StepKind::Assert(Assertion {
                    timeout,
                    check: Check::Connect { from, service, port: e.port.value, outcome },
                })
            }
        })
    }

    /// `createNamespace`: a DNS-1123 label, not created before; a literal one must not look like a generated or a
    /// system namespace.
    fn create_namespace(&mut self, raw: &Spanned<RawNamespace>) -> Option<StepKind> {
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

    fn workload(
        &mut self,
        namespace: &SpannedStr,
        name: &SpannedStr,
        replicas: &Option<Spanned<u32>>,
    ) -> Option<(ObjectRef, u32)> {
        let ns = self.namespace(namespace)?;
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

    fn create_deployment(&mut self, d: &RawDeployment) -> Option<Action> {
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
        }))
    }

    fn create_stateful_set(&mut self, d: &RawStatefulSet) -> Option<Action> {
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
        }))
    }

    fn container_ports(&mut self, raw: &Option<Vec<RawContainerPort>>) -> Option<Vec<ContainerPort>> {
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

    fn target_port(
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

    fn expose(&mut self, at: &Location, e: &RawExpose) -> Option<Action> {
        let ns = self.namespace(&e.namespace)?;
        let deployment = match &e.deployment {
            Some(d) => Some(self.deployment(&ns, d)?),
            None => None,
        };
        let selector = match (&e.selector, &deployment) {
            (Some(sel), _) if sel.value.is_empty() => {
                self.err(&sel.referenced, "selector must not be empty");
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
                ports.push(ServicePortSpec { name: pname, port: port.value, target_port, protocol: Protocol::Tcp });
            }
            (None, Some(list)) if !list.is_empty() => {
                if e.target_port.is_some() || e.port_name.is_some() {
                    self.err(at, "`targetPort`/`portName` belong inside each entry of `ports`");
                    return None;
                }
                let mut seen = HashSet::new();
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
                    let protocol = match p.protocol.as_ref().map(|s| (s.value.as_str(), s.referenced)) {
                        None | Some(("TCP", _)) => Protocol::Tcp,
                        Some(("UDP", _)) => Protocol::Udp,
                        Some((other, loc)) => {
                            self.err(&loc, format!("protocol must be TCP or UDP, not `{other}`"));
                            return None;
                        }
                    };
                    let target_port = self.target_port(p.port.value, &p.target_port, &pod_ports, check_names)?;
                    ports.push(ServicePortSpec { name: pname, port: p.port.value, target_port, protocol });
                }
            }
            _ => {
                self.err(at, "expose needs exactly one of `port` or a non-empty `ports` list");
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
        self.services.insert(object.clone(), if headless { ServiceKind::Headless } else { ServiceKind::ClusterIp });
        Some(Action::CreateService(ServiceSpec {
            object,
            selector,
            ports,
            headless,
            publish_not_ready: e.publish_not_ready_addresses,
            session_affinity,
            external_name: None,
        }))
    }

    fn expect_dns(&mut self, at: &Location, e: &RawExpectDns) -> Option<Assertion> {
        let from = self.namespace(&e.from)?;
        let name = match (&e.name, &e.reverse_of) {
            (Some(n), None) => {
                let name = n.value.trim().to_owned();
                let bad_label = name
                    .split('.')
                    .enumerate()
                    .any(|(i, l)| l.len() > 63 || (l.is_empty() && i + 1 < name.split('.').count()));
                if name.is_empty() || name.len() > 253 || bad_label || name.chars().any(char::is_whitespace) {
                    self.err(&n.referenced, format!("`{}` is not a valid DNS name", n.value));
                    return None;
                }
                DnsQueryName::Name(name)
            }
            (None, Some(r)) => {
                let rec = self.record(&from, r, QueryType::A)?;
                if !matches!(
                    rec,
                    ExpectedRecord::ClusterIpOf { .. } | ExpectedRecord::PodIpOf { .. } | ExpectedRecord::Ip { .. }
                ) {
                    self.err(&r.referenced, "reverseOf needs `clusterIPOf`, `podIPOf` or `ip`");
                    return None;
                }
                DnsQueryName::ReverseOf(rec)
            }
            _ => {
                self.err(at, "expectDns needs exactly one of `name` or `reverseOf`");
                return None;
            }
        };
        let default_type = if matches!(name, DnsQueryName::ReverseOf(_)) { QueryType::Ptr } else { QueryType::A };
        let query_type =
            self.choice(&e.record_type, default_type, "record type", "A, AAAA, SRV, PTR, TXT, CNAME, SOA")?;
        let flavour =
            self.choice(&e.resolver, ResolverFlavour::Glibc, "resolver", "glibc, musl, dig, dig+search, busybox")?;
        let transport = self.choice(&e.transport, Transport::Udp, "transport", "udp, tcp")?;
        let mut rcodes = Vec::new();
        if let Some(r) = &e.rcode {
            let list = match &r.value {
                RawOneOrMany::One(s) => vec![s.clone()],
                RawOneOrMany::Many(v) => v.clone(),
            };
            for s in list {
                match enum_from_str::<Rcode>(&s) {
                    Some(c) => rcodes.push(c),
                    None => {
                        self.err(
                            &r.referenced,
                            format!("unknown rcode `{s}` (NOERROR, NODATA, NXDOMAIN, SERVFAIL, REFUSED)"),
                        );
                        return None;
                    }
                }
            }
        }
        let records = match &e.records {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for r in list {
                    out.push(self.record(&from, r, query_type)?);
                }
                Some(out)
            }
        };
        if records.is_none() && rcodes.is_empty() && e.candidates.is_none() {
            self.err(at, "expectDns needs at least one of `rcode`, `records`, `candidates`");
            return None;
        }
        if let Some(recs) = &records
            && !recs.is_empty()
            && !rcodes.is_empty()
            && !rcodes.contains(&Rcode::NoError)
        {
            self.err(at, "records are given but rcode does not allow NOERROR");
            return None;
        }
        let timeout = self.timeout(&e.timeout);
        Some(Assertion {
            timeout,
            check: Check::Dns {
                from,
                name,
                query_type,
                flavour,
                transport,
                rcodes,
                records,
                candidates: e.candidates.clone(),
                min_ttl: e.min_ttl,
                authority_soa: e.authority_soa,
            },
        })
    }

    fn record(&mut self, from: &str, r: &Spanned<RawRecord>, qtype: QueryType) -> Option<ExpectedRecord> {
        let v = &r.value;
        let set = [
            v.cluster_ip_of.is_some(),
            v.ready_pod_ips_of.is_some(),
            v.ip.is_some(),
            v.txt.is_some(),
            v.pod_ip_of.is_some(),
            v.srv.is_some(),
            v.ptr.is_some(),
            v.cname.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            self.err(
                &r.referenced,
                "a record needs exactly one of `clusterIPOf`, `readyPodIPsOf`, `podIPOf`, `ip`, `txt`, `srv`, `ptr`, `cname`",
            );
            return None;
        }
        let answers = match qtype {
            QueryType::A | QueryType::Aaaa => {
                v.cluster_ip_of.is_some() || v.ready_pod_ips_of.is_some() || v.ip.is_some() || v.pod_ip_of.is_some()
            }
            QueryType::Txt => v.txt.is_some(),
            QueryType::Srv => v.srv.is_some(),
            QueryType::Ptr => v.ptr.is_some(),
            QueryType::Cname | QueryType::Soa => false,
        };
        // A CNAME may answer any query: resolvers follow it.
        if !answers && v.cname.is_none() {
            self.err(&r.referenced, format!("this record cannot answer a {qtype:?} query"));
            return None;
        }
        let absolute = |n: &str| {
            let n = n.trim().to_ascii_lowercase();
            if n.ends_with('.') { n } else { format!("{n}.") }
        };
        Some(if let Some(s) = &v.cluster_ip_of {
            let service = self.service(from, s)?;
            if self.services.get(&service) != Some(&ServiceKind::ClusterIp) {
                self.err(&s.referenced, format!("service `{service}` has no ClusterIP (headless or ExternalName)"));
                return None;
            }
            ExpectedRecord::ClusterIpOf { service }
        } else if let Some(d) = &v.ready_pod_ips_of {
            let (deployment, replicas) = self.workload_ref(from, d)?;
            ExpectedRecord::ReadyPodIpsOf { deployment, replicas }
        } else if let Some(p) = &v.pod_ip_of {
            let deployment = self.deployment(from, &p.value.deployment)?;
            let replicas = self.deployments[&deployment].replicas;
            if p.value.index >= replicas {
                self.err(
                    &p.referenced,
                    format!("pod index {} is out of range: `{deployment}` has {replicas} replicas here", p.value.index),
                );
                return None;
            }
            ExpectedRecord::PodIpOf { pod: PodRef { deployment, index: p.value.index } }
        } else if let Some(ip) = &v.ip {
            match ip.value.parse::<IpAddr>() {
                Ok(ip) => ExpectedRecord::Ip { ip },
                Err(_) => {
                    self.err(&ip.referenced, format!("`{}` is not an IP address", ip.value));
                    return None;
                }
            }
        } else if let Some(srv) = &v.srv {
            ExpectedRecord::Srv { port: srv.port, target: absolute(&srv.target) }
        } else if let Some(ptr) = &v.ptr {
            ExpectedRecord::Ptr { target: absolute(ptr) }
        } else if let Some(cname) = &v.cname {
            ExpectedRecord::Cname { target: absolute(cname) }
        } else {
            ExpectedRecord::Txt { text: v.txt.clone()? }
        })
    }

    /// `http://host[:port]/path` → parts.
    fn url(&mut self, url: &SpannedStr) -> Option<(String, u16, String)> {
        let Some(rest) = url.value.strip_prefix("http://") else {
            self.err(&url.referenced, format!("url `{}` must start with http://", url.value));
            return None;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => {
                    self.err(&url.referenced, format!("url `{}` has a bad port `{p}`", url.value));
                    return None;
                }
            },
            None => (authority, 80),
        };
        if host.is_empty() {
            self.err(&url.referenced, format!("url `{}` has no host", url.value));
            return None;
        }
        Some((host.to_owned(), port, path.to_owned()))
    }

    fn measure_http(&mut self, m: &RawMeasureHttp) -> Option<Assertion> {
        let from = self.namespace(&m.from)?;
        let (host, port, path) = self.url(&m.url)?;
        let mode = match m.mode.as_ref().map(|s| (s.value.as_str(), s.referenced)) {
            None | Some(("new-connection", _)) => crate::probe::load::ConnectionMode::NewConnection,
            Some(("keep-alive", _)) => crate::probe::load::ConnectionMode::KeepAlive,
            Some((other, loc)) => {
                self.err(&loc, format!("mode must be `new-connection` or `keep-alive`, not `{other}`"));
                return None;
            }
        };
        let backends = match &m.backends {
            Some(s) => Some(self.pod_set(&from, &s.referenced, &s.value)?),
            None => None,
        };
        let fair_alpha = match &m.fair {
            Some(f) if !(f.alpha.value > 0.0 && f.alpha.value < 0.5) => {
                self.err(&f.alpha.referenced, "fair.alpha must be between 0 and 0.5 (e.g. 0.001)");
                return None;
            }
            Some(f) if backends.is_none() => {
                self.err(&f.alpha.referenced, "`fair` needs `backends`: the pods the spread is measured over");
                return None;
            }
            Some(f) if mode == crate::probe::load::ConnectionMode::KeepAlive => {
                self.err(
                    &f.alpha.referenced,
                    "keep-alive pins every request of a connection to one backend: measure fairness per new connection",
                );
                return None;
            }
            Some(f) => Some(f.alpha.value),
            None => None,
        };
        let rate = match m.rate {
            Some(r) if r < 0.0 || !r.is_finite() || r > 1_000_000.0 => {
                self.err(&m.url.referenced, "rate must be 0 (closed loop) to 1000000 requests/s");
                return None;
            }
            Some(0.0) => None,
            Some(r) => Some(r),
            None => Some(500.0),
        };
        let requests = m.requests.unwrap_or(1000);
        let connections = m.connections.unwrap_or(8);
        if requests == 0 || requests > 10_000_000 || connections == 0 || connections > 10_000 {
            self.err(&m.url.referenced, "requests must be 1-10000000 and connections 1-10000");
            return None;
        }
        let duration = match &m.duration {
            Some(d) => self.duration(d)?,
            None => Duration::from_secs(10),
        };
        let p99_below = match &m.p99_below {
            Some(d) => Some(self.duration(d)?),
            None => None,
        };
        let max_error_rate = m.max_error_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&max_error_rate) {
            self.err(&m.url.referenced, "maxErrorRate must be between 0 and 1");
            return None;
        }
        let timeout = self.timeout(&m.timeout).max(duration + Duration::from_secs(5));
        Some(Assertion {
            timeout,
            check: Check::MeasureHttp(MeasureHttp {
                from,
                host,
                port,
                path,
                mode,
                connections,
                rate,
                requests,
                duration,
                backends,
                fair_alpha,
                p99_below,
                max_error_rate,
            }),
        })
    }

    fn measure_dns(&mut self, at: &Location, m: &RawMeasureDns) -> Option<Assertion> {
        let from = self.namespace(&m.from)?;
        if m.names.is_empty() {
            self.err(at, "measureDns needs at least one name");
            return None;
        }
        let mut names = Vec::new();
        for n in &m.names {
            let name = n.value.trim();
            if name.is_empty() || name.len() > 253 || name.split('.').any(|l| l.len() > 63) {
                self.err(&n.referenced, format!("`{}` is not a valid DNS name", n.value));
                return None;
            }
            names.push(if name.ends_with('.') { name.to_owned() } else { format!("{name}.") });
        }
        let rate = match m.rate {
            Some(r) if r < 0.0 || !r.is_finite() || r > 10_000_000.0 => {
                self.err(at, "rate must be 0 (closed loop) to 10000000 queries/s");
                return None;
            }
            Some(0.0) => None,
            Some(r) => Some(r),
            None => Some(2000.0),
        };
        let rcode = match &m.rcode {
            None => Rcode::NoError,
            Some(r) => match enum_from_str::<Rcode>(&r.value) {
                Some(Rcode::NoData) | None => {
                    self.err(
                        &r.referenced,
                        format!("rcode must be NOERROR, NXDOMAIN, SERVFAIL or REFUSED, not `{}`", r.value),
                    );
                    return None;
                }
                Some(c) => c,
            },
        };
        let p99_below = match &m.p99_below {
            Some(d) => Some(self.duration(d)?),
            None => None,
        };
        let max_timeout_rate = m.max_timeout_rate.unwrap_or(0.0);
        let source_ports = m.source_ports.unwrap_or(128);
        if !(0.0..=1.0).contains(&max_timeout_rate) || source_ports == 0 || source_ports > 4096 {
            self.err(at, "maxTimeoutRate must be between 0 and 1, sourcePorts 1-4096");
            return None;
        }
        let timeout = self.timeout(&m.timeout).max(Duration::from_secs(15));
        Some(Assertion {
            timeout,
            check: Check::MeasureDns(MeasureDns {
                from,
                names,
                rate,
                queries: m.queries.unwrap_or(5000).clamp(1, 10_000_000),
                source_ports,
                rcode,
                p99_below,
                max_timeout_rate,
            }),
        })
    }

    fn expect_http(&mut self, e: &RawExpectHttp) -> Option<Assertion> {
        let from = self.namespace(&e.from)?;
        let (host, port, path) = self.url(&e.url)?;
        let answered_by = match &e.answered_by {
            Some(s) => Some(self.pod_set(&from, &s.referenced, &s.value)?),
            None => None,
        };
        let reaches_all = match &e.reaches_all {
            Some(s) => Some(self.pod_set(&from, &s.referenced, &s.value)?),
            None => None,
        };
        if let Some(n) = e.requests
            && (n == 0 || n > 100_000)
        {
            self.err(&e.url.referenced, "requests must be 1-100000");
            return None;
        }
        let fair_alpha = match &e.fair {
            Some(f) if !(f.alpha.value > 0.0 && f.alpha.value < 0.5) => {
                self.err(&f.alpha.referenced, "fair.alpha must be between 0 and 0.5 (e.g. 0.001)");
                return None;
            }
            Some(_) if reaches_all.is_none() => {
                self.err(&e.url.referenced, "`fair` needs `reachesAll`: the pods the spread is measured over");
                return None;
            }
            Some(f) => Some(f.alpha.value),
            None => None,
        };
        let timeout = self.timeout(&e.timeout);
        Some(Assertion {
            timeout,
            check: Check::Http {
                from,
                host,
                port,
                path,
                status: e.status.unwrap_or(200),
                answered_by,
                reaches_all,
                requests: e.requests,
                same_backend: e.same_backend,
                fair_alpha,
            },
        })
    }
}

/// Parses a unit enum from its serde name, case-insensitively.
fn enum_from_str<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    let try_parse = |s: &str| serde_json::from_value::<T>(serde_json::Value::String(s.to_owned())).ok();
    try_parse(s).or_else(|| try_parse(&s.to_uppercase())).or_else(|| try_parse(&s.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(yaml_steps: &str) -> Vec<StepKind> {
        let text = format!("name: t\ndescription: d\nsteps:\n{yaml_steps}");
        parse(Path::new("t.yaml"), &text).unwrap_or_else(|e| panic!("{e}")).steps.into_iter().map(|s| s.kind).collect()
    }

    #[test]
    fn namespaces_are_renamable_unless_literal() {
        let kinds = steps(
            "  - createNamespace: test\n  - createNamespace: {name: other}\n  \
             - createNamespace: {name: dns-version, literal: true}\n  - createNamespace: {name: plain, literal: false}\n",
        );
        assert!(matches!(&kinds[0], StepKind::Action(Action::CreateNamespace { name }) if name == "test"));
        assert!(matches!(&kinds[1], StepKind::Action(Action::CreateNamespace { name }) if name == "other"));
        assert!(matches!(&kinds[2], StepKind::LiteralNamespace { name } if name == "dns-version"));
        assert!(matches!(&kinds[3], StepKind::Action(Action::CreateNamespace { name }) if name == "plain"));
    }

    #[test]
    fn pod_sets_carry_the_replicas_of_their_step() {
        let kinds = steps(
            "  - createNamespace: test\n  - createDeployment: {namespace: test, name: web, replicas: 3}\n  \
             - expose: {namespace: test, deployment: web, port: 80}\n  - scale: {namespace: test, deployment: web, replicas: 1}\n  \
             - expectEndpoints: {namespace: test, service: web, ready: {readyPodsOf: web}, notReady: {podsOf: web}}\n",
        );
        let StepKind::Assert(Assertion { check: Check::Endpoints { ready, not_ready, .. }, .. }) = &kinds[4] else {
            panic!("not an endpoints check: {:?}", kinds[4]);
        };
        assert!(matches!(ready, Some(PodSet::ReadyPodsOf { replicas: 1, .. })), "{ready:?}");
        assert!(matches!(not_ready, Some(PodSet::PodsOf { replicas: 1, .. })), "{not_ready:?}");
    }
}
