//! The performance section: for every step that carries a measurement, the runs overlaid — HTTP and DNS latency as
//! percentile curves with their summary numbers, HTTP per-backend bars with the fairness statistics, and convergence
//! times (API, DNS, traffic).

use std::collections::BTreeMap;

use super::{
    charts::{self, ConvergenceRow, Curve},
    markup::{esc, id, ms, num, push, us},
};
use crate::{
    report::compare::Comparison,
    results::{ConvergenceReport, DnsLoadReport, HttpLoadReport, LatencySummary, Measurement},
    stats::Fairness,
};

/// The fragment id of a measured step's charts.
pub fn anchor(scenario: &str, index: usize) -> String {
    id("perf", &[scenario, &index.to_string()])
}

/// The whole section, or nothing when no run measured anything.
pub fn section(c: &Comparison) -> String {
    let mut body = String::new();
    for name in &c.scenarios {
        let mut indices: Vec<usize> = (0..c.runs.len())
            .filter_map(|i| c.result(i, name))
            .flat_map(|s| s.steps.iter().filter(|st| st.measurement.is_some()).map(|st| st.index))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            let measured: Vec<(usize, &str, &Measurement)> = (0..c.runs.len())
                .filter_map(|i| {
                    let step = c.result(i, name)?.steps.iter().find(|s| s.index == index)?;
                    Some((i, step.summary.as_str(), step.measurement.as_ref()?))
                })
                .collect();
            let Some((_, summary, _)) = measured.first() else { continue };
            push(
                &mut body,
                format_args!(
                    "<div class=\"measured\" id=\"{}\"><h3><a href=\"#{}\">{}</a> › step {index}: {}</h3>",
                    anchor(name, index),
                    id("sc", &[name]),
                    esc(name),
                    esc(summary)
                ),
            );
            let http: Vec<(usize, &HttpLoadReport)> = measured
                .iter()
                .filter_map(|(i, _, m)| if let Measurement::HttpLoad(r) = m { Some((*i, r)) } else { None })
                .collect();
            let dns: Vec<(usize, &DnsLoadReport)> = measured
                .iter()
                .filter_map(|(i, _, m)| if let Measurement::DnsLoad(r) = m { Some((*i, r)) } else { None })
                .collect();
            let conv: Vec<(usize, &ConvergenceReport)> = measured
                .iter()
                .filter_map(|(i, _, m)| if let Measurement::Convergence(r) = m { Some((*i, r)) } else { None })
                .collect();
            if !http.is_empty() {
                http_load(&mut body, c, name, index, &http);
            }
            if !dns.is_empty() {
                dns_load(&mut body, c, name, index, &dns);
            }
            if !conv.is_empty() {
                convergence(&mut body, c, &conv);
            }
            body.push_str("</div>");
        }
    }
    if body.is_empty() {
        return body;
    }
    format!(
        "<section id=\"performance\"><h2>Performance</h2><p class=\"note\">Latency is measured from each request's \
         intended send time. Curves: HdrHistogram percentile distribution, x axis log-scaled in 1 − quantile \
         (90%, 99%, 99.9%, …); the maximum is in the table.</p>{body}</section>"
    )
}

fn latency_chart(out: &mut String, c: &Comparison, title: &str, series: &[(usize, &LatencySummary)]) {
    let curves: Vec<Curve<'_>> = series
        .iter()
        .map(|(i, l)| Curve { label: &c.runs[*i].label, color: charts::color(*i), points: charts::curve(l) })
        .collect();
    if curves.iter().all(|c| c.points.is_empty()) {
        out.push_str("<p class=\"note\">No latency samples.</p>");
        return;
    }
    // The summary numbers sit beside the curves they summarise (below them on narrow screens).
    let mut table = format!(
        "<table class=\"latency\"><thead><tr><th>run</th><th class=\"num\">samples</th>{LATENCY_HEAD}</tr></thead><tbody>"
    );
    for (i, l) in series {
        push(
            &mut table,
            format_args!(
                "<tr><th scope=\"row\">{}{}</th><td class=\"num\">{}</td>{}</tr>",
                super::swatch(*i),
                esc(&c.runs[*i].label),
                l.count,
                latency_cells(l)
            ),
        );
    }
    table.push_str("</tbody></table>");
    push(out, format_args!("<div class=\"charts\">{}{table}</div>", charts::percentile_chart(title, &curves)));
}

fn latency_cells(l: &LatencySummary) -> String {
    [l.min_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us]
        .iter()
        .map(|v| format!("<td class=\"num\">{}</td>", us(*v)))
        .collect()
}

