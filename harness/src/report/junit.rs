//! JUnit XML (via quick-junit, nextest's writer) from the same comparison the HTML renders: one `<testsuite>` per run,
//! one `<testcase>` per scenario × target.
//!
//! - A failure's `message` is the failing step's one-line story (`step 5 at scenarios/x.yaml:8: summary: why`); its
//!   text holds expected vs actual (and, for DNS, every search candidate tried).
//! - An **expected failure** is `<skipped type="expected-failure" message="expected failure: REASON (profile:line)">`
//!   with the failure detail as text, the convention pytest uses for xfail: CI systems show it as not run, not red.
//! - An **unexpected pass** is a passing test case with the property `svcbench.verdict = unexpected-pass` and a
//!   `system-out` line saying which profile entry is stale.
//! - Every test case carries `svcbench.verdict` (`pass`, `fail`, `expected-fail`, `unexpected-pass`, `skipped`).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::Value;

use super::{
    compare::Comparison,
    differences,
    profile::{Verdict, verdict},
};
use crate::results::{ScenarioResult, StepResult};

/// Renders the comparison as JUnit XML.
///
/// # Errors
/// quick-junit could not serialize (it rejects nothing svcbench writes; kept for the writer's signature).
pub fn render(c: &Comparison) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("svcbench");
    let mut total = Duration::ZERO;
    for run in &c.runs {
        let res = &run.input.results;
        let mut suite = TestSuite::new(run.label.as_str());
        let duration = secs(res.duration_ms);
        total += duration;
        suite.set_time(duration);
        suite.add_property(Property::new("target", res.target.name.as_str()));
        suite.add_property(Property::new("target.description", res.target.description.as_str()));
        suite.add_property(Property::new("run_id", res.run_id.as_str()));
        suite.add_property(Property::new("started_at", res.started_at.as_str()));
        suite.add_property(Property::new("schema_version", res.schema_version.to_string()));
        if let Some(p) = &run.input.profile {
            suite.add_property(Property::new("profile", p.path.display().to_string()));
            suite.add_property(Property::new("profile.implementation", p.implementation.as_str()));
        }
        for s in &res.scenarios {
            let v = verdict(s, run.input.profile.as_ref());
            let entry = run.input.profile.as_ref().and_then(|p| p.expected_failure(&s.name).map(|e| (p, e)));
            let status = match v {
                Verdict::Passed | Verdict::UnexpectedPass => TestCaseStatus::success(),
                Verdict::Failed => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    if let Some(step) = s.first_failure() {
                        st.set_message(headline(s, step));
                        st.set_type(if step.kind == "action" { "action rejected" } else { "assertion failed" });
                        st.set_description(detail(s, step));
                    } else {
                        st.set_message("failed");
                    }
                    st
                }
                Verdict::ExpectedFail => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_type("expected-failure");
                    let (reason, at) = entry
                        .map(|(p, e)| (e.reason.clone(), format!("{}:{}", p.path.display(), e.line)))
                        .unwrap_or_default();
                    st.set_message(format!("expected failure: {reason} ({at})"));
                    if let Some(step) = s.first_failure() {
                        st.set_description(detail(s, step));
                    }
                    st
                }
                Verdict::Skipped => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(match s.first_not_permitted() {
                        Some(step) => format!(
                            "not run from step {} (line {}): {}",
                            step.index,
                            step.line,
                            step.message.as_deref().unwrap_or_default()
                        ),
                        None => "not run".to_owned(),
                    });
                    st
                }
                // JUnit has no third verdict: a skip typed `inconclusive` is neither a pass nor a failure to CI.
                Verdict::Inconclusive => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_type("inconclusive");
                    match s.first_inconclusive() {
                        Some(step) => {
                            st.set_message(format!(
                                "inconclusive at step {} (line {}): {}",
                                step.index,
                                step.line,
                                step.message.as_deref().unwrap_or_default()
                            ));
                            st.set_description(detail(s, step));
                        }
                        None => {
                            st.set_message("inconclusive");
                        }
                    }
                    st
                }
            };
            let mut case = TestCase::new(s.name.as_str(), status);
            case.set_classname(format!("svcbench.{}", res.target.name));
            case.set_time(secs(s.duration_ms));
            case.set_assertions(s.steps.iter().filter(|st| st.kind == "assert").count());
            case.add_property(Property::new("svcbench.verdict", v.slug()));
            case.add_property(Property::new("source", s.source.as_str()));
            let mut system_out = String::new();
            if v == Verdict::UnexpectedPass
                && let Some((p, e)) = entry
            {
                case.add_property(Property::new("svcbench.expected_failure", e.reason.as_str()));
                system_out.push_str(&format!(
                    "unexpected pass: {}:{} lists `{}` as an expected failure ({}), but it passed; remove it from the profile if the fix is intended\n",
                    p.path.display(),
                    e.line,
                    s.name,
                    e.reason
                ));
            }
            let diffs = differences::scenario_differences(c, &s.name);
            if !diffs.is_empty() {
                case.add_property(Property::new("svcbench.differing_steps", diffs.len().to_string()));
                system_out.push_str(&differences_text(c, &diffs));
            }
            if !system_out.is_empty() {
                case.set_system_out(system_out);
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.set_time(total);
    report.to_string()
}

