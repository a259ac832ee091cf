//! EndpointSlices in the embedded cluster: the controller's, for Services with a selector (endpoints for the pods it
//! matches, one set per family, grouped by resolved ports), and those users write for selectorless Services.

use std::collections::BTreeMap;

use super::{
    faults::{Fault, Faults},
    state::{NodeInfo, Pod, Service},
};
use crate::{
    scenario::{EndpointSliceSpec, IpFamily, ObjectRef, TargetPort},
    targets::model::{EndpointPortView, EndpointSliceView, EndpointView, ServicePortView},
};

/// Whether a (non-empty) selector matches `labels`; an empty one is a selectorless Service's and matches nothing.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The EndpointSlice controller: endpoints for the pods the selector matches, one set of slices per family of the
/// Service (`addressType`), grouped by resolved port set (a named targetPort may resolve to different numbers on
/// different pods).
pub fn endpoint_slices<'a>(
    key: &ObjectRef,
    service: &Service,
    pods: impl IntoIterator<Item = (&'a ObjectRef, &'a Pod)>,
    nodes: &[NodeInfo],
    faults: &Faults,
) -> Vec<EndpointSliceView> {
    let mut groups: BTreeMap<(IpFamily, Vec<EndpointPortView>), Vec<EndpointView>> = BTreeMap::new();
    let mut matched: Vec<(&ObjectRef, &Pod)> = pods
        .into_iter()
        .filter(|(k, p)| k.namespace == key.namespace && selects(&service.selector, &p.labels))
        .collect();
    matched.sort_by_key(|(_, p)| p.seq);
    let first_pod_ports = matched.first().map(|(_, p)| p.ports.clone()).unwrap_or_default();
    let publish_not_ready = service.publish_not_ready && !faults.has(Fault::EndpointsIgnorePublishNotReady);
    for (pod_key, pod) in matched {
        let resolve_on = if faults.has(Fault::EndpointsNamedPortResolvedOnce) { &first_pod_ports } else { &pod.ports };
        let ports: Vec<EndpointPortView> = service
            .ports
            .iter()
            .filter_map(|sp| {
                let port = match &sp.target_port {
                    TargetPort::Number(n) => *n,
                    TargetPort::Name(name) => resolve_on.iter().find(|cp| cp.name.as_deref() == Some(name))?.port,
                };
                Some(EndpointPortView { name: sp.name.clone(), port, protocol: sp.protocol })
            })
            .collect();
        let pod_ready = pod.ready || faults.has(Fault::EndpointsIgnoreReadiness);
        // The endpoint hostname is the pod's when its subdomain names this service (the kubelet/DNS contract).
        let hostname = match (&pod.hostname, &pod.subdomain) {
            (Some(h), Some(sub)) if *sub == key.name => Some(h.clone()),
            _ => None,
        };
        let node = nodes.get(pod.node as usize);
        let zone = node.map(|n| n.zone.clone());
        for &family in published_families(service, faults) {
            groups.entry((family, ports.clone())).or_default().push(EndpointView {
                address: pod.ip_of(family),
                ready: publish_not_ready || (pod_ready && !pod.terminating),
                serving: pod_ready,
                terminating: pod.terminating,
                hostname: hostname.clone(),
                pod: Some(pod_key.name.clone()),
                node: node.map(|n| n.name.clone()),
                // The EndpointSlice controller's PreferClose heuristic: each endpoint is hinted for its own zone.
                for_zones: zone.clone().filter(|_| service.exposure.prefer_close).map(|z| vec![z]),
                zone: zone.clone(),
            });
        }
    }
    for &family in published_families(service, faults) {
        // A selector that matches nothing still gets one (empty) slice per family.
        if !groups.keys().any(|(f, _)| *f == family) {
            groups.insert((family, Vec::new()), Vec::new());
        }
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, ((address_type, ports), endpoints))| EndpointSliceView {
            name: slice_name(key, i),
            address_type,
            ports,
            endpoints,
            last_written: None,
        })
        .collect()
}

/// The address types the controller publishes slices for: every family of the Service.
fn published_families<'a>(service: &'a Service, faults: &Faults) -> &'a [IpFamily] {
    let all = &service.families;
    if faults.has(Fault::EndpointsPrimaryFamilyOnly) { &all[..all.len().min(1)] } else { all }
}

/// Everything a service's slices depend on besides its name (which only names them).
#[derive(PartialEq, Eq, Hash)]
pub struct SliceKey {
    /// The namespace whose pods it selects.
    pub namespace: String,
    /// The selector.
    pub selector: BTreeMap<String, String>,
    /// The Service's ports.
    pub ports: Vec<ServicePortView>,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// The service's name when a matched pod's subdomain names it (its endpoints then carry hostnames).
    pub own_name: Option<String>,
    /// `trafficDistribution: PreferClose` (its endpoints carry zone hints).
    pub prefer_close: bool,
    /// The address types of its slices.
    pub families: Vec<IpFamily>,
}

/// The name of a service's slice `index`: `<service>-<stable 5-character suffix>`, like the controller's
/// generateName.
pub fn slice_name(key: &ObjectRef, index: usize) -> String {
    format!("{}-{}", key.name, super::names::suffix(&format!("{key}#{index}"), 5))
}

/// A hand-written slice of a selectorless Service as DNS and the proxy use it: the API server keeps a port without a
/// number, but neither consumer can use one, so it is left out here.
pub fn hand_written(spec: &EndpointSliceSpec) -> EndpointSliceView {
    EndpointSliceView {
        name: spec.name.clone(),
        address_type: spec.family,
        ports: spec
            .ports
            .iter()
            .filter_map(|p| Some(EndpointPortView { name: p.name.clone(), port: p.port?, protocol: p.protocol }))
            .collect(),
        endpoints: spec
            .endpoints
            .iter()
            .map(|e| EndpointView {
                address: e.address,
                ready: e.ready,
                serving: e.ready,
                terminating: false,
                hostname: e.hostname.clone(),
                pod: None,
                node: None,
                zone: None,
                for_zones: None,
            })
            .collect(),
        last_written: None,
    }
}
