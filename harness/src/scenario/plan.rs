//! The validated plan: every name checked, every reference resolved to something an earlier step created.
//!
//! Targets execute [`Action`]s; the runner evaluates [`Check`]s. Both are target-neutral: they say *which* object
//! ("the ClusterIP of service `nginx`"), never a concrete address.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, time::Duration};

use serde::Serialize;

/// A scenario ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Scenario name (DNS-1035 label).
    pub name: String,
    /// What the scenario proves.
    pub description: String,
    /// The file it came from.
    pub source: PathBuf,
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One step with where it was written.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based position in the scenario.
    pub index: usize,
    /// Line in the source file.
    pub line: u64,
    /// What to do or check.
    pub kind: StepKind,
}

/// An action changes the cluster; an assertion waits until a check holds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    /// Change the cluster.
    Action(Action),
    /// Create a namespace under exactly this name on every target (`createNamespace: {name, literal: true}`).
    LiteralNamespace {
        /// The name, used verbatim.
        name: String,
    },
    /// Poll until the check holds or the timeout runs out.
    Assert(Assertion),
    /// Apply an action, then measure how long endpoints, DNS and traffic take to reflect it.
    Converge(Converge),
}

/// A change and what to watch while it propagates.
#[derive(Debug, Clone, Serialize)]
pub struct Converge {
    /// The change.
    pub action: Action,
    /// The service watched.
    pub service: ObjectRef,
    /// The workload behind it.
    pub deployment: ObjectRef,
    /// The workload's replica count once the action is applied.
    pub replicas: u32,
    /// Namespace DNS and traffic are probed from.
    pub from: String,
    /// How long all three may take.
    #[serde(with = "crate::results::duration_ms")]
    pub timeout: Duration,
}

/// A namespaced object name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Changes to the cluster, as a user would make them with kubectl.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create a namespace.
    CreateNamespace {
        /// Namespace name.
        name: String,
    },
    /// Create a deployment of netexec pods labelled `app=<name>`.
    CreateDeployment(DeploymentSpec),
    /// Create a service.
    CreateService(ServiceSpec),
    /// Set a deployment's replicas.
    Scale {
        /// The deployment.
        deployment: ObjectRef,
        /// New replica count.
        replicas: u32,
    },
    /// Mark a pod ready or not ready (its readiness probe starts passing or failing).
    SetPodReady {
        /// The pod, by deployment and creation index.
        pod: PodRef,
        /// New readiness.
        ready: bool,
    },
    /// Delete a service.
    DeleteService {
        /// The service.
        service: ObjectRef,
    },
    /// Delete a deployment and its pods.
    DeleteDeployment {
        /// The deployment.
        deployment: ObjectRef,
    },
    /// Create services `<prefix>-0 … <prefix>-<count-1>`, each selecting `app=<deployment>` on `port`.
    CreateServices {
        /// Namespace.
        namespace: String,
        /// The workload every service selects.
        deployment: String,
        /// Name prefix.
        prefix: String,
        /// How many.
        count: u32,
        /// Service port (= target port).
        port: u16,
    },
}

/// A deployment to create.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentSpec {
    /// Namespace and name.
    pub object: ObjectRef,
    /// Replica count.
    pub replicas: u32,
    /// Container ports the pods serve HTTP (netexec) on.
    pub ports: Vec<ContainerPort>,
    /// Pod labels (always including `app=<name>`).
    pub labels: BTreeMap<String, String>,
    /// Pod `spec.hostname` (a StatefulSet sets each pod's own name).
    pub hostname: Option<String>,
    /// Pod `spec.subdomain`.
    pub subdomain: Option<String>,
    /// StatefulSet semantics: pods named `<name>-<ordinal>`, hostname = pod name, scale-down removes the highest.
    pub stateful: bool,
    /// How long a deleted pod stays terminating (still serving) before it is gone.
    #[serde(with = "crate::results::duration_ms")]
    pub termination_grace: Duration,
}

