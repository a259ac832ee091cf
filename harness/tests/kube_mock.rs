//! The kube target against a mocked API server. No Kubernetes API server can run on these machines, so this is
//! the one place svcbench uses a mock: kube's own pattern (`tower_test::mock::pair` + `kube::Client::new`). The
//! tests assert the requests the target makes (method, path, body) for every action, the mapping of real
//! EndpointSlice JSON to the endpoint model, and the error paths users hit.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use svcbench::{
    probe::{ProbeRequest, ProbeResponse},
    scenario::{
        Action, ContainerPort, DeploymentSpec, ObjectRef, PodRef, Protocol, QueryType, ResolverFlavour,
        ServicePortSpec, ServiceSpec, TargetPort, Transport,
    },
    targets::{
        Target, TargetError,
        kube::{KubeConfig, KubeTarget},
    },
};
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn target() -> (KubeTarget, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = KubeConfig { agent_ready_timeout: Duration::from_secs(3), ..KubeConfig::default() };
    (KubeTarget::with_client(client, config, "t1"), handle)
}

/// Takes the next request, checks method and path (+query), answers `status` with `body`; returns the request body.
async fn expect(handle: &mut ApiHandle, method: &str, path: &str, status: u16, body: Value) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request arrived; expected {method} {path}"))
        .expect("client dropped");
    assert_eq!(request.method().as_str(), method, "method of {}", request.uri());
    let got = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    assert!(got.starts_with(path), "expected {method} {path}, got {got}");
    let bytes = request.into_body().collect().await.expect("request body").to_bytes();
    let sent: Value =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON request body") };
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    sent
}

async fn apply(t: &KubeTarget, a: Action) -> Result<(), TargetError> {
    t.apply(&a).await
}

async fn probe(t: &KubeTarget, r: ProbeRequest) -> Result<ProbeResponse, TargetError> {
    t.probe("test", &r).await
}

fn ns_object(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn deployment_spec(name: &str, stateful: bool) -> DeploymentSpec {
    DeploymentSpec {
        object: ObjectRef { namespace: "test".into(), name: name.into() },
        replicas: 2,
        ports: vec![ContainerPort { name: Some("http".into()), port: 8080 }],
        labels: [("app".to_owned(), name.to_owned())].into(),
        hostname: None,
        subdomain: stateful.then(|| name.to_owned()),
        stateful,
        termination_grace: Duration::from_secs(30),
    }
}

fn forbidden(verb: &str, resource: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": format!("{resource} is forbidden: User \"system:serviceaccount:ci:svcbench\" cannot {verb} resource \"{resource}\" in API group \"\" in the namespace \"svcb-t1-test\"")})
}

async fn create_namespace(t: &KubeTarget, h: &mut ApiHandle) {
    let (r, body) = tokio::join!(
        apply(t, Action::CreateNamespace { name: "test".into() }),
        expect(h, "POST", "/api/v1/namespaces", 201, ns_object("svcb-t1-test"))
    );
    r.unwrap();
    assert_eq!(body["metadata"]["name"], "svcb-t1-test");
    assert_eq!(body["metadata"]["labels"]["svcbench.io/run"], "t1");
    assert_eq!(body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "svcbench");
}

