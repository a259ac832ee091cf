//! Cluster DNS: the Kubernetes DNS specification (schema 1.1.0) answered from the latest [`Snapshot`], served over
//! UDP and TCP by [`super::dns_server`]. [`answer`] is a pure function so the zone logic is testable without sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::{
    op::ResponseCode,
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, CNAME, NS, PTR, SOA, SRV, TXT},
    },
};

use super::{faults::Fault, state::Snapshot};
use crate::scenario::ObjectRef;

/// TTL of every record (kubeadm configures CoreDNS with 30 s).
pub const TTL: u32 = 30;

/// The zone's reply to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneAnswer {
    /// Response code.
    pub rcode: ResponseCode,
    /// Whether we are authoritative for the name.
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// SOA for the authority section (negative answers).
    pub soa: Option<Record>,
    /// Additional section: the addresses of in-zone SRV and NS targets, as CoreDNS adds them.
    pub additional: Vec<Record>,
}

struct Ctx<'a> {
    snap: &'a Snapshot,
    zone: Name,
    qname: &'a Name,
    qtype: RecordType,
    /// In-zone CNAMEs followed to get here.
    depth: u8,
}

/// Most in-zone ExternalName CNAMEs one answer follows (a loop of ExternalNames ends here): ten, as CoreDNS since
/// 1.12.1 (`maxCnameChainLength`; 1.12.0 stopped after seven, coredns/coredns#7125).
const MAX_CNAME_DEPTH: u8 = 10;

impl Ctx<'_> {
    fn ttl(&self) -> u32 {
        if self.snap.faults.has(Fault::DnsTtlZero) { 0 } else { TTL }
    }

    fn soa(&self) -> Record {
        let mname = Name::from_ascii("ns.dns").expect("static").append_domain(&self.zone).expect("short name");
        let rname = Name::from_ascii("hostmaster").expect("static").append_domain(&self.zone).expect("short name");
        let serial = u32::try_from(self.snap.generation % u64::from(u32::MAX)).unwrap_or_default();
        let ttl = self.ttl();
        Record::from_rdata(self.zone.clone(), ttl, RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, ttl)))
    }

    fn record(&self, data: RData) -> Record {
        Record::from_rdata(self.qname.clone(), self.ttl(), data)
    }

    fn name(&self, relative: &str) -> Name {
        Name::from_ascii(relative).and_then(|n| n.append_domain(&self.zone)).unwrap_or_else(|_| self.zone.clone())
    }

    fn nxdomain(&self) -> ZoneAnswer {
        ZoneAnswer {
            rcode: ResponseCode::NXDomain,
            authoritative: true,
            answers: Vec::new(),
            soa: Some(self.soa()),
            additional: Vec::new(),
        }
    }

    /// NOERROR: the records of the asked type, or NODATA with SOA when there are none.
    fn records(&self, all: Vec<Record>) -> ZoneAnswer {
        let answers: Vec<Record> =
            all.into_iter().filter(|r| r.record_type() == self.qtype || r.record_type() == RecordType::CNAME).collect();
        let soa = answers.is_empty().then(|| self.soa());
        ZoneAnswer { rcode: ResponseCode::NoError, authoritative: true, answers, soa, additional: Vec::new() }
    }
}

/// Answers `qname`/`qtype` from the cluster state, the way CoreDNS's `kubernetes` plugin does (with any seeded
/// DNS faults applied).
pub fn answer(snap: &Snapshot, qname: &Name, qtype: RecordType) -> ZoneAnswer {
    let faults = &snap.faults;
    let mut result = if faults.has(Fault::DnsCaseSensitive) && qname.to_ascii().chars().any(|c| c.is_ascii_uppercase())
    {
        let zone = Name::from_ascii(format!("{}.", snap.cluster_domain)).unwrap_or_else(|_| Name::root());
        Ctx { snap, zone, qname, qtype, depth: 0 }.nxdomain()
    } else {
        correct_answer(snap, qname, qtype)
    };
    if faults.has(Fault::DnsNxdomainNodataSwapped) && result.authoritative {
        match result.rcode {
            ResponseCode::NXDomain => result.rcode = ResponseCode::NoError,
            ResponseCode::NoError if result.answers.is_empty() => result.rcode = ResponseCode::NXDomain,
            _ => {}
        }
    }
    if faults.has(Fault::DnsNegativeWithoutSoa) {
        result.soa = None;
    }
    result
}

