//! What assertions check: the [`Check`] an assertion polls, and the expected records, loads and outcomes it names.

use std::{net::IpAddr, time::Duration};

use serde::Serialize;

use super::{
    nodes::{Client, SourceIp, Via},
    plan::{ObjectRef, PodRef, PodSet, opt_duration_ms},
};

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
    /// The `in-addr.arpa` or `ip6.arpa` name of the object's address of that family, resolved against the target
    /// when checked.
    ReverseOf(ExpectedRecord, crate::scenario::IpFamily),
}

/// What a resolver library does with search domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
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
    /// The `hickory-resolver` crate itself (what a Rust workload sees): it reports no candidates.
    Hickory,
}

/// DNS response codes an assertion can name; `NoData` is NOERROR with an empty answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP, retrying over TCP when truncated.
    Udp,
    /// TCP only.
    Tcp,
}

/// The record types scenarios can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema)]
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
    /// Resolve the host for this family (`AAAA` for IPv6); default IPv4.
    pub ip_family: Option<crate::scenario::IpFamily>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectOutcome {
    /// The three-way handshake completed.
    Connected,
    /// RST in answer to SYN (ECONNREFUSED).
    Refused,
    /// No answer before the probe's connect timeout.
    Timeout,
}

/// The HTTP client a probe sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HttpClient {
    /// A new connection per request (what `curl` does, and what balancing checks need).
    #[default]
    Plain,
    /// One pooled `reqwest::Client` per pod, kept across requests and steps, as a Rust service keeps it: requests
    /// reuse its keep-alive connections, so they stay on the backend a connection went to.
    Reqwest,
}

/// Expected result of a UDP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UdpOutcome {
    /// A reply came back.
    Answered,
    /// ICMP port unreachable (what REJECT sends for UDP; ECONNREFUSED on a connected socket).
    Refused,
    /// No reply before the probe's timeout.
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
        /// Exactly these `spec.ipFamilies`, in order (and, with a ClusterIP, one `clusterIPs` entry of each).
        ip_families: Option<Vec<crate::scenario::IpFamily>>,
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
        /// The slices of this `addressType` (default: the Service's primary family).
        address_type: Option<crate::scenario::IpFamily>,
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
        /// Exact address records of the final answer's additional section (when given).
        additional: Option<Vec<ExpectedRecord>>,
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
    /// HTTP GET from `from`.
    Http {
        /// The client.
        from: Client,
        /// Host as written (a name through the resolver, or an IP; a Service when `via` is not DNS).
        host: String,
        /// Port (the Service port when `via` is not DNS).
        port: u16,
        /// Path and query.
        path: String,
        /// How the Service port is reached.
        via: Via,
        /// Expected status.
        status: u16,
        /// The answering pod must be in this set.
        answered_by: Option<PodSet>,
        /// Each pod of this set must answer at least once over `requests` new connections, and no other.
        reaches_all: Option<PodSet>,
        /// Over `requests` new connections, only pods of this set answer.
        reaches_only: Option<PodSet>,
        /// New connections to make for `reaches_all`/`reaches_only` (None: derived from the set size).
        requests: Option<u32>,
        /// All requests must be answered by one pod.
        same_backend: bool,
        /// χ² significance level below which the spread over `reaches_all` is unfair.
        fair_alpha: Option<f64>,
        /// The source address the backend must see (from netexec's `/clientip`).
        source_ip: Option<SourceIp>,
        /// The HTTP client that sends the requests.
        client: HttpClient,
        /// `IPv6`: the host's AAAA, or the IPv6 ClusterIP; `IPv4`: its A or IPv4 ClusterIP (default: A, or the
        /// primary ClusterIP).
        ip_family: Option<crate::scenario::IpFamily>,
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
    /// TCP connect to a service's ClusterIP and port, or its nodePort on a node.
    Connect {
        /// The client.
        from: Client,
        /// The service.
        service: ObjectRef,
        /// Service port.
        port: u16,
        /// Dial this node's address and the port's nodePort instead of the ClusterIP.
        node: Option<u32>,
        /// What must happen.
        outcome: ConnectOutcome,
        /// The ClusterIP of this family (default: the Service's primary ClusterIP).
        ip_family: Option<crate::scenario::IpFamily>,
    },
    /// One UDP datagram to a service's ClusterIP and UDP port (or its nodePort on a node), and the reply.
    Udp {
        /// The client.
        from: Client,
        /// The service.
        service: ObjectRef,
        /// Service port (a UDP port of the service).
        port: u16,
        /// Send to this node's address and the port's nodePort instead of the ClusterIP.
        node: Option<u32>,
        /// The datagram: a netexec UDP command (`hostname`, `echo <text>`, `clientip`).
        send: String,
        /// Send on this kept flow: the same client socket (source port) as every earlier step naming it.
        flow: Option<String>,
        /// What must happen.
        outcome: UdpOutcome,
        /// For `hostname`: the answering pod is one of these.
        answered_by: Option<PodSet>,
        /// The reply must be exactly this.
        reply: Option<String>,
        /// The ClusterIP of this family (default: the Service's primary ClusterIP).
        ip_family: Option<crate::scenario::IpFamily>,
    },
    /// kube-proxy's health check for a `LoadBalancer` Service with `externalTrafficPolicy: Local`, on one node.
    HealthCheck {
        /// The client.
        from: Client,
        /// The service.
        service: ObjectRef,
        /// Node index.
        node: u32,
        /// 200 (local endpoints) or 503 (none).
        status: u16,
        /// The `localEndpoints` count the answer must report.
        local_endpoints: Option<u32>,
    },
}