#[tokio::test]
async fn every_action_maps_to_the_api() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;

    // Deployment of agnhost netexec with an exec readiness probe.
    let spec = deployment_spec("web", false);
    let (r, body) = tokio::join!(
        apply(&t, Action::CreateDeployment(spec.clone())),
        expect(
            &mut h,
            "POST",
            "/apis/apps/v1/namespaces/svcb-t1-test/deployments",
            201,
            json!({"metadata": {"name": "web"}})
        )
    );
    r.unwrap();
    assert_eq!(body["spec"]["replicas"], 2);
    assert_eq!(body["spec"]["selector"]["matchLabels"]["app"], "web");
    let c = &body["spec"]["template"]["spec"]["containers"][0];
    assert!(c["image"].as_str().unwrap().contains("agnhost"));
    assert_eq!(c["args"][0], "netexec");
    assert_eq!(c["args"][1], "--http-port=8080");
    assert_eq!(c["ports"][0]["name"], "http");
    assert!(c["readinessProbe"]["exec"]["command"][2].as_str().unwrap().contains("svcbench-not-ready"));
    assert_eq!(body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30);

    // StatefulSet with its governing service.
    let (r, body) = tokio::join!(
        apply(&t, Action::CreateDeployment(deployment_spec("db", true))),
        expect(
            &mut h,
            "POST",
            "/apis/apps/v1/namespaces/svcb-t1-test/statefulsets",
            201,
            json!({"metadata": {"name": "db"}})
        )
    );
    r.unwrap();
    assert_eq!(body["spec"]["serviceName"], "db");

    // Headless service with named ports, publishNotReadyAddresses and ClientIP affinity.
    let svc = ServiceSpec {
        object: ObjectRef { namespace: "test".into(), name: "web".into() },
        selector: [("app".to_owned(), "web".to_owned())].into(),
        ports: vec![ServicePortSpec {
            name: Some("http".into()),
            port: 80,
            target_port: TargetPort::Name("http".into()),
            protocol: Protocol::Tcp,
        }],
        headless: true,
        publish_not_ready: true,
        session_affinity: Some(Duration::from_secs(600)),
        external_name: None,
    };
    let (r, body) = tokio::join!(
        apply(&t, Action::CreateService(svc.clone())),
        expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/services", 201, json!({"metadata": {"name": "web"}}))
    );
    r.unwrap();
    assert_eq!(body["spec"]["clusterIP"], "None");
    assert_eq!(body["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(body["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(body["spec"]["sessionAffinity"], "ClientIP");
    assert_eq!(body["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 600);

    // ExternalName.
    let ext = ServiceSpec {
        external_name: Some("db.example.com".into()),
        headless: false,
        session_affinity: None,
        ..svc.clone()
    };
    let ext = ServiceSpec { object: ObjectRef { namespace: "test".into(), name: "ext".into() }, ..ext };
    let (r, body) = tokio::join!(
        apply(&t, Action::CreateService(ext)),
        expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/services", 201, json!({"metadata": {"name": "ext"}}))
    );
    r.unwrap();
    assert_eq!(body["spec"]["type"], "ExternalName");
    assert_eq!(body["spec"]["externalName"], "db.example.com");

    // Scale: a merge patch of spec.replicas.
    let web = ObjectRef { namespace: "test".into(), name: "web".into() };
    let (r, body) = tokio::join!(
        apply(&t, Action::Scale { deployment: web.clone(), replicas: 5 }),
        expect(
            &mut h,
            "PATCH",
            "/apis/apps/v1/namespaces/svcb-t1-test/deployments/web",
            200,
            json!({"metadata": {"name": "web"}})
        )
    );
    r.unwrap();
    assert_eq!(body, json!({"spec": {"replicas": 5}}));

    // Readiness flip: list pods, then netexec /shell through the pod proxy.
    let pods = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
        {"metadata": {"name": "web-b", "namespace": "svcb-t1-test", "creationTimestamp": "2026-01-01T00:00:02Z"}, "status": {"podIP": "10.0.0.3"}},
        {"metadata": {"name": "web-a", "namespace": "svcb-t1-test", "creationTimestamp": "2026-01-01T00:00:01Z"}, "status": {"podIP": "10.0.0.2"}}
    ]});
    let flip = apply(&t, Action::SetPodReady { pod: PodRef { deployment: web.clone(), index: 0 }, ready: false });
    let server = async {
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/pods?&labelSelector=app%3Dweb", 200, pods).await;
        let (request, send) = h.next_request().await.unwrap();
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/svcb-t1-test/pods/web-a:8080/proxy/shell",
            "oldest pod first"
        );
        assert!(request.uri().query().unwrap().contains("touch%20%2Ftmp%2Fsvcbench-not-ready"));
        send.send_response(Response::builder().body(Body::from(b"{}".to_vec())).unwrap());
    };
    let (r, ()) = tokio::join!(flip, server);
    r.unwrap();

    // Deletes.
    let (r, _) = tokio::join!(
        apply(&t, Action::DeleteService { service: web.clone() }),
        expect(
            &mut h,
            "DELETE",
            "/api/v1/namespaces/svcb-t1-test/services/web",
            200,
            json!({"kind": "Status", "status": "Success"})
        )
    );
    r.unwrap();
    let (r, body) = tokio::join!(
        apply(&t, Action::DeleteDeployment { deployment: web.clone() }),
        expect(
            &mut h,
            "DELETE",
            "/apis/apps/v1/namespaces/svcb-t1-test/deployments/web",
            200,
            json!({"kind": "Status", "status": "Success"})
        )
    );
    r.unwrap();
    assert_eq!(body["propagationPolicy"], "Background");

    // Shutdown deletes the run's namespaces.
    let ((), _) = tokio::join!(
        t.shutdown(),
        expect(&mut h, "DELETE", "/api/v1/namespaces/svcb-t1-test", 200, ns_object("svcb-t1-test"))
    );
}