/// The root zone's SOA, as an upstream resolver returns it with NXDOMAIN for an unknown TLD.
fn root_soa() -> Record {
    let mname = Name::from_ascii("a.root-servers.net.").expect("static");
    let rname = Name::from_ascii("nstld.verisign-grs.com.").expect("static");
    Record::from_rdata(Name::root(), 86400, RData::SOA(SOA::new(mname, rname, 1, 1800, 900, 604_800, 86400)))
}

fn correct_answer(snap: &Snapshot, qname: &Name, qtype: RecordType) -> ZoneAnswer {
    answer_at(snap, qname, qtype, 0)
}

fn answer_at(snap: &Snapshot, qname: &Name, qtype: RecordType, depth: u8) -> ZoneAnswer {
    let lower = qname.to_lowercase();
    let canonical = Name::from_ascii(format!("{}.", snap.cluster_domain)).unwrap_or_else(|_| Name::root());
    // The zone as the question spells it, so the SOA's owner echoes the question's case.
    let zone = if canonical.zone_of(&lower) { qname.trim_to(usize::from(canonical.num_labels())) } else { canonical };
    let ctx = Ctx { snap, zone: zone.clone(), qname, qtype, depth };
    let labels: Vec<String> = lower.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    if let Some(ip) = reverse_address(&labels) {
        return reverse(&ctx, ip);
    }
    if !zone.zone_of(&lower) {
        // No upstream: outside the cluster zone there is nothing, as the root says of an unknown TLD.
        return ZoneAnswer {
            rcode: ResponseCode::NXDomain,
            authoritative: false,
            answers: Vec::new(),
            soa: Some(root_soa()),
            additional: Vec::new(),
        };
    }
    let rel = &labels[..labels.len() - usize::from(zone.num_labels())];
    let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
    match rel.as_slice() {
        [] => {
            let ns = Record::from_rdata(zone.clone(), ctx.ttl(), RData::NS(NS(ctx.name("ns.dns"))));
            let mut result = ctx.records(vec![ctx.soa(), ns]);
            result.additional = target_addresses(&ctx, &result.answers);
            result
        }
        ["dns-version"] => ctx.records(vec![ctx.record(RData::TXT(TXT::new(vec!["1.1.0".into()])))]),
        // The apex NS target: the cluster DNS address, as CoreDNS answers with kube-dns's ClusterIP.
        ["ns", "dns"] => ctx.records(snap.dns_ip.map(|ip| ctx.record(address(IpAddr::V4(ip)))).into_iter().collect()),
        ["svc"] => ctx.records(Vec::new()),
        [ns, "svc"] => {
            if snap.namespaces.contains(*ns) {
                ctx.records(Vec::new())
            } else {
                ctx.nxdomain()
            }
        }
        [svc, ns, "svc"] => service(&ctx, &ObjectRef { namespace: (*ns).into(), name: (*svc).into() }),
        [host, svc, ns, "svc"] => endpoint(&ctx, &ObjectRef { namespace: (*ns).into(), name: (*svc).into() }, host),
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            srv(&ctx, &ObjectRef { namespace: (*ns).into(), name: (*svc).into() }, Some((&port[1..], &proto[1..])))
        }
        _ => ctx.nxdomain(),
    }
}

