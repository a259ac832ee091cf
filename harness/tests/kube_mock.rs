//! The kube target against a mocked API server. No Kubernetes API server can run on these machines, so this is
//! the one place svcbench uses a mock: kube's own pattern (`tower_test::mock::pair` + `kube::Client::new`). The
//! tests assert the requests the target makes (method, path, body) for every action, the mapping of real
//! EndpointSlice JSON to the endpoint model, and the error paths users hit; `flows` runs whole steps (waits,
//! batched bulk checks, pod sets that are not there yet) against a routing mock.

#[path = "kube_mock/flows.rs"]
mod flows;
#[path = "kube_mock/mock.rs"]
mod mock;

use std::time::Duration;

use http::Response;
use kube::client::Body;
use mock::{ApiHandle, default_sa, expect, not_found, ns_object, target};
use serde_json::{Value, json};
use svcbench::{
    probe::{ProbeRequest, ProbeResponse},
    scenario::{
        Action, ContainerPort, DeploymentSpec, ObjectRef, Protocol, QueryType, ResolverFlavour, ServicePortSpec,
        ServiceSpec, TargetPort, Transport,
    },
    targets::{Target, TargetError, kube::KubeTarget},
};

async fn apply(t: &KubeTarget, a: Action) -> Result<(), TargetError> {
    t.apply(&a).await
}

async fn probe(t: &KubeTarget, r: ProbeRequest) -> Result<ProbeResponse, TargetError> {
    t.probe("test", &r).await
}

/// A workload `test/<name>` of 2 netexec replicas on named port `http` 8080.
pub fn deployment_spec(name: &str, stateful: bool) -> DeploymentSpec {
    DeploymentSpec {
        object: ObjectRef { namespace: "test".into(), name: name.into() },
        replicas: 2,
        ports: vec![ContainerPort { name: Some("http".into()), port: 8080 }],
        labels: [("app".to_owned(), name.to_owned())].into(),
        hostname: None,
        subdomain: stateful.then(|| name.to_owned()),
        stateful,
        termination_grace: Duration::from_secs(30),
        node: None,
    }
}

fn forbidden(verb: &str, resource: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": format!("{resource} is forbidden: User \"system:serviceaccount:ci:svcbench\" cannot {verb} resource \"{resource}\" in API group \"\" in the namespace \"svcb-t1-test\"")})
}

/// Creates namespace `test` (real `svcb-t1-test`), whose `default` ServiceAccount exists at once.
pub async fn create_namespace(t: &KubeTarget, h: &mut ApiHandle) {
    let server = async {
        let body = expect(h, "POST", "/api/v1/namespaces", 201, ns_object("svcb-t1-test")).await;
        expect(h, "GET", "/api/v1/namespaces/svcb-t1-test/serviceaccounts/default", 200, default_sa("svcb-t1-test"))
            .await;
        body
    };
    let (r, body) = tokio::join!(apply(t, Action::CreateNamespace { name: "test".into() }), server);
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
            node_port: None,
        }],
        headless: true,
        publish_not_ready: true,
        session_affinity: Some(Duration::from_secs(600)),
        external_name: None,
        exposure: Default::default(),
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
        external_name: Some("web.test.svc.cluster.local".into()),
        exposure: Default::default(),
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
    assert_eq!(
        body["spec"]["externalName"], "web.svcb-t1-test.svc.cluster.local",
        "an ExternalName into a scenario namespace is renamed with it"
    );

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

    // Shutdown deletes the run's namespaces and waits until they are gone.
    let ((), _) = tokio::join!(t.shutdown(), async {
        expect(&mut h, "DELETE", "/api/v1/namespaces/svcb-t1-test", 200, ns_object("svcb-t1-test")).await;
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test", 200, ns_object("svcb-t1-test")).await;
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test", 404, not_found("namespaces \"svcb-t1-test\"")).await
    });
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
    let ready_pod = mock::ready_agent("svcb-t1-test");
    let server = async {
        let token = mock::expect_agent_token(&mut h, "svcb-t1-test").await;
        let body = expect(&mut h, "POST", "/api/v1/namespaces/svcb-t1-test/pods", 201, ready_pod.clone()).await;
        assert!(body["spec"]["containers"][0]["image"].as_str().unwrap().contains("svcbench-agent"));
        // The agent reads the token from the Secret, mounted read-only.
        assert_eq!(body["spec"]["volumes"][0]["secret"]["secretName"], "svcbench-agent-token", "{body}");
        let args = body["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--token-file") && args.contains("/var/run/svcbench-agent/token"), "{args}");
        expect(&mut h, "GET", "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent", 200, ready_pod).await;
        let (sent, headers) = mock::expect_with_headers(
            &mut h,
            "POST",
            "/api/v1/namespaces/svcb-t1-test/pods/svcbench-agent:8080/proxy/probe",
            200,
            answer,
        )
        .await;
        assert_eq!(
            headers.get("x-svcbench-token").map(|v| v.as_bytes()),
            Some(token.as_bytes()),
            "every call carries it"
        );
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
        mock::expect_agent_token(&mut h, "svcb-t1-test").await;
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
        mock::expect_agent_token(&mut h, "svcb-t1-test").await;
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

