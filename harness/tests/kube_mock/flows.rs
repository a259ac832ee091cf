//! Whole actions and steps of the kube target against the mock: what it waits for (pods, the default
//! ServiceAccount, an earlier run's namespace of a literal name), what reaches the user when the agent or netexec
//! fail, bulk checks in one batch, and pod sets that must not match before their pods exist.

use std::time::Duration;

use serde_json::{Value, json};
use svcbench::{
    agent::reply::status_body,
    probe::ProbeRequest,
    results::Outcome,
    runner,
    scenario::{self, Action, ObjectRef, PodRef},
    targets::{Target, kube::KubeTarget},
};

use super::{
    apply, create_namespace, deployment_spec,
    mock::{self, default_sa, expect, not_found, ns_object, pod, pod_list, ready_agent, respond, serve, target},
};

const PODS_OF_WEB: &str = "/api/v1/namespaces/svcb-t1-test/pods?&labelSelector=app%3Dweb";

async fn create_web(t: &KubeTarget, h: &mut mock::ApiHandle) {
    let (r, _) = tokio::join!(
        apply(t, Action::CreateDeployment(deployment_spec("web", false))),
        expect(
            h,
            "POST",
            "/apis/apps/v1/namespaces/svcb-t1-test/deployments",
            201,
            json!({"metadata": {"name": "web"}})
        )
    );
    r.unwrap();
}

fn web() -> ObjectRef {
    ObjectRef { namespace: "test".into(), name: "web".into() }
}

fn running_pods() -> Value {
    pod_list(vec![
        pod("web-b", "web", "2026-01-01T00:00:02Z", "Running", Some("10.0.0.3"), true),
        pod("web-a", "web", "2026-01-01T00:00:01Z", "Running", Some("10.0.0.2"), true),
    ])
}

#[tokio::test]
async fn set_pod_ready_waits_until_the_pod_runs_and_reads_the_shell_reply() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    create_web(&t, &mut h).await;
    // As the ReplicaSet makes them: no pods yet; one without an IP; both with IPs but #0 still Pending; both Running.
    let lists = [
        pod_list(vec![]),
        pod_list(vec![
            pod("web-b", "web", "2026-01-01T00:00:02Z", "Running", Some("10.0.0.3"), true),
            pod("web-a", "web", "2026-01-01T00:00:01Z", "Pending", None, false),
        ]),
        pod_list(vec![
            pod("web-b", "web", "2026-01-01T00:00:02Z", "Running", Some("10.0.0.3"), true),
            pod("web-a", "web", "2026-01-01T00:00:01Z", "Pending", Some("10.0.0.2"), false),
        ]),
        running_pods(),
    ];
    let flip = apply(&t, Action::SetPodReady { pod: PodRef { deployment: web(), index: 0 }, ready: false });
    let server = async {
        for list in lists {
            expect(&mut h, "GET", PODS_OF_WEB, 200, list).await;
        }
        let (request, send) = h.next_request().await.unwrap();
        assert_eq!(request.uri().path(), "/api/v1/namespaces/svcb-t1-test/pods/web-a:8080/proxy/shell", "oldest pod");
        assert!(request.uri().query().unwrap().contains("touch%20%2Ftmp%2Fsvcbench-not-ready"));
        send.send_response(respond(200, &json!({})));
    };
    let (r, ()) = tokio::join!(flip, server);
    r.unwrap();

    // podIPOf counts the same pods the same way: #0 is the pod the flip went to.
    let web_ref = web();
    let (pods, _) = tokio::join!(t.pods(&web_ref), expect(&mut h, "GET", PODS_OF_WEB, 200, running_pods()));
    assert_eq!(pods.unwrap()[0].name, "web-a");

    // netexec answers 200 with `error` when the command failed: that is a failure, with the command's output.
    let flip = apply(&t, Action::SetPodReady { pod: PodRef { deployment: web(), index: 1 }, ready: true });
    let server = async {
        expect(&mut h, "GET", PODS_OF_WEB, 200, running_pods()).await;
        let failed = json!({"output": "rm: can't remove '/tmp/svcbench-not-ready': Read-only file system\n",
            "error": "exit status 1"});
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/pods/web-b:8080/proxy/shell?cmd=rm", 200, failed).await;
    };
    let (r, ()) = tokio::join!(flip, server);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("exit status 1") && msg.contains("Read-only file system"), "{msg}");
    assert!(msg.contains("rm -f /tmp/svcbench-not-ready") && msg.contains("web-b"), "{msg}");
}

