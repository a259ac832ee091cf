//! The kube target: the same scenarios against a real cluster (kind in CI) through kube-rs.
//!
//! Every scenario gets fresh namespaces `svcb-<run>-<name>` labelled with the run id, deleted at the end (also on
//! failure and Ctrl-C; `svcbench cleanup` removes leftovers by label). Backends are agnhost netexec; probes run in
//! an agent pod (`svcbench agent`) in the namespace the scenario says, reached through the API server's pod proxy,
//! so DNS and traffic are measured from inside the cluster with the pod's real resolv.conf. A namespace a scenario
//! declares literal (`createNamespace: {name, literal: true}`) keeps its name, and is labelled and deleted like the
//! others.
//!
//! Nothing here knows which cluster it talks to: kind, a cloud cluster or the local lab are all a kubeconfig.

mod clients;
mod config;
pub mod convert;
pub mod names;
pub mod objects;
pub mod proxy;
mod setup;
pub mod slices;

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::Duration,
};

use async_trait::async_trait;
pub use config::{AgentIngress, KubeConfig};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{Namespace, Pod, Service},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
pub use names::NamespaceMap;
pub use objects::Images;

use super::{EndpointSliceView, PodView, ServiceState, ServiceView, Target, TargetError};
use crate::{
    probe::{ProbeRequest, ProbeResponse},
    scenario::{Action, DeploymentSpec, ObjectRef, ServiceSpec},
};

/// How long [`Target::shutdown`] waits for a scenario's namespaces to be deleted.
const NAMESPACE_GONE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
struct Workload {
    spec: DeploymentSpec,
}

/// A real cluster.
pub struct KubeTarget {
    client: Client,
    config: KubeConfig,
    run: String,
    names: Mutex<NamespaceMap>,
    workloads: Mutex<HashMap<ObjectRef, Workload>>,
    agents: Mutex<Vec<String>>,
    /// Agents this run created in the cluster's own namespaces (`default`, `kube-system`), as (namespace, name).
    agents_outside_runs: Mutex<Vec<(String, String)>>,
    /// This run's agent token: its agents answer only requests that carry it.
    agent_token: String,
}

/// Whether a 403's message is a refusal of the identity itself: RBAC's ("User … cannot create resource …") or an
/// admission policy's (svcbench's own confines the harness to its namespaces).
pub fn denies_identity(message: &str) -> bool {
    (message.contains(" cannot ") && message.contains("resource")) || message.contains("ValidatingAdmissionPolicy")
}

/// Said when the API server's pod proxy could not connect to a pod (HTTP 502/503 "dial tcp …").
pub const POD_UNREACHABLE: &str = " (the API server could not connect to the pod; where the CNI enforces \
    NetworkPolicy, svcbench's `svcbench-agent` policy admits only the API server's addresses: if it reaches pods from \
    elsewhere, such as a Konnectivity tunnel, set SVCBENCH_AGENT_INGRESS to those CIDRs, or to `off`)";

/// What a 403 says: the layer that may have refused, and where the grants are.
pub fn forbidden(what: &str, message: &str) -> String {
    format!(
        "forbidden to {what}: {message} (RBAC forbidden, or an admission policy refused it; harness/rbac.yaml grants \
         what svcbench needs inside its own namespaces)"
    )
}

