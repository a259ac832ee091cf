//! agnhost `netexec`'s HTTP endpoints that every svcbench backend answers alike — `/hostname`, `/clientip`,
//! `/healthz`, `/echo?msg=&code=` and the `NOW: <time>` root handler for any other path — and its UDP commands
//! (`hostname`, `clientip`, `echo <text>`), shared by the embedded target's pods and the lab's `svcbench lab netexec`
//! process (which adds `/shell` and `/exit`).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

/// The answer to one of the shared endpoints: `/hostname`, `/clientip`, `/healthz`, `/echo`, else the root handler.
pub fn answer<B>(req: &Request<B>, peer: SocketAddr, hostname: &str) -> (StatusCode, String) {
    match req.uri().path() {
        "/hostname" => (StatusCode::OK, hostname.to_owned()),
        "/clientip" => (StatusCode::OK, peer.to_string()),
        "/healthz" => (StatusCode::OK, "ok".to_owned()),
        // netexec's `code` sets the status (a non-number is reported in the body with 200).
        "/echo" => match query(req, "code").map(|c| c.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok())) {
            Some(Some(code)) => (code, query(req, "msg").unwrap_or_default()),
            Some(None) => (StatusCode::OK, "argument 'code' must be an integer or empty".to_owned()),
            None => (StatusCode::OK, query(req, "msg").unwrap_or_default()),
        },
        // netexec serves its root handler for every other path.
        _ => (StatusCode::OK, format!("NOW: {}", jiff::Timestamp::now())),
    }
}

/// The answer to one UDP datagram, as netexec's UDP server gives it: `hostname` (or `hostName`), `clientip` (the
/// sender's `ip:port`), `echo <text>`; anything else gets no reply.
pub fn udp_answer(datagram: &[u8], peer: SocketAddr, hostname: &str) -> Option<String> {
    let text = String::from_utf8_lossy(datagram);
    let text = text.trim();
    match text.split_once(' ') {
        _ if text == "hostname" || text == "hostName" => Some(hostname.to_owned()),
        _ if text == "clientip" => Some(peer.to_string()),
        Some(("echo", rest)) => Some(rest.to_owned()),
        _ => None,
    }
}

/// A `text/plain` response.
pub fn text_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// The decoded value of query parameter `name`.
pub fn query<B>(req: &Request<B>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(percent_decode)
}

/// Decodes `%XX` and `+` in a query value.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("hello+world%21"), "hello world!");
        assert_eq!(percent_decode("touch+%2Ftmp%2Fx"), "touch /tmp/x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1");
    }
}
