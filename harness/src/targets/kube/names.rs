//! Logical ↔ real names. Each scenario's namespaces get a run-unique prefix on a real cluster (parallel runs, and
//! namespaces still terminating from the previous scenario, must not collide), so the names scenarios write have to
//! be rewritten on the way in and the names DNS answers carry rewritten back on the way out.
//!
//! In Kubernetes DNS names the namespace sits in fixed places: the label just before a `svc` label
//! (`svc.ns.svc.zone`, `host.svc.ns.svc.zone`, `ns.svc.zone`), or the second label of a two-label partial name
//! (`svc.ns`). Only those labels are rewritten, and only when they name a namespace of this scenario.

use std::collections::BTreeMap;

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
}
