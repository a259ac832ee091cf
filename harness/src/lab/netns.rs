//! Network namespaces and their wiring: creating and deleting named namespaces (`ip netns`), veth pairs, routes and
//! per-namespace sysctls, and opening sockets *inside* a namespace from this process.
//!
//! Every lab address lives only inside namespaces the lab created; the host's own interfaces never see them. A
//! socket is created inside a namespace by a short-lived thread that `setns`es into it first: a socket keeps the
//! namespace it was created in, so the thread can hand it back to the async runtime.

use std::{
    fs::File,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, bail};

/// Where `ip netns add` mounts named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS…`, failing with its stderr.
///
/// # Errors
/// `ip` failed or could not run.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("cannot run `ip` (install iproute2)")?;
    if !output.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Runs `ip -n NS -batch -` with `commands`, one per line.
///
/// # Errors
/// Any command failed.
pub fn ip_batch(ns: &str, commands: &[String]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run `ip` (install iproute2)")?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(commands.join("\n").as_bytes())?;
    drop(stdin);
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("ip -n {ns} -batch: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback up.
    ///
    /// # Errors
    /// It exists already, or no privilege.
    pub fn create(name: &str) -> anyhow::Result<Self> {
        ip(&["netns", "add", name])?;
        let ns = Self { name: name.to_owned() };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets a sysctl under `/proc/sys/net` inside the namespace (`ipv4/ip_forward` …).
    ///
    /// # Errors
    /// The namespace or the key does not exist.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let path = Path::new("/proc/sys/net").join(key);
        let value = value.to_owned();
        in_netns(&self.name, move || std::fs::write(&path, value))
            .with_context(|| format!("sysctl net/{key} in netns {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "cannot delete network namespace");
        }
    }
}

/// The path of a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// The named namespaces that exist.
pub fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// The named namespace, among those starting with `prefix` (a lab's: `svcb-<id>-`), that holds address `ip` — the
/// one where binding it succeeds. How a test finds a pod's network namespace from its pod IP.
pub fn holding(prefix: &str, ip: std::net::IpAddr) -> Option<String> {
    list()
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .find(|name| in_netns(name, move || std::net::TcpListener::bind((ip, 0)).map(drop)).is_ok())
}

/// Runs `f` on a thread that has entered namespace `name`, and returns its result.
///
/// # Errors
/// The namespace cannot be entered, or `f` failed.
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let file = File::open(netns_path(name))?;
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
}

/// Connects a TCP socket from inside namespace `name`.
///
/// # Errors
/// The namespace cannot be entered or the connect failed.
pub async fn connect(name: &str, addr: SocketAddr, timeout: Duration) -> io::Result<tokio::net::TcpStream> {
    let name = name.to_owned();
    let stream = tokio::task::spawn_blocking(move || {
        in_netns(&name, move || {
            let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
    })
    .await
    .map_err(io::Error::other)??;
    tokio::net::TcpStream::from_std(stream)
}

/// Forwards connections to `127.0.0.1:<port>` on the host into `target` inside namespace `name`, until dropped.
/// This is the only way into the lab from the host.
pub struct Forwarder {
    /// The host address.
    pub local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Listens on a free loopback port.
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn start(name: &str, target: SocketAddr) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let name = name.clone();
                        connections.spawn(async move {
                            if let Ok(mut upstream) = connect(&name, target, Duration::from_secs(5)).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self { local, task })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
