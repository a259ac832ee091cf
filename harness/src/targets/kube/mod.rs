//! The kube target: the same scenarios against a real cluster (kind in CI) through kube-rs.
//!
//! Every scenario gets fresh namespaces `svcb-<run>-<name>` labelled with the run id, deleted at the end (also on
//! failure and Ctrl-C; `svcbench cleanup` removes leftovers by label). Backends are agnhost netexec; probes run in
//! an agent pod (`svcbench agent`) in the namespace the scenario says, reached through the API server's pod proxy,
//! so DNS and traffic are measured from inside the cluster with the pod's real resolv.conf.

pub mod convert;
pub mod names;
pub mod objects;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
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

use super::{EndpointSliceView, PodView, ServiceView, Target, TargetError};
use crate::{
    probe::{ProbeRequest, ProbeResponse, batch::BatchResult, dns::DnsRecord},
    scenario::{Action, DeploymentSpec, ObjectRef, ServiceSpec},
};

/// How to reach and use the cluster.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// kubeconfig context (default: the current one).
    pub context: Option<String>,
    /// Images for backends and the agent.
    pub images: Images,
    /// Cluster domain.
    pub cluster_domain: String,
    /// How long an agent pod may take to become ready.
    pub agent_ready_timeout: Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            context: None,
            images: Images::default(),
            cluster_domain: "cluster.local".into(),
            agent_ready_timeout: Duration::from_secs(120),
        }
    }
}

impl KubeConfig {
    /// Defaults overridden by `SVCBENCH_KUBE_CONTEXT`, `SVCBENCH_AGENT_IMAGE`, `SVCBENCH_BACKEND_IMAGE`,
    /// `SVCBENCH_CLUSTER_DOMAIN`.
    pub fn from_env() -> Self {
        let mut c = Self::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        c.context = var("SVCBENCH_KUBE_CONTEXT");
        if let Some(i) = var("SVCBENCH_AGENT_IMAGE") {
            c.images.agent = i;
        }
        if let Some(i) = var("SVCBENCH_BACKEND_IMAGE") {
            c.images.backend = i;
        }
        if let Some(d) = var("SVCBENCH_CLUSTER_DOMAIN") {
            c.cluster_domain = d;
        }
        c
    }
}

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
}

