//! The `svcbench` binary as a user runs it: validation errors, exit codes, `run` writing results.

use std::{path::Path, process::Command};

fn svcbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svcbench"))
}

fn write(dir: &Path, name: &str, text: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Each malformed file must give exactly `file:line:column: reason` on one line and exit code 2, never a panic.
#[test]
fn malformed_scenarios_report_file_line_column_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name: bad\ndescription: d\nsteps:\n  - createNamespace: test\n";
    let cases: &[(&str, Vec<u8>, &str, &str)] = &[
        ("unknown-field.yaml", format!("{head}  - createDeployment: {{namespace: test, name: nginx, replicaz: 2}}\n").into(), ":5:", "unknown field `replicaz`"),
        ("wrong-type.yaml", format!("{head}  - createDeployment: {{namespace: test, name: nginx, replicas: two}}\n").into(), ":5:", "expected a whole number from 0 to 4294967295"),
        ("bad-name.yaml", format!("{head}  - createDeployment: {{namespace: test, name: Nginx}}\n").into(), ":5:", "`Nginx`"),
        ("service-name.yaml", format!("{head}  - createDeployment: {{namespace: test, name: web}}\n  - expose: {{namespace: test, deployment: web, name: 1web, port: 80}}\n").into(), ":6:", "DNS-1035"),
        ("undeclared-ns.yaml", format!("{head}  - createDeployment: {{namespace: prod, name: nginx}}\n").into(), ":5:", "namespace `prod` is not created"),
        ("unknown-ref.yaml", format!("{head}  - expose: {{namespace: test, deployment: nginx, port: 80}}\n").into(), ":5:", "deployment `test/nginx` is not created"),
        ("deleted-ref.yaml", format!("{head}  - createDeployment: {{namespace: test, name: web}}\n  - expose: {{namespace: test, deployment: web, port: 80}}\n  - deleteService: {{namespace: test, name: web}}\n  - expectConnect: {{from: test, namespace: test, service: web, port: 80, result: refused}}\n").into(), ":8:", "service `test/web` does not exist"),
        ("unknown-step.yaml", format!("{head}  - frobnicate: x\n").into(), ":5:", "unknown variant `frobnicate`"),
        ("bad-rcode.yaml", format!("{head}  - expectDns: {{from: test, name: x, rcode: NXDOMIAN}}\n").into(), ":5:", "unknown rcode `NXDOMIAN`"),
        ("bad-timeout.yaml", format!("{head}  - expectResolvConf: {{from: test, search: [], ndots: 5, timeout: soon}}\n").into(), ":5:", "timeout `soon`"),
        ("syntax.yaml", b"name: bad\ndescription: d\nsteps:\n  - createNamespace: [test\n".to_vec(), ":4:", ""),
        ("missing-field.yaml", b"name: bad\nsteps: []\n".to_vec(), ":", "missing field `description`"),
        ("empty.yaml", Vec::new(), ":1:1:", ""),
        ("not-utf8.yaml", b"name: bad\ndescription: \xff\xfe\n".to_vec(), ":2:14:", "not UTF-8"),
        ("literal-field.yaml", format!("{head}  - createNamespace: {{name: dns-version, literl: true}}\n").into(), ":5:", "unknown field `literl`"),
        ("literal-prefix.yaml", format!("{head}  - createNamespace: {{name: svcb-x, literal: true}}\n").into(), ":5:29:", "`svcb-` is the prefix"),
        ("literal-no-name.yaml", format!("{head}  - createNamespace: {{literal: true}}\n").into(), ":5:", "missing field `name`"),
        ("literal-taken.yaml", format!("{head}  - createNamespace: {{name: test, literal: true}}\n").into(), ":5:29:", "namespace `test` already exists"),
        ("pod-index.yaml", format!("{head}  - createDeployment: {{namespace: test, name: web, replicas: 2}}\n  - setPodReady: {{namespace: test, deployment: web, index: 2, ready: false}}\n").into(), ":6:", "out of range"),
    ];
    for (name, text, location, reason) in cases {
        let path = write(dir.path(), name, text);
        let out = svcbench().arg("validate").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: exit code; stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        let prefix = format!("{}{location}", path.display());
        assert!(first.starts_with(&prefix), "{name}: `{first}` should start with `{prefix}`");
        assert!(first.contains(reason), "{name}: `{first}` should mention `{reason}`");
        let after_col = first[path.display().to_string().len()..].splitn(4, ':').collect::<Vec<_>>();
        assert!(
            after_col.len() == 4 && after_col[1].parse::<u64>().is_ok() && after_col[2].parse::<u64>().is_ok(),
            "{name}: `{first}`"
        );
        // `run` refuses the same file with the same code before starting anything.
        let run = svcbench().arg("run").arg(&path).arg("--reports-dir").arg(dir.path()).output().unwrap();
        assert_eq!(run.status.code(), Some(2), "{name}: run exit code");
    }
}

#[test]
fn validate_accepts_the_shipped_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    // Only the scenario files: `profiles/`, the schema and the reference live beside them.
    let files = svcbench::scenario::discover(&dir).unwrap();
    let out = svcbench().arg("validate").args(&files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("ok ")).count(), files.len());
}

#[test]
fn duplicate_scenario_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"name: same\ndescription: d\nsteps:\n  - createNamespace: test\n";
    let a = write(dir.path(), "a.yaml", text);
    let b = write(dir.path(), "b.yaml", text);
    let out = svcbench().arg("validate").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("also used by"));
}

