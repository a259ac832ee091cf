//! What the agent refuses before running a probe: bodies that are not probe requests (400) and specs over its limits
//! (422) — load runs that cannot finish within the per-probe time cap, out-of-range sizes and rates, and batches
//! that are empty, too large or hold probes that are not single-shot.

use std::time::Duration;

use crate::probe::{ProbeRequest, batch, schedule::MIN_RATE};

/// Most keep-alive connections a load probe may hold (the scenario validator's limit).
pub const MAX_LOAD_CONNECTIONS: u32 = 10_000;
/// Most UDP source ports a DNS load probe may open (the scenario validator's limit).
pub const MAX_DNS_SOURCE_PORTS: usize = 4096;
/// Most DNS queries a DNS load probe may keep in flight.
pub const MAX_DNS_OUTSTANDING: usize = 65_536;
/// Highest open-loop HTTP load rate, requests/s (the scenario validator's limit).
pub const MAX_LOAD_RATE: f64 = 1_000_000.0;
/// Highest open-loop DNS load rate, queries/s (the scenario validator's limit).
pub const MAX_DNS_RATE: f64 = 10_000_000.0;
/// Longest UDP probe datagram (netexec reads 2 KiB; this keeps every payload well inside one packet).
pub const MAX_UDP_PAYLOAD: usize = 512;

/// Refuses probe requests the agent will not run: load runs that cannot finish within `max_time`, out-of-range
/// sizes, rates outside what a generator can schedule ([`MIN_RATE`] up to the maximum), and request lines that would
/// inject headers.
///
/// # Errors
/// Why the request is refused, for the caller.
pub fn check_limits(request: &ProbeRequest, max_time: Duration) -> Result<(), String> {
    let rate_ok = |rate: Option<f64>, max: f64| rate.is_none_or(|r| (MIN_RATE..=max).contains(&r));
    let fits = |duration: Duration, timeout: Duration, what: &str| {
        let worst = duration.saturating_add(timeout);
        if worst > max_time {
            Err(format!(
                "{what} duration {duration:?} plus timeout {timeout:?} exceeds the agent's {max_time:?} cap per probe"
            ))
        } else {
            Ok(())
        }
    };
    // Below the monitor's 1 ms timer every wake-up is late; above a minute nothing is.
    let tolerance_ok = |t: Duration| {
        if (Duration::from_millis(1)..=Duration::from_secs(60)).contains(&t) {
            Ok(())
        } else {
            Err(format!("client_tolerance must be 1 ms to 60 s, not {t:?}"))
        }
    };
    match request {
        ProbeRequest::Load(spec) => {
            fits(spec.duration, spec.timeout, "load")?;
            tolerance_ok(spec.client_tolerance)?;
            if !rate_ok(spec.rate, MAX_LOAD_RATE) {
                return Err(format!(
                    "load rate must be {MIN_RATE}-{MAX_LOAD_RATE} requests/s, or null for closed loop"
                ));
            }
            if spec.connections == 0 || spec.connections > MAX_LOAD_CONNECTIONS {
                return Err(format!("load connections must be 1-{MAX_LOAD_CONNECTIONS}"));
            }
            // The load generator writes host and path into the request line and Host header verbatim.
            let clean = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace());
            if !clean(&spec.host) || !spec.path.starts_with('/') || !clean(&spec.path) {
                return Err("load host must be non-empty and path must start with `/`, both without spaces or \
                            control characters"
                    .into());
            }
            Ok(())
        }
        ProbeRequest::DnsLoad(spec) => {
            fits(spec.duration, spec.timeout, "DNS load")?;
            tolerance_ok(spec.client_tolerance)?;
            if !rate_ok(spec.rate, MAX_DNS_RATE) {
                return Err(format!(
                    "DNS load rate must be {MIN_RATE}-{MAX_DNS_RATE} queries/s, or null for closed loop"
                ));
            }
            if spec.source_ports == 0 || spec.source_ports > MAX_DNS_SOURCE_PORTS {
                return Err(format!("DNS load source_ports must be 1-{MAX_DNS_SOURCE_PORTS}"));
            }
            if spec.max_outstanding == 0 || spec.max_outstanding > MAX_DNS_OUTSTANDING {
                return Err(format!("DNS load max_outstanding must be 1-{MAX_DNS_OUTSTANDING}"));
            }
            if spec.names.is_empty() {
                return Err("DNS load needs at least one name".into());
            }
            Ok(())
        }
        ProbeRequest::Batch(spec) => batch::check(spec),
        ProbeRequest::Udp { payload, flow, .. } => {
            if payload.len() > MAX_UDP_PAYLOAD {
                return Err(format!("UDP payload must be at most {MAX_UDP_PAYLOAD} bytes"));
            }
            if flow.as_ref().is_some_and(|f| f.is_empty() || f.len() > 63) {
                return Err("UDP flow name must be 1-63 characters".into());
            }
            Ok(())
        }
        ProbeRequest::ResolvConf
        | ProbeRequest::Dns { .. }
        | ProbeRequest::Http { .. }
        | ProbeRequest::Connect { .. } => Ok(()),
    }
}

