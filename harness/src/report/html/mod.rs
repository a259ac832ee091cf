//! The HTML report: one self-contained file (inline CSS, inline SVG, a few lines of optional script; no network,
//! works from `file://`) comparing one or more runs side by side.
//!
//! Sections, top to bottom: the runs compared; flags (expected failures that passed); the conformance matrix
//! (scenarios × runs: pass / fail / expected fail / unexpected pass / skipped / not run); performance (latency
//! percentile curves overlaid per run, per-backend bars with fairness statistics, convergence); and per scenario the
//! steps of every run with expected vs actual for each failing assertion.

mod charts;
mod diff;
pub mod markup;
mod perf;
mod scenario;

use markup::{esc, id, ms, push};

use super::{
    compare::Comparison,
    profile::{Verdict, verdict},
};

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("script.js");

/// Renders the whole page. `generated_at` is shown in the header (callers pass the current time; tests a fixed one).
pub fn render(c: &Comparison, generated_at: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let compared = c.runs.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(" vs ");
    let title = format!("svcbench report: {compared}");
    push(
        &mut out,
        format_args!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
             <title>{}</title><style>{STYLE}</style></head><body>",
            esc(&title)
        ),
    );
    let perf = perf::section(c);
    push(
        &mut out,
        format_args!(
            "<header><h1>svcbench report</h1><p><b>{}</b></p><p>{} run{} · {} scenario{} · generated {}</p><nav><a href=\"#runs\">Runs</a>\
             <a href=\"#matrix\">Conformance matrix</a>{}<a href=\"#scenarios\">Scenarios</a></nav></header><main>",
            esc(&compared),
            c.runs.len(),
            if c.runs.len() == 1 { "" } else { "s" },
            c.scenarios.len(),
            if c.scenarios.len() == 1 { "" } else { "s" },
            esc(generated_at),
            if perf.is_empty() { "" } else { "<a href=\"#performance\">Performance</a>" }
        ),
    );
    runs_table(&mut out, c);
    for note in &c.notes {
        push(&mut out, format_args!("<p class=\"note\">{}</p>", esc(note)));
    }
    flags(&mut out, c);
    matrix(&mut out, c);
    out.push_str(&perf);
    scenario::section(&mut out, c);
    push(
        &mut out,
        format_args!(
            "<footer>svcbench {} · results schema {} · re-render with <code>svcbench report RESULTS.json… -o DIR</code></footer>",
            env!("CARGO_PKG_VERSION"),
            crate::results::SCHEMA_VERSION
        ),
    );
    push(&mut out, format_args!("</main><script>{SCRIPT}</script></body></html>\n"));
    out
}

/// A verdict badge; `None` is a scenario the run did not include.
fn badge(v: Option<Verdict>) -> String {
    match v {
        Some(v) => format!("<span class=\"badge v-{}\">{}</span>", v.slug(), v.label()),
        None => "<span class=\"badge v-not-run\" title=\"not in this run\">not run</span>".into(),
    }
}

fn swatch(i: usize) -> String {
    format!("<span class=\"swatch\" style=\"background:{}\"></span>", charts::color(i))
}

fn runs_table(out: &mut String, c: &Comparison) {
    out.push_str(
        "<section id=\"runs\"><h2>Runs</h2><table class=\"runs\"><thead><tr><th>column</th><th>target</th>\
         <th>run id</th><th>started</th><th class=\"num\">duration</th><th>scenarios</th><th>expected-failure profile</th>\
         <th>results file</th></tr></thead><tbody>",
    );
    for (i, r) in c.runs.iter().enumerate() {
        let res = &r.input.results;
        let n = c.counts(i);
        let mut counts = format!("{} pass", n.passed);
        for (k, label) in [
            (n.failed, "fail"),
            (n.expected_fail, "expected fail"),
            (n.unexpected_pass, "unexpected pass"),
            (n.skipped, "skipped"),
            (n.inconclusive, "inconclusive"),
        ] {
            if k > 0 {
                push(&mut counts, format_args!(" · {k} {label}"));
            }
        }
        let profile = match &r.input.profile {
            Some(p) => format!(
                "{} <span class=\"muted\">({} scenario{}; <code>{}</code>)</span>",
                esc(&p.implementation),
                p.expected_failures.len(),
                if p.expected_failures.len() == 1 { "" } else { "s" },
                esc(&p.path.display().to_string())
            ),
            None => "<span class=\"muted\">none</span>".into(),
        };
        let source = r.input.source.as_ref().map(|p| esc(&p.display().to_string())).unwrap_or_default();
        push(
            out,
            format_args!(
                "<tr><th scope=\"row\">{}{}</th><td><b>{}</b><br><span class=\"muted\">{}</span></td><td><code>{}</code></td>\
                 <td>{}</td><td class=\"num\">{}</td><td>{counts}</td><td>{profile}</td><td><code>{source}</code></td></tr>",
                swatch(i),
                esc(&r.label),
                esc(&res.target.name),
                esc(&res.target.description),
                esc(&res.run_id),
                esc(&res.started_at),
                ms(res.duration_ms),
            ),
        );
    }
    out.push_str("</tbody></table></section>");
}

