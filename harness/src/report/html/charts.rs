//! Inline SVG charts, drawn from numbers only (no fonts, scripts or network): HdrHistogram percentile-distribution
//! curves, per-backend bars and convergence bars. One colour per run, the same in every chart.

use std::collections::BTreeMap;

use super::markup::{esc, push};
use crate::results::LatencySummary;

/// Run colours (Okabe–Ito, readable by people with colour-vision deficiencies), by column index.
pub const PALETTE: [&str; 8] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#332288", "#882255"];

/// The colour of run `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// One curve of a percentile chart.
pub struct Curve<'a> {
    /// Run label.
    pub label: &'a str,
    /// Stroke colour.
    pub color: &'a str,
    /// (quantile in [0, 1], latency µs), ascending.
    pub points: Vec<(f64, f64)>,
}

/// The percentile curve of a summary: its `percentiles`, or — for documents that carry only the serialized histogram
/// — the same iteration recomputed from it. Empty when there is neither.
pub fn curve(summary: &LatencySummary) -> Vec<(f64, f64)> {
    if !summary.percentiles.is_empty() {
        return summary.percentiles.iter().map(|p| (p.quantile, p.value_us)).collect();
    }
    let Some(h) = decode_histogram(&summary.histogram) else { return Vec::new() };
    // Five ticks per half distance, as HdrHistogram's percentile-distribution output.
    h.iter_quantiles(5).map(|v| (v.quantile_iterated_to(), v.value_iterated_to() as f64)).collect()
}

