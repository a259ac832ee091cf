//! Kubernetes objects built from plan specs as plain values (kube-rs style: build, then send), so the mapping is
//! testable without a cluster.
//!
//! Backends are agnhost `netexec` (the upstream e2e backend): one container per container port. Readiness is an exec
//! probe on a marker file, which the harness toggles through netexec's `/shell` endpoint; a pod in its termination
//! grace period keeps serving (`--delay-shutdown`), as the embedded target's terminating pods do.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec as K8sDeploymentSpec, StatefulSet, StatefulSetSpec},
        core::v1::{
            ClientIPConfig, Container, ContainerPort as K8sContainerPort, ExecAction, Namespace, Pod,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Secret, SecretVolumeSource, Service, ServicePort,
            ServiceSpec as K8sServiceSpec, SessionAffinityConfig, Volume, VolumeMount,
        },
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::api::ObjectMeta;

use crate::scenario::{DeploymentSpec, Protocol, ServiceSpec, TargetPort, TrafficPolicy};

/// Label on everything svcbench creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "svcbench");
/// Label carrying the run id.
pub const RUN_LABEL: &str = "svcbench.io/run";
/// Marker file whose presence makes a backend not ready.
pub const NOT_READY_FILE: &str = "/tmp/svcbench-not-ready";
/// Name and port of the agent pod in each namespace.
pub const AGENT_NAME: &str = crate::targets::AGENT_POD_NAME;
/// Port the agent listens on.
pub const AGENT_PORT: u16 = 8080;
/// The agent pod's termination grace period (seconds).
pub const AGENT_GRACE_SECONDS: i64 = 2;

/// Images the kube target runs (configurable for air-gapped registries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Backend pods: agnhost (netexec).
    pub backend: String,
    /// The svcbench agent.
    pub agent: String,
}

impl Default for Images {
    fn default() -> Self {
        Self { backend: "registry.k8s.io/e2e-test-images/agnhost:2.53".into(), agent: "svcbench-agent:dev".into() }
    }
}

/// The labels every object of run `run` carries (managed-by, run).
pub fn run_labels(run: &str) -> BTreeMap<String, String> {
    labels(run, &BTreeMap::new())
}

fn labels(run: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = extra.clone();
    l.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    l.insert(RUN_LABEL.into(), run.into());
    l
}

