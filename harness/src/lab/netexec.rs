//! `svcbench lab netexec`: what the lab runs for agnhost's `netexec` (the upstream e2e backend), flag-compatible
//! for the flags svcbench and the e2e tests use: `--http-port`, `--udp-port` and `--delay-shutdown` (keep serving that
//! many seconds after SIGTERM, so terminating endpoints really serve). HTTP: `/hostname`, `/clientip`, `/echo?msg=`,
//! `/healthz`, `/dial?request=&host=&port=` (this pod makes the request), `/shell?cmd=` (JSON `{"output": …}` or `{"error": …}`, as agnhost answers), `/exit?code=`, and
//! `NOW: <time>` on any other path. UDP: `hostname`, `echo <text>`, `clientip`.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

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
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", args.http_port)).await?;
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::channel::<i32>(1);
    if args.udp_port != 0 {
        let socket = tokio::net::UdpSocket::bind(("0.0.0.0", args.udp_port)).await?;
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(answer) = crate::netexec::udp_answer(&buf[..n], peer, &hostname) {
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
            let (hostname, exit_tx) = (hostname.clone(), exit_tx.clone());
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
            Err(_) => {
                errors.push(format!("Get \"http://{host}:{port}/{request}\": context deadline exceeded (timeout)"))
            }
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

/// One GET over a new connection; the body as text.
async fn get(host: &str, port: u16, path: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty};
    let url = format!("http://{host}:{port}/{path}");
    let stream =
        tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("Get \"{url}\": dial tcp: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let driver = tokio::spawn(conn);
    let request = Request::get(format!("/{path}"))
        .header(hyper::header::HOST, format!("{host}:{port}"))
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
