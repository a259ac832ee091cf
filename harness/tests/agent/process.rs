//! The `svcbench agent` process of the agent tests: started with a resolv.conf (and `--dns-port`), spoken to over
//! raw HTTP/1.1, stopped with SIGTERM; its `metav1.Status` error bodies read back.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use svcbench::{
    probe::{ProbeRequest, ProbeResponse, dns::DnsLookup},
    scenario::{QueryType, ResolverFlavour, Transport},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

/// The token the test agents are started with (what a run's Secret would hold).
pub const TOKEN: &str = "0123456789abcdef-test-run-token";

/// A running `svcbench agent`; dropping it (e.g. when an assertion fails) kills the process.
pub struct Agent {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Agent {
    fn drop(&mut self) {
        // `kill_on_drop` would do it too; this also covers a child whose handle is kept by a panicking test.
        let _ = self.child.start_kill();
    }
}

impl Agent {
    /// Starts the agent on an ephemeral loopback port and waits for its `listening:` line.
    pub async fn start(resolv_conf: &Path, dns_port: Option<u16>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svcbench"));
        // The token file as the kube target mounts it: the Secret's one key.
        let token_file = resolv_conf.with_extension("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write the token file");
        cmd.args(["agent", "--listen", "127.0.0.1:0", "--resolv-conf"]).arg(resolv_conf);
        cmd.arg("--token-file").arg(&token_file);
        if let Some(port) = dns_port {
            cmd.args(["--dns-port", &port.to_string()]);
        }
        let mut child = cmd.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("spawn svcbench agent");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut agent = Agent { child, addr: SocketAddr::from(([0, 0, 0, 0], 0)) };
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("svcbench agent never said `listening:`")
            .expect("read agent stdout")
            .expect("svcbench agent exited before listening");
        agent.addr =
            line.strip_prefix("listening: ").unwrap_or_else(|| panic!("unexpected line `{line}`")).parse().unwrap();
        assert!(agent.addr.ip().is_loopback() && agent.addr.port() != 0, "{}", agent.addr);
        agent
    }

    /// One HTTP/1.1 exchange (its own connection) with the run's token: status and body.
    pub async fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        call(self.addr, method, path, body, Some(TOKEN)).await
    }

    /// Runs a probe that must succeed.
    pub async fn probe(&self, request: &ProbeRequest) -> ProbeResponse {
        let (status, body) = self.call("POST", "/probe", &serde_json::to_vec(request).unwrap()).await;
        assert_eq!(status, 200, "{request:?} → {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not a ProbeResponse ({e}): {body}"))
    }

    /// Runs a probe the agent must refuse with `status`; returns the error message of its `metav1.Status` body.
    pub async fn refused(&self, body: &[u8], status: u16) -> String {
        let (got, text) = self.call("POST", "/probe", body).await;
        assert_eq!(got, status, "{} → {text}", String::from_utf8_lossy(body));
        status_message(&text, status)
    }

    /// A glibc-or-other A lookup that must succeed.
    pub async fn dns(&self, name: &str, flavour: ResolverFlavour, transport: Transport) -> DnsLookup {
        let request = ProbeRequest::Dns { name: name.into(), query_type: QueryType::A, flavour, transport };
        match self.probe(&request).await {
            ProbeResponse::Dns(lookup) => lookup,
            other => panic!("expected a DNS lookup, got {other:?}"),
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("agent still running") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(25), self.child.wait())
            .await
            .expect("agent did not stop on SIGTERM")
            .unwrap();
        assert!(status.success(), "agent exited with {status}");
    }
}

/// The message of an error body, which must be a `metav1.Status` with the HTTP status as its code.
pub fn status_message(text: &str, status: u16) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("error not JSON ({e}): {text}"));
    assert_eq!(
        (v["kind"].as_str(), v["apiVersion"].as_str(), v["status"].as_str()),
        (Some("Status"), Some("v1"), Some("Failure")),
        "{text}"
    );
    assert_eq!(v["code"], status, "{text}");
    assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{text}");
    v["message"].as_str().unwrap_or_else(|| panic!("no `message` string: {text}")).to_owned()
}

/// One HTTP/1.1 exchange with `addr` on its own connection, with `token` in `X-Svcbench-Token`: status and body.
pub async fn call(addr: SocketAddr, method: &str, path: &str, body: &[u8], token: Option<&str>) -> (u16, String) {
    let token = token.map(|t| format!("X-Svcbench-Token: {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\nContent-Type: application/json\r\n\
         {token}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let exchange = async move {
        let (mut rx, mut tx) = TcpStream::connect(addr).await.expect("connect to the agent").into_split();
        // Written concurrently and errors ignored: the agent answers an oversized body (413) without reading it all
        // and closes, so the rest of the write fails while the answer is already on its way.
        let writer = tokio::spawn(async move {
            let _ = tx.write_all(&request).await;
            tx
        });
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rx.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
                // The close can turn into a reset (unread request bytes); what arrived before it is the answer.
                Err(e) if !raw.is_empty() => {
                    eprintln!("(connection ended with {e} after the answer)");
                    break;
                }
                Err(e) => panic!("reading the agent's answer: {e}"),
            }
        }
        drop(writer.await);
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(60), exchange).await.expect("agent answered within 60 s");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status: {head}"));
    (status, body.to_owned())
}
