//! The scenario file's traffic steps as written: `expectHttp`, `expectConnect`, `expectUdp`, `measureHttp`,
//! `measureDns`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    checks::{ConnectOutcome, HttpClient, Rcode, UdpOutcome},
    families::IpFamily,
    nodes::SourceIp,
    schema::{DurationText, HttpModeName},
};

use super::file::{RawPodSet, SpannedStr};
use super::raw_nodes::{RawClient, RawNodeVia, RawVia};

/// `measureHttp`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMeasureHttp {
    /// Namespace of the pod that generates the load.
    #[schemars(with = "String")]
    pub from: SpannedStr,
    /// `http://<host>[:port]/path`.
    #[schemars(with = "String")]
    pub url: SpannedStr,
    /// `new-connection` (default) or `keep-alive`.
    #[serde(default)]
    #[schemars(with = "Option<HttpModeName>")]
    pub mode: Option<SpannedStr>,
    /// `plain` (default: `mode` decides) or `reqwest` (the pod's pooled `reqwest::Client`).
    #[serde(default)]
    #[schemars(with = "Option<HttpClient>")]
    pub client: Option<SpannedStr>,
    /// Keep-alive connections / new-connection requests in flight (default 8).
    #[serde(default)]
    pub connections: Option<u32>,
    /// Open-loop requests per second (default 500); `0` means closed loop (maximum throughput).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub rate: Option<Spanned<f64>>,
    /// Requests to send (default 1000).
    #[serde(default)]
    pub requests: Option<u64>,
    /// Longest a measurement may send (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub duration: Option<SpannedStr>,
    /// Every one of these pods answers at least once; no other pod answers.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSet>")]
    pub backends: Option<Spanned<RawPodSet>>,
    /// χ² test of the spread over `backends` (new-connection mode only).
    #[serde(default)]
    pub fair: Option<RawFair>,
    /// 99th percentile latency bound (`50ms`).
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub p99_below: Option<SpannedStr>,
    /// Largest tolerated share of failed requests (default 0).
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    /// How long the step may take, retries included (at least `duration` + 5s); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
    /// `IPv6`: resolve the host with AAAA (`curl -6`); default IPv4.
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub ip_family: Option<SpannedStr>,
}

/// `measureDns`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMeasureDns {
    /// Namespace of the pod that generates the load (queries go to its resolver's nameserver).
    #[schemars(with = "String")]
    pub from: SpannedStr,
    /// Names to query (absolute), round robin.
    #[schemars(with = "Vec<String>")]
    pub names: Vec<SpannedStr>,
    /// Open-loop queries per second (default 2000); `0`: closed loop.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub rate: Option<Spanned<f64>>,
    /// Queries to send (default 5000).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub queries: Option<Spanned<u64>>,
    /// Longest send phase, wall time (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub duration: Option<SpannedStr>,
    /// UDP source ports (default 128).
    #[serde(default)]
    pub source_ports: Option<usize>,
    /// Rcode every answer must have (default NOERROR).
    #[serde(default)]
    #[schemars(with = "Option<Rcode>")]
    pub rcode: Option<SpannedStr>,
    /// 99th percentile latency bound.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub p99_below: Option<SpannedStr>,
    /// Largest tolerated share of timeouts (default 0).
    #[serde(default)]
    pub max_timeout_rate: Option<f64>,
    /// How long the step may take, retries included (at least `duration` + 5s); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// `expectHttp`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectHttp {
    /// The client: a namespace, `{namespace, node}`, `{node}` (the node's host network) or `{pod: {deployment, index}}`.
    #[schemars(with = "RawClient")]
    pub from: Spanned<RawClient>,
    /// `http://<host>[:port]/path`; the host goes through the pod's resolver (glibc), or names a Service with `via`.
    #[schemars(with = "String")]
    pub url: SpannedStr,
    /// `dns` (default), `clusterIP`, or `{node: N}`: the url's Service port at its ClusterIP or its nodePort on node N.
    #[serde(default)]
    #[schemars(with = "Option<RawVia>")]
    pub via: Option<Spanned<RawVia>>,
    /// `preserved` or `node`: the source address the backend sees (netexec `/clientip`).
    #[serde(default, rename = "sourceIP")]
    #[schemars(with = "Option<SourceIp>")]
    pub source_ip: Option<SpannedStr>,
    /// Over many new connections, only these pods answer.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSet>")]
    pub reaches_only: Option<Spanned<RawPodSet>>,
    /// Expected status; default 200.
    #[serde(default)]
    pub status: Option<u16>,
    /// The answering pod is one of these.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSet>")]
    pub answered_by: Option<Spanned<RawPodSet>>,
    /// Over many new connections, every one of these pods answers at least once.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSet>")]
    pub reaches_all: Option<Spanned<RawPodSet>>,
    /// How many requests, each on a new connection (1–100000). Default: for `reachesAll`/`reachesOnly`, enough that
    /// a fair random balancer misses a pod, or a stale extra backend goes unnoticed, with probability below 1e-9;
    /// for `sameBackend`, 31; otherwise 1.
    #[serde(default)]
    pub requests: Option<u32>,
    /// Every request is answered by the same pod (session affinity); without `requests` (or a pod set giving the
    /// count) 31 requests are sent, so a balancer without affinity over two or more pods fails with probability
    /// above 1 - 1e-9.
    #[serde(default)]
    pub same_backend: bool,
    /// The spread over `reachesAll` pods is not significantly unfair: χ² test against uniform at this α.
    #[serde(default)]
    pub fair: Option<RawFair>,
    /// `plain` (default: a new connection per request) or `reqwest` (the pod's pooled `reqwest::Client`).
    #[serde(default)]
    #[schemars(with = "Option<HttpClient>")]
    pub client: Option<SpannedStr>,
    /// `IPv6`: resolve the host with AAAA (`curl -6`), or dial the Service's IPv6 ClusterIP (default: A, or the
    /// primary ClusterIP).
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub ip_family: Option<SpannedStr>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// `fair: {alpha: 0.001}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFair {
    /// Significance level of the χ² test, between 0 and 0.5 (e.g. 0.001): the chance a fair balancer fails it.
    #[schemars(with = "f64")]
    pub alpha: Spanned<f64>,
}

