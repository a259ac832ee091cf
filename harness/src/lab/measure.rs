//! Measuring from inside the lab: svcbench's generators run in a node's network namespace (so traffic takes the
//! path kube-proxy programmed there), polling a new ClusterIP until the first connection reaches its endpoint,
//! kube-proxy's own Prometheus histograms, and what each component process uses (resident memory, CPU time).

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::{netns, process};

/// Set on Ctrl-C / SIGTERM: the blocking measurement loops stop at their next attempt, so the process can exit
/// (a runtime waits for its blocking threads).
pub static CANCELLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn cancelled() -> bool {
    CANCELLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `make()`'s future on a current-thread runtime whose thread has entered namespace `ns`: every socket it
/// opens is the namespace's.
///
/// # Errors
/// The namespace cannot be entered or the runtime not built.
pub async fn run_in<T, F, M>(ns: &str, make: M) -> io::Result<T>
where
    T: Send + 'static,
    F: Future<Output = T>,
    M: FnOnce() -> F + Send + 'static,
{
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || {
        netns::in_netns(&ns, move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            Ok(rt.block_on(make()))
        })
    })
    .await
    .map_err(io::Error::other)?
}

/// Connects to `addr` from namespace `ns` every `every` until a connection is accepted (the first packet reached an
/// endpoint), up to `limit`. Returns when it was accepted. Resolution: about `every`; each attempt may take up to
/// 4 × `every` to complete its handshake, so a slow handshake on a busy machine is not taken for "not programmed".
///
/// # Errors
/// Not accepted within `limit`, or the namespace cannot be entered.
pub async fn first_connect(ns: &str, addr: SocketAddr, every: Duration, limit: Duration) -> io::Result<Instant> {
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || {
        netns::in_netns(&ns, move || {
            let deadline = Instant::now() + limit;
            loop {
                let attempt = Instant::now();
                if std::net::TcpStream::connect_timeout(&addr, every * 4).is_ok() {
                    return Ok(Instant::now());
                }
                if cancelled() {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{addr} not reachable within {limit:?}"),
                    ));
                }
                // Refusals and unreachable routes come back at once: pace them.
                if let Some(rest) = every.checked_sub(attempt.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        })
    })
    .await
    .map_err(io::Error::other)?
}

/// One Prometheus histogram (cumulative buckets), as scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, ascending, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl Histogram {
    /// What was observed between `earlier` and this scrape (a bucket `earlier` lacks counts from zero, `+Inf` from
    /// `earlier`'s count).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, c)| {
                let missing = if le.is_infinite() { earlier.count } else { 0.0 };
                let before = earlier.buckets.iter().find(|(l, _)| l == le).map_or(missing, |(_, c)| *c);
                (*le, c - before)
            })
            .collect();
        Histogram { buckets, sum: self.sum - earlier.sum, count: self.count - earlier.count }
    }

    /// Mean observation (exact: sum / count).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The upper bound of the bucket holding quantile `q` (what the histogram can say: "≤ this").
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets.iter().find(|(_, c)| *c >= rank).map(|(le, _)| *le)
    }
}

/// Parses histogram `name` out of Prometheus text exposition, summing over label sets other than `le` (kube-proxy
/// labels its histograms with `ip_family`; a single-stack lab has one).
pub fn parse_histogram(text: &str, name: &str) -> Option<Histogram> {
    let mut h = Histogram::default();
    let bucket = format!("{name}_bucket{{");
    let (sum, count) = (format!("{name}_sum"), format!("{name}_count"));
    let mut found = false;
    for line in text.lines() {
        let value = || line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        // `name_sum 1.5` or `name_sum{ip_family="IPv4"} 1.5`, but not `name_summary…`.
        let is = |prefix: &str| line.strip_prefix(prefix).is_some_and(|r| r.starts_with(' ') || r.starts_with('{'));
        if let Some(labels) = line.strip_prefix(&bucket) {
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            let v = value()?;
            match h.buckets.iter_mut().find(|(l, _)| *l == le) {
                Some((_, c)) => *c += v,
                None => h.buckets.push((le, v)),
            }
            found = true;
        } else if is(&sum) {
            h.sum += value()?;
        } else if is(&count) {
            h.count += value()?;
        }
    }
    h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    found.then_some(h)
}

