//! The `hickory` resolver flavour: the real `hickory-resolver` crate doing the lookup — its own search and ndots
//! rules, its own hosts-file handling, its own retries — configured from the pod's resolv.conf as svcbench reads it
//! (nameservers, search list, ndots; other options are not carried over, and timeout and attempts are the probe's)
//! and from the pod's hosts file. A resolver is built per lookup, so there is no cache between probes. It reports
//! records but not the messages behind them, so its lookups carry no candidates, TTLs or sections.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hickory_resolver::{
    Hosts, Resolver,
    config::{ConnectionConfig, NameServerConfig, ResolveHosts},
    net::{DnsError, NetError, runtime::TokioRuntimeProvider},
    proto::{op::ResponseCode, rr::RecordType},
};

use super::{
    ProbeContext, ProbeError,
    dns::{DnsLookup, DnsRecord},
};
use crate::scenario::{Rcode, ResolverFlavour, Transport};

/// Resolves `name` with hickory-resolver as a workload in the pod of `ctx` would.
///
/// # Errors
/// The pod's resolv.conf cannot be used, or no nameserver answered.
pub async fn lookup(
    ctx: &ProbeContext,
    name: &str,
    rtype: RecordType,
    transport: Transport,
) -> Result<DnsLookup, ProbeError> {
    let (mut config, mut options) = hickory_resolver::system_conf::parse_resolv_conf(ctx.resolv_conf.render())
        .map_err(|e| ProbeError::Dns(format!("hickory-resolver cannot use the pod's resolv.conf: {e}")))?;
    // The nameservers as the pod reaches them (a translated port on the embedded target, the pod's own source).
    let servers: Vec<NameServerConfig> = config
        .name_servers()
        .iter()
        .map(|ns| {
            let real = ctx.dialer.resolve(SocketAddr::new(ns.ip, 53));
            let bind_addr =
                ctx.dialer.source().filter(|s| s.is_ipv4() == real.is_ipv4()).map(|s| SocketAddr::new(s, 0));
            let connection = |mut c: ConnectionConfig| {
                c.port = real.port();
                c.bind_addr = bind_addr;
                c
            };
            let connections = match transport {
                Transport::Udp => vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())],
                Transport::Tcp => vec![connection(ConnectionConfig::tcp())],
            };
            NameServerConfig::new(real.ip(), true, connections)
        })
        .collect();
    config = hickory_resolver::config::ResolverConfig::from_parts(
        config.domain().cloned(),
        config.search().to_vec(),
        servers,
    );
    options.timeout = ctx.timeout.max(Duration::from_millis(100));
    options.attempts = 2;
    options.use_hosts_file = ResolveHosts::Never;
    let builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default()).with_options(options);
    let mut resolver = builder.build().map_err(|e| ProbeError::Dns(format!("hickory-resolver cannot start: {e}")))?;
    let mut hosts = Hosts::default();
    hosts
        .read_hosts_conf(ctx.hosts.render().as_bytes())
        .map_err(|e| ProbeError::Dns(format!("hickory-resolver cannot read the pod's hosts file: {e}")))?;
    resolver.set_hosts(Arc::new(hosts));
    let done = |rcode, records| DnsLookup {
        flavour: ResolverFlavour::Hickory,
        name: name.to_owned(),
        tried: Vec::new(),
        rcode,
        records,
        from_hosts_file: false,
    };
    match resolver.lookup(name, rtype).await {
        Ok(lookup) => {
            let records: Vec<DnsRecord> = lookup.answers().iter().map(|r| DnsRecord::from_rdata(&r.data)).collect();
            Ok(done(Rcode::NoError, records))
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Ok(done(
            match none.response_code {
                ResponseCode::NXDomain => Rcode::NxDomain,
                ResponseCode::Refused => Rcode::Refused,
                ResponseCode::NoError => Rcode::NoData,
                _ => Rcode::ServFail,
            },
            Vec::new(),
        )),
        Err(e @ (NetError::NoConnections | NetError::Timeout)) => {
            Err(ProbeError::Dns(format!("hickory-resolver: no nameserver answered: {e}")))
        }
        Err(e) => {
            tracing::debug!(%name, error = %e, "hickory-resolver lookup failed");
            Ok(done(Rcode::ServFail, Vec::new()))
        }
    }
}
