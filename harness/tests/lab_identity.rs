//! `harness/rbac.yaml` on a real API server, the lab's (issue #24): the harness's ServiceAccount, speaking with a
//! token from TokenRequest, runs the whole shipped suite through the kube target in its own namespaces, its agents
//! refuse a stranger pod that has no token, and everything else is denied — each case by the layer the file says
//! does it (RBAC, or the ValidatingAdmissionPolicy).
//!
//! Needs root and `svcbench lab install`; prints `SKIPPED` otherwise (`.ci/run` installs the lab).

use std::time::{Duration, Instant};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Pod, Secret, Service},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use svcbench::lab::{Lab, LabConfig, ProxyMode, client_for, identity};

#[path = "lab_identity/stranger.rs"]
mod stranger;
#[path = "lab_identity/suite.rs"]
mod suite;

/// A denial: HTTP 403 and the words that say which layer refused.
fn denied<T: std::fmt::Debug>(result: Result<T, kube::Error>, layer_says: &str, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 && status.message.contains(layer_says) => {
            println!("denied as expected: {what}: {}", status.message);
        }
        other => panic!("{what}: expected 403 mentioning `{layer_says}`, got {other:?}"),
    }
}

fn namespace(name: &str, managed: bool) -> Namespace {
    let labels = managed.then(|| [("app.kubernetes.io/managed-by".to_owned(), "svcbench".to_owned())].into());
    Namespace { metadata: ObjectMeta { name: Some(name.into()), labels, ..Default::default() }, ..Default::default() }
}

fn config_map(ns: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some("x".into()), namespace: Some(ns.into()), ..Default::default() },
        ..Default::default()
    }
}

const RBAC: &str = "cannot"; // RBAC's own words: `… cannot create resource "configmaps" …`
const POLICY: &str = "svcbench-own-namespaces"; // the policy's name, in every message it denies with

async fn checks(lab: &Lab) {
    let admin = client_for(lab.kubeconfig()).await.expect("admin client");
    let path = identity::harness_kubeconfig(&admin, lab.kubeconfig()).await.expect("harness identity");
    let harness = client_for(&path).await.expect("harness client");

    // Objects someone else owns: an unlabelled svcb-* namespace with a Service in it.
    let foreign = "svcb-not-ours";
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &namespace(foreign, false)).await.unwrap();

    // The policy is in force once the API server has loaded it: wait (bounded) for its first denial.
    let pods_default: Api<Pod> = Api::namespaced(harness.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pod = Pod {
        metadata: ObjectMeta { name: Some("intruder".into()), ..Default::default() },
        spec: Some(k8s_openapi::api::core::v1::PodSpec {
            containers: vec![k8s_openapi::api::core::v1::Container {
                name: "c".into(),
                image: Some("x".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    loop {
        match pods_default.create(&PostParams::default(), &pod).await {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(POLICY) => break,
            Ok(_) => {
                // Created before the policy was loaded: remove it and try again.
                let _ =
                    Api::<Pod>::namespaced(admin.clone(), "default").delete("intruder", &DeleteParams::default()).await;
            }
            Err(e) => panic!("creating a pod in default: {e}"),
        }
        assert!(Instant::now() < deadline, "the admission policy never denied a pod in `default`");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("denied as expected: a pod in default (policy)");

    // The role is sufficient: the whole suite through the kube target, as the harness.
    suite::whole_suite(lab, harness.clone()).await;
    // The agent answers only its harness, even to a pod that reaches its IP directly.
    stranger::strangers_get_401(lab, &admin, harness.clone()).await;

    // Its own namespace, labelled as the kube target labels it.
    let ours = "svcb-idt-ours";
    Api::<Namespace>::all(harness.clone()).create(&PostParams::default(), &namespace(ours, true)).await.unwrap();

    // RBAC: kinds the role does not grant, even in its own namespace.
    denied(
        Api::<ConfigMap>::namespaced(harness.clone(), ours).create(&PostParams::default(), &config_map(ours)).await,
        RBAC,
        "a ConfigMap in its own namespace (RBAC)",
    );
    denied(
        Api::<Secret>::namespaced(harness.clone(), ours).list(&ListParams::default()).await,
        RBAC,
        "listing Secrets (RBAC)",
    );
    denied(Api::<Secret>::namespaced(harness.clone(), "kube-system").get("any").await, RBAC, "reading a Secret (RBAC)");
    // The policy: namespaces it does not own.
    // (`default` itself no one may delete: NamespaceLifecycle refuses before any policy, so a team's namespace.)
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &namespace("team-a", false)).await.unwrap();
    denied(
        Api::<Namespace>::all(harness.clone()).delete("team-a", &DeleteParams::default()).await,
        POLICY,
        "deleting another team's namespace (policy)",
    );
    denied(
        Api::<Namespace>::all(harness.clone()).delete(foreign, &DeleteParams::default()).await,
        POLICY,
        "deleting an svcb-* namespace it did not create (policy: no managed-by label)",
    );
    denied(
        Api::<Namespace>::all(harness.clone())
            .create(&PostParams::default(), &namespace("svcb-unlabelled", false))
            .await,
        POLICY,
        "creating a namespace without its label (policy)",
    );
    let service = Service {
        metadata: ObjectMeta { name: Some("s".into()), ..Default::default() },
        spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
            ports: Some(vec![k8s_openapi::api::core::v1::ServicePort { port: 80, ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    denied(
        Api::<Service>::namespaced(harness.clone(), foreign).create(&PostParams::default(), &service).await,
        POLICY,
        "a Service in a namespace it did not create (policy)",
    );
    denied(
        Api::<Deployment>::namespaced(harness.clone(), "kube-system")
            .patch("coredns", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})))
            .await,
        POLICY,
        "scaling CoreDNS in kube-system (policy)",
    );
    // Pod proxy into another namespace: CoreDNS's pod, through the API server.
    let coredns = Api::<Pod>::namespaced(admin.clone(), "kube-system")
        .list(&ListParams::default().labels("k8s-app=kube-dns"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .expect("a CoreDNS pod");
    // (A real pod: for one that does not exist the API server answers 404 before admission.)
    denied(
        Api::<Pod>::namespaced(harness.clone(), "kube-system").delete(&coredns, &DeleteParams::default()).await,
        POLICY,
        "deleting CoreDNS's pod in kube-system (policy)",
    );
    let request = http::Request::get(format!("/api/v1/namespaces/kube-system/pods/{coredns}:8080/proxy/health"))
        .body(Vec::new())
        .unwrap();
    denied(harness.request_text(request).await, POLICY, "pod proxy into kube-system (policy)");
    // And what it may do, it can: delete the namespace it made.
    Api::<Namespace>::all(harness.clone()).delete(ours, &DeleteParams::default()).await.expect("its own namespace");
}

#[test]
fn the_harness_identity_runs_scenarios_and_is_denied_everything_else() {
    if let Some(why) = svcbench::lab::unavailable() {
        println!("SKIPPED: {why}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = LabConfig {
            svcbench: Some(env!("CARGO_BIN_EXE_svcbench").into()),
            ..LabConfig::new(ProxyMode::Nftables, 2)
        };
        let lab = Lab::start(config).await.expect("lab");
        // The checks run on a task so that a failed assertion still tears the lab down (the Lab's Drop does it).
        let outcome = tokio::spawn(async move {
            checks(&lab).await;
            lab
        })
        .await;
        match outcome {
            Ok(lab) => lab.stop().await,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    });
}
