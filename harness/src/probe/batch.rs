//! Batch probe: many single-shot probes (DNS lookups, TCP connects, HTTP GETs) in one request, run concurrently with
//! a bound on how many are in flight. A bulk check over 1,000 services is then one round trip to the pod instead of
//! thousands, and the results come back in request order.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{ProbeContext, ProbeError, ProbeRequest, ProbeResponse, connect, dns, http};

/// Most probes one batch may hold.
pub const MAX_PROBES: usize = 4096;
/// Most probes of a batch in flight at once.
pub const MAX_CONCURRENCY: usize = 256;

/// What to run: only `dns`, `connect` and `http` probes (each bounded by the per-attempt timeout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSpec {
    /// Probes in flight at once (1-[`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// The probes, 1-[`MAX_PROBES`] of them.
    pub probes: Vec<ProbeRequest>,
}

/// The outcome of one probe of a batch.
// Batches hold only single-shot probes, which are small; boxing the rare large variant would only add an allocation
// per result on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchResult {
    /// What the probe observed.
    Ok(ProbeResponse),
    /// The probe could not run (e.g. no nameserver answered).
    Error(String),
}

/// Every result of a batch, in the order of its probes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// One per probe, same order.
    pub results: Vec<BatchResult>,
}

/// Why a batch is refused before it runs: empty, too large, a concurrency out of range, or a probe kind that is not
/// single-shot.
///
/// # Errors
/// The reason, for the caller.
pub fn check(spec: &BatchSpec) -> Result<(), String> {
    if spec.probes.is_empty() || spec.probes.len() > MAX_PROBES {
        return Err(format!("a batch holds 1-{MAX_PROBES} probes, not {}", spec.probes.len()));
    }
    if spec.concurrency == 0 || spec.concurrency > MAX_CONCURRENCY {
        return Err(format!("batch concurrency must be 1-{MAX_CONCURRENCY}, not {}", spec.concurrency));
    }
    match spec
        .probes
        .iter()
        .position(|p| !matches!(p, ProbeRequest::Dns { .. } | ProbeRequest::Connect { .. } | ProbeRequest::Http { .. }))
    {
        Some(i) => Err(format!("batch probe #{i}: a batch holds only `dns`, `connect` and `http` probes")),
        None => Ok(()),
    }
}

async fn one(ctx: &ProbeContext, request: &ProbeRequest) -> Result<ProbeResponse, ProbeError> {
    Ok(match request {
        ProbeRequest::Dns { name, query_type, flavour, transport } => {
            ProbeResponse::Dns(dns::lookup(ctx, name, *query_type, *flavour, *transport).await?)
        }
        ProbeRequest::Connect { address } => ProbeResponse::Connect(connect::connect(ctx, *address).await),
        ProbeRequest::Http { host, port, path, client: crate::scenario::HttpClient::Plain, family } => {
            ProbeResponse::Http(http::get(ctx, host, *port, path, *family).await?)
        }
        ProbeRequest::Http { host, port, path, client: crate::scenario::HttpClient::Reqwest, family } => {
            ProbeResponse::Http(super::pooled::get(ctx, host, *port, path, *family).await?)
        }
        other => return Err(ProbeError::Batch(format!("not a batchable probe: {other:?}"))),
    })
}

/// Runs every probe of `spec` with at most `spec.concurrency` in flight; a probe that cannot run is an
/// [`BatchResult::Error`], not a failure of the batch.
///
/// # Errors
/// The spec is refused by [`check`].
pub async fn run(ctx: &ProbeContext, spec: &BatchSpec) -> Result<BatchOutcome, ProbeError> {
    check(spec).map_err(ProbeError::Batch)?;
    let probes = Arc::new(spec.probes.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..spec.concurrency.min(probes.len()) {
        let (ctx, probes, next) = (ctx.clone(), probes.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = probes.get(i) else { break };
                let result = match one(&ctx, request).await {
                    Ok(response) => BatchResult::Ok(response),
                    Err(e) => BatchResult::Error(e.to_string()),
                };
                done.push((i, result));
            }
            done
        });
    }
    let mut results: Vec<Option<BatchResult>> = vec![None; probes.len()];
    while let Some(joined) = workers.join_next().await {
        let done = joined.map_err(|e| ProbeError::Batch(format!("a batch worker failed: {e}")))?;
        for (i, result) in done {
            results[i] = Some(result);
        }
    }
    Ok(BatchOutcome {
        results: results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| BatchResult::Error("probe did not run".into())))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{QueryType, ResolverFlavour, Transport};

    fn dns_probe() -> ProbeRequest {
        ProbeRequest::Dns {
            name: "a.".into(),
            query_type: QueryType::A,
            flavour: ResolverFlavour::Dig,
            transport: Transport::Udp,
        }
    }

    #[test]
    fn limits() {
        let ok = BatchSpec { concurrency: 4, probes: vec![dns_probe()] };
        assert_eq!(check(&ok), Ok(()));
        let empty = BatchSpec { concurrency: 4, probes: vec![] };
        assert!(check(&empty).unwrap_err().contains("1-4096"));
        let huge = BatchSpec { concurrency: 4, probes: vec![dns_probe(); MAX_PROBES + 1] };
        assert!(check(&huge).unwrap_err().contains("4097"));
        let wide = BatchSpec { concurrency: 0, ..ok.clone() };
        assert!(check(&wide).unwrap_err().contains("concurrency"));
        let nested = BatchSpec { concurrency: 1, probes: vec![dns_probe(), ProbeRequest::ResolvConf] };
        assert!(check(&nested).unwrap_err().contains("#1"));
    }

    #[test]
    fn wire_format() {
        let spec = BatchSpec { concurrency: 2, probes: vec![dns_probe()] };
        let json = serde_json::to_value(ProbeRequest::Batch(spec)).unwrap();
        assert_eq!(json["probe"], "batch");
        assert_eq!(json["concurrency"], 2);
        assert_eq!(json["probes"][0]["probe"], "dns");
        let outcome = BatchOutcome { results: vec![BatchResult::Error("no nameserver".into())] };
        let json = serde_json::to_value(ProbeResponse::Batch(outcome)).unwrap();
        assert_eq!(json, serde_json::json!({"probe": "batch", "results": [{"error": "no nameserver"}]}));
    }
}
