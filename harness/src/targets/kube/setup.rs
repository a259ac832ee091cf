//! Waiting for what an action needs from a real cluster, where the API accepting an object is not the object being
//! usable: a new namespace gets its `default` ServiceAccount from kube-controller-manager a moment later (pods
//! created before it are refused), a Deployment gets its pods from the ReplicaSet controller, a pod gets an IP
//! from the node. Every wait is bounded and says what it was waiting for.

use std::time::{Duration, Instant};

use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Secret, ServiceAccount},
    discovery::v1::EndpointSlice,
    networking::v1::NetworkPolicy,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};

use super::{AgentIngress, KubeTarget, convert, explain, names::NamespaceMap, objects, proxy};
use crate::{scenario::PodRef, targets::TargetError};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

impl KubeTarget {
    /// Creates namespace `real` (for the scenario's `logical` one), labelled as this run's, and waits for its
    /// `default` ServiceAccount. A namespace of the same name that an earlier run is still deleting (a literal
    /// name is the same in every run) is waited out; any other existing one is an error saying whose it is.
    pub(super) async fn create_namespace(&self, logical: &str, real: &str) -> Result<(), TargetError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let deadline = Instant::now() + self.config.settle_timeout;
        let what = format!("create namespace {real}");
        loop {
            match api.create(&PostParams::default(), &objects::namespace(real, &self.run)).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let existing =
                        api.get_opt(real).await.map_err(|e| explain(e, &format!("read namespace {real}")))?;
                    let Some(existing) = existing else { continue };
                    let ours = existing
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(objects::MANAGED_BY.0))
                        .is_some_and(|v| v == objects::MANAGED_BY.1);
                    let run = existing.metadata.labels.as_ref().and_then(|l| l.get(objects::RUN_LABEL)).cloned();
                    let terminating = existing.metadata.deletion_timestamp.is_some();
                    if ours && terminating && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    return Err(TargetError::Rejected(match (ours, terminating) {
                        (true, true) => format!(
                            "{what}: an earlier run's namespace of that name is still terminating after {:?}",
                            self.config.settle_timeout
                        ),
                        (true, false) => format!(
                            "{what}: it already exists, created by svcbench run {} (a run in progress, or a leftover \
                             that `svcbench cleanup` removes)",
                            run.unwrap_or_else(|| "?".into())
                        ),
                        (false, _) => format!(
                            "{what}: it already exists and was not created by svcbench (a scenario's namespace must \
                             not exist before it runs)"
                        ),
                    }));
                }
                Err(e) => return Err(explain(e, &what)),
            }
        }
        // Recorded before the wait, so that shutdown deletes it whatever happens next.
        self.names.lock().expect("names lock").insert(logical, real);
        self.wait_for_default_service_account(real).await
    }

    /// Waits until namespace `ns` has its `default` ServiceAccount, without which the API refuses pods.
    async fn wait_for_default_service_account(&self, ns: &str) -> Result<(), TargetError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let deadline = Instant::now() + self.config.settle_timeout;
        loop {
            let found = api
                .get_opt("default")
                .await
                .map_err(|e| explain(e, &format!("read the default ServiceAccount of namespace {ns}")))?;
            if found.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TargetError::Other(format!(
                    "namespace {ns} has no `default` ServiceAccount after {:?}: kube-controller-manager's \
                     serviceaccount controller creates it, and no pod can be created before",
                    self.config.settle_timeout
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `setPodReady`: waits until the workload has all its replicas as live pods — with an IP, not finished, not
    /// terminating, oldest first, as `pods()` and so `podIPOf` count them, so that the index means the same pod —
    /// and pod #index is Running, then touches or removes the readiness marker file through
    /// netexec's `/shell`.
    pub(super) async fn set_pod_ready(&self, pod: &PodRef, ready: bool) -> Result<(), TargetError> {
        let w = self.workload(&pod.deployment)?;
        let deadline = Instant::now() + self.config.settle_timeout;
        let names = NamespaceMap::default();
        let target = loop {
            let all = self.workload_pods(&pod.deployment).await?;
            let live: Vec<&Pod> =
                all.iter().filter(|p| convert::pod(p, &names).is_some_and(|v| !v.terminating)).collect();
            let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if live.len() == w.spec.replicas as usize
                && let Some(p) = live.get(pod.index as usize).filter(|p| running(p))
            {
                break (*p).clone();
            }
            if Instant::now() >= deadline {
                let problem = all
                    .iter()
                    .find_map(|p| {
                        pod_problem(p)
                            .map(|why| format!("; pod {}: {why}", p.metadata.name.clone().unwrap_or_default()))
                    })
                    .unwrap_or_default();
                return Err(TargetError::Other(format!(
                    "{}: pod #{} was not Running with an IP after {:?} ({} of {} replicas live with an IP{problem})",
                    pod.deployment,
                    pod.index,
                    self.config.settle_timeout,
                    live.len(),
                    w.spec.replicas
                )));
            }
            tokio::time::sleep(POLL).await;
        };
        let name = target.metadata.name.clone().unwrap_or_default();
        let port = w.spec.ports.first().map_or(80, |p| p.port);
        let cmd = if ready {
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
        let what = format!("toggle readiness of pod {name}");
        let body = proxy::get(&self.client, &path, &what).await?;
        proxy::ShellReply::parse(&body)
            .and_then(proxy::ShellReply::into_result)
            .map_err(|e| TargetError::Other(format!("{what}: `{cmd}` in the container: {e}")))
    }

    /// Puts this run's token in the Secret the agent pod mounts (replacing a leftover's).
    async fn ensure_agent_token(&self, ns: &str, placement: &objects::AgentPlacement) -> Result<(), TargetError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let secret = objects::agent_token_secret(ns, &self.run, placement, &self.agent_token);
        let name = objects::agent_token_secret_name(placement);
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&secret))
                .await
                .map(|_| ())
                .map_err(|e| explain(e, &format!("update the agent token Secret {ns}/{name}"))),
            Err(e) => Err(explain(e, &format!("create the agent token Secret {ns}/{name}"))),
        }
    }

    /// Gives a scenario namespace the NetworkPolicy that admits connections to its agents only from the configured
    /// sources (the API server by default). The cluster's own namespaces get none: svcbench does not leave policies
    /// there, and it deletes its agents from them at the end of the run.
    async fn ensure_agent_policy(&self, ns: &str) -> Result<(), TargetError> {
        if crate::scenario::CLUSTER_NAMESPACES.contains(&ns) {
            return Ok(());
        }
        let sources = match &self.config.agent_ingress {
            AgentIngress::Off => return Ok(()),
            AgentIngress::Cidrs(cidrs) => cidrs.clone(),
            AgentIngress::ApiServer => self.api_server_sources().await?,
        };
        let api: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &objects::agent_network_policy(ns, &self.run, &sources)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(explain(e, &format!("create the agent's NetworkPolicy in {ns}"))),
        }
    }

    /// The API server's addresses as host CIDRs, from the `kubernetes` Service's EndpointSlices.
    async fn api_server_sources(&self) -> Result<Vec<String>, TargetError> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), "default");
        let what = "read the API server's addresses (EndpointSlices of default/kubernetes)";
        let slices = api
            .list(&ListParams::default().labels(&format!("{}=kubernetes", convert::SERVICE_NAME_LABEL)))
            .await
            .map_err(|e| explain(e, what))?;
        let sources: Vec<String> = slices
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .flat_map(|e| &e.addresses)
            .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
            .map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
            .collect();
        if sources.is_empty() {
            return Err(TargetError::Other(format!(
                "{what}: none found; set SVCBENCH_AGENT_INGRESS to the CIDRs the API server's pod proxy connects \
                 from, or `off`"
            )));
        }
        Ok(sources)
    }

    /// Makes sure the namespace's agent pod exists and is ready; explains image pull failures and stuck pods.
    pub(super) async fn ensure_agent(&self, ns: &str, placement: &objects::AgentPlacement) -> Result<(), TargetError> {
        let key = format!("{ns}/{}", placement.name);
        if self.agents.lock().expect("agents lock").contains(&key) {
            return Ok(());
        }
        self.ensure_agent_token(ns, placement).await?;
        self.ensure_agent_policy(ns).await?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod = objects::agent_pod(ns, &self.run, &self.config.images, placement);
        match api.create(&PostParams::default(), &pod).await {
            // No run deletes the cluster's own namespaces: shutdown deletes the agents this run made there.
            Ok(_) if crate::scenario::CLUSTER_NAMESPACES.contains(&ns) => {
                self.agents_outside_runs.lock().expect("agents lock").push((ns.to_owned(), placement.name.clone()));
            }
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 && crate::scenario::CLUSTER_NAMESPACES.contains(&ns) => {
                // Shared namespaces can hold another run's agent, which that run deletes when it ends.
                let existing =
                    api.get(&placement.name).await.map_err(|e| explain(e, &format!("read {ns}/{}", placement.name)))?;
                let owner = existing.metadata.labels.as_ref().and_then(|l| l.get(objects::RUN_LABEL)).cloned();
                if owner.as_deref() != Some(self.run.as_str()) {
                    return Err(TargetError::Rejected(format!(
                        "agent pod {ns}/{} belongs to run {} (another run in progress, or a leftover: `svcbench \
                         cleanup` removes leftovers)",
                        placement.name,
                        owner.unwrap_or_else(|| "<none>".into())
                    )));
                }
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(explain(e, &format!("create the agent pod in {ns}"))),
        }
        let deadline = Instant::now() + self.config.agent_ready_timeout;
        loop {
            let pod = api.get(&placement.name).await.map_err(|e| explain(e, &format!("read the agent pod in {ns}")))?;
            if convert::pod(&pod, &NamespaceMap::default()).is_some_and(|view| view.ready) {
                self.agents.lock().expect("agents lock").push(key);
                return Ok(());
            }
            if let Some(problem) = pod_problem(&pod)
                && (problem.contains("image") || Instant::now() >= deadline)
            {
                return Err(TargetError::Other(format!("agent pod {ns}/{}: {problem}", placement.name)));
            }
            if Instant::now() >= deadline {
                return Err(TargetError::Other(format!(
                    "agent pod {ns}/{} not ready after {:?}: {}",
                    placement.name,
                    self.config.agent_ready_timeout,
                    pod_conditions(&pod)
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// What is wrong with a pod that is not ready, if the status says (image pull, crash loop).
pub(super) fn pod_problem(pod: &Pod) -> Option<String> {
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

/// A pod's phase and conditions, for "not ready after …" messages.
pub(super) fn pod_conditions(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else { return "no status yet (not scheduled?)".into() };
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            format!("{}={}{}", c.type_, c.status, c.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())
        })
        .collect();
    // Each container's state says whether it runs unready (a probe failing) or keeps exiting.
    let containers: Vec<String> = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| {
            let state = c.state.as_ref();
            let now = match (state.and_then(|s| s.running.as_ref()), state.and_then(|s| s.waiting.as_ref())) {
                (Some(r), _) => {
                    format!("running since {}", r.started_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default())
                }
                (_, Some(w)) => format!("waiting ({})", w.reason.clone().unwrap_or_default()),
                _ => "terminated".into(),
            };
            let last = c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| format!(", last exit {} {}", t.exit_code, t.reason.clone().unwrap_or_default()))
                .unwrap_or_default();
            format!("{}: {now}, {} restarts{last}", c.name, c.restart_count)
        })
        .collect();
    format!(
        "phase {}, pod IP {}, conditions [{}], containers [{}]",
        status.phase.clone().unwrap_or_default(),
        status.pod_ip.clone().unwrap_or_default(),
        conditions.join(", "),
        containers.join("; ")
    )
}
