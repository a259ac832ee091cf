//! IP families: a Service's `spec.ipFamilyPolicy` and `spec.ipFamilies`, how the API server settles them against
//! the cluster's service ranges, and the family a check dials or resolves (`ipFamily`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An address family, spelled as the Kubernetes API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum IpFamily {
    /// IPv4 (`A` records, `in-addr.arpa`).
    IPv4,
    /// IPv6 (`AAAA` records, `ip6.arpa`).
    IPv6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { IpFamily::IPv4 } else { IpFamily::IPv6 }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            IpFamily::IPv4 => IpFamily::IPv6,
            IpFamily::IPv6 => IpFamily::IPv4,
        }
    }

    /// `IPv4` / `IPv6`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub enum IpFamilyPolicy {
    /// One family (the default).
    #[default]
    SingleStack,
    /// Both families where the cluster has both, else one.
    PreferDualStack,
    /// Both families; refused on a single-stack cluster.
    RequireDualStack,
}

/// A Service's families as written: the policy (default `SingleStack`) and up to two distinct families, primary
/// first (empty: the cluster's primary family first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
pub struct IpFamilies {
    /// `spec.ipFamilyPolicy`, when written.
    pub policy: Option<IpFamilyPolicy>,
    /// `spec.ipFamilies`, when written.
    pub families: Vec<IpFamily>,
}

impl IpFamilies {
    /// Whether nothing was asked (the API server's defaults apply).
    pub fn is_default(&self) -> bool {
        self.policy.is_none() && self.families.is_empty()
    }

    /// The families the API server gives the Service on a cluster whose service ranges are of `cluster` (primary
    /// first), as `initIPFamilyFields` settles them; `Err` says why it refuses the Service.
    ///
    /// # Errors
    /// `RequireDualStack` on a single-stack cluster, or a family the cluster has no range for.
    pub fn resolve(&self, cluster: &[IpFamily]) -> Result<Vec<IpFamily>, String> {
        let Some(&primary) = cluster.first() else { return Err("the cluster has no service IP range".into()) };
        let dual_cluster = cluster.len() > 1;
        let policy = self.policy.unwrap_or_default();
        if policy == IpFamilyPolicy::RequireDualStack && !dual_cluster {
            return Err(
                "ipFamilyPolicy RequireDualStack: this cluster is not configured for dual-stack services".into()
            );
        }
        let mut families = self.families.clone();
        if let Some(missing) = families.iter().find(|f| !cluster.contains(f)) {
            return Err(format!("ipFamilies: {missing} is not configured on this cluster"));
        }
        if families.is_empty() {
            families.push(primary);
        }
        if policy != IpFamilyPolicy::SingleStack && dual_cluster && families.len() == 1 {
            families.push(families[0].other());
        }
        Ok(families)
    }
}

#[cfg(test)]
mod tests {
    use super::{IpFamily::*, IpFamilyPolicy::*, *};

    fn resolve(
        policy: Option<IpFamilyPolicy>,
        families: &[IpFamily],
        cluster: &[IpFamily],
    ) -> Result<Vec<IpFamily>, String> {
        IpFamilies { policy, families: families.to_vec() }.resolve(cluster)
    }

    #[test]
    fn families_settle_as_the_api_server_settles_them() {
        let dual = [IPv4, IPv6];
        assert_eq!(resolve(None, &[], &dual), Ok(vec![IPv4]));
        assert_eq!(resolve(None, &[IPv6], &dual), Ok(vec![IPv6]));
        assert_eq!(resolve(Some(PreferDualStack), &[], &dual), Ok(vec![IPv4, IPv6]));
        assert_eq!(resolve(Some(RequireDualStack), &[IPv6], &dual), Ok(vec![IPv6, IPv4]));
        assert_eq!(resolve(Some(RequireDualStack), &[IPv6, IPv4], &dual), Ok(vec![IPv6, IPv4]));
        assert_eq!(resolve(Some(PreferDualStack), &[], &[IPv6, IPv4]), Ok(vec![IPv6, IPv4]));
        // A single-stack cluster: PreferDualStack gets one family, but two asked for are refused.
        assert_eq!(resolve(Some(PreferDualStack), &[IPv4], &[IPv4]), Ok(vec![IPv4]));
        assert!(resolve(Some(PreferDualStack), &[IPv4, IPv6], &[IPv4]).unwrap_err().contains("IPv6 is not configured"));
        assert!(resolve(Some(RequireDualStack), &[], &[IPv4]).unwrap_err().contains("not configured for dual-stack"));
        assert!(resolve(None, &[IPv6], &[IPv4]).unwrap_err().contains("IPv6 is not configured"));
    }
}
