//! The scenario file's traffic steps as written: `expectHttp`, `expectConnect`, `expectUdp`, `measureHttp`,
//! `measureDns`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::file::{RawPodSet, SpannedStr};
use super::raw_nodes::{RawClient, RawNodeVia, RawVia};

/// `measureHttp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMeasureHttp {
    pub from: SpannedStr,
    /// `http://<host>[:port]/path`.
    pub url: SpannedStr,
    /// `new-connection` (default) or `keep-alive`.
    #[serde(default)]
    pub mode: Option<SpannedStr>,
    /// `plain` (default: `mode` decides) or `reqwest` (the pod's pooled `reqwest::Client`).
    #[serde(default)]
    pub client: Option<SpannedStr>,
    /// Keep-alive connections / new-connection requests in flight (default 8).
    #[serde(default)]
    pub connections: Option<u32>,
    /// Open-loop requests per second (default 500); `0` means closed loop (maximum throughput).
    #[serde(default)]
    pub rate: Option<Spanned<f64>>,
    /// Requests to send (default 1000).
    #[serde(default)]
    pub requests: Option<u64>,
    /// Longest a measurement may send (default 10s).
    #[serde(default)]
    pub duration: Option<SpannedStr>,
    /// Every one of these pods answers at least once; no other pod answers.
    #[serde(default)]
    pub backends: Option<Spanned<RawPodSet>>,
    /// χ² test of the spread over `backends` (new-connection mode only).
    #[serde(default)]
    pub fair: Option<RawFair>,
    /// 99th percentile latency bound (`50ms`).
    #[serde(default)]
    pub p99_below: Option<SpannedStr>,
    /// Largest tolerated share of failed requests (default 0).
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
    /// `IPv6`: resolve the host with AAAA (`curl -6`); default IPv4.
    #[serde(default)]
    pub ip_family: Option<SpannedStr>,
}

/// `measureDns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMeasureDns {
    pub from: SpannedStr,
    /// Names to query (absolute), round robin.
    pub names: Vec<SpannedStr>,
    /// Open-loop queries per second (default 2000); `0`: closed loop.
    #[serde(default)]
    pub rate: Option<Spanned<f64>>,
    /// Queries to send (default 5000).
    #[serde(default)]
    pub queries: Option<Spanned<u64>>,
    /// Longest send phase, wall time (default 10s).
    #[serde(default)]
    pub duration: Option<SpannedStr>,
    /// UDP source ports (default 128).
    #[serde(default)]
    pub source_ports: Option<usize>,
    /// Rcode every answer must have (default NOERROR).
    #[serde(default)]
    pub rcode: Option<SpannedStr>,
    /// 99th percentile latency bound.
    #[serde(default)]
    pub p99_below: Option<SpannedStr>,
    /// Largest tolerated share of timeouts (default 0).
    #[serde(default)]
    pub max_timeout_rate: Option<f64>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// `expectHttp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectHttp {
    pub from: Spanned<RawClient>,
    /// `http://<host>[:port]/path`; the host goes through the pod's resolver (glibc), or names a Service with `via`.
    pub url: SpannedStr,
    /// `dns` (default), `clusterIP`, or `{node: N}`: the url's Service port at its ClusterIP or its nodePort on node N.
    #[serde(default)]
    pub via: Option<Spanned<RawVia>>,
    /// `preserved` or `node`: the source address the backend sees (netexec `/clientip`).
    #[serde(default, rename = "sourceIP")]
    pub source_ip: Option<SpannedStr>,
    /// Over many new connections, only these pods answer.
    #[serde(default)]
    pub reaches_only: Option<Spanned<RawPodSet>>,
    /// Expected status; default 200.
    #[serde(default)]
    pub status: Option<u16>,
    /// The answering pod is one of these.
    #[serde(default)]
    pub answered_by: Option<Spanned<RawPodSet>>,
    /// Over many new connections, every one of these pods answers at least once.
    #[serde(default)]
    pub reaches_all: Option<Spanned<RawPodSet>>,
    /// How many new connections for `reachesAll` (default: enough that a fair random balancer misses a pod with
    /// probability below 1e-9, and a stale extra backend goes unnoticed with probability below 1e-9).
    #[serde(default)]
    pub requests: Option<u32>,
    /// Every request is answered by the same pod (session affinity).
    #[serde(default)]
    pub same_backend: bool,
    /// The spread over `reachesAll` pods is not significantly unfair: χ² test against uniform at this α.
    #[serde(default)]
    pub fair: Option<RawFair>,
    /// `plain` (default: a new connection per request) or `reqwest` (the pod's pooled `reqwest::Client`).
    #[serde(default)]
    pub client: Option<SpannedStr>,
    /// `IPv6`: resolve the host with AAAA (`curl -6`), or dial the Service's IPv6 ClusterIP (default: A, or the
    /// primary ClusterIP).
    #[serde(default)]
    pub ip_family: Option<SpannedStr>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// `fair: {alpha: 0.001}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFair {
    pub alpha: Spanned<f64>,
}

/// `expectConnect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectConnect {
    pub from: Spanned<RawClient>,
    pub namespace: SpannedStr,
    pub service: SpannedStr,
    pub port: Spanned<u16>,
    /// `{node: N}`: dial node N's address at the port's nodePort instead of the ClusterIP.
    #[serde(default)]
    pub via: Option<RawNodeVia>,
    /// `connected`, `refused` or `timeout`.
    pub result: SpannedStr,
    /// The ClusterIP of this family (default: the Service's primary ClusterIP).
    #[serde(default)]
    pub ip_family: Option<SpannedStr>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}

/// `expectUdp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectUdp {
    pub from: Spanned<RawClient>,
    pub namespace: SpannedStr,
    pub service: SpannedStr,
    /// A UDP port of the service.
    pub port: Spanned<u16>,
    /// `{node: N}`: send to node N's address at the port's nodePort instead of the ClusterIP.
    #[serde(default)]
    pub via: Option<RawNodeVia>,
    /// The datagram, a netexec UDP command (default `hostname`).
    #[serde(default)]
    pub send: Option<SpannedStr>,
    /// Keep this flow: the same client socket as every earlier step naming it.
    #[serde(default)]
    pub flow: Option<SpannedStr>,
    /// `answered` (default), `refused` or `timeout`.
    #[serde(default)]
    pub result: Option<SpannedStr>,
    /// The ClusterIP of this family (default: the Service's primary ClusterIP).
    #[serde(default)]
    pub ip_family: Option<SpannedStr>,
    /// For `send: hostname`: the answering pod is one of these.
    #[serde(default)]
    pub answered_by: Option<Spanned<RawPodSet>>,
    /// The exact reply.
    #[serde(default)]
    pub reply: Option<SpannedStr>,
    #[serde(default)]
    pub timeout: Option<SpannedStr>,
}
