//! Which release of each component a lab runs: the pinned defaults (the one place to change them), the
//! [`Release`] numbers users name on the command line, and [`LabVersions`], one lab's set, which decides what the
//! lab must build and run (kube-proxy alone against the pinned control plane when the version skew policy allows).
//!
//! Kubernetes 1.34's kubeadm ships CoreDNS v1.12.1 and etcd 3.6.5 (`cmd/kubeadm/app/constants/constants.go`).

use std::{fmt, str::FromStr};

/// `k8s.io/kubernetes` (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy) unless told otherwise.
pub const KUBERNETES: Release = Release::new(1, 34, 4);
/// `go.etcd.io/etcd/server/v3`.
pub const ETCD: Release = Release::new(3, 6, 5);
/// `github.com/coredns/coredns`, as kubeadm for [`KUBERNETES`] installs it, unless told otherwise.
pub const COREDNS: Release = Release::new(1, 12, 1);

/// `github.com/cilium/cilium` (cilium-agent, cilium-cni) for `--proxy-mode cilium`.
pub const CILIUM: Release = Release::new(1, 20, 2);

/// How many minor releases kube-proxy may lag kube-apiserver (Kubernetes' version skew policy).
pub const KUBE_PROXY_SKEW: u16 = 3;

/// A release number `vMAJOR.MINOR.PATCH` (pre-releases are refused: the lab compares releases users run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch.
    pub patch: u16,
}

impl Release {
    /// `vmajor.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self { major, minor, patch }
    }

    /// The number without the `v`, as implementation names and profile files show it (`1.33.5`).
    pub fn bare(self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Release {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('v').unwrap_or(s);
        let parts: Vec<&str> = digits.split('.').collect();
        let number = |p: &str| p.parse::<u16>().ok().filter(|_| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        match parts.as_slice() {
            [a, b, c] => match (number(a), number(b), number(c)) {
                (Some(major), Some(minor), Some(patch)) => Ok(Self { major, minor, patch }),
                _ => Err(format!(
                    "`{s}` is not a release number: expected MAJOR.MINOR.PATCH such as 1.33.5 (pre-releases are not supported)"
                )),
            },
            _ => Err(format!("`{s}` is not a release number: expected MAJOR.MINOR.PATCH such as 1.33.5")),
        }
    }
}

/// A component the lab builds from its Go module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Binary name.
    pub binary: &'static str,
    /// Go package path of its `main`.
    pub package: &'static str,
}

/// etcd.
pub const ETCD_COMPONENT: Component = Component { binary: "etcd", package: "go.etcd.io/etcd/server/v3" };
/// The control plane's binaries, built from `k8s.io/kubernetes` at [`LabVersions::control_plane`].
pub const CONTROL_PLANE: [Component; 3] = [
    Component { binary: "kube-apiserver", package: "k8s.io/kubernetes/cmd/kube-apiserver" },
    Component { binary: "kube-controller-manager", package: "k8s.io/kubernetes/cmd/kube-controller-manager" },
    Component { binary: "kube-scheduler", package: "k8s.io/kubernetes/cmd/kube-scheduler" },
];
/// kube-proxy, built from `k8s.io/kubernetes` at [`LabVersions::kube_proxy`].
pub const KUBE_PROXY: Component = Component { binary: "kube-proxy", package: "k8s.io/kubernetes/cmd/kube-proxy" };
/// CoreDNS.
pub const COREDNS_COMPONENT: Component = Component { binary: "coredns", package: "github.com/coredns/coredns" };

/// The releases one lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabVersions {
    /// kube-apiserver, kube-controller-manager and kube-scheduler.
    pub control_plane: Release,
    /// kube-proxy on every node.
    pub kube_proxy: Release,
    /// CoreDNS (the cluster DNS Deployment, and NodeLocal DNSCache's data path).
    pub coredns: Release,
}

/// The pinned releases.
pub const PINNED: LabVersions = LabVersions { control_plane: KUBERNETES, kube_proxy: KUBERNETES, coredns: COREDNS };

impl Default for LabVersions {
    fn default() -> Self {
        PINNED
    }
}

