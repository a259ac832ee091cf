//! Reports as a user gets them: `svcbench report` re-rendering saved results (one run, or two side by side) into
//! index.html and junit.xml, `svcbench run` writing all three files, expected-failure profiles, input errors with
//! locations and exit code 2 — and the HTML opened in a real browser (headless Chromium), which must render it
//! without console errors, with the matrix and charts present, and save a screenshot.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use hdrhistogram::{
    Histogram,
    serialization::{Serializer, V2DeflateSerializer},
};
use serde_json::json;
use svcbench::{
    results::{
        ConvergenceReport, DnsLoadReport, HttpLoadReport, LatencySummary, Measurement, Outcome, PercentilePoint,
        RunResults, ScenarioResult, StepResult, TargetInfo,
    },
    stats::Fairness,
};

fn svcbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svcbench"))
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------------------------
// Synthetic results: measurements are built from real HdrHistograms, as the load generators will record them.

/// Deterministic pseudo-random numbers (xorshift64*), so the charts are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A latency histogram (µs): log-normal around `median_us`, with one sample in `tail_every` `tail_factor` times slower.
fn histogram(seed: u64, median_us: f64, tail_every: u64, tail_factor: f64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut rng = Rng(seed);
    for i in 0..20_000u64 {
        let mut v = median_us * (0.35 * rng.gauss()).exp();
        if i % tail_every == 0 {
            v *= tail_factor * (1.0 + rng.next());
        }
        h.record((v as u64).clamp(1, 60_000_000)).unwrap();
    }
    h
}

/// The report-side view of a histogram: summary numbers, HdrHistogram's percentile iteration and the serialized form.
fn latency_summary(h: &Histogram<u64>) -> LatencySummary {
    let mut percentiles: Vec<PercentilePoint> = Vec::new();
    for v in h.iter_quantiles(5) {
        let p = PercentilePoint { quantile: v.quantile_iterated_to(), value_us: v.value_iterated_to() as f64 };
        if percentiles.last() != Some(&p) {
            percentiles.push(p);
        }
    }
    let mut buf = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut buf).unwrap();
    let q = |q| h.value_at_quantile(q) as f64;
    LatencySummary {
        count: h.len(),
        min_us: h.min() as f64,
        mean_us: h.mean(),
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: h.max() as f64,
        percentiles,
        histogram: base64::engine::general_purpose::STANDARD.encode(buf),
    }
}

fn step(index: usize, summary: &str, outcome: Outcome) -> StepResult {
    StepResult {
        index,
        line: 3 + index as u64,
        kind: "assert".into(),
        summary: summary.into(),
        step: json!({"type": "assert"}),
        outcome,
        duration_ms: 2.0,
        convergence_ms: (outcome == Outcome::Passed).then_some(1.5 + index as f64),
        attempts: if outcome == Outcome::Failed { 40 } else { 1 },
        expected: None,
        actual: None,
        message: None,
        note: None,
        measurement: None,
    }
}

fn scenario(name: &str, target: &str, steps: Vec<StepResult>) -> ScenarioResult {
    let outcome = if steps.iter().any(|s| s.outcome == Outcome::Failed) { Outcome::Failed } else { Outcome::Passed };
    ScenarioResult {
        name: name.into(),
        description: format!("{name}: a synthetic scenario <with markup> & more"),
        source: format!("scenarios/{name}.yaml"),
        target: target.into(),
        outcome,
        duration_ms: 25.0,
        steps,
    }
}

/// A failing DNS step: which records differed and which candidates were tried.
fn dns_failure() -> StepResult {
    let mut s = step(4, "from test: glibc nginx A → ready pod IPs of test/nginx", Outcome::Failed);
    s.expected = Some(json!({"name": "nginx", "rcode": ["NOERROR"], "records": ["A 10.1.128.5", "A 10.1.128.6"],
        "candidates": ["nginx.test.svc.cluster.local"]}));
    s.actual = Some(json!({"rcode": "NOERROR", "records": ["A 10.1.60.191"], "tried": [
        {"name": "nginx.test.svc.cluster.local.", "rcode": "NOERROR", "records": ["A 10.1.60.191"], "ttls": [30],
         "transport": "udp", "authoritative": true, "soa_in_authority": false}]}));
    s.message =
        Some("records: missing A 10.1.128.5, A 10.1.128.6; unexpected A 10.1.60.191 <script>alert(1)</script>".into());
    s
}

