//! Calls through the API server's pod proxy (`/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>`): probes to
//! the agent, readiness toggles to netexec's `/shell`.
//!
//! The status and body are read here rather than by kube-rs, which parses any JSON error body as a `metav1.Status`
//! and turns a body of another shape into a Status with defaulted fields ("API error 0 : "). An error answer may come
//! from the API server (a Status: RBAC, no such pod, the pod unreachable), from the agent (a Status too, and
//! `{"error": …}` from agents before that), or from anything in between (text): each keeps its message.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use kube::Client;
use serde::Deserialize;

use super::explain;
use crate::targets::TargetError;

/// Longest piece of a non-JSON error body quoted in a message.
const QUOTED: usize = 400;

/// Sends `request` and returns the body of a 2xx answer; any other answer is an error that names `what`, the HTTP
/// status and the message.
///
/// # Errors
/// The API server is unreachable, or the answer is not a 2xx.
pub async fn call(client: &Client, request: http::Request<Vec<u8>>, what: &str) -> Result<Bytes, TargetError> {
    let response = client.send(request.map(kube::client::Body::from)).await.map_err(|e| explain(e, what))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| TargetError::Other(format!("{what}: reading the answer: {e}")))?
        .to_bytes();
    if status.is_success() { Ok(body) } else { Err(error_answer(status, &body, what)) }
}

/// `GET path` through the pod proxy.
///
/// # Errors
/// As [`call`].
pub async fn get(client: &Client, path: &str, what: &str) -> Result<Bytes, TargetError> {
    let request = http::Request::get(path).body(Vec::new()).map_err(|e| TargetError::Other(format!("{what}: {e}")))?;
    call(client, request, what).await
}

/// `POST path` with a JSON body through the pod proxy to an agent, with the run's token.
///
/// # Errors
/// As [`call`].
pub async fn post_to_agent(
    client: &Client,
    path: &str,
    body: Vec<u8>,
    token: &str,
    what: &str,
) -> Result<Bytes, TargetError> {
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(crate::agent::TOKEN_HEADER, token)
        .body(body)
        .map_err(|e| TargetError::Other(format!("{what}: {e}")))?;
    call(client, request, what).await
}

/// The error for a non-2xx answer.
pub fn error_answer(status: StatusCode, body: &[u8], what: &str) -> TargetError {
    if let Ok(mut s) = serde_json::from_slice::<kube::core::Status>(body)
        && (!s.message.is_empty() || !s.reason.is_empty())
    {
        if s.code == 0 {
            s.code = status.as_u16();
        }
        return explain(kube::Error::Api(Box::new(s)), what);
    }
    #[derive(Deserialize)]
    struct Legacy {
        error: String,
    }
    let message = match serde_json::from_slice::<Legacy>(body) {
        Ok(legacy) => legacy.error,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            match text.char_indices().nth(QUOTED) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None if text.is_empty() => "(empty body)".into(),
                None => text.to_owned(),
            }
        }
    };
    match status {
        StatusCode::FORBIDDEN if super::denies_identity(&message) => {
            TargetError::NotPermitted(super::forbidden(what, &message))
        }
        StatusCode::FORBIDDEN => TargetError::Other(format!("{what}: forbidden: {message}")),
        // The API server could not reach the pod: with svcbench's NetworkPolicy in force, say which knob it has.
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE if message.contains("dial tcp") => {
            TargetError::Other(format!("{what}: HTTP {}: {message}{}", status.as_u16(), super::POD_UNREACHABLE))
        }
        StatusCode::NOT_FOUND => TargetError::Rejected(format!("{what}: not found ({message})")),
        _ => TargetError::Other(format!("{what}: HTTP {}: {message}", status.as_u16())),
    }
}

/// What agnhost netexec's `/shell?cmd=` answers: 200 with `{"output": …}` when the command succeeded, and
/// `{"error": "exit status N", "output": …}` when it failed (both fields are left out when empty).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ShellReply {
    /// The command's combined stdout and stderr.
    pub output: Option<String>,
    /// Why the command failed.
    pub error: Option<String>,
}

impl ShellReply {
    /// Reads a `/shell` answer body.
    ///
    /// # Errors
    /// The body is not netexec's JSON.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body)
            .map_err(|e| format!("not netexec's /shell answer ({e}): {}", String::from_utf8_lossy(body).trim()))
    }

    /// `Err` with the failure and the command's output when the command failed.
    ///
    /// # Errors
    /// The command failed in the container.
    pub fn into_result(self) -> Result<(), String> {
        match self.error {
            None => Ok(()),
            Some(error) => {
                let output = self.output.map(|o| o.trim().to_owned()).filter(|o| !o.is_empty());
                Err(match output {
                    Some(output) => format!("{error}: {output}"),
                    None => error,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_replies_as_netexec_writes_them() {
        assert_eq!(ShellReply::parse(b"{}").unwrap().into_result(), Ok(()));
        assert_eq!(ShellReply::parse(br#"{"output": "x\n"}"#).unwrap().into_result(), Ok(()));
        let failed =
            ShellReply::parse(br#"{"output": "touch: /tmp/x: Read-only file system\n", "error": "exit status 1"}"#);
        assert_eq!(failed.unwrap().into_result(), Err("exit status 1: touch: /tmp/x: Read-only file system".into()));
        assert_eq!(
            ShellReply::parse(br#"{"error": "exit status 127"}"#).unwrap().into_result(),
            Err("exit status 127".into())
        );
        assert!(ShellReply::parse(b"NOW: 2026-01-01").unwrap_err().contains("NOW: 2026"));
    }

    #[test]
    fn error_answers_keep_their_message() {
        let status = br#"{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422, "reason": "Invalid",
            "message": "dns probe could not run: resolv.conf has no nameserver"}"#;
        let e = error_answer(StatusCode::UNPROCESSABLE_ENTITY, status, "run a probe").to_string();
        assert!(e.contains("422") && e.contains("resolv.conf has no nameserver"), "{e}");
        let legacy = error_answer(StatusCode::SERVICE_UNAVAILABLE, br#"{"error": "busy: 8 probes running"}"#, "probe");
        assert_eq!(legacy.to_string(), "probe: HTTP 503: busy: 8 probes running");
        let text = error_answer(StatusCode::BAD_GATEWAY, b"upstream connect error\n", "probe");
        assert_eq!(text.to_string(), "probe: HTTP 502: upstream connect error");
        let empty = error_answer(StatusCode::BAD_GATEWAY, b"", "probe");
        assert_eq!(empty.to_string(), "probe: HTTP 502: (empty body)");
        let long = error_answer(StatusCode::BAD_GATEWAY, "x".repeat(1000).as_bytes(), "probe").to_string();
        assert!(long.len() < 500 && long.ends_with('…'), "{long}");
        let status_no_code =
            br#"{"kind": "Status", "message": "no endpoints available", "reason": "ServiceUnavailable"}"#;
        let e = error_answer(StatusCode::SERVICE_UNAVAILABLE, status_no_code, "probe").to_string();
        assert!(e.contains("503") && e.contains("no endpoints available"), "{e}");
    }
}
