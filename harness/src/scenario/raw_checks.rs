//! The scenario file's assertions on the API and DNS as written: `expectService`, `expectEndpoints`, `expectDns`,
//! `expectResolvConf`, and the pod sets and records they name.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    checks::{QueryType, Rcode, ResolverFlavour, Transport},
    families::IpFamily,
    file::SpannedStr,
    schema::{DurationText, EmptyList, ExpectedClusterIp},
};

/// `expectService`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectService {
    /// Namespace of the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// Service name.
    #[schemars(with = "String")]
    pub name: SpannedStr,
    /// `allocated` (an address from the service range) or `None` (headless).
    #[serde(rename = "clusterIP")]
    #[schemars(with = "ExpectedClusterIp")]
    pub cluster_ip: SpannedStr,
    /// Exactly these families, primary first (`spec.ipFamilies`, and one ClusterIP of each).
    #[serde(default, rename = "ipFamilies")]
    #[schemars(with = "Option<Vec<IpFamily>>")]
    pub ip_families: Option<Spanned<Vec<SpannedStr>>>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// A set of pods, written symbolically so that one file runs on any target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPodSet {
    /// The ready pods of this deployment: a name in the step's namespace (`namespace` for `expectEndpoints`, the
    /// client's for traffic steps), or `namespace/deployment`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ready_pods_of: Option<SpannedStr>,
    /// Every live (not terminating) pod of this deployment, ready or not; exactly the replica count the steps so far
    /// asked for, so `podsOf` after a scale to 1 is one pod.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pods_of: Option<SpannedStr>,
    /// The terminating pods of this deployment.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub terminating_pods_of: Option<SpannedStr>,
    /// Only those of the pods above that run on this node (by index).
    #[serde(default)]
    pub on_node: Option<u32>,
}

/// `expectEndpoints`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectEndpoints {
    /// Namespace of the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The Service whose EndpointSlices are read.
    #[schemars(with = "String")]
    pub service: SpannedStr,
    /// Exactly these addresses are ready endpoints (`[]`, or a pod set).
    #[serde(default)]
    #[schemars(with = "Option<RawPodSetOrEmpty>")]
    pub ready: Option<Spanned<RawPodSetOrEmpty>>,
    /// Exactly these addresses are present but not ready.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSetOrEmpty>")]
    pub not_ready: Option<Spanned<RawPodSetOrEmpty>>,
    /// Exactly these addresses have `serving: true`.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSetOrEmpty>")]
    pub serving: Option<Spanned<RawPodSetOrEmpty>>,
    /// Exactly these addresses have `terminating: true`.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSetOrEmpty>")]
    pub terminating: Option<Spanned<RawPodSetOrEmpty>>,
    /// The slice ports, exactly.
    #[serde(default)]
    pub ports: Option<Vec<RawEndpointPort>>,
    /// Which slices: `IPv4` or `IPv6` (default: the Service's primary family).
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub address_type: Option<SpannedStr>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// A pod set, or `[]` for none.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawPodSetOrEmpty {
    // `Empty` first: serde lets a struct of optional fields deserialize from `[]`.
    /// No addresses.
    Empty(#[schemars(with = "EmptyList")] Vec<serde::de::IgnoredAny>),
    /// These pods' addresses.
    Set(RawPodSet),
}

/// An EndpointSlice port.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEndpointPort {
    /// Port name (as the Service port's).
    #[serde(default)]
    pub name: Option<String>,
    /// The target port number.
    pub port: u16,
}