/// A passing DNS step: its data is in the report too, collapsed.
fn dns_pass() -> StepResult {
    let mut s = step(2, "from test: glibc nginx A → ClusterIP of test/nginx", Outcome::Passed);
    s.expected = Some(json!({"name": "nginx", "rcode": ["NOERROR"], "records": ["A 10.96.0.10"]}));
    s.actual = Some(json!({"rcode": "NOERROR", "records": ["A 10.96.0.10"], "tried": [
        {"name": "nginx.test.svc.cluster.local.", "rcode": "NOERROR", "records": ["A 10.96.0.10"]}]}));
    s
}

/// One run of a synthetic target: `variant` 0 or 1 changes latencies, spread and which scenarios fail.
fn run(target: &str, run_id: &str, variant: u64) -> RunResults {
    let slow = variant as f64;
    let per_backend: BTreeMap<String, u64> = match variant {
        0 => vec![("web-5d8c-a1", 2510), ("web-5d8c-b2", 2475), ("web-5d8c-c3", 2530), ("web-5d8c-d4", 2485)],
        // A backend that got nothing: max/min is ∞, which JSON can only write as null; the report must still read it.
        _ => vec![
            ("web-5d8c-a1", 3300),
            ("web-5d8c-b2", 2200),
            ("web-5d8c-c3", 2400),
            ("web-5d8c-d4", 2100),
            ("web-5d8c-e5", 0),
        ],
    }
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let counts: Vec<u64> = per_backend.values().copied().collect();
    let mut http = step(4, "load GET http://web/hostname at 2000/s for 5s", Outcome::Passed);
    http.kind = "measure".into();
    http.measurement = Some(Measurement::HttpLoad(HttpLoadReport {
        target: "http://web:80/hostname from test".into(),
        mode: "new-connection".into(),
        connections: 64,
        rate: Some(2000.0),
        sent: 10_000 - 500 * variant,
        intended: 10_000,
        achieved_rate: 2000.0 - 100.0 * variant as f64,
        ok: 10_000 - 3 * variant,
        duration_ms: 5000.0,
        throughput: 1999.0 - slow,
        per_backend,
        errors: if variant == 1 { [("reset".to_owned(), 3)].into() } else { BTreeMap::new() },
        fairness: Fairness::of(&counts),
        latency: latency_summary(&histogram(7 + variant, 300.0 + 150.0 * slow, 400, 12.0 + 20.0 * slow)),
        cores: 2,
        pace: None,
    }));
    let mut dns = step(3, "DNS load nginx.test.svc.cluster.local at 5000/s", Outcome::Passed);
    dns.kind = "measure".into();
    dns.measurement = Some(Measurement::DnsLoad(DnsLoadReport {
        names: vec!["nginx.test.svc.cluster.local.".into()],
        rate: 5000.0,
        source_ports: 64,
        sent: 25_000,
        intended: 25_000,
        achieved_rate: 5000.0,
        answered: 25_000 - 10 * variant,
        timeouts: 10 * variant,
        qps: 4999.0,
        rcodes: [("NOERROR".to_owned(), 25_000 - 10 * variant)].into(),
        latency: latency_summary(&histogram(99 + variant, 90.0 + 60.0 * slow, 1000, 30.0)),
        pace: None,
    }));
    let mut conv = step(5, "scale test/web to 3 (measure convergence)", Outcome::Passed);
    conv.kind = "measure".into();
    conv.measurement = Some(Measurement::Convergence(ConvergenceReport {
        change: "scale test/web to 3".into(),
        endpoints_ms: Some(12.0 + 30.0 * slow),
        dns_ms: Some(40.0 + 900.0 * slow),
        traffic_ms: if variant == 0 { Some(85.0) } else { None },
    }));
    let mut scenarios = vec![
        scenario("dns-basics", target, vec![step(1, "create namespace test", Outcome::Passed), dns_pass()]),
        scenario(
            "headless-recreate",
            target,
            if variant == 1 {
                vec![step(1, "create namespace test", Outcome::Passed), dns_failure(), step(5, "GET", Outcome::Skipped)]
            } else {
                vec![step(1, "create namespace test", Outcome::Passed), step(4, "ok", Outcome::Passed)]
            },
        ),
        scenario(
            "session-affinity",
            target,
            if variant == 0 {
                let mut f = step(2, "from test: GET http://web/ 20 times answered by one pod", Outcome::Failed);
                f.expected = Some(json!({"same_backend": true}));
                f.actual = Some(json!({"per_pod": {"web-a": 11, "web-b": 9}}));
                f.message = Some("answered by 2 different pods, expected one".into());
                vec![step(1, "expose", Outcome::Passed), f]
            } else {
                vec![step(1, "expose", Outcome::Passed), step(2, "same backend", Outcome::Passed)]
            },
        ),
        scenario("load-story", target, vec![step(1, "create namespace test", Outcome::Passed), dns, http, conv]),
    ];
    if variant == 1 {
        scenarios.push(scenario("nftables-only", target, vec![step(1, "create namespace test", Outcome::Passed)]));
    }
    RunResults {
        schema_version: 1,
        run_id: run_id.into(),
        started_at: "2026-11-27T10:00:00Z".into(),
        duration_ms: 4000.0,
        target: TargetInfo { name: target.into(), description: format!("{target} (synthetic)") },
        scenarios,
    }
}

