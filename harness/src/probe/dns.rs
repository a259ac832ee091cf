//! DNS probe: real queries on the wire (UDP, TCP on truncation or on request) and the search algorithms of the
//! resolver libraries pods use, so a check can say exactly which names were tried and what each one answered.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_proto::{
    op::{Message, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ProbeContext, ProbeError};
use crate::scenario::{QueryType, Rcode, ResolverFlavour, Transport};

/// One record of an answer, in a form that compares and prints like dig's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum DnsRecord {
    /// IPv4 or IPv6 address (A / AAAA).
    Address {
        /// The address.
        ip: IpAddr,
    },
    /// Service locator.
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target name, lower-case, absolute.
        target: String,
    },
    /// Pointer (reverse lookup).
    Ptr {
        /// Target name.
        target: String,
    },
    /// Canonical name.
    Cname {
        /// Target name.
        target: String,
    },
    /// Text.
    Txt {
        /// The strings, joined.
        text: String,
    },
    /// Anything else, as presentation text.
    Other {
        /// `TYPE data`.
        text: String,
    },
}

impl std::fmt::Display for DnsRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsRecord::Address { ip: IpAddr::V4(ip) } => write!(f, "A {ip}"),
            DnsRecord::Address { ip: IpAddr::V6(ip) } => write!(f, "AAAA {ip}"),
            DnsRecord::Srv { priority, weight, port, target } => write!(f, "SRV {priority} {weight} {port} {target}"),
            DnsRecord::Ptr { target } => write!(f, "PTR {target}"),
            DnsRecord::Cname { target } => write!(f, "CNAME {target}"),
            DnsRecord::Txt { text } => write!(f, "TXT \"{text}\""),
            DnsRecord::Other { text } => f.write_str(text),
        }
    }
}

impl DnsRecord {
    pub(crate) fn from_rdata(data: &RData) -> Self {
        let name = |n: &Name| n.to_lowercase().to_ascii();
        match data {
            RData::A(a) => DnsRecord::Address { ip: IpAddr::V4(a.0) },
            RData::AAAA(a) => DnsRecord::Address { ip: IpAddr::V6(a.0) },
            RData::SRV(s) => {
                DnsRecord::Srv { priority: s.priority, weight: s.weight, port: s.port, target: name(&s.target) }
            }
            RData::PTR(p) => DnsRecord::Ptr { target: name(&p.0) },
            RData::CNAME(c) => DnsRecord::Cname { target: name(&c.0) },
            RData::TXT(t) => DnsRecord::Txt {
                text: t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>().join(""),
            },
            other => DnsRecord::Other { text: format!("{} {other}", other.record_type()) },
        }
    }
}

/// What one query on the wire returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// The name asked, absolute.
    pub name: String,
    /// NOERROR with answers, NODATA, NXDOMAIN, …
    pub rcode: Rcode,
    /// Records of the asked type (and CNAMEs) in the answer section.
    pub records: Vec<DnsRecord>,
    /// Whether the answer had the AA bit.
    pub authoritative: bool,
    /// Whether an SOA came in the authority section (negative answers must carry one).
    pub soa_in_authority: bool,
    /// TTLs of the answer records.
    pub ttls: Vec<u32>,
    /// Owner names of the answer records (lower case, absolute), in the order of `records`.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Owner name of the authority section's SOA, if any (lower case, absolute).
    #[serde(default)]
    pub soa_owner: Option<String>,
    /// Address records (A/AAAA) of the additional section.
    #[serde(default)]
    pub additional: Vec<DnsRecord>,
    /// Transport that produced the answer (`udp`, or `tcp` after truncation or on request).
    pub transport: Transport,
}