#[tokio::test]
async fn endpoint_slices_and_services_map_to_the_model() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    let web = ObjectRef { namespace: "test".into(), name: "web".into() };
    // From the EndpointSlice example in the Kubernetes docs, with a terminating endpoint added.
    let slices = json!({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {}, "items": [{
    "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    "endpoints": [
        {"addresses": ["10.1.2.3"], "conditions": {"ready": true, "serving": true, "terminating": false},
         "hostname": "pod-1", "nodeName": "node-1", "zone": "us-west2-a", "targetRef": {"kind": "Pod", "name": "web-1"}},
        {"addresses": ["10.1.2.4"], "conditions": {"ready": false, "serving": true, "terminating": true},
         "targetRef": {"kind": "Pod", "name": "web-2"}}
    ]}]});
    let (r, _) = tokio::join!(
        t.endpoint_slices(&web),
        expect(
            &mut h,
            "GET",
            "/apis/discovery.k8s.io/v1/namespaces/svcb-t1-test/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb",
            200,
            slices
        )
    );
    let views = r.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].ports[0].port, 8080);
    let e = &views[0].endpoints;
    assert_eq!((e[0].ready, e[0].serving, e[0].terminating, e[0].pod.as_deref()), (true, true, false, Some("web-1")));
    assert_eq!((e[1].ready, e[1].serving, e[1].terminating), (false, true, true));

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "svcb-t1-test"},
        "spec": {"clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"], "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}});
    let (r, _) =
        tokio::join!(t.service(&web), expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/services/web", 200, svc));
    let view = r.unwrap().unwrap();
    assert_eq!(view.namespace, "test", "namespace mapped back to its logical name");
    assert_eq!(view.cluster_ip, Some("10.96.12.34".parse().unwrap()));
    assert_eq!(view.ports[0].target_port, TargetPort::Name("http".into()));
    let missing = json!({"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "message": "services \"nope\" not found"});
    let nope = ObjectRef { namespace: "test".into(), name: "nope".into() };
    let (r, _) = tokio::join!(
        t.service(&nope),
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/services/nope", 404, missing)
    );
    assert!(r.unwrap().is_none());
}

