//! Cluster DNS as kubeadm installs it: the `coredns` ServiceAccount, ClusterRole and binding, the `coredns`
//! ConfigMap with kubeadm's Corefile (Kubernetes 1.32+: no caching of cluster.local answers), a 2-replica Deployment
//! and the `kube-dns` Service at 10.96.0.10 (UDP and TCP 53). Also the lab's upstream resolver's Corefile: it
//! answers NXDOMAIN for every name, like the root for an unknown TLD, so no query leaves the lab.

use kube::{
    Client,
    api::{Api, DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

/// The `kube-dns` Service's ClusterIP (kubelet's `clusterDNS`).
pub const CLUSTER_DNS: &str = "10.96.0.10";

/// kubeadm's Corefile for Kubernetes 1.34 (cmd/kubeadm/app/phases/addons/dns/manifests.go).
pub const COREFILE: &str = ".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
";

/// The upstream resolver's Corefile, bound to `ip`.
pub fn upstream_corefile(ip: &str) -> String {
    format!(".:53 {{\n    bind {ip}\n    template ANY ANY {{\n       rcode NXDOMAIN\n    }}\n}}\n")
}

fn manifests(coredns_version: &str) -> Vec<Value> {
    let labels = json!({"k8s-app": "kube-dns"});
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": COREFILE}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "priorityClassName": "system-cluster-critical",
                "serviceAccountName": "coredns",
                "dnsPolicy": "Default",
                "containers": [{
                    "name": "coredns", "image": format!("registry.k8s.io/coredns/coredns:{coredns_version}"),
                    "args": ["-conf", "/etc/coredns/Corefile"],
                    "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}],
                    "ports": [
                        {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                        {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                        {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
                    ],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                }],
                "volumes": [{"name": "config-volume", "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
            }}}}),
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "spec": {"selector": labels, "clusterIP": CLUSTER_DNS, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
        ]}}),
    ]
}

/// Applies the DNS add-on (server-side apply, so a restart of the lab is idempotent).
///
/// # Errors
/// The API server refused an object.
pub async fn apply_dns(client: &Client, coredns_version: &str) -> anyhow::Result<()> {
    for manifest in manifests(coredns_version) {
        apply(client, &manifest, "svcbench-lab").await?;
    }
    Ok(())
}

/// Server-side applies one manifest (any kind; namespaced when it names a namespace) as field manager `manager`.
///
/// # Errors
/// The API server refused it.
pub async fn apply(client: &Client, manifest: &Value, manager: &str) -> anyhow::Result<()> {
    let (api_version, kind) = (manifest["apiVersion"].as_str().unwrap_or(""), manifest["kind"].as_str().unwrap_or(""));
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let name = manifest["metadata"]["name"].as_str().unwrap_or("");
    let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(manifest))
        .await
        .map_err(|e| anyhow::anyhow!("cannot create {kind} {name}: {e}"))?;
    Ok(())
}