/// GETs `path` from `addr` inside namespace `ns` (HTTP/1.0, bounded to 5 s and 16 MiB).
///
/// # Errors
/// Not reachable or no answer in time.
pub async fn http_get(ns: &str, addr: SocketAddr, path: &str) -> io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = netns::connect(ns, addr, Duration::from_secs(2)).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut body = Vec::new();
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        (&mut stream).take(16 << 20).read_to_end(&mut body).await
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{addr}{path}: no answer in 5 s")))??;
    let text = String::from_utf8_lossy(&body).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head.split_whitespace().nth(1).unwrap_or("none");
    if !status.starts_with('2') {
        return Err(io::Error::other(format!("{addr}{path}: HTTP status {status}")));
    }
    Ok(body.to_owned())
}

/// What one component process uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// User + system CPU time since it started, s.
    pub cpu_s: f64,
}

/// Resident memory and CPU time of every process of lab `lab_id`, summed per component (`kube-proxy`,
/// `kube-apiserver`, `etcd`, `coredns`, `node-local-dns`, …; the CoreDNS pods and the cache are told apart by
/// their Corefile).
pub fn usage(lab_id: &str) -> BTreeMap<String, Usage> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let mut out: BTreeMap<String, Usage> = BTreeMap::new();
    for (pid, _) in process::marked_processes(Some(lab_id)) {
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else { continue };
        let mut name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if name == "coredns" {
            if cmdline.contains("node-local-dns") {
                name = "node-local-dns".into();
            } else if cmdline.contains("upstream.Corefile") {
                name = "upstream-dns".into();
            }
        }
        let rss_kib: f64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
        let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / ticks)
        });
        let entry = out.entry(name).or_insert(Usage { rss_mib: 0.0, cpu_s: 0.0 });
        entry.rss_mib += rss_kib / 1024.0;
        entry.cpu_s += cpu.unwrap_or(0.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP kubeproxy_network_programming_duration_seconds x
# TYPE kubeproxy_network_programming_duration_seconds histogram
kubeproxy_network_programming_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.25\"} 3
kubeproxy_network_programming_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.5\"} 8
kubeproxy_network_programming_duration_seconds_bucket{ip_family=\"IPv4\",le=\"1\"} 10
kubeproxy_network_programming_duration_seconds_bucket{ip_family=\"IPv4\",le=\"+Inf\"} 10
kubeproxy_network_programming_duration_seconds_sum{ip_family=\"IPv4\"} 3.5
kubeproxy_network_programming_duration_seconds_count{ip_family=\"IPv4\"} 10
kubeproxy_sync_proxy_rules_duration_seconds_count 4
";

    #[test]
    fn histograms_parse_subtract_and_bound_quantiles() {
        let h = parse_histogram(SCRAPE, "kubeproxy_network_programming_duration_seconds").unwrap();
        assert_eq!(h.buckets.len(), 4);
        assert_eq!((h.sum, h.count), (3.5, 10.0));
        assert_eq!(h.quantile_bound(0.5), Some(0.5));
        assert_eq!(h.quantile_bound(0.99), Some(1.0));
        let earlier = Histogram { buckets: vec![(0.25, 3.0), (0.5, 3.0), (1.0, 3.0)], sum: 0.3, count: 3.0 };
        let d = h.since(&earlier);
        assert_eq!(d.count, 7.0);
        assert_eq!(d.buckets.last(), Some(&(f64::INFINITY, 7.0)), "+Inf never exceeds the count");
        assert_eq!(d.quantile_bound(0.5), Some(0.5));
        assert!((d.mean().unwrap() - 3.2 / 7.0).abs() < 1e-9);
        assert!(parse_histogram(SCRAPE, "nope").is_none());
    }
}