#[tokio::test]
async fn set_pod_ready_gives_up_saying_why() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    create_web(&t, &mut h).await;
    let pulling = json!({"metadata": {"name": "web-x", "namespace": "svcb-t1-test", "creationTimestamp": "2026-01-01T00:00:01Z"},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "netexec-0", "image": "agnhost:2.53", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "no route to registry"}}}]}});
    let (task, _) = serve(h, move |_, _, _| (200, pod_list(vec![pulling.clone()])));
    let r = t.apply(&Action::SetPodReady { pod: PodRef { deployment: web(), index: 0 }, ready: false }).await;
    task.abort();
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("pod #0 was not Running with an IP after 2s"), "{msg}");
    assert!(msg.contains("0 of 2 replicas") && msg.contains("web-x") && msg.contains("ErrImagePull"), "{msg}");
}

#[tokio::test]
async fn agent_errors_reach_the_user() {
    let (t, mut h) = target();
    create_namespace(&t, &mut h).await;
    let probe_path = "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent:8080/proxy/probe";
    // The agent's own Status body (422), exactly as it sends it.
    let server = async {
        super::mock::expect_agent_token(&mut h, "svcb-t1-test").await;
        expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods", 201, ready_agent("svcb-t1-test")).await;
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent", 200, ready_agent("svcb-t1-test"))
            .await;
        let body = status_body(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "dns probe could not run: resolv.conf has no nameserver",
        );
        expect(&mut h, "POST", probe_path, 422, body).await;
    };
    let (r, ()) = tokio::join!(t.probe("test", &ProbeRequest::ResolvConf), server);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("HTTP 422") && msg.contains("resolv.conf has no nameserver"), "{msg}");
    assert!(!msg.contains("API error 0"), "{msg}");

    // An agent from before the Status bodies: `{"error": …}` is its message.
    let (r, _) = tokio::join!(
        t.probe("test", &ProbeRequest::ResolvConf),
        expect(&mut h, "POST", probe_path, 503, json!({"error": "busy: 8 probes running and none finished in 10s"}))
    );
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("HTTP 503") && msg.contains("busy: 8 probes running"), "{msg}");

    // The API server refusing the pod proxy: RBAC, with the verb and resource.
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "pods \"svcbench-agent\" is forbidden: User \"system:serviceaccount:svcbench-system:svcbench\" cannot create resource \"pods/proxy\" in API group \"\" in the namespace \"svcb-t1-test\""});
    let (r, _) =
        tokio::join!(t.probe("test", &ProbeRequest::ResolvConf), expect(&mut h, "POST", probe_path, 403, forbidden));
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("RBAC forbidden") && msg.contains("pods/proxy") && msg.contains("rbac.yaml"), "{msg}");

    // A 200 that is not a probe answer says what came back.
    let (r, _) = tokio::join!(
        t.probe("test", &ProbeRequest::ResolvConf),
        expect(&mut h, "POST", probe_path, 200, json!({"x": 1}))
    );
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("not a probe answer") && msg.contains(r#"{"x":1}"#), "{msg}");
}

