//! Traffic: HTTP expectations and the HTTP/DNS load measurements (URLs, rates, counts, bounds).

use std::time::Duration;

use crate::probe::schedule::MIN_RATE;

use serde_saphyr::{Location, Spanned};

use super::{
    super::{
        IpFamily,
        file::*,
        nodes::{Client, SourceIp},
        plan::*,
    },
    Validator, enum_from_str,
};

/// Highest open-loop HTTP load rate, requests/s (the agent's limit too).
pub const MAX_HTTP_RATE: f64 = crate::agent::limits::MAX_LOAD_RATE;
/// Highest open-loop DNS load rate, queries/s (the agent's limit too).
pub const MAX_DNS_RATE: f64 = crate::agent::limits::MAX_DNS_RATE;
/// Most queries one `measureDns` sends.
pub const MAX_DNS_QUERIES: u64 = 10_000_000;
/// A load's send phase when the step gives no `duration`.
const DEFAULT_LOAD_DURATION: Duration = Duration::from_secs(10);

/// Why `client: reqwest` takes no `ipFamily: IPv6`.
const REQWEST_IPV4_ONLY: &str =
    "the pooled `reqwest` client sends from the pod's IPv4 address only: no `ipFamily: IPv6` with `client: reqwest`";

impl Validator {
    /// An open-loop rate: `0` is closed loop (`None`), otherwise [`MIN_RATE`] to `max` per second; `default` when
    /// absent. Below [`MIN_RATE`] the interval between sends no longer fits a `Duration`.
    fn rate(&mut self, rate: &Option<Spanned<f64>>, max: f64, unit: &str, default: f64) -> Option<Option<f64>> {
        match rate {
            None => Some(Some(default)),
            Some(r) if r.value == 0.0 => Some(None),
            Some(r) if (MIN_RATE..=max).contains(&r.value) => Some(Some(r.value)),
            Some(r) => {
                self.err(
                    &r.referenced,
                    format!("rate must be 0 (closed loop) or {MIN_RATE} to {max} {unit}/s, not {:?}", r.value),
                );
                None
            }
        }
    }

