//! Per-scenario sections: the verdict in every run, why each failure failed (the failing step, its message, expected
//! vs actual), the fairness spread of fairness checks, and the step-by-step table across runs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    badge, diff,
    markup::{esc, id, ms, push},
    perf,
};
use crate::{
    report::{compare::Comparison, profile::Verdict},
    results::{Outcome, ScenarioResult, StepResult},
};

/// The "Scenarios" section: one collapsible block per scenario, open when something did not pass as expected.
pub fn section(out: &mut String, c: &Comparison) {
    out.push_str(
        "<section id=\"scenarios\"><h2>Scenarios</h2><p class=\"filters\"><button type=\"button\" id=\"expand-all\">expand all</button> \
         <button type=\"button\" id=\"collapse-all\">collapse all</button></p>",
    );
    for name in &c.scenarios {
        scenario(out, c, name);
    }
    out.push_str("</section>");
}

fn scenario(out: &mut String, c: &Comparison, name: &str) {
    let verdicts: Vec<Option<Verdict>> = (0..c.runs.len()).map(|i| c.verdict(i, name)).collect();
    let open = verdicts.iter().any(|v| matches!(v, Some(Verdict::Failed | Verdict::UnexpectedPass)));
    push(
        out,
        format_args!(
            "<details class=\"scenario\" id=\"{}\"{}><summary>{}",
            id("sc", &[name]),
            if open { " open" } else { "" },
            esc(name)
        ),
    );
    for (i, v) in verdicts.iter().enumerate() {
        push(out, format_args!(" <span title=\"{}\">{}</span>", esc(&c.runs[i].label), badge(*v)));
    }
    out.push_str("</summary>");
    let first = (0..c.runs.len()).find_map(|i| c.result(i, name));
    if let Some(s) = first {
        push(out, format_args!("<p>{}</p>", esc(s.description.trim())));
    }
    let mut sources: Vec<&str> =
        (0..c.runs.len()).filter_map(|i| c.result(i, name)).map(|s| s.source.as_str()).collect();
    sources.dedup();
    push(
        out,
        format_args!(
            "<p class=\"note\">source: {}</p>",
            sources.iter().map(|s| format!("<code>{}</code>", esc(s))).collect::<Vec<_>>().join(", ")
        ),
    );
    for (i, run) in c.runs.iter().enumerate() {
        let (Some(result), Some(v)) = (c.result(i, name), verdicts[i]) else { continue };
        let entry = run.input.profile.as_ref().and_then(|p| p.expected_failure(name).map(|e| (p, e)));
        if let Some((p, e)) = entry {
            // Only web links become links: a profile from elsewhere must not smuggle in `javascript:` URLs.
            let link = match &e.link {
                Some(l) if l.starts_with("https://") || l.starts_with("http://") => {
                    format!(" (<a href=\"{}\" rel=\"noreferrer\">{}</a>)", esc(l), esc(l))
                }
                Some(l) => format!(" ({})", esc(l)),
                None => String::new(),
            };
            push(
                out,
                format_args!(
                    "<p class=\"note\"><span class=\"badge v-{}\">{}</span> on <b>{}</b>: {} expects this to fail — {}{link} <span class=\"muted\">({}:{})</span></p>",
                    v.slug(),
                    v.label(),
                    esc(&run.label),
                    esc(&p.implementation),
                    esc(&e.reason),
                    esc(&p.path.display().to_string()),
                    e.line
                ),
            );
        }
        if let Some(step) = result.first_failure() {
            failure(out, &run.label, v, result, step);
        }
    }
    differences(out, c, name);
    fairness_spread(out, c, name);
    steps_table(out, c, name);
    out.push_str("</details>");
}

