//! Seeded faults: realistic bugs the embedded target can be told to have, to prove the scenarios catch them.
//!
//! Each fault changes one behaviour in one component (DNS, EndpointSlice controller, proxy, kubelet's resolv.conf),
//! the way a real implementation might get it wrong.

use std::{collections::BTreeSet, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// One seeded bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Headless DNS answers include endpoints that are not ready.
    DnsServesNotReady,
    /// A headless service's name answers a virtual IP instead of the pod IPs.
    DnsHeadlessAnswersVip,
    /// NXDOMAIN and NODATA are swapped inside the cluster zone.
    DnsNxdomainNodataSwapped,
    /// SRV records of ClusterIP services carry the targetPort instead of the service port.
    DnsSrvUsesTargetPort,
    /// Every record has TTL 0.
    DnsTtlZero,
    /// Names only match in lower case.
    DnsCaseSensitive,
    /// DNS is not served over TCP.
    DnsNoTcp,
    /// Negative answers carry no SOA.
    DnsNegativeWithoutSoa,
    /// ExternalName services answer NXDOMAIN instead of a CNAME.
    DnsExternalNameMissing,
    /// The pod resolv.conf lacks the `<ns>.svc.<zone>` search domain.
    ResolvMissingNamespaceSearch,
    /// The pod resolv.conf says `ndots:1`.
    ResolvNdotsOne,
    /// Not-ready pods are published as ready endpoints.
    EndpointsIgnoreReadiness,
    /// `publishNotReadyAddresses` is ignored.
    EndpointsIgnorePublishNotReady,
    /// A named targetPort is resolved on the first pod and used for all.
    EndpointsNamedPortResolvedOnce,
    /// The proxy never removes a backend once programmed.
    ProxyKeepsRemovedEndpoints,
    /// The proxy never adds backends after the first programming.
    ProxyIgnoresNewEndpoints,
    /// Four connections in five go to the first backend.
    ProxySkewedBalancer,
    /// `sessionAffinity: ClientIP` is ignored.
    ProxyIgnoresSessionAffinity,
    /// A service without endpoints drops SYNs (connect times out) instead of rejecting them.
    ProxyDropsInsteadOfReject,
    /// Serving terminating endpoints are not used when no endpoint is ready.
    ProxyNoTerminatingFallback,
    /// `internalTrafficPolicy: Local` is ignored: ClusterIP traffic goes to endpoints on any node.
    ProxyIgnoresInternalTrafficPolicy,
    /// `externalTrafficPolicy: Local` is ignored: node ports forward (masqueraded) to endpoints on any node.
    ProxyIgnoresExternalTrafficPolicy,
    /// `externalTrafficPolicy: Local` keeps traffic local but masquerades it, losing the client's address.
    ProxySnatsLocalExternalTraffic,
    /// `trafficDistribution: PreferClose` is ignored: traffic goes to every zone.
    ProxyIgnoresTrafficDistribution,
    /// `trafficDistribution: PreferClose` never spills over: a zone without endpoints gets none.
    ProxyNoZoneSpillover,
    /// Node ports are programmed on the first node only.
    ProxyNodePortFirstNodeOnly,
    /// A pod reaching itself through its own Service is reset (no hairpin).
    ProxyNoHairpin,
    /// The health check node port answers 200 also on nodes without local endpoints.
    HealthCheckAlwaysHealthy,
    /// SRV records asked at the bare service name are owned by `_<port>._<proto>.<service>…`, not the name asked.
    DnsSrvOwnerIsPortName,
    /// Pods sharing a hostname get one A record for that name instead of one each.
    DnsOneRecordPerHostname,
    /// A UDP flow keeps going to its backend after that endpoint is removed (kube-proxy's stale UDP conntrack
    /// entries before it flushed them, kubernetes#59368 and kin).
    ProxyStaleUdpConntrack,
    /// The proxy programs IPv4 ClusterIPs only: a dual-stack Service's IPv6 ClusterIP refuses connections (kube-proxy
    /// that fell back to single-stack, e.g. without an IPv6 `--cluster-cidr` or without ip6tables).
    ProxyIgnoresIpv6,
    /// The EndpointSlice controller publishes slices of the Service's primary family only: a dual-stack Service has
    /// no endpoints of its second family.
    EndpointsPrimaryFamilyOnly,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 33] = [
        Fault::DnsServesNotReady,
        Fault::DnsHeadlessAnswersVip,
        Fault::DnsNxdomainNodataSwapped,
        Fault::DnsSrvUsesTargetPort,
        Fault::DnsTtlZero,
        Fault::DnsCaseSensitive,
        Fault::DnsNoTcp,
        Fault::DnsNegativeWithoutSoa,
        Fault::DnsExternalNameMissing,
        Fault::ResolvMissingNamespaceSearch,
        Fault::ResolvNdotsOne,
        Fault::EndpointsIgnoreReadiness,
        Fault::EndpointsIgnorePublishNotReady,
        Fault::EndpointsNamedPortResolvedOnce,
        Fault::ProxyKeepsRemovedEndpoints,
        Fault::ProxyIgnoresNewEndpoints,
        Fault::ProxySkewedBalancer,
        Fault::ProxyIgnoresSessionAffinity,
        Fault::ProxyDropsInsteadOfReject,
        Fault::ProxyNoTerminatingFallback,
        Fault::ProxyIgnoresInternalTrafficPolicy,
        Fault::ProxyIgnoresExternalTrafficPolicy,
        Fault::ProxySnatsLocalExternalTraffic,
        Fault::ProxyIgnoresTrafficDistribution,
        Fault::ProxyNoZoneSpillover,
        Fault::ProxyNodePortFirstNodeOnly,
        Fault::ProxyNoHairpin,
        Fault::HealthCheckAlwaysHealthy,
        Fault::DnsSrvOwnerIsPortName,
        Fault::DnsOneRecordPerHostname,
        Fault::ProxyStaleUdpConntrack,
        Fault::ProxyIgnoresIpv6,
        Fault::EndpointsPrimaryFamilyOnly,
    ];

    /// The kebab-case name used on the command line.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            format!(
                "unknown fault `{s}`; known: {}",
                Fault::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// The faults a cluster runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults(pub BTreeSet<Fault>);

impl Faults {
    /// Whether `fault` is seeded.
    pub fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }

    /// Parses a comma-separated list (the `SVCBENCH_FAULTS` variable).
    ///
    /// # Errors
    /// An unknown fault name.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Fault::from_str)
            .collect::<Result<_, _>>()
            .map(Faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>().unwrap(), f);
        }
        assert!(Faults::parse_list("dns-ttl-zero, proxy-skewed-balancer").unwrap().has(Fault::DnsTtlZero));
        assert!(Faults::parse_list("nope").unwrap_err().contains("unknown fault `nope`"));
    }
}