const LATENCY_HEAD: &str = "<th class=\"num\">min</th><th class=\"num\">p50</th><th class=\"num\">p90</th>\
    <th class=\"num\">p99</th><th class=\"num\">p99.9</th><th class=\"num\">max</th><th class=\"num\">mean</th>";

/// `sent / intended`, marked when the run fell short of its schedule (cut at its duration).
fn sent_of(sent: u64, intended: u64) -> String {
    if sent < intended {
        format!(
            "<span class=\"shortfall\" title=\"cut at the step's duration: the generator or the target could not keep \
             up\">{sent} / {intended} ⚠</span>"
        )
    } else {
        format!("{sent} / {intended}")
    }
}

/// Whether the generator kept up: its stalls, CPU wait, and how much of the run was judged (on schedule).
fn client_cell(pace: Option<&crate::probe::pace::ClientPace>, sent: u64) -> String {
    let Some(p) = pace else { return "<span class=\"muted\">not recorded</span>".into() };
    let cpu = match (p.cpu_ms, p.cpu_wait_ms) {
        (Some(cpu), Some(wait)) => format!("<br><span class=\"small\">CPU {cpu:.0} ms, waited {wait:.0} ms</span>"),
        _ => String::new(),
    };
    if p.fell_behind() {
        format!(
            "<span class=\"shortfall\" title=\"lateness over {:.0} ms: requests living through a stall are not judged\">\
             behind: {} stall(s), {:.0} ms (worst {:.0} ms)</span><br>judged {} of {sent}{cpu}",
            p.tolerance_ms, p.stalls, p.stalled_ms, p.worst_stall_ms, p.on_schedule
        )
    } else {
        format!("on schedule (wake lag p99 {:.1} ms){cpu}", p.wake_lag_p99_ms)
    }
}

fn by_class(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "<span class=\"muted\">none</span>".into();
    }
    map.iter().map(|(k, v)| format!("{}: {v}", esc(k))).collect::<Vec<_>>().join("<br>")
}

fn http_load(out: &mut String, c: &Comparison, name: &str, index: usize, runs: &[(usize, &HttpLoadReport)]) {
    let lat: Vec<(usize, &LatencySummary)> = runs.iter().map(|(i, r)| (*i, &r.latency)).collect();
    latency_chart(out, c, &format!("HTTP latency, {name} step {index}"), &lat);
    push(
        out,
        format_args!(
            "<table class=\"load\"><thead><tr><th>run</th><th>load</th><th>mode</th><th class=\"num\">sent / intended</th>\
             <th class=\"num\">sent/s</th><th class=\"num\">ok</th><th class=\"num\">throughput</th><th>errors</th><th>client</th></tr></thead><tbody>"
        ),
    );
    for (i, r) in runs {
        let rate = r.rate.map_or("closed loop".to_owned(), |v| format!("{v:.0} req/s open loop"));
        push(
            out,
            format_args!(
                "<tr><th scope=\"row\">{}{}</th><td><code>{}</code></td><td>{}, {} conn., {rate}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{:.0}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}/s</td><td>{}</td><td>{}</td></tr>",
                super::swatch(*i),
                esc(&c.runs[*i].label),
                esc(&r.target),
                esc(&r.mode),
                r.connections,
                sent_of(r.sent, r.intended),
                r.achieved_rate,
                r.ok,
                r.throughput,
                by_class(&r.errors),
                client_cell(r.pace.as_ref(), r.sent),
            ),
        );
    }
    out.push_str("</tbody></table>");
    let spreads: Vec<Spread<'_>> = runs
        .iter()
        .filter(|(_, r)| !r.per_backend.is_empty())
        .map(|(i, r)| Spread {
            run: *i,
            label: &c.runs[*i].label,
            counts: &r.per_backend,
            fairness: r.fairness.as_ref(),
        })
        .collect();
    if !spreads.is_empty() {
        out.push_str("<h4>Answers per backend</h4>");
        spread(out, &spreads);
    }
}