/// Turns a kube error into a message a user can act on.
pub fn explain(e: kube::Error, what: &str) -> TargetError {
    match e {
        // The ServiceAccount admission plugin refuses pods (403) until the namespace's ServiceAccount exists.
        kube::Error::Api(status)
            if status.code == 403 && status.message.contains("error looking up service account") =>
        {
            TargetError::Other(format!(
                "{what}: the namespace's ServiceAccount does not exist yet (not an RBAC problem): {}",
                status.message
            ))
        }
        kube::Error::Api(status) if status.code == 403 && denies_identity(&status.message) => {
            TargetError::NotPermitted(forbidden(what, &status.message))
        }
        // Other 403s are not about who asks: PodSecurity, a ResourceQuota, a namespace being deleted.
        kube::Error::Api(status) if status.code == 403 => {
            TargetError::Other(format!("{what}: forbidden: {}", status.message))
        }
        kube::Error::Api(status) if status.code == 404 => {
            TargetError::Rejected(format!("{what}: not found ({})", status.message))
        }
        kube::Error::Api(status) if status.code == 409 => {
            TargetError::Rejected(format!("{what}: already exists ({})", status.message))
        }
        kube::Error::Api(status) if matches!(status.code, 502 | 503) && status.message.contains("dial tcp") => {
            TargetError::Other(format!("{what}: HTTP {}: {}{POD_UNREACHABLE}", status.code, status.message))
        }
        // Not a Kubernetes Status: kube-rs keeps the body's text as the message.
        kube::Error::Api(status) if status.reason == "Failed to parse error data" => {
            TargetError::Other(format!("{what}: HTTP {}: {}", status.code, status.message))
        }
        kube::Error::Api(status) => {
            TargetError::Other(format!("{what}: HTTP {} {}: {}", status.code, status.reason, status.message))
        }
        kube::Error::HyperError(e) => TargetError::Other(format!("{what}: API server unreachable: {e}")),
        kube::Error::Service(e) => TargetError::Other(format!("{what}: API server unreachable: {e}")),
        other => TargetError::Other(format!("{what}: {other}")),
    }
}

fn short_run_id() -> String {
    crate::targets::embedded::names::random(6)
}

impl KubeTarget {
    /// Connects with kubeconfig resolution as kubectl does it (KUBECONFIG, ~/.kube/config, in-cluster), and checks
    /// the API server answers within 10 s.
    ///
    /// # Errors
    /// No kubeconfig, unknown context, or an unreachable API server — each with a message saying which.
    pub async fn connect(config: KubeConfig) -> Result<Self, TargetError> {
        let options = kube::config::KubeConfigOptions { context: config.context.clone(), ..Default::default() };
        let kube_config = match &config.context {
            Some(_) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| TargetError::Other(format!("kubeconfig context {:?}: {e}", config.context)))?,
            None => kube::Config::infer().await.map_err(|e| {
                TargetError::Other(format!("no usable kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster): {e}"))
            })?,
        };
        let mut kube_config = kube_config;
        // Load probes run up to 120 s inside the agent; the pod-proxy call must outlive them.
        kube_config.read_timeout = Some(Duration::from_secs(180));
        let url = kube_config.cluster_url.clone();
        let client =
            Client::try_from(kube_config).map_err(|e| TargetError::Other(format!("kube client for {url}: {e}")))?;
        match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(explain(e, &format!("reach the API server at {url}"))),
            Err(_) => return Err(TargetError::Other(format!("API server at {url} did not answer within 10 s"))),
        }
        Ok(Self::with_client(client, config, &short_run_id()))
    }

    /// A target over an existing client (tests use a mocked API server) with a fixed run id.
    pub fn with_client(client: Client, config: KubeConfig, run: &str) -> Self {
        Self {
            client,
            config,
            run: run.to_owned(),
            names: Mutex::new(NamespaceMap::default()),
            workloads: Mutex::new(HashMap::new()),
            agents: Mutex::new(Vec::new()),
            agents_outside_runs: Mutex::new(Vec::new()),
            agent_token: new_agent_token(),
        }
    }

    /// The API client (shared by the targets of one run).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The run id in namespace names and labels.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    fn names(&self) -> NamespaceMap {
        self.names.lock().expect("names lock").clone()
    }

    fn real_ns(&self, logical: &str) -> String {
        self.names().real(logical)
    }

    fn real_name(&self, logical: &str) -> String {
        let name = format!("svcb-{}-{logical}", self.run);
        name.chars().take(63).collect::<String>().trim_end_matches('-').to_owned()
    }

    fn workload(&self, obj: &ObjectRef) -> Result<Workload, TargetError> {
        self.workloads
            .lock()
            .expect("workloads lock")
            .get(obj)
            .cloned()
            .ok_or_else(|| TargetError::Rejected(format!("workload {obj} was not created by this run")))
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<(), TargetError> {
        let ns = self.real_ns(&spec.object.namespace);
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        // An ExternalName may point at a service of this scenario: its namespace is renamed like any other.
        let mut spec = spec.clone();
        spec.external_name = spec.external_name.map(|n| self.names().external_name_to_real(&n));
        api.create(&PostParams::default(), &objects::service(&spec, &ns, &self.run))
            .await
            .map_err(|e| explain(e, &format!("create service {}", spec.object)))?;
        Ok(())
    }

    /// The pods of a workload, oldest first (ties by name, which orders StatefulSet ordinals).
    async fn workload_pods(&self, obj: &ObjectRef) -> Result<Vec<Pod>, TargetError> {
        let w = self.workload(obj)?;
        let selector = w.spec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.real_ns(&obj.namespace));
        let mut pods = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| explain(e, &format!("list pods of {obj}")))?
            .items;
        pods.sort_by(|a, b| {
            let key = |p: &Pod| (p.metadata.creation_timestamp.clone(), p.metadata.name.clone());
            key(a).cmp(&key(b))
        });
        Ok(pods)
    }

    /// Deletes every namespace labelled as svcbench's (all runs when `run` is `None`), and svcbench's agents in the
    /// cluster's own namespaces; returns their names.
    ///
    /// # Errors
    /// The namespaces cannot be listed or deleted.
    pub async fn cleanup(client: &Client, run: Option<&str>) -> Result<Vec<String>, TargetError> {
        let api: Api<Namespace> = Api::all(client.clone());
        let mut selector = format!("{}={}", objects::MANAGED_BY.0, objects::MANAGED_BY.1);
        if let Some(run) = run {
            selector.push_str(&format!(",{}={run}", objects::RUN_LABEL));
        }
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| explain(e, "list svcbench namespaces"))?;
        let mut deleted = delete_agents_outside_runs(client, &selector).await?;
        for ns in list.items {
            let Some(name) = ns.metadata.name else { continue };
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(explain(e, &format!("delete namespace {name}"))),
            }
        }
        Ok(deleted)
    }
}