/// Two saved runs with their profiles beside them, as `svcbench run --profile` leaves run folders.
fn two_runs(dir: &Path) -> (PathBuf, PathBuf) {
    let a = write(
        dir,
        "a/results.json",
        &serde_json::to_vec_pretty(&run("iptables", "20261127T100000Z-aaaaa", 0)).unwrap(),
    );
    write(
        dir,
        "a/profile.yaml",
        b"implementation: kube-proxy-iptables\nexpectedFailures:\n  - scenario: session-affinity\n    reason: affinity not configured in this test cluster\n    link: javascript:alert(1)\n",
    );
    let b = write(
        dir,
        "b/results.json",
        &serde_json::to_vec_pretty(&run("nftables", "20261127T110000Z-bbbbb", 1)).unwrap(),
    );
    write(
        dir,
        "b/profile.yaml",
        b"implementation: kube-proxy-nftables\nexpectedFailures:\n  - scenario: session-affinity\n    reason: was broken in an older release\n",
    );
    (a, b)
}

fn render(dir: &Path, inputs: &[&Path], extra: &[&str]) -> (String, String) {
    let out = svcbench().arg("report").args(inputs).arg("-o").arg(dir).args(extra).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (std::fs::read_to_string(dir.join("index.html")).unwrap(), stdout)
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

// ---------------------------------------------------------------------------------------------------------------

#[test]
fn report_compares_two_targets_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let out = dir.path().join("out");
    let (html, stdout) = render(&out, &[&a, &b], &[]);
    assert!(stdout.contains("iptables: 3/4 passed, 0 failed, 1 expected failures, 0 unexpected passes"), "{stdout}");
    assert!(stdout.contains("nftables: 3/5 passed, 1 failed, 0 expected failures, 1 unexpected passes"), "{stdout}");

    // Self-contained: nothing is fetched, from anywhere.
    for forbidden in ["<link", " src=", "@import", "url(", "<iframe", "<object", "<embed", "<img"] {
        assert!(!html.contains(forbidden), "report references `{forbidden}`");
    }
    // Matrix: both targets as columns, every verdict kind, and a scenario only one run has.
    let start = html.find("id=\"matrix\"").unwrap();
    let matrix = &html[start..start + html[start..].find("</table>").unwrap()];
    assert!(matrix.contains("iptables</th>") && matrix.contains("nftables</th>"), "{matrix}");
    assert_eq!(count(matrix, "<tr data-problem="), 5);
    for (badge, n) in [
        ("v-pass\">pass", 6),
        ("v-fail\">fail", 1),
        ("v-expected-fail\">expected fail", 1),
        ("v-unexpected-pass\">unexpected pass", 1),
        ("v-not-run", 1),
    ] {
        assert_eq!(count(matrix, badge), n, "{badge} in {matrix}");
    }
    // The failing DNS check: which records differed, which candidates were tried, the message escaped.
    assert!(html.contains("<code>A 10.1.128.5</code> <span class=\"tag\">missing</span>"));
    assert!(html.contains("<code>A 10.1.60.191</code> <span class=\"tag\">unexpected</span>"));
    assert!(html.contains("<td><code>nginx.test.svc.cluster.local.</code></td><td>NOERROR</td>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>alert"));
    assert!(html.contains("step 4 at <code>scenarios/headless-recreate.yaml:7</code>"));
    // A passing assertion's expected vs actual is there too, collapsed in its step row (once per run).
    assert_eq!(
        count(
            &html,
            "<tr class=\"same\"><th scope=\"row\">records</th><td><ul class=\"vals\"><li><code>A 10.96.0.10</code>"
        ),
        2
    );
    // Expected failure and the flagged unexpected pass, with the reasons from each run's own profile.
    assert!(html.contains("affinity not configured in this test cluster"));
    assert!(!html.contains("href=\"javascript:"), "only web links become links");
    assert!(html.contains("id=\"flags\""), "unexpected passes are flagged");
    assert!(html.contains("was broken in an older release"));
    // Charts: HTTP and DNS latency curves with one curve per target, per-backend bars per target, convergence.
    assert_eq!(count(&html, "<svg class=\"chart latency\""), 2);
    assert_eq!(count(&html, "<polyline class=\"series\""), 4);
    assert_eq!(count(&html, "<svg class=\"chart backends\""), 2);
    assert_eq!(count(&html, "<svg class=\"chart convergence\""), 1);
    assert!(html.contains(">99.9%</text>"), "the quantile axis reaches 99.9 %");
    assert!(html.contains("not measured"), "a missing convergence time is shown as such");
    assert!(html.contains("<td class=\"num\">∞</td>"), "max/min with a starved backend");

    // Where the two implementations observed different things: per scenario, the differing step with each
    // column's observation (the DNS answer's shape, not its addresses).
    assert_eq!(count(&html, "<h4>Where the implementations differ</h4>"), 2, "headless-recreate and session-affinity");
    assert!(html.contains("<code>NOERROR · 1 record · TTL 30</code>"), "the answer's shape is shown");

    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    // (The step's summary is the first run's: scenario files can change between runs.)
    assert!(junit.contains("differs at step 4 (line 7, outcome, answer): ok\n"), "{junit}");
    assert!(junit.contains("  nftables: Failed after 2 ms: NOERROR · 1 record · TTL 30\n"), "{junit}");
    assert!(junit.contains("differs at step 2 (line 5, outcome): from test: GET http://web/ 20 times"), "{junit}");
    let report = quick_junit::Report::deserialize_from_str(&junit).unwrap();
    assert_eq!(report.test_suites.len(), 2);
    assert_eq!((report.tests, report.failures), (9, 1));
    assert!(junit.contains("type=\"expected-failure\""), "{junit}");
    assert!(
        junit.contains("message=\"step 4 at scenarios/headless-recreate.yaml:7: from test: glibc nginx A"),
        "{junit}"
    );
}

