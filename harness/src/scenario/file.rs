//! The scenario file as written: serde types that mirror the YAML, with source spans kept for error messages.
//!
//! Nothing here is validated beyond shape; [`super::validate`] turns a [`ScenarioFile`] into a [`super::Plan`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use super::{
    raw_nodes::{RawClient, RawExpectHealthCheck, RawNodeVia, RawVia},
    raw_traffic::{RawExpectConnect, RawExpectHttp, RawExpectUdp, RawFair, RawMeasureDns, RawMeasureHttp},
};

/// A string with the place it was written.
pub type SpannedStr = Spanned<String>;

/// Top level of `scenarios/*.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioFile {
    /// Scenario name: a DNS-1035 label, unique in the suite.
    pub name: SpannedStr,
    /// One or two sentences saying what the scenario proves.
    pub description: String,
    /// Default per-assertion timeout (`"10s"`, `"500ms"`).
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
    /// Ordered actions and assertions.
    pub steps: Vec<Spanned<RawStep>>,
}

/// One step: exactly one of these keys.
// Parse-time only and short-lived: boxing variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum RawStep {
    /// `createNamespace: test`, or `createNamespace: {name: dns-version, literal: true}`.
    CreateNamespace(Spanned<RawNamespace>),
    /// Create a Deployment of netexec pods.
    CreateDeployment(RawDeployment),
    /// Create a StatefulSet: pods `<name>-0…`, each with hostname = pod name and subdomain = `serviceName`.
    CreateStatefulSet(RawStatefulSet),
    /// Create an ExternalName service.
    CreateExternalName(RawExternalName),
    /// `kubectl expose deployment`: a Service selecting `app=<deployment>`.
    Expose(RawExpose),
    /// Change a Deployment's replica count.
    Scale(RawScale),
    /// Flip a pod's readiness.
    SetPodReady(RawSetPodReady),
    /// Delete a Service.
    DeleteService(RawObject),
    /// Delete a Deployment and its pods.
    DeleteDeployment(RawObject),
    /// The Service exists, with or without a ClusterIP.
    ExpectService(RawExpectService),
    /// The Service's EndpointSlices hold exactly these endpoints.
    ExpectEndpoints(RawExpectEndpoints),
    /// A DNS lookup from a namespace gives exactly this answer.
    ExpectDns(RawExpectDns),
    /// The resolver configuration a pod in a namespace gets.
    ExpectResolvConf(RawExpectResolvConf),
    /// An HTTP GET from a namespace.
    ExpectHttp(RawExpectHttp),
    /// A TCP connect to a Service port from a namespace.
    ExpectConnect(RawExpectConnect),
    /// kube-proxy's health check node port answer on one node.
    ExpectHealthCheck(RawExpectHealthCheck),
    /// One UDP datagram to a Service port, on a new or a kept flow, and its reply.
    ExpectUdp(RawExpectUdp),
    /// Create `count` services `<prefix>-0 …` in front of one workload.
    CreateServices(RawCreateServices),
    /// Every service `<prefix>-0 …` has its endpoints, resolves, and accepts connections.
    ExpectServices(RawExpectServices),
    /// Generate HTTP load through a service and assert on fairness, errors and latency.
    MeasureHttp(RawMeasureHttp),
    /// Generate DNS load and assert on answers and latency.
    MeasureDns(RawMeasureDns),
    /// Apply an action and measure how long the API, DNS and the data path take to reflect it.
    Converge(RawConverge),
}

/// `createNamespace`: a name, or a map with the name and whether it is literal.
#[derive(Debug)]
pub enum RawNamespace {
    /// `createNamespace: test` — a target may give it a run-unique real name (and rewrites DNS names to match).
    Name(String),
    /// `createNamespace: {name: dns-version, literal: true}`.
    Spec {
        /// The namespace name.
        name: SpannedStr,
        /// Keep exactly this name on every target (for names that only work as written, like `dns-version`).
        literal: bool,
    },
}