/// Deletes the token Secret of agent pod `name` (by name: the harness may not list Secrets).
async fn delete_agent_token(client: &Client, ns: &str, name: &str) {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let secret = objects::agent_token_secret_name(&objects::AgentPlacement {
        name: name.to_owned(),
        ..objects::AgentPlacement::anywhere()
    });
    match api.delete(&secret, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::warn!(secret = %format!("{ns}/{secret}"), error = %e, "cannot delete an agent token; `svcbench cleanup` retries")
        }
    }
}

/// A fresh random token for a run's agents: 32 bytes from the OS's generator, hex.
fn new_agent_token() -> String {
    rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// Deletes the pods matching `selector` (svcbench's agents) in the namespaces every cluster has, which no run
/// deletes; returns them as `namespace/name`.
async fn delete_agents_outside_runs(client: &Client, selector: &str) -> Result<Vec<String>, TargetError> {
    let mut deleted = Vec::new();
    for ns in crate::scenario::CLUSTER_NAMESPACES {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        // A user allowed to delete its own namespaces may not read kube-system: the namespaces still get cleaned.
        let pods = match api.list(&ListParams::default().labels(selector)).await {
            Ok(pods) => pods,
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "cannot list svcbench agents; skipping this namespace");
                continue;
            }
        };
        for name in pods.items.into_iter().filter_map(|p| p.metadata.name) {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(format!("{ns}/{name}")),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(explain(e, &format!("delete agent {ns}/{name}"))),
            }
            delete_agent_token(client, ns, &name).await;
        }
    }
    Ok(deleted)
}

#[async_trait]
impl Target for KubeTarget {
    fn name(&self) -> &str {
        "kube"
    }

    fn description(&self) -> String {
        format!(
            "Kubernetes cluster {} (run {}, backend {}, agent {})",
            self.config.context.clone().unwrap_or_else(|| "current context".into()),
            self.run,
            self.config.images.backend,
            self.config.images.agent
        )
    }

