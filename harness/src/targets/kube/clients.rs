//! Where the kube target's probes run: the namespace's agent pod, an agent pinned to a node, an agent on a node's
//! own network (`hostNetwork`), or a backend pod itself through netexec's `/dial` (what the upstream e2e tests use
//! for hairpin and source-IP checks). Also the cluster's nodes, ordered by name.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Node;
use kube::{Api, api::ListParams};
use serde::Deserialize;

use super::{KubeTarget, explain, objects::AgentPlacement, proxy};
use crate::targets::Target as _;
use crate::{
    probe::{
        ProbeRequest, ProbeResponse,
        http::{HttpFailure, HttpResult},
    },
    scenario::Client,
    targets::{NodeView, TargetError},
};

/// agnhost netexec's `/dial` answer.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct DialAnswer {
    responses: Vec<String>,
    errors: Vec<String>,
}

impl KubeTarget {
    /// Every node with its InternalIP and zone, ordered by name.
    pub(super) async fn list_nodes(&self) -> Result<Vec<NodeView>, TargetError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list = api.list(&ListParams::default()).await.map_err(|e| explain(e, "list nodes"))?;
        let mut nodes: Vec<NodeView> = list
            .items
            .iter()
            .filter_map(|n| {
                let status = n.status.as_ref()?;
                let ip = status
                    .addresses
                    .iter()
                    .flatten()
                    .find(|a| a.type_ == "InternalIP")
                    .and_then(|a| a.address.parse::<IpAddr>().ok())?;
                Some(NodeView {
                    name: n.metadata.name.clone()?,
                    ip,
                    zone: n.metadata.labels.as_ref().and_then(|l| l.get("topology.kubernetes.io/zone").cloned()),
                })
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    /// Runs `request` in the agent `placement` of real namespace `ns` (creating the agent first).
    pub(super) async fn probe_agent(
        &self,
        ns: &str,
        placement: &AgentPlacement,
        request: &ProbeRequest,
    ) -> Result<ProbeResponse, TargetError> {
        self.ensure_agent(ns, placement).await?;
        let names = self.names();
        let body =
            serde_json::to_vec(&names.request_to_real(request)).map_err(|e| TargetError::Other(e.to_string()))?;
        let path = format!("/api/v1/namespaces/{ns}/pods/{}:{}/proxy/probe", placement.name, placement.port());
        let what = format!("run a probe from {ns}/{}", placement.name);
        let answer = proxy::post_to_agent(&self.client, &path, body, &self.agent_token, &what).await?;
        let response: ProbeResponse = serde_json::from_slice(&answer).map_err(|e| {
            TargetError::Other(format!("{what}: not a probe answer ({e}): {}", String::from_utf8_lossy(&answer)))
        })?;
        Ok(names.response_to_logical(response))
    }

    /// Runs `request` as `client`.
    pub(super) async fn probe_client(
        &self,
        client: &Client,
        request: &ProbeRequest,
    ) -> Result<ProbeResponse, TargetError> {
        match client {
            Client::Namespace { namespace } => {
                self.probe_agent(&self.real_ns(namespace), &AgentPlacement::anywhere(), request).await
            }
            Client::PodOnNode { namespace, node } => {
                let node = self.node(*node).await?;
                let placement = AgentPlacement {
                    name: format!("{}-{}", super::objects::AGENT_NAME, node.name),
                    node: Some(node.name),
                    host_network: false,
                };
                self.probe_agent(&self.real_ns(namespace), &placement, request).await
            }
            Client::Node { node } => {
                let node = self.node(*node).await?;
                // A host-network pod still lives in a namespace: one of this run's, deleted with it.
                let ns = self.names().reals().into_iter().next().ok_or_else(|| {
                    TargetError::Rejected("a node client needs a namespace of the scenario to run its agent in".into())
                })?;
                let placement = AgentPlacement {
                    name: format!("svcbench-host-agent-{}", node.name),
                    node: Some(node.name),
                    host_network: true,
                };
                self.probe_agent(&ns, &placement, request).await
            }
            Client::Pod { pod } => {
                let ProbeRequest::Http { host, port, path, .. } = request else {
                    return Err(TargetError::Rejected("a backend pod can only run HTTP probes (netexec /dial)".into()));
                };
                let ip: IpAddr = host.parse().map_err(|_| {
                    TargetError::Rejected(format!("a backend pod dials addresses, not names (`{host}`)"))
                })?;
                let pods = self.pods(&pod.deployment).await?;
                let live: Vec<_> = pods.iter().filter(|p| !p.terminating).collect();
                let target = live.get(pod.index as usize).ok_or_else(|| {
                    TargetError::Rejected(format!("{} has no pod #{} ({} pods)", pod.deployment, pod.index, live.len()))
                })?;
                let w = self.workload(&pod.deployment)?;
                let netexec_port = w.spec.ports.first().map_or(80, |p| p.port);
                let address = SocketAddr::new(ip, *port);
                let query = format!(
                    "request={}&protocol=http&host={ip}&port={port}&tries=1",
                    path.trim_start_matches('/').replace('&', "%26").replace('?', "%3F").replace('=', "%3D")
                );
                let api_path = format!(
                    "/api/v1/namespaces/{}/pods/{}:{netexec_port}/proxy/dial?{query}",
                    self.real_ns(&pod.deployment.namespace),
                    target.name
                );
                let what = format!("dial {address} from pod {}", target.name);
                let body = proxy::get(&self.client, &api_path, &what).await?;
                let answer: DialAnswer = serde_json::from_slice(&body).map_err(|e| {
                    TargetError::Other(format!("{what}: not a /dial answer ({e}): {}", String::from_utf8_lossy(&body)))
                })?;
                // The backend pod dials from its address of the dialled family.
                let local = target.ip_of(crate::scenario::IpFamily::of(ip)).unwrap_or(target.ip);
                Ok(ProbeResponse::Http(dial_result(answer, address, path, local)))
            }
        }
    }
}

/// A `/dial` answer as an HTTP probe result: netexec reports the body only, so a response counts as status 200,
/// and the answering pod is known when the path was `/hostname`.
fn dial_result(answer: DialAnswer, address: SocketAddr, path: &str, pod_ip: IpAddr) -> Result<HttpResult, HttpFailure> {
    if let Some(body) = answer.responses.into_iter().next() {
        let pod = (path == "/hostname").then(|| body.trim().to_owned());
        return Ok(HttpResult { address, status: 200, body, pod, local: Some(pod_ip) });
    }
    let error = answer.errors.join("; ");
    Err(if error.contains("refused") {
        HttpFailure::Refused { address }
    } else if error.contains("timeout") || error.contains("deadline") {
        HttpFailure::Timeout { address }
    } else {
        HttpFailure::Other { message: format!("netexec /dial: {error}") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_answers_map_to_http_results() {
        let addr: SocketAddr = "10.96.0.20:80".parse().unwrap();
        let me: IpAddr = "10.244.1.5".parse().unwrap();
        let ok: DialAnswer = serde_json::from_str(r#"{"responses":["web-0"]}"#).unwrap();
        assert_eq!(dial_result(ok, addr, "/hostname", me).unwrap().pod.as_deref(), Some("web-0"));
        let refused: DialAnswer =
            serde_json::from_str(r#"{"errors":["Get \"http://10.96.0.20:80/hostname\": dial tcp 10.96.0.20:80: connect: connection refused"]}"#)
                .unwrap();
        assert_eq!(dial_result(refused, addr, "/hostname", me), Err(HttpFailure::Refused { address: addr }));
        let timeout: DialAnswer =
            serde_json::from_str(r#"{"errors":["context deadline exceeded (Client.Timeout exceeded)"]}"#).unwrap();
        assert_eq!(dial_result(timeout, addr, "/clientip", me), Err(HttpFailure::Timeout { address: addr }));
    }
}
