//! The agent's HTTP answers. Errors are `metav1.Status` objects (`{"kind": "Status", "apiVersion": "v1", "status":
//! "Failure", "message", "reason", "code"}`): the harness reaches the agent through the API server's pod proxy, which
//! passes the body through, and Kubernetes clients (kube-rs, client-go) read any JSON error body as a Status — so the
//! agent's message reaches the user instead of a Status with defaulted fields ("API error 0 : ").

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use serde::Serialize;

/// An agent answer.
pub type Reply = Response<Full<Bytes>>;

/// An answer with a body of the given type.
pub fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

/// A JSON answer.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => reply(status, "application/json", Bytes::from(body)),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the response: {e}")),
    }
}

/// The Kubernetes `StatusReason` for an HTTP status the agent answers with.
pub fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        408 | 504 => "Timeout",
        413 => "RequestEntityTooLarge",
        422 => "Invalid",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// The `metav1.Status` body of an error answer.
pub fn status_body(status: StatusCode, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason(status),
        "code": status.as_u16(),
    })
}

/// An error answer: `status` with a `metav1.Status` body carrying `message`.
pub fn error(status: StatusCode, message: String) -> Reply {
    // Rendering a `Value` cannot fail, so reporting an error cannot fail in turn.
    reply(status, "application/json", Bytes::from(status_body(status, &message).to_string()))
}

/// 405 with `Allow`.
pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed; use {allow}"));
    r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_kubernetes_statuses() {
        let body = status_body(StatusCode::UNPROCESSABLE_ENTITY, "dns probe could not run: no nameserver");
        // What kube-rs makes of it on the harness side of the pod proxy.
        let parsed: kube::core::Status = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed.code, 422);
        assert_eq!(parsed.reason, "Invalid");
        assert_eq!(parsed.message, "dns probe could not run: no nameserver");
        assert!(parsed.is_failure());
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(reason(StatusCode::SERVICE_UNAVAILABLE), "ServiceUnavailable");
        assert_eq!(reason(StatusCode::GATEWAY_TIMEOUT), "Timeout");
    }
}