#[test]
fn run_writes_results_and_exit_code_follows_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write(dir.path(), "pass.yaml", b"name: pass\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, port: 80}\n  - expectConnect: {from: test, namespace: test, service: web, port: 80, result: connected}\n");
    // A wrong expectation: once the proxy is programmed the service has endpoints, so connections are not refused.
    let fail = write(dir.path(), "fail.yaml", b"name: fail\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, port: 80}\n  - expectConnect: {from: test, namespace: test, service: web, port: 80, result: connected}\n  - expectConnect: {from: test, namespace: test, service: web, port: 80, result: refused, timeout: 300ms}\n  - scale: {namespace: test, deployment: web, replicas: 0}\n");
    let reports = dir.path().join("reports");
    let out = svcbench().arg("run").arg(&pass).arg(&fail).arg("--reports-dir").arg(&reports).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS embedded::pass"), "{stdout}");
    assert!(stdout.contains("FAIL embedded::fail"), "{stdout}");
    assert!(stdout.contains("fail.yaml:8"), "failure names file and line: {stdout}");
    let run_dir = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["schema_version"], 1);
    assert_eq!(results["scenarios"][0]["outcome"], "passed");
    assert_eq!(results["scenarios"][1]["outcome"], "failed");
    let steps = results["scenarios"][1]["steps"].as_array().unwrap();
    assert_eq!(steps[4]["outcome"], "failed");
    assert_eq!(steps[4]["actual"]["outcome"], "connected");
    assert!(steps[4]["attempts"].as_u64().unwrap() > 1, "polled until the timeout");
    assert_eq!(steps[5]["outcome"], "skipped");
}

#[test]
fn compare_writes_one_report_with_a_folder_per_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = svcbench()
        .current_dir(&root)
        .args(["compare", "--implementations", "embedded", "scenarios/dns-basics.yaml", "-o"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("embedded: 1/1 passed, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("note: kube-proxy ipvs: not compared"),
        "IPVS is said to be missing, not omitted: {stdout}"
    );
    for file in ["index.html", "junit.xml", "embedded/results.json"] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("kube-proxy ipvs: not compared"), "the note is in the report too");
}

#[test]
fn compare_rejects_unknown_and_unavailable_implementations() {
    let dir = tempfile::tempdir().unwrap();
    for (list, message) in [
        ("embedded,lab-nope", "unknown implementation `lab-nope`: one of embedded, lab-iptables, lab-nftables"),
        ("lab-ipvs", "kube-proxy ipvs: not compared"),
    ] {
        let out = svcbench().args(["compare", "--implementations", list, "-o"]).arg(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{list}: {stderr}");
        assert!(stderr.contains(message), "{list}: {stderr}");
    }
}

/// `sameBackend` alone used to send one request, which is always "the same backend": it must catch a Service without
/// affinity (found by a newcomer writing their first scenarios, issue #23).
#[test]
fn same_backend_without_a_count_catches_a_service_without_affinity() {
    let dir = tempfile::tempdir().unwrap();
    let steps = "  - createNamespace: test\n  - createDeployment: {namespace: test, name: web, replicas: 3}\n";
    let sticky = write(dir.path(), "sticky.yaml", format!("name: sticky\ndescription: d\nsteps:\n{steps}  - expose: {{namespace: test, deployment: web, port: 80, sessionAffinity: ClientIP}}\n  - expectHttp: {{from: test, url: \"http://web/hostname\", sameBackend: true}}\n").as_bytes());
    let loose = write(dir.path(), "loose.yaml", format!("name: loose\ndescription: d\nsteps:\n{steps}  - expose: {{namespace: test, deployment: web, port: 80}}\n  - expectHttp: {{from: test, url: \"http://web/hostname\", sameBackend: true, timeout: 2s}}\n").as_bytes());
    let reports = dir.path().join("reports");
    let out = svcbench().arg("run").arg(&sticky).arg(&loose).arg("--reports-dir").arg(&reports).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS embedded::sticky") && stdout.contains("FAIL embedded::loose"), "{stdout}");
}

/// When the wrong pods answer, the failure shows what the proxy had to choose from: every endpoint with its
/// conditions, zone and hints (what the nftables prefer-close flake of issue #20 needs to be told apart).
#[test]
fn wrong_pods_answering_shows_the_endpoint_slices() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: wrong\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: a, replicas: 2, labels: {tier: be}}\n  - createDeployment: {namespace: test, name: b, replicas: 2, labels: {tier: be}}\n  - expose: {namespace: test, name: be, selector: {tier: be}, port: 80}\n  - expectHttp: {from: test, url: \"http://be/hostname\", reachesAll: {readyPodsOf: a}, timeout: 1s}\n";
    let file = write(dir.path(), "wrong.yaml", text.as_bytes());
    let reports = dir.path().join("reports");
    let out = svcbench().arg("run").arg(&file).arg("--reports-dir").arg(&reports).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let run_dir = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
    let step = &results["scenarios"][0]["steps"][4];
    let endpoints = step["actual"]["endpoint_slices"].as_array().unwrap_or_else(|| panic!("no slices in {step}"));
    assert_eq!(endpoints.len(), 4, "{step}");
    assert!(endpoints.iter().all(|e| e["pod"].is_string() && e["ready"] == true && e.get("for_zones").is_some()));
}