/// Turns a kube error into a message a user can act on.
pub fn explain(e: kube::Error, what: &str) -> TargetError {
    match e {
        kube::Error::Api(status) if status.code == 403 => TargetError::Other(format!(
            "RBAC forbidden while trying to {what}: {} (grant it with harness/rbac.yaml)",
            status.message
        )),
        kube::Error::Api(status) if status.code == 404 => {
            TargetError::Rejected(format!("{what}: not found ({})", status.message))
        }
        kube::Error::Api(status) if status.code == 409 => {
            TargetError::Rejected(format!("{what}: already exists ({})", status.message))
        }
        // Not a Kubernetes Status (the agent answers `{"error": …}` through the pod proxy): its text is the message.
        kube::Error::Api(status) if status.reason == "Failed to parse error data" => {
            TargetError::Other(format!("{what}: HTTP {}: {}", status.code, status.message))
        }
        kube::Error::Api(status) => {
            TargetError::Other(format!("{what}: API error {} {}: {}", status.code, status.reason, status.message))
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
        api.create(&PostParams::default(), &objects::service(spec, &ns, &self.run))
            .await
            .map_err(|e| explain(e, &format!("create service {}", spec.object)))?;
        Ok(())
    }

    /// The live pods of a workload, oldest first (ties by name, which orders StatefulSet ordinals).
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

    /// Makes sure the namespace's agent pod exists and is ready; explains image pull failures and stuck pods.
    async fn ensure_agent(&self, ns: &str) -> Result<(), TargetError> {
        if self.agents.lock().expect("agents lock").iter().any(|a| a == ns) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &objects::agent_pod(ns, &self.run, &self.config.images)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(explain(e, &format!("create the agent pod in {ns}"))),
        }
        let deadline = Instant::now() + self.config.agent_ready_timeout;
        loop {
            let pod =
                api.get(objects::AGENT_NAME).await.map_err(|e| explain(e, &format!("read the agent pod in {ns}")))?;
            if convert::pod(&pod, &NamespaceMap::default()).is_some_and(|view| view.ready) {
                self.agents.lock().expect("agents lock").push(ns.to_owned());
                return Ok(());
            }
            if let Some(problem) = pod_problem(&pod)
                && (problem.contains("image") || Instant::now() >= deadline)
            {
                return Err(TargetError::Other(format!("agent pod {ns}/{}: {problem}", objects::AGENT_NAME)));
            }
            if Instant::now() >= deadline {
                return Err(TargetError::Other(format!(
                    "agent pod {ns}/{} not ready after {:?}: {}",
                    objects::AGENT_NAME,
                    self.config.agent_ready_timeout,
                    pod_conditions(&pod)
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn rewrite_request(&self, request: &ProbeRequest) -> ProbeRequest {
        let names = self.names();
        let mut r = request.clone();
        match &mut r {
            ProbeRequest::Dns { name, .. } => *name = names.name_to_real(name),
            ProbeRequest::Http { host, .. } => *host = names.name_to_real(host),
            ProbeRequest::Load(spec) => spec.host = names.name_to_real(&spec.host),
            ProbeRequest::DnsLoad(spec) => spec.names = spec.names.iter().map(|n| names.name_to_real(n)).collect(),
            ProbeRequest::Batch(spec) => spec.probes = spec.probes.iter().map(|p| self.rewrite_request(p)).collect(),
            ProbeRequest::ResolvConf | ProbeRequest::Connect { .. } => {}
        }
        r
    }

    fn rewrite_response(&self, response: ProbeResponse) -> ProbeResponse {
        let names = self.names();
        let record = |r: DnsRecord| match r {
            DnsRecord::Srv { priority, weight, port, target } => {
                DnsRecord::Srv { priority, weight, port, target: names.name_to_logical(&target) }
            }
            DnsRecord::Ptr { target } => DnsRecord::Ptr { target: names.name_to_logical(&target) },
            DnsRecord::Cname { target } => DnsRecord::Cname { target: names.name_to_logical(&target) },
            other => other,
        };
        match response {
            ProbeResponse::Dns(mut lookup) => {
                lookup.name = names.name_to_logical(&lookup.name);
                lookup.records = lookup.records.into_iter().map(record).collect();
                for t in &mut lookup.tried {
                    t.name = names.name_to_logical(&t.name);
                    t.records = std::mem::take(&mut t.records).into_iter().map(record).collect();
                }
                ProbeResponse::Dns(lookup)
            }
            ProbeResponse::ResolvConf(mut conf) => {
                conf.search = conf.search.iter().map(|s| names.name_to_logical(s)).collect();
                ProbeResponse::ResolvConf(conf)
            }
            ProbeResponse::Batch(mut outcome) => {
                outcome.results = std::mem::take(&mut outcome.results)
                    .into_iter()
                    .map(|r| match r {
                        BatchResult::Ok(response) => BatchResult::Ok(self.rewrite_response(response)),
                        error => error,
                    })
                    .collect();
                ProbeResponse::Batch(outcome)
            }
            other => other,
        }
    }

    /// Deletes every namespace labelled as svcbench's (all runs when `run` is `None`); returns their names.
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
        let mut deleted = Vec::new();
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

/// What is wrong with a pod that is not ready, if the status says (image pull, crash loop).
fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for cs in status.container_statuses.iter().flatten() {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            let message = w.message.clone().unwrap_or_default();
            if reason.contains("ImagePull") || reason == "ErrImagePull" || reason == "InvalidImageName" {
                return Some(format!("image pull failure for {}: {reason}: {message}", cs.image));
            }
            if !reason.is_empty() && reason != "ContainerCreating" && reason != "PodInitializing" {
                return Some(format!("container {} waiting: {reason}: {message}", cs.name));
            }
        }
    }
    None
}

fn pod_conditions(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else { return "no status yet (not scheduled?)".into() };
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            format!("{}={}{}", c.type_, c.status, c.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())
        })
        .collect();
    format!("phase {}, conditions [{}]", status.phase.clone().unwrap_or_default(), conditions.join(", "))
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
            Action::CreateNamespace { name } => {
                let real = self.real_name(name);
                let api: Api<Namespace> = Api::all(self.client.clone());
                api.create(&PostParams::default(), &objects::namespace(&real, &self.run))
                    .await
                    .map_err(|e| explain(e, &format!("create namespace {real}")))?;
                self.names.lock().expect("names lock").insert(name, &real);
            }
            Action::CreateDeployment(spec) => {
                let ns = self.real_ns(&spec.object.namespace);
                if spec.stateful {
                    let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &ns);
                    api.create(
                        &PostParams::default(),
                        &objects::stateful_set(spec, &ns, &self.run, &self.config.images),
                    )
                    .await
                    .map_err(|e| explain(e, &format!("create statefulset {}", spec.object)))?;
                } else {
                    let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
                    api.create(&PostParams::default(), &objects::deployment(spec, &ns, &self.run, &self.config.images))
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
            }
            Action::SetPodReady { pod, ready } => {
                let w = self.workload(&pod.deployment)?;
                let pods: Vec<Pod> = self
                    .workload_pods(&pod.deployment)
                    .await?
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let target = pods.get(pod.index as usize).ok_or_else(|| {
                    TargetError::Rejected(format!(
                        "{} has no pod #{} ({} live pods)",
                        pod.deployment,
                        pod.index,
                        pods.len()
                    ))
                })?;
                let name = target.metadata.name.clone().unwrap_or_default();
                let port = w.spec.ports.first().map_or(80, |p| p.port);
                let cmd = if *ready {
                    format!("rm -f {}", objects::NOT_READY_FILE)
                } else {
                    format!("touch {}", objects::NOT_READY_FILE)
                };
                // netexec's /shell runs the command in the container; the readiness probe watches the marker file.
                let path = format!(
                    "/api/v1/namespaces/{}/pods/{name}:{port}/proxy/shell?cmd={}",
                    self.real_ns(&pod.deployment.namespace),
                    cmd.replace(' ', "%20").replace('/', "%2F")
                );
                let request =
                    http::Request::get(path).body(Vec::new()).map_err(|e| TargetError::Other(e.to_string()))?;
                self.client
                    .request_text(request)
                    .await
                    .map_err(|e| explain(e, &format!("toggle readiness of pod {name}")))?;
            }
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
        let ns = self.real_ns(from);
        self.ensure_agent(&ns).await?;
        let body = serde_json::to_vec(&self.rewrite_request(request)).map_err(|e| TargetError::Other(e.to_string()))?;
        let path = format!("/api/v1/namespaces/{ns}/pods/{}:{}/proxy/probe", objects::AGENT_NAME, objects::AGENT_PORT);
        let http_request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| TargetError::Other(e.to_string()))?;
        let response: ProbeResponse =
            self.client.request(http_request).await.map_err(|e| explain(e, &format!("run a probe from {ns}")))?;
        Ok(self.rewrite_response(response))
    }

    fn cluster_domain(&self) -> String {
        self.config.cluster_domain.clone()
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(500)
    }

    async fn shutdown(&self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        for ns in self.names().reals() {
            if let Err(e) = api.delete(&ns, &DeleteParams::background()).await {
                tracing::warn!(namespace = %ns, error = %e, "cannot delete namespace; `svcbench cleanup` removes leftovers");
            }
        }
    }
}
