//! The files kubelet gives a pod, written into its directory: `/etc/resolv.conf` for `dnsPolicy`
//! ClusterFirst / Default / None with `dnsConfig` merged (pkg/kubelet/network/dns), `/etc/hosts` with a line per
//! pod IP (both families, IPv4 first, as kubelet's managedHostsFileContent writes for a dual-stack pod) naming the
//! hostname/subdomain, and `hostAliases` (kubelet_pods.go), `/etc/hostname`, and volumes: `configMap`, `emptyDir`
//! and the projected service-account volume (a TokenRequest bound to the pod, `kube-root-ca.crt`, the namespace).
//!
//! Mounts under `/etc` go into the pod's `/etc` overlay; mounts under `/run`, `/var/run` and `/tmp` (private tmpfs
//! in the pod) become bind mounts. Others are refused with a clear reason: the lab has no container filesystem.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};
use kube::Api;
use serde_json::json;

use super::node::pod::{Runtime, in_dir};

/// kubelet's limits (pkg/apis/core/validation): 3 nameservers, 32 search domains of 2048 characters in all.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// The pod's hostname: `spec.hostname` or the pod name, at most 63 characters.
pub fn pod_hostname(pod: &Pod) -> String {
    let name =
        pod.spec.as_ref().and_then(|s| s.hostname.clone()).or_else(|| pod.metadata.name.clone()).unwrap_or_default();
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|i| seen.insert(i.clone())).collect()
}

/// `/etc/resolv.conf` as kubelet forms it for `pod` (search, nameserver lines, options).
pub fn resolv_conf(pod: &Pod, cluster_dns: Ipv4Addr, domain: &str, upstream: Ipv4Addr) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let (mut servers, mut search, mut options): (Vec<String>, Vec<String>, Vec<String>) = match policy {
        "None" => (vec![], vec![], vec![]),
        "ClusterFirst" if host_network => (vec![upstream.to_string()], vec![], vec![]),
        "ClusterFirst" | "ClusterFirstWithHostNet" => (
            vec![cluster_dns.to_string()],
            vec![format!("{ns}.svc.{domain}"), format!("svc.{domain}"), domain.to_owned()],
            vec!["ndots:5".into()],
        ),
        _ => (vec![upstream.to_string()], vec![], vec![]),
    };
    if let Some(config) = &spec.dns_config {
        servers.extend(config.nameservers.clone().unwrap_or_default());
        search.extend(config.searches.clone().unwrap_or_default());
        let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut order = Vec::new();
        for o in options.drain(..) {
            let (k, v) = o.split_once(':').map_or((o.clone(), None), |(k, v)| (k.to_owned(), Some(v.to_owned())));
            order.push(k.clone());
            merged.insert(k, v);
        }
        for o in config.options.clone().unwrap_or_default() {
            let Some(name) = o.name else { continue };
            if !merged.contains_key(&name) {
                order.push(name.clone());
            }
            merged.insert(name, o.value);
        }
        options = order
            .into_iter()
            .map(|k| match &merged[&k] {
                Some(v) => format!("{k}:{v}"),
                None => k,
            })
            .collect();
    }
    let mut servers = omit_duplicates(servers);
    servers.truncate(MAX_NAMESERVERS);
    let mut search: Vec<String> = omit_duplicates(search).into_iter().filter(|s| s.len() <= 253).collect();
    search.truncate(MAX_SEARCH);
    while search.join(" ").len() > MAX_SEARCH_CHARS {
        search.pop();
    }
    let mut out = String::new();
    if !search.is_empty() {
        let _ = writeln!(out, "search {}", search.join(" "));
    }
    for s in &servers {
        let _ = writeln!(out, "nameserver {s}");
    }
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    out
}

/// `/etc/hosts` as kubelet writes it for a pod on the pod network with `ips` (status.podIPs, in order).
pub fn hosts(pod: &Pod, ips: &[IpAddr], domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = pod_hostname(pod);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    // kubelet writes the hostname line once per pod IP ("host entry generated for all IPs in podIPs").
    for ip in ips {
        match &spec.subdomain {
            Some(sub) if !sub.is_empty() => {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let _ = writeln!(out, "{ip}\t{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}");
            }
            _ => {
                let _ = writeln!(out, "{ip}\t{hostname}");
            }
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let _ = writeln!(out, "{}\t{}", a.ip, a.hostnames.unwrap_or_default().join("\t"));
        }
    }
    out
}