/// The steps where the implementations differ, one line per implementation under each step.
fn differences_text(c: &Comparison, diffs: &[differences::StepDifference]) -> String {
    let mut text = String::new();
    for d in diffs {
        text.push_str(&format!(
            "differs at step {} (line {}, {}): {}\n",
            d.index,
            d.line,
            d.aspects.join(", "),
            d.summary
        ));
        for (run, cell) in c.runs.iter().zip(&d.cells) {
            let Some(o) = cell else {
                text.push_str(&format!("  {}: not run\n", run.label));
                continue;
            };
            let time = o.convergence_ms.map(|t| format!(" after {t:.0} ms")).unwrap_or_default();
            let answer = if o.answer.is_empty() { String::new() } else { format!(": {}", o.answer) };
            text.push_str(&format!("  {}: {:?}{time}{answer}\n", run.label, o.outcome));
        }
    }
    text
}

fn secs(ms: f64) -> Duration {
    // Saturating: a NaN or an infinite time from a hand-edited results file must not panic the report.
    let year = Duration::from_secs(365 * 24 * 3600);
    Duration::try_from_secs_f64((ms / 1000.0).max(0.0)).map_or(year, |d| d.min(year))
}

/// `step 5 at scenarios/x.yaml:8: summary: why`.
fn headline(s: &ScenarioResult, step: &StepResult) -> String {
    let mut h = format!("step {} at {}:{}: {}", step.index, s.source, step.line, step.summary);
    if let Some(m) = &step.message {
        h.push_str(": ");
        h.push_str(m);
    }
    h
}

