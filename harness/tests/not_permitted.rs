//! A step the harness's identity may not run (HTTP 403 from RBAC or an admission policy) is reported as not run — an
//! action, a polled assertion and a convergence step alike — with the refusal, and every later step is not run
//! either; the scenario is not run, never failed. The refusing target is the embedded reference wrapped so that
//! whatever touches namespace `other` is refused, as svcbench's admission policy refuses `kube-system`: a stand-in,
//! since the real refusal needs the lab's API server (`lab_identity.rs` shows it there).

use std::time::Duration;

use async_trait::async_trait;
use svcbench::{
    probe::{ProbeRequest, ProbeResponse},
    results::Outcome,
    runner,
    scenario::{Action, Client, ObjectRef},
    targets::{
        EndpointSliceView, NodeView, PodView, ServiceView, Target, TargetError,
        embedded::{EmbeddedConfig, EmbeddedTarget},
    },
};

struct Confined(EmbeddedTarget);

fn refused(what: &str) -> TargetError {
    TargetError::NotPermitted(format!("forbidden to {what}: ValidatingAdmissionPolicy denied request"))
}

/// An object in `other` (creating the namespace itself is allowed, as svcbench may create its own namespaces).
fn touches_other(action: &Action) -> bool {
    !matches!(action, Action::CreateNamespace { .. })
        && serde_json::to_string(action).is_ok_and(|json| json.contains("\"other\""))
}

#[async_trait]
impl Target for Confined {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn description(&self) -> String {
        self.0.description()
    }
    async fn apply(&self, action: &Action) -> Result<(), TargetError> {
        if touches_other(action) {
            return Err(refused("change namespace other"));
        }
        self.0.apply(action).await
    }
    async fn service(&self, service: &ObjectRef) -> Result<Option<ServiceView>, TargetError> {
        self.0.service(service).await
    }
    async fn pods(&self, deployment: &ObjectRef) -> Result<Vec<PodView>, TargetError> {
        self.0.pods(deployment).await
    }
    async fn endpoint_slices(&self, service: &ObjectRef) -> Result<Vec<EndpointSliceView>, TargetError> {
        self.0.endpoint_slices(service).await
    }
    async fn probe(&self, from: &str, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        if from == "other" {
            return Err(refused("create the agent in other"));
        }
        self.0.probe(from, request).await
    }
    async fn nodes(&self) -> Result<Vec<NodeView>, TargetError> {
        self.0.nodes().await
    }
    async fn probe_as(&self, client: &Client, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        if client.namespace_name() == Some("other") {
            return Err(refused("create the agent in other"));
        }
        self.0.probe_as(client, request).await
    }
    fn poll_interval(&self) -> Duration {
        self.0.poll_interval()
    }
    async fn shutdown(&self) {
        self.0.shutdown().await;
    }
}

const HEAD: &str = "name: t\ndescription: d\nsteps:\n  - createNamespace: test\n  - createNamespace: other\n  \
                    - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, port: 80}\n";

async fn run(refused_step: &str) -> svcbench::results::ScenarioResult {
    let text =
        format!("{HEAD}{refused_step}  - expectDns: {{from: test, name: web, records: [{{clusterIPOf: web}}]}}\n");
    let plan = svcbench::scenario::parse(std::path::Path::new("t.yaml"), &text).expect("valid");
    let target = Confined(EmbeddedTarget::start(EmbeddedConfig::default()).await.expect("embedded"));
    let result = runner::run_plan(&plan, &target, &mut |_| {}).await;
    target.shutdown().await;
    result
}

#[tokio::test]
async fn a_refused_action_assertion_or_convergence_is_not_run_and_neither_is_what_follows() {
    let cases = [
        ("  - createDeployment: {namespace: other, name: web}\n", "action"),
        ("  - expectDns: {from: other, name: web.test, records: [{clusterIPOf: test/web}]}\n", "assertion"),
        (
            "  - converge:\n      action: {scale: {namespace: test, deployment: web, replicas: 2}}\n      \
             namespace: test\n      service: web\n      deployment: web\n      from: other\n",
            "convergence",
        ),
    ];
    for (step, kind) in cases {
        let result = run(step).await;
        assert_eq!(result.outcome, Outcome::Skipped, "{kind}: {:?}", result.steps);
        let outcomes: Vec<Outcome> = result.steps.iter().map(|s| s.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Passed, Outcome::Passed, Outcome::Passed, Outcome::Passed, Outcome::Skipped, Outcome::Skipped],
            "{kind}"
        );
        let refused = result.first_not_permitted().expect("the refused step");
        assert_eq!(refused.line, 8, "{kind}");
        let message = refused.message.as_deref().unwrap_or_default();
        assert!(message.starts_with("not run") && message.contains("ValidatingAdmissionPolicy"), "{kind}: {message}");
        assert!(result.steps[5].message.is_none(), "{kind}: the step after it was merely not reached");
    }
}
