//! The resolver flavours against the real programs they stand for: glibc `getaddrinfo` (`getent ahostsv4`), musl
//! `getaddrinfo` (a tiny program built with `musl-gcc -static`), BusyBox `nslookup`, `dig` and `dig +search`, each
//! run in a private mount namespace whose `/etc/resolv.conf`, `/etc/hosts` and `/etc/nsswitch.conf` are the pod's
//! (as kubelet writes them), against the embedded cluster's DNS on its real port 53. For every name of a table
//! (short, partial, FQDN, trailing dot, many dots, cross-namespace, a namespace's name, missing, upper case,
//! localhost, the pod's own name, an ExternalName) the flavour must find exactly the addresses the program finds.
//!
//! Needs root (port 53 and `unshare --mount`); a missing program is reported as SKIPPED (`.ci/run` installs
//! `bind9-dnsutils busybox musl-tools`).

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use svcbench::{
    probe::{AddressMap, ProbeContext, dns},
    scenario::{
        Action, ContainerPort, DeploymentSpec, ObjectRef, Protocol, QueryType, ResolverFlavour, ServicePortSpec,
        ServiceSpec, TargetPort, Transport,
    },
    targets::embedded::{EmbeddedConfig, EmbeddedTarget},
};

fn have(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

fn obj(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef { namespace: namespace.into(), name: name.into() }
}

fn service(name: &str, headless: bool, external_name: Option<&str>) -> Action {
    Action::CreateService(ServiceSpec {
        object: obj("test", name),
        selector: if external_name.is_some() { Default::default() } else { [("app".into(), "nginx".into())].into() },
        ports: if external_name.is_some() {
            Vec::new()
        } else {
            vec![ServicePortSpec {
                name: None,
                port: 80,
                target_port: TargetPort::Number(80),
                protocol: Protocol::Tcp,
                node_port: None,
            }]
        },
        headless,
        publish_not_ready: false,
        session_affinity: None,
        external_name: external_name.map(str::to_owned),
        exposure: Default::default(),
    })
}

/// musl's getaddrinfo for AF_INET (or AF_INET6 with a second argument `6`): one address per line, or
/// `error <code>` and exit 2.
const MUSL_GAI: &str = r#"
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    struct addrinfo hints, *res, *p;
    int v6 = argc > 2 && strcmp(argv[2], "6") == 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = v6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int err = getaddrinfo(argv[1], 0, &hints, &res);
    if (err) { printf("error %d %s\n", err, gai_strerror(err)); return 2; }
    for (p = res; p; p = p->ai_next) {
        char buf[64];
        if (v6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr, buf, sizeof buf);
        else inet_ntop(AF_INET, &((struct sockaddr_in *)p->ai_addr)->sin_addr, buf, sizeof buf);
        printf("%s\n", buf);
    }
    return 0;
}
"#;

/// The pod's files, bind-mounted over the host's in a private mount namespace for one program run.
struct PodEtc {
    resolv_conf: PathBuf,
    hosts: PathBuf,
    nsswitch: PathBuf,
}

impl PodEtc {
    fn write(dir: &Path, ctx: &ProbeContext, tag: &str) -> Self {
        let etc = Self {
            resolv_conf: dir.join(format!("resolv-{tag}.conf")),
            hosts: dir.join(format!("hosts-{tag}")),
            nsswitch: dir.join("nsswitch.conf"),
        };
        std::fs::write(&etc.resolv_conf, ctx.resolv_conf.render()).unwrap();
        std::fs::write(&etc.hosts, ctx.hosts.render()).unwrap();
        // What container images ship: files, then DNS (no mDNS, no myhostname).
        std::fs::write(&etc.nsswitch, "hosts: files dns\n").unwrap();
        etc
    }

    /// Runs `program args…` with the pod's /etc files; (exit success, stdout). A failure to set the files up is a
    /// test failure, not an empty answer.
    fn run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let script = "mount --bind \"$1\" /etc/resolv.conf && mount --bind \"$2\" /etc/hosts && \
                      mount --bind \"$3\" /etc/nsswitch.conf && shift 3 && exec timeout 20 \"$@\"";
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&self.resolv_conf)
            .arg(&self.hosts)
            .arg(&self.nsswitch)
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} under unshare: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let setup_failed =
            matches!(out.status.code(), Some(124..=127)) || stderr.contains("mount:") || stderr.contains("unshare:");
        assert!(!setup_failed, "{program} {args:?} did not run with the pod's files ({}): {stderr}", out.status);
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The IPv4 addresses in a program's output: whole lines (getent's first column, musl, dig +short) or BusyBox's
/// `Address: ip` lines after the server block.
fn addresses(flavour: ResolverFlavour, stdout: &str) -> BTreeSet<IpAddr> {
    match flavour {
        ResolverFlavour::Busybox => stdout
            .split("\n\n")
            .skip(1)
            .flat_map(|block| block.lines())
            .filter_map(|l| l.strip_prefix("Address:"))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect(),
        _ => stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|w| w.parse::<IpAddr>().ok())
            .collect(),
    }
}

/// The addresses an emulated lookup found (CNAMEs on the way are not addresses).
fn emulated_addresses(lookup: &dns::DnsLookup) -> BTreeSet<IpAddr> {
    lookup
        .records
        .iter()
        .filter_map(|r| match r {
            dns::DnsRecord::Address { ip } => Some(*ip),
            _ => None,
        })
        .collect()
}

