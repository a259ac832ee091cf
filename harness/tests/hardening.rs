//! Issue #12 (hardening) through the binary: every reproduced input gives its exact `file:line:column: reason`
//! and exit code 2 (never a panic, a hang or an exhausted machine), and the load bounds hold for a whole `run`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

fn svcbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svcbench"))
}

const HEAD: &str = "name: bad\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n";

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `svcbench ARGS`, killing it if it has not finished within `limit` (a hang is a failure, not a stuck test).
fn run_within(args: &[&std::ffi::OsStr], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = svcbench().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("svcbench {args:?} still running after {limit:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

/// `validate FILE` must exit 2 with exactly `FILE:LOCATION: REASON` as its first line of stderr.
fn assert_invalid(path: &Path, location: &str, reason: &str) {
    let (out, _) = run_within(&["validate".as_ref(), path.as_os_str()], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{}: {stderr}", path.display());
    assert_eq!(out.status.code(), Some(2), "{}: exit code; stderr: {stderr}", path.display());
    let expected = format!("{}:{location}: {reason}", path.display());
    assert_eq!(stderr.lines().next().unwrap_or_default(), expected);
}

#[test]
fn accepted_but_invalid_scenarios_are_file_line_column_errors() {
    let dir = tempfile::tempdir().unwrap();
    let long_name = vec!["a".repeat(60); 5].join(".");
    let long_label = format!("{}.com", "b".repeat(64));
    let prefix = "s".repeat(60);
    let cases: Vec<(&str, String, &str, String)> = vec![
        // 1. Rates a generator cannot schedule (they panicked `run`).
        ("rate-http.yaml", r#"  - measureHttp: {from: test, url: "http://web/hostname", rate: 1e-300, requests: 10, duration: 2s}"#.into(),
            "6:65", "rate must be 0 (closed loop) or 0.001 to 1000000 requests/s, not 1e-300".into()),
        ("rate-http-19.yaml", r#"  - measureHttp: {from: test, url: "http://web/hostname", rate: 1e-19, requests: 10}"#.into(),
            "6:65", "rate must be 0 (closed loop) or 0.001 to 1000000 requests/s, not 1e-19".into()),
        ("rate-dns.yaml", "  - measureDns: {from: test, names: [web.test.svc.cluster.local], rate: 1e-300}".into(),
            "6:73", "rate must be 0 (closed loop) or 0.001 to 10000000 queries/s, not 1e-300".into()),
        ("queries.yaml", "  - measureDns: {from: test, names: [web.test.svc.cluster.local], queries: 0}".into(),
            "6:76", "queries must be 1-10000000".into()),
        // 5. Accepted but invalid.
        ("external-long.yaml", format!("  - createExternalName: {{namespace: test, name: ext, externalName: {long_name}}}"),
            "6:68", format!("externalName `{long_name}` is not a DNS name: 304 characters, over the 253 of a DNS name")),
        ("external-label.yaml", format!("  - createExternalName: {{namespace: test, name: ext, externalName: {long_label}}}"),
            "6:68", format!("externalName `{long_label}` is not a DNS name: a label has 64 characters, over the 63 of a DNS label")),
        ("prefix.yaml", format!("  - createServices: {{namespace: test, deployment: web, prefix: {prefix}, count: 1000, port: 80}}"),
            "6:64", format!("service prefix `{prefix}` makes names like `{prefix}-999` (64 characters), over the 63 of a DNS label")),
        ("timeout-1ns.yaml", "  - expectResolvConf: {from: test, search: [], ndots: 5, timeout: 1ns}".into(),
            "6:67", "timeout `1ns` must be between 1ms and 1h".into()),
        ("duration-1ns.yaml", r#"  - measureHttp: {from: test, url: "http://web/hostname", duration: 1ns}"#.into(),
            "6:69", "duration `1ns` must be between 1ms and 1h".into()),
        ("dup-ports.yaml", "  - expose: {namespace: test, deployment: web, ports: [{name: a, port: 80}, {name: b, port: 80}]}".into(),
            "6:93", "duplicate port 80/TCP: a service has each port number once per protocol".into()),
        ("wait-long.yaml", "  - wait: 11m".into(),
            "6:11", "wait `11m` must be between 1ms and 10m".into()),
        ("wait-1ns.yaml", "  - wait: 1ns".into(),
            "6:11", "wait `1ns` must be between 1ms and 10m".into()),
        ("tag.yaml", "  - createDeployment: !custom {namespace: test, name: web2}".into(),
            "6:31", "unsupported tag `!custom`".into()),
        ("connect-port.yaml", "  - expose: {namespace: test, deployment: web, port: 80}\n  - expectConnect: {from: test, namespace: test, service: web, port: 0, result: refused}".into(),
            "7:70", "port must be 1-65535".into()),
        // 6. Over what the machine can run.
        ("pods.yaml", (0..11).map(|i| format!("  - createDeployment: {{namespace: test, name: big{i}, replicas: 1000}}")).collect::<Vec<_>>().join("\n"),
            "15:5", "10001 pods alive after this step, over the limit of 10000 pods at once".into()),
    ];
    for (name, step, location, reason) in cases {
        let path = write(dir.path(), name, format!("{HEAD}{step}\n").as_bytes());
        assert_invalid(&path, location, &reason);
    }
}

/// Item 6: every pod port and ClusterIP service port is a listening socket, so a scenario over the open-file limit
/// is refused at the step that crosses it (it used to fail at run time with "Too many open files"). The child gets a
/// hard limit of 4096, so the figure does not depend on this machine's.
#[test]
fn over_the_open_file_limit_is_refused_at_validation() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{HEAD}  - createServices: {{namespace: test, deployment: web, prefix: svc, count: 3500, port: 80}}\n");
    let path = write(dir.path(), "sockets.yaml", text.as_bytes());
    let mut cmd = svcbench();
    cmd.arg("validate").arg(&path);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let expected = format!(
        "{}:6:5: 1 pod ports and 3500 ClusterIP service ports need as many listening sockets, which with 1024 kept \
         for DNS and probes is over the open-file limit of 4096 (ulimit -n)",
        path.display()
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default(), expected);
}

/// Item 3: a pod-set reference inside `ready`/`notReady`/`serving`/`terminating` reported `file:0:0`.
#[test]
fn pod_set_references_have_real_locations() {
    let dir = tempfile::tempdir().unwrap();
    for (i, key) in ["ready", "notReady", "serving", "terminating"].iter().enumerate() {
        let text = format!(
            "{HEAD}  - expose: {{namespace: test, deployment: web, port: 80}}\n  - expectEndpoints: {{namespace: test, \
             service: web, {key}: {{readyPodsOf: nope}}}}\n"
        );
        let path = write(dir.path(), &format!("podset-{i}.yaml"), text.as_bytes());
        let column = 54 + key.len() + 2;
        assert_invalid(&path, &format!("7:{column}"), "deployment `test/nope` is not created by an earlier step");
    }
}

/// Item 4: a device, a FIFO without a writer, a directory and an oversized file are refused at once.
#[test]
fn unbounded_inputs_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    assert_invalid(Path::new("/dev/zero"), "1:1", "cannot read: a character device, not a regular file");
    let fifo = dir.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert_invalid(&fifo, "1:1", "cannot read: a FIFO, not a regular file");
    assert_invalid(dir.path(), "1:1", "cannot read: a directory, not a regular file");
    let mut big = HEAD.as_bytes().to_vec();
    big.resize(4 * 1024 * 1024 + 1, b'#');
    let big = write(dir.path(), "big.yaml", &big);
    assert_invalid(
        &big,
        "1:1",
        "file is too large: 4194305 bytes, over the 4 MiB limit for scenario and profile files",
    );
    // Profiles are read the same way.
    let scenario = write(dir.path(), "ok.yaml", HEAD.as_bytes());
    let (out, _) = run_within(
        &["run".as_ref(), scenario.as_os_str(), "--profile".as_ref(), "/dev/zero".as_ref()],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/zero:1:1: cannot read: a character device, not a regular file"), "{stderr}");
}

/// Item 2: open-loop loads the generator cannot keep up with end at their `duration` and report the shortfall.
/// Each step's bound is 2 s of sending plus the 2 s in-flight timeout; before the fix the run took ~80 s.
#[test]
fn open_loop_loads_end_at_their_duration_and_report_the_shortfall() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "bound.yaml",
        b"name: bound\ndescription: d\nsteps:\n  - createNamespace: test\n  \
          - createDeployment: {namespace: test, name: nginx, replicas: 2}\n  \
          - expose: {namespace: test, deployment: nginx, port: 80}\n  \
          - measureHttp: {from: test, url: \"http://nginx/hostname\", rate: 1000000, requests: 300000, duration: 2s, maxErrorRate: 1}\n  \
          - measureDns: {from: test, names: [nginx.test.svc.cluster.local], rate: 10000000, queries: 10000000, duration: 2s, maxTimeoutRate: 1}\n",
    );
    let reports = dir.path().join("reports");
    let (out, took) = run_within(
        &["run".as_ref(), scenario.as_os_str(), "--reports-dir".as_ref(), reports.as_os_str()],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("bounded run took {took:?}");
    // Generous: the two bounds add up to 8 s; the old generators took ~32 s and ~50 s.
    assert!(took < Duration::from_secs(45), "run took {took:?}");
    assert!(stdout.contains("note: step 4 (line 7) sent "), "{stdout}");
    assert!(stdout.contains("of 300000 requests"), "{stdout}");
    assert!(stdout.contains("note: step 5 (line 8) sent ") && stdout.contains("of 10000000 queries"), "{stdout}");
    let results = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path().join("results.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(results).unwrap()).unwrap();
    for step in [3, 4] {
        let m = &doc["scenarios"][0]["steps"][step]["measurement"];
        let (sent, intended) = (m["sent"].as_u64().unwrap(), m["intended"].as_u64().unwrap());
        assert!(sent < intended && m["achieved_rate"].as_f64().unwrap() > 0.0, "{m}");
    }
    let http = &doc["scenarios"][0]["steps"][3]["measurement"];
    assert!(http["duration_ms"].as_f64().unwrap() < 2000.0 + 2000.0 + 1000.0, "{http}");
}
