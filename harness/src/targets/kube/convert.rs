//! API objects → the target-neutral view model. EndpointSlices are read with svcbench's own lenient serde types:
//! across Kubernetes versions `endpoints` may be `null` on an empty slice and conditions may be missing (nil `ready`
//! means ready, nil `serving` means "same as ready", nil `terminating` means not terminating).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use k8s_openapi::api::core::v1::{Pod, Service};
use serde::Deserialize;

use super::names::NamespaceMap;
use crate::{
    scenario::IpFamily,
    scenario::{Protocol, TargetPort},
    targets::model::{EndpointPortView, EndpointSliceView, EndpointView, PodView, ServicePortView, ServiceView},
};

/// `discovery.k8s.io/v1` EndpointSliceList, leniently.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct SliceList {
    /// The slices.
    pub items: Vec<Slice>,
}

/// One EndpointSlice, leniently.
#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Slice {
    /// Metadata (name, labels, write times).
    pub metadata: SliceMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    /// Endpoints (`null` when empty on some versions).
    pub endpoints: Option<Vec<SliceEndpoint>>,
    /// Ports (`null` means "all ports").
    pub ports: Option<Vec<SlicePort>>,
}

/// Slice metadata.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct SliceMeta {
    /// Name.
    pub name: String,
    /// Labels (`kubernetes.io/service-name` names the slice's service).
    pub labels: Option<BTreeMap<String, String>>,
    /// Who wrote the slice and when (`managedFields[].time`).
    #[serde(rename = "managedFields")]
    pub managed_fields: Option<Vec<ManagedField>>,
}

/// One `managedFields` entry, for its time.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ManagedField {
    /// RFC 3339, to the second.
    pub time: Option<String>,
}

/// The label naming an EndpointSlice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint.
#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct SliceEndpoint {
    /// Addresses (one for IP slices).
    pub addresses: Vec<String>,
    /// Conditions.
    pub conditions: Option<Conditions>,
    /// Hostname.
    pub hostname: Option<String>,
    /// The backing pod.
    pub target_ref: Option<TargetRef>,
    /// The node of the backing pod.
    pub node_name: Option<String>,
    /// Its zone.
    pub zone: Option<String>,
    /// Topology hints.
    pub hints: Option<Hints>,
}

/// `hints`.
#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Hints {
    /// `forZones[].name`.
    pub for_zones: Option<Vec<ForZone>>,
}

/// One `forZones` entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ForZone {
    /// Zone name.
    pub name: String,
}

/// Endpoint conditions.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Conditions {
    /// Ready.
    pub ready: Option<bool>,
    /// Serving.
    pub serving: Option<bool>,
    /// Terminating.
    pub terminating: Option<bool>,
}

/// `targetRef`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct TargetRef {
    /// Kind (`Pod`).
    pub kind: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// A slice port.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct SlicePort {
    /// Name.
    pub name: Option<String>,
    /// Port.
    pub port: Option<i32>,
    /// Protocol.
    pub protocol: Option<String>,
}

fn protocol(p: Option<&str>) -> Protocol {
    if p == Some("UDP") { Protocol::Udp } else { Protocol::Tcp }
}

/// Maps the slices of a list to the view model (FQDN slices are skipped: they carry no IPs).
pub fn slices(list: SliceList) -> Vec<EndpointSliceView> {
    list.items.into_iter().filter_map(slice).collect()
}

/// The slices of a namespace-wide list, by the service their `kubernetes.io/service-name` label names.
pub fn slices_by_service(list: SliceList) -> HashMap<String, Vec<EndpointSliceView>> {
    let mut out: HashMap<String, Vec<EndpointSliceView>> = HashMap::new();
    for s in list.items {
        let Some(service) = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned() else {
            continue;
        };
        if let Some(view) = slice(s) {
            out.entry(service).or_default().push(view);
        }
    }
    out
}

