//! A pod's container: a real HTTP server on the pod's own loopback IP answering the agnhost `netexec` endpoints the
//! upstream e2e tests use (`/hostname`, `/clientip`, `/echo?msg=`, `/healthz`, `/`), and netexec's UDP server on the
//! same port numbers (`hostname`, `clientip`, `echo <text>`), as the kube target runs agnhost.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, UdpSocket},
    task::JoinSet,
};
use tokio_util::task::TaskTracker;

use super::ports::PortMap;
use crate::scenario::Protocol;

/// A running pod; dropping it stops its listeners and closes its connections, as a killed container would.
#[derive(Debug)]
pub struct PodProcess {
    _tasks: JoinSet<()>,
}

/// Starts serving netexec on every listener and UDP socket, answering as pod `name`. Every task (listener and
/// connection) is tracked by `tracker`, so the cluster can wait until each of the pod's sockets is closed.
///
/// Peers are told apart by their model address (`ports`): an IPv6 client's socket is on `::1`.
pub fn start(
    name: &str,
    listeners: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
    ports: &Arc<PortMap>,
    tracker: &TaskTracker,
) -> PodProcess {
    let mut tasks = JoinSet::new();
    let name: Arc<str> = Arc::from(name);
    for listener in listeners {
        tasks.spawn(tracker.track_future(serve(listener, name.clone(), ports.clone(), tracker.clone())));
    }
    for socket in udp {
        tasks.spawn(tracker.track_future(serve_udp(socket, name.clone(), ports.clone())));
    }
    PodProcess { _tasks: tasks }
}

async fn serve_udp(socket: UdpSocket, name: Arc<str>, ports: Arc<PortMap>) {
    let mut buf = vec![0u8; 2048];
    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
        if let Some(answer) = crate::netexec::udp_answer(&buf[..n], ports.peer_model(Protocol::Udp, peer), &name) {
            let _ = socket.send_to(answer.as_bytes(), peer).await;
        }
    }
}

async fn serve(listener: TcpListener, name: Arc<str>, ports: Arc<PortMap>, tracker: TaskTracker) {
    serve_http(listener, tracker, move |req, peer| {
        let (status, body) = crate::netexec::answer(req, ports.peer_model(Protocol::Tcp, peer), &name);
        crate::netexec::text_response(status, body)
    })
    .await;
}

/// Serves HTTP/1.1 keep-alive on `listener` until the task is aborted, answering each request with
/// `respond(request, peer)`. Connections live in this task's set, so stopping it also cuts them, and each is tracked
/// by `tracker`.
pub async fn serve_http<F>(listener: TcpListener, tracker: TaskTracker, respond: F)
where
    F: Fn(&Request<Incoming>, SocketAddr) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
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
                let respond = respond.clone();
                connections.spawn(tracker.track_future(async move {
                    let service = service_fn(move |req| {
                        let response = respond(&req, peer);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                }));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
