//! Probes: the code that looks at a cluster from inside a pod — DNS lookups with a resolver flavour, HTTP GETs,
//! TCP connects, UDP exchanges. Probes know nothing about scenarios or targets; a target runs them with the [`ProbeContext`] of a pod
//! in some namespace (in process for the embedded target, in an agent pod for real clusters).

pub mod batch;
pub mod connect;
pub mod dialer;
pub mod dns;
pub mod dnsload;
pub mod hickory;
pub mod hosts;
pub mod http;
pub mod load;
pub mod pace;
pub mod pooled;
pub mod resolv_conf;
pub mod schedule;
pub mod udp;

pub use dialer::{AddressMap, Dialer};
pub use resolv_conf::ResolvConf;

use std::time::Duration;

/// Where a probe runs from: the pod's resolver configuration and how it reaches addresses.
#[derive(Clone)]
pub struct ProbeContext {
    /// The pod's `/etc/resolv.conf`.
    pub resolv_conf: ResolvConf,
    /// Opens sockets as the pod would.
    pub dialer: Dialer,
    /// Per-attempt timeout for one DNS query, connect or HTTP exchange.
    pub timeout: Duration,
    /// The pod's `/etc/hosts` (glibc and musl read it before DNS).
    pub hosts: hosts::HostsFile,
    /// The pod's pooled `reqwest` clients (one per source address), kept across probes.
    pub http_pool: std::sync::Arc<pooled::HttpPool>,
    /// The pod's kept UDP flows (shared by every probe of this pod).
    pub udp_flows: std::sync::Arc<udp::UdpFlows>,
}

/// A probe could not run at all (as opposed to observing a failure, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A socket operation failed in a way the probe does not classify.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The resolver config has no nameserver.
    #[error("resolv.conf has no nameserver")]
    NoNameserver,
    /// A DNS message could not be built or parsed.
    #[error("DNS: {0}")]
    Dns(String),
    /// An HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// A batch was refused or could not finish.
    #[error("batch: {0}")]
    Batch(String),
}

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::scenario::{QueryType, ResolverFlavour, Transport};

/// A probe to run from a pod: the request half of the agent API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "probe", rename_all = "snake_case")]
pub enum ProbeRequest {
    /// Read the pod's resolver configuration.
    ResolvConf,
    /// Resolve a name with a resolver flavour.
    Dns {
        /// Name as given to the library.
        name: String,
        /// Record type.
        query_type: QueryType,
        /// Search algorithm.
        flavour: ResolverFlavour,
        /// Transport.
        transport: Transport,
    },
    /// GET a path over a new connection.
    Http {
        /// Host name (through the resolver) or IP.
        host: String,
        /// Port.
        port: u16,
        /// Path.
        path: String,
        /// The client that sends it.
        #[serde(default, skip_serializing_if = "is_plain")]
        client: crate::scenario::HttpClient,
        /// Resolve `host` for this family only (`AAAA` for IPv6, as `curl -6`); default IPv4 (`A`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        family: Option<crate::scenario::IpFamily>,
    },
    /// Open a TCP connection and close it.
    Connect {
        /// Address to dial.
        address: SocketAddr,
    },
    /// Send one UDP datagram and wait for the reply.
    Udp {
        /// Address to send to.
        address: SocketAddr,
        /// The datagram (a netexec UDP command: `hostname`, `echo <text>`, `clientip`).
        payload: String,
        /// Send on this kept flow (same socket as earlier probes of that name), or on a new socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow: Option<String>,
    },
    /// Generate HTTP load.
    Load(load::LoadSpec),
    /// Generate DNS load against the pod's nameserver.
    DnsLoad(dnsload::DnsLoadSpec),
    /// Many `dns`, `connect` and `http` probes at once, with bounded concurrency.
    Batch(batch::BatchSpec),
}

fn is_plain(client: &crate::scenario::HttpClient) -> bool {
    *client == crate::scenario::HttpClient::Plain
}

/// What a probe observed: the response half of the agent API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "probe", rename_all = "snake_case")]
pub enum ProbeResponse {
    /// The resolver configuration.
    ResolvConf(ResolvConf),
    /// A lookup.
    Dns(dns::DnsLookup),
    /// An HTTP exchange, or how it failed.
    Http(Result<http::HttpResult, http::HttpFailure>),
    /// A connect attempt.
    Connect(connect::ConnectResult),
    /// A UDP exchange.
    Udp(udp::UdpResult),
    /// An HTTP load run.
    Load(load::LoadOutcome),
    /// A DNS load run.
    DnsLoad(dnsload::DnsLoadOutcome),
    /// A batch: one result per probe, in order.
    Batch(batch::BatchOutcome),
}

/// Runs one probe with the pod context `ctx`.
///
/// # Errors
/// The probe could not run at all (e.g. no nameserver reachable for a DNS probe).
pub async fn run(ctx: &ProbeContext, request: &ProbeRequest) -> Result<ProbeResponse, ProbeError> {
    Ok(match request {
        ProbeRequest::ResolvConf => ProbeResponse::ResolvConf(ctx.resolv_conf.clone()),
        ProbeRequest::Dns { name, query_type, flavour, transport } => {
            ProbeResponse::Dns(dns::lookup(ctx, name, *query_type, *flavour, *transport).await?)
        }
        ProbeRequest::Http { host, port, path, client: crate::scenario::HttpClient::Plain, family } => {
            ProbeResponse::Http(http::get(ctx, host, *port, path, *family).await?)
        }
        ProbeRequest::Http { host, port, path, client: crate::scenario::HttpClient::Reqwest, family } => {
            ProbeResponse::Http(pooled::get(ctx, host, *port, path, *family).await?)
        }
        ProbeRequest::Connect { address } => ProbeResponse::Connect(connect::connect(ctx, *address).await),
        ProbeRequest::Udp { address, payload, flow } => {
            ProbeResponse::Udp(udp::exchange(ctx, *address, payload, flow.as_deref()).await)
        }
        ProbeRequest::Load(spec) => ProbeResponse::Load(load::run(ctx, spec).await?),
        ProbeRequest::DnsLoad(spec) => ProbeResponse::DnsLoad(dnsload::run(ctx, spec).await?),
        ProbeRequest::Batch(spec) => ProbeResponse::Batch(batch::run(ctx, spec).await?),
    })
}
