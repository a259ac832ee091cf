//! Hand-written EndpointSlices (`createEndpointSlice`) for selectorless Services: the object as a user writes it —
//! labelled with its Service's name and managed by svcbench, so the EndpointSlice controller leaves it alone.

use k8s_openapi::{
    api::{
        core::v1::Service,
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

use super::{KubeTarget, convert::SERVICE_NAME_LABEL, explain, objects};
use crate::{
    scenario::{EndpointSliceSpec, IpFamily, Protocol},
    targets::TargetError,
};

/// `endpointslice.kubernetes.io/managed-by` of the slices svcbench writes (the controller's is
/// `endpointslice-controller.k8s.io`; it touches only its own).
pub const MANAGED_BY_VALUE: &str = "svcbench.io";

/// The EndpointSlice object for `spec` in namespace `ns`, owned by its Service (uid `owner`): deleting the Service
/// deletes it, as the controller's slices go with theirs.
pub fn endpoint_slice(ns: &str, run: &str, spec: &EndpointSliceSpec, owner: &str) -> EndpointSlice {
    let mut labels = objects::run_labels(run);
    labels.insert(SERVICE_NAME_LABEL.into(), spec.service.name.clone());
    labels.insert("endpointslice.kubernetes.io/managed-by".into(), MANAGED_BY_VALUE.into());
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(ns.into()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: spec.service.name.clone(),
                uid: owner.into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        address_type: match spec.family {
            IpFamily::IPv4 => "IPv4".into(),
            IpFamily::IPv6 => "IPv6".into(),
        },
        ports: Some(
            spec.ports
                .iter()
                .map(|p| EndpointPort {
                    name: p.name.clone(),
                    port: p.port.map(i32::from),
                    protocol: Some(match p.protocol {
                        Protocol::Tcp => "TCP".into(),
                        Protocol::Udp => "UDP".into(),
                    }),
                    app_protocol: None,
                })
                .collect(),
        ),
        endpoints: spec
            .endpoints
            .iter()
            .map(|e| Endpoint {
                addresses: vec![e.address.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(e.ready),
                    serving: Some(e.ready),
                    terminating: Some(false),
                }),
                hostname: e.hostname.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

impl KubeTarget {
    /// Creates a hand-written EndpointSlice.
    pub(super) async fn write_slice(&self, spec: &EndpointSliceSpec) -> Result<(), TargetError> {
        let ns = self.real_ns(&spec.service.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let owner = services
            .get(&spec.service.name)
            .await
            .map_err(|e| explain(e, &format!("read service {ns}/{}", spec.service.name)))?
            .metadata
            .uid
            .unwrap_or_default();
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), &endpoint_slice(&ns, &self.run, spec, &owner))
            .await
            .map_err(|e| explain(e, &format!("create EndpointSlice {ns}/{}", spec.name)))?;
        Ok(())
    }
}