#[tokio::test]
async fn a_new_namespace_waits_for_its_default_service_account() {
    let (t, mut h) = target();
    let sa = "/api/v1/namespaces/svcb-t1-test/serviceaccounts/default";
    let server = async {
        expect(&mut h, "POST", "/api/v1/namespaces", 201, ns_object("svcb-t1-test")).await;
        expect(&mut h, "GET", sa, 404, not_found("serviceaccounts \"default\"")).await;
        expect(&mut h, "GET", sa, 404, not_found("serviceaccounts \"default\"")).await;
        expect(&mut h, "GET", sa, 200, default_sa("svcb-t1-test")).await;
    };
    let (r, ()) = tokio::join!(apply(&t, Action::CreateNamespace { name: "test".into() }), server);
    r.unwrap();

    // Pods created before it anyway are refused with a 403 that is not about RBAC.
    let race = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "pods \"svcbench-agent\" is forbidden: error looking up service account svcb-t1-test/default: serviceaccount \"default\" not found"});
    let (r, _) = tokio::join!(t.probe("test", &ProbeRequest::ResolvConf), async {
        super::mock::expect_agent_token(&mut h, "svcb-t1-test").await;
        expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods", 403, race).await
    });
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("not an RBAC problem") && !msg.contains("RBAC forbidden"), "{msg}");

    // Never created: a bounded wait that names who should have made it.
    let (t, h) = target();
    let (task, log) = serve(h, |method, path, _| match (method, path) {
        ("POST", _) => (201, ns_object("svcb-t1-test")),
        _ => (404, not_found("serviceaccounts \"default\"")),
    });
    let r = t.apply(&Action::CreateNamespace { name: "test".into() }).await;
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("no `default` ServiceAccount after 2s") && msg.contains("kube-controller-manager"), "{msg}");
    // It is still this run's namespace: shutdown deletes it.
    t.shutdown().await;
    task.abort();
    let log = log.lock().unwrap();
    let calls: Vec<(&str, &str)> =
        log.iter().rev().take(3).map(|s| (s.method.as_str(), s.path.split('?').next().unwrap())).collect();
    assert_eq!(
        calls,
        [
            ("GET", "/api/v1/namespaces/svcb-t1-test"),
            ("GET", "/api/v1/namespaces/svcb-t1-test/pods"),
            ("DELETE", "/api/v1/namespaces/svcb-t1-test")
        ],
        "deleted, its pods listed to be deleted at once, then waited for"
    );
}

#[tokio::test]
async fn a_literal_namespace_keeps_its_name_and_waits_out_an_earlier_run() {
    let (t, mut h) = target();
    let terminating = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dns-version",
        "labels": {"app.kubernetes.io/managed-by": "svcbench", "svcbench.io/run": "old"},
        "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Terminating"}});
    let exists = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409,
        "message": "namespaces \"dns-version\" already exists"});
    let server = async {
        expect(&mut h, "POST", "/api/v1/namespaces", 409, exists.clone()).await;
        expect(&mut h, "GET", "/api/v1/namespaces/dns-version", 200, terminating).await;
        let body = expect(&mut h, "POST", "/api/v1/namespaces", 201, ns_object("dns-version")).await;
        expect(&mut h, "GET", "/api/v1/namespaces/dns-version/serviceaccounts/default", 200, default_sa("dns-version"))
            .await;
        body
    };
    let (r, body) = tokio::join!(t.create_literal_namespace("dns-version"), server);
    r.unwrap();
    assert_eq!(body["metadata"]["name"], "dns-version", "not renamed");
    assert_eq!(body["metadata"]["labels"]["svcbench.io/run"], "t1", "labelled as this run's, so cleanup finds it");
    assert_eq!(body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "svcbench");
    // Names in it are not rewritten either way, and shutdown deletes it, its pods with a 1 s grace period (not the
    // pod's own: a scenario waiting for this teardown would wait with it).
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
        "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "dns-version"}}]});
    let ((), pod_delete) = tokio::join!(t.shutdown(), async {
        expect(&mut h, "DELETE", "/api/v1/namespaces/dns-version", 200, ns_object("dns-version")).await;
        expect(&mut h, "GET", "/api/v1/namespaces/dns-version/pods", 200, pods).await;
        let options = expect(&mut h, "DELETE", "/api/v1/namespaces/dns-version/pods/web-0", 200, json!({})).await;
        expect(&mut h, "GET", "/api/v1/namespaces/dns-version", 404, not_found("namespaces \"dns-version\"")).await;
        options
    });
    assert_eq!(pod_delete["gracePeriodSeconds"], 1, "{pod_delete}");

    // Someone else's namespace of that name is not taken over.
    let (t, mut h) = target();
    let foreign = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dns-version"}});
    let server = async {
        expect(&mut h, "POST", "/api/v1/namespaces", 409, exists).await;
        expect(&mut h, "GET", "/api/v1/namespaces/dns-version", 200, foreign).await;
    };
    let (r, ()) = tokio::join!(t.create_literal_namespace("dns-version"), server);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("was not created by svcbench"), "{msg}");
}

