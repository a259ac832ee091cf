//! A pod's sandbox: its network namespace wired to the node (a routed veth, dual-stack), its directory, and its
//! attachment to the node's CNI plugin (`ADD` when made, `DEL` before its IP may go to another pod).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use k8s_openapi::api::core::v1::Pod;

use super::{POD_GATEWAY6, Runtime};
use crate::lab::{
    netns::{Netns, ip_batch},
    node::cni,
};

/// The sandbox: network namespace, addresses, directory. Removed on drop.
pub(super) struct Sandbox {
    /// The pod's own namespace; `None` for a `hostNetwork` pod, which runs in the node's.
    pub(super) own_netns: Option<Netns>,
    /// The primary pod IP (status.podIP).
    pub(super) ip: Ipv4Addr,
    /// The secondary pod IP (status.podIPs[1]).
    pub(super) ip6: Ipv6Addr,
    /// The pod's directory (overlay for /etc, volumes, logs).
    pub(super) dir: PathBuf,
    runtime: Arc<Runtime>,
    /// What the node's CNI plugin attached (detached before the IP may be reused), and a lock its `ADD` holds until
    /// it returned.
    attachment: Option<(cni::Attachment, Arc<tokio::sync::Mutex<()>>)>,
    /// The `ADD` task, aborted if the lab stops under it (its plugin process is killed with it).
    adding: Option<tokio::task::AbortHandle>,
    /// A detach task frees the IP once its `DEL` returned.
    ip_handed_off: bool,
}

impl Sandbox {
    /// The network namespace its containers join.
    pub(super) fn netns(&self) -> &str {
        self.own_netns.as_ref().map_or(&self.runtime.node.netns, Netns::name)
    }

    /// status.podIPs, IPv4 first (kubelet orders them by the node IP's family).
    pub(super) fn ips(&self) -> [IpAddr; 2] {
        [self.ip.into(), self.ip6.into()]
    }
}

impl Sandbox {
    /// Starts the CNI `DEL` for the pod on a task of its own, which frees the IP once the plugin returned (a plugin
    /// keys state by IP: a new pod must not get it while the old endpoint exists). A task, because the pod's own
    /// task may be aborted at any await (the pod vanished from the API): a `DEL` cut short leaves the endpoint behind,
    /// and its IP, handed to the next pod, would lead to the old endpoint's dead interface.
    fn spawn_detach(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let (attachment, adding) = self.attachment.take()?;
        self.ip_handed_off = true;
        let (runtime, ip) = (self.runtime.clone(), self.ip);
        Some(handle.spawn(async move {
            if runtime.stopping.load(Ordering::Relaxed) {
                return;
            }
            // An ADD still running finishes first: a DEL that overtook it would leave the endpoint it then creates.
            let _added = adding.lock().await;
            if let Some(plugin) = runtime.node.cni.as_ref().filter(|_| !runtime.stopping.load(Ordering::Relaxed))
                && let Err(e) = plugin.del(&attachment).await
            {
                // The endpoint may still hold the address: better one address fewer than two pods on it.
                tracing::warn!(pod = %attachment.name, error = format!("{e:#}"), "CNI DEL failed: its IP stays unused");
                return;
            }
            runtime.release_ip(ip);
        }))
    }

    /// Detaches the pod from the CNI plugin and waits for it (see [`Self::spawn_detach`]).
    pub(super) async fn detach(&mut self) {
        if let Some(task) = self.spawn_detach() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(adding) = self.adding.take().filter(|_| self.runtime.stopping.load(Ordering::Relaxed)) {
            adding.abort();
        }
        if self.own_netns.is_none() {
            return;
        }
        // Aborted before `detach` (the pod was killed, or its ADD failed or was cut short: the spec has the runtime
        // call DEL then too): detach in the background.
        if self.spawn_detach().is_none() && !self.ip_handed_off {
            self.runtime.release_ip(self.ip);
        }
    }
}