impl<'de> Deserialize<'de> for RawNamespace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawNamespace;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a namespace name or `{name: NAME, literal: true}`")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawNamespace, E> {
                Ok(RawNamespace::Name(v.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawNamespace, A::Error> {
                // By hand rather than `untagged`: the fields keep their spans and unknown keys are named.
                let (mut name, mut literal) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" if name.is_some() => return Err(serde::de::Error::duplicate_field("name")),
                        "name" => name = Some(map.next_value::<SpannedStr>()?),
                        "literal" if literal.is_some() => return Err(serde::de::Error::duplicate_field("literal")),
                        "literal" => literal = Some(map.next_value::<bool>()?),
                        other => return Err(serde::de::Error::unknown_field(other, &["name", "literal"])),
                    }
                }
                let name = name.ok_or_else(|| serde::de::Error::missing_field("name"))?;
                Ok(RawNamespace::Spec { name, literal: literal.unwrap_or(false) })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `createServices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCreateServices {
    pub namespace: SpannedStr,
    pub deployment: SpannedStr,
    pub prefix: SpannedStr,
    pub count: Spanned<u32>,
    pub port: Spanned<u16>,
}

/// `expectServices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectServices {
    pub from: SpannedStr,
    pub namespace: SpannedStr,
    pub prefix: SpannedStr,
    pub count: Spanned<u32>,
    /// Ready endpoints each service must have.
    pub ready_endpoints: u32,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// `converge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConverge {
    /// The change: one action step (`{scale: {...}}`, `{setPodReady: {...}}`, …).
    pub action: Box<Spanned<RawStep>>,
    pub namespace: SpannedStr,
    /// The service whose endpoints, DNS and traffic are watched.
    pub service: SpannedStr,
    /// The workload behind it.
    pub deployment: SpannedStr,
    /// Where DNS and traffic are probed from.
    pub from: SpannedStr,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// `createDeployment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDeployment {
    pub namespace: SpannedStr,
    pub name: SpannedStr,
    #[serde(default)]
    pub replicas: Option<Spanned<u32>>,
    /// Container ports the pods serve HTTP on; default one unnamed port 80.
    #[serde(default)]
    pub ports: Option<Vec<RawContainerPort>>,
    /// Extra pod labels (`app=<name>` is always set).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Pod `spec.hostname`.
    #[serde(default)]
    pub hostname: Option<SpannedStr>,
    /// Pod `spec.subdomain`.
    #[serde(default)]
    pub subdomain: Option<SpannedStr>,
    /// How long a deleted pod stays terminating (and serving) before it is gone; default 0.
    #[serde(default)]
    pub termination_grace_period_seconds: Option<u32>,
    /// Run every pod on this node (by index).
    #[serde(default)]
    pub node: Option<Spanned<u32>>,
}

/// `createStatefulSet`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStatefulSet {
    pub namespace: SpannedStr,
    pub name: SpannedStr,
    #[serde(default)]
    pub replicas: Option<Spanned<u32>>,
    /// The governing (headless) service name: every pod's subdomain.
    pub service_name: SpannedStr,
    #[serde(default)]
    pub ports: Option<Vec<RawContainerPort>>,
}

/// `createExternalName`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExternalName {
    pub namespace: SpannedStr,
    pub name: SpannedStr,
    pub external_name: SpannedStr,
}

/// A container port of the pod template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawContainerPort {
    #[serde(default)]
    pub name: Option<SpannedStr>,
    pub container_port: Spanned<u16>,
}

