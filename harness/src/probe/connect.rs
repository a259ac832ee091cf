//! TCP connect probe: did the handshake complete, get refused, or go unanswered?

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ProbeContext;
use crate::scenario::ConnectOutcome;

/// What a connect attempt observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectResult {
    /// The address dialled (before any translation).
    pub address: SocketAddr,
    /// Connected, refused or timed out; `None` for other errors.
    pub outcome: Option<ConnectOutcome>,
    /// The OS error text, if any.
    pub error: Option<String>,
}

/// Connects to `addr` from the pod described by `ctx` and closes the connection at once.
pub async fn connect(ctx: &ProbeContext, addr: SocketAddr) -> ConnectResult {
    match tokio::time::timeout(ctx.timeout, ctx.dialer.connect_tcp(addr)).await {
        Ok(Ok(_stream)) => ConnectResult { address: addr, outcome: Some(ConnectOutcome::Connected), error: None },
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ConnectResult { address: addr, outcome: Some(ConnectOutcome::Refused), error: Some(e.to_string()) }
        }
        Ok(Err(e)) => ConnectResult { address: addr, outcome: None, error: Some(e.to_string()) },
        Err(_) => {
            ConnectResult { address: addr, outcome: Some(ConnectOutcome::Timeout), error: Some("timed out".into()) }
        }
    }
}
