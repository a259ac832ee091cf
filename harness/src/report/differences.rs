//! Where implementations differ: for a scenario run on several implementations, the steps whose observations are
//! not the same everywhere — the outcome, the DNS answer's shape (rcode, how many records, their TTLs, which search
//! candidates were tried) or how long the step took to hold. Addresses and generated names are left out of the
//! comparison: every cluster allocates its own, so they differ without meaning anything.
//!
//! HTML and JUnit both render from this, so the two reports never disagree about what differs.

use serde_json::Value;

use super::compare::Comparison;
use crate::results::{Outcome, StepResult};

/// A step's convergence differs when one run took over [`SLOW_MS`] longer than the (upper) median of the others and
/// over [`SLOWER`] times it: with three or more runs a cache serving an old answer for its TTL stands out, while the
/// seconds every real cluster needs to start pods (slower than the embedded target, alike across real
/// implementations) do not. With only two runs the other run is the median, so pod start-up shows too.
const SLOW_MS: f64 = 3_000.0;
/// See [`SLOW_MS`].
const SLOWER: f64 = 3.0;
/// TTLs differ when the largest ones are further apart than this: a cache hands out what is left of a TTL, which
/// drifts by the seconds between queries without meaning anything.
const TTL_SLACK_S: u64 = 5;

/// What one run observed at a step, reduced to what is comparable across implementations.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// How the step ended.
    pub outcome: Outcome,
    /// The answer's shape as shown, e.g. `NOERROR · 2 records · TTL 30` (empty for non-DNS steps).
    pub answer: String,
    /// What of the answer is compared: the shape without TTLs.
    pub answer_key: String,
    /// The largest TTL of the answer, s.
    pub max_ttl: Option<u64>,
    /// Time until the assertion held (or until it gave up), ms.
    pub convergence_ms: Option<f64>,
    /// Why it failed, if it did.
    pub message: Option<String>,
}

/// One step that differs, with every run's observation (`None`: the run did not reach or include it).
#[derive(Debug, Clone)]
pub struct StepDifference {
    /// Step number.
    pub index: usize,
    /// Line in the scenario file.
    pub line: u64,
    /// The step's summary.
    pub summary: String,
    /// What differs, in words: `outcome`, `answer`, `convergence`.
    pub aspects: Vec<&'static str>,
    /// Per run, in column order.
    pub cells: Vec<Option<Observation>>,
}

/// The shape of a DNS answer (`actual` of a DNS check) as shown, the same without TTLs, and the largest TTL; empty
/// for other checks.
fn dns_shape(actual: Option<&Value>) -> (String, String, Option<u64>) {
    let Some(actual) = actual.filter(|a| a.get("tried").is_some()) else { return (String::new(), String::new(), None) };
    let rcode = actual.get("rcode").and_then(Value::as_str).unwrap_or("?");
    let records = actual.get("records").and_then(Value::as_array).map_or(0, Vec::len);
    let tried = actual.get("tried").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut ttls: Vec<u64> = tried
        .last()
        .and_then(|t| t.get("ttls")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    ttls.sort_unstable();
    ttls.dedup();
    let mut key = format!("{rcode} · {records} record{}", if records == 1 { "" } else { "s" });
    let mut shape = key.clone();
    if !ttls.is_empty() {
        let list = ttls.iter().map(u64::to_string).collect::<Vec<_>>().join("/");
        shape.push_str(&format!(" · TTL {list}"));
    }
    if tried.len() > 1 {
        let names: Vec<&str> = tried.iter().filter_map(|t| t.get("name")?.as_str()).collect();
        let tried = format!(" · tried {}", names.join(", "));
        shape.push_str(&tried);
        key.push_str(&tried);
    }
    (shape, key, ttls.last().copied())
}

fn observe(step: &StepResult) -> Observation {
    let (answer, answer_key, max_ttl) = dns_shape(step.actual.as_ref());
    Observation {
        outcome: step.outcome,
        answer,
        answer_key,
        max_ttl,
        convergence_ms: step.convergence_ms.or((step.outcome == Outcome::Failed).then_some(step.duration_ms)),
        message: step.message.clone(),
    }
}

/// What differs between the observations present (at least two runs must have observed the step: one not reached
/// after an earlier failure observed nothing).
fn aspects(cells: &[Option<Observation>]) -> Vec<&'static str> {
    // A step not reached, or one whose measurement could not be judged, observed nothing to compare.
    let present: Vec<&Observation> =
        cells.iter().flatten().filter(|o| !matches!(o.outcome, Outcome::Skipped | Outcome::Inconclusive)).collect();
    if present.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    if present.iter().any(|o| o.outcome != present[0].outcome) {
        out.push("outcome");
    }
    if present.iter().any(|o| o.answer_key != present[0].answer_key) {
        out.push("answer");
    }
    let ttls: Vec<u64> = present.iter().filter_map(|o| o.max_ttl).collect();
    if let (Some(lo), Some(hi)) = (ttls.iter().min(), ttls.iter().max())
        && hi - lo > TTL_SLACK_S
    {
        out.push("TTL");
    }
    let times: Vec<f64> = present.iter().filter_map(|o| o.convergence_ms).collect();
    let outlier = (0..times.len()).any(|i| {
        let mut others: Vec<f64> = times.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, t)| *t).collect();
        others.sort_by(f64::total_cmp);
        let Some(median) = others.get(others.len() / 2).copied() else { return false };
        times[i] - median > SLOW_MS && times[i] > SLOWER * median
    });
    if outlier {
        out.push("convergence");
    }
    out
}

