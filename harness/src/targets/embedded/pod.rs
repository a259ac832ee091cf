//! A pod's container: a real HTTP server on the pod's own loopback IP answering the agnhost `netexec` endpoints the
//! upstream e2e tests use (`/hostname`, `/clientip`, `/echo?msg=`, `/healthz`, `/`).

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::task::TaskTracker;

/// A running pod; dropping it stops its listeners and closes its connections, as a killed container would.
#[derive(Debug)]
pub struct PodProcess {
    _tasks: JoinSet<()>,
}

/// Starts serving netexec on every listener, answering as pod `name`. Every task (listener and connection) is
/// tracked by `tracker`, so the cluster can wait until each of the pod's sockets is closed.
pub fn start(name: &str, listeners: Vec<TcpListener>, tracker: &TaskTracker) -> PodProcess {
    let mut tasks = JoinSet::new();
    let name: Arc<str> = Arc::from(name);
    for listener in listeners {
        tasks.spawn(tracker.track_future(serve(listener, name.clone(), tracker.clone())));
    }
    PodProcess { _tasks: tasks }
}

async fn serve(listener: TcpListener, name: Arc<str>, tracker: TaskTracker) {
    // Connections live in this task's set so that stopping the pod also cuts them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let name = name.clone();
                connections.spawn(tracker.track_future(async move {
                    let service = service_fn(move |req| handle(req, peer, name.clone()));
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                }));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(req: Request<Incoming>, peer: SocketAddr, name: Arc<str>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/hostname" => (StatusCode::OK, name.to_string()),
        "/clientip" => (StatusCode::OK, peer.to_string()),
        "/healthz" => (StatusCode::OK, "ok".to_owned()),
        "/echo" => {
            let param = |name: &str| {
                req.uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')))
                    .map(percent_decode)
            };
            // netexec's `code` sets the status (a non-number is reported in the body with 200).
            match param("code").map(|c| c.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok())) {
                Some(Some(code)) => (code, param("msg").unwrap_or_default()),
                Some(None) => (StatusCode::OK, "argument 'code' must be an integer or empty".to_owned()),
                None => (StatusCode::OK, param("msg").unwrap_or_default()),
            }
        }
        // netexec serves its root handler for every other path.
        _ => (StatusCode::OK, format!("NOW: {}", jiff::Timestamp::now())),
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid");
    Ok(response)
}

/// Decodes `%XX` and `+` in a query value.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("hello+world%21"), "hello world!");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1");
    }
}
