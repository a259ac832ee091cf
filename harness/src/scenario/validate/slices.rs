//! `createEndpointSlice` and the selectorless Services it serves: the Service must exist and select nothing (the
//! EndpointSlice controller would otherwise own its slices), every address must be of the slice's family, ports and
//! hostnames must be what the API server accepts.

use std::collections::HashSet;

use super::{
    super::{IpFamily, file::RawEndpointSlice, plan::*},
    Validator,
};

/// The most endpoints the API server accepts in one EndpointSlice.
pub const MAX_SLICE_ENDPOINTS: usize = 1000;

impl Validator {
    pub(super) fn endpoint_slice(&mut self, e: &RawEndpointSlice) -> Option<Action> {
        let ns = self.own_namespace(&e.namespace)?;
        let service = self.service(&ns, &e.service)?;
        if !self.selectorless.contains(&service) {
            self.err(
                &e.service.referenced,
                format!(
                    "service `{service}` has a selector, so the EndpointSlice controller writes its slices: give it \
                     `selector: {{}}` to write them here"
                ),
            );
            return None;
        }
        let count = self.slice_counts.entry(service.clone()).or_insert(0);
        *count += 1;
        let name = match &e.name {
            Some(n) => {
                if !self.label("EndpointSlice name", n, false) {
                    return None;
                }
                n.value.clone()
            }
            None => format!("{}-{count}", service.name),
        };
        let object = ObjectRef { namespace: ns, name: name.clone() };
        if self.slice_names.insert(object.clone(), service.clone()).is_some() {
            let at = e.name.as_ref().map_or(e.service.referenced, |n| n.referenced);
            self.err(&at, format!("EndpointSlice `{object}` already exists"));
            return None;
        }
        let family = match e.address_type.as_ref().map(|t| (t.value.as_str(), t.referenced)) {
            None | Some(("IPv4", _)) => IpFamily::IPv4,
            Some(("IPv6", _)) => IpFamily::IPv6,
            Some((other, at)) => {
                self.err(&at, format!("addressType must be IPv4 or IPv6, not `{other}`"));
                return None;
            }
        };
        let mut ports = Vec::new();
        let mut seen = HashSet::new();
        for p in &e.ports {
            // The API server checks a slice port's name as a DNS-1123 label (not as a container port name); empty
            // is the unnamed port.
            let name = match &p.name {
                Some(n) if n.value.is_empty() => None,
                Some(n) => {
                    if !self.label("port name", n, false) {
                        return None;
                    }
                    Some(n.value.clone())
                }
                None => None,
            };
            let protocol = self.protocol(&p.protocol)?;
            if let Some(port) = p.port.as_ref().filter(|p| p.value == 0) {
                self.err(&port.referenced, "port must be 1-65535 (or left out)");
                return None;
            }
            if !seen.insert(name.clone()) {
                let at = p.name.as_ref().map(|n| n.referenced).or(p.port.as_ref().map(|p| p.referenced));
                self.err(&at.unwrap_or(e.service.referenced), "two ports of one slice share a name");
                return None;
            }
            ports.push(SlicePortSpec { name, port: p.port.as_ref().map(|p| p.value), protocol });
        }
        if e.endpoints.len() > MAX_SLICE_ENDPOINTS {
            self.err(
                &e.service.referenced,
                format!(
                    "{} endpoints: the API server takes at most {MAX_SLICE_ENDPOINTS} per slice",
                    e.endpoints.len()
                ),
            );
            return None;
        }
        let mut endpoints = Vec::new();
        for ep in &e.endpoints {
            let Ok(address) = ep.address.value.parse::<std::net::IpAddr>() else {
                self.err(&ep.address.referenced, format!("`{}` is not an IP address", ep.address.value));
                return None;
            };
            // An IPv4-mapped IPv6 address is IPv4 to the API server (netutils.IsIPv6String), so not of an IPv6 slice.
            let mapped = matches!(address, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            if IpFamily::of(address) != family || mapped {
                self.err(&ep.address.referenced, format!("{address} is not of the slice's addressType {family:?}"));
                return None;
            }
            // The API server refuses these as endpoint addresses (ValidateEndpointIP).
            if address.is_loopback() || address.is_unspecified() || is_link_local(address) {
                self.err(
                    &ep.address.referenced,
                    format!(
                        "{address}: the API server refuses loopback, link-local (unicast and multicast) and \
                         unspecified endpoint addresses"
                    ),
                );
                return None;
            }
            if let Some(h) = &ep.hostname
                && !self.label("hostname", h, false)
            {
                return None;
            }
            endpoints.push(SliceEndpointSpec {
                address,
                ready: ep.ready,
                hostname: ep.hostname.as_ref().map(|h| h.value.clone()),
            });
        }
        Some(Action::CreateEndpointSlice(EndpointSliceSpec { service, name, family, ports, endpoints }))
    }
}

/// Link-local unicast (169.254.0.0/16, fe80::/10) or link-local multicast (224.0.0.0/24, ff02::/16).
fn is_link_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local() || v4.octets()[..3] == [224, 0, 0],
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local() || v6.segments()[0] == 0xff02,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::{Action, StepKind, parse};