/// The steps of `scenario` that differ between the comparison's runs (none for a single run).
pub fn scenario_differences(c: &Comparison, scenario: &str) -> Vec<StepDifference> {
    if c.runs.len() < 2 {
        return Vec::new();
    }
    let results: Vec<_> = (0..c.runs.len()).map(|i| c.result(i, scenario)).collect();
    let mut indices: Vec<usize> = results.iter().flatten().flat_map(|r| r.steps.iter().map(|s| s.index)).collect();
    indices.sort_unstable();
    indices.dedup();
    let mut out = Vec::new();
    for index in indices {
        let steps: Vec<Option<&StepResult>> =
            results.iter().map(|r| r.and_then(|r| r.steps.iter().find(|s| s.index == index))).collect();
        // Actions only differ by being rejected, which fails the scenario and shows there; compare assertions.
        let Some(first) = steps.iter().flatten().next().copied() else { continue };
        if first.kind != "assert" {
            continue;
        }
        let cells: Vec<Option<Observation>> = steps.iter().map(|s| s.map(observe)).collect();
        let aspects = aspects(&cells);
        if !aspects.is_empty() {
            out.push(StepDifference { index, line: first.line, summary: first.summary.clone(), aspects, cells });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obs(outcome: Outcome, answer: &str, ms: f64) -> Option<Observation> {
        let max_ttl = answer.rsplit("TTL ").next().filter(|_| answer.contains("TTL")).and_then(|t| t.parse().ok());
        let answer_key = answer.split(" · TTL").next().unwrap_or_default().to_owned();
        Some(Observation {
            outcome,
            answer: answer.into(),
            answer_key,
            max_ttl,
            convergence_ms: Some(ms),
            message: None,
        })
    }

    #[test]
    fn dns_shape_keeps_rcode_count_ttls_and_candidates_but_not_addresses() {
        let a = json!({"rcode": "NOERROR", "records": ["10.96.0.5"], "tried": [
            {"name": "a.ns.svc.cluster.local.", "ttls": [30]}]});
        let b = json!({"rcode": "NOERROR", "records": ["10.96.7.9"], "tried": [
            {"name": "a.ns.svc.cluster.local.", "ttls": [30]}]});
        assert_eq!(dns_shape(Some(&a)).0, "NOERROR · 1 record · TTL 30");
        assert_eq!(dns_shape(Some(&a)), dns_shape(Some(&b)));
        let searched = json!({"rcode": "NXDOMAIN", "records": [], "tried": [
            {"name": "x.ns.svc.cluster.local.", "ttls": []}, {"name": "x.", "ttls": []}]});
        assert_eq!(dns_shape(Some(&searched)).0, "NXDOMAIN · 0 records · tried x.ns.svc.cluster.local., x.");
        assert_eq!(dns_shape(Some(&json!({"status": 200}))).0, "");
    }

    #[test]
    fn differences_are_outcomes_answers_and_large_convergence_gaps() {
        let same = [obs(Outcome::Passed, "NOERROR · 1 record", 2.0), obs(Outcome::Passed, "NOERROR · 1 record", 40.0)];
        assert!(aspects(&same).is_empty(), "noise in convergence is not a difference");
        let slow = [obs(Outcome::Passed, "", 3.0), obs(Outcome::Passed, "", 4_500.0)];
        assert!(aspects(&[obs(Outcome::Passed, "", 1.0), obs(Outcome::Passed, "", 2_040.0)]).is_empty());
        let pods_start = [1.0, 4_000.0, 4_200.0, 4_100.0].map(|t| obs(Outcome::Passed, "", t));
        assert!(aspects(&pods_start).is_empty(), "real clusters alike, slower than the reference: no difference");
        let cached = [1.0, 4_000.0, 4_200.0, 29_000.0].map(|t| obs(Outcome::Passed, "", t));
        assert_eq!(aspects(&cached), ["convergence"], "one cache serving its old answer stands out");
        assert!(aspects(&[obs(Outcome::Passed, "", 1.0), obs(Outcome::Skipped, "", 0.0)]).is_empty());
        assert_eq!(aspects(&slow), ["convergence"]);
        let answer =
            [obs(Outcome::Failed, "NXDOMAIN · 0 records", 10_000.0), obs(Outcome::Passed, "NOERROR · 0 records", 1.0)];
        assert_eq!(aspects(&answer), ["outcome", "answer", "convergence"]);
        assert!(aspects(&[obs(Outcome::Passed, "", 1.0), None]).is_empty(), "one run alone differs from nothing");
        let cached = [
            obs(Outcome::Passed, "NOERROR · 1 record · TTL 30", 1.0),
            obs(Outcome::Passed, "NOERROR · 1 record · TTL 27", 1.0),
        ];
        assert!(aspects(&cached).is_empty(), "a cache's countdown is not a difference");
        let ttl = [
            obs(Outcome::Passed, "NOERROR · 1 record · TTL 30", 1.0),
            obs(Outcome::Passed, "NOERROR · 1 record · TTL 5", 1.0),
        ];
        assert_eq!(aspects(&ttl), ["TTL"]);
    }
}