#[test]
fn the_same_target_twice_is_told_apart_by_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_runs(dir.path());
    let mut again = run("iptables", "20261127T120000Z-ccccc", 1);
    again.scenarios.truncate(1);
    let c = write(dir.path(), "c/results.json", &serde_json::to_vec(&again).unwrap());
    let (html, _) = render(&dir.path().join("out"), &[&a, &c], &[]);
    assert!(html.contains("iptables · 20261127T100000Z-aaaaa</th>"), "column heading names the run");
    assert!(html.contains("iptables · 20261127T120000Z-ccccc</th>"));
}

#[test]
fn an_explicit_profile_replaces_the_saved_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_runs(dir.path());
    let profile = write(
        dir.path(),
        "p.yaml",
        b"implementation: other\nexpectedFailures:\n  - {scenario: no-such-scenario, reason: typo}\n",
    );
    let out = svcbench()
        .arg("report")
        .arg(&a)
        .arg("-o")
        .arg(dir.path().join("out"))
        .arg("--profile")
        .arg(&profile)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("warning: {}:3:5: scenario `no-such-scenario`", profile.display())), "{stderr}");
    let html = std::fs::read_to_string(dir.path().join("out/index.html")).unwrap();
    assert!(!html.contains("expected fail</span>"), "session-affinity is a plain failure without the saved profile");
    assert!(html.contains("v-fail\">fail"));
}