fn plan(yaml: &str) -> scenario::Plan {
    scenario::parse(std::path::Path::new("inline.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn lookup(name: &str, ip: &str) -> Value {
    let record = json!([{"type": "ADDRESS", "ip": ip}]);
    json!({"probe": "dns", "flavour": "dig", "name": name, "rcode": "NOERROR", "records": record,
        "tried": [{"name": name, "rcode": "NOERROR", "records": record, "authoritative": true,
                   "soa_in_authority": false, "ttls": [30], "transport": "udp"}]})
}

/// The routing mock of a namespace `svcb-t1-scale` with `count` services `svc-<i>` at 10.96.0.<10+i>, each with
/// one ready endpoint, and an agent that answers batches by resolving `svc-<i>` to its ClusterIP.
fn bulk_cluster(method: &str, path: &str, body: &Value) -> (u16, Value) {
    let ns = "svcb-t1-scale";
    let ip = |name: &str| format!("10.96.0.{}", 10 + name.trim_start_matches("svc-").parse::<u32>().unwrap());
    let base = path.split('?').next().unwrap();
    match (method, base) {
        ("POST", "/api/v1/namespaces") => (201, ns_object(ns)),
        ("GET", p) if p.ends_with("/serviceaccounts/default") => (200, default_sa(ns)),
        ("POST", p) if p.ends_with("/deployments") || p.ends_with("/services") => (201, body.clone()),
        ("GET", "/api/v1/namespaces/svcb-t1-scale/services") => {
            let items: Vec<Value> = (0..3)
                .map(|i| {
                    let name = format!("svc-{i}");
                    json!({"metadata": {"name": name, "namespace": ns},
                        "spec": {"clusterIP": ip(&name), "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}})
                })
                .collect();
            (200, json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": items}))
        }
        ("GET", "/apis/discovery.k8s.io/v1/namespaces/svcb-t1-scale/endpointslices") => {
            let items: Vec<Value> = (0..3)
                .map(|i| {
                    json!({"metadata": {"name": format!("svc-{i}-abc"), "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                        "addressType": "IPv4", "ports": [{"port": 80, "protocol": "TCP"}],
                        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}]})
                })
                .collect();
            (
                200,
                json!({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {}, "items": items}),
            )
        }
        ("POST", "/api/v1/namespaces/svcb-t1-scale/secrets") => {
            (201, json!({"metadata": {"name": "svcbench-agent-token"}}))
        }
        ("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices") => {
            (200, super::mock::API_SERVER_SLICES.clone())
        }
        ("POST", "/apis/networking.k8s.io/v1/namespaces/svcb-t1-scale/networkpolicies") => {
            (201, json!({"metadata": {"name": "svcbench-agent"}}))
        }
        ("POST", "/api/v1/namespaces/svcb-t1-scale/pods")
        | ("GET", "/api/v1/namespaces/svcb-t1-scale/pods/svcbench-agent") => (200, ready_agent(ns)),
        ("POST", "/api/v1/namespaces/svcb-t1-scale/pods/svcbench-agent:8080/proxy/probe") => {
            let results: Vec<Value> = body["probes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| match p["probe"].as_str().unwrap() {
                    "dns" => {
                        let name = p["name"].as_str().unwrap();
                        json!({"ok": lookup(name, &ip(name.split('.').next().unwrap()))})
                    }
                    _ => json!({"ok": {"probe": "connect", "address": p["address"], "outcome": "connected", "error": null}}),
                })
                .collect();
            (200, json!({"probe": "batch", "results": results}))
        }
        other => panic!("unexpected request {other:?}"),
    }
}

#[tokio::test]
async fn expect_services_is_two_lists_and_one_batch() {
    let plan = plan(
        "name: bulk\ndescription: x\nsteps:\n  - createNamespace: scale\n  - createDeployment: {namespace: scale, name: web}\n  \
         - createServices: {namespace: scale, deployment: web, prefix: svc, count: 3, port: 80}\n  \
         - expectServices: {from: scale, namespace: scale, prefix: svc, count: 3, readyEndpoints: 1, timeout: 5s}\n",
    );
    let (t, h) = target();
    let (task, log) = serve(h, bulk_cluster);
    let result = runner::run_plan(&plan, &t, &mut |_| {}).await;
    task.abort();
    assert_eq!(result.outcome, Outcome::Passed, "{:?}", result.first_failure());
    let log = log.lock().unwrap();
    let step: Vec<&mock::Seen> = log.iter().skip_while(|s| !s.path.contains("services") || s.method != "GET").collect();
    let calls: Vec<String> =
        step.iter().map(|s| format!("{} {}", s.method, s.path.split('?').next().unwrap())).collect();
    assert_eq!(
        calls,
        [
            "GET /api/v1/namespaces/svcb-t1-scale/services",
            "GET /apis/discovery.k8s.io/v1/namespaces/svcb-t1-scale/endpointslices",
            "POST /api/v1/namespaces/svcb-t1-scale/secrets",
            "GET /apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            "POST /apis/networking.k8s.io/v1/namespaces/svcb-t1-scale/networkpolicies",
            "POST /api/v1/namespaces/svcb-t1-scale/pods",
            "GET /api/v1/namespaces/svcb-t1-scale/pods/svcbench-agent",
            "POST /api/v1/namespaces/svcb-t1-scale/pods/svcbench-agent:8080/proxy/probe",
        ],
        "one list of services, one of slices, one batch for 3 services"
    );
    let batch = &step.last().unwrap().body;
    assert_eq!(batch["probe"], "batch");
    assert_eq!(batch["probes"].as_array().unwrap().len(), 6, "a lookup and a connect per service");
    assert_eq!(batch["probes"][0]["name"], "svc-0.svcb-t1-scale.svc.cluster.local.", "names in the real namespace");
    assert_eq!(batch["probes"][1]["address"], "10.96.0.10:80");
}

/// A cluster where `test/web` (2 replicas) has `pods` and service `web` one slice with `endpoints`.
fn endpoints_cluster(pods: Value, endpoints: Value) -> impl Fn(&str, &str, &Value) -> (u16, Value) + Send + 'static {
    move |method, path, body| {
        let base = path.split('?').next().unwrap();
        match (method, base) {
            ("POST", "/api/v1/namespaces") => (201, ns_object("svcb-t1-test")),
            ("GET", p) if p.ends_with("/serviceaccounts/default") => (200, default_sa("svcb-t1-test")),
            ("POST", _) => (201, body.clone()),
            ("GET", "/api/v1/namespaces/svcb-t1-test/pods") => (200, pods.clone()),
            // The check reads the Service for its primary family (the slices it compares).
            ("GET", "/api/v1/namespaces/svcb-t1-test/services/web") => (
                200,
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "svcb-t1-test"},
                    "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ipFamilies": ["IPv4"], "ports": [{"port": 80}]}}),
            ),
            ("GET", "/apis/discovery.k8s.io/v1/namespaces/svcb-t1-test/endpointslices") => (
                200,
                json!({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": {}, "items": [
                    {"metadata": {"name": "web-abc"}, "addressType": "IPv4", "ports": [{"port": 80}], "endpoints": endpoints}]}),
            ),
            other => panic!("unexpected request {other:?}"),
        }
    }
}

