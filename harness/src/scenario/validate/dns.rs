//! DNS expectations: the query name (or reverse lookup), type, resolver, rcodes and the expected records.

use std::net::IpAddr;

use serde_saphyr::{Location, Spanned};

use super::{
    super::{IpFamily, file::*, plan::*},
    ServiceKind, Validator, enum_from_str,
};

impl Validator {
    pub(super) fn expect_dns(&mut self, at: &Location, e: &RawExpectDns) -> Option<Assertion> {
        let from = self.namespace(&e.from)?;
        let name = match (&e.name, &e.reverse_of) {
            (Some(n), None) => {
                let name = n.value.trim().to_owned();
                let bad_label = name
                    .split('.')
                    .enumerate()
                    .any(|(i, l)| l.len() > 63 || (l.is_empty() && i + 1 < name.split('.').count()));
                if name.is_empty() || name.len() > 253 || bad_label || name.chars().any(char::is_whitespace) {
                    self.err(&n.referenced, format!("`{}` is not a valid DNS name", n.value));
                    return None;
                }
                DnsQueryName::Name(name)
            }
            (None, Some(r)) => {
                let rec = self.record(&from, r, QueryType::A)?;
                if !matches!(
                    rec,
                    ExpectedRecord::ClusterIpOf { .. } | ExpectedRecord::PodIpOf { .. } | ExpectedRecord::Ip { .. }
                ) {
                    self.err(&r.referenced, "reverseOf needs `clusterIPOf`, `podIPOf` or `ip`");
                    return None;
                }
                let family = self.choice(&e.ip_family, IpFamily::IPv4, "ipFamily", "IPv4 or IPv6")?;
                DnsQueryName::ReverseOf(rec, family)
            }
            _ => {
                self.err(at, "expectDns needs exactly one of `name` or `reverseOf`");
                return None;
            }
        };
        if let (Some(f), DnsQueryName::Name(_)) = (&e.ip_family, &name) {
            self.err(
                &f.referenced,
                "ipFamily chooses the address `reverseOf` reverses; with `name`, give `type: AAAA`",
            );
            return None;
        }
        let default_type = if matches!(name, DnsQueryName::ReverseOf(..)) { QueryType::Ptr } else { QueryType::A };
        let query_type =
            self.choice(&e.record_type, default_type, "record type", "A, AAAA, SRV, PTR, TXT, CNAME, SOA")?;
        let flavour = self.choice(
            &e.resolver,
            ResolverFlavour::Glibc,
            "resolver",
            "glibc, musl, dig, dig+search, busybox, hickory",
        )?;
        let transport = self.choice(&e.transport, Transport::Udp, "transport", "udp, tcp")?;
        let wire_only = [
            ("candidates", e.candidates.is_some()),
            ("minTtl", e.min_ttl.is_some()),
            ("authoritySoa", e.authority_soa),
            ("additional", e.additional.is_some()),
        ];
        if flavour == ResolverFlavour::Hickory
            && let Some((field, _)) = wire_only.iter().find(|(_, given)| *given)
        {
            self.err(
                at,
                format!(
                    "resolver hickory runs the real hickory-resolver crate, which reports records but not the messages \
                     behind them (names tried, TTLs, authority and additional sections): no `{field}`"
                ),
            );
            return None;
        }
        let mut rcodes = Vec::new();
        if let Some(r) = &e.rcode {
            let list = match &r.value {
                RawOneOrMany::One(s) => vec![s.clone()],
                RawOneOrMany::Many(v) => v.clone(),
            };
            for s in list {
                match enum_from_str::<Rcode>(&s) {
                    Some(c) => rcodes.push(c),
                    None => {
                        self.err(
                            &r.referenced,
                            format!("unknown rcode `{s}` (NOERROR, NODATA, NXDOMAIN, SERVFAIL, REFUSED)"),
                        );
                        return None;
                    }
                }
            }
        }
        let records = match &e.records {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for r in list {
                    out.push(self.record(&from, r, query_type)?);
                }
                Some(out)
            }
        };
        let additional = match &e.additional {
            None => None,
            Some(list) => {
                let mut out = Vec::new();
                for r in list {
                    out.push(self.record(&from, r, QueryType::A)?);
                }
                Some(out)
            }
        };
        if records.is_none() && rcodes.is_empty() && e.candidates.is_none() {
            self.err(at, "expectDns needs at least one of `rcode`, `records`, `candidates`");
            return None;
        }
        if let Some(recs) = &records
            && !recs.is_empty()
            && !rcodes.is_empty()
            && !rcodes.contains(&Rcode::NoError)
        {
            self.err(at, "records are given but rcode does not allow NOERROR");
            return None;
        }
        let timeout = self.timeout(&e.timeout);
        Some(Assertion {
            timeout,
            check: Check::Dns {
                from,
                name,
                query_type,
                flavour,
                transport,
                rcodes,
                records,
                additional,
                candidates: e.candidates.clone(),
                min_ttl: e.min_ttl,
                authority_soa: e.authority_soa,
            },
        })
    }

    pub(super) fn record(&mut self, from: &str, r: &Spanned<RawRecord>, qtype: QueryType) -> Option<ExpectedRecord> {
        let v = &r.value;
        let set = [
            v.cluster_ip_of.is_some(),
            v.ready_pod_ips_of.is_some(),
            v.ip.is_some(),
            v.txt.is_some(),
            v.pod_ip_of.is_some(),
            v.srv.is_some(),
            v.ptr.is_some(),
            v.cname.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            self.err(
                &r.referenced,
                "a record needs exactly one of `clusterIPOf`, `readyPodIPsOf`, `podIPOf`, `ip`, `txt`, `srv`, `ptr`, `cname`",
            );
            return None;
        }
        let answers = match qtype {
            QueryType::A | QueryType::Aaaa => {
                v.cluster_ip_of.is_some() || v.ready_pod_ips_of.is_some() || v.ip.is_some() || v.pod_ip_of.is_some()
            }
            QueryType::Txt => v.txt.is_some(),
            QueryType::Srv => v.srv.is_some(),
            QueryType::Ptr => v.ptr.is_some(),
            QueryType::Cname | QueryType::Soa => false,
        };
        // A CNAME may answer any query: resolvers follow it.
        if !answers && v.cname.is_none() {
            self.err(&r.referenced, format!("this record cannot answer a {qtype:?} query"));
            return None;
        }
        let absolute = |n: &str| {
            let n = n.trim().to_ascii_lowercase();
            if n.ends_with('.') { n } else { format!("{n}.") }
        };
        Some(if let Some(s) = &v.cluster_ip_of {
            let service = self.service(from, s)?;
            if self.services.get(&service) != Some(&ServiceKind::ClusterIp) {
                self.err(&s.referenced, format!("service `{service}` has no ClusterIP (headless or ExternalName)"));
                return None;
            }
            ExpectedRecord::ClusterIpOf { service }
        } else if let Some(d) = &v.ready_pod_ips_of {
            let (deployment, replicas) = self.workload_ref(from, d)?;
            ExpectedRecord::ReadyPodIpsOf { deployment, replicas }
        } else if let Some(p) = &v.pod_ip_of {
            let deployment = self.deployment(from, &p.value.deployment)?;
            let replicas = self.deployments[&deployment].replicas;
            if p.value.index >= replicas {
                self.err(
                    &p.referenced,
                    format!("pod index {} is out of range: `{deployment}` has {replicas} replicas here", p.value.index),
                );
                return None;
            }
            ExpectedRecord::PodIpOf { pod: PodRef { deployment, index: p.value.index } }
        } else if let Some(ip) = &v.ip {
            match ip.value.parse::<IpAddr>() {
                Ok(ip) => ExpectedRecord::Ip { ip },
                Err(_) => {
                    self.err(&ip.referenced, format!("`{}` is not an IP address", ip.value));
                    return None;
                }
            }
        } else if let Some(srv) = &v.srv {
            ExpectedRecord::Srv { port: srv.port, target: absolute(&srv.target) }
        } else if let Some(ptr) = &v.ptr {
            ExpectedRecord::Ptr { target: absolute(ptr) }
        } else if let Some(cname) = &v.cname {
            ExpectedRecord::Cname { target: absolute(cname) }
        } else {
            ExpectedRecord::Txt { text: v.txt.clone()? }
        })
    }
}