/// `expectDns`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectDns {
    /// Namespace the querying pod lives in (its resolver config).
    #[schemars(with = "String")]
    pub from: SpannedStr,
    /// The name as a program would pass it (or give `reverseOf`): relative names go through the pod's search list;
    /// an SRV name is `_<port-name>._<tcp|udp>.<service>.<namespace>.svc.cluster.local.`. A namespace the scenario
    /// created may get another real name on a cluster; names inside DNS names are rewritten to match.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<SpannedStr>,
    /// Ask the PTR name of this address (`in-addr.arpa`) instead of `name`.
    #[serde(default)]
    #[schemars(with = "Option<RawRecord>")]
    pub reverse_of: Option<Spanned<RawRecord>>,
    /// The family of the address `reverseOf` reverses: `IPv4` (default, `in-addr.arpa`) or `IPv6` (`ip6.arpa`).
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub ip_family: Option<SpannedStr>,
    /// Every answer record has at least this TTL.
    #[serde(default)]
    pub min_ttl: Option<u32>,
    /// Negative answers (NXDOMAIN, NODATA) carry the zone's SOA in the authority section.
    #[serde(default)]
    pub authority_soa: bool,
    /// Record type; default `A`.
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<QueryType>")]
    pub record_type: Option<SpannedStr>,
    /// Resolver flavour; default `glibc`.
    #[serde(default)]
    #[schemars(with = "Option<ResolverFlavour>")]
    pub resolver: Option<SpannedStr>,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    #[schemars(with = "Option<Transport>")]
    pub transport: Option<SpannedStr>,
    /// Final rcode, or a list of acceptable ones. `NODATA` means NOERROR with no answer.
    #[serde(default)]
    #[schemars(with = "Option<RawOneOrMany>")]
    pub rcode: Option<Spanned<RawOneOrMany>>,
    /// The exact record set of the final answer.
    #[serde(default)]
    #[schemars(with = "Option<Vec<RawRecord>>")]
    pub records: Option<Vec<Spanned<RawRecord>>>,
    /// The exact address records of the final answer's additional section (SRV and NS targets' addresses).
    #[serde(default)]
    #[schemars(with = "Option<Vec<RawRecord>>")]
    pub additional: Option<Vec<Spanned<RawRecord>>>,
    /// The exact list of names the resolver tried, in order.
    #[serde(default)]
    pub candidates: Option<Vec<String>>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// One value or a list of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawOneOrMany {
    /// This rcode.
    One(#[schemars(with = "Rcode")] String),
    /// Any of these rcodes.
    Many(#[schemars(with = "Vec<Rcode>")] Vec<String>),
}

/// An expected record, symbolic or literal.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRecord {
    /// A record holding the ClusterIP of this service: a name in the querying pod's namespace (`from`), or
    /// `namespace/name` for another one (`clusterIPOf: shop/cart`).
    #[serde(default, rename = "clusterIPOf")]
    #[schemars(with = "Option<String>")]
    pub cluster_ip_of: Option<SpannedStr>,
    /// One A record per ready pod of this deployment: in `from`'s namespace, or `namespace/name`.
    #[serde(default, rename = "readyPodIPsOf")]
    #[schemars(with = "Option<String>")]
    pub ready_pod_ips_of: Option<SpannedStr>,
    /// A literal address.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ip: Option<SpannedStr>,
    /// A TXT record with this text.
    #[serde(default)]
    pub txt: Option<String>,
    /// The IP of one pod of a workload.
    #[serde(default, rename = "podIPOf")]
    #[schemars(with = "Option<RawPodIndex>")]
    pub pod_ip_of: Option<Spanned<RawPodIndex>>,
    /// An SRV record; a target whose first label is `*` matches any one label.
    #[serde(default)]
    pub srv: Option<RawSrv>,
    /// A PTR record to this name; a name whose first label is `*` matches any one label.
    #[serde(default)]
    pub ptr: Option<String>,
    /// A CNAME record to this name.
    #[serde(default)]
    pub cname: Option<String>,
}

/// One pod of a workload by creation index.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPodIndex {
    /// The workload.
    #[schemars(with = "String")]
    pub deployment: SpannedStr,
    /// The pod by creation order, from 0.
    pub index: u32,
}

/// An expected SRV record (priority and weight are not compared).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSrv {
    /// The SRV record's port.
    pub port: u16,
    /// The SRV record's target name (absolute, with the trailing dot).
    pub target: String,
}

/// `expectResolvConf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectResolvConf {
    /// Namespace of the pod whose `/etc/resolv.conf` is read.
    #[schemars(with = "String")]
    pub from: SpannedStr,
    /// The search list, exactly, in order.
    pub search: Vec<String>,
    /// The `ndots` option.
    pub ndots: u8,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}
