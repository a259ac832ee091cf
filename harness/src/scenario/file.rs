//! The scenario file as written: serde types that mirror the YAML, with source spans kept for error messages.
//!
//! Nothing here is validated beyond shape; [`super::validate`] turns a [`ScenarioFile`] into a [`super::Plan`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    families::{IpFamily, IpFamilyPolicy},
    nodes::{ServiceType, TrafficPolicy},
    plan::Protocol,
    schema::{DurationText, HeadlessName, SessionAffinityName, TrafficDistributionName},
};

pub use super::{
    raw_checks::{
        RawEndpointPort, RawExpectDns, RawExpectEndpoints, RawExpectResolvConf, RawExpectService, RawOneOrMany,
        RawPodIndex, RawPodSet, RawPodSetOrEmpty, RawRecord, RawSrv,
    },
    raw_nodes::{RawClient, RawExpectHealthCheck, RawNodeVia, RawVia},
    raw_traffic::{RawExpectConnect, RawExpectHttp, RawExpectUdp, RawFair, RawMeasureDns, RawMeasureHttp},
};

/// A string with the place it was written.
pub type SpannedStr = Spanned<String>;

/// Top level of `scenarios/*.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioFile {
    /// Scenario name: a DNS-1035 label, unique in the suite.
    #[schemars(with = "String")]
    pub name: SpannedStr,
    /// One or two sentences saying what the scenario proves.
    pub description: String,
    /// Default per-assertion timeout (`"10s"`, `"500ms"`).
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
    /// Ordered actions and assertions.
    #[schemars(with = "Vec<RawStep>")]
    pub steps: Vec<Spanned<RawStep>>,
}

/// One step: exactly one of these keys.
// Parse-time only and short-lived: boxing variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum RawStep {
    /// `createNamespace: test`, or `createNamespace: {name: dns-version, literal: true}`.
    CreateNamespace(#[schemars(with = "RawNamespace")] Spanned<RawNamespace>),
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
    /// Write an EndpointSlice of a selectorless Service (`expose` with `selector: {}`) by hand.
    CreateEndpointSlice(RawEndpointSlice),
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
    /// `wait: 5s` — let a stated time pass (at most 10 minutes), for a timeout or a cache's TTL to run out.
    Wait(#[schemars(with = "DurationText")] SpannedStr),
}

/// `createNamespace`: a name, or a map with the name and whether it is literal.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub enum RawNamespace {
    /// `createNamespace: test` — a target may give it a run-unique real name (and rewrites DNS names to match).
    Name(String),
    /// `createNamespace: {name: dns-version, literal: true}`.
    #[schemars(transform = super::schema::deny_unknown_fields)]
    Spec {
        /// The namespace name.
        #[schemars(with = "String")]
        name: SpannedStr,
        /// Keep exactly this name on every target (for names that only work as written, like `dns-version`).
        #[schemars(default)]
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCreateServices {
    /// Namespace the Services are created in.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The workload every Service selects (`app=<deployment>`).
    #[schemars(with = "String")]
    pub deployment: SpannedStr,
    /// Services are named `<prefix>-0` … `<prefix>-<count-1>`.
    #[schemars(with = "String")]
    pub prefix: SpannedStr,
    /// How many Services (1–20000).
    #[schemars(with = "u32")]
    pub count: Spanned<u32>,
    /// The port of each Service (target port: the same number).
    #[schemars(with = "u16")]
    pub port: Spanned<u16>,
}

/// `expectServices`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectServices {
    /// Namespace of the pod the probe runs in (its resolver configuration and network).
    #[schemars(with = "String")]
    pub from: SpannedStr,
    /// Namespace of the Services.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The `prefix` given to `createServices`.
    #[schemars(with = "String")]
    pub prefix: SpannedStr,
    /// How many Services, `<prefix>-0` onward.
    #[schemars(with = "u32")]
    pub count: Spanned<u32>,
    /// Ready endpoints each service must have.
    pub ready_endpoints: u32,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// `converge`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConverge {
    /// The change: one action step (`{scale: {...}}`, `{setPodReady: {...}}`, …).
    #[schemars(with = "Box<RawStep>")]
    pub action: Box<Spanned<RawStep>>,
    /// Namespace of the service and workload.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The service whose endpoints, DNS and traffic are watched.
    #[schemars(with = "String")]
    pub service: SpannedStr,
    /// The workload behind it.
    #[schemars(with = "String")]
    pub deployment: SpannedStr,
    /// Where DNS and traffic are probed from.
    #[schemars(with = "String")]
    pub from: SpannedStr,
    /// How long each of the API, DNS and data path may take to show the change; default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// `createDeployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDeployment {
    /// Namespace the Deployment is created in.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// Deployment name; its pods carry `app=<name>`.
    #[schemars(with = "String")]
    pub name: SpannedStr,
    /// Pod count (0–1000); default 1.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
    /// Container ports the pods serve HTTP on; default one unnamed port 80.
    #[serde(default)]
    pub ports: Option<Vec<RawContainerPort>>,
    /// Extra pod labels (`app=<name>` is always set).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Pod `spec.hostname`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hostname: Option<SpannedStr>,
    /// Pod `spec.subdomain`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub subdomain: Option<SpannedStr>,
    /// How long a deleted pod stays terminating (and serving) before it is gone; default 0.
    #[serde(default)]
    pub termination_grace_period_seconds: Option<u32>,
    /// Run every pod on this node (by index).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub node: Option<Spanned<u32>>,
}

/// `createStatefulSet`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStatefulSet {
    /// Namespace the StatefulSet is created in.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// StatefulSet name; pods are `<name>-0`, `<name>-1`, …
    #[schemars(with = "String")]
    pub name: SpannedStr,
    /// Pod count (0–1000); default 1.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
    /// The governing (headless) service name: every pod's subdomain.
    #[schemars(with = "String")]
    pub service_name: SpannedStr,
    /// Container ports the pods serve HTTP on; default one unnamed port 80.
    #[serde(default)]
    pub ports: Option<Vec<RawContainerPort>>,
}

