//! `/etc/resolv.conf`: what kubelet writes for `dnsPolicy: ClusterFirst`, and parsing the real file in a pod.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The parts of resolv.conf that decide which names a resolver tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<IpAddr>,
    /// The `search` list.
    pub search: Vec<String>,
    /// `options ndots:N` (resolver default 1).
    pub ndots: u8,
}

impl ResolvConf {
    /// What kubelet writes for a pod in `namespace` with `ClusterFirst` DNS policy.
    pub fn cluster_first(cluster_dns: IpAddr, namespace: &str, cluster_domain: &str) -> Self {
        Self {
            nameservers: vec![cluster_dns],
            search: vec![
                format!("{namespace}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_owned(),
            ],
            ndots: 5,
        }
    }

    /// Parses resolv.conf text the way glibc does: the last `search`/`domain` line wins, unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self { nameservers: Vec::new(), search: Vec::new(), ndots: 1 };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") | Some("domain") => conf.search = words.map(str::to_owned).collect(),
                Some("options") => {
                    for opt in words {
                        if let Some(n) = opt.strip_prefix("ndots:").and_then(|n| n.parse::<u8>().ok()) {
                            conf.ndots = n.min(15);
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The file text, as kubelet formats it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        out.push_str(&format!("options ndots:{}\n", self.ndots));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_shape_round_trips() {
        let conf = ResolvConf::cluster_first("10.96.0.10".parse().unwrap(), "test", "cluster.local");
        assert_eq!(
            conf.render(),
            "search test.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert_eq!(ResolvConf::parse(&conf.render()), conf);
    }

    #[test]
    fn parse_like_glibc() {
        let c = ResolvConf::parse(
            "domain a\nsearch b c # comment\nnameserver 1.1.1.1\nnameserver bogus\noptions rotate ndots:2\n",
        );
        assert_eq!(c.search, ["b", "c"]);
        assert_eq!(c.nameservers.len(), 1);
        assert_eq!(c.ndots, 2);
    }
}
