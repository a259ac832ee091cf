//! `/etc/hosts`: the file kubelet writes into every pod (localhost, the pod's own hostname and FQDN, `hostAliases`),
//! read the way the C libraries read it before they ask DNS — glibc's `files` service matches names
//! case-insensitively, musl's `name_from_hosts` byte for byte; neither strips a trailing dot, so `localhost.` goes
//! to DNS.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Largest hosts file read (kubelet's is a few hundred bytes; `hostAliases` add lines).
pub const MAX_HOSTS_FILE: usize = 64 * 1024;

/// One line: an address and its names (canonical name first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    /// The address.
    pub ip: IpAddr,
    /// Canonical name, then aliases.
    pub names: Vec<String>,
}

/// The parsed hosts file of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsFile {
    /// Lines in file order.
    pub entries: Vec<HostsEntry>,
}

/// How a library compares a name with the file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostsMatch {
    /// glibc `files`: `strcasecmp`.
    CaseInsensitive,
    /// musl: exact bytes.
    Exact,
}

impl HostsFile {
    /// What kubelet writes for a pod on the pod network (`managedHostsFileContent`): localhost and the IPv6
    /// names, then for each pod IP (a dual-stack pod has two) `ip  hostname.subdomain.ns.svc.domain  hostname` (or
    /// `ip  hostname` without a subdomain).
    pub fn kubelet(ips: &[IpAddr], hostname: &str, fqdn: Option<&str>) -> Self {
        let mut text = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        for ip in ips {
            match fqdn {
                Some(fqdn) => text.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
                None => text.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
        Self::parse(&text)
    }

    /// Parses hosts-file text: `#` starts a comment, lines without a valid address are skipped.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split('#').next().unwrap_or("").split_whitespace();
                let ip = words.next()?.parse().ok()?;
                let names: Vec<String> = words.map(str::to_owned).collect();
                (!names.is_empty()).then_some(HostsEntry { ip, names })
            })
            .collect();
        Self { entries }
    }

    /// The file text: one `ip<TAB>names…` line per entry.
    pub fn render(&self) -> String {
        self.entries.iter().map(|e| format!("{}\t{}\n", e.ip, e.names.join("\t"))).collect()
    }

    /// Whether any line names `name`, of either family.
    pub fn names(&self, name: &str, how: HostsMatch) -> bool {
        self.entries.iter().flat_map(|e| &e.names).any(|n| match how {
            HostsMatch::CaseInsensitive => n.eq_ignore_ascii_case(name),
            HostsMatch::Exact => n == name,
        })
    }

    /// The addresses of `name` of one family (`v6`), in file order, as the library compares names.
    pub fn lookup(&self, name: &str, v6: bool, how: HostsMatch) -> Vec<IpAddr> {
        let same = |n: &String| match how {
            HostsMatch::CaseInsensitive => n.eq_ignore_ascii_case(name),
            HostsMatch::Exact => n == name,
        };
        let mut out: Vec<IpAddr> = Vec::new();
        for e in self.entries.iter().filter(|e| e.ip.is_ipv6() == v6 && e.names.iter().any(same)) {
            if !out.contains(&e.ip) {
                out.push(e.ip);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_file_names_localhost_and_the_pod() {
        let ip: IpAddr = "10.244.1.7".parse().unwrap();
        let hosts = HostsFile::kubelet(&[ip], "web-0", Some("web-0.web.test.svc.cluster.local"));
        let v4 = |n: &str, how| hosts.lookup(n, false, how);
        assert_eq!(v4("localhost", HostsMatch::Exact), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(hosts.lookup("localhost", true, HostsMatch::Exact), vec!["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(v4("web-0", HostsMatch::Exact), vec![ip]);
        assert_eq!(v4("web-0.web.test.svc.cluster.local", HostsMatch::Exact), vec![ip]);
        assert_eq!(v4("WEB-0", HostsMatch::CaseInsensitive), vec![ip]);
        assert!(v4("WEB-0", HostsMatch::Exact).is_empty(), "musl compares bytes");
        assert!(v4("localhost.", HostsMatch::CaseInsensitive).is_empty(), "a trailing dot is not stripped");
        assert!(v4("ip6-localhost", HostsMatch::Exact).is_empty(), "an IPv6-only name has no IPv4 address");
        assert!(hosts.names("ip6-localhost", HostsMatch::Exact) && !hosts.names("web-1", HostsMatch::Exact));
        let parsed = HostsFile::parse("# c\n10.0.0.1 a b # trailing\nbogus line\n\n10.0.0.2\n");
        assert_eq!(
            parsed.entries,
            vec![HostsEntry { ip: "10.0.0.1".parse().unwrap(), names: vec!["a".into(), "b".into()] }]
        );
    }
}