impl DnsAnswer {
    /// Answer records whose owner is neither the asked name nor the target of a CNAME in the answer (RFC 1034
    /// §4.3.2: an answer holds the asked name's records, or a CNAME chain from it), as `owner: record` lines.
    pub fn stray_owners(&self) -> Vec<String> {
        let asked = self.name.to_ascii_lowercase();
        let mut allowed = vec![if asked.ends_with('.') { asked } else { format!("{asked}.") }];
        allowed.extend(self.records.iter().filter_map(|r| match r {
            DnsRecord::Cname { target } => Some(target.to_ascii_lowercase()),
            _ => None,
        }));
        self.owners
            .iter()
            .zip(&self.records)
            .filter(|(owner, _)| !allowed.contains(&owner.to_ascii_lowercase()))
            .map(|(owner, record)| format!("{owner} {record}"))
            .collect()
    }
}

/// A full resolver lookup: every candidate tried, and the final outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLookup {
    /// The flavour whose algorithm was followed.
    pub flavour: ResolverFlavour,
    /// The name as given.
    pub name: String,
    /// Each candidate tried, in order, with its answer.
    pub tried: Vec<DnsAnswer>,
    /// The final outcome as the library reports it.
    pub rcode: Rcode,
    /// The final record set (empty unless `rcode` is NOERROR).
    pub records: Vec<DnsRecord>,
    /// The answer came from the pod's `/etc/hosts`, with no DNS query (`tried` is empty).
    #[serde(default)]
    pub from_hosts_file: bool,
}

/// Converts our query type to hickory's.
pub fn record_type(q: QueryType) -> RecordType {
    match q {
        QueryType::A => RecordType::A,
        QueryType::Aaaa => RecordType::AAAA,
        QueryType::Srv => RecordType::SRV,
        QueryType::Ptr => RecordType::PTR,
        QueryType::Txt => RecordType::TXT,
        QueryType::Cname => RecordType::CNAME,
        QueryType::Soa => RecordType::SOA,
    }
}

/// The names a resolver flavour tries for `name`, in order (all absolute, with trailing dot).
pub fn candidates(name: &str, search: &[String], ndots: u8, flavour: ResolverFlavour) -> Vec<String> {
    let abs = |n: &str| if n.ends_with('.') { n.to_owned() } else { format!("{n}.") };
    if name.ends_with('.') {
        return vec![name.to_owned()];
    }
    let searched = || search.iter().map(|d| abs(&format!("{name}.{}", d.trim_end_matches('.')))).collect::<Vec<_>>();
    let dots = name.matches('.').count();
    let enough_dots = dots >= usize::from(ndots);
    match flavour {
        // hickory-resolver builds its own list (it is not emulated): only the name as given is known.
        ResolverFlavour::Dig | ResolverFlavour::Hickory => vec![abs(name)],
        ResolverFlavour::Glibc => {
            let mut out = Vec::new();
            if enough_dots {
                out.push(abs(name));
                out.extend(searched());
            } else {
                out.extend(searched());
                out.push(abs(name));
            }
            out
        }
        ResolverFlavour::DigSearch | ResolverFlavour::Musl => {
            if enough_dots {
                vec![abs(name)]
            } else {
                let mut out = searched();
                out.push(abs(name));
                out
            }
        }
        // BusyBox ignores ndots: a dot-less name goes through every search domain (never as is), any dot means as is.
        ResolverFlavour::Busybox => {
            if dots == 0 && !search.is_empty() {
                searched()
            } else {
                vec![abs(name)]
            }
        }
    }
}

/// Whether the flavour moves on to the next candidate after this outcome.
fn continues(flavour: ResolverFlavour, rcode: Rcode) -> bool {
    match flavour {
        ResolverFlavour::Glibc => matches!(rcode, Rcode::NxDomain | Rcode::NoData | Rcode::ServFail),
        // musl moves on only after NXDOMAIN: NODATA ends the search, SERVFAIL ends it with EAI_AGAIN.
        ResolverFlavour::DigSearch | ResolverFlavour::Musl => rcode == Rcode::NxDomain,
        ResolverFlavour::Busybox => rcode != Rcode::NoError,
        ResolverFlavour::Dig | ResolverFlavour::Hickory => false,
    }
}