fn decode_histogram(text: &str) -> Option<hdrhistogram::Histogram<u64>> {
    use base64::Engine;
    if text.is_empty() {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    let h: hdrhistogram::Histogram<u64> =
        hdrhistogram::serialization::Deserializer::new().deserialize(&mut bytes.as_slice()).ok()?;
    (!h.is_empty()).then_some(h)
}

/// x position of a quantile on the "1 − quantile" log axis: 0 at 0 %, 1 at 90 %, 2 at 99 %, 3 at 99.9 %, …
pub fn nines(q: f64) -> f64 {
    if q >= 1.0 { f64::INFINITY } else { (1.0 / (1.0 - q.max(0.0))).log10() }
}

/// Tick label for `n` nines: `0%`, `90%`, `99%`, `99.9%`, …
pub fn nines_label(n: u32) -> String {
    match n {
        0 => "0%".into(),
        1 => "90%".into(),
        n => format!("99{}%", if n > 2 { format!(".{}", "9".repeat(n as usize - 2)) } else { String::new() }),
    }
}

/// A round upper bound and tick step for `max` (1, 2 or 5 × 10ᵏ steps, about five ticks).
fn nice_scale(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// (divisor, unit) that keeps microsecond values short.
fn time_unit(max_us: f64) -> (f64, &'static str) {
    if max_us >= 2_000_000.0 {
        (1_000_000.0, "s")
    } else if max_us >= 2000.0 {
        (1000.0, "ms")
    } else {
        (1.0, "µs")
    }
}

fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// HdrHistogram-style percentile distribution: latency over a log-scaled "1 − quantile" axis, one curve per run.
pub fn percentile_chart(title: &str, curves: &[Curve<'_>]) -> String {
    let (w, h) = (760.0, 340.0);
    // The right margin leaves room for the last tick's label, centred on the plot's edge.
    let (left, right, top, bottom) = (64.0, 44.0, 34.0, 46.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    // The last point of an HdrHistogram iteration is quantile 1.0 (the maximum), which has no place on a log axis:
    // it is left out of the curve and reported in the table.
    let plotted: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| c.points.iter().copied().filter(|(q, v)| *q < 1.0 && q.is_finite() && v.is_finite()).collect())
        .collect();
    let max_nines = plotted.iter().flatten().map(|(q, _)| nines(*q)).fold(0.0, f64::max);
    let xmax = max_nines.ceil().clamp(1.0, 7.0);
    let ymax_raw = plotted.iter().flatten().map(|(_, v)| *v).fold(0.0, f64::max);
    let (unit_div, unit) = time_unit(ymax_raw);
    let (ymax, ystep) = nice_scale(ymax_raw / unit_div);
    let x = |q: f64| left + pw * (nines(q).min(xmax) / xmax);
    let y = |v_us: f64| top + ph - ph * ((v_us / unit_div) / ymax).min(1.0);
    let mut s = String::new();
    push(
        &mut s,
        format_args!(
            "<svg class=\"chart latency\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
            esc(title),
            esc(title)
        ),
    );
    push(&mut s, format_args!("<rect class=\"plot\" x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\"/>"));
    let mut v = 0.0;
    while v <= ymax + ystep / 2.0 {
        let yy = top + ph - ph * (v / ymax);
        push(
            &mut s,
            format_args!(
                "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left + pw,
                left - 6.0,
                yy + 4.0,
                tick(v)
            ),
        );
        v += ystep;
    }
    for n in 0..=xmax as u32 {
        let xx = left + pw * (f64::from(n) / xmax);
        push(
            &mut s,
            format_args!(
                "<line class=\"grid\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top}\" y2=\"{}\"/><text class=\"tick\" x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                top + ph,
                top + ph + 16.0,
                nines_label(n)
            ),
        );
    }
    push(
        &mut s,
        format_args!(
            "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile (log scale of 1 − quantile)</text>\
             <text class=\"axis\" transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">latency ({unit})</text>",
            left + pw / 2.0,
            h - 8.0,
            top + ph / 2.0
        ),
    );
    for (c, points) in curves.iter().zip(&plotted) {
        if points.is_empty() {
            continue;
        }
        let pts: Vec<String> = points.iter().map(|(q, v)| format!("{:.1},{:.1}", x(*q), y(*v))).collect();
        push(
            &mut s,
            format_args!(
                "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>",
                esc(c.color),
                pts.join(" "),
                esc(c.label)
            ),
        );
    }
    legend(&mut s, left, curves.iter().map(|c| (c.label, c.color)));
    s.push_str("</svg>");
    s
}

/// A row of colour keys above the plot area.
fn legend<'a>(s: &mut String, left: f64, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = left;
    for (label, color) in items {
        push(
            s,
            format_args!(
                "<g class=\"legend\"><rect x=\"{x:.1}\" y=\"10\" width=\"14\" height=\"4\" fill=\"{}\"/><text class=\"tick\" x=\"{:.1}\" y=\"16\">{}</text></g>",
                esc(color),
                x + 18.0,
                esc(label)
            ),
        );
        x += 30.0 + 6.5 * label.chars().count() as f64;
    }
}

/// Horizontal bars of answers per backend for one run, on a shared scale `scale_max` so runs compare; a dashed line
/// marks the even share.
pub fn backend_bars(label: &str, color: &str, counts: &BTreeMap<String, u64>, scale_max: u64) -> String {
    // Room for the longest (shortened) pod name at ~6.6 px per monospace character.
    let longest = counts.keys().map(|k| k.chars().count().min(27)).max().unwrap_or(0) as f64;
    let (row, right, top) = (20.0, 56.0, 26.0);
    let left = (16.0 + 6.6 * longest).clamp(60.0, 200.0);
    let w = left + 260.0 + right;
    let h = top + row * counts.len().max(1) as f64 + 8.0;
    let pw = w - left - right;
    let scale = scale_max.max(1) as f64;
    let mut s = String::new();
    push(
        &mut s,
        format_args!(
            "<svg class=\"chart backends\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"answers per backend, {}\"><title>answers per backend, {}</title>",
            esc(label),
            esc(label)
        ),
    );
    push(
        &mut s,
        format_args!(
            "<rect x=\"4\" y=\"6\" width=\"10\" height=\"10\" fill=\"{}\"/><text class=\"tick\" x=\"20\" y=\"15\">{}</text>",
            esc(color),
            esc(label)
        ),
    );
    let short = |pod: &str| -> String {
        if pod.chars().count() > 27 {
            format!("…{}", pod.chars().skip(pod.chars().count() - 26).collect::<String>())
        } else {
            pod.to_owned()
        }
    };
    let bar_width = |n: u64| pw * (n as f64 / scale);
    for (i, (pod, n)) in counts.iter().enumerate() {
        let y = top + row * i as f64;
        push(
            &mut s,
            format_args!(
                "<g><title>{}: {n}</title><text class=\"tick mono\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/></g>",
                esc(pod),
                left - 6.0,
                y + 13.0,
                esc(&short(pod)),
                y + 3.0,
                bar_width(*n),
                row - 6.0,
                esc(color),
            ),
        );
    }
    // Drawn over the bars so their ends can be compared with it, and under the value labels, whose halo keeps them
    // readable.
    let total: u64 = counts.values().sum();
    if !counts.is_empty() && total > 0 {
        let even = total as f64 / counts.len() as f64;
        let xx = left + pw * (even / scale);
        push(
            &mut s,
            format_args!(
                "<line class=\"even\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{}\" y2=\"{:.1}\"><title>even share: {even:.1}</title></line>",
                top - 4.0,
                h - 6.0
            ),
        );
    }
    for (i, n) in counts.values().enumerate() {
        let y = top + row * i as f64;
        push(
            &mut s,
            format_args!(
                "<text class=\"tick val\" x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
                left + bar_width(*n) + 4.0,
                y + 13.0
            ),
        );
    }
    s.push_str("</svg>");
    s
}

/// One run's convergence times (ms): until the API, DNS and traffic reflected a change.
pub struct ConvergenceRow<'a> {
    /// Run label.
    pub label: &'a str,
    /// Run colour.
    pub color: &'a str,
    /// Endpoints, DNS, traffic.
    pub values: [Option<f64>; 3],
}

/// Grouped horizontal bars: for each of endpoints / DNS / traffic, one bar per run.
pub fn convergence_chart(title: &str, rows: &[ConvergenceRow<'_>]) -> String {
    const WHAT: [&str; 3] = ["endpoints", "DNS", "traffic"];
    let (w, left, right, top, bar, gap) = (640.0, 84.0, 90.0, 26.0, 14.0, 10.0);
    let group = bar * rows.len().max(1) as f64 + gap;
    let h = top + group * 3.0 + 6.0;
    let pw = w - left - right;
    let max =
        rows.iter().flat_map(|r| r.values.iter().flatten()).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let (scale, _) = nice_scale(max);
    let mut s = String::new();
    push(
        &mut s,
        format_args!(
            "<svg class=\"chart convergence\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
            esc(title),
            esc(title)
        ),
    );
    for (g, what) in WHAT.iter().enumerate() {
        let gy = top + group * g as f64;
        push(
            &mut s,
            format_args!(
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{what}</text>",
                left - 8.0,
                gy + group / 2.0
            ),
        );
        for (i, r) in rows.iter().enumerate() {
            let y = gy + bar * i as f64;
            let (bw, text) = match r.values[g] {
                Some(v) if v.is_finite() => (pw * (v / scale).min(1.0), super::markup::ms(v)),
                _ => (0.0, "not measured".to_owned()),
            };
            push(
                &mut s,
                format_args!(
                    "<g><title>{}: {what} {}</title><rect class=\"bar\" x=\"{left}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\"/><text class=\"tick val\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
                    esc(r.label),
                    esc(&text),
                    y + 1.0,
                    bar - 2.0,
                    esc(r.color),
                    left + bw + 4.0,
                    y + bar - 3.0,
                    esc(&text)
                ),
            );
        }
    }
    legend(&mut s, left, rows.iter().map(|r| (r.label, r.color)));
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_axis_counts_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.9) - 1.0).abs() < 1e-9);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert!(nines(1.0).is_infinite());
        assert_eq!(nines_label(0), "0%");
        assert_eq!(nines_label(2), "99%");
        assert_eq!(nines_label(4), "99.99%");
    }

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(930.0), (1000.0, 200.0));
        assert_eq!(nice_scale(0.0), (1.0, 0.2));
        assert_eq!(time_unit(5000.0).1, "ms");
    }

    #[test]
    fn percentile_chart_places_points_on_the_log_axis() {
        let c = Curve {
            label: "a<b",
            color: "#000",
            points: vec![(0.0, 100.0), (0.9, 200.0), (0.99, 1000.0), (1.0, 5000.0)],
        };
        let svg = percentile_chart("t", &[c]);
        // xmax = 2 nines; plot from x=64 over 652 px: 0 → 64, 90 % → 390, 99 % → 716.
        assert!(svg.contains("points=\"64.0,"), "{svg}");
        assert!(svg.contains(" 390.0,"), "{svg}");
        assert!(svg.contains(" 716.0,34.0"), "the highest plotted point tops the scale: {svg}");
        assert!(svg.contains(">99%</text>") && !svg.contains(">99.9%</text>"), "{svg}");
        assert!(svg.contains("<title>a&lt;b</title>"));
    }
}