/// Writes `/etc` files and volumes into `dir`; returns the bind mounts (`SRC:DST`) the containers need.
///
/// # Errors
/// A volume cannot be provided (the pod then waits with this reason).
pub async fn write_pod_files(rt: &Runtime, pod: &Pod, dir: &Path, ips: &[IpAddr]) -> anyhow::Result<Vec<String>> {
    let ctx = &rt.ctx;
    let etc = dir.join("etc-upper");
    std::fs::write(etc.join("resolv.conf"), resolv_conf(pod, ctx.cluster_dns, &ctx.cluster_domain, ctx.upstream_dns))?;
    std::fs::write(etc.join("hosts"), hosts(pod, ips, &ctx.cluster_domain))?;
    std::fs::write(etc.join("hostname"), format!("{}\n", pod_hostname(pod)))?;
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut volume_dirs = BTreeMap::new();
    for volume in spec.volumes.iter().flatten() {
        let vdir = dir.join("volumes").join(&volume.name);
        std::fs::create_dir_all(&vdir)?;
        write_volume(rt, pod, &ns, volume, &vdir).await.with_context(|| format!("volume {}", volume.name))?;
        volume_dirs.insert(volume.name.clone(), vdir);
    }
    let mut binds = Vec::new();
    for mount in spec.containers.iter().flat_map(|c| c.volume_mounts.iter().flatten()) {
        let Some(src) = volume_dirs.get(&mount.name) else { bail!("volumeMount {} names no volume", mount.name) };
        let src = match &mount.sub_path {
            Some(sub) if !sub.is_empty() => src.join(sub),
            _ => src.clone(),
        };
        let path = mount.mount_path.replacen("/var/run/", "/run/", 1);
        if let Some(rel) = path.strip_prefix("/etc/") {
            copy_into(&src, &in_dir(&etc, rel))?;
        } else if path.starts_with("/run/") || path.starts_with("/tmp/") {
            binds.push(format!("{}:{path}", src.display()));
        } else {
            bail!(
                "mount path {} is not supported: the lab mounts volumes under /etc, /run, /var/run and /tmp",
                mount.mount_path
            );
        }
    }
    Ok(binds)
}

fn copy_into(src: &Path, dst: &Path) -> anyhow::Result<()> {
    if src.is_dir() {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_into(&entry.path(), &dst.join(entry.file_name()))?;
        }
    } else {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src, dst).with_context(|| format!("copy {} → {}", src.display(), dst.display()))?;
    }
    Ok(())
}

async fn config_map_files(
    rt: &Runtime,
    ns: &str,
    name: &str,
    items: Option<Vec<(String, String)>>,
    out: &Path,
) -> anyhow::Result<()> {
    let cm = Api::<ConfigMap>::namespaced(rt.client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("configmap {ns}/{name}"))?;
    let data = cm.data.unwrap_or_default();
    let pairs: Vec<(String, String)> = items.unwrap_or_else(|| data.keys().map(|k| (k.clone(), k.clone())).collect());
    for (key, path) in pairs {
        let value = data.get(&key).with_context(|| format!("configmap {ns}/{name} has no key {key}"))?;
        let file = in_dir(out, &path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, value)?;
    }
    Ok(())
}

/// A Secret volume's files, readable by the owner only (the processes run as root, as a pod's would).
async fn secret_files(rt: &Runtime, ns: &str, name: &str, out: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let secret = Api::<Secret>::namespaced(rt.client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("secret {ns}/{name}"))?;
    for (key, value) in secret.data.unwrap_or_default() {
        let file = in_dir(out, &key);
        std::fs::write(&file, &value.0)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400))?;
    }
    Ok(())
}

async fn write_volume(rt: &Runtime, pod: &Pod, ns: &str, volume: &Volume, out: &Path) -> anyhow::Result<()> {
    if volume.empty_dir.is_some() {
        return Ok(());
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().context("a secret volume without secretName")?;
        return secret_files(rt, ns, name, out).await;
    }
    if let Some(cm) = &volume.config_map {
        let items = cm.items.as_ref().map(|i| i.iter().map(|k| (k.key.clone(), k.path.clone())).collect());
        return config_map_files(rt, ns, &cm.name, items, out).await;
    }
    let Some(projected) = &volume.projected else {
        bail!("only configMap, secret, emptyDir and projected volumes are supported by the lab");
    };
    for source in projected.sources.iter().flatten() {
        if let Some(token) = &source.service_account_token {
            let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
            let body = json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {
                    "audiences": token.audience.as_ref().map(|a| vec![a.clone()]),
                    "expirationSeconds": token.expiration_seconds.unwrap_or(3607),
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
                }
            });
            let request = http::Request::post(format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body)?)?;
            let answer: serde_json::Value = rt.client.request(request).await.context("TokenRequest")?;
            let value = answer["status"]["token"].as_str().context("TokenRequest answered no token")?;
            std::fs::write(in_dir(out, &token.path), value)?;
        }
        if let Some(cm) = &source.config_map {
            let items = cm.items.as_ref().map(|i| i.iter().map(|k| (k.key.clone(), k.path.clone())).collect());
            config_map_files(rt, ns, &cm.name, items, out).await?;
        }
        if let Some(downward) = &source.downward_api {
            for item in downward.items.iter().flatten() {
                let value = match item.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                    Some("metadata.namespace") => ns.to_owned(),
                    Some("metadata.name") => pod.metadata.name.clone().unwrap_or_default(),
                    other => bail!("downwardAPI field {other:?} is not supported by the lab"),
                };
                std::fs::write(in_dir(out, &item.path), value)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(subdomain: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "ns"},
            "spec": {"containers": [], "subdomain": subdomain},
        }))
        .expect("pod")
    }

    #[test]
    fn hosts_has_a_line_per_pod_ip_as_kubelet() {
        let ips: [IpAddr; 2] = ["10.244.1.5".parse().expect("v4"), "fd00:10:244:1::5".parse().expect("v6")];
        let plain = hosts(&pod(None), &ips, "cluster.local");
        assert!(plain.ends_with("fe00::2\tip6-allrouters\n10.244.1.5\tweb-0\nfd00:10:244:1::5\tweb-0\n"), "{plain}");
        let sub = hosts(&pod(Some("db")), &ips, "cluster.local");
        assert!(
            sub.ends_with(
                "10.244.1.5\tweb-0.db.ns.svc.cluster.local\tweb-0\nfd00:10:244:1::5\tweb-0.db.ns.svc.cluster.local\tweb-0\n"
            ),
            "{sub}"
        );
    }
}