/// Resolves `name` as the flavour's library would from the pod described by `ctx`.
///
/// # Errors
/// The nameserver could not be reached at all (every attempt timed out or failed).
pub async fn lookup(
    ctx: &ProbeContext,
    name: &str,
    qtype: QueryType,
    flavour: ResolverFlavour,
    transport: Transport,
) -> Result<DnsLookup, ProbeError> {
    if flavour == ResolverFlavour::Hickory {
        return super::hickory::lookup(ctx, name, record_type(qtype), transport).await;
    }
    if let Some(found) = from_hosts_file(ctx, name, qtype, flavour) {
        return Ok(found);
    }
    let list = candidates(name, &ctx.resolv_conf.search, ctx.resolv_conf.ndots, flavour);
    let mut tried = Vec::new();
    for candidate in list {
        let answer = query(ctx, &candidate, record_type(qtype), transport).await?;
        let stop = !continues(flavour, answer.rcode);
        tried.push(answer);
        if stop {
            break;
        }
    }
    let last = tried.last().expect("at least one candidate");
    let rcode = if last.rcode == Rcode::NoError {
        Rcode::NoError
    } else if flavour == ResolverFlavour::Glibc {
        // glibc res_search reports NO_DATA if any candidate had the name, else TRY_AGAIN on SERVFAIL, else not found.
        if tried.iter().any(|a| a.rcode == Rcode::NoData) {
            Rcode::NoData
        } else if tried.iter().any(|a| a.rcode == Rcode::ServFail) {
            Rcode::ServFail
        } else {
            last.rcode
        }
    } else {
        last.rcode
    };
    let records = if rcode == Rcode::NoError { last.records.clone() } else { Vec::new() };
    Ok(DnsLookup { flavour, name: name.to_owned(), tried, rcode, records, from_hosts_file: false })
}

/// The libc flavours read `/etc/hosts` before DNS for address lookups (nsswitch `hosts: files dns`); a name found
/// there with an address of the asked family is answered without a query. dig, `dig +search` and BusyBox's
/// `nslookup` ask the nameserver only.
fn from_hosts_file(ctx: &ProbeContext, name: &str, qtype: QueryType, flavour: ResolverFlavour) -> Option<DnsLookup> {
    let how = match flavour {
        ResolverFlavour::Glibc => super::hosts::HostsMatch::CaseInsensitive,
        ResolverFlavour::Musl => super::hosts::HostsMatch::Exact,
        ResolverFlavour::Dig | ResolverFlavour::DigSearch | ResolverFlavour::Busybox | ResolverFlavour::Hickory => {
            return None;
        }
    };
    let v6 = match qtype {
        QueryType::A => false,
        QueryType::Aaaa => true,
        _ => return None,
    };
    let ips = ctx.hosts.lookup(name, v6, how);
    let answer = |rcode, records| DnsLookup {
        flavour,
        name: name.to_owned(),
        tried: Vec::new(),
        rcode,
        records,
        from_hosts_file: true,
    };
    if !ips.is_empty() {
        return Some(answer(Rcode::NoError, ips.into_iter().map(|ip| DnsRecord::Address { ip }).collect()));
    }
    // musl's name_from_hosts: a name the file has only with the other family is EAI_NONAME, and DNS is not asked;
    // glibc's `files` service says NOTFOUND and moves on to `dns`.
    (flavour == ResolverFlavour::Musl && ctx.hosts.names(name, how)).then(|| answer(Rcode::NxDomain, Vec::new()))
}