#[test]
fn resolver_flavours_find_what_the_real_programs_find() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root (the real resolvers ask port 53, and each runs in its own mount namespace)");
        return;
    }
    let missing: Vec<&str> =
        ["getent", "busybox", "dig", "musl-gcc", "unshare"].into_iter().filter(|p| !have(p)).collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: {missing:?} not installed (apt-get install bind9-dnsutils busybox musl-tools; .ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let musl = dir.path().join("musl-gai");
    let source = dir.path().join("gai.c");
    std::fs::write(&source, MUSL_GAI).unwrap();
    let built = Command::new("musl-gcc").args(["-static", "-O1", "-o"]).arg(&musl).arg(&source).status().unwrap();
    assert!(built.success(), "musl-gcc could not build the getaddrinfo program");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Pods bind their sockets as they are created: inside the runtime.
    let _guard = rt.enter();
    let target = rt.block_on(EmbeddedTarget::start(EmbeddedConfig::default())).unwrap();
    let cluster = target.cluster().clone();
    let dns_real = cluster.ports().resolve(SocketAddr::new(IpAddr::V4(cluster.dns_ip()), 53));
    assert_eq!(dns_real.port(), 53, "as root the cluster DNS serves its real port, which real resolvers need");
    for action in [
        Action::CreateNamespace { name: "test".into() },
        Action::CreateNamespace { name: "other".into() },
        Action::CreateDeployment(DeploymentSpec {
            object: obj("test", "nginx"),
            replicas: 2,
            ports: vec![ContainerPort { name: None, port: 80 }],
            labels: [("app".to_owned(), "nginx".to_owned())].into(),
            hostname: None,
            subdomain: None,
            stateful: false,
            termination_grace: Duration::ZERO,
            node: None,
        }),
        service("nginx", false, None),
        service("nginx-headless", true, None),
        service("ext", false, Some("nginx.test.svc.cluster.local")),
    ] {
        cluster.apply(&action).unwrap_or_else(|e| panic!("{action:?}: {e}"));
    }
    rt.block_on(cluster.wait_programmed(cluster.snapshot().generation));

    let names = [
        "nginx",
        "nginx.test",
        "nginx.test.svc",
        "nginx.test.svc.cluster.local",
        "nginx.test.svc.cluster.local.",
        "NGINX.Test.SVC.cluster.local.",
        "nginx-headless",
        "ext",
        "ext.test.svc.cluster.local.",
        "missing",
        "a.b.c.d.e.f",
        "test",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "svcbench-agent",
    ];
    let flavours = [
        ResolverFlavour::Glibc,
        ResolverFlavour::Musl,
        ResolverFlavour::Busybox,
        ResolverFlavour::Dig,
        ResolverFlavour::DigSearch,
    ];
    let musl_path = musl.to_string_lossy().into_owned();
    let mut table = Vec::new();
    let mut differences = Vec::new();
    for client_ns in ["test", "other"] {
        let ctx = target.probe_context(client_ns).unwrap();
        let etc = PodEtc::write(dir.path(), &ctx, client_ns);
        for name in names {
            for flavour in flavours {
                let (program, args): (&str, Vec<&str>) = match flavour {
                    ResolverFlavour::Glibc => ("getent", vec!["ahostsv4", name]),
                    ResolverFlavour::Musl => (musl_path.as_str(), vec![name]),
                    ResolverFlavour::Busybox => ("busybox", vec!["nslookup", "-type=a", name]),
                    ResolverFlavour::Dig => ("dig", vec!["+short", "+time=2", "+tries=1", name, "A"]),
                    ResolverFlavour::DigSearch => ("dig", vec!["+search", "+short", "+time=2", "+tries=1", name, "A"]),
                    ResolverFlavour::Hickory => {
                        unreachable!("hickory runs the real crate: there is no emulation to check")
                    }
                };
                let (ok, stdout) = etc.run(program, &args);
                let real = addresses(flavour, &stdout);
                // getaddrinfo's own verdict (getent and the musl program exit 0 only when it found addresses).
                if matches!(flavour, ResolverFlavour::Glibc | ResolverFlavour::Musl) && ok == real.is_empty() {
                    differences
                        .push(format!("{client_ns} {name} {flavour:?}: exit status {ok} with addresses {real:?}"));
                }
                let lookup = rt
                    .block_on(dns::lookup(&ctx, name, QueryType::A, flavour, Transport::Udp))
                    .unwrap_or_else(|e| panic!("{flavour:?} {name}: {e}"));
                let emulated = emulated_addresses(&lookup);
                let line = format!("{client_ns:>5} {name:<32} {flavour:<10?} real {real:?} emulated {emulated:?}");
                if real != emulated {
                    differences.push(format!("{line}\n      program output: {}", stdout.trim().replace('\n', " | ")));
                }
                table.push(line);
            }
        }
    }
    // musl for IPv6: the hosts file's `::1 localhost`, and a name the file has only for IPv4 (EAI_NONAME, no DNS).
    let ctx = target.probe_context("test").unwrap();
    let etc = PodEtc::write(dir.path(), &ctx, "test");
    for name in ["localhost", "ip6-localhost", "svcbench-agent", "nginx", "missing"] {
        let (ok, stdout) = etc.run(&musl_path, &[name, "6"]);
        let real = addresses(ResolverFlavour::Musl, &stdout);
        let lookup =
            rt.block_on(dns::lookup(&ctx, name, QueryType::Aaaa, ResolverFlavour::Musl, Transport::Udp)).unwrap();
        let emulated = emulated_addresses(&lookup);
        let line = format!(" test {name:<32} Musl/AAAA  real {real:?} emulated {emulated:?}");
        if real != emulated || ok == real.is_empty() {
            differences.push(format!("{line}\n      program output: {}", stdout.trim()));
        }
        table.push(line);
    }
    println!("{}", table.join("\n"));
    rt.block_on(cluster.shutdown());
    assert!(
        differences.is_empty(),
        "{} of {} lookups differ:\n{}",
        differences.len(),
        table.len(),
        differences.join("\n")
    );
}