/// The steps where implementations observed different things, one column per run.
fn differences(out: &mut String, c: &Comparison, name: &str) {
    let diffs = crate::report::differences::scenario_differences(c, name);
    if diffs.is_empty() {
        return;
    }
    out.push_str("<h4>Where the implementations differ</h4><table class=\"steps differences\"><thead><tr><th>#</th><th>line</th><th>step</th><th>differs in</th>");
    for r in &c.runs {
        push(out, format_args!("<th>{}</th>", esc(&r.label)));
    }
    out.push_str("</tr></thead><tbody>");
    for d in &diffs {
        push(
            out,
            format_args!(
                "<tr class=\"differs\"><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>",
                d.index,
                d.line,
                esc(&d.summary),
                d.aspects.join(", ")
            ),
        );
        for cell in &d.cells {
            let Some(o) = cell else {
                out.push_str("<td class=\"muted\">—</td>");
                continue;
            };
            let outcome = match o.outcome {
                Outcome::Passed => "<span class=\"badge v-pass\">held</span>",
                Outcome::Failed => "<span class=\"badge v-fail\">failed</span>",
                Outcome::Skipped => "<span class=\"badge v-skipped\">not reached</span>",
                Outcome::Inconclusive => "<span class=\"badge v-inconclusive\">inconclusive</span>",
            };
            let time =
                o.convergence_ms.map(|t| format!(" <span class=\"small\">after {}</span>", ms(t))).unwrap_or_default();
            let answer =
                if o.answer.is_empty() { String::new() } else { format!("<br><code>{}</code>", esc(&o.answer)) };
            let why = match (&o.message, o.outcome) {
                (Some(m), Outcome::Failed | Outcome::Inconclusive | Outcome::Skipped) if !m.is_empty() => {
                    format!("<br><span class=\"small\">{}</span>", esc(m))
                }
                _ => String::new(),
            };
            push(out, format_args!("<td>{outcome}{time}{answer}{why}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The failing step of one run: where, what, why, expected vs actual.
fn failure(out: &mut String, label: &str, v: Verdict, result: &ScenarioResult, step: &StepResult) {
    push(
        out,
        format_args!(
            "<div class=\"failure f-{}\" id=\"{}\"><h4>{} <b>{}</b> — step {} at <code>{}:{}</code>: {}</h4>",
            v.slug(),
            id("fail", &[label, &result.name]),
            super::badge(Some(v)),
            esc(label),
            step.index,
            esc(&result.source),
            step.line,
            esc(&step.summary)
        ),
    );
    if let Some(m) = &step.message {
        push(out, format_args!("<p class=\"message\">{}</p>", esc(m)));
    }
    if step.attempts > 1 {
        push(
            out,
            format_args!(
                "<p class=\"note\">{} attempts over {}; the last one is shown.</p>",
                step.attempts,
                ms(step.duration_ms)
            ),
        );
    }
    out.push_str(&diff::expected_vs_actual(step.expected.as_ref(), step.actual.as_ref(), Some(&step.step)));
    out.push_str("</div>");
}

/// Answers per pod of a fairness check (`expectHttp … fair:`), across runs: the spread and its statistics.
fn fairness_spread(out: &mut String, c: &Comparison, name: &str) {
    let steps = step_indices(c, name);
    for index in steps {
        let mut spreads = Vec::new();
        for i in 0..c.runs.len() {
            let Some(step) = c.result(i, name).and_then(|s| s.steps.iter().find(|st| st.index == index)) else {
                continue;
            };
            // Measured steps have their bars in the performance section already.
            let is_fairness_check =
                step.measurement.is_none() && step.expected.as_ref().is_some_and(|e| e.get("fair_alpha").is_some());
            let Some(actual) = step.actual.as_ref().filter(|_| is_fairness_check) else { continue };
            let Some(per_pod) = actual.get("per_pod").or_else(|| actual.get("per_backend")).and_then(Value::as_object)
            else {
                continue;
            };
            let counts: BTreeMap<String, u64> =
                per_pod.iter().filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n))).collect();
            let stats = actual.get("fairness").and_then(|f| serde_json::from_value(f.clone()).ok());
            spreads.push((i, step.summary.clone(), counts, stats));
        }
        if spreads.is_empty() {
            continue;
        }
        push(
            out,
            format_args!(
                "<div class=\"measured\"><h4>Spread over backends — step {index}: {}</h4>",
                esc(&spreads[0].1)
            ),
        );
        let rows: Vec<perf::Spread<'_>> = spreads
            .iter()
            .map(|(i, _, counts, stats)| perf::Spread {
                run: *i,
                label: &c.runs[*i].label,
                counts,
                fairness: stats.as_ref(),
            })
            .collect();
        perf::spread(out, &rows);
        out.push_str("</div>");
    }
}

/// Step indices over all runs of a scenario, in order.
fn step_indices(c: &Comparison, name: &str) -> Vec<usize> {
    let mut indices: Vec<usize> =
        (0..c.runs.len()).filter_map(|i| c.result(i, name)).flat_map(|s| s.steps.iter().map(|st| st.index)).collect();
    indices.sort_unstable();
    indices.dedup();
    indices
}

fn steps_table(out: &mut String, c: &Comparison, name: &str) {
    out.push_str("<table class=\"steps\"><thead><tr><th>#</th><th>line</th><th>step</th>");
    for r in &c.runs {
        push(out, format_args!("<th>{}</th>", esc(&r.label)));
    }
    out.push_str("</tr></thead><tbody>");
    for index in step_indices(c, name) {
        let steps: Vec<Option<&StepResult>> = (0..c.runs.len())
            .map(|i| c.result(i, name).and_then(|s| s.steps.iter().find(|st| st.index == index)))
            .collect();
        let Some(first) = steps.iter().flatten().next() else { continue };
        let outcomes: Vec<Option<Outcome>> = steps.iter().map(|s| s.map(|s| s.outcome)).collect();
        let differs = outcomes.windows(2).any(|w| w[0] != w[1]);
        // Scenario files can change between runs: show where a run planned something else at this index.
        let mut summary = esc(&first.summary);
        for (i, s) in steps.iter().enumerate() {
            if let Some(s) = s
                && s.summary != first.summary
            {
                push(
                    &mut summary,
                    format_args!("<br><span class=\"small\">{}: {}</span>", esc(&c.runs[i].label), esc(&s.summary)),
                );
            }
        }
        push(
            out,
            format_args!(
                "<tr{}><td class=\"num\">{index}</td><td class=\"num\">{}</td><td><span class=\"small\">{}</span> {summary}</td>",
                if differs { " class=\"differs\"" } else { "" },
                first.line,
                esc(&first.kind)
            ),
        );
        for (i, s) in steps.iter().enumerate() {
            let Some(s) = s else {
                out.push_str("<td class=\"st\"><span class=\"muted\">—</span></td>");
                continue;
            };
            let (class, label) = match s.outcome {
                Outcome::Passed => ("pass", "passed"),
                Outcome::Failed => ("fail", "failed"),
                Outcome::Skipped => ("skipped", "skipped"),
                Outcome::Inconclusive => ("inconclusive", "inconclusive"),
            };
            let mut detail = String::new();
            if let Some(conv) = s.convergence_ms {
                push(&mut detail, format_args!(" {}", ms(conv)));
            }
            if s.attempts > 1 {
                push(&mut detail, format_args!(", {} attempts", s.attempts));
            }
            let measured = s
                .measurement
                .as_ref()
                .map(|_| format!(" <a href=\"#{}\">chart</a>", perf::anchor(name, index)))
                .unwrap_or_default();
            let failed_link = if s.outcome == Outcome::Failed {
                format!(" <a href=\"#{}\">why</a>", id("fail", &[&c.runs[i].label, name]))
            } else {
                String::new()
            };
            // Every assertion's data, collapsed: a passing check shows what it saw, too. A failed one has its card.
            let data = if s.outcome != Outcome::Failed && (s.expected.is_some() || s.actual.is_some()) {
                format!(
                    "<details class=\"sd\"><summary>expected vs actual</summary>{}</details>",
                    diff::expected_vs_actual(s.expected.as_ref(), s.actual.as_ref(), None)
                )
            } else {
                String::new()
            };
            // Why a step could not be judged, or what a passing load left out of its verdict.
            let why = match (s.outcome, &s.message, &s.note) {
                (Outcome::Inconclusive | Outcome::Skipped, Some(m), _) => {
                    format!("<br><span class=\"small\">{}</span>", esc(m))
                }
                (Outcome::Passed, _, Some(n)) => format!("<br><span class=\"small muted\">note: {}</span>", esc(n)),
                _ => String::new(),
            };
            push(
                out,
                format_args!(
                    "<td class=\"st\"><span class=\"badge v-{class}\">{label}</span><span class=\"small\">{}</span>{failed_link}{measured}{why}{data}</td>",
                    esc(&detail)
                ),
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}