    /// `http://host[:port]/path` → parts.
    pub(super) fn url(&mut self, url: &SpannedStr) -> Option<(String, u16, String)> {
        let Some(rest) = url.value.strip_prefix("http://") else {
            self.err(&url.referenced, format!("url `{}` must start with http://", url.value));
            return None;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => {
                    self.err(&url.referenced, format!("url `{}` has a bad port `{p}`", url.value));
                    return None;
                }
            },
            None => (authority, 80),
        };
        if host.is_empty() {
            self.err(&url.referenced, format!("url `{}` has no host", url.value));
            return None;
        }
        Some((host.to_owned(), port, path.to_owned()))
    }

    pub(super) fn measure_http(&mut self, m: &RawMeasureHttp) -> Option<Assertion> {
        let from = self.namespace(&m.from)?;
        let (host, port, path) = self.url(&m.url)?;
        let client = self.choice(&m.client, HttpClient::Plain, "HTTP client", "plain or reqwest")?;
        let mode = match (m.mode.as_ref().map(|s| (s.value.as_str(), s.referenced)), client) {
            (None, HttpClient::Reqwest) => crate::probe::load::ConnectionMode::Reqwest,
            (Some((_, loc)), HttpClient::Reqwest) => {
                self.err(&loc, "`client: reqwest` opens and reuses connections as its pool does: no `mode` with it");
                return None;
            }
            (None | Some(("new-connection", _)), _) => crate::probe::load::ConnectionMode::NewConnection,
            (Some(("keep-alive", _)), _) => crate::probe::load::ConnectionMode::KeepAlive,
            (Some((other, loc)), _) => {
                self.err(&loc, format!("mode must be `new-connection` or `keep-alive`, not `{other}`"));
                return None;
            }
        };
        let backends = match &m.backends {
            Some(s) => Some(self.pod_set(&from, &s.referenced, &s.value)?),
            None => None,
        };
        let fair_alpha = match &m.fair {
            Some(f) if !(f.alpha.value > 0.0 && f.alpha.value < 0.5) => {
                self.err(&f.alpha.referenced, "fair.alpha must be between 0 and 0.5 (e.g. 0.001)");
                return None;
            }
            Some(f) if backends.is_none() => {
                self.err(&f.alpha.referenced, "`fair` needs `backends`: the pods the spread is measured over");
                return None;
            }
            Some(f) if mode != crate::probe::load::ConnectionMode::NewConnection => {
                self.err(
                    &f.alpha.referenced,
                    "kept connections (keep-alive, a reqwest pool) pin their requests to one backend each: measure \
                     fairness per new connection",
                );
                return None;
            }
            Some(f) => Some(f.alpha.value),
            None => None,
        };
        let rate = self.rate(&m.rate, MAX_HTTP_RATE, "requests", 500.0)?;
        let requests = m.requests.unwrap_or(1000);
        let connections = m.connections.unwrap_or(8);
        if requests == 0 || requests > 10_000_000 || connections == 0 || connections > 10_000 {
            self.err(&m.url.referenced, "requests must be 1-10000000 and connections 1-10000");
            return None;
        }
        let duration = match &m.duration {
            Some(d) => self.duration_of("duration", d)?,
            None => DEFAULT_LOAD_DURATION,
        };
        let p99_below = match &m.p99_below {
            Some(d) => Some(self.duration_of("p99Below", d)?),
            None => None,
        };
        let max_error_rate = m.max_error_rate.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&max_error_rate) {
            self.err(&m.url.referenced, "maxErrorRate must be between 0 and 1");
            return None;
        }
        let ip_family = self.ip_family(&m.ip_family)?;
        if ip_family == Some(IpFamily::IPv6) && client == HttpClient::Reqwest {
            self.err(&m.url.referenced, REQWEST_IPV4_ONLY);
            return None;
        }
        let timeout = self.timeout(&m.timeout).max(duration + Duration::from_secs(5));
        Some(Assertion {
            timeout,
            check: Check::MeasureHttp(MeasureHttp {
                from,
                host,
                port,
                path,
                mode,
                connections,
                rate,
                requests,
                duration,
                backends,
                fair_alpha,
                p99_below,
                max_error_rate,
                ip_family,
            }),
        })
    }

    pub(super) fn measure_dns(&mut self, at: &Location, m: &RawMeasureDns) -> Option<Assertion> {
        let from = self.namespace(&m.from)?;
        if m.names.is_empty() {
            self.err(at, "measureDns needs at least one name");
            return None;
        }
        let mut names = Vec::new();
        for n in &m.names {
            let name = n.value.trim();
            if name.is_empty() || name.len() > 253 || name.split('.').any(|l| l.len() > 63) {
                self.err(&n.referenced, format!("`{}` is not a valid DNS name", n.value));
                return None;
            }
            names.push(if name.ends_with('.') { name.to_owned() } else { format!("{name}.") });
        }
        let rate = self.rate(&m.rate, MAX_DNS_RATE, "queries", 2000.0)?;
        let queries = match &m.queries {
            Some(q) if q.value == 0 || q.value > MAX_DNS_QUERIES => {
                self.err(&q.referenced, format!("queries must be 1-{MAX_DNS_QUERIES}"));
                return None;
            }
            Some(q) => q.value,
            None => 5000,
        };
        let duration = match &m.duration {
            Some(d) => self.duration_of("duration", d)?,
            None => DEFAULT_LOAD_DURATION,
        };
        let rcode = match &m.rcode {
            None => Rcode::NoError,
            Some(r) => match enum_from_str::<Rcode>(&r.value) {
                Some(Rcode::NoData) | None => {
                    self.err(
                        &r.referenced,
                        format!("rcode must be NOERROR, NXDOMAIN, SERVFAIL or REFUSED, not `{}`", r.value),
                    );
                    return None;
                }
                Some(c) => c,
            },
        };
        let p99_below = match &m.p99_below {
            Some(d) => Some(self.duration_of("p99Below", d)?),
            None => None,
        };
        let max_timeout_rate = m.max_timeout_rate.unwrap_or(0.0);
        let source_ports = m.source_ports.unwrap_or(128);
        if !(0.0..=1.0).contains(&max_timeout_rate) || source_ports == 0 || source_ports > 4096 {
            self.err(at, "maxTimeoutRate must be between 0 and 1, sourcePorts 1-4096");
            return None;
        }
        // Sending is bounded by `duration`, then stragglers get the 2 s query timeout.
        let timeout = self.timeout(&m.timeout).max(duration + Duration::from_secs(5));
        Some(Assertion {
            timeout,
            check: Check::MeasureDns(MeasureDns {
                from,
                names,
                rate,
                queries,
                duration,
                source_ports,
                rcode,
                p99_below,
                max_timeout_rate,
            }),
        })
    }

    pub(super) fn expect_http(&mut self, e: &RawExpectHttp) -> Option<Assertion> {
        let from = self.client(&e.from, true)?;
        let (host, port, path) = self.url(&e.url)?;
        let via = self.via(&e.via, &from, &host)?;
        // Pod sets are named in the client's namespace, or for a node client in the namespace of the Service it dials.
        let pods_ns = match (&via, from.namespace_name()) {
            (_, Some(ns)) => ns.to_owned(),
            (Via::ClusterIp { service } | Via::NodePort { service, .. }, None) => service.namespace.clone(),
            (Via::Dns, None) => "default".to_owned(),
        };
        let pod_set = |v: &mut Self, s: &Option<Spanned<RawPodSet>>| match s {
            Some(s) => v.pod_set(&pods_ns, &s.referenced, &s.value).map(Some),
            None => Some(None),
        };
        let client = self.choice(&e.client, HttpClient::Plain, "HTTP client", "plain or reqwest")?;
        if client == HttpClient::Reqwest && matches!(from, Client::Pod { .. }) {
            self.err(
                &e.from.referenced,
                "a backend pod dials with netexec's /dial: `client: reqwest` runs in a client pod",
            );
            return None;
        }
        let answered_by = pod_set(self, &e.answered_by)?;
        let reaches_all = pod_set(self, &e.reaches_all)?;
        let reaches_only = pod_set(self, &e.reaches_only)?;
        let source_ip = match &e.source_ip {
            Some(s) => Some(self.choice(&Some(s.clone()), SourceIp::Preserved, "sourceIP", "preserved or node")?),
            None => None,
        };
        if matches!(from, Client::Pod { .. })
            && (answered_by.is_some() || reaches_all.is_some() || reaches_only.is_some() || e.same_backend)
            && path != "/hostname"
        {
            // netexec's /dial returns one body per connection: the answering pod is known only from /hostname.
            self.err(
                &e.url.referenced,
                "from a backend pod, which pod answered is known only for the path `/hostname`",
            );
            return None;
        }
        if matches!(from, Client::Pod { .. }) && e.status.is_some_and(|s| s != 200) {
            self.err(&e.url.referenced, "from a backend pod (netexec /dial) only status 200 can be checked");
            return None;
        }
        if source_ip.is_some() && path != "/clientip" {
            self.err(&e.url.referenced, "`sourceIP` reads netexec's `/clientip`: the url path must be `/clientip`");
            return None;
        }
        if let Some(n) = e.requests
            && (n == 0 || n > 100_000)
        {
            self.err(&e.url.referenced, "requests must be 1-100000");
            return None;
        }
        if let Some(status) = e.status
            && !(100..=599).contains(&status)
        {
            self.err(&e.url.referenced, format!("status {status} is not an HTTP status (100-599)"));
            return None;
        }
        let fair_alpha = match &e.fair {
            Some(f) if !(f.alpha.value > 0.0 && f.alpha.value < 0.5) => {
                self.err(&f.alpha.referenced, "fair.alpha must be between 0 and 0.5 (e.g. 0.001)");
                return None;
            }
            Some(_) if reaches_all.is_none() => {
                self.err(&e.url.referenced, "`fair` needs `reachesAll`: the pods the spread is measured over");
                return None;
            }
            Some(f) => Some(f.alpha.value),
            None => None,
        };
        let ip_family = self.ip_family(&e.ip_family)?;
        if ip_family == Some(IpFamily::IPv6) && client == HttpClient::Reqwest {
            self.err(&e.url.referenced, REQWEST_IPV4_ONLY);
            return None;
        }
        if ip_family == Some(IpFamily::IPv6) && source_ip == Some(SourceIp::Node) {
            self.err(
                &e.url.referenced,
                "`sourceIP: node` compares with the nodes' InternalIPs, which are IPv4: not with `ipFamily: IPv6`",
            );
            return None;
        }
        let node = if let Via::NodePort { node, .. } = &via { Some(*node) } else { None };
        self.node_port_family(&e.url.referenced, node, ip_family)?;
        let timeout = self.timeout(&e.timeout);
        Some(Assertion {
            timeout,
            check: Check::Http {
                from,
                host,
                port,
                path,
                via,
                status: e.status.unwrap_or(200),
                answered_by,
                reaches_all,
                reaches_only,
                requests: e.requests,
                same_backend: e.same_backend,
                fair_alpha,
                source_ip,
                client,
                ip_family,
            },
        })
    }
}
