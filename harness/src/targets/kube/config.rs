//! How the kube target reaches and uses a cluster: context, images, cluster domain, waits, and where agents take
//! connections from; defaults, overridden from the environment.

use std::time::Duration;

use super::objects::Images;

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
    /// How long an action waits for what it needs: a new namespace's `default` ServiceAccount, the pods
    /// `setPodReady` addresses, an earlier run's namespace of a literal name to finish terminating.
    pub settle_timeout: Duration,
    /// Where agents take connections from, as the NetworkPolicy of each scenario namespace says.
    pub agent_ingress: AgentIngress,
}

/// The sources a scenario namespace's NetworkPolicy admits to its agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AgentIngress {
    /// The API server's addresses, from the `kubernetes` Service's EndpointSlices: where its pod proxy connects
    /// from when it reaches pods directly (not through a tunnel such as Konnectivity).
    #[default]
    ApiServer,
    /// These CIDRs (`SVCBENCH_AGENT_INGRESS=10.0.0.0/24,…`: a tunnel's agents, a control plane elsewhere).
    Cidrs(Vec<String>),
    /// No NetworkPolicy (`SVCBENCH_AGENT_INGRESS=off`): the token alone guards the agent.
    Off,
}

impl std::str::FromStr for AgentIngress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(Self::Off),
            "apiserver" => Ok(Self::ApiServer),
            list => list
                .split(',')
                .map(|cidr| {
                    let cidr = cidr.trim();
                    cidr.parse::<ipnet::IpNet>().map(|_| cidr.to_owned()).map_err(|e| {
                        format!(
                            "SVCBENCH_AGENT_INGRESS: `{cidr}` is not a CIDR ({e}); give CIDRs, `apiserver` or `off`"
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Cidrs),
        }
    }
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            context: None,
            images: Images::default(),
            cluster_domain: "cluster.local".into(),
            agent_ready_timeout: Duration::from_secs(120),
            settle_timeout: Duration::from_secs(120),
            agent_ingress: AgentIngress::default(),
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

    /// [`KubeConfig::from_env`] with `SVCBENCH_AGENT_INGRESS` too, which can be wrong.
    ///
    /// # Errors
    /// `SVCBENCH_AGENT_INGRESS` is neither `apiserver`, `off` nor a list of CIDRs.
    pub fn try_from_env() -> Result<Self, String> {
        let mut c = Self::from_env();
        if let Some(v) = std::env::var("SVCBENCH_AGENT_INGRESS").ok().filter(|v| !v.is_empty()) {
            c.agent_ingress = v.parse()?;
        }
        Ok(c)
    }
}
