//! Raw file → [`Plan`]: names checked, references resolved against what earlier steps created, defaults filled in.
//!
//! This module holds the entry points and the [`Validator`]'s state and shared look-ups; the steps are checked by
//! family in the child modules: [`steps`] (dispatch and the simple actions/assertions), [`workloads`] (namespaces,
//! workloads, services), [`dns`] (DNS expectations and records), [`traffic`] (HTTP checks and measurements), and
//! [`source`] reads the file, and [`capacity`] keeps a scenario within what the machine can run.

pub mod capacity;
mod dns;
mod nodes;
mod slices;
pub(crate) mod source;
mod steps;
mod traffic;
mod udp;
mod workloads;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_saphyr::{Location, Spanned};

pub use source::MAX_SOURCE_BYTES;
pub(crate) use source::{read_source, yaml_options, yaml_reason};

use super::{
    error::{ScenarioError, ScenarioErrors},
    file::*,
    names,
    plan::*,
};

/// Per-assertion timeout when the scenario does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest timeout or duration a scenario may give.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// The longest timeout or duration a scenario may give.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Parses and validates scenario text read from `path`.
///
/// # Errors
/// Every problem found, each with `file:line:column`.
pub fn parse(path: &Path, text: &str) -> Result<Plan, ScenarioErrors> {
    let raw: ScenarioFile = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
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

/// Namespaces every cluster has from the start. Steps may look into them and run clients there, but create nothing
/// in them: a real cluster keeps what is made there, while a namespace a step created goes with the run.
pub const CLUSTER_NAMESPACES: [&str; 2] = ["default", "kube-system"];

struct Validator {
    path: PathBuf,
    errors: Vec<ScenarioError>,
    namespaces: HashSet<String>,
    deployments: HashMap<ObjectRef, DeploymentInfo>,
    services: HashMap<ObjectRef, ServiceKind>,
    default_timeout: Duration,
    /// Where to report a problem whose own span is unknown (serde keeps no spans inside untagged enums, so a
    /// reference inside `ready: {readyPodsOf: x}` arrives at 0:0): the innermost enclosing node with a location.
    fallback: Option<Location>,
    /// Listening sockets (ClusterIP service ports) per live service, for [`capacity`].
    listeners: HashMap<ObjectRef, u32>,
    /// A capacity limit was reported (once per file).
    capacity_reported: bool,
    /// How each live service is exposed (type, policies), for `via` and `expectHealthCheck`.
    exposures: HashMap<ObjectRef, super::nodes::Exposure>,
    /// Node ports the scenario asks for explicitly, and the live service holding each.
    node_ports: HashMap<u16, ObjectRef>,
    /// The UDP service ports of each live ClusterIP service, for `expectUdp`.
    udp_ports: HashMap<ObjectRef, Vec<u16>>,
    /// Live services without a selector (`selector: {}`): their slices are written by `createEndpointSlice`.
    selectorless: HashSet<ObjectRef>,
    /// Hand-written slices per service so far (for default names), and each live slice with its service (slices go
    /// with their service: the kube target makes the service their owner).
    slice_counts: HashMap<ObjectRef, u32>,
    slice_names: HashMap<ObjectRef, ObjectRef>,
}

impl Validator {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            errors: Vec::new(),
            namespaces: CLUSTER_NAMESPACES.iter().map(|&n| n.to_owned()).collect(),
            deployments: HashMap::new(),
            services: HashMap::new(),
            default_timeout: DEFAULT_TIMEOUT,
            fallback: None,
            listeners: HashMap::new(),
            capacity_reported: false,
            exposures: HashMap::new(),
            node_ports: HashMap::new(),
            udp_ports: HashMap::new(),
            selectorless: HashSet::new(),
            slice_counts: HashMap::new(),
            slice_names: HashMap::new(),
        }
    }

    fn err(&mut self, at: &Location, reason: impl Into<String>) {
        let at = match self.fallback {
            Some(fallback) if at.line() == 0 => fallback,
            _ => *at,
        };
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
            self.fallback = Some(step.referenced);
            let kind = self.step(step);
            if let Some(kind) = kind {
                self.check_capacity(&step.referenced);
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
        self.duration_of("timeout", s)
    }

    /// A duration field (`what` names it in messages) within the stated 1ms–1h.
    fn duration_of(&mut self, what: &str, s: &SpannedStr) -> Option<Duration> {
        match humantime::parse_duration(&s.value) {
            Ok(d) if (MIN_DURATION..=MAX_DURATION).contains(&d) => Some(d),
            Ok(_) => {
                self.err(&s.referenced, format!("{what} `{}` must be between 1ms and 1h", s.value));
                None
            }
            Err(e) => {
                self.err(&s.referenced, format!("{what} `{}`: {e} (write e.g. `10s` or `500ms`)", s.value));
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

    /// An optional `ipFamily` (`IPv4` or `IPv6`).
    fn ip_family(&mut self, s: &Option<SpannedStr>) -> Option<Option<super::IpFamily>> {
        match s {
            None => Some(None),
            Some(_) => self.choice(s, super::IpFamily::IPv4, "ipFamily", "IPv4 or IPv6").map(Some),
        }
    }

    /// An `ipFamilies` list: known families, each at most once.
    fn family_list(&mut self, list: &Spanned<Vec<SpannedStr>>) -> Option<Vec<super::IpFamily>> {
        if list.value.len() > 2 {
            self.err(&list.referenced, "ipFamilies has at most two entries (one per family)");
            return None;
        }
        let mut families = Vec::new();
        for f in &list.value {
            let family = self.ip_family(&Some(f.clone()))??;
            if families.contains(&family) {
                self.err(&f.referenced, format!("ipFamilies lists {family} twice"));
                return None;
            }
            families.push(family);
        }
        Some(families)
    }

    /// Refuses `ipFamily: IPv6` on a step dialling a node port (`node` given): nodes are dialled at their
    /// InternalIP, which is IPv4.
    fn node_port_family(&mut self, at: &Location, node: Option<u32>, family: Option<super::IpFamily>) -> Option<()> {
        if node.is_some() && family == Some(super::IpFamily::IPv6) {
            self.err(
                at,
                "node ports are dialled at the node's InternalIP, which is IPv4: no `ipFamily: IPv6` with `via: {node}`",
            );
            return None;
        }
        Some(())
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

    /// A namespace that an earlier step created, for a step that creates objects in it.
    fn own_namespace(&mut self, ns: &SpannedStr) -> Option<String> {
        if CLUSTER_NAMESPACES.contains(&ns.value.as_str()) {
            self.err(
                &ns.referenced,
                format!(
                    "namespace `{}` belongs to the cluster: objects go in a namespace a step created, which the run \
                     deletes (clients and lookups may still use `{}`)",
                    ns.value, ns.value
                ),
            );
            return None;
        }
        self.namespace(ns)
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
        let pods = self.pod_set_of_workload(default_ns, at, set)?;
        match set.on_node {
            Some(node) => Some(PodSet::OnNode { set: Box::new(pods), node: self.node_index(at, node)? }),
            None => Some(pods),
        }
    }

    fn pod_set_of_workload(&mut self, default_ns: &str, at: &Location, set: &RawPodSet) -> Option<PodSet> {
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
            RawPodSetOrEmpty::Set(set) => {
                let outer = self.fallback.replace(s.referenced);
                let set = self.pod_set(default_ns, &s.referenced, set);
                self.fallback = outer;
                set
            }
            RawPodSetOrEmpty::Empty(v) if v.is_empty() => Some(PodSet::Empty),
            RawPodSetOrEmpty::Empty(_) => {
                self.err(&s.referenced, "expected `[]` or a pod set such as `{readyPodsOf: nginx}`");
                None
            }
        }
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

    #[test]
    fn cluster_namespaces_exist_and_take_clients_but_no_objects() {
        let errors = |yaml_steps: &str| match parse(
            Path::new("t.yaml"),
            &format!("name: t\ndescription: d\nsteps:\n{yaml_steps}"),
        ) {
            Ok(_) => panic!("accepted:\n{yaml_steps}"),
            Err(e) => e.to_string(),
        };
        // Clients and lookups in kube-system and default need no createNamespace.
        let kinds = steps(
            "  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  \
             - expose: {namespace: test, deployment: web, port: 80}\n  \
             - expectDns: {from: kube-system, name: web.test, records: [{clusterIPOf: test/web}]}\n  \
             - expectHttp: {from: default, url: http://web.test/hostname}\n",
        );
        assert_eq!(kinds.len(), 5);
        for ns in CLUSTER_NAMESPACES {
            let e = errors(&format!("  - createNamespace: {ns}\n"));
            assert!(e.contains("t.yaml:4:22") && e.contains("exists on every cluster from the start"), "{e}");
            let e = errors(&format!("  - createDeployment: {{namespace: {ns}, name: web}}\n"));
            assert!(e.contains("t.yaml:4:") && e.contains(&format!("namespace `{ns}` belongs to the cluster")), "{e}");
            let e = errors(&format!(
                "  - createExternalName: {{namespace: {ns}, name: db, externalName: db.example.com}}\n"
            ));
            assert!(e.contains("belongs to the cluster"), "{e}");
        }
        let e = errors(
            "  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  \
             - createServices: {namespace: kube-system, deployment: web, prefix: s, count: 2, port: 80}\n",
        );
        assert!(e.contains("t.yaml:6:") && e.contains("belongs to the cluster"), "{e}");
    }
}
