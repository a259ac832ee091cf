//! `svcbench lab netexec`: what the lab runs for agnhost's `netexec` (the upstream e2e backend), flag-compatible
//! for the flags svcbench and the e2e tests use: `--http-port`, `--udp-port` and `--delay-shutdown` (keep serving that
//! many seconds after SIGTERM, so terminating endpoints really serve). HTTP: `/hostname`, `/clientip`, `/echo?msg=`,
//! `/healthz`, `/dial?request=&host=&port=` (this pod makes the request), `/shell?cmd=` (JSON `{"output": …}` or `{"error": …}`, as agnhost answers), `/exit?code=`, and
//! `NOW: <time>` on any other path. UDP: `hostname`, `echo <text>`, `clientip`.
//!
//! Like agnhost (Go's `:port` listeners), it serves both families on one dual-stack socket per protocol (`[::]`,
//! IPv4 clients arriving as `::ffff:a.b.c.d`, reported as plain IPv4 as Go does); where the kernel has no IPv6 it
//! falls back to `0.0.0.0`. Lab namespaces keep the kernel's default `net.ipv6.bindv6only=0`, which is what makes
//! `[::]` dual-stack.

use std::{
    convert::Infallible,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use crate::netexec::query;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

/// netexec's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct NetexecArgs {
    /// HTTP port.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// UDP port (0: none).
    #[arg(long, default_value_t = 8081)]
    pub udp_port: u16,
    /// Seconds to keep serving after SIGTERM.
    #[arg(long, default_value_t = 0)]
    pub delay_shutdown: u64,
    /// Accepted and ignored (agnhost flags the lab does not implement).
    #[arg(long)]
    pub sctp_port: Option<i32>,
}

/// Serves until SIGTERM (+ the delay) or `/exit`.
///
/// # Errors
/// A port cannot be bound.
pub async fn run(args: NetexecArgs) -> anyhow::Result<i32> {
    let hostname = Arc::<str>::from(nix::unistd::gethostname()?.to_string_lossy().into_owned());
    let listener = match tokio::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, args.http_port)).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, args.http_port)).await?,
    };
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::channel::<i32>(1);
    if args.udp_port != 0 {
        let socket = match tokio::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, args.udp_port)).await {
            Ok(s) => s,
            Err(_) => tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, args.udp_port)).await?,
        };
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(answer) = crate::netexec::udp_answer(&buf[..n], canonical(peer), &hostname) {
                    // The reply goes to the address as the socket saw it (a v4-mapped one on the dual-stack socket).
                    let _ = socket.send_to(answer.as_bytes(), peer).await;
                }
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let serve = async {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (hostname, exit_tx, peer) = (hostname.clone(), exit_tx.clone(), canonical(peer));
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, peer, hostname.clone(), exit_tx.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    };
    tokio::pin!(serve);
    tokio::select! {
        () = &mut serve => Ok(0),
        Some(code) = exit_rx.recv() => Ok(code),
        _ = term.recv() => {
            // Terminating pods keep serving for their delay, as agnhost's --delay-shutdown does.
            let _ = tokio::time::timeout(Duration::from_secs(args.delay_shutdown), &mut serve).await;
            Ok(0)
        }
    }
}

/// A peer as Go reports it: an IPv4 client of a dual-stack socket (`[::ffff:a.b.c.d]:p`) as `a.b.c.d:p`.
fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// agnhost's `/dial?request=PATH&protocol=http&host=H&port=P&tries=N`: this pod GETs `http://H:P/PATH` N times
/// and answers `{"responses": [body…], "errors": [error…]}` — how e2e tests (and svcbench's kube target) probe from a
/// backend pod, for hairpin and source-IP checks.
async fn dial<B>(req: &Request<B>) -> (StatusCode, String) {
    let (Some(host), Some(port)) = (query(req, "host"), query(req, "port").and_then(|p| p.parse::<u16>().ok())) else {
        return (StatusCode::BAD_REQUEST, "host and port are required".into());
    };
    let protocol = query(req, "protocol").unwrap_or_else(|| "http".into());
    if protocol != "http" {
        return (StatusCode::BAD_REQUEST, format!("unsupported protocol {protocol}"));
    }
    let request = query(req, "request").unwrap_or_default();
    let tries = query(req, "tries").and_then(|t| t.parse::<u32>().ok()).unwrap_or(1).clamp(1, 100);
    let (mut responses, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..tries {
        match tokio::time::timeout(Duration::from_secs(5), get(&host, port, &request)).await {
            Ok(Ok(body)) => responses.push(body),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(format!(
                "Get \"http://{}/{request}\": context deadline exceeded (timeout)",
                authority(&host, port)
            )),
        }
    }
    let mut answer = serde_json::Map::new();
    if !responses.is_empty() {
        answer.insert("responses".into(), serde_json::json!(responses));
    }
    if !errors.is_empty() {
        answer.insert("errors".into(), serde_json::json!(errors));
    }
    (StatusCode::OK, serde_json::Value::Object(answer).to_string())
}

/// `host:port`, an IPv6 literal bracketed, for URLs and Host headers (Go's net.JoinHostPort).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// One GET over a new connection; the body as text.
async fn get(host: &str, port: u16, path: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty};
    let authority = authority(host, port);
    let url = format!("http://{authority}/{path}");
    let stream =
        tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("Get \"{url}\": dial tcp: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let driver = tokio::spawn(conn);
    let request = Request::get(format!("/{path}"))
        .header(hyper::header::HOST, authority)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("Get \"{url}\": {e}"))?;
    let body = response.into_body().collect().await.map_err(|e| format!("Get \"{url}\": {e}"))?.to_bytes();
    driver.abort();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    hostname: Arc<str>,
    exit: tokio::sync::mpsc::Sender<i32>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/shell" => {
            let cmd = query(&req, "shellCommand").or_else(|| query(&req, "cmd")).unwrap_or_default();
            let output = tokio::process::Command::new("/bin/sh").arg("-c").arg(&cmd).output().await;
            let body = match output {
                Ok(o) if o.status.success() => serde_json::json!({"output": String::from_utf8_lossy(&o.stdout)}),
                Ok(o) => {
                    serde_json::json!({"error": format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim())})
                }
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            (StatusCode::OK, body.to_string())
        }
        "/dial" => dial(&req).await,
        "/exit" => {
            let code = query(&req, "code").and_then(|c| c.parse().ok()).unwrap_or(0);
            let _ = exit.try_send(code);
            (StatusCode::OK, String::new())
        }
        _ => crate::netexec::answer(&req, peer, &hostname),
    };
    Ok(crate::netexec::text_response(status, body))
}