/// `expose`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpose {
    pub namespace: SpannedStr,
    /// The workload whose `app` label the service selects (unless `selector` is given).
    #[serde(default)]
    pub deployment: Option<SpannedStr>,
    /// An explicit label selector instead of `app=<deployment>`.
    #[serde(default)]
    pub selector: Option<Spanned<BTreeMap<String, String>>>,
    /// `publishNotReadyAddresses`.
    #[serde(default)]
    pub publish_not_ready_addresses: bool,
    /// `None` (default) or `ClientIP`.
    #[serde(default)]
    pub session_affinity: Option<SpannedStr>,
    /// `sessionAffinityConfig.clientIP.timeoutSeconds` (default 10800).
    #[serde(default)]
    pub session_affinity_timeout_seconds: Option<Spanned<u32>>,
    /// Service name; defaults to the deployment name.
    #[serde(default)]
    pub name: Option<SpannedStr>,
    /// Single-port shorthand (as `kubectl expose --port --target-port`).
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub target_port: Option<Spanned<RawTargetPort>>,
    #[serde(default)]
    pub port_name: Option<SpannedStr>,
    /// Several ports; exclusive with `port`.
    #[serde(default)]
    pub ports: Option<Vec<RawServicePort>>,
    /// `None` makes the Service headless.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<SpannedStr>,
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub service_type: Option<SpannedStr>,
    /// The single port's nodePort (allocated from 30000-32767 when absent).
    #[serde(default)]
    pub node_port: Option<Spanned<u16>>,
    /// `Cluster` (default) or `Local`.
    #[serde(default)]
    pub internal_traffic_policy: Option<SpannedStr>,
    /// `Cluster` (default) or `Local` (node ports only).
    #[serde(default)]
    pub external_traffic_policy: Option<SpannedStr>,
    /// `PreferClose`.
    #[serde(default)]
    pub traffic_distribution: Option<SpannedStr>,
    /// The health check port (LoadBalancer with `externalTrafficPolicy: Local`; allocated when absent).
    #[serde(default)]
    pub health_check_node_port: Option<Spanned<u16>>,
    /// `SingleStack` (default), `PreferDualStack` or `RequireDualStack`.
    #[serde(default)]
    pub ip_family_policy: Option<SpannedStr>,
    /// `[IPv4]`, `[IPv6]`, `[IPv4, IPv6]` or `[IPv6, IPv4]`: primary first.
    #[serde(default)]
    pub ip_families: Option<Spanned<Vec<SpannedStr>>>,
}

/// A Service port.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawServicePort {
    #[serde(default)]
    pub name: Option<SpannedStr>,
    pub port: Spanned<u16>,
    #[serde(default)]
    pub target_port: Option<Spanned<RawTargetPort>>,
    #[serde(default)]
    pub protocol: Option<SpannedStr>,
    /// The nodePort (allocated from 30000-32767 when absent).
    #[serde(default)]
    pub node_port: Option<Spanned<u16>>,
}

/// `targetPort`: a number or a container port name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTargetPort {
    Number(u16),
    Name(String),
}

/// `scale`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScale {
    pub namespace: SpannedStr,
    pub deployment: SpannedStr,
    pub replicas: Spanned<u32>,
}

/// `setPodReady`: pods are named by deployment and creation index, since their names are generated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSetPodReady {
    pub namespace: SpannedStr,
    pub deployment: SpannedStr,
    pub index: Spanned<u32>,
    pub ready: bool,
}

/// A namespaced object by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawObject {
    pub namespace: SpannedStr,
    pub name: SpannedStr,
}

/// `expectService`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectService {
    pub namespace: SpannedStr,
    pub name: SpannedStr,
    /// `allocated` (an address from the service range) or `None` (headless).
    #[serde(rename = "clusterIP")]
    pub cluster_ip: SpannedStr,
    /// Exactly these families, primary first (`spec.ipFamilies`, and one ClusterIP of each).
    #[serde(default, rename = "ipFamilies")]
    pub ip_families: Option<Spanned<Vec<SpannedStr>>>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// A set of pods, written symbolically so that one file runs on any target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPodSet {
    /// The ready pods of this deployment (in the step's namespace).
    #[serde(default)]
    pub ready_pods_of: Option<SpannedStr>,
    /// Every live (not terminating) pod of this deployment, ready or not.
    #[serde(default)]
    pub pods_of: Option<SpannedStr>,
    /// The terminating pods of this deployment.
    #[serde(default)]
    pub terminating_pods_of: Option<SpannedStr>,
    /// Only those of the pods above that run on this node (by index).
    #[serde(default)]
    pub on_node: Option<u32>,
}

