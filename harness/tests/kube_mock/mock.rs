//! The mocked API server of the kube target tests: kube's own pattern (`tower_test::mock::pair` +
//! `kube::Client::new`), either answering requests one at a time in the order a test expects them ([`expect`]) or
//! serving a whole scenario run from a routing function ([`serve`]), which records every request.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use svcbench::targets::kube::{KubeConfig, KubeTarget};
use tower_test::mock::{self, Handle};

/// The test's end of the mocked API server.
pub type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// A target with run id `t1` over a mocked API server, with short waits.
pub fn target() -> (KubeTarget, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = KubeConfig {
        agent_ready_timeout: Duration::from_secs(3),
        settle_timeout: Duration::from_secs(2),
        ..KubeConfig::default()
    };
    (KubeTarget::with_client(client, config, "t1"), handle)
}

/// A JSON answer.
pub fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect().await.expect("request body").to_bytes();
    if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON request body") }
}

/// Takes the next request, checks method and path (+query), answers `status` with `body`; returns the request body.
pub async fn expect(handle: &mut ApiHandle, method: &str, path: &str, status: u16, body: Value) -> Value {
    expect_with_headers(handle, method, path, status, body).await.0
}

/// The agent token Secret the target creates before an agent pod in `ns`: checks it and returns the token.
pub async fn expect_agent_token(handle: &mut ApiHandle, ns: &str) -> String {
    let path = format!("/api/v1/namespaces/{ns}/secrets");
    let sent =
        expect(handle, "POST", &path, 201, serde_json::json!({"metadata": {"name": "svcbench-agent-token"}})).await;
    assert_eq!(sent["metadata"]["name"], "svcbench-agent-token", "{sent}");
    assert_eq!(sent["metadata"]["labels"]["app.kubernetes.io/managed-by"], "svcbench", "{sent}");
    let token = sent["stringData"]["token"].as_str().unwrap_or_default().to_owned();
    assert!(token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()), "a 32-byte random token: {sent}");
    expect_agent_policy(handle, ns).await;
    token
}

/// The API server's addresses the target reads, then the NetworkPolicy it creates from them in `ns`: checked.
pub async fn expect_agent_policy(handle: &mut ApiHandle, ns: &str) {
    expect(
        handle,
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?&labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes",
        200,
        API_SERVER_SLICES.clone(),
    )
    .await;
    let path = format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies");
    let sent = expect(handle, "POST", &path, 201, serde_json::json!({"metadata": {"name": "svcbench-agent"}})).await;
    assert_eq!(sent["spec"]["podSelector"]["matchLabels"]["app"], "svcbench-agent", "{sent}");
    assert_eq!(sent["spec"]["policyTypes"], serde_json::json!(["Ingress"]), "{sent}");
    assert_eq!(
        sent["spec"]["ingress"],
        serde_json::json!([{"from": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"port": 8080, "protocol": "TCP"}]}]),
        "only the API server, only the agent's port: {sent}"
    );
}

/// The `kubernetes` Service's EndpointSlices: one API server at 192.0.2.10.
pub static API_SERVER_SLICES: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::json!({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {}, "items": [
        {"metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
         "addressType": "IPv4", "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["192.0.2.10"], "conditions": {"ready": true}}]}]})
});

/// As [`expect`], also returning the request's headers.
pub async fn expect_with_headers(
    handle: &mut ApiHandle,
    method: &str,
    path: &str,
    status: u16,
    body: Value,
) -> (Value, http::HeaderMap) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request arrived; expected {method} {path}"))
        .expect("client dropped");
    assert_eq!(request.method().as_str(), method, "method of {}", request.uri());
    let got = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    assert!(got.starts_with(path), "expected {method} {path}, got {got}");
    let headers = request.headers().clone();
    let sent = body_json(request).await;
    send.send_response(respond(status, &body));
    (sent, headers)
}

/// One request the mock served: method, path with query, JSON body (`null` when empty).
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// Serves every request with `route(method, path_and_query, body) → (status, body)` until aborted; the returned
/// log holds every request in order.
pub fn serve(
    mut handle: ApiHandle,
    route: impl Fn(&str, &str, &Value) -> (u16, Value) + Send + 'static,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<Seen>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let task = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().as_str().to_owned();
            let path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
            let body = body_json(request).await;
            let (status, answer) = route(&method, &path, &body);
            seen.lock().unwrap().push(Seen { method, path, body });
            send.send_response(respond(status, &answer));
        }
    });
    (task, log)
}

/// A Namespace object.
pub fn ns_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// The `default` ServiceAccount of a namespace.
pub fn default_sa(ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})
}

/// A 404 Status.
pub fn not_found(what: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
        "message": format!("{what} not found")})
}

/// A backend pod of `app` with a creation time, a phase and (when given) an IP and readiness.
pub fn pod(name: &str, app: &str, created: &str, phase: &str, ip: Option<&str>, ready: bool) -> Value {
    let mut status = json!({"phase": phase,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
    if let Some(ip) = ip {
        status["podIP"] = json!(ip);
    }
    json!({"metadata": {"name": name, "namespace": "svcb-t1-test", "labels": {"app": app}, "creationTimestamp": created},
        "status": status})
}

/// A PodList.
pub fn pod_list(items: Vec<Value>) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

/// The agent pod, ready.
pub fn ready_agent(ns: &str) -> Value {
    json!({"metadata": {"name": "svcbench-agent", "namespace": ns},
        "status": {"phase": "Running", "podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "True"}]}})
}
