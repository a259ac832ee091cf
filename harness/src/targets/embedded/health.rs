//! Health check node ports: what kube-proxy serves on `healthCheckNodePort` of every node for a `LoadBalancer`
//! Service with `externalTrafficPolicy: Local`, so a load balancer sends only to nodes that have endpoints: 200 with
//! local endpoints, 503 without, and a JSON body naming the Service and the count.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::task::TaskTracker;

use super::state::Snapshot;

/// kube-proxy's answer (pkg/proxy/healthcheck/service_health.go) for the entry at `addr` in `snap`.
pub fn answer(snap: &Snapshot, addr: SocketAddr) -> (StatusCode, String) {
    match snap.health.get(&addr) {
        Some(h) => {
            let body = serde_json::json!({
                "service": { "namespace": h.service.namespace, "name": h.service.name },
                "localEndpoints": h.local_endpoints,
                "serviceProxyHealthy": true,
            });
            let status = if h.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, body.to_string())
        }
        None => (StatusCode::NOT_FOUND, "no such service".into()),
    }
}

/// Serves the health check of `addr` until aborted, reading the newest snapshot for every request.
pub async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    tracker: TaskTracker,
) {
    super::pod::serve_http(listener, tracker, move |_req, _peer| {
        let (status, body) = answer(&snapshots.borrow(), addr);
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-content-type-options", "nosniff")
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    })
    .await;
}