/// `expectEndpoints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectEndpoints {
    pub namespace: SpannedStr,
    pub service: SpannedStr,
    /// Exactly these addresses are ready endpoints (`[]`, or a pod set).
    #[serde(default)]
    pub ready: Option<Spanned<RawPodSetOrEmpty>>,
    /// Exactly these addresses are present but not ready.
    #[serde(default)]
    pub not_ready: Option<Spanned<RawPodSetOrEmpty>>,
    /// Exactly these addresses have `serving: true`.
    #[serde(default)]
    pub serving: Option<Spanned<RawPodSetOrEmpty>>,
    /// Exactly these addresses have `terminating: true`.
    #[serde(default)]
    pub terminating: Option<Spanned<RawPodSetOrEmpty>>,
    /// The slice ports, exactly.
    #[serde(default)]
    pub ports: Option<Vec<RawEndpointPort>>,
    /// Which slices: `IPv4` or `IPv6` (default: the Service's primary family).
    #[serde(default)]
    pub address_type: Option<SpannedStr>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// A pod set, or `[]` for none.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPodSetOrEmpty {
    // `Empty` first: serde lets a struct of optional fields deserialize from `[]`.
    Empty(Vec<serde::de::IgnoredAny>),
    Set(RawPodSet),
}

/// An EndpointSlice port.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEndpointPort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
}

/// `expectDns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectDns {
    /// Namespace the querying pod lives in (its resolver config).
    pub from: SpannedStr,
    /// The name as a program would pass it (or give `reverseOf`).
    #[serde(default)]
    pub name: Option<SpannedStr>,
    /// Ask the PTR name of this address (`in-addr.arpa`) instead of `name`.
    #[serde(default)]
    pub reverse_of: Option<Spanned<RawRecord>>,
    /// The family of the address `reverseOf` reverses: `IPv4` (default, `in-addr.arpa`) or `IPv6` (`ip6.arpa`).
    #[serde(default)]
    pub ip_family: Option<SpannedStr>,
    /// Every answer record has at least this TTL.
    #[serde(default)]
    pub min_ttl: Option<u32>,
    /// Negative answers (NXDOMAIN, NODATA) carry the zone's SOA in the authority section.
    #[serde(default)]
    pub authority_soa: bool,
    /// Record type; default `A`.
    #[serde(default, rename = "type")]
    pub record_type: Option<SpannedStr>,
    /// Resolver flavour; default `glibc`.
    #[serde(default)]
    pub resolver: Option<SpannedStr>,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    pub transport: Option<SpannedStr>,
    /// Final rcode, or a list of acceptable ones. `NODATA` means NOERROR with no answer.
    #[serde(default)]
    pub rcode: Option<Spanned<RawOneOrMany>>,
    /// The exact record set of the final answer.
    #[serde(default)]
    pub records: Option<Vec<Spanned<RawRecord>>>,
    /// The exact address records of the final answer's additional section (SRV and NS targets' addresses).
    #[serde(default)]
    pub additional: Option<Vec<Spanned<RawRecord>>>,
    /// The exact list of names the resolver tried, in order.
    #[serde(default)]
    pub candidates: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// One value or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawOneOrMany {
    One(String),
    Many(Vec<String>),
}

/// An expected record, symbolic or literal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRecord {
    /// A record holding the ClusterIP of this service (in the query's target namespace, or `ns/name`).
    #[serde(default, rename = "clusterIPOf")]
    pub cluster_ip_of: Option<SpannedStr>,
    /// One A record per ready pod of this deployment (`name` or `ns/name`).
    #[serde(default, rename = "readyPodIPsOf")]
    pub ready_pod_ips_of: Option<SpannedStr>,
    /// A literal address.
    #[serde(default)]
    pub ip: Option<SpannedStr>,
    /// A TXT record with this text.
    #[serde(default)]
    pub txt: Option<String>,
    /// The IP of one pod of a workload.
    #[serde(default, rename = "podIPOf")]
    pub pod_ip_of: Option<Spanned<RawPodIndex>>,
    /// An SRV record; a target whose first label is `*` matches any one label.
    #[serde(default)]
    pub srv: Option<RawSrv>,
    /// A PTR record to this name.
    #[serde(default)]
    pub ptr: Option<String>,
    /// A CNAME record to this name.
    #[serde(default)]
    pub cname: Option<String>,
}

/// One pod of a workload by creation index.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPodIndex {
    pub deployment: SpannedStr,
    pub index: u32,
}

/// An expected SRV record (priority and weight are not compared).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSrv {
    pub port: u16,
    pub target: String,
}

/// `expectResolvConf`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectResolvConf {
    pub from: SpannedStr,
    pub search: Vec<String>,
    pub ndots: u8,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}