/// Sends one query for an absolute `name` to the first reachable nameserver and classifies the answer.
///
/// # Errors
/// No nameserver answered within the timeout, or the answer could not be parsed.
pub async fn query(
    ctx: &ProbeContext,
    name: &str,
    rtype: RecordType,
    transport: Transport,
) -> Result<DnsAnswer, ProbeError> {
    let qname = Name::from_ascii(name).map_err(|e| ProbeError::Dns(format!("bad name `{name}`: {e}")))?;
    let mut message = Message::query();
    message.metadata.id = rand::random();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(qname, rtype));
    let wire = message.to_vec().map_err(|e| ProbeError::Dns(e.to_string()))?;
    if ctx.resolv_conf.nameservers.is_empty() {
        return Err(ProbeError::NoNameserver);
    }
    let mut last_err = None;
    // Like the stub resolver: each nameserver in turn, two attempts each.
    for _attempt in 0..2 {
        for ns in &ctx.resolv_conf.nameservers {
            let server = SocketAddr::new(*ns, 53);
            let result = match transport {
                Transport::Udp => match exchange_udp(ctx, server, &wire, message.metadata.id).await {
                    Ok(reply) if reply.metadata.truncation => {
                        exchange_tcp(ctx, server, &wire).await.map(|r| (r, Transport::Tcp))
                    }
                    Ok(reply) => Ok((reply, Transport::Udp)),
                    Err(e) => Err(e),
                },
                Transport::Tcp => exchange_tcp(ctx, server, &wire).await.map(|r| (r, Transport::Tcp)),
            };
            match result {
                Ok((reply, used)) => return Ok(classify(name, rtype, &reply, used)),
                Err(e) => last_err = Some(e),
            }
        }
    }
    Err(last_err.unwrap_or(ProbeError::NoNameserver))
}

fn classify(name: &str, rtype: RecordType, reply: &Message, transport: Transport) -> DnsAnswer {
    let wanted = |t: RecordType| t == rtype || t == RecordType::CNAME;
    let answers: Vec<_> = reply.answers.iter().filter(|r| wanted(r.record_type())).collect();
    let records: Vec<DnsRecord> = answers.iter().map(|r| DnsRecord::from_rdata(&r.data)).collect();
    let has_type = answers.iter().any(|r| r.record_type() == rtype);
    let rcode = match reply.metadata.response_code {
        ResponseCode::NoError if has_type || (rtype == RecordType::CNAME && !records.is_empty()) => Rcode::NoError,
        ResponseCode::NoError if !records.is_empty() => Rcode::NoError,
        ResponseCode::NoError => Rcode::NoData,
        ResponseCode::NXDomain => Rcode::NxDomain,
        ResponseCode::Refused => Rcode::Refused,
        _ => Rcode::ServFail,
    };
    DnsAnswer {
        name: name.to_owned(),
        rcode,
        records,
        authoritative: reply.metadata.authoritative,
        soa_in_authority: reply.authorities.iter().any(|r| r.record_type() == RecordType::SOA),
        ttls: answers.iter().map(|r| r.ttl).collect(),
        owners: answers.iter().map(|r| r.name.to_ascii().to_ascii_lowercase()).collect(),
        soa_owner: reply
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.name.to_ascii().to_ascii_lowercase()),
        additional: reply
            .additionals
            .iter()
            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
            .map(|r| DnsRecord::from_rdata(&r.data))
            .collect(),
        transport,
    }
}

async fn exchange_udp(ctx: &ProbeContext, server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, ProbeError> {
    let io = |context: &str| {
        let context = format!("{context} {server}");
        move |source| ProbeError::Io { context, source }
    };
    let socket = ctx.dialer.connect_udp(server).await.map_err(io("udp connect"))?;
    socket.send(wire).await.map_err(io("udp send"))?;
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(r) => r.map_err(io("udp recv"))?,
            Err(_) => return Err(ProbeError::Io { context: format!("udp query {server}"), source: timed_out() }),
        };
        // Ignore stray datagrams: only our ID is our answer.
        if let Ok(msg) = Message::from_vec(&buf[..n])
            && msg.metadata.id == id
        {
            return Ok(msg);
        }
    }
}

