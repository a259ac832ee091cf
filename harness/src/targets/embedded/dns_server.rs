//! Serving the cluster zone over UDP and TCP with hickory-server: what an authoritative server answers at the
//! protocol's edges (opcodes, classes and EDNS versions it does not serve), and fitting each answer into the
//! client's UDP payload the way CoreDNS does (miekg/dns `Truncate`): the records that fit, in section order, and TC
//! when any was left out, so the client retries over TCP.

use std::{iter, option, slice, sync::Arc, time::Duration};

use hickory_server::{
    net::{runtime::Time, xfer::Protocol},
    proto::{
        op::{Edns, Metadata, OpCode, ResponseCode},
        rr::{DNSClass, Record},
        serialize::binary::BinEncoder,
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::{MessageResponse, MessageResponseBuilder},
};
use tokio::sync::watch;

use super::{
    dns::{ZoneAnswer, answer},
    state::Snapshot,
};
/// hickory-server handler answering from the newest snapshot.
pub struct ClusterDns {
    snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl ClusterDns {
    /// A handler that follows `snapshot`.
    pub fn new(snapshot: watch::Receiver<Arc<Snapshot>>) -> Self {
        Self { snapshot }
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return match response_handle.send_response(msg).await {
                Ok(info) => info,
                Err(_) => serve_failed(request),
            };
        };
        // What an authoritative server answers that it does not serve (RFC 1035 §4.1.1, RFC 6891 §6.1.3): other
        // opcodes are not implemented, other classes are not its zone, and an EDNS version above 0 is BADVERS.
        let refusal = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if info.query.query_class() != DNSClass::IN {
            Some(ResponseCode::Refused)
        } else {
            None
        };
        if let Some(code) = refusal {
            let mut builder = MessageResponseBuilder::from_message_request(request);
            let edns = request.edns.as_ref().map(|_| server_edns());
            if let Some(e) = &edns {
                builder.edns(e);
            }
            let msg = builder.error_msg(&request.metadata, code);
            return match response_handle.send_response(msg).await {
                Ok(info) => info,
                Err(_) => serve_failed(request),
            };
        }
        let snap = self.snapshot.borrow().clone();
        let result = answer(&snap, info.query.original().name(), info.query.query_type());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = result.rcode;
        metadata.authoritative = result.authoritative;
        metadata.recursion_available = true;
        let edns = request.edns.as_ref().map(|_| server_edns());
        let fitted = match request.protocol() {
            Protocol::Udp => fit(request, metadata, edns.as_ref(), &result, udp_payload(request)),
            _ => Fitted::whole(&result),
        };
        metadata.truncation = fitted.truncated;
        let msg = fitted.response(request, metadata, edns.as_ref());
        match response_handle.send_response(msg).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "DNS response not sent");
                serve_failed(request)
            }
        }
    }
}

fn serve_failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    hickory_server::proto::op::Header { metadata, counts: Default::default() }.into()
}

/// The largest UDP payload we send or accept: the DNS Flag Day 2020 size, CoreDNS's default too.
const MAX_UDP_PAYLOAD: u16 = 1232;

/// The OPT record of our answers.
fn server_edns() -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(MAX_UDP_PAYLOAD);
    e
}

/// How many bytes a UDP answer to `request` may take: 512 without EDNS (RFC 1035 §4.2.1), else what the client
/// advertises — never below 512 (RFC 6891 §6.2.5) and never above our own size.
fn udp_payload(request: &Request) -> usize {
    let advertised = request.edns.as_ref().map_or(512, Edns::max_payload);
    usize::from(advertised.clamp(512, MAX_UDP_PAYLOAD))
}

/// The part of a [`ZoneAnswer`] that goes into one message.
#[derive(Debug)]
struct Fitted<'a> {
    answers: &'a [Record],
    soa: Option<&'a Record>,
    additional: &'a [Record],
    truncated: bool,
}

impl<'a> Fitted<'a> {
    fn whole(result: &'a ZoneAnswer) -> Self {
        Self { answers: &result.answers, soa: result.soa.as_ref(), additional: &result.additional, truncated: false }
    }

    /// The first `n` records of answer, authority and additional, in that order.
    fn prefix(result: &'a ZoneAnswer, n: usize) -> Self {
        let answers = n.min(result.answers.len());
        let soa = usize::from(result.soa.is_some()).min(n - answers);
        let additional = (n - answers - soa).min(result.additional.len());
        let total = result.answers.len() + usize::from(result.soa.is_some()) + result.additional.len();
        Self {
            answers: &result.answers[..answers],
            soa: result.soa.as_ref().filter(|_| soa == 1),
            additional: &result.additional[..additional],
            truncated: answers + soa + additional < total,
        }
    }

    /// The response carrying this part.
    fn response<'q>(
        &self,
        request: &'q Request,
        metadata: Metadata,
        edns: Option<&'q Edns>,
    ) -> MessageResponse<
        'q,
        'a,
        slice::Iter<'a, Record>,
        iter::Empty<&'a Record>,
        option::IntoIter<&'a Record>,
        slice::Iter<'a, Record>,
    > {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = edns {
            builder.edns(e);
        }
        builder.build(metadata, self.answers.iter(), iter::empty(), self.soa, self.additional.iter())
    }

    /// This part's size on the wire, encoded exactly as it will be sent.
    fn encoded_len(&self, request: &Request, metadata: Metadata, edns: Option<&Edns>) -> usize {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        // An unencodable part counts as too large, so fitting shrinks it away.
        match self.response(request, metadata, edns).destructive_emit(&mut encoder) {
            Ok(_) => bytes.len(),
            Err(_) => usize::MAX,
        }
    }
}

/// The longest prefix of `result`'s records (answer, then authority, then additional) whose message fits `limit`
/// bytes, TC set when anything was left out — miekg/dns `Truncate`, which CoreDNS applies to every UDP answer.
/// Fitting before encoding keeps the message exactly as long as its counts say (hickory's own cut leaves the bytes
/// of the record that did not fit behind the last counted one).
fn fit<'a>(
    request: &Request,
    metadata: Metadata,
    edns: Option<&Edns>,
    result: &'a ZoneAnswer,
    limit: usize,
) -> Fitted<'a> {
    let whole = Fitted::whole(result);
    if whole.encoded_len(request, metadata, edns) <= limit {
        return whole;
    }
    // The size grows with the prefix, so the longest fitting one is found by bisection: lo fits, hi does not.
    let total = result.answers.len() + usize::from(result.soa.is_some()) + result.additional.len();
    let (mut lo, mut hi) = (0, total);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if Fitted::prefix(result, mid).encoded_len(request, metadata, edns) <= limit {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Fitted::prefix(result, lo)
}

/// How long a TCP DNS connection may stay idle.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