/// `harness/rbac.yaml` parses as the Kubernetes types it declares, grants every call the kube target makes, and its
/// admission policy admits every literal namespace a shipped scenario declares.
#[test]
fn rbac_grants_what_the_target_calls_and_admits_the_literal_namespaces() {
    use k8s_openapi::api::{
        admissionregistration::v1::ValidatingAdmissionPolicy,
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let of_kind = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}")).clone();
    let role: ClusterRole = serde_json::from_value(of_kind("ClusterRole")).unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(of_kind("ClusterRoleBinding")).unwrap();
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(of_kind("ValidatingAdmissionPolicy")).unwrap();
    let grants = |group: &str, resource: &str, verb: &str| {
        role.rules.iter().flatten().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    for (group, resource, verbs) in [
        ("", "namespaces", &["create", "delete", "get", "list"][..]),
        ("", "serviceaccounts", &["get"]),
        ("", "services", &["create", "delete", "get", "list"]),
        ("", "pods", &["create", "get", "list"]),
        ("", "pods/proxy", &["get", "create"]),
        ("apps", "deployments", &["create", "delete", "get", "list", "patch"]),
        ("apps", "statefulsets", &["create", "delete", "get", "list", "patch"]),
        ("discovery.k8s.io", "endpointslices", &["get", "list"]),
    ] {
        for verb in verbs {
            assert!(grants(group, resource, verb), "rbac.yaml does not grant {verb} {resource}");
        }
    }
    assert!(!grants("", "secrets", "get"), "no Secrets");
    let subject = &binding.subjects.as_ref().unwrap()[0];
    let username = format!("system:serviceaccount:{}:{}", subject.namespace.as_deref().unwrap(), subject.name);
    let spec = policy.spec.unwrap();
    let condition = &spec.match_conditions.as_ref().unwrap()[0].expression;
    assert!(condition.contains(&format!("'{username}'")), "the policy scopes the bound ServiceAccount: {condition}");
    let names =
        spec.variables.iter().flatten().find(|v| v.name == "svcbenchName").expect("svcbenchName").expression.clone();
    assert!(names.contains("startsWith('svcb-')"), "{names}");
    let scenarios = svcbench::scenario::discover(&root.join("../scenarios")).unwrap();
    let mut literal = Vec::new();
    for file in scenarios {
        for step in svcbench::scenario::load(&file).unwrap().steps {
            if let svcbench::scenario::StepKind::LiteralNamespace { name } = step.kind {
                assert!(
                    names.contains(&format!("'{name}'")),
                    "{}: literal namespace {name} is not in rbac.yaml's policy",
                    file.display()
                );
                literal.push(name);
            }
        }
    }
    assert_eq!(literal, ["dns-version"]);
}