    async fn apply(&self, action: &Action) -> Result<(), TargetError> {
        match action {
            Action::CreateNamespace { name } => self.create_namespace(name, &self.real_name(name)).await?,
            Action::CreateDeployment(spec) => {
                let ns = self.real_ns(&spec.object.namespace);
                let node = match spec.node {
                    Some(i) => Some(self.node(i).await?.name),
                    None => None,
                };
                let (run, images, node) = (&self.run, &self.config.images, node.as_deref());
                if spec.stateful {
                    let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
                    api.create(&PostParams::default(), &objects::stateful_set(spec, &ns, run, images, node))
                        .await
                        .map_err(|e| explain(e, &format!("create statefulset {}", spec.object)))?;
                } else {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                    api.create(&PostParams::default(), &objects::deployment(spec, &ns, run, images, node))
                        .await
                        .map_err(|e| explain(e, &format!("create deployment {}", spec.object)))?;
                }
                self.workloads
                    .lock()
                    .expect("workloads lock")
                    .insert(spec.object.clone(), Workload { spec: spec.clone() });
            }
            Action::CreateService(spec) => self.create_service(spec).await?,
            Action::CreateServices { .. } => {
                for spec in action.bulk_services() {
                    self.create_service(&spec).await?;
                }
            }
            Action::Scale { deployment, replicas } => {
                let w = self.workload(deployment)?;
                let ns = self.real_ns(&deployment.namespace);
                let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
                let what = format!("scale {deployment} to {replicas}");
                if w.spec.stateful {
                    let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
                    api.patch(&deployment.name, &PatchParams::default(), &patch)
                        .await
                        .map_err(|e| explain(e, &what))?;
                } else {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                    api.patch(&deployment.name, &PatchParams::default(), &patch)
                        .await
                        .map_err(|e| explain(e, &what))?;
                }
                // setPodReady waits for this many pods.
                if let Some(w) = self.workloads.lock().expect("workloads lock").get_mut(deployment) {
                    w.spec.replicas = *replicas;
                }
            }
            Action::SetPodReady { pod, ready } => self.set_pod_ready(pod, *ready).await?,
            Action::CreateEndpointSlice(spec) => self.write_slice(spec).await?,
            Action::DeleteService { service } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), &self.real_ns(&service.namespace));
                api.delete(&service.name, &DeleteParams::background())
                    .await
                    .map_err(|e| explain(e, &format!("delete service {service}")))?;
            }
            Action::DeleteDeployment { deployment } => {
                let w = self.workload(deployment)?;
                let ns = self.real_ns(&deployment.namespace);
                let what = format!("delete workload {deployment}");
                if w.spec.stateful {
                    let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
                    api.delete(&deployment.name, &DeleteParams::background()).await.map_err(|e| explain(e, &what))?;
                } else {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                    api.delete(&deployment.name, &DeleteParams::background()).await.map_err(|e| explain(e, &what))?;
                }
                self.workloads.lock().expect("workloads lock").remove(deployment);
            }
        }
        Ok(())
    }

    async fn service(&self, service: &ObjectRef) -> Result<Option<ServiceView>, TargetError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.real_ns(&service.namespace));
        let svc = api.get_opt(&service.name).await.map_err(|e| explain(e, &format!("get service {service}")))?;
        Ok(svc.and_then(|s| convert::service(&s, &self.names())))
    }

    async fn pods(&self, deployment: &ObjectRef) -> Result<Vec<PodView>, TargetError> {
        let names = self.names();
        Ok(self.workload_pods(deployment).await?.iter().filter_map(|p| convert::pod(p, &names)).collect())
    }

    async fn services_with_slices(&self, services: &[ObjectRef]) -> Result<Vec<Option<ServiceState>>, TargetError> {
        // One list of services and one of EndpointSlices per namespace, instead of two calls per service.
        let names = self.names();
        let mut views = HashMap::new();
        let mut slices = HashMap::new();
        for ns in services.iter().map(|s| s.namespace.as_str()).collect::<BTreeSet<_>>() {
            let real = names.real(ns);
            let api: Api<Service> = Api::namespaced(self.client.clone(), &real);
            let list =
                api.list(&ListParams::default()).await.map_err(|e| explain(e, &format!("list services in {real}")))?;
            for v in list.items.iter().filter_map(|s| convert::service(s, &names)) {
                views.insert(ObjectRef { namespace: ns.to_owned(), name: v.name.clone() }, v);
            }
            let path = format!("/apis/discovery.k8s.io/v1/namespaces/{real}/endpointslices");
            let request = http::Request::get(path).body(Vec::new()).map_err(|e| TargetError::Other(e.to_string()))?;
            let list: convert::SliceList = self
                .client
                .request(request)
                .await
                .map_err(|e| explain(e, &format!("list endpointslices in {real}")))?;
            for (service, s) in convert::slices_by_service(list) {
                slices.insert(ObjectRef { namespace: ns.to_owned(), name: service }, s);
            }
        }
        Ok(services
            .iter()
            .map(|s| {
                views
                    .get(s)
                    .map(|v| ServiceState { service: v.clone(), slices: slices.get(s).cloned().unwrap_or_default() })
            })
            .collect())
    }

    async fn endpoint_slices(&self, service: &ObjectRef) -> Result<Vec<EndpointSliceView>, TargetError> {
        let path = format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{}",
            self.real_ns(&service.namespace),
            service.name
        );
        let request = http::Request::get(path).body(Vec::new()).map_err(|e| TargetError::Other(e.to_string()))?;
        let list: convert::SliceList =
            self.client.request(request).await.map_err(|e| explain(e, &format!("list endpointslices of {service}")))?;
        Ok(convert::slices(list))
    }

    async fn probe(&self, from: &str, request: &ProbeRequest) -> Result<ProbeResponse, TargetError> {
        self.probe_agent(&self.real_ns(from), &objects::AgentPlacement::anywhere(), request).await
    }

    async fn nodes(&self) -> Result<Vec<super::NodeView>, TargetError> {
        self.list_nodes().await
    }

    async fn probe_as(
        &self,
        client: &crate::scenario::Client,
        request: &ProbeRequest,
    ) -> Result<ProbeResponse, TargetError> {
        self.probe_client(client, request).await
    }

    async fn create_literal_namespace(&self, name: &str) -> Result<(), TargetError> {
        self.create_namespace(name, name).await
    }

    fn cluster_domain(&self) -> String {
        self.config.cluster_domain.clone()
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(500)
    }

    async fn shutdown(&self) {
        // Agents of clients in the cluster's own namespaces do not go with the run's namespaces.
        let outside = std::mem::take(&mut *self.agents_outside_runs.lock().expect("agents lock"));
        for (ns, name) in &outside {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            if let Err(e) = api.delete(name, &DeleteParams::background()).await {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "cannot delete agent; `svcbench cleanup` removes leftovers");
            }
            delete_agent_token(&self.client, ns, name).await;
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let namespaces: Vec<String> = self.names().reals().into_iter().collect();
        for ns in &namespaces {
            if let Err(e) = api.delete(ns, &DeleteParams::background()).await {
                tracing::warn!(namespace = %ns, error = %e, "cannot delete namespace; `svcbench cleanup` removes leftovers");
            }
        }
        // A finished scenario's pods need no long graceful end, and a long grace period (terminating-endpoints asks 120 s)
        // would hold the namespace, and with it the scenarios waiting for its teardown. The namespace is terminating
        // first, so no controller makes new pods.
        for ns in &namespaces {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let Ok(list) = pods.list(&ListParams::default()).await else { continue };
            // One second, not zero: zero removes the pod from the API before its node has stopped it, and "gone"
            // must mean stopped (a host-network agent's port, a neighbour waiting for a quiet cluster).
            let now = DeleteParams { grace_period_seconds: Some(1), ..DeleteParams::background() };
            for pod in list.items.iter().filter_map(|p| p.metadata.name.as_deref()) {
                if let Err(e) = pods.delete(pod, &now).await {
                    tracing::debug!(pod = %format!("{ns}/{pod}"), error = %e, "cannot delete pod at once");
                }
            }
        }
        // Wait until they are gone (as the e2e framework does): the next scenario must not measure the proxy and the
        // EndpointSlice controller still tearing this one down (1,000 services take kube-proxy a while).
        let deadline = tokio::time::Instant::now() + NAMESPACE_GONE_TIMEOUT;
        for ns in &namespaces {
            while tokio::time::Instant::now() < deadline {
                match api.get_opt(ns).await {
                    Ok(None) => break,
                    Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
                    Err(e) => {
                        tracing::debug!(namespace = %ns, error = %e, "cannot read namespace while waiting for its deletion");
                        break;
                    }
                }
            }
        }
        // The agents in the cluster's own namespaces too: the next run's agent of the same name waits for them.
        for (ns, name) in &outside {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            while tokio::time::Instant::now() < deadline {
                match api.get_opt(name).await {
                    Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
                    _ => break,
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                ?namespaces,
                ?outside,
                "namespaces or agents still terminating after {NAMESPACE_GONE_TIMEOUT:?}"
            );
        }
    }
}
