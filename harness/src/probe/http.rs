//! HTTP probe: one GET over a new TCP connection, then `GET /hostname` on the same connection to learn which pod
//! answered (an L4 proxy keeps a connection on one backend, so both requests reach the same pod).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::{ProbeContext, ProbeError, dns};
use crate::scenario::{IpFamily, QueryType, Rcode, ResolverFlavour, Transport};

/// What one HTTP exchange observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResult {
    /// The address connected to (after name resolution, before translation).
    pub address: SocketAddr,
    /// Response status of the requested path.
    pub status: u16,
    /// Response body of the requested path (first 4 KiB).
    pub body: String,
    /// The pod that answered, from `/hostname` on the same connection.
    pub pod: Option<String>,
    /// The client's own address on this connection (what the backend sees when nothing rewrites it).
    #[serde(default)]
    pub local: Option<IpAddr>,
}

/// Failure of an HTTP exchange, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HttpFailure {
    /// The host name did not resolve.
    Resolve {
        /// Outcome of the lookup.
        rcode: Rcode,
    },
    /// Connection refused.
    Refused {
        /// Address dialled.
        address: SocketAddr,
    },
    /// Connect or exchange timed out.
    Timeout {
        /// Address dialled.
        address: SocketAddr,
    },
    /// Reset, bad response, or anything else.
    Other {
        /// What happened.
        message: String,
    },
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpFailure::Resolve { rcode } => write!(f, "name did not resolve ({rcode:?})"),
            HttpFailure::Refused { address } => write!(f, "connection to {address} refused"),
            HttpFailure::Timeout { address } => write!(f, "connection to {address} timed out"),
            HttpFailure::Other { message } => f.write_str(message),
        }
    }
}

/// Resolves `host` as curl on Debian would (glibc flavour; `AAAA` for IPv6, as `curl -6`, else `A`), or takes it
/// as an IP literal.
///
/// # Errors
/// The nameserver could not be reached.
pub async fn resolve_host(
    ctx: &ProbeContext,
    host: &str,
    family: Option<IpFamily>,
) -> Result<Result<IpAddr, Rcode>, ProbeError> {
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(Ok(ip));
    }
    let query_type = if family == Some(IpFamily::IPv6) { QueryType::Aaaa } else { QueryType::A };
    let lookup = dns::lookup(ctx, host, query_type, ResolverFlavour::Glibc, Transport::Udp).await?;
    let ip = lookup.records.iter().find_map(|r| match r {
        dns::DnsRecord::Address { ip } => Some(*ip),
        _ => None,
    });
    Ok(ip.ok_or(if lookup.rcode == Rcode::NoError { Rcode::NoData } else { lookup.rcode }))
}

/// The socket address of `host:port` as [`resolve_host`] finds it, or why it cannot be dialled.
///
/// # Errors
/// The nameserver could not be reached.
pub async fn resolve_address(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    family: Option<IpFamily>,
) -> Result<Result<SocketAddr, HttpFailure>, ProbeError> {
    Ok(resolve_host(ctx, host, family)
        .await?
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|rcode| HttpFailure::Resolve { rcode }))
}

/// The Host header for `host`: an IPv6 literal in brackets (RFC 7230 §5.4), anything else as given.
fn host_header(host: &str) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => host.to_owned(),
    }
}

/// GETs `path` from `host:port` over a new connection and asks `/hostname` on the same connection.
///
/// # Errors
/// The nameserver could not be reached (other failures are classified in the `Err` of the inner result).
pub async fn get(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    path: &str,
    family: Option<IpFamily>,
) -> Result<Result<HttpResult, HttpFailure>, ProbeError> {
    Ok(match resolve_address(ctx, host, port, family).await? {
        Ok(address) => get_addr(ctx, address, host, path).await,
        Err(f) => Err(f),
    })
}

/// GETs `path` from `address` (Host header `host`) and asks `/hostname` on the same connection.
pub async fn get_addr(
    ctx: &ProbeContext,
    address: SocketAddr,
    host: &str,
    path: &str,
) -> Result<HttpResult, HttpFailure> {
    let stream = match tokio::time::timeout(ctx.timeout, ctx.dialer.connect_tcp(address)).await {
        Err(_) => return Err(HttpFailure::Timeout { address }),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(HttpFailure::Refused { address });
        }
        Ok(Err(e)) => return Err(HttpFailure::Other { message: format!("connect {address}: {e}") }),
        Ok(Ok(s)) => s,
    };
    let local = stream.local_addr().ok().map(|a| ctx.dialer.model_source(address, a.ip()));
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpFailure::Other { message: format!("handshake: {e}") })?;
        let driver = tokio::spawn(conn);
        let (status, body) = send(&mut sender, host, path).await?;
        let pod = if path == "/hostname" {
            Some(body.clone())
        } else {
            match send(&mut sender, host, "/hostname").await {
                Ok((200, name)) => Some(name),
                _ => None,
            }
        };
        driver.abort();
        Ok(HttpResult { address, status, body, pod, local })
    };
    tokio::time::timeout(ctx.timeout, exchange).await.unwrap_or(Err(HttpFailure::Timeout { address }))
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> Result<(u16, String), HttpFailure> {
    let request = Request::get(path)
        .header(header::HOST, host_header(host))
        .header(header::USER_AGENT, "svcbench")
        .body(Empty::<Bytes>::new())
        .map_err(|e| HttpFailure::Other { message: format!("request: {e}") })?;
    let response =
        sender.send_request(request).await.map_err(|e| HttpFailure::Other { message: format!("GET {path}: {e}") })?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| HttpFailure::Other { message: format!("body of {path}: {e}") })?
        .to_bytes();
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).trim_end().to_owned();
    Ok((status, text))
}