/// Expected failures that passed: the profile is out of date (or the fix is new), which deserves attention.
fn flags(out: &mut String, c: &Comparison) {
    let mut items = String::new();
    for (i, r) in c.runs.iter().enumerate() {
        let Some(p) = &r.input.profile else { continue };
        for s in &r.input.results.scenarios {
            if verdict(s, Some(p)) != Verdict::UnexpectedPass {
                continue;
            }
            let entry = p.expected_failure(&s.name);
            push(
                &mut items,
                format_args!(
                    "<li><a href=\"#{}\">{}</a> passed on <b>{}</b> but <code>{}:{}</code> lists it as an expected failure ({}). Remove it from the profile if the fix is intended.</li>",
                    id("sc", &[&s.name]),
                    esc(&s.name),
                    esc(&c.runs[i].label),
                    esc(&p.path.display().to_string()),
                    entry.map_or(0, |e| e.line),
                    esc(entry.map_or("", |e| e.reason.as_str()))
                ),
            );
        }
    }
    if !items.is_empty() {
        push(
            out,
            format_args!(
                "<section id=\"flags\" class=\"flags\"><h3>Expected failures that passed</h3><ul>{items}</ul></section>"
            ),
        );
    }
}

fn matrix(out: &mut String, c: &Comparison) {
    out.push_str(
        "<section id=\"matrix-section\"><h2>Conformance matrix</h2><p class=\"filters\"><label><input type=\"checkbox\" id=\"only-problems\"> \
         only scenarios that did not pass everywhere</label></p><table class=\"matrix\" id=\"matrix\"><thead><tr><th>scenario</th>",
    );
    for (i, r) in c.runs.iter().enumerate() {
        push(out, format_args!("<th>{}{}</th>", swatch(i), esc(&r.label)));
    }
    out.push_str("</tr></thead><tbody>");
    for name in &c.scenarios {
        let verdicts: Vec<Option<Verdict>> = (0..c.runs.len()).map(|i| c.verdict(i, name)).collect();
        let problem = verdicts.iter().any(|v| *v != Some(Verdict::Passed));
        let description = (0..c.runs.len()).find_map(|i| c.result(i, name)).map(|s| s.description.trim()).unwrap_or("");
        push(
            out,
            format_args!(
                "<tr data-problem=\"{}\"><th scope=\"row\"><a href=\"#{}\" title=\"{}\">{}</a></th>",
                u8::from(problem),
                id("sc", &[name]),
                esc(description),
                esc(name)
            ),
        );
        for (i, v) in verdicts.iter().enumerate() {
            let title = match (v, c.runs[i].input.profile.as_ref().and_then(|p| p.expected_failure(name))) {
                (Some(Verdict::ExpectedFail | Verdict::UnexpectedPass), Some(e)) => {
                    format!(" title=\"expected to fail: {}\"", esc(&e.reason))
                }
                _ => String::new(),
            };
            push(out, format_args!("<td{title}><a href=\"#{}\">{}</a></td>", id("sc", &[name]), badge(*v)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody><tfoot><tr><td></td>");
    for i in 0..c.runs.len() {
        let n = c.counts(i);
        push(
            out,
            format_args!(
                "<td>{}/{} pass{}</td>",
                n.passed,
                n.total(),
                if n.failed > 0 { format!(" · {} fail", n.failed) } else { String::new() }
            ),
        );
    }
    out.push_str("</tr></tfoot></table></section>");
}