fn dns_load(out: &mut String, c: &Comparison, name: &str, index: usize, runs: &[(usize, &DnsLoadReport)]) {
    let lat: Vec<(usize, &LatencySummary)> = runs.iter().map(|(i, r)| (*i, &r.latency)).collect();
    latency_chart(out, c, &format!("DNS latency, {name} step {index}"), &lat);
    push(
        out,
        format_args!(
            "<table class=\"load\"><thead><tr><th>run</th><th>names</th><th class=\"num\">rate</th><th class=\"num\">ports</th>\
             <th class=\"num\">sent / intended</th><th class=\"num\">sent/s</th><th class=\"num\">answered</th><th class=\"num\">timeouts</th><th class=\"num\">qps</th>\
             <th>rcodes</th><th>client</th></tr></thead><tbody>"
        ),
    );
    for (i, r) in runs {
        push(
            out,
            format_args!(
                "<tr><th scope=\"row\">{}{}</th><td>{}</td><td class=\"num\">{:.0}/s</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{:.0}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}</td><td>{}</td><td>{}</td></tr>",
                super::swatch(*i),
                esc(&c.runs[*i].label),
                r.names.iter().map(|n| format!("<code>{}</code>", esc(n))).collect::<Vec<_>>().join("<br>"),
                r.rate,
                r.source_ports,
                sent_of(r.sent, r.intended),
                r.achieved_rate,
                r.answered,
                r.timeouts,
                r.qps,
                by_class(&r.rcodes),
                client_cell(r.pace.as_ref(), r.sent),
            ),
        );
    }
    out.push_str("</tbody></table>");
}

fn convergence(out: &mut String, c: &Comparison, runs: &[(usize, &ConvergenceReport)]) {
    let rows: Vec<ConvergenceRow<'_>> = runs
        .iter()
        .map(|(i, r)| ConvergenceRow {
            label: &c.runs[*i].label,
            color: charts::color(*i),
            values: [r.endpoints_ms, r.dns_ms, r.traffic_ms],
        })
        .collect();
    let change = runs.first().map(|(_, r)| r.change.as_str()).unwrap_or_default();
    push(
        out,
        format_args!(
            "<h4>Convergence of “{}”</h4><div class=\"charts\">{}</div>",
            esc(change),
            charts::convergence_chart(&format!("convergence of {change}"), &rows)
        ),
    );
    out.push_str(
        "<table class=\"load\"><thead><tr><th>run</th><th class=\"num\">endpoints</th><th class=\"num\">DNS</th>\
         <th class=\"num\">traffic</th></tr></thead><tbody>",
    );
    for (i, r) in runs {
        let cell = |v: Option<f64>| v.map_or("<span class=\"muted\">—</span>".to_owned(), ms);
        push(
            out,
            format_args!(
                "<tr><th scope=\"row\">{}{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                super::swatch(*i),
                esc(&c.runs[*i].label),
                cell(r.endpoints_ms),
                cell(r.dns_ms),
                cell(r.traffic_ms)
            ),
        );
    }
    out.push_str("</tbody></table>");
}

/// One run's answers per backend.
pub struct Spread<'a> {
    /// Column index (for the colour).
    pub run: usize,
    /// Column label.
    pub label: &'a str,
    /// Answers per pod.
    pub counts: &'a BTreeMap<String, u64>,
    /// Statistics of the spread, when there were at least two backends.
    pub fairness: Option<&'a Fairness>,
}

/// Per-backend bars side by side on one scale, then the fairness statistics of every run in one table.
pub fn spread(out: &mut String, rows: &[Spread<'_>]) {
    let scale = rows.iter().flat_map(|r| r.counts.values()).copied().max().unwrap_or(1);
    out.push_str("<div class=\"charts\">");
    for r in rows {
        out.push_str(&charts::backend_bars(r.label, charts::color(r.run), r.counts, scale));
    }
    out.push_str("</div>");
    if rows.iter().all(|r| r.fairness.is_none()) {
        return;
    }
    out.push_str(
        "<table class=\"fairness\"><thead><tr><th>run</th><th class=\"num\">backends</th><th class=\"num\">requests</th>\
         <th class=\"num\" title=\"χ² statistic against a uniform spread\">χ²</th>\
         <th class=\"num\" title=\"probability that a uniform random balancer spreads at least this unevenly\">p-value</th>\
         <th class=\"num\" title=\"Jain's fairness index, 1 = perfectly even\">Jain</th>\
         <th class=\"num\" title=\"Jain's index a uniform random balancer reaches at this sample size\">expected Jain</th>\
         <th class=\"num\" title=\"coefficient of variation of the counts\">CV</th>\
         <th class=\"num\">max/min</th><th class=\"num\">max share</th></tr></thead><tbody>",
    );
    for r in rows {
        let Some(f) = r.fairness else { continue };
        push(
            out,
            format_args!(
                "<tr><th scope=\"row\">{}{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{:.1}%</td></tr>",
                super::swatch(r.run),
                esc(r.label),
                f.backends,
                f.total,
                num(f.chi_square),
                num(f.p_value),
                num(f.jain),
                num(f.expected_jain),
                num(f.cv),
                num(f.max_min_ratio),
                f.max_share * 100.0
            ),
        );
    }
    out.push_str("</tbody></table>");
}
