//! The in-cluster probe server (`svcbench agent`): a small HTTP/1.1 server that runs the same [`probe`] code as the
//! embedded target, from wherever it is started — in a real cluster, an agent pod in the namespace a scenario names,
//! so DNS answers and traffic are seen with that pod's real `/etc/resolv.conf` and network.
//!
//! Responsible for: the HTTP API (`POST /probe`, `GET /info`, `GET /healthz`), building the pod's [`ProbeContext`]
//! from a resolv.conf file, keeping one caller from overloading the pod (body size, probe limits, concurrency, run
//! time), and draining in-flight probes on shutdown. Not responsible for: how the harness reaches the pod (the kube
//! target goes through the API server's pod proxy) or what a probe's result means (the runner judges that).
//!
//! Only its harness may use it: with a token (the kube target mounts a per-run Secret), every request but
//! `GET /healthz` (the kubelet's readiness probe, which runs nothing) must carry it in [`TOKEN_HEADER`], compared in
//! constant time; without it the answer is 401 and nothing is read, parsed or run.
//!
//! API (every error body is a `metav1.Status`, see [`reply`]):
//! - `POST /probe`, body a JSON [`ProbeRequest`] (`{"probe": "dns", ...}`) → 200 with the JSON
//!   [`ProbeResponse`](probe::ProbeResponse); 400 malformed JSON or an unknown probe; 408 the body did not arrive
//!   within 30 s; 413 body over [`MAX_BODY`]; 422 the probe cannot run (no nameserver, a name that does not resolve
//!   for a load run, a spec over the agent's limits — see [`limits`]); 503 every probe slot stayed busy for [`QUEUE_WAIT`], or the
//!   agent is shutting down; 504 the probe ran past the agent's time cap.
//! - `GET /info` → [`AgentInfo`]; `GET /healthz` → `ok` (the pod's readiness probe).
//! - Anything else: 404 (unknown path) or 405 with `Allow` (wrong method).

pub mod limits;
pub mod reply;

use std::{
    convert::Infallible,
    future::Future,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::{Method, Request, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
};

pub use limits::{MAX_DNS_OUTSTANDING, MAX_DNS_SOURCE_PORTS, MAX_LOAD_CONNECTIONS, check_limits, parse_request};
use reply::{Reply, error, json, method_not_allowed, reply};

use crate::probe::{
    self, AddressMap, Dialer, ProbeContext, ProbeRequest, ResolvConf,
    hosts::{HostsFile, MAX_HOSTS_FILE},
};

/// The header that carries the run's token (not `Authorization`: the API server's pod proxy consumes that one).
pub const TOKEN_HEADER: &str = "x-svcbench-token";
/// The shortest token an agent accepts: a guessable one would be no guard.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Largest request body accepted (a probe request is a few hundred bytes; a DNS load name list stays far below).
pub const MAX_BODY: usize = 1024 * 1024;
/// Longest a probe may take end to end; load specs whose own bounds exceed it are refused up front.
pub const MAX_PROBE_TIME: Duration = Duration::from_secs(120);
/// How long a request waits for a free probe slot before the agent answers 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight probes before closing their connections (within Kubernetes' default 30 s
/// termination grace period).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// How an agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Address to listen on (`0.0.0.0:8080` in a pod; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The resolver configuration probes use: the pod's own file.
    pub resolv_conf: PathBuf,
    /// The hosts file the libc flavours read first: the pod's own (a missing file reads as empty).
    pub hosts: PathBuf,
    /// Test/debug only: send traffic for `<nameserver>:53` to `<nameserver>:<port>` instead.
    pub dns_port: Option<u16>,
    /// Per-attempt timeout of one DNS query, connect or HTTP exchange.
    pub probe_timeout: Duration,
    /// Probes run at once; further requests queue for up to [`QUEUE_WAIT`].
    pub max_concurrent: usize,
    /// Cap on one probe's run time.
    pub max_probe_time: Duration,
    /// How long shutdown waits for in-flight probes.
    pub shutdown_grace: Duration,
    /// The token every request but `GET /healthz` must carry; `None` serves anyone (a local agent for debugging).
    pub token: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            hosts: PathBuf::from("/etc/hosts"),
            dns_port: None,
            probe_timeout: Duration::from_secs(2),
            max_concurrent: 8,
            max_probe_time: MAX_PROBE_TIME,
            shutdown_grace: SHUTDOWN_GRACE,
            token: None,
        }
    }
}

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The resolv.conf file could not be read.
    #[error("cannot read resolver configuration {path}: {source}")]
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid agent setting: {0}")]
    Config(String),
}