/// Every bad input names its file (and line:column where there is one) and exits 2, never a panic.
#[test]
fn bad_inputs_are_located_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let newer =
        serde_json::to_string(&run("t", "r", 0)).unwrap().replacen("\"schema_version\":1", "\"schema_version\":99", 1);
    let cases: Vec<(Vec<PathBuf>, Vec<String>, String)> = vec![
        (
            vec![write(d, "syntax.json", b"{\n  \"schema_version\": 1,\n  oops\n}\n")],
            vec![],
            format!("{}:3:3:", d.join("syntax.json").display()),
        ),
        (vec![write(d, "newer.json", newer.as_bytes())], vec![], "schema_version 99 is newer".into()),
        (vec![write(d, "other.json", b"{\"hello\": 1}")], vec![], "not an svcbench results file".into()),
        (vec![d.join("missing.json")], vec![], format!("{}:", d.join("missing.json").display())),
        (
            vec![write(d, "ok/results.json", serde_json::to_string(&run("t", "r", 0)).unwrap().as_bytes())],
            vec![
                "--profile".into(),
                write(d, "bad.yaml", b"implementation: x\nexpectedFailures:\n  - scenario: a\n    reasons: r\n")
                    .display()
                    .to_string(),
            ],
            format!("{}:4:5: unknown field `reasons`", d.join("bad.yaml").display()),
        ),
    ];
    for (inputs, extra, expect) in cases {
        let out = svcbench().arg("report").args(&inputs).arg("-o").arg(d.join("out")).args(&extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{inputs:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(&expect), "{inputs:?}: `{stderr}` should contain `{expect}`");
    }
    // A broken profile saved beside results is reported the same way.
    let run_dir = d.join("saved");
    write(&run_dir, "results.json", serde_json::to_string(&run("t", "r", 0)).unwrap().as_bytes());
    write(&run_dir, "profile.yaml", b"implementation: x\nexpectedFailures:\n  - {scenario: Bad, reason: r}\n");
    let out = svcbench().arg("report").arg(&run_dir).arg("-o").arg(d.join("out")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:3:16: scenario name:", run_dir.join("profile.yaml").display())),
        "{stderr}"
    );
}

const PASS: &[u8] = b"name: pass\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, port: 80}\n  - expectConnect: {from: test, namespace: test, service: web, port: 80, result: connected}\n";
const FAIL: &[u8] = b"name: fail\ndescription: d\nsteps:\n  - createNamespace: test\n  - createDeployment: {namespace: test, name: web}\n  - expose: {namespace: test, deployment: web, port: 80}\n  - expectDns: {from: test, name: web, records: [{clusterIPOf: web}], candidates: [web.test.svc.cluster.local, web.svc.cluster.local], timeout: 200ms}\n";

#[test]
fn run_writes_results_html_and_junit_and_expected_failures_do_not_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write(dir.path(), "pass.yaml", PASS);
    let fail = write(dir.path(), "fail.yaml", FAIL);
    let profile = write(
        dir.path(),
        "impl.yaml",
        b"implementation: example\nexpectedFailures:\n  - scenario: fail\n    reason: stops after the first candidate\n  - scenario: pass\n    reason: used to be broken\n",
    );
    let reports = dir.path().join("reports");
    // Not a terminal (piped): no progress output, only the result lines.
    let out = svcbench()
        .arg("run")
        .arg(&pass)
        .arg(&fail)
        .arg("--reports-dir")
        .arg(&reports)
        .arg("--profile")
        .arg(&profile)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "an expected failure and an unexpected pass do not fail the run: {stdout}");
    assert!(stdout.contains("XFAIL embedded::fail"), "{stdout}");
    assert!(
        stdout.contains(&format!("expected failure ({}:3): stops after the first candidate", profile.display())),
        "{stdout}"
    );
    assert!(stdout.contains("fail.yaml:7"), "the failure itself is still shown: {stdout}");
    assert!(stdout.contains("XPASS embedded::pass"), "{stdout}");
    assert!(!stderr.contains("scenario 1/2") && !stderr.contains('\r'), "progress stays off without a TTY: {stderr:?}");
    let run_dir = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    for f in ["results.json", "index.html", "junit.xml", "profile.yaml"] {
        assert!(run_dir.join(f).is_file(), "{f} missing in {}", run_dir.display());
    }
    assert!(stdout.contains(&format!("report: {}", run_dir.join("index.html").display())), "{stdout}");
    let html = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(html.contains("v-expected-fail\">expected fail") && html.contains("v-unexpected-pass\">unexpected pass"));
    assert!(html.contains("expected, not tried"), "the candidate the resolver never tried is shown");
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<skipped message=\"expected failure: stops after the first candidate"), "{junit}");
    assert!(junit.contains("type=\"expected-failure\""), "{junit}");

    // Re-rendering the folder alone keeps the expectations (the profile was saved beside the results).
    let again = dir.path().join("again");
    let (html2, _) = render(&again, &[&run_dir], &[]);
    assert!(html2.contains("v-expected-fail\">expected fail"));

    // Without the profile the same failure fails the run.
    let out = svcbench().arg("run").arg(&pass).arg(&fail).arg("--reports-dir").arg(&reports).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL embedded::fail"));
}