/// Expected vs actual, pretty-printed, and the search candidates a resolver tried.
fn detail(s: &ScenarioResult, step: &StepResult) -> String {
    let mut d = format!("{}:{}: {}\n", s.source, step.line, step.summary);
    if let Some(m) = &step.message {
        d.push_str(&format!("  why:      {m}\n"));
    }
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default().replace('\n', "\n            ");
    if let Some(e) = &step.expected {
        d.push_str(&format!("  expected: {}\n", pretty(e)));
    }
    if let Some(a) = &step.actual {
        let mut shown = a.clone();
        if let Some(obj) = shown.as_object_mut() {
            obj.remove("tried");
        }
        d.push_str(&format!("  actual:   {}\n", pretty(&shown)));
        if let Some(tried) = a.get("tried").and_then(Value::as_array).filter(|t| !t.is_empty()) {
            d.push_str("  candidates tried:\n");
            for (i, t) in tried.iter().enumerate() {
                let field = |k: &str| t.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                let records = t
                    .get("records")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                d.push_str(&format!(
                    "    {}. {} → {} [{}]\n",
                    i + 1,
                    field("name").unwrap_or_default(),
                    field("rcode").unwrap_or_default(),
                    records
                ));
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::{
        report::{compare::RunInput, profile::Profile},
        results::{Outcome, RunResults, TargetInfo},
    };

    fn step(index: usize, outcome: Outcome) -> StepResult {
        StepResult {
            index,
            line: 10 + index as u64,
            kind: "assert".into(),
            summary: format!("check {index}"),
            step: json!({}),
            outcome,
            duration_ms: 1.0,
            convergence_ms: None,
            attempts: 3,
            expected: Some(json!({"records": ["A 10.0.0.1"]})),
            actual: Some(
                json!({"records": ["A 10.0.0.2"], "tried": [{"name": "web.test.svc.cluster.local.", "rcode": "NOERROR", "records": ["A 10.0.0.2"]}]}),
            ),
            message: (outcome == Outcome::Failed).then(|| "records: missing A 10.0.0.1".into()),
            note: None,
            measurement: None,
        }
    }

    fn scenario(name: &str, outcome: Outcome) -> ScenarioResult {
        let steps = if outcome == Outcome::Failed {
            vec![step(1, Outcome::Passed), step(2, Outcome::Failed)]
        } else {
            vec![step(1, Outcome::Passed)]
        };
        ScenarioResult {
            name: name.into(),
            description: String::new(),
            source: format!("scenarios/{name}.yaml"),
            target: "t".into(),
            outcome,
            duration_ms: 12.0,
            steps,
        }
    }

    #[test]
    fn cases_carry_verdicts_and_failures_say_what_differed() {
        let profile = Profile::parse(
            Path::new("prof.yaml"),
            "implementation: t\nexpectedFailures:\n  - {scenario: xfail, reason: not supported}\n  - {scenario: xpass, reason: was broken}\n",
        )
        .unwrap();
        let results = RunResults {
            schema_version: 1,
            run_id: "r1".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 50.0,
            target: TargetInfo { name: "t".into(), description: "d".into() },
            scenarios: vec![
                scenario("ok", Outcome::Passed),
                scenario("bad", Outcome::Failed),
                scenario("xfail", Outcome::Failed),
                scenario("xpass", Outcome::Passed),
            ],
        };
        let c = Comparison::new(vec![RunInput { results, profile: Some(profile), source: None }]);
        let xml = render(&c).unwrap();
        let parsed = Report::deserialize_from_str(&xml).unwrap();
        let cases = &parsed.test_suites[0].test_cases;
        assert_eq!(cases.len(), 4);
        assert!(matches!(cases[0].status, TestCaseStatus::Success { .. }));
        let TestCaseStatus::NonSuccess { message, description, .. } = &cases[1].status else { panic!("{xml}") };
        assert_eq!(
            message.as_ref().unwrap().as_str(),
            "step 2 at scenarios/bad.yaml:12: check 2: records: missing A 10.0.0.1"
        );
        let description = description.as_ref().unwrap().as_str();
        assert!(description.contains("\"A 10.0.0.2\""), "{description}");
        assert!(description.contains("1. web.test.svc.cluster.local. → NOERROR [A 10.0.0.2]"), "{description}");
        let TestCaseStatus::Skipped { message, ty, .. } = &cases[2].status else { panic!("{xml}") };
        assert_eq!(message.as_ref().unwrap().as_str(), "expected failure: not supported (prof.yaml:3)");
        assert_eq!(ty.as_ref().unwrap().as_str(), "expected-failure");
        assert!(matches!(cases[3].status, TestCaseStatus::Success { .. }));
        assert!(xml.contains("name=\"svcbench.verdict\" value=\"unexpected-pass\""), "{xml}");
        assert!(xml.contains("unexpected pass: prof.yaml:4 lists `xpass`"), "{xml}");
        assert_eq!(parsed.tests, 4);
        assert_eq!(parsed.failures, 1);
    }
}