impl LabVersions {
    /// Kubernetes `kubernetes` (default: pinned) and CoreDNS `coredns` (default: pinned).
    ///
    /// kube-proxy runs `kubernetes`. The control plane runs it too when it is newer than the pinned one (kube-proxy
    /// must not be newer than kube-apiserver) or more than [`KUBE_PROXY_SKEW`] minors older; otherwise the pinned
    /// control plane stays, so comparing an older kube-proxy builds kube-proxy alone.
    pub fn new(kubernetes: Option<Release>, coredns: Option<Release>) -> Self {
        let kube_proxy = kubernetes.unwrap_or(KUBERNETES);
        let too_old = kube_proxy.major != KUBERNETES.major || kube_proxy.minor + KUBE_PROXY_SKEW < KUBERNETES.minor;
        let control_plane = if kube_proxy > KUBERNETES || too_old { kube_proxy } else { KUBERNETES };
        Self { control_plane, kube_proxy, coredns: coredns.unwrap_or(COREDNS) }
    }

    /// Whether these are the pinned releases.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// What implementation names append for releases that are not the pinned ones: `@1.33.5`,
    /// `@coredns-1.15.0`, `@1.37.2+coredns-1.15.0`; empty for the pinned set.
    pub fn name_suffix(&self) -> String {
        let mut parts = Vec::new();
        if self.kube_proxy != KUBERNETES {
            parts.push(self.kube_proxy.bare());
        }
        if self.coredns != COREDNS {
            parts.push(format!("coredns-{}", self.coredns.bare()));
        }
        if parts.is_empty() { String::new() } else { format!("@{}", parts.join("+")) }
    }

    /// Parses what [`LabVersions::name_suffix`] wrote (without the `@`).
    ///
    /// # Errors
    /// A part that is neither a release nor `coredns-<release>`, or one named twice.
    pub fn from_suffix(suffix: &str) -> Result<Self, String> {
        let (mut kubernetes, mut coredns) = (None, None);
        for part in suffix.split('+') {
            let (slot, text) = match part.strip_prefix("coredns-") {
                Some(v) => (&mut coredns, v),
                None => (&mut kubernetes, part.strip_prefix("kubernetes-").unwrap_or(part)),
            };
            if slot.is_some() {
                return Err(format!("`{part}`: that component's release is already given"));
            }
            *slot = Some(text.parse::<Release>()?);
        }
        Ok(Self::new(kubernetes, coredns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_with_or_without_v_and_refuse_the_rest() {
        assert_eq!("v1.33.5".parse::<Release>(), Ok(Release::new(1, 33, 5)));
        assert_eq!("1.15.0".parse::<Release>(), Ok(Release::new(1, 15, 0)));
        for bad in ["1.33", "v1.38.0-beta.0", "1..3", "x.y.z", "", "1.2.3.4", "+1.2.3"] {
            assert!(bad.parse::<Release>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_older_kube_proxy_runs_against_the_pinned_control_plane_and_a_newer_one_brings_its_own() {
        let older = LabVersions::new(Some(Release::new(1, 33, 5)), None);
        assert_eq!((older.control_plane, older.kube_proxy), (KUBERNETES, Release::new(1, 33, 5)));
        let newer = LabVersions::new(Some(Release::new(1, 37, 2)), None);
        assert_eq!(newer.control_plane, Release::new(1, 37, 2));
        let beyond_skew = LabVersions::new(Some(Release::new(1, 30, 14)), None);
        assert_eq!(beyond_skew.control_plane, Release::new(1, 30, 14));
    }

    #[test]
    fn name_suffixes_round_trip() {
        assert_eq!(LabVersions::default().name_suffix(), "");
        for suffix in ["1.33.5", "coredns-1.15.0", "1.37.2+coredns-1.10.0"] {
            let versions = LabVersions::from_suffix(suffix).unwrap();
            assert_eq!(versions.name_suffix(), format!("@{suffix}"));
        }
        assert!(LabVersions::from_suffix("1.33.5+1.34.4").is_err());
        assert!(LabVersions::from_suffix("coredns-latest").is_err());
    }
}