/// A namespace of this run.
pub fn namespace(name: &str, run: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(run, &BTreeMap::new())),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn pod_template(spec: &DeploymentSpec, run: &str, images: &Images, node: Option<&str>) -> PodTemplateSpec {
    let grace = spec.termination_grace.as_secs();
    let containers = spec
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| Container {
            name: format!("netexec-{i}"),
            image: Some(images.backend.clone()),
            args: Some(vec![
                "netexec".into(),
                format!("--http-port={}", p.port),
                // netexec's /healthz waits for its UDP server: keep it, on the same number as the HTTP port so
                // several containers of one pod do not collide on the default 8081.
                format!("--udp-port={}", p.port),
                format!("--delay-shutdown={grace}"),
            ]),
            ports: Some(vec![K8sContainerPort {
                name: p.name.clone(),
                container_port: i32::from(p.port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(Probe {
                exec: Some(ExecAction {
                    command: Some(vec!["sh".into(), "-c".into(), format!("test ! -e {NOT_READY_FILE}")]),
                }),
                period_seconds: Some(1),
                failure_threshold: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(run, &spec.labels)), ..Default::default() }),
        spec: Some(PodSpec {
            containers,
            hostname: spec.hostname.clone(),
            subdomain: spec.subdomain.clone(),
            termination_grace_period_seconds: Some(i64::try_from(grace).unwrap_or(0).max(1)),
            // Pinned by name, past the scheduler, as the e2e tests pin pods to nodes.
            node_name: node.map(str::to_owned),
            ..Default::default()
        }),
    }
}

fn selector(spec: &DeploymentSpec) -> LabelSelector {
    LabelSelector { match_labels: Some(spec.labels.clone()), ..Default::default() }
}

/// A Deployment for `spec` in namespace `ns`, its pods on `node` when given.
pub fn deployment(spec: &DeploymentSpec, ns: &str, run: &str, images: &Images, node: Option<&str>) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(spec.object.name.clone()),
            namespace: Some(ns.into()),
            labels: Some(labels(run, &BTreeMap::new())),
            ..Default::default()
        },
        spec: Some(K8sDeploymentSpec {
            replicas: Some(i32::try_from(spec.replicas).unwrap_or(i32::MAX)),
            selector: selector(spec),
            template: pod_template(spec, run, images, node),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A StatefulSet for `spec` (its `subdomain` is the governing service), its pods on `node` when given.
pub fn stateful_set(spec: &DeploymentSpec, ns: &str, run: &str, images: &Images, node: Option<&str>) -> StatefulSet {
    let mut template = pod_template(spec, run, images, node);
    if let Some(s) = template.spec.as_mut() {
        // The StatefulSet controller sets hostname and subdomain itself.
        s.hostname = None;
        s.subdomain = None;
    }
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(spec.object.name.clone()),
            namespace: Some(ns.into()),
            labels: Some(labels(run, &BTreeMap::new())),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(spec.replicas).unwrap_or(i32::MAX)),
            selector: selector(spec),
            service_name: spec.subdomain.clone(),
            template,
            pod_management_policy: Some("Parallel".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Service for `spec` in namespace `ns`.
pub fn service(spec: &ServiceSpec, ns: &str, run: &str) -> Service {
    let meta = ObjectMeta {
        name: Some(spec.object.name.clone()),
        namespace: Some(ns.into()),
        labels: Some(labels(run, &BTreeMap::new())),
        ..Default::default()
    };
    if let Some(external) = &spec.external_name {
        return Service {
            metadata: meta,
            spec: Some(K8sServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(external.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
    }
    let ports = spec
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: i32::from(p.port),
            target_port: Some(match &p.target_port {
                TargetPort::Number(n) => IntOrString::Int(i32::from(*n)),
                TargetPort::Name(n) => IntOrString::String(n.clone()),
            }),
            protocol: Some(match p.protocol {
                Protocol::Tcp => "TCP".into(),
                Protocol::Udp => "UDP".into(),
            }),
            node_port: p.node_port.map(i32::from),
            ..Default::default()
        })
        .collect();
    let exposure = &spec.exposure;
    let node_ports = exposure.service_type.has_node_ports();
    let policy = |p: TrafficPolicy| match p {
        TrafficPolicy::Cluster => "Cluster".to_owned(),
        TrafficPolicy::Local => "Local".to_owned(),
    };
    Service {
        metadata: meta,
        spec: Some(K8sServiceSpec {
            type_: Some(format!("{:?}", exposure.service_type)),
            internal_traffic_policy: Some(policy(exposure.internal_traffic_policy)),
            external_traffic_policy: node_ports.then(|| policy(exposure.external_traffic_policy)),
            traffic_distribution: exposure.prefer_close.then(|| "PreferClose".to_owned()),
            health_check_node_port: exposure.health_check_node_port.map(i32::from),
            ip_family_policy: exposure.ip_families.policy.map(|p| format!("{p:?}")),
            ip_families: (!exposure.ip_families.families.is_empty())
                .then(|| exposure.ip_families.families.iter().map(|f| f.as_str().to_owned()).collect()),
            cluster_ip: spec.headless.then(|| "None".to_owned()),
            // A selectorless Service has none: the API server would store `{}` as none anyway; sending none says so.
            selector: Some(spec.selector.clone()).filter(|s| !s.is_empty()),
            ports: Some(ports),
            publish_not_ready_addresses: Some(spec.publish_not_ready),
            session_affinity: Some(if spec.session_affinity.is_some() { "ClientIP" } else { "None" }.into()),
            session_affinity_config: spec.session_affinity.map(|t| SessionAffinityConfig {
                client_ip: Some(ClientIPConfig { timeout_seconds: Some(i32::try_from(t.as_secs()).unwrap_or(10_800)) }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Port of an agent on a node's own network (`from: {node: N}`): away from the ports node components and the
/// NodeLocal DNSCache health check (8080) use, and below the node port range.
pub const HOST_AGENT_PORT: u16 = 18080;

/// Which agent pod runs a probe: the namespace's own, one pinned to a node, or one on a node's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPlacement {
    /// Pod name.
    pub name: String,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `hostNetwork: true`.
    pub host_network: bool,
}

impl AgentPlacement {
    /// The namespace's agent, wherever the scheduler puts it.
    pub fn anywhere() -> Self {
        Self { name: AGENT_NAME.into(), node: None, host_network: false }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        if self.host_network { HOST_AGENT_PORT } else { AGENT_PORT }
    }
}

/// Where the agent pod mounts its token Secret.
pub const AGENT_TOKEN_DIR: &str = "/var/run/svcbench-agent";
/// The user and group the agent image runs as (`harness/Dockerfile`): the token file is readable by that group.
pub const AGENT_GID: i64 = 10001;
/// The Secret's key (and so the file name) holding the token.
pub const AGENT_TOKEN_KEY: &str = "token";

/// The name of the Secret holding an agent pod's token.
pub fn agent_token_secret_name(placement: &AgentPlacement) -> String {
    format!("{}-token", placement.name)
}

/// The Secret an agent pod reads its run's token from (only the harness, which has it, gets answers).
pub fn agent_token_secret(ns: &str, run: &str, placement: &AgentPlacement, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(agent_token_secret_name(placement)),
            namespace: Some(ns.into()),
            labels: Some(labels(run, &BTreeMap::from([("app".to_owned(), AGENT_NAME.to_owned())]))),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(AGENT_TOKEN_KEY.to_owned(), token.to_owned())])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The NetworkPolicy of a scenario namespace: its agents take connections on their port only from `sources`
/// (CIDRs: where the API server's pod proxy connects from). Replies to the agent's own probes are not ingress, and
/// the scenario's other pods are not selected. Only a CNI that enforces NetworkPolicy acts on it; without one the
/// agent's token is the guard.
pub fn agent_network_policy(ns: &str, run: &str, sources: &[String]) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(AGENT_NAME.into()),
            namespace: Some(ns.into()),
            labels: Some(labels(run, &BTreeMap::new())),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_owned(), AGENT_NAME.to_owned())])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(
                    sources
                        .iter()
                        .map(|cidr| NetworkPolicyPeer {
                            ip_block: Some(IPBlock { cidr: cidr.clone(), except: None }),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(i32::from(AGENT_PORT))),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}

/// The agent pod of a namespace.
pub fn agent_pod(ns: &str, run: &str, images: &Images, placement: &AgentPlacement) -> Pod {
    let port = placement.port();
    Pod {
        metadata: ObjectMeta {
            name: Some(placement.name.clone()),
            namespace: Some(ns.into()),
            labels: Some(labels(run, &BTreeMap::from([("app".to_owned(), AGENT_NAME.to_owned())]))),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "agent".into(),
                image: Some(images.agent.clone()),
                image_pull_policy: Some("IfNotPresent".into()),
                args: Some(vec![
                    "agent".into(),
                    "--listen".into(),
                    format!("0.0.0.0:{port}"),
                    "--token-file".into(),
                    format!("{AGENT_TOKEN_DIR}/{AGENT_TOKEN_KEY}"),
                ]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "token".into(),
                    mount_path: AGENT_TOKEN_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                }]),
                ports: Some(vec![K8sContainerPort { container_port: i32::from(port), ..Default::default() }]),
                readiness_probe: Some(Probe {
                    http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
                        path: Some("/healthz".into()),
                        port: IntOrString::Int(i32::from(port)),
                        ..Default::default()
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            // The agent stops at once when no probe runs; a long grace period only slows namespace deletion, which
            // the target waits for between scenarios.
            termination_grace_period_seconds: Some(AGENT_GRACE_SECONDS),
            security_context: Some(PodSecurityContext { fs_group: Some(AGENT_GID), ..Default::default() }),
            volumes: Some(vec![Volume {
                name: "token".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(agent_token_secret_name(placement)),
                    // Owner root, group the pod's fsGroup: the agent (gid 10001) reads it, nobody else.
                    default_mode: Some(0o440),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            node_name: placement.node.clone(),
            host_network: placement.host_network.then_some(true),
            // A host-network pod still resolves cluster names, as a node-level agent would.
            dns_policy: placement.host_network.then(|| "ClusterFirstWithHostNet".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
