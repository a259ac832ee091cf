//! Logical ↔ real names. Each scenario's namespaces get a run-unique prefix on a real cluster (parallel runs, and
//! namespaces still terminating from the previous scenario, must not collide), so the names scenarios write have to
//! be rewritten on the way in and the names DNS answers carry rewritten back on the way out.
//!
//! In Kubernetes DNS names the namespace sits in fixed places: the label just before a `svc` label
//! (`svc.ns.svc.zone`, `host.svc.ns.svc.zone`, `ns.svc.zone`), or the second label of a two-label partial name
//! (`svc.ns`). Only those labels are rewritten, and only when they name a namespace of this scenario.

use std::collections::BTreeMap;

use crate::probe::{ProbeRequest, ProbeResponse, batch::BatchResult, dns::DnsRecord};

/// The namespaces of one scenario run.
#[derive(Debug, Clone, Default)]
pub struct NamespaceMap {
    to_real: BTreeMap<String, String>,
    to_logical: BTreeMap<String, String>,
}

impl NamespaceMap {
    /// Records that `logical` is `real` on the cluster.
    pub fn insert(&mut self, logical: &str, real: &str) {
        self.to_real.insert(logical.to_owned(), real.to_owned());
        self.to_logical.insert(real.to_owned(), logical.to_owned());
    }

    /// The real namespace (unmapped names pass through: `default`, `kube-system`).
    pub fn real(&self, logical: &str) -> String {
        self.to_real.get(logical).cloned().unwrap_or_else(|| logical.to_owned())
    }

    /// The logical namespace of a real one.
    pub fn logical(&self, real: &str) -> String {
        self.to_logical.get(real).cloned().unwrap_or_else(|| real.to_owned())
    }

    /// Every real namespace of the run.
    pub fn reals(&self) -> Vec<String> {
        self.to_real.values().cloned().collect()
    }

    fn rewrite(name: &str, map: &BTreeMap<String, String>) -> String {
        let absolute = name.ends_with('.');
        let trimmed = name.trim_end_matches('.');
        let mut labels: Vec<String> = trimmed.split('.').map(str::to_owned).collect();
        let n = labels.len();
        let lower: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        let mut positions: Vec<usize> = (0..n.saturating_sub(1)).filter(|&i| lower[i + 1] == "svc").collect();
        if n == 2 && !absolute {
            positions.push(1);
        }
        for i in positions {
            if let Some(to) = map.get(&lower[i]) {
                labels[i] = to.clone();
            }
        }
        let mut out = labels.join(".");
        if absolute {
            out.push('.');
        }
        out
    }

    /// A name as a scenario wrote it → the name to ask on the cluster.
    pub fn name_to_real(&self, name: &str) -> String {
        Self::rewrite(name, &self.to_real)
    }