/// The address a full `in-addr.arpa` (4 octets) or `ip6.arpa` (32 nibbles) name stands for.
fn reverse_address(labels: &[String]) -> Option<IpAddr> {
    match labels {
        [d, c, b, a, inaddr, arpa] if inaddr == "in-addr" && arpa == "arpa" => {
            Some(IpAddr::V4(Ipv4Addr::new(a.parse().ok()?, b.parse().ok()?, c.parse().ok()?, d.parse().ok()?)))
        }
        [nibbles @ .., ip6, arpa] if ip6 == "ip6" && arpa == "arpa" && nibbles.len() == 32 => {
            let mut value: u128 = 0;
            // Least significant nibble first.
            for nibble in nibbles.iter().rev() {
                let digit = match nibble.as_bytes() {
                    [c] => char::from(*c).to_digit(16)?,
                    _ => return None,
                };
                value = value << 4 | u128::from(digit);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

/// The headless endpoints DNS publishes for a service: ready ones, one per address.
fn dns_endpoints(snap: &Snapshot, key: &ObjectRef) -> Vec<(IpAddr, String)> {
    let all = snap.faults.has(Fault::DnsServesNotReady);
    let mut out: Vec<(IpAddr, String)> = Vec::new();
    for slice in snap.slices.get(key).into_iter().flat_map(|v| v.iter()) {
        for ep in slice.endpoints.iter().filter(|e| e.ready || all) {
            if !out.iter().any(|(ip, _)| *ip == ep.address) {
                let host = ep.hostname.clone().unwrap_or_else(|| address_label(ep.address));
                out.push((ep.address, host));
            }
        }
    }
    out
}

/// The name of an endpoint without a hostname: its address with dashes, which must still be a DNS label — an IPv6
/// address that starts or ends in `::` gets a `0` there (`fd00:10:244:1::` → `fd00-10-244-1--0`), as CoreDNS names
/// it since 1.12.3.
fn address_label(ip: IpAddr) -> String {
    let mut label = ip.to_string().replace(['.', ':'], "-");
    if label.ends_with('-') {
        label.push('0');
    }
    if label.starts_with('-') {
        label.insert(0, '0');
    }
    label
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(hickory_server::proto::rr::rdata::AAAA(v6)),
    }
}

fn service(ctx: &Ctx<'_>, key: &ObjectRef) -> ZoneAnswer {
    let Some(svc) = ctx.snap.services.get(key) else { return ctx.nxdomain() };
    if let Some(external) = &svc.external_name {
        if ctx.snap.faults.has(Fault::DnsExternalNameMissing) {
            return ctx.nxdomain();
        }
        let target = Name::from_ascii(format!("{external}.")).unwrap_or_else(|_| Name::root());
        let cname = ctx.record(RData::CNAME(CNAME(target.clone())));
        // A CNAME answers every type. A target outside the zone is the resolver's to follow; one inside it is
        // answered here too, as CoreDNS does (a client then gets the address in one answer).
        if !ctx.zone.zone_of(&target.to_lowercase()) || ctx.depth >= MAX_CNAME_DEPTH || target == *ctx.qname {
            return ZoneAnswer {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: vec![cname],
                soa: None,
                additional: Vec::new(),
            };
        }
        let mut chased = answer_at(ctx.snap, &target, ctx.qtype, ctx.depth + 1);
        chased.answers.insert(0, cname);
        return chased;
    }
    if let (Some(vip), true) = (svc.shadow_vip, ctx.snap.faults.has(Fault::DnsHeadlessAnswersVip)) {
        return ctx.records(vec![ctx.record(address(vip))]);
    }
    match svc.cluster_ips.first() {
        Some(_) => {
            // One A or AAAA per ClusterIP: a dual-stack Service answers both types, a single-stack one NODATA for
            // the other family.
            let mut all: Vec<Record> = svc.cluster_ips.iter().map(|ip| ctx.record(address(*ip))).collect();
            // SRV at the service name lists every named port; with none, the name exists but has no SRV (NODATA).
            if ctx.qtype == RecordType::SRV && svc.ports.iter().any(|p| p.name.is_some()) {
                return srv(ctx, key, None);
            }
            all.retain(|r| r.record_type() == ctx.qtype);
            ctx.records(all)
        }
        None => {
            let eps = dns_endpoints(ctx.snap, key);
            if eps.is_empty() {
                return ctx.nxdomain();
            }
            if ctx.qtype == RecordType::SRV && svc.ports.iter().any(|p| p.name.is_some()) {
                return srv(ctx, key, None);
            }
            ctx.records(eps.into_iter().map(|(ip, _)| ctx.record(address(ip))).collect())
        }
    }
}

fn endpoint(ctx: &Ctx<'_>, key: &ObjectRef, host: &str) -> ZoneAnswer {
    let Some(svc) = ctx.snap.services.get(key) else { return ctx.nxdomain() };
    if svc.headless() {
        // Every endpoint with this hostname: pods may share one (the spec asks for one A per address).
        let ips: Vec<Record> = dns_endpoints(ctx.snap, key)
            .into_iter()
            .filter(|(_, h)| h.eq_ignore_ascii_case(host))
            .map(|(ip, _)| ctx.record(address(ip)))
            .take(if ctx.snap.faults.has(Fault::DnsOneRecordPerHostname) { 1 } else { usize::MAX })
            .collect();
        if !ips.is_empty() {
            return ctx.records(ips);
        }
    }
    // `_tcp.<svc>...` is an empty non-terminal when the service has a named port of that protocol.
    if let Some(proto) = host.strip_prefix('_')
        && svc.ports.iter().any(|p| p.name.is_some() && p.protocol.label() == proto)
    {
        return ctx.records(Vec::new());
    }
    ctx.nxdomain()
}

/// SRV records of named ports; `filter` restricts to one `_port._proto`.
fn srv(ctx: &Ctx<'_>, key: &ObjectRef, filter: Option<(&str, &str)>) -> ZoneAnswer {
    let Some(svc) = ctx.snap.services.get(key) else { return ctx.nxdomain() };
    let ports: Vec<_> = svc
        .ports
        .iter()
        .filter(|p| p.name.is_some())
        .filter(|p| filter.is_none_or(|(name, proto)| p.name.as_deref() == Some(name) && p.protocol.label() == proto))
        .collect();
    if ports.is_empty() {
        return ctx.nxdomain();
    }
    let svc_name = ctx.name(&format!("{}.{}.svc", key.name, key.namespace));
    let mut records = Vec::new();
    match svc.cluster_ips.first() {
        Some(_) => {
            let weight = 100 / u16::try_from(ports.len()).unwrap_or(u16::MAX).max(1);
            for p in &ports {
                let mut port = p.port;
                if ctx.snap.faults.has(Fault::DnsSrvUsesTargetPort) {
                    let slices = ctx.snap.slices.get(key).into_iter().flat_map(|v| v.iter());
                    port = slices.flat_map(|s| &s.ports).find(|sp| sp.name == p.name).map_or(port, |sp| sp.port);
                }
                // The owner is the name asked, `_port._proto.<svc>` or the bare service name (RFC 1034 §4.3.2).
                let mut record = ctx.record(RData::SRV(SRV::new(0, weight.max(1), port, svc_name.clone())));
                if filter.is_none() && ctx.snap.faults.has(Fault::DnsSrvOwnerIsPortName) {
                    let name = p.name.as_deref().unwrap_or_default();
                    record.name =
                        ctx.name(&format!("_{name}._{}.{}.{}.svc", p.protocol.label(), key.name, key.namespace));
                }
                records.push(record);
            }
        }
        None => {
            let eps = dns_endpoints(ctx.snap, key);
            if eps.is_empty() {
                return ctx.nxdomain();
            }
            let n = u16::try_from(eps.len() * ports.len()).unwrap_or(u16::MAX).max(1);
            for p in &ports {
                // Headless SRV carries the endpoint port (the resolved targetPort) of each endpoint.
                for slice in ctx.snap.slices.get(key).into_iter().flat_map(|v| v.iter()) {
                    let Some(ep_port) = slice.ports.iter().find(|sp| sp.name == p.name && sp.protocol == p.protocol)
                    else {
                        continue;
                    };
                    for ep in slice.endpoints.iter().filter(|e| e.ready) {
                        let host =
                            eps.iter().find(|(ip, _)| *ip == ep.address).map(|(_, h)| h.clone()).unwrap_or_default();
                        let target = ctx.name(&format!("{host}.{}.{}.svc", key.name, key.namespace));
                        let record = ctx.record(RData::SRV(SRV::new(0, (100 / n).max(1), ep_port.port, target)));
                        // Endpoints sharing a hostname give identical records: an RRset holds each once (RFC 2181 §5).
                        if !records.contains(&record) {
                            records.push(record);
                        }
                    }
                }
            }
        }
    }
    if ctx.qtype != RecordType::SRV {
        return ctx.records(Vec::new());
    }
    let additional = target_addresses(ctx, &records);
    ZoneAnswer { rcode: ResponseCode::NoError, authoritative: true, answers: records, soa: None, additional }
}

/// The A and AAAA records of the in-zone targets of `records` (SRV and NS), for the additional section.
fn target_addresses(ctx: &Ctx<'_>, records: &[Record]) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for record in records {
        let target = match &record.data {
            RData::SRV(srv) => srv.target.clone(),
            RData::NS(ns) => ns.0.clone(),
            _ => continue,
        };
        for qtype in [RecordType::A, RecordType::AAAA] {
            let found = answer_at(ctx.snap, &target, qtype, MAX_CNAME_DEPTH);
            for a in found.answers.into_iter().filter(|r| r.record_type() == qtype) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn reverse(ctx: &Ctx<'_>, ip: IpAddr) -> ZoneAnswer {
    let mut targets = Vec::new();
    let owners = ctx.snap.ip_owners.get(&ip);
    for (key, svc) in owners.into_iter().flatten().filter_map(|k| ctx.snap.services.get_key_value(k)) {
        if svc.cluster_ips.contains(&ip) {
            targets.push(ctx.name(&format!("{}.{}.svc", key.name, key.namespace)));
        } else if svc.headless()
            && let Some((_, host)) = dns_endpoints(ctx.snap, key).into_iter().find(|(a, _)| *a == ip)
        {
            targets.push(ctx.name(&format!("{host}.{}.{}.svc", key.name, key.namespace)));
        }
    }
    if targets.is_empty() {
        return ctx.nxdomain();
    }
    ctx.records(targets.into_iter().map(|t| ctx.record(RData::PTR(PTR(t)))).collect())
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