/// A load whose own generator fell behind is inconclusive: its own badge and reason in the report, a JUnit skip of
/// type `inconclusive`, counted apart on the console — not a pass, and not a failure of the target.
#[test]
fn an_inconclusive_scenario_is_neither_a_pass_nor_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = run("embedded", "20261127T120000Z-ccccc", 0);
    let why = "the load generator fell behind its own schedule (stalled 1.42 s in 1 interval over 50 ms)";
    let story = results.scenarios.iter_mut().find(|s| s.name == "load-story").unwrap();
    story.outcome = Outcome::Inconclusive;
    let step = story.steps.iter_mut().find(|s| matches!(s.measurement, Some(Measurement::DnsLoad(_)))).unwrap();
    step.outcome = Outcome::Inconclusive;
    step.message = Some(why.into());
    let Some(Measurement::DnsLoad(dns)) = &mut step.measurement else { unreachable!() };
    dns.pace = Some(svcbench::probe::pace::ClientPace {
        tolerance_ms: 50.0,
        stalls: 1,
        stalled_ms: 1420.0,
        worst_stall_ms: 1420.0,
        wake_lag_p99_ms: 40.0,
        send_lag_max_ms: 1400.0,
        cpu_ms: Some(1000.0),
        cpu_wait_ms: Some(2640.0),
        on_schedule: 2,
        on_schedule_failed: 0,
        on_schedule_latency: latency_summary(&histogram(5, 100.0, 1000, 2.0)),
    });
    let input = write(dir.path(), "c/results.json", &serde_json::to_vec_pretty(&results).unwrap());
    let out = dir.path().join("out");
    let (html, stdout) = render(&out, &[&input], &[]);
    assert!(stdout.contains("1 inconclusive"), "{stdout}");
    assert!(html.contains("v-inconclusive\">inconclusive"), "the step and the matrix say inconclusive");
    assert!(html.contains("stalled 1.42 s in 1 interval"), "the reason is in the report");
    assert!(html.contains("behind: 1 stall(s), 1420 ms"), "the load table says the client fell behind");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("type=\"inconclusive\""), "{junit}");
    assert!(junit.contains("inconclusive at step 3 (line 6): the load generator fell behind"), "{junit}");
}

#[test]
fn run_rejects_a_bad_profile_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write(dir.path(), "pass.yaml", PASS);
    let profile =
        write(dir.path(), "p.yaml", b"implementation: x\nexpectedFailures:\n  - scenario: pass\n    reason: ''\n");
    let out = svcbench()
        .arg("run")
        .arg(&pass)
        .arg("--reports-dir")
        .arg(dir.path())
        .arg("--profile")
        .arg(&profile)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with(&format!("{}:4:13: reason must not be empty", profile.display())), "{stderr}");

    // The whole suite (discovered, not chosen) must know every listed scenario: an unknown one is an error.
    let scenarios = dir.path().join("suite");
    write(&scenarios, "pass.yaml", PASS);
    let typo =
        write(dir.path(), "typo.yaml", b"implementation: x\nexpectedFailures:\n  - {scenario: pas, reason: r}\n");
    let out = svcbench()
        .arg("run")
        .arg("--scenarios-dir")
        .arg(&scenarios)
        .arg("--reports-dir")
        .arg(dir.path())
        .arg("--profile")
        .arg(&typo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:5: scenario `pas` is not among the scenarios run", typo.display())),
        "{stderr}"
    );
}