impl DeploymentSpec {
    /// `replicas` netexec pods on port 80 labelled `app=<name>` (benchmarks and tests build clusters with it).
    pub fn netexec(namespace: &str, name: &str, replicas: u32) -> Self {
        Self {
            object: ObjectRef { namespace: namespace.into(), name: name.into() },
            replicas,
            ports: vec![ContainerPort { name: None, port: 80 }],
            labels: [("app".to_owned(), name.to_owned())].into(),
            hostname: None,
            subdomain: None,
            stateful: false,
            termination_grace: Duration::ZERO,
        }
    }
}

impl ServiceSpec {
    /// A ClusterIP service selecting `app=<app>` on one unnamed TCP port (target port = port).
    pub fn cluster_ip(namespace: &str, name: &str, app: &str, port: u16) -> Self {
        Self {
            object: ObjectRef { namespace: namespace.into(), name: name.into() },
            selector: [("app".to_owned(), app.to_owned())].into(),
            ports: vec![ServicePortSpec {
                name: None,
                port,
                target_port: TargetPort::Number(port),
                protocol: Protocol::Tcp,
            }],
            headless: false,
            publish_not_ready: false,
            session_affinity: None,
            external_name: None,
        }
    }
}

impl Action {
    /// The services an [`Action::CreateServices`] stands for (empty for other actions).
    pub fn bulk_services(&self) -> Vec<ServiceSpec> {
        match self {
            Action::CreateServices { namespace, deployment, prefix, count, port } => (0..*count)
                .map(|i| ServiceSpec::cluster_ip(namespace, &format!("{prefix}-{i}"), deployment, *port))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A named or unnamed container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerPort {
    /// Optional port name (IANA_SVC_NAME).
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
}

/// A service to create.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    /// Namespace and name.
    pub object: ObjectRef,
    /// Label selector.
    pub selector: BTreeMap<String, String>,
    /// Ports.
    pub ports: Vec<ServicePortSpec>,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// `sessionAffinity: ClientIP` with this timeout.
    #[serde(with = "opt_duration_ms")]
    pub session_affinity: Option<Duration>,
    /// `type: ExternalName` with this name (no selector, no ports).
    pub external_name: Option<String>,
}

/// Serde helper for `Option<Duration>` as milliseconds.
mod opt_duration_ms {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
}

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePortSpec {
    /// Port name; required when there are several ports.
    pub name: Option<String>,
    /// The service port.
    pub port: u16,
    /// Where traffic goes on the pod.
    pub target_port: TargetPort,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// `targetPort`: a number, or the name of a container port resolved per pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lower-case label used in SRV names (`_tcp`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A pod named by its deployment and creation order (0 = oldest live pod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRef {
    /// The owning deployment.
    pub deployment: ObjectRef,
    /// Index among the deployment's pods ordered by creation.
    pub index: u32,
}

/// A check with its polling timeout.
#[derive(Debug, Clone, Serialize)]
pub struct Assertion {
    /// How long the check may take to become true.
    #[serde(with = "crate::results::duration_ms")]
    pub timeout: Duration,
    /// What must hold.
    pub check: Check,
}

/// Which pods a set means; resolved against the target each time the check runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "pods", rename_all = "snake_case")]
pub enum PodSet {
    /// No pods.
    Empty,
    /// The ready pods of a deployment.
    ReadyPodsOf {
        /// The deployment.
        deployment: ObjectRef,
        /// Its replica count at this step: the set is known once that many live pods exist.
        replicas: u32,
    },
    /// All live (not terminating) pods of a deployment.
    PodsOf {
        /// The deployment.
        deployment: ObjectRef,
        /// Its replica count at this step: the set is known once that many live pods exist.
        replicas: u32,
    },
    /// The terminating pods of a deployment.
    TerminatingPodsOf {
        /// The deployment.
        deployment: ObjectRef,
    },
}

/// An expected DNS record, resolved against the target when checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ExpectedRecord {
    /// An A/AAAA record with the service's ClusterIP.
    ClusterIpOf {
        /// The service.
        service: ObjectRef,
    },
    /// One A/AAAA per ready pod of the deployment.
    ReadyPodIpsOf {
        /// The deployment.
        deployment: ObjectRef,
        /// Its replica count at this step.
        replicas: u32,
    },
    /// A literal address.
    Ip {
        /// The address.
        ip: IpAddr,
    },
    /// A TXT record.
    Txt {
        /// Its text.
        text: String,
    },
    /// An A/AAAA record with one pod's IP.
    PodIpOf {
        /// The pod, by workload and creation index.
        pod: PodRef,
    },
    /// An SRV record (priority and weight not compared); a target starting `*.` matches any first label.
    Srv {
        /// Port.
        port: u16,
        /// Target name, absolute.
        target: String,
    },
    /// A PTR record.
    Ptr {
        /// Target name, absolute.
        target: String,
    },
    /// A CNAME record.
    Cname {
        /// Target name, absolute.
        target: String,
    },
}

/// The name a DNS check asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsQueryName {
    /// A name as a program passes it.
    Name(String),
    /// The `in-addr.arpa` name of an address, resolved against the target when checked.
    ReverseOf(ExpectedRecord),
}