async fn exchange_tcp(ctx: &ProbeContext, server: SocketAddr, wire: &[u8]) -> Result<Message, ProbeError> {
    let io = |context: &str| {
        let context = format!("{context} {server}");
        move |source| ProbeError::Io { context, source }
    };
    let work = async {
        let mut stream = ctx.dialer.connect_tcp(server).await.map_err(io("tcp connect"))?;
        let len = u16::try_from(wire.len()).map_err(|_| ProbeError::Dns("query too long".into()))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        stream.write_all(&framed).await.map_err(io("tcp send"))?;
        let reply_len = stream.read_u16().await.map_err(io("tcp recv"))?;
        let mut buf = vec![0u8; usize::from(reply_len)];
        stream.read_exact(&mut buf).await.map_err(io("tcp recv"))?;
        Message::from_vec(&buf).map_err(|e| ProbeError::Dns(format!("bad answer from {server}: {e}")))
    };
    tokio::time::timeout(ctx.timeout, work)
        .await
        .unwrap_or_else(|_| Err(ProbeError::Io { context: format!("tcp query {server}"), source: timed_out() }))
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")
}

/// Default per-query timeout for probes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> Vec<String> {
        vec!["test.svc.cluster.local".into(), "svc.cluster.local".into(), "cluster.local".into()]
    }

    #[test]
    fn glibc_short_name_tries_search_list_first() {
        assert_eq!(
            candidates("nginx", &search(), 5, ResolverFlavour::Glibc),
            ["nginx.test.svc.cluster.local.", "nginx.svc.cluster.local.", "nginx.cluster.local.", "nginx."]
        );
    }

    #[test]
    fn glibc_many_dots_tries_as_is_first() {
        assert_eq!(candidates("a.b.c.d.e.f", &search(), 5, ResolverFlavour::Glibc)[0], "a.b.c.d.e.f.");
        assert_eq!(candidates("a.b.c.d.e.f", &search(), 5, ResolverFlavour::Glibc).len(), 4);
    }

    #[test]
    fn absolute_names_are_only_tried_as_is() {
        for f in [ResolverFlavour::Glibc, ResolverFlavour::Dig, ResolverFlavour::DigSearch] {
            assert_eq!(candidates("nginx.test.svc.cluster.local.", &search(), 5, f), ["nginx.test.svc.cluster.local."]);
        }
    }

    #[test]
    fn dig_ignores_search_and_dig_search_follows_ndots() {
        assert_eq!(candidates("nginx", &search(), 5, ResolverFlavour::Dig), ["nginx."]);
        assert_eq!(candidates("nginx", &search(), 5, ResolverFlavour::DigSearch).len(), 4);
        assert_eq!(candidates("a.b.c.d.e.f", &search(), 5, ResolverFlavour::DigSearch), ["a.b.c.d.e.f."]);
    }

    #[test]
    fn musl_and_busybox_candidates() {
        assert_eq!(candidates("nginx", &search(), 5, ResolverFlavour::Musl).len(), 4);
        assert_eq!(candidates("a.b.c.d.e.f", &search(), 5, ResolverFlavour::Musl), ["a.b.c.d.e.f."]);
        assert_eq!(
            candidates("nginx", &search(), 5, ResolverFlavour::Busybox),
            ["nginx.test.svc.cluster.local.", "nginx.svc.cluster.local.", "nginx.cluster.local."]
        );
        assert_eq!(candidates("nginx.test", &search(), 5, ResolverFlavour::Busybox), ["nginx.test."]);
        assert!(!continues(ResolverFlavour::Musl, Rcode::NoData));
        assert!(!continues(ResolverFlavour::Musl, Rcode::ServFail));
        assert!(continues(ResolverFlavour::Busybox, Rcode::NoData));
    }

    #[test]
    fn stop_rules() {
        assert!(continues(ResolverFlavour::Glibc, Rcode::NoData));
        assert!(!continues(ResolverFlavour::DigSearch, Rcode::NoData));
        assert!(continues(ResolverFlavour::DigSearch, Rcode::NxDomain));
        assert!(!continues(ResolverFlavour::Dig, Rcode::NxDomain));
        assert!(!continues(ResolverFlavour::Glibc, Rcode::NoError));
    }
}
