//! The `reqwest` HTTP client: one pooled `reqwest::Client` per pod (and source address), kept across probes as a
//! Rust service keeps its client. Requests reuse its idle keep-alive connection, and an L4 proxy keeps a connection
//! on one backend, so a pooled client pins to the pod its connection reached — what balancing looks like to such a
//! service. Names resolve as reqwest's default resolver does in a glibc pod (`getaddrinfo`: the glibc flavour).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
};

use super::{
    ProbeContext, ProbeError,
    http::{HttpFailure, HttpResult, resolve_address},
};

/// Most distinct source addresses one pool serves (one client each).
const MAX_CLIENTS: usize = 64;

/// Largest response body kept.
const MAX_BODY: usize = 4096;

/// Largest response body read to its end, so the connection goes back to the pool (larger ones close it).
const MAX_DRAINED: usize = 1024 * 1024;

/// The pod's pooled clients, by source address.
#[derive(Debug, Default)]
pub struct HttpPool {
    clients: Mutex<HashMap<Option<IpAddr>, reqwest::Client>>,
}

impl HttpPool {
    /// The pooled client sending from `source` (built on first use).
    fn client(&self, ctx: &ProbeContext) -> Result<reqwest::Client, HttpFailure> {
        let source = ctx.dialer.source();
        let mut clients = self.clients.lock().expect("http pool lock");
        if let Some(c) = clients.get(&source) {
            return Ok(c.clone());
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = reqwest::Client::builder()
            // The probe's network is the pod's: no proxy from the environment.
            .no_proxy()
            .local_address(source)
            .connect_timeout(ctx.timeout)
            .build()
            .map_err(|e| HttpFailure::Other { message: format!("reqwest client: {e}") })?;
        clients.insert(source, client.clone());
        Ok(client)
    }
}

/// GETs `path` from `host:port` with the pod's pooled client, then `/hostname` with it (the same idle connection)
/// to learn which pod answered.
///
/// # Errors
/// The nameserver could not be reached (other failures are classified in the `Err` of the inner result).
pub async fn get(
    ctx: &ProbeContext,
    host: &str,
    port: u16,
    path: &str,
    family: Option<crate::scenario::IpFamily>,
) -> Result<Result<HttpResult, HttpFailure>, ProbeError> {
    let address = match resolve_address(ctx, host, port, family).await? {
        Ok(address) => address,
        Err(f) => return Ok(Err(f)),
    };
    if ctx.dialer.source().is_some_and(|s| s.is_ipv4() != address.is_ipv4()) {
        // The pooled client binds the pod's one source address itself, so the embedded target (whose IPv6 pod
        // addresses are translated to `::1`) cannot tell which pod it is.
        return Ok(Err(HttpFailure::Other {
            message: format!("the pooled reqwest client sends from {} only, not to {address}", host_family(ctx)),
        }));
    }
    let client = match ctx.http_pool.client(ctx) {
        Ok(c) => c,
        Err(f) => return Ok(Err(f)),
    };
    // The socket the pod really opens (a translated port on the embedded target); the Host header keeps the name.
    let url = format!("http://{}", ctx.dialer.resolve(address));
    let (status, body) = match send(ctx, &client, &url, host, path, address).await {
        Ok(answer) => answer,
        Err(f) => return Ok(Err(f)),
    };
    let pod = if path == "/hostname" {
        Some(body.clone())
    } else {
        match send(ctx, &client, &url, host, "/hostname", address).await {
            Ok((200, name)) => Some(name),
            _ => None,
        }
    };
    Ok(Ok(HttpResult { address, status, body, pod, local: ctx.dialer.source() }))
}

/// One load request with the pod's pooled client: the body of a 2xx answer (the pod, for `/hostname`), else the
/// failure class the load generator counts.
pub async fn answer(ctx: &ProbeContext, address: SocketAddr, host: &str, path: &str) -> Result<String, String> {
    let client = ctx.http_pool.client(ctx).map_err(|f| f.to_string())?;
    let url = format!("http://{}", ctx.dialer.resolve(address));
    match send(ctx, &client, &url, host, path, address).await {
        Ok((status, body)) if (200..300).contains(&status) => Ok(body),
        Ok((status, _)) => Err(format!("status {status}")),
        Err(HttpFailure::Refused { .. }) => Err("refused".into()),
        Err(HttpFailure::Timeout { .. }) => Err("timeout".into()),
        Err(f) => Err(f.to_string()),
    }
}

async fn send(
    ctx: &ProbeContext,
    client: &reqwest::Client,
    base: &str,
    host: &str,
    path: &str,
    address: SocketAddr,
) -> Result<(u16, String), HttpFailure> {
    let classify = |e: reqwest::Error| {
        let refused = std::error::Error::source(&e)
            .into_iter()
            .chain(std::iter::successors(std::error::Error::source(&e), |s| s.source()))
            .any(|s| {
                s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            });
        if refused {
            HttpFailure::Refused { address }
        } else if e.is_timeout() {
            HttpFailure::Timeout { address }
        } else {
            HttpFailure::Other { message: format!("reqwest: {e}") }
        }
    };
    let mut response = client
        .get(format!("{base}{path}"))
        .header(reqwest::header::HOST, host)
        .timeout(ctx.timeout)
        .send()
        .await
        .map_err(classify)?;
    let status = response.status().as_u16();
    let (mut body, mut read) = (Vec::new(), 0usize);
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        read += chunk.len();
        if read > MAX_DRAINED {
            break;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The family of the pod's pooled client's source address.
fn host_family(ctx: &ProbeContext) -> &'static str {
    if ctx.dialer.source().is_some_and(|s| s.is_ipv6()) { "IPv6" } else { "IPv4" }
}
