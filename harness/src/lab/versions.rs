//! The pinned versions of every component the lab builds — the one place to change them.
//!
//! Kubernetes 1.34's kubeadm ships CoreDNS v1.12.1 and etcd 3.6.5 (`cmd/kubeadm/app/constants/constants.go`).

/// `k8s.io/kubernetes` (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy).
pub const KUBERNETES: &str = "v1.34.4";
/// The staging modules' version matching [`KUBERNETES`] (`k8s.io/api` …, replaced from `v0.0.0`).
pub const KUBERNETES_STAGING: &str = "v0.34.4";
/// `go.etcd.io/etcd/server/v3`.
pub const ETCD: &str = "v3.6.5";
/// `github.com/coredns/coredns`, as kubeadm for [`KUBERNETES`] installs it.
pub const COREDNS: &str = "v1.12.1";

/// A component the lab builds from its Go module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Binary name.
    pub binary: &'static str,
    /// Go package path of its `main`.
    pub package: &'static str,
    /// Module version.
    pub version: &'static str,
}

/// Every binary the lab runs.
pub const COMPONENTS: [Component; 6] = [
    Component { binary: "etcd", package: "go.etcd.io/etcd/server/v3", version: ETCD },
    Component { binary: "kube-apiserver", package: "k8s.io/kubernetes/cmd/kube-apiserver", version: KUBERNETES },
    Component {
        binary: "kube-controller-manager",
        package: "k8s.io/kubernetes/cmd/kube-controller-manager",
        version: KUBERNETES,
    },
    Component { binary: "kube-scheduler", package: "k8s.io/kubernetes/cmd/kube-scheduler", version: KUBERNETES },
    Component { binary: "kube-proxy", package: "k8s.io/kubernetes/cmd/kube-proxy", version: KUBERNETES },
    Component { binary: "coredns", package: "github.com/coredns/coredns", version: COREDNS },
];

/// The name of the binary directory for this set of versions, so two pinned sets never share binaries.
pub fn bundle_name() -> String {
    format!("k8s-{KUBERNETES}_etcd-{ETCD}_coredns-{COREDNS}")
}