/// Parses a `POST /probe` body.
///
/// # Errors
/// A message for the caller that says whether the JSON itself is broken or it is not a probe request.
pub fn parse_request(body: &[u8]) -> Result<ProbeRequest, String> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        // serde lists the probe names itself for an unknown one; a missing tag needs the hint.
        serde_json::error::Category::Data if e.to_string().contains("missing field `probe`") => format!(
            "not a probe request: {e}; expected {{\"probe\": \"resolv_conf\" | \"dns\" | \"http\" | \"connect\" | \
             \"load\" | \"dns_load\" | \"batch\", ...}}"
        ),
        serde_json::error::Category::Data => format!("not a probe request: {e}"),
        _ => format!("malformed JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::MAX_PROBE_TIME;
    use crate::probe::{
        dnsload::DnsLoadSpec,
        load::{ConnectionMode, LoadSpec},
    };

    fn load() -> LoadSpec {
        LoadSpec {
            host: "nginx".into(),
            port: 80,
            path: "/hostname".into(),
            mode: ConnectionMode::NewConnection,
            connections: 8,
            rate: None,
            requests: 100,
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            family: None,
            client_tolerance: Duration::from_millis(50),
        }
    }

    fn dns_load() -> DnsLoadSpec {
        DnsLoadSpec {
            names: vec!["a.".into()],
            rate: Some(100.0),
            max_outstanding: 100,
            source_ports: 128,
            queries: 10,
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            client_tolerance: Duration::from_millis(50),
        }
    }

    #[test]
    fn limits_refuse_what_cannot_finish_or_would_overload() {
        let cap = MAX_PROBE_TIME;
        assert_eq!(check_limits(&ProbeRequest::Load(load()), cap), Ok(()));
        assert_eq!(check_limits(&ProbeRequest::DnsLoad(dns_load()), cap), Ok(()));
        let refused = |r: ProbeRequest| check_limits(&r, cap).unwrap_err();
        assert!(refused(ProbeRequest::Load(LoadSpec { duration: Duration::from_secs(119), ..load() })).contains("cap"));
        assert!(refused(ProbeRequest::Load(LoadSpec { rate: Some(0.0), ..load() })).contains("rate"));
        let tolerance = |t| ProbeRequest::Load(LoadSpec { client_tolerance: t, ..load() });
        assert!(refused(tolerance(Duration::ZERO)).contains("client_tolerance"));
        assert!(refused(tolerance(Duration::from_secs(61))).contains("client_tolerance"));
        let dns_tolerance = ProbeRequest::DnsLoad(DnsLoadSpec { client_tolerance: Duration::ZERO, ..dns_load() });
        assert!(refused(dns_tolerance).contains("client_tolerance"));
        assert!(refused(ProbeRequest::Load(LoadSpec { rate: Some(f64::NAN), ..load() })).contains("rate"));
        assert!(refused(ProbeRequest::Load(LoadSpec { rate: Some(1e-300), ..load() })).contains("0.001"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { rate: Some(1e-19), ..dns_load() })).contains("0.001"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { rate: Some(1e9), ..dns_load() })).contains("rate"));
        assert!(refused(ProbeRequest::Load(LoadSpec { connections: 0, ..load() })).contains("connections"));
        assert!(
            refused(ProbeRequest::Load(LoadSpec { path: "/x HTTP/1.1\r\nX: y".into(), ..load() })).contains("path")
        );
        assert!(refused(ProbeRequest::Load(LoadSpec { path: "hostname".into(), ..load() })).contains("path"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { duration: Duration::MAX, ..dns_load() })).contains("cap"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { source_ports: 5000, ..dns_load() })).contains("source"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { max_outstanding: 0, ..dns_load() })).contains("outst"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { names: vec![], ..dns_load() })).contains("name"));
        assert!(refused(ProbeRequest::DnsLoad(DnsLoadSpec { rate: Some(-1.0), ..dns_load() })).contains("rate"));
        let batch =
            |probes: Vec<ProbeRequest>, concurrency| ProbeRequest::Batch(batch::BatchSpec { concurrency, probes });
        let connect = ProbeRequest::Connect { address: "10.96.0.1:80".parse().unwrap() };
        assert_eq!(check_limits(&batch(vec![connect.clone()], 8), cap), Ok(()));
        assert!(refused(batch(vec![], 8)).contains("1-4096"));
        assert!(refused(batch(vec![connect.clone()], 1000)).contains("concurrency"));
        assert!(refused(batch(vec![connect, ProbeRequest::Load(load())], 8)).contains("only"));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(parse_request(br#"{"probe": "dns""#).unwrap_err().starts_with("malformed JSON"));
        assert!(parse_request(b"not json").unwrap_err().starts_with("malformed JSON"));
        let unknown = parse_request(br#"{"probe": "teleport"}"#).unwrap_err();
        assert!(unknown.starts_with("not a probe request") && unknown.contains("teleport"), "{unknown}");
        let untagged = parse_request(br#"{"name": "x"}"#).unwrap_err();
        assert!(untagged.contains("missing field `probe`") && untagged.contains("dns_load"), "{untagged}");
        let missing = parse_request(br#"{"probe": "dns", "name": "x"}"#).unwrap_err();
        assert!(missing.contains("query_type"), "{missing}");
        assert!(matches!(parse_request(br#"{"probe": "resolv_conf"}"#), Ok(ProbeRequest::ResolvConf)));
    }
}
