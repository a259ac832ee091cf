//! `expectUdp`: one datagram to a Service's UDP port, on a new or a kept flow, judged by the reply (which pod, what
//! text) or by how it failed.

use serde_json::json;

use super::{check::Evaluation, http::service_address, pods::pod_names};
use crate::{
    probe::{ProbeRequest, ProbeResponse},
    scenario::Check,
    targets::{Target, TargetError},
};

/// Evaluates a [`Check::Udp`].
pub(crate) async fn evaluate(check: &Check, target: &dyn Target) -> Result<Evaluation, TargetError> {
    let Check::Udp { from, service, port, node, send, flow, outcome, answered_by, reply, ip_family } = check else {
        return Err(TargetError::Other("not a UDP check".into()));
    };
    let mut expected = json!({ "result": outcome, "send": send, "flow": flow });
    let address = match service_address(target, service, *port, *node, *ip_family).await? {
        Ok(address) => address,
        Err(why) => return Ok(Evaluation::new(false, expected, json!({}), why)),
    };
    let allowed = match answered_by {
        Some(set) => match pod_names(target, set).await? {
            Ok(names) => {
                expected["answered_by"] = json!(names);
                Some(names)
            }
            Err(why) => return Ok(Evaluation::new(false, expected, json!({}), why)),
        },
        None => None,
    };
    if let Some(text) = reply {
        expected["reply"] = json!(text);
    }
    let request = ProbeRequest::Udp { address, payload: send.clone(), flow: flow.clone() };
    let ProbeResponse::Udp(result) = target.probe_as(from, &request).await? else {
        return Err(TargetError::Other("UDP probe returned another kind of result".into()));
    };
    let got = result.reply.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    if result.outcome != Some(*outcome) {
        problems.push(format!(
            "{address}: {:?} ({}), expected {outcome:?}",
            result.outcome,
            result.error.clone().unwrap_or_default()
        ));
    } else {
        if let Some(names) = &allowed
            && !names.contains(got)
        {
            let list = names.iter().cloned().collect::<Vec<_>>().join(", ");
            problems.push(format!("answered by `{got}`, not one of [{list}]"));
        }
        if let Some(text) = reply
            && got != text
        {
            problems.push(format!("reply `{got}`, expected `{text}`"));
        }
    }
    let flow_note = match (flow, result.local) {
        (Some(name), Some(local)) => format!(" (flow {name} from {local})"),
        _ => String::new(),
    };
    let msg = if problems.is_empty() { String::new() } else { format!("{}{flow_note}", problems.join("; ")) };
    Ok(Evaluation::new(problems.is_empty(), expected, json!(result), msg))
}