/// Makes a pod's sandbox: a host-network pod gets the node's; any other its own namespace, wired, then attached with
/// the node's CNI plugin (if it has one).
pub(super) async fn create_sandbox(rt: &Arc<Runtime>, pod: &Pod) -> anyhow::Result<Sandbox> {
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        // kubelet gives a host-network pod the node's network namespace and address.
        let dir = pod_dir(rt, pod)?;
        return Ok(Sandbox {
            own_netns: None,
            ip: rt.node.ip,
            ip6: rt.node.ip6,
            dir,
            runtime: rt.clone(),
            attachment: None,
            adding: None,
            ip_handed_off: false,
        });
    }
    let (ip, ip6) = rt.allocate_ip()?;
    let (netns, dir, veth) = match wire_sandbox(rt, pod, ip, ip6) {
        Ok(wired) => wired,
        Err(e) => {
            rt.release_ip(ip);
            return Err(e);
        }
    };
    let mut sandbox = Sandbox {
        own_netns: Some(netns),
        ip,
        ip6,
        dir,
        runtime: rt.clone(),
        attachment: None,
        adding: None,
        ip_handed_off: false,
    };
    if let Some(plugin) = &rt.node.cni {
        let attachment = cni::Attachment {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            // Like a CRI runtime's sandbox id: hex, unique in its first characters (plugins shorten ids in logs and
            // indexes; every netns name of a lab starts alike).
            container_id: pod.metadata.uid.clone().unwrap_or_default().replace('-', ""),
            netns: sandbox.netns().to_owned(),
            host_veth: veth,
            ip,
            ip6,
            gateways: (Ipv4Addr::new(169, 254, 1, 1), POD_GATEWAY6),
        };
        // Held before the ADD: if it fails or is cut short, dropping the sandbox sends the DEL. The ADD runs on a
        // task of its own, so that cutting the pod's task short does not kill the plugin halfway through (its agent
        // would finish creating the endpoint regardless); the DEL waits for it.
        let adding = Arc::new(tokio::sync::Mutex::new(()));
        let guard = adding.clone().lock_owned().await;
        sandbox.attachment = Some((attachment.clone(), adding));
        let plugin = plugin.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            plugin.add(&attachment).await
        });
        sandbox.adding = Some(task.abort_handle());
        let added = task.await.map_err(anyhow::Error::from).and_then(|added| added);
        if let Err(e) = added {
            // DEL before the error goes up: the pod's next attempt reuses its container id, and a DEL of this one
            // arriving after that attempt's ADD would delete the new endpoint.
            sandbox.detach().await;
            return Err(e);
        }
    }
    Ok(sandbox)
}

/// The pod's namespace, veth, routes and directory.
fn wire_sandbox(rt: &Runtime, pod: &Pod, ip: Ipv4Addr, ip6: Ipv6Addr) -> anyhow::Result<(Netns, PathBuf, String)> {
    let seq = rt.next_sandbox.fetch_add(1, Ordering::Relaxed);
    let name = format!("svcb-{}-{}-p{seq}", rt.ctx.lab_id, rt.node.name.rsplit('-').next().unwrap_or("n"));
    let netns = Netns::create(&name)?;
    let veth = format!("vp{seq}");
    let node_ns = &rt.node.netns;
    ip_batch(
        node_ns,
        &[
            format!("link add {veth} type veth peer name eth0 netns {name}"),
            // The pod's IPv6 gateway, on the node's end of every pod veth (each is its own link, so the same
            // link-local address on all of them is no conflict); nodad: usable at once, nothing to collide with.
            format!("addr add {POD_GATEWAY6}/64 dev {veth} nodad"),
            format!("link set {veth} up"),
            format!("route replace {ip}/32 dev {veth} scope link"),
            format!("route replace {ip6}/128 dev {veth}"),
        ],
    )?;
    crate::lab::netns::in_netns(node_ns, {
        let veth = veth.clone();
        move || std::fs::write(format!("/proc/sys/net/ipv4/conf/{veth}/proxy_arp"), "1")
    })?;
    ip_batch(
        &name,
        &[
            format!("addr add {ip}/32 dev eth0"),
            format!("addr add {ip6}/128 dev eth0 nodad"),
            "link set eth0 up".into(),
            "route add 169.254.1.1 dev eth0 scope link".into(),
            "route add default via 169.254.1.1 dev eth0".into(),
            format!("route add default via {POD_GATEWAY6} dev eth0"),
        ],
    )?;
    Ok((netns, pod_dir(rt, pod)?, veth))
}

/// The pod's directory (overlay for /etc, volumes, logs).
fn pod_dir(rt: &Runtime, pod: &Pod) -> anyhow::Result<PathBuf> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = rt.ctx.state_dir.join("pods").join(&uid);
    for sub in ["etc-upper", "etc-work", "volumes", "logs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    Ok(dir)
}