fn slice(s: Slice) -> Option<EndpointSliceView> {
    let address_type = match s.address_type.as_str() {
        "IPv4" => IpFamily::IPv4,
        "IPv6" => IpFamily::IPv6,
        // FQDN slices (deprecated) name no address a proxy could use.
        _ => return None,
    };
    // RFC 3339 times of one precision order as text: the latest is the slice's last write.
    let last_written = s.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|f| f.time).max();
    Some(EndpointSliceView {
        name: s.metadata.name,
        last_written,
        address_type,
        ports: s
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                Some(EndpointPortView {
                    name: p.name.filter(|n| !n.is_empty()),
                    port: u16::try_from(p.port?).ok()?,
                    protocol: protocol(p.protocol.as_deref()),
                })
            })
            .collect(),
        endpoints: s
            .endpoints
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let address: IpAddr = e.addresses.first()?.parse().ok()?;
                let c = e.conditions.unwrap_or_default();
                let ready = c.ready.unwrap_or(true);
                Some(EndpointView {
                    address,
                    ready,
                    serving: c.serving.unwrap_or(ready),
                    terminating: c.terminating.unwrap_or(false),
                    hostname: e.hostname,
                    pod: e.target_ref.filter(|t| t.kind.as_deref() == Some("Pod")).and_then(|t| t.name),
                    node: e.node_name,
                    zone: e.zone,
                    for_zones: e.hints.and_then(|h| h.for_zones).map(|z| z.into_iter().map(|z| z.name).collect()),
                })
            })
            .collect(),
    })
}

/// A Service → view (namespace mapped back to its logical name).
pub fn service(svc: &Service, names: &NamespaceMap) -> Option<ServiceView> {
    let spec = svc.spec.as_ref()?;
    let cluster_ip =
        spec.cluster_ip.as_deref().filter(|ip| *ip != "None" && !ip.is_empty()).and_then(|ip| ip.parse().ok());
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePortView {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: u16::try_from(p.port).ok()?,
                target_port: match &p.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                        TargetPort::Number(u16::try_from(*n).ok()?)
                    }
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                        TargetPort::Name(s.clone())
                    }
                    None => TargetPort::Number(u16::try_from(p.port).ok()?),
                },
                protocol: protocol(p.protocol.as_deref()),
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
            })
        })
        .collect();
    let cluster_ips = spec
        .cluster_ips
        .iter()
        .flatten()
        .filter(|ip| ip.as_str() != "None")
        .filter_map(|ip| ip.parse().ok())
        .collect::<Vec<IpAddr>>();
    let ip_families = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(IpFamily::IPv4),
            "IPv6" => Some(IpFamily::IPv6),
            _ => None,
        })
        .collect();
    Some(ServiceView {
        namespace: names.logical(svc.metadata.namespace.as_deref().unwrap_or_default()),
        name: svc.metadata.name.clone().unwrap_or_default(),
        // An API server before clusterIPs (1.20) sets only clusterIP.
        cluster_ips: if cluster_ips.is_empty() { cluster_ip.into_iter().collect() } else { cluster_ips },
        ip_families,
        cluster_ip,
        ports,
        health_check_node_port: spec.health_check_node_port.and_then(|n| u16::try_from(n).ok()),
    })
}