    /// A name as the cluster answered → the name the scenario expects. Real namespace names carry the run's unique
    /// prefix, so every label equal to one is a namespace, wherever it sits (search-list expansions of a partial
    /// name put it in other places).
    pub fn name_to_logical(&self, name: &str) -> String {
        name.split('.')
            .map(|l| self.to_logical.get(&l.to_ascii_lowercase()).cloned().unwrap_or_else(|| l.to_owned()))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl NamespaceMap {
    /// An ExternalName target as a scenario wrote it → as the cluster must hold it. The target is an absolute name
    /// (CoreDNS answers it as a CNAME), so only the labels before `svc` are namespaces.
    pub fn external_name_to_real(&self, name: &str) -> String {
        let absolute = self.name_to_real(&format!("{}.", name.trim_end_matches('.')));
        if name.ends_with('.') { absolute } else { absolute.trim_end_matches('.').to_owned() }
    }

    /// A probe as the scenario asked it → as the agent must run it (names in real namespaces).
    pub fn request_to_real(&self, request: &ProbeRequest) -> ProbeRequest {
        let mut r = request.clone();
        match &mut r {
            ProbeRequest::Dns { name, .. } => *name = self.name_to_real(name),
            ProbeRequest::Http { host, .. } => *host = self.name_to_real(host),
            ProbeRequest::Load(spec) => spec.host = self.name_to_real(&spec.host),
            ProbeRequest::DnsLoad(spec) => spec.names = spec.names.iter().map(|n| self.name_to_real(n)).collect(),
            ProbeRequest::Batch(spec) => spec.probes = spec.probes.iter().map(|p| self.request_to_real(p)).collect(),
            ProbeRequest::ResolvConf | ProbeRequest::Connect { .. } | ProbeRequest::Udp { .. } => {}
        }
        r
    }

    fn record_to_logical(&self, r: DnsRecord) -> DnsRecord {
        match r {
            DnsRecord::Srv { priority, weight, port, target } => {
                DnsRecord::Srv { priority, weight, port, target: self.name_to_logical(&target) }
            }
            DnsRecord::Ptr { target } => DnsRecord::Ptr { target: self.name_to_logical(&target) },
            DnsRecord::Cname { target } => DnsRecord::Cname { target: self.name_to_logical(&target) },
            other => other,
        }
    }

    /// What the agent observed → in the names the scenario expects.
    pub fn response_to_logical(&self, response: ProbeResponse) -> ProbeResponse {
        match response {
            ProbeResponse::Dns(mut lookup) => {
                lookup.name = self.name_to_logical(&lookup.name);
                lookup.records = lookup.records.into_iter().map(|r| self.record_to_logical(r)).collect();
                for t in &mut lookup.tried {
                    t.name = self.name_to_logical(&t.name);
                    t.records = std::mem::take(&mut t.records).into_iter().map(|r| self.record_to_logical(r)).collect();
                    t.owners = t.owners.iter().map(|o| self.name_to_logical(o)).collect();
                    t.soa_owner = t.soa_owner.as_deref().map(|o| self.name_to_logical(o));
                }
                ProbeResponse::Dns(lookup)
            }
            ProbeResponse::ResolvConf(mut conf) => {
                conf.search = conf.search.iter().map(|s| self.name_to_logical(s)).collect();
                ProbeResponse::ResolvConf(conf)
            }
            ProbeResponse::Batch(mut outcome) => {
                outcome.results = std::mem::take(&mut outcome.results)
                    .into_iter()
                    .map(|r| match r {
                        BatchResult::Ok(response) => BatchResult::Ok(self.response_to_logical(response)),
                        error => error,
                    })
                    .collect();
                ProbeResponse::Batch(outcome)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> NamespaceMap {
        let mut m = NamespaceMap::default();
        m.insert("test", "svcb-x1-test");
        m.insert("other", "svcb-x1-other");
        m
    }

    #[test]
    fn rewrites_only_namespace_positions() {
        let m = map();
        assert_eq!(m.name_to_real("nginx.test.svc.cluster.local."), "nginx.svcb-x1-test.svc.cluster.local.");
        assert_eq!(m.name_to_real("nginx.test"), "nginx.svcb-x1-test");
        assert_eq!(m.name_to_real("nginx.test.svc"), "nginx.svcb-x1-test.svc");
        assert_eq!(m.name_to_real("web-0.web.test.svc.cluster.local"), "web-0.web.svcb-x1-test.svc.cluster.local");
        assert_eq!(m.name_to_real("test.svc.cluster.local."), "svcb-x1-test.svc.cluster.local.");
        assert_eq!(
            m.name_to_real("_http._tcp.web.test.svc.cluster.local."),
            "_http._tcp.web.svcb-x1-test.svc.cluster.local."
        );
        // A service named like a namespace, in first position, stays.
        assert_eq!(m.name_to_real("test"), "test");
        assert_eq!(m.name_to_real("test.other"), "test.svcb-x1-other");
        assert_eq!(m.name_to_real("dns-version.cluster.local."), "dns-version.cluster.local.");
        assert_eq!(m.name_to_real("NGINX.Test.SVC.cluster.local."), "NGINX.svcb-x1-test.SVC.cluster.local.");
    }

    #[test]
    fn round_trips() {
        let m = map();
        for n in
            ["nginx.test.svc.cluster.local.", "nginx.other", "a.b.test.svc.cluster.local", "test.svc.cluster.local"]
        {
            assert_eq!(m.name_to_logical(&m.name_to_real(n)), n);
        }
        assert_eq!(m.logical("svcb-x1-test"), "test");
        assert_eq!(m.real("default"), "default");
    }

    #[test]
    fn external_names_are_absolute() {
        let m = map();
        assert_eq!(m.external_name_to_real("db.other.svc.cluster.local"), "db.svcb-x1-other.svc.cluster.local");
        assert_eq!(m.external_name_to_real("db.other.svc.cluster.local."), "db.svcb-x1-other.svc.cluster.local.");
        // Two labels are a name outside the cluster here, not `svc.ns`.
        assert_eq!(m.external_name_to_real("db.test"), "db.test");
        assert_eq!(m.external_name_to_real("db.example.com"), "db.example.com");
    }

    #[test]
    fn batches_are_rewritten_both_ways() {
        use crate::{
            probe::batch::{BatchOutcome, BatchSpec},
            scenario::{QueryType, ResolverFlavour, Transport},
        };
        let m = map();
        let dns = |name: &str| ProbeRequest::Dns {
            name: name.into(),
            query_type: QueryType::A,
            flavour: ResolverFlavour::Dig,
            transport: Transport::Udp,
        };
        let request = ProbeRequest::Batch(BatchSpec { concurrency: 2, probes: vec![dns("a.test.svc.cluster.local.")] });
        let ProbeRequest::Batch(real) = m.request_to_real(&request) else { panic!("not a batch") };
        assert!(
            matches!(&real.probes[0], ProbeRequest::Dns { name, .. } if name == "a.svcb-x1-test.svc.cluster.local.")
        );
        let lookup = crate::probe::dns::DnsLookup {
            flavour: ResolverFlavour::Dig,
            name: "a.svcb-x1-test.svc.cluster.local.".into(),
            tried: vec![],
            rcode: crate::scenario::Rcode::NoError,
            records: vec![DnsRecord::Cname { target: "b.svcb-x1-other.svc.cluster.local.".into() }],
            from_hosts_file: false,
        };
        let answer = ProbeResponse::Batch(BatchOutcome {
            results: vec![BatchResult::Ok(ProbeResponse::Dns(lookup)), BatchResult::Error("x".into())],
        });
        let ProbeResponse::Batch(logical) = m.response_to_logical(answer) else { panic!("not a batch") };
        let BatchResult::Ok(ProbeResponse::Dns(l)) = &logical.results[0] else { panic!("not a lookup") };
        assert_eq!(l.name, "a.test.svc.cluster.local.");
        assert_eq!(l.records, [DnsRecord::Cname { target: "b.other.svc.cluster.local.".into() }]);
    }
}