/// `expectConnect`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectConnect {
    /// The client: a namespace, `{namespace, node}`, `{node}` or `{pod: {deployment, index}}`.
    #[schemars(with = "RawClient")]
    pub from: Spanned<RawClient>,
    /// Namespace of the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The Service.
    #[schemars(with = "String")]
    pub service: SpannedStr,
    /// A TCP port of the Service.
    #[schemars(with = "u16")]
    pub port: Spanned<u16>,
    /// `{node: N}`: dial node N's address at the port's nodePort instead of the ClusterIP.
    #[serde(default)]
    pub via: Option<RawNodeVia>,
    /// `connected`, `refused` or `timeout`.
    #[schemars(with = "ConnectOutcome")]
    pub result: SpannedStr,
    /// The ClusterIP of this family (default: the Service's primary ClusterIP).
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub ip_family: Option<SpannedStr>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}

/// `expectUdp`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectUdp {
    /// The client: a namespace, `{namespace, node}`, `{node}` or `{pod: {deployment, index}}`.
    #[schemars(with = "RawClient")]
    pub from: Spanned<RawClient>,
    /// Namespace of the Service.
    #[schemars(with = "String")]
    pub namespace: SpannedStr,
    /// The Service.
    #[schemars(with = "String")]
    pub service: SpannedStr,
    /// A UDP port of the service.
    #[schemars(with = "u16")]
    pub port: Spanned<u16>,
    /// `{node: N}`: send to node N's address at the port's nodePort instead of the ClusterIP.
    #[serde(default)]
    pub via: Option<RawNodeVia>,
    /// The datagram, a netexec UDP command (default `hostname`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub send: Option<SpannedStr>,
    /// Keep this flow: the same client socket as every earlier step naming it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub flow: Option<SpannedStr>,
    /// `answered` (default), `refused` or `timeout`.
    #[serde(default)]
    #[schemars(with = "Option<UdpOutcome>")]
    pub result: Option<SpannedStr>,
    /// The ClusterIP of this family (default: the Service's primary ClusterIP).
    #[serde(default)]
    #[schemars(with = "Option<IpFamily>")]
    pub ip_family: Option<SpannedStr>,
    /// For `send: hostname`: the answering pod is one of these.
    #[serde(default)]
    #[schemars(with = "Option<RawPodSet>")]
    pub answered_by: Option<Spanned<RawPodSet>>,
    /// The exact reply.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub reply: Option<SpannedStr>,
    /// How long the assertion may take to hold (it is retried until then); default: the scenario's `timeout`, else 10s.
    #[serde(default)]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<SpannedStr>,
}