/// What a resolver library does with search domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolverFlavour {
    /// glibc `getaddrinfo` (curl on Debian).
    Glibc,
    /// `dig`: the name exactly as given.
    Dig,
    /// `dig +search` / BIND `nslookup`.
    #[serde(rename = "dig+search")]
    DigSearch,
    /// musl libc (Alpine): stops at NODATA.
    Musl,
    /// BusyBox `nslookup` (≥ 1.29): search list only for dot-less names, ignores ndots.
    Busybox,
}

/// DNS response codes an assertion can name; `NoData` is NOERROR with an empty answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Rcode {
    /// NOERROR with at least one answer of the asked type.
    NoError,
    /// NOERROR with no answer of the asked type.
    NoData,
    /// Name does not exist.
    NxDomain,
    /// Server failure.
    ServFail,
    /// Query refused.
    Refused,
}

/// DNS transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP, retrying over TCP when truncated.
    Udp,
    /// TCP only.
    Tcp,
}

/// The record types scenarios can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QueryType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Service locator.
    Srv,
    /// Reverse pointer.
    Ptr,
    /// Text.
    Txt,
    /// Canonical name.
    Cname,
    /// Start of authority.
    Soa,
}

/// An HTTP load measurement.
#[derive(Debug, Clone, Serialize)]
pub struct MeasureHttp {
    /// Client namespace.
    pub from: String,
    /// Host (service name or IP).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path.
    pub path: String,
    /// Connection mode.
    pub mode: crate::probe::load::ConnectionMode,
    /// Connections / requests in flight.
    pub connections: u32,
    /// Open-loop rate; `None` = closed loop.
    pub rate: Option<f64>,
    /// Requests.
    pub requests: u64,
    /// Longest send phase.
    #[serde(with = "crate::results::duration_ms")]
    pub duration: Duration,
    /// Pods that must all answer, and no other.
    pub backends: Option<PodSet>,
    /// χ² α for fairness over `backends`.
    pub fair_alpha: Option<f64>,
    /// p99 bound.
    #[serde(with = "opt_duration_ms")]
    pub p99_below: Option<Duration>,
    /// Largest tolerated failure share.
    pub max_error_rate: f64,
}

/// A DNS load measurement.
#[derive(Debug, Clone, Serialize)]
pub struct MeasureDns {
    /// Client namespace.
    pub from: String,
    /// Absolute names.
    pub names: Vec<String>,
    /// Open-loop rate; `None` = closed loop.
    pub rate: Option<f64>,
    /// Queries.
    pub queries: u64,
    /// Longest send phase, wall time.
    #[serde(with = "crate::results::duration_ms")]
    pub duration: Duration,
    /// UDP source ports.
    pub source_ports: usize,
    /// The rcode every answer must carry.
    pub rcode: Rcode,
    /// p99 bound.
    #[serde(with = "opt_duration_ms")]
    pub p99_below: Option<Duration>,
    /// Largest tolerated timeout share.
    pub max_timeout_rate: f64,
}