/// A Pod → view, if it has an IP and has not finished (a `Failed` or `Succeeded` pod is not live: its controller
/// replaces it).
pub fn pod(p: &Pod, names: &NamespaceMap) -> Option<PodView> {
    let status = p.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        return None;
    }
    let ip = status.pod_ip.as_deref()?.parse().ok()?;
    let ips = status.pod_ips.iter().flatten().filter_map(|p| p.ip.parse().ok()).collect();
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    Some(PodView {
        namespace: names.logical(p.metadata.namespace.as_deref().unwrap_or_default()),
        name: p.metadata.name.clone().unwrap_or_default(),
        ip,
        ips,
        ready,
        terminating: p.metadata.deletion_timestamp.is_some(),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EndpointSlice example from the Kubernetes documentation (concepts/services-networking/endpoint-slices),
    /// plus a terminating endpoint and one with no conditions at all.
    const DOC_SLICES: &str = r#"{
      "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList", "metadata": {"resourceVersion": "1"},
      "items": [{
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "example-abc", "labels": {"kubernetes.io/service-name": "example"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
        "endpoints": [
          {"addresses": ["10.1.2.3"], "conditions": {"ready": true}, "hostname": "pod-1", "nodeName": "node-1", "zone": "us-west2-a",
           "targetRef": {"kind": "Pod", "name": "pod-1", "namespace": "default"}},
          {"addresses": ["10.1.2.4"], "conditions": {"ready": false, "serving": true, "terminating": true},
           "targetRef": {"kind": "Pod", "name": "pod-2"}},
          {"addresses": ["10.1.2.5"]}
        ]
      }, {
        "metadata": {"name": "empty-xyz"}, "addressType": "IPv4", "endpoints": null, "ports": null
      }, {
        "metadata": {"name": "fqdn"}, "addressType": "FQDN", "endpoints": [{"addresses": ["example.com"]}]
      }]
    }"#;

    #[test]
    fn documented_endpoint_slices_map_to_the_model() {
        let list: SliceList = serde_json::from_str(DOC_SLICES).unwrap();
        let views = slices(list);
        assert_eq!(views.len(), 2);
        let s = &views[0];
        assert_eq!(s.name, "example-abc");
        assert_eq!(s.ports, vec![EndpointPortView { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }]);
        let e = &s.endpoints;
        assert_eq!((e[0].ready, e[0].serving, e[0].terminating), (true, true, false));
        assert_eq!(e[0].hostname.as_deref(), Some("pod-1"));
        assert_eq!(e[0].pod.as_deref(), Some("pod-1"));
        assert_eq!((e[1].ready, e[1].serving, e[1].terminating), (false, true, true));
        // No conditions: ready (nil means ready), serving follows ready.
        assert_eq!((e[2].ready, e[2].serving, e[2].terminating), (true, true, false));
        assert!(views[1].endpoints.is_empty() && views[1].ports.is_empty());
        let by_service = slices_by_service(serde_json::from_str(DOC_SLICES).unwrap());
        assert_eq!(by_service.len(), 1, "slices without the service-name label are not anyone's");
        assert_eq!(by_service["example"].len(), 1);
        assert_eq!(by_service["example"][0].endpoints.len(), 3);
    }

    #[test]
    fn finished_pods_are_not_live() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "p"}, "status": {"phase": phase, "podIP": "10.0.0.1"}}),
            )
            .unwrap()
        };
        assert!(super::pod(&pod("Running"), &NamespaceMap::default()).is_some());
        assert!(super::pod(&pod("Pending"), &NamespaceMap::default()).is_some(), "an IP is enough to count");
        assert!(super::pod(&pod("Failed"), &NamespaceMap::default()).is_none());
        assert!(super::pod(&pod("Succeeded"), &NamespaceMap::default()).is_none());
    }

    #[test]
    fn dual_stack_objects_keep_both_families() {
        let svc: Service = serde_json::from_value(serde_json::json!({"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"clusterIP": "fd00:10:96::5", "clusterIPs": ["fd00:10:96::5", "10.96.0.5"],
                     "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}}))
        .unwrap();
        let view = service(&svc, &NamespaceMap::default()).unwrap();
        assert_eq!(view.ip_families, [IpFamily::IPv6, IpFamily::IPv4]);
        assert_eq!(view.cluster_ip_of(IpFamily::IPv4), Some("10.96.0.5".parse().unwrap()));
        assert_eq!(view.primary_family(), IpFamily::IPv6);
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p"},
            "status": {"phase": "Running", "podIP": "10.244.0.2", "podIPs": [{"ip": "10.244.0.2"}, {"ip": "fd00:10:244::2"}]}}))
        .unwrap();
        let view = super::pod(&pod, &NamespaceMap::default()).unwrap();
        assert_eq!(view.ip_of(IpFamily::IPv6), Some("fd00:10:244::2".parse().unwrap()));
        let list: SliceList = serde_json::from_value(serde_json::json!({"items": [
            {"metadata": {"name": "web-v6"}, "addressType": "IPv6", "endpoints": [{"addresses": ["fd00:10:244::2"]}]}]}))
        .unwrap();
        assert_eq!(slices(list)[0].address_type, IpFamily::IPv6);
    }
}