/// What `GET /info` returns: who the agent is and the context its probes run with.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    /// svcbench version.
    pub version: String,
    /// The host (pod) name.
    pub hostname: String,
    /// The resolv.conf file read at startup.
    pub resolv_conf_path: PathBuf,
    /// Its parsed contents, as probes use them.
    pub resolv_conf: ResolvConf,
    /// The test/debug DNS port override, if any.
    pub dns_port: Option<u16>,
    /// Per-attempt probe timeout, ms.
    pub probe_timeout_ms: u64,
    /// Probes run at once.
    pub max_concurrent_probes: usize,
    /// Cap on one probe's run time, ms.
    pub max_probe_time_ms: u64,
}

/// Sends DNS traffic for the nameservers' port 53 to another port; everything else is dialled as given.
///
/// Only for tests and debugging: the embedded cluster's DNS listens on a high port when not run as root, and an
/// agent pointed at it must find it. In a pod nothing is translated.
#[derive(Debug, Clone)]
pub struct DnsPortMap {
    nameservers: Vec<IpAddr>,
    port: u16,
}

impl DnsPortMap {
    /// Maps `<ns>:53` → `<ns>:port` for every `ns` in `nameservers`.
    pub fn new(nameservers: Vec<IpAddr>, port: u16) -> Self {
        Self { nameservers, port }
    }
}

impl AddressMap for DnsPortMap {
    fn resolve(&self, addr: SocketAddr) -> SocketAddr {
        match addr.ip() {
            ip if addr.port() == 53 && self.nameservers.contains(&ip) => SocketAddr::new(ip, self.port),
            // Beside an embedded cluster (the only use of `--dns-port`) the IPv6 addresses are models that only
            // its in-process map translates: never dial them on the host, refuse at once.
            IpAddr::V6(v6) if !v6.is_loopback() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            _ => addr,
        }
    }
}

/// The probe context of the pod the agent runs in: its resolver configuration, its own source address (no bind),
/// and with `dns_port` the test/debug nameserver port translation.
pub fn probe_context(
    resolv_conf: ResolvConf,
    hosts: HostsFile,
    dns_port: Option<u16>,
    timeout: Duration,
) -> ProbeContext {
    let dialer = match dns_port {
        Some(port) => Dialer::new(Arc::new(DnsPortMap::new(resolv_conf.nameservers.clone(), port)), None),
        None => Dialer::default(),
    };
    ProbeContext { resolv_conf, dialer, timeout, hosts, http_pool: Default::default(), udp_flows: Default::default() }
}

/// A bound agent, ready to serve.
pub struct Agent {
    listener: TcpListener,
    state: Arc<State>,
    shutdown_grace: Duration,
}

struct State {
    ctx: ProbeContext,
    info: AgentInfo,
    slots: Arc<Semaphore>,
    max_probe_time: Duration,
    token: Option<Vec<u8>>,
}