/// Expected result of a TCP connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectOutcome {
    /// The three-way handshake completed.
    Connected,
    /// RST in answer to SYN (ECONNREFUSED).
    Refused,
    /// No answer before the probe's connect timeout.
    Timeout,
}

/// What an assertion checks.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Check {
    /// The service exists and has (or has not) a ClusterIP.
    Service {
        /// The service.
        service: ObjectRef,
        /// `true`: an allocated ClusterIP; `false`: headless.
        has_cluster_ip: bool,
    },
    /// The endpoint slices of a service.
    Endpoints {
        /// The service.
        service: ObjectRef,
        /// Exactly these pods are ready endpoints (when given).
        ready: Option<PodSet>,
        /// Exactly these pods are present but not ready (when given).
        not_ready: Option<PodSet>,
        /// Exactly these pods are serving (when given).
        serving: Option<PodSet>,
        /// Exactly these pods are terminating (when given).
        terminating: Option<PodSet>,
        /// Exactly these ports (when given).
        ports: Option<Vec<(Option<String>, u16)>>,
    },
    /// A DNS lookup from a pod in `from`.
    Dns {
        /// The querying pod's namespace.
        from: String,
        /// The name as given to the resolver.
        name: DnsQueryName,
        /// Record type asked.
        query_type: QueryType,
        /// Resolver algorithm.
        flavour: ResolverFlavour,
        /// Transport.
        transport: Transport,
        /// Acceptable final rcodes (empty: NOERROR if records are given, else anything).
        rcodes: Vec<Rcode>,
        /// Exact final record set (when given).
        records: Option<Vec<ExpectedRecord>>,
        /// Exact candidate list (when given).
        candidates: Option<Vec<String>>,
        /// Minimum TTL of answer records.
        min_ttl: Option<u32>,
        /// Negative answers must carry an SOA.
        authority_soa: bool,
    },
    /// The pod resolver configuration in a namespace.
    ResolvConf {
        /// The namespace.
        from: String,
        /// Exact search list.
        search: Vec<String>,
        /// `options ndots:`.
        ndots: u8,
    },
    /// HTTP GET from a pod in `from`.
    Http {
        /// The client's namespace.
        from: String,
        /// Host as written (a name through the resolver, or an IP).
        host: String,
        /// Port.
        port: u16,
        /// Path and query.
        path: String,
        /// Expected status.
        status: u16,
        /// The answering pod must be in this set.
        answered_by: Option<PodSet>,
        /// Each pod of this set must answer at least once over `requests` new connections.
        reaches_all: Option<PodSet>,
        /// New connections to make for `reaches_all` (None: derived from the set size).
        requests: Option<u32>,
        /// All requests must be answered by one pod.
        same_backend: bool,
        /// χ² significance level below which the spread over `reaches_all` is unfair.
        fair_alpha: Option<f64>,
    },
    /// Every service `<prefix>-i` has `ready_endpoints` ready endpoints, resolves to its ClusterIP, and accepts a
    /// connection.
    Services {
        /// Probe namespace.
        from: String,
        /// Services' namespace.
        namespace: String,
        /// Name prefix.
        prefix: String,
        /// How many.
        count: u32,
        /// Ready endpoints each.
        ready_endpoints: u32,
    },
    /// HTTP load with assertions on the outcome.
    MeasureHttp(MeasureHttp),
    /// DNS load with assertions on the outcome.
    MeasureDns(MeasureDns),
    /// TCP connect to a service's ClusterIP and port.
    Connect {
        /// The client's namespace.
        from: String,
        /// The service.
        service: ObjectRef,
        /// Service port.
        port: u16,
        /// What must happen.
        outcome: ConnectOutcome,
    },
}
