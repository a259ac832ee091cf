//! Comparing the names a resolver tried with the exact list a scenario expects.
//!
//! Scenarios write candidate lists for the search path kubelet writes (`<ns>.svc.<zone> svc.<zone> <zone>`). On
//! many clusters kubelet appends the node's own search domains after those (GitHub runners add their
//! `*.cloudapp.net` domain), and every resolver then tries `<name>.<domain>.` for each of them right after
//! `<name>.<zone>.`. Those — and only those, all of them, in order, at that place — are allowed in addition, as
//! `expectResolvConf` allows the node's domains after the cluster ones.

/// A name as compared: lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The search domains after the cluster ones (`<from>.svc.<zone>`, `svc.<zone>`, `<zone>`), if the search list
/// starts with those; otherwise none are "extra" (the list differs from kubelet's, which the check then shows).
pub fn extra_search_domains(search: &[String], from: &str, zone: &str) -> Vec<String> {
    let cluster = [format!("{from}.svc.{zone}"), format!("svc.{zone}"), zone.to_owned()];
    let normalized: Vec<String> = search.iter().map(|d| normalize(d)).collect();
    let cluster: Vec<String> = cluster.iter().map(|d| normalize(d)).collect();
    if normalized.starts_with(&cluster) { normalized[cluster.len()..].to_vec() } else { Vec::new() }
}

/// Whether `tried` is the expected list `want` for `name`, or that list with one candidate per extra search domain
/// inserted right after `<name>.<zone>.` (all of them, in order).
pub fn matches(want: &[String], tried: &[String], name: &str, zone: &str, extra: &[String]) -> bool {
    let want: Vec<String> = want.iter().map(|c| normalize(c)).collect();
    let tried: Vec<String> = tried.iter().map(|c| normalize(c)).collect();
    if want == tried {
        return true;
    }
    if extra.is_empty() || name.ends_with('.') {
        return false;
    }
    let base = normalize(name);
    let Some(at) = want.iter().position(|c| *c == format!("{base}.{}", normalize(zone))) else { return false };
    let mut widened = want[..=at].to_vec();
    widened.extend(extra.iter().map(|d| format!("{base}.{d}")));
    widened.extend_from_slice(&want[at + 1..]);
    widened == tried
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn node_search_domains_after_the_cluster_ones_are_extra() {
        let search = list(&["test.svc.cluster.local", "svc.cluster.local", "cluster.local", "abc.cloudapp.net", "lan"]);
        assert_eq!(extra_search_domains(&search, "test", "cluster.local"), list(&["abc.cloudapp.net", "lan"]));
        assert!(extra_search_domains(&search[..3], "test", "cluster.local").is_empty());
        // Not kubelet's list (namespace domain missing): nothing counts as extra.
        assert!(extra_search_domains(&search[1..], "test", "cluster.local").is_empty());
        assert!(extra_search_domains(&search, "other", "cluster.local").is_empty());
    }

    #[test]
    fn extra_candidates_are_allowed_only_right_after_the_zone_candidate() {
        let extra = list(&["abc.cloudapp.net", "lan"]);
        let zone = "cluster.local";
        // busybox / musl: the search list, ending at the zone.
        let want = list(&["m.test.svc.cluster.local.", "m.svc.cluster.local.", "m.cluster.local."]);
        let tried = list(&[
            "m.test.svc.cluster.local.",
            "m.svc.cluster.local.",
            "m.cluster.local.",
            "m.abc.cloudapp.net.",
            "m.lan.",
        ]);
        assert!(matches(&want, &tried, "m", zone, &extra));
        assert!(matches(&want, &want, "m", zone, &extra), "the list as written always matches");
        // glibc: the name as is comes after every search domain.
        let mut want_glibc = want.clone();
        want_glibc.push("m.".into());
        let tried_glibc = list(&[
            "m.test.svc.cluster.local.",
            "m.svc.cluster.local.",
            "m.cluster.local.",
            "m.abc.cloudapp.net.",
            "m.lan.",
            "m.",
        ]);
        assert!(matches(&want_glibc, &tried_glibc, "m", zone, &extra));
        // Not a prefix of them, not in another order, not another domain, not elsewhere in the list.
        let partial =
            list(&["m.test.svc.cluster.local.", "m.svc.cluster.local.", "m.cluster.local.", "m.abc.cloudapp.net."]);
        assert!(!matches(&want, &partial, "m", zone, &extra));
        let swapped = list(&[
            "m.test.svc.cluster.local.",
            "m.svc.cluster.local.",
            "m.cluster.local.",
            "m.lan.",
            "m.abc.cloudapp.net.",
        ]);
        assert!(!matches(&want, &swapped, "m", zone, &extra));
        let other =
            list(&["m.test.svc.cluster.local.", "m.svc.cluster.local.", "m.cluster.local.", "m.evil.", "m.lan."]);
        assert!(!matches(&want, &other, "m", zone, &extra));
        let early = list(&[
            "m.test.svc.cluster.local.",
            "m.abc.cloudapp.net.",
            "m.lan.",
            "m.svc.cluster.local.",
            "m.cluster.local.",
        ]);
        assert!(!matches(&want, &early, "m", zone, &extra));
        // No extra domains: exact only.
        assert!(!matches(&want, &tried, "m", zone, &[]));
        // A list without the zone candidate (found earlier) gets nothing extra.
        let short = list(&["nginx.test.svc.cluster.local."]);
        assert!(!matches(&short, &list(&["nginx.test.svc.cluster.local.", "nginx.lan."]), "nginx", zone, &extra));
        // Case and trailing dots do not matter.
        assert!(matches(&list(&["A.Cluster.Local"]), &list(&["a.cluster.local."]), "a", zone, &extra));
    }
}