impl Agent {
    /// Reads the resolver configuration and binds the listen address.
    ///
    /// # Errors
    /// The resolv.conf file cannot be read, the address cannot be bound, or a setting is zero.
    pub async fn bind(config: &AgentConfig) -> Result<Self, AgentError> {
        if config.max_concurrent == 0 {
            return Err(AgentError::Config("max concurrent probes must be at least 1".into()));
        }
        if config.probe_timeout.is_zero() || config.max_probe_time.is_zero() {
            return Err(AgentError::Config("probe timeouts must be positive".into()));
        }
        if config.token.as_ref().is_some_and(|t| t.len() < MIN_TOKEN_BYTES) {
            return Err(AgentError::Config(format!("the token must be at least {MIN_TOKEN_BYTES} bytes")));
        }
        let resolv_conf = read_resolv_conf(&config.resolv_conf).await?;
        let hosts = read_hosts(&config.hosts).await;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AgentError::Bind { addr: config.listen, source })?;
        let info = AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: hostname(),
            resolv_conf_path: config.resolv_conf.clone(),
            resolv_conf: resolv_conf.clone(),
            dns_port: config.dns_port,
            probe_timeout_ms: duration_ms(config.probe_timeout),
            max_concurrent_probes: config.max_concurrent,
            max_probe_time_ms: duration_ms(config.max_probe_time),
        };
        let state = State {
            ctx: probe_context(resolv_conf, hosts, config.dns_port, config.probe_timeout),
            info,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            max_probe_time: config.max_probe_time,
            token: config.token.as_ref().map(|t| t.as_bytes().to_vec()),
        };
        Ok(Self { listener, state: Arc::new(state), shutdown_grace: config.shutdown_grace })
    }

    /// The address actually bound (the chosen port when asked for port 0).
    ///
    /// # Errors
    /// The OS cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// What `GET /info` reports.
    pub fn info(&self) -> &AgentInfo {
        &self.state.info
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish for up to the shutdown
    /// grace, and closes what is left.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, state, shutdown_grace } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(connection(stream, peer, state.clone(), stop_rx.clone()));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning on accept.
                        tracing::warn!(error = %e, "agent: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // New connections are refused from here on; queued requests get 503, running probes keep their slots.
        drop(listener);
        state.slots.close();
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(open = connections.len(), grace = ?shutdown_grace, "agent: closing unfinished requests");
            connections.abort_all();
        }
    }
}

async fn read_resolv_conf(path: &Path) -> Result<ResolvConf, AgentError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| AgentError::ResolvConf { path: path.to_owned(), source })?;
    Ok(ResolvConf::parse(&text))
}

/// The pod's hosts file, its first [`MAX_HOSTS_FILE`] bytes; none (a missing or unreadable file) is empty, as the
/// libraries read it.
async fn read_hosts(path: &Path) -> HostsFile {
    match tokio::fs::read(path).await {
        Ok(bytes) => HostsFile::parse(&String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_HOSTS_FILE)])),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no hosts file: the libc flavours go straight to DNS");
            HostsFile::default()
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The kernel's host name (the pod name in Kubernetes), else `$HOSTNAME`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Serves one connection; on shutdown finishes the request in progress and closes.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // A client that never finishes its headers must not hold a connection forever.
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // The `Ref` that `wait_for` returns must not live across the awaits below (it is not `Send`).
    let stopping = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "agent: connection ended with an error");
            }
        }
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let path = req.uri().path().to_owned();
    if (req.method(), path.as_str()) == (&Method::GET, "/healthz") {
        return reply(StatusCode::OK, "text/plain; charset=utf-8", Bytes::from_static(b"ok"));
    }
    // Before anything else is looked at: a stranger learns only that a token is needed.
    if let Some(expected) = &state.token {
        let given = req.headers().get(TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given, expected.as_slice())) {
            tracing::info!(%peer, %path, "agent: refused a request without the run's token");
            return error(
                StatusCode::UNAUTHORIZED,
                format!("this agent answers only its harness: no valid {TOKEN_HEADER}"),
            );
        }
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/info") => json(StatusCode::OK, &state.info),
        (&Method::POST, "/probe") => probe(state, req, peer).await,
        (_, "/healthz" | "/info") => method_not_allowed("GET"),
        (_, "/probe") => method_not_allowed("POST"),
        _ => error(StatusCode::NOT_FOUND, format!("no endpoint `{path}`: use POST /probe, GET /info or GET /healthz")),
    }
}