#[tokio::test]
async fn ready_pods_of_a_workload_without_pods_match_nothing() {
    let plan = plan(
        "name: early\ndescription: x\nsteps:\n  - createNamespace: test\n  \
         - createDeployment: {namespace: test, name: web, replicas: 2}\n  - expose: {namespace: test, deployment: web, port: 80}\n  \
         - expectEndpoints: {namespace: test, service: web, ready: {readyPodsOf: web}, timeout: 1500ms}\n",
    );
    // The ReplicaSet has made no pods yet and the slice is empty: `[] == []` must not pass.
    let (t, h) = target();
    let (task, _) = serve(h, endpoints_cluster(pod_list(vec![]), Value::Null));
    let result = runner::run_plan(&plan, &t, &mut |_| {}).await;
    task.abort();
    let failed = result.first_failure().expect("must not pass with no pods");
    let msg = failed.message.clone().unwrap_or_default();
    assert!(msg.contains("test/web has 0 live pods with an IP, not yet its 2 replicas"), "{msg}");

    // Once the pods exist the same step holds.
    let endpoints = json!([{"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
        {"addresses": ["10.0.0.3"], "conditions": {"ready": true}}]);
    let (t, h) = target();
    let (task, _) = serve(h, endpoints_cluster(running_pods(), endpoints));
    let result = tokio::time::timeout(Duration::from_secs(10), runner::run_plan(&plan, &t, &mut |_| {})).await.unwrap();
    task.abort();
    assert_eq!(result.outcome, Outcome::Passed, "{:?}", result.first_failure());
}
