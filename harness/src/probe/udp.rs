//! UDP probe: one datagram to an address and the reply, or how it failed — refused (ICMP port unreachable, what
//! kube-proxy's REJECT sends for UDP) or unanswered. A probe may run on a *kept flow*: the same socket, so the same
//! 5-tuple and the same conntrack entry, across probes, as a long-lived UDP client (a resolver, a QUIC or game
//! client) looks to the proxy.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use super::ProbeContext;
use crate::scenario::UdpOutcome;

/// Most flows one probe context keeps; the least recently used goes first.
pub const MAX_FLOWS: usize = 256;

/// Largest datagram read back (netexec's answers are short).
const MAX_REPLY: usize = 4096;

/// A kept flow's socket and when it was last used.
type KeptFlow = (Arc<UdpSocket>, Instant);

/// The sockets of kept flows, by flow name and address.
#[derive(Debug, Default)]
pub struct UdpFlows {
    flows: Mutex<HashMap<(String, SocketAddr), KeptFlow>>,
}

impl UdpFlows {
    /// No flows yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The socket of flow `name` to `address`, opened with `open` the first time.
    async fn socket(
        &self,
        name: &str,
        address: SocketAddr,
        open: impl Future<Output = std::io::Result<UdpSocket>>,
    ) -> std::io::Result<Arc<UdpSocket>> {
        let key = (name.to_owned(), address);
        if let Some((socket, used)) = self.flows.lock().expect("flows lock").get_mut(&key) {
            *used = Instant::now();
            return Ok(socket.clone());
        }
        let socket = Arc::new(open.await?);
        let mut flows = self.flows.lock().expect("flows lock");
        if flows.len() >= MAX_FLOWS
            && let Some(oldest) = flows.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            flows.remove(&oldest);
        }
        Ok(flows.entry(key).or_insert((socket, Instant::now())).0.clone())
    }
}

/// What one UDP exchange observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpResult {
    /// The address sent to (before any translation).
    pub address: SocketAddr,
    /// The local address the datagram left from (the flow's source port).
    pub local: Option<SocketAddr>,
    /// Answered, refused or unanswered; `None` for other errors.
    pub outcome: Option<UdpOutcome>,
    /// The reply's text.
    pub reply: Option<String>,
    /// The OS error text, if any.
    pub error: Option<String>,
}

/// Sends `payload` to `address` from the pod of `ctx` and waits one timeout for the reply; on flow `flow` when
/// given (its socket is kept in `ctx` for the next probe), else on a new socket.
pub async fn exchange(ctx: &ProbeContext, address: SocketAddr, payload: &str, flow: Option<&str>) -> UdpResult {
    let failed = |outcome, error: String| UdpResult { address, local: None, outcome, reply: None, error: Some(error) };
    let socket = match flow {
        Some(name) => {
            // Clients sharing one store (the embedded target's) each have their own source address.
            let key = format!("{}/{name}", ctx.dialer.source().map(|ip| ip.to_string()).unwrap_or_default());
            ctx.udp_flows.socket(&key, address, ctx.dialer.connect_udp(address)).await
        }
        None => ctx.dialer.connect_udp(address).await.map(Arc::new),
    };
    let socket = match socket {
        Ok(s) => s,
        Err(e) => return failed(None, format!("open a UDP socket: {e}")),
    };
    let local = socket.local_addr().ok();
    let mut buf = vec![0u8; MAX_REPLY];
    // A late reply to an earlier probe of this flow must not pass for this one's; a queued ICMP error goes too.
    while socket.try_recv(&mut buf).is_ok() {}
    let outcome = |o, reply, error| UdpResult { address, local, outcome: Some(o), reply, error };
    if let Err(e) = socket.send(payload.as_bytes()).await {
        return match e.kind() {
            std::io::ErrorKind::ConnectionRefused => outcome(UdpOutcome::Refused, None, Some(e.to_string())),
            _ => UdpResult { local, ..failed(None, format!("send: {e}")) },
        };
    }
    match tokio::time::timeout(ctx.timeout, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => outcome(UdpOutcome::Answered, Some(String::from_utf8_lossy(&buf[..n]).into_owned()), None),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            outcome(UdpOutcome::Refused, None, Some(e.to_string()))
        }
        Ok(Err(e)) => UdpResult { local, ..failed(None, format!("receive: {e}")) },
        Err(_) => outcome(UdpOutcome::Timeout, None, Some("no reply within the timeout".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::{Dialer, ResolvConf};

    fn ctx() -> ProbeContext {
        ProbeContext {
            resolv_conf: ResolvConf { nameservers: Vec::new(), search: Vec::new(), ndots: 1 },
            dialer: Dialer::default(),
            timeout: Duration::from_millis(300),
            hosts: Default::default(),
            http_pool: Default::default(),
            udp_flows: Arc::new(UdpFlows::new()),
        }
    }

    #[tokio::test]
    async fn answered_refused_and_unanswered_and_a_kept_flow_keeps_its_port() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, peer)) = server.recv_from(&mut buf).await {
                if let Some(answer) = crate::netexec::udp_answer(&buf[..n], peer, "pod-a") {
                    let _ = server.send_to(answer.as_bytes(), peer).await;
                }
            }
        });
        let ctx = ctx();
        let a = exchange(&ctx, addr, "hostname", Some("f")).await;
        assert_eq!((a.outcome, a.reply.as_deref()), (Some(UdpOutcome::Answered), Some("pod-a")), "{a:?}");
        let b = exchange(&ctx, addr, "echo hi", Some("f")).await;
        assert_eq!(b.reply.as_deref(), Some("hi"));
        assert_eq!(a.local, b.local, "a kept flow sends from the same port");
        let fresh = exchange(&ctx, addr, "hostname", None).await;
        assert_ne!(fresh.local, a.local, "without a flow every probe has its own port");
        echo.abort();
        let _ = echo.await;
        // The socket is closed now: the kernel answers with port unreachable.
        let refused = exchange(&ctx, addr, "hostname", None).await;
        assert_eq!(refused.outcome, Some(UdpOutcome::Refused), "{refused:?}");

        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let quiet = exchange(&ctx, silent.local_addr().unwrap(), "hostname", None).await;
        assert_eq!(quiet.outcome, Some(UdpOutcome::Timeout), "{quiet:?}");
    }
}