async fn probe(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    // A declared length over the limit is refused before reading anything: waiting for a body that will be refused
    // anyway would hold the connection until the read timeout.
    if let Some(length) = req.headers().get(header::CONTENT_LENGTH)
        && length.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > MAX_BODY as u64)
    {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes (Content-Length: {})", length.to_str().unwrap_or("?")),
        );
    }
    // The body read is bounded in size and time, so a slow or huge upload cannot hold a connection.
    let body =
        match tokio::time::timeout(Duration::from_secs(30), Limited::new(req.into_body(), MAX_BODY).collect()).await {
            Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "timed out reading the request body".into()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {MAX_BODY} bytes"));
            }
            Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let kind = kind(&request);
    if let Err(reason) = check_limits(&request, state.max_probe_time) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, reason);
    }
    let _slot = match tokio::time::timeout(QUEUE_WAIT, state.slots.clone().acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        Ok(Err(_)) => return error(StatusCode::SERVICE_UNAVAILABLE, "the agent is shutting down".into()),
        Err(_) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "busy: {} probes running and none finished in {QUEUE_WAIT:?}",
                    state.info.max_concurrent_probes
                ),
            );
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return r;
        }
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(state.max_probe_time, probe::run(&state.ctx, &request)).await;
    let elapsed = started.elapsed();
    match outcome {
        Ok(Ok(response)) => {
            tracing::debug!(%peer, probe = kind, ?elapsed, "agent: probe done");
            json(StatusCode::OK, &response)
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, probe = kind, ?elapsed, error = %e, "agent: probe could not run");
            error(StatusCode::UNPROCESSABLE_ENTITY, format!("{kind} probe could not run: {e}"))
        }
        Err(_) => {
            tracing::warn!(%peer, probe = kind, "agent: probe exceeded its time cap");
            error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{kind} probe did not finish within the agent's {:?} cap", state.max_probe_time),
            )
        }
    }
}

fn kind(request: &ProbeRequest) -> &'static str {
    match request {
        ProbeRequest::ResolvConf => "resolv_conf",
        ProbeRequest::Dns { .. } => "dns",
        ProbeRequest::Http { .. } => "http",
        ProbeRequest::Connect { .. } => "connect",
        ProbeRequest::Udp { .. } => "udp",
        ProbeRequest::Load(_) => "load",
        ProbeRequest::DnsLoad(_) => "dns_load",
        ProbeRequest::Batch(_) => "batch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_port_translates_only_nameserver_port_53() {
        let ns: IpAddr = "127.9.0.10".parse().unwrap();
        let map = DnsPortMap::new(vec![ns], 5353);
        assert_eq!(map.resolve(SocketAddr::new(ns, 53)), SocketAddr::new(ns, 5353));
        assert_eq!(map.resolve(SocketAddr::new(ns, 80)), SocketAddr::new(ns, 80));
        let other: SocketAddr = "127.9.0.11:53".parse().unwrap();
        assert_eq!(map.resolve(other), other);
        let ctx = probe_context(
            ResolvConf::cluster_first(ns, "test", "cluster.local"),
            HostsFile::default(),
            Some(5353),
            Duration::from_secs(1),
        );
        assert_eq!(ctx.dialer.resolve(SocketAddr::new(ns, 53)), SocketAddr::new(ns, 5353));
        assert_eq!(ctx.dialer.source(), None, "an agent dials from its own pod address");
        let plain = probe_context(
            ResolvConf::cluster_first(ns, "test", "cluster.local"),
            HostsFile::default(),
            None,
            Duration::from_secs(1),
        );
        assert_eq!(plain.dialer.resolve(SocketAddr::new(ns, 53)), SocketAddr::new(ns, 53));
    }
}