#[tokio::test]
async fn probes_go_through_the_agent_with_names_rewritten_both_ways() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    let request = ProbeRequest::Dns {
        name: "nginx.test".into(),
        query_type: QueryType::A,
        flavour: ResolverFlavour::Glibc,
        transport: Transport::Udp,
    };
    let answer = json!({"probe": "dns", "flavour": "glibc", "name": "nginx.svcb-t1-test", "rcode": "NOERROR",
        "records": [{"type": "ADDRESS", "ip": "10.96.0.20"}],
        "tried": [{"name": "nginx.svcb-t1-test.svcb-t1-test.svc.cluster.local.", "rcode": "NXDOMAIN", "records": [], "authoritative": true,
                   "soa_in_authority": true, "ttls": [], "transport": "udp"},
                  {"name": "nginx.svcb-t1-test.svc.cluster.local.", "rcode": "NOERROR", "records": [{"type": "ADDRESS", "ip": "10.96.0.20"}],
                   "authoritative": true, "soa_in_authority": false, "ttls": [30], "transport": "udp"}]});
    let ready_pod = json!({"metadata": {"name": "svcbench-agent", "namespace": "svcb-t1-test"},
        "status": {"podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "True"}]}});
    let server = async {
        let body = expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods", 201, ready_pod.clone()).await;
        assert!(body["spec"]["containers"][0]["image"].as_str().unwrap().contains("svcbench-agent"));
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent", 200, ready_pod).await;
        let sent =
            expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent:8080/proxy/probe", 200, answer)
                .await;
        assert_eq!(sent["name"], "nginx.svcb-t1-test", "namespace label rewritten to the real namespace");
    };
    let (r, ()) = tokio::join!(t.probe("test", &request), server);
    let ProbeResponse::Dns(lookup) = r.unwrap() else { panic!("not a DNS answer") };
    assert_eq!(lookup.tried[1].name, "nginx.test.svc.cluster.local.", "answer names mapped back");
    assert_eq!(lookup.tried[0].name, "nginx.test.test.svc.cluster.local.");
}

#[tokio::test]
async fn rbac_forbidden_names_verb_and_resource() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    let (r, _) = tokio::join!(
        apply(&t, Action::CreateDeployment(deployment_spec("web", false))),
        expect(
            &mut h,
            "POST",
            "/apis/apps/v1/namespaces/svcb-t1-test/deployments",
            403,
            forbidden("create", "deployments")
        )
    );
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("RBAC forbidden"), "{msg}");
    assert!(msg.contains("cannot create resource \"deployments\""), "{msg}");
    assert!(msg.contains("rbac.yaml"), "{msg}");
}

#[tokio::test]
async fn image_pull_failure_of_the_agent_is_explained() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    let pulling = json!({"metadata": {"name": "svcbench-agent", "namespace": "svcb-t1-test"},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "agent", "image": "svcbench-agent:dev", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied for svcbench-agent"}}}]}});
    let server = async {
        expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods", 201, pulling.clone()).await;
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent", 200, pulling).await;
    };
    let (r, ()) = tokio::join!(probe(&t, ProbeRequest::ResolvConf), server);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("image pull failure for svcbench-agent:dev"), "{msg}");
    assert!(msg.contains("pull access denied"), "{msg}");
}

#[tokio::test]
async fn pods_never_ready_show_their_conditions() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    let stuck = json!({"metadata": {"name": "svcbench-agent", "namespace": "svcb-t1-test"},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 node(s) had untolerated taint"}]}});
    let server = async {
        expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods", 201, stuck.clone()).await;
        // The target polls once a second until its (3 s) agent timeout.
        while let Ok(Some((_, send))) = tokio::time::timeout(Duration::from_millis(1500), h.next_request()).await {
            send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&stuck).unwrap())).unwrap());
        }
    };
    let (r, ()) = tokio::join!(probe(&t, ProbeRequest::ResolvConf), server);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("not ready after"), "{msg}");
    assert!(msg.contains("PodScheduled=False") && msg.contains("untolerated taint"), "{msg}");
}

#[tokio::test]
async fn unreachable_api_server_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: x}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svcbench"))
        .args(["run", "--target", "kube"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/dns-basics.yaml"))
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("API server unreachable") && stderr.contains("127.0.0.1:1"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svcbench"))
        .args(["run", "--target", "kube"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/dns-basics.yaml"))
        .env("KUBECONFIG", dir.path().join("missing"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no usable kubeconfig"), "{stderr}");
}

#[test]
fn target_error_is_displayable() {
    let e = TargetError::Rejected("x".into());
    assert_eq!(e.to_string(), "x");
}