/// `createExternalName`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExternalName {
    /// Namespace of the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// Service name.
    #[schemars(with = "String")]
    pub name: SpannedStr,
    /// The DNS name the Service is an alias of (`spec.externalName`).
    #[schemars(with = "String")]
    pub external_name: SpannedStr,
}

/// `createEndpointSlice`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEndpointSlice {
    /// Namespace of the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The selectorless Service it belongs to (label `kubernetes.io/service-name`).
    #[schemars(with = "String")]
    pub service: SpannedStr,
    /// Slice name (default `<service>-<n>`, n counting this Service's slices from 1).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<SpannedStr>,
    /// `IPv4` (default) or `IPv6`: the family of every address in it.
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub address_type: Option<SpannedStr>,
    /// Ports every endpoint serves.
    #[serde(default)]
    pub ports: Vec<RawSlicePort>,
    /// The endpoints.
    pub endpoints: Vec<RawSliceEndpoint>,
}

/// One port of a hand-written EndpointSlice.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSlicePort {
    /// Port name: the Service port's name it serves (empty for an unnamed port).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<SpannedStr>,
    /// Port number. The API lets it be left out (then it means nothing to DNS or a proxy).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    /// `TCP` (default) or `UDP`.
    #[serde(default)]
    #[schemars(with = "Option<Protocol>")]
    pub protocol: Option<SpannedStr>,
}

/// One endpoint of a hand-written EndpointSlice.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSliceEndpoint {
    /// Its address (one, as kube-proxy and CoreDNS use only the first).
    #[schemars(with = "String")]
    pub address: SpannedStr,
    /// `conditions.ready` (default true; serving follows it).
    #[serde(default = "yes")]
    pub ready: bool,
    /// `hostname`: the DNS label naming it under a headless Service.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hostname: Option<SpannedStr>,
}

fn yes() -> bool {
    true
}

/// A container port of the pod template.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawContainerPort {
    /// Port name, for a Service's named `targetPort`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<SpannedStr>,
    /// Port number the pod serves HTTP (and netexec's UDP) on.
    #[schemars(with = "u16")]
    pub container_port: Spanned<u16>,
}

