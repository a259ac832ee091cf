//! `expectUdp`: the service must have the UDP port, the datagram must be a netexec UDP command, and what is expected
//! of the reply must fit the command.

use super::{
    super::{nodes::Client, plan::*, raw_traffic::RawExpectUdp},
    ServiceKind, Validator,
};

use crate::agent::limits::MAX_UDP_PAYLOAD;

impl Validator {
    pub(super) fn expect_udp(&mut self, e: &RawExpectUdp) -> Option<Assertion> {
        let from = self.client(&e.from, false)?;
        let ns = self.namespace(&e.namespace)?;
        let service = self.service(&ns, &e.service)?;
        if self.services.get(&service) != Some(&ServiceKind::ClusterIp) {
            self.err(&e.service.referenced, format!("service `{service}` has no ClusterIP to send to"));
            return None;
        }
        if !self.udp_ports.get(&service).is_some_and(|ports| ports.contains(&e.port.value)) {
            self.err(
                &e.port.referenced,
                format!("service `{service}` has no UDP port {} (expose it with `protocol: UDP`)", e.port.value),
            );
            return None;
        }
        let node = self.node_via(&e.via, &e.port.referenced, &e.service.referenced, &service)?;
        let send = e.send.as_ref().map_or("hostname", |s| s.value.as_str()).to_owned();
        let at = e.send.as_ref().map_or(e.port.referenced, |s| s.referenced);
        let known = send == "hostname" || send == "clientip" || send.starts_with("echo ");
        if !known || send.len() > MAX_UDP_PAYLOAD {
            self.err(
                &at,
                format!(
                    "send must be a netexec UDP command of at most {MAX_UDP_PAYLOAD} bytes: `hostname`, `clientip` or \
                     `echo <text>`, not `{send}`"
                ),
            );
            return None;
        }
        let outcome = self.choice(&e.result, UdpOutcome::Answered, "result", "answered, refused or timeout")?;
        let pods_ns = from.namespace_name().unwrap_or(&ns).to_owned();
        let answered_by = match &e.answered_by {
            Some(s) => Some(self.pod_set(&pods_ns, &s.referenced, &s.value)?),
            None => None,
        };
        if answered_by.is_some() && send != "hostname" {
            self.err(
                &e.answered_by.as_ref()?.referenced,
                "answeredBy needs `send: hostname` (the reply names the pod)",
            );
            return None;
        }
        if (answered_by.is_some() || e.reply.is_some()) && outcome != UdpOutcome::Answered {
            let at = e.result.as_ref().map_or(e.port.referenced, |r| r.referenced);
            self.err(&at, "answeredBy and reply need `result: answered`");
            return None;
        }
        if matches!(from, Client::Pod { .. }) {
            self.err(&e.from.referenced, "expectUdp runs from a namespace or a node, not from a backend pod");
            return None;
        }
        if let Some(flow) = &e.flow
            && !self.label("flow name", flow, false)
        {
            return None;
        }
        let ip_family = self.ip_family(&e.ip_family)?;
        self.node_port_family(&e.port.referenced, node, ip_family)?;
        let timeout = self.timeout(&e.timeout);
        Some(Assertion {
            timeout,
            check: Check::Udp {
                from,
                service,
                port: e.port.value,
                node,
                send,
                flow: e.flow.as_ref().map(|f| f.value.clone()),
                outcome,
                answered_by,
                reply: e.reply.as_ref().map(|r| r.value.clone()),
                ip_family,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::{Check, StepKind, UdpOutcome, parse};

    const HEAD: &str = "name: t\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: echo}\n  - expose: {namespace: test, deployment: echo, ports: [{name: dns, port: 8053, targetPort: 80, protocol: UDP}, {name: web, port: 80}]}\n";

    fn parsed(steps: &str) -> Result<Vec<StepKind>, String> {
        parse(Path::new("t.yaml"), &format!("{HEAD}{steps}"))
            .map(|p| p.steps.into_iter().map(|s| s.kind).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn udp_steps_name_a_udp_port_and_a_netexec_command() {
        let kinds = parsed(
            "  - expectUdp: {from: test, namespace: test, service: echo, port: 8053, flow: kept, answeredBy: {readyPodsOf: echo}}\n",
        )
        .unwrap();
        let StepKind::Assert(a) = &kinds[3] else { panic!("{:?}", kinds[3]) };
        let Check::Udp { send, flow, outcome, answered_by, .. } = &a.check else { panic!("{:?}", a.check) };
        assert_eq!((send.as_str(), flow.as_deref(), *outcome), ("hostname", Some("kept"), UdpOutcome::Answered));
        assert!(answered_by.is_some());

        let e = parsed("  - expectUdp: {from: test, namespace: test, service: echo, port: 80}\n").unwrap_err();
        assert!(e.contains("t.yaml:7:") && e.contains("has no UDP port 80"), "{e}");
        let e = parsed("  - expectUdp: {from: test, namespace: test, service: echo, port: 8053, send: ping}\n")
            .unwrap_err();
        assert!(e.contains("send must be a netexec UDP command"), "{e}");
        let e = parsed(
            "  - expectUdp: {from: test, namespace: test, service: echo, port: 8053, send: echo hi, answeredBy: {podsOf: echo}}\n",
        )
        .unwrap_err();
        assert!(e.contains("answeredBy needs `send: hostname`"), "{e}");
        let e = parsed(
            "  - expectUdp: {from: test, namespace: test, service: echo, port: 8053, result: refused, reply: x}\n",
        )
        .unwrap_err();
        assert!(e.contains("need `result: answered`"), "{e}");
        let e = parsed("  - expectUdp: {from: test, namespace: test, service: echo, port: 8053, result: lost}\n")
            .unwrap_err();
        assert!(e.contains("unknown result `lost`"), "{e}");
        let e = parsed("  - expectUdp: {from: test, namespace: test, service: echo, port: 8053, flow: Bad_Name}\n")
            .unwrap_err();
        assert!(e.contains("flow name"), "{e}");
    }
}