#[test]
fn the_shipped_profiles_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/profiles");
    let profiles: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!profiles.is_empty());
    let scenarios: Vec<String> = svcbench::scenario::discover(&dir.join(".."))
        .unwrap()
        .iter()
        .map(|p| svcbench::scenario::load(p).unwrap().name)
        .collect();
    for p in profiles {
        let profile = svcbench::report::profile::Profile::load(&p).unwrap_or_else(|e| panic!("{e:?}"));
        let unknown = profile.unknown_scenarios(scenarios.iter().map(String::as_str));
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The browser.

/// Chromium to drive: `SVCBENCH_CHROMIUM`, else the Debian package's binary, else one on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SVCBENCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// What one headless Chromium run produced.
struct BrowserRun {
    stdout: String,
    /// Every console message the page produced (Chromium logs them on stderr as `…:CONSOLE:…] "text", source: …`).
    console: Vec<String>,
}

/// Runs headless Chromium on `page` with `args` (`--dump-dom`, `--screenshot=…`), with a fresh profile directory,
/// no network and a time limit; on timeout the whole process group is killed.
fn run_chromium(chromium: &Path, page: &Path, args: &[String]) -> BrowserRun {
    use std::os::unix::process::CommandExt;
    let work = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (work.path().join("stdout"), work.path().join("stderr"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", work.path().join("profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        // Its own process group, so a hung browser and all its helper processes can be killed together.
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!("chromium did not finish within 90 s: {}", std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Helpers that outlived the browser (there should be none) go with it.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}): {stderr}");
    BrowserRun { stdout: std::fs::read_to_string(&out_path).unwrap_or_default(), console: console_messages(&stderr) }
}

/// Console messages in Chromium's log. Headless Chromium logs every level (log, warn, error, uncaught exception,
/// CSP violation) the same way, so the report — which never logs on purpose — must produce none at all.
fn console_messages(stderr: &str) -> Vec<String> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_owned).collect()
}

fn skip_without_chromium() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        println!("SKIPPED: headless Chromium not found (apt-get install chromium, or set SVCBENCH_CHROMIUM)");
    }
    found
}

#[test]
fn console_error_detection_catches_a_throwing_page() {
    let Some(chromium) = skip_without_chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.html",
        b"<!DOCTYPE html><title>t</title><p>x</p><script>throw new Error('deliberate failure')</script>",
    );
    let run = run_chromium(&chromium, &bad, &["--dump-dom".into()]);
    assert!(run.console.iter().any(|l| l.contains("Uncaught Error: deliberate failure")), "{:?}", run.console);
    let logs =
        write(dir.path(), "error.html", b"<!DOCTYPE html><title>t</title><script>console.error('bad thing')</script>");
    let run = run_chromium(&chromium, &logs, &["--dump-dom".into()]);
    assert!(run.console.iter().any(|l| l.contains("bad thing")), "{:?}", run.console);
    let quiet = write(dir.path(), "quiet.html", b"<!DOCTYPE html><title>t</title><p>fine</p>");
    let run = run_chromium(&chromium, &quiet, &["--dump-dom".into()]);
    assert!(run.console.is_empty(), "{:?}", run.console);
    assert!(run.stdout.contains("<p>fine</p>"));
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = skip_without_chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_runs(dir.path());
    let out = dir.path().join("out");
    render(&out, &[&a, &b], &[]);
    let page = out.join("index.html");

    let run = run_chromium(&chromium, &page, &["--dump-dom".into()]);
    assert!(run.console.is_empty(), "the report logged to the console: {:#?}", run.console);
    let dom = run.stdout;
    assert!(dom.contains("data-report-ready=\"1\""), "the report's script did not run to the end");
    assert_eq!(count(&dom, "<tr data-problem="), 5, "matrix rows");
    assert!(dom.contains("<svg class=\"chart latency\"") && dom.contains("<polyline class=\"series\""));
    assert!(dom.contains("<svg class=\"chart backends\"") && dom.contains("<svg class=\"chart convergence\""));

    let shot = dir.path().join("report.png");
    run_chromium(&chromium, &page, &[format!("--screenshot={}", shot.display()), "--window-size=1400,2400".into()]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((w, h), (1400, 2400));
    // A blank page compresses to a few KB; tables, badges and curves do not.
    assert!(png.len() > 60_000, "screenshot looks empty ({} bytes)", png.len());
    println!("screenshot: {} ({} bytes)", shot.display(), png.len());
    if std::env::var_os("SVCBENCH_KEEP_SCREENSHOT").is_some() {
        let kept = dir.keep();
        println!("kept: {}", kept.display());
    }
}