/// `expose`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpose {
    /// Namespace of the workload and the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The workload whose `app` label the service selects (unless `selector` is given).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub deployment: Option<SpannedStr>,
    /// An explicit label selector instead of `app=<deployment>`.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub selector: Option<Spanned<BTreeMap<String, String>>>,
    /// `publishNotReadyAddresses`.
    #[serde(default)]
    pub publish_not_ready_addresses: bool,
    /// `None` (default) or `ClientIP`. The embedded target serves UDP ports only without affinity.
    #[serde(default)]
    #[schemars(with = "Option<SessionAffinityName>")]
    pub session_affinity: Option<SpannedStr>,
    /// `sessionAffinityConfig.clientIP.timeoutSeconds` (default 10800).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub session_affinity_timeout_seconds: Option<Spanned<u32>>,
    /// Service name; defaults to the deployment name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<SpannedStr>,
    /// Single-port shorthand (as `kubectl expose --port --target-port`).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    /// Single-port shorthand: the container port (number or name); default: `port`.
    #[serde(default)]
    #[schemars(with = "Option<RawTargetPort>")]
    pub target_port: Option<Spanned<RawTargetPort>>,
    /// Single-port shorthand: the port's name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub port_name: Option<SpannedStr>,
    /// Several ports; exclusive with `port`.
    #[serde(default)]
    pub ports: Option<Vec<RawServicePort>>,
    /// `None` makes the Service headless.
    #[serde(default, rename = "clusterIP")]
    #[schemars(with = "Option<HeadlessName>")]
    pub cluster_ip: Option<SpannedStr>,
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<ServiceType>")]
    pub service_type: Option<SpannedStr>,
    /// The single port's nodePort (allocated from 30000-32767 when absent).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub node_port: Option<Spanned<u16>>,
    /// `Cluster` (default) or `Local`.
    #[serde(default)]
    #[schemars(with = "Option<TrafficPolicy>")]
    pub internal_traffic_policy: Option<SpannedStr>,
    /// `Cluster` (default) or `Local` (node ports only).
    #[serde(default)]
    #[schemars(with = "Option<TrafficPolicy>")]
    pub external_traffic_policy: Option<SpannedStr>,
    /// `PreferClose`.
    #[serde(default)]
    #[schemars(with = "Option<TrafficDistributionName>")]
    pub traffic_distribution: Option<SpannedStr>,
    /// The health check port (LoadBalancer with `externalTrafficPolicy: Local`; allocated when absent).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub health_check_node_port: Option<Spanned<u16>>,
    /// `SingleStack` (default), `PreferDualStack` or `RequireDualStack`.
    #[serde(default)]
    #[schemars(with = "Option<IpFamilyPolicy>")]
    pub ip_family_policy: Option<SpannedStr>,
    /// `[IPv4]`, `[IPv6]`, `[IPv4, IPv6]` or `[IPv6, IPv4]`: primary first.
    #[serde(default)]
    #[schemars(with = "Option<Vec<IpFamily>>")]
    pub ip_families: Option<Spanned<Vec<SpannedStr>>>,
}

/// A Service port.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawServicePort {
    /// Port name (required by Kubernetes when a Service has several ports).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<SpannedStr>,
    /// The Service port.
    #[schemars(with = "u16")]
    pub port: Spanned<u16>,
    /// The container port, by number or name; default: `port`.
    #[serde(default)]
    #[schemars(with = "Option<RawTargetPort>")]
    pub target_port: Option<Spanned<RawTargetPort>>,
    /// `TCP` (default) or `UDP`.
    #[serde(default)]
    #[schemars(with = "Option<Protocol>")]
    pub protocol: Option<SpannedStr>,
    /// The nodePort (allocated from 30000-32767 when absent).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub node_port: Option<Spanned<u16>>,
}

/// `targetPort`: a number or a container port name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawTargetPort {
    /// A container port number.
    Number(u16),
    /// A container port's name.
    Name(String),
}

/// `scale`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScale {
    /// Namespace of the Deployment.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The Deployment to scale.
    #[schemars(with = "String")]
    pub deployment: SpannedStr,
    /// The new replica count (0–1000).
    #[schemars(with = "u32")]
    pub replicas: Spanned<u32>,
}

/// `setPodReady`: pods are named by deployment and creation index, since their names are generated.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSetPodReady {
    /// Namespace of the Deployment.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The Deployment the pod belongs to.
    #[schemars(with = "String")]
    pub deployment: SpannedStr,
    /// The pod by creation order, from 0.
    #[schemars(with = "u32")]
    pub index: Spanned<u32>,
    /// The readiness the pod reports from now on.
    pub ready: bool,
}

/// A namespaced object by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawObject {
    /// Namespace of the object.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// Object name.
    #[schemars(with = "String")]
    pub name: SpannedStr,
}