    const HEAD: &str = "name: t\ndescription: d\nsteps:\n  - createNamespace: test\n";

    fn error(steps: &str) -> String {
        match parse(Path::new("t.yaml"), &format!("{HEAD}{steps}")) {
            Ok(_) => panic!("accepted:\n{steps}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_selectorless_service_takes_hand_written_slices() {
        let plan = parse(
            Path::new("t.yaml"),
            &format!(
                "{HEAD}  - expose: {{namespace: test, name: ext, selector: {{}}, port: 80}}\n  \
                 - createEndpointSlice: {{namespace: test, service: ext, ports: [{{port: 80}}, {{name: p}}], \
                 endpoints: [{{address: 192.0.2.1}}, {{address: 192.0.2.2, ready: false, hostname: b}}]}}\n"
            ),
        )
        .expect("valid");
        let StepKind::Action(Action::CreateEndpointSlice(spec)) = &plan.steps[2].kind else { panic!("not a slice") };
        assert_eq!(spec.name, "ext-1");
        assert_eq!((spec.ports[0].port, spec.ports[1].port), (Some(80), None));
        assert!(spec.endpoints[0].ready && !spec.endpoints[1].ready);
        assert_eq!(spec.endpoints[1].hostname.as_deref(), Some("b"));
    }

    #[test]
    fn bad_slices_are_refused_where_they_are_wrong() {
        let expose = "  - createDeployment: {namespace: test, name: web}\n  \
                      - expose: {namespace: test, deployment: web, port: 80}\n  \
                      - expose: {namespace: test, name: ext, selector: {}, port: 80}\n";
        // (step, the token the error points at, what it says)
        let cases = [
            ("  - createEndpointSlice: {namespace: test, service: web, endpoints: []}\n", "web", "has a selector"),
            ("  - createEndpointSlice: {namespace: test, service: nope, endpoints: []}\n", "nope", "does not exist"),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, addressType: IPv6, endpoints: [{address: 10.0.0.1}]}\n",
                "10.0.0.1",
                "not of the slice's addressType",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, endpoints: [{address: 127.0.0.1}]}\n",
                "127.0.0.1",
                "loopback",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, endpoints: [{address: x}]}\n",
                "x}",
                "not an IP",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, addressType: IPv6, endpoints: [{address: \"::ffff:10.0.0.1\"}]}\n",
                "\"::ffff",
                "not of the slice's addressType",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, endpoints: [{address: 224.0.0.5}]}\n",
                "224",
                "link-local",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, ports: [{name: Bad_Name}], endpoints: []}\n",
                "Bad_Name",
                "port name",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, ports: [{port: 0}], endpoints: []}\n",
                "0}",
                "1-65535",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, endpoints: [{address: 10.0.0.1, hostname: A_b}]}\n",
                "A_b",
                "hostname",
            ),
            (
                "  - createEndpointSlice: {namespace: test, service: ext, addressType: FQDN, endpoints: []}\n",
                "FQDN",
                "IPv4 or IPv6",
            ),
        ];
        for (step, token, says) in cases {
            let column = step.find(token).expect("token in step") + 1;
            let e = error(&format!("{expose}{step}"));
            assert!(e.contains(&format!("t.yaml:8:{column}:")) && e.contains(says), "{step}\n→ {e}");
        }
        let e = error(&format!(
            "{expose}  - createEndpointSlice: {{namespace: test, service: ext, name: s, endpoints: []}}\n  \
             - createEndpointSlice: {{namespace: test, service: ext, name: s, endpoints: []}}\n"
        ));
        assert!(e.contains("t.yaml:9:") && e.contains("already exists"), "{e}");
        let e = error(
            "  - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, selector: {}, port: 80}\n",
        );
        assert!(e.contains("selects no deployment"), "{e}");
    }
}
