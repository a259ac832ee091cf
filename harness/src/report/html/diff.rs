//! Expected vs actual of one assertion, as HTML: a field-by-field table that marks exactly which items differ (record
//! sets and endpoint sets compare as sets, as the checks do; search candidates in order), the search candidates a
//! resolver tried, and the raw JSON.
//!
//! The check's own message stays the authority on *why* a step failed; this view shows the data behind it. The shape
//! of `expected`/`actual` is free-form JSON per check kind, so everything here is generic with a few known keys
//! (`candidates` vs `tried`, `rcode` one-of lists).

use serde_json::Value;

use super::markup::{esc, push};

/// Which column a value is shown in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Expected,
    Actual,
}

/// A value as one comparable token: strings bare, everything else as compact JSON.
fn token(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A DNS name compared the way the candidates check compares it: no trailing dot, lower case.
fn norm_name(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// Names a resolver tried, normalised, from `actual.tried[]`.
fn tried_names(actual: &Value) -> Option<Vec<Value>> {
    let tried = actual.get("tried")?.as_array()?;
    Some(tried.iter().filter_map(|t| t.get("name")?.as_str().map(|n| Value::String(norm_name(n)))).collect())
}

/// Whether two values differ: `None` when only one side has the field (nothing to compare).
fn differs(key: &str, expected: Option<&Value>, actual: Option<&Value>) -> Option<bool> {
    let (e, a) = (expected?, actual?);
    Some(match (e, a) {
        // The search list is walked in order: order matters.
        (Value::Array(x), Value::Array(y)) if key == "candidates" => {
            x.iter().map(|v| norm_name(&token(v))).ne(y.iter().map(|v| norm_name(&token(v))))
        }
        // Any pod of the set may answer: only answers from outside it differ.
        (Value::Array(x), Value::Array(y)) if key == "answered_by" => {
            y.iter().any(|v| !x.iter().any(|w| token(w) == token(v)))
        }
        (Value::Array(x), Value::Array(y)) => {
            let mut x: Vec<String> = x.iter().map(token).collect();
            let mut y: Vec<String> = y.iter().map(token).collect();
            x.sort();
            y.sort();
            x != y
        }
        // `rcode: [NXDOMAIN, NODATA]` means "one of".
        (Value::Array(x), y) if !y.is_array() => !x.iter().any(|v| token(v).eq_ignore_ascii_case(&token(y))),
        (x, y) => x != y,
    })
}

/// The value of one side as HTML; items absent from `other` are marked (`missing` / `unexpected`).
fn cell(v: Option<&Value>, other: Option<&Value>, side: Side) -> String {
    let Some(v) = v else { return "<span class=\"absent\">—</span>".into() };
    match v {
        Value::Array(items) if items.is_empty() => "<span class=\"empty\">none</span>".into(),
        Value::Array(items) => {
            // Only set against set is marked: a list against one value is a "one of" (`rcode`), and the row's
            // highlight already says whether the value is among them.
            let others: Option<Vec<String>> = match other {
                Some(Value::Array(os)) => Some(os.iter().map(token).collect()),
                _ => None,
            };
            let mut out = String::from("<ul class=\"vals\">");
            for item in items {
                let t = token(item);
                let absent = others.as_ref().is_some_and(|os| !os.iter().any(|o| o.eq_ignore_ascii_case(&t)));
                match (absent, side) {
                    (true, Side::Expected) => push(
                        &mut out,
                        format_args!(
                            "<li class=\"miss\"><code>{}</code> <span class=\"tag\">missing</span></li>",
                            esc(&t)
                        ),
                    ),
                    (true, Side::Actual) => push(
                        &mut out,
                        format_args!(
                            "<li class=\"extra\"><code>{}</code> <span class=\"tag\">unexpected</span></li>",
                            esc(&t)
                        ),
                    ),
                    _ => push(&mut out, format_args!("<li><code>{}</code></li>", esc(&t))),
                }
            }
            out.push_str("</ul>");
            out
        }
        Value::Object(m) if m.is_empty() => "<span class=\"empty\">none</span>".into(),
        Value::Object(_) => {
            let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
            format!("<pre class=\"json\">{}</pre>", esc(&truncate(&pretty, 4000)))
        }
        Value::Null => "<code>null</code>".into(),
        scalar => format!("<code>{}</code>", esc(&token(scalar))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… ({} more bytes; see the raw JSON)", &s[..end], s.len() - end)
}

/// The field-by-field table plus, for DNS checks, the candidates tried, plus — when `planned` is given — the raw JSON
/// (collapsed).
pub fn expected_vs_actual(expected: Option<&Value>, actual: Option<&Value>, planned: Option<&Value>) -> String {
    let mut out = String::new();
    if expected.is_none() && actual.is_none() {
        return out;
    }
    let mut keys: Vec<String> = Vec::new();
    let object_keys = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    let both_objects = expected.is_none_or(Value::is_object) && actual.is_none_or(Value::is_object);
    if both_objects {
        keys.extend(object_keys(expected));
        // `tried` gets its own table below.
        for k in object_keys(actual) {
            if !keys.contains(&k) && k != "tried" {
                keys.push(k);
            }
        }
    }
    out.push_str("<table class=\"diff\"><thead><tr><th>field</th><th>expected</th><th>actual</th></tr></thead><tbody>");
    if both_objects {
        for key in &keys {
            let e = expected.and_then(|v| v.get(key));
            let derived;
            let a = match actual.and_then(|v| v.get(key)) {
                Some(a) => Some(a),
                None if key == "candidates" => {
                    derived = actual.and_then(tried_names).map(Value::Array);
                    derived.as_ref()
                }
                // HTTP checks and load steps: the pods that answered are the keys of `per_pod` / `per_backend`.
                None if matches!(key.as_str(), "reaches_all" | "answered_by" | "backends") => {
                    derived = actual
                        .and_then(|a| a.get("per_pod").or_else(|| a.get("per_backend")))
                        .and_then(Value::as_object)
                        .map(|m| Value::Array(m.keys().cloned().map(Value::String).collect()));
                    derived.as_ref()
                }
                None => None,
            };
            let class = match differs(key, e, a) {
                Some(true) => " class=\"differs\"",
                Some(false) => " class=\"same\"",
                None => "",
            };
            let is_derived = actual.and_then(|v| v.get(key)).is_none() && a.is_some();
            let label = match (is_derived, key.as_str()) {
                (true, "candidates") => "candidates (tried)".to_owned(),
                (true, _) => format!("{key} (pods that answered)"),
                _ => key.clone(),
            };
            // `answered_by` is "one of": an expected pod that did not answer is no difference.
            let e_other = if key == "answered_by" { None } else { a };
            push(
                &mut out,
                format_args!(
                    "<tr{class}><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                    esc(&label),
                    cell(e, e_other, Side::Expected),
                    cell(a, e, Side::Actual)
                ),
            );
        }
    } else {
        let class = if differs("value", expected, actual) == Some(true) { " class=\"differs\"" } else { "" };
        push(
            &mut out,
            format_args!(
                "<tr{class}><th scope=\"row\">value</th><td>{}</td><td>{}</td></tr>",
                cell(expected, actual, Side::Expected),
                cell(actual, expected, Side::Actual)
            ),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&candidates(expected, actual));
    if planned.is_none() {
        return out;
    }
    out.push_str("<details class=\"raw\"><summary>raw JSON</summary>");
    for (title, v) in [("expected", expected), ("actual", actual), ("step as planned", planned)] {
        if let Some(v) = v {
            let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
            push(&mut out, format_args!("<h5>{title}</h5><pre class=\"json\">{}</pre>", esc(&pretty)));
        }
    }
    out.push_str("</details>");
    out
}

/// The names a resolver tried, in order, with each one's answer; names that differ from the expected candidate at
/// the same position are marked, and expected candidates never tried are listed.
pub fn candidates(expected: Option<&Value>, actual: Option<&Value>) -> String {
    let Some(tried) = actual.and_then(|a| a.get("tried")).and_then(Value::as_array) else { return String::new() };
    if tried.is_empty() {
        return String::new();
    }
    let want: Option<Vec<String>> = expected
        .and_then(|e| e.get("candidates"))
        .and_then(Value::as_array)
        .map(|c| c.iter().map(|v| norm_name(&token(v))).collect());
    let mut out = String::from(
        "<table class=\"tried\"><caption>Search candidates tried, in order</caption><thead><tr><th>#</th><th>name</th>\
         <th>rcode</th><th>records</th><th>TTLs</th><th>transport</th><th>authoritative</th><th>SOA in authority</th>\
         </tr></thead><tbody>",
    );
    let field = |t: &Value, k: &str| t.get(k).map(token).unwrap_or_else(|| "—".into());
    for (i, t) in tried.iter().enumerate() {
        let name = t.get("name").map(token).unwrap_or_default();
        let mismatch = want.as_ref().is_some_and(|w| w.get(i) != Some(&norm_name(&name)));
        let records = match t.get("records").and_then(Value::as_array) {
            Some(r) if !r.is_empty() => r.iter().map(|v| esc(&token(v))).collect::<Vec<_>>().join("<br>"),
            _ => "<span class=\"empty\">none</span>".into(),
        };
        let ttls = t
            .get("ttls")
            .and_then(Value::as_array)
            .map(|v| v.iter().map(token).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        push(
            &mut out,
            format_args!(
                "<tr{}><td>{}</td><td><code>{}</code>{}</td><td>{}</td><td>{records}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if mismatch { " class=\"extra\"" } else { "" },
                i + 1,
                esc(&name),
                if mismatch { " <span class=\"tag\">not expected here</span>" } else { "" },
                esc(&field(t, "rcode")),
                esc(&ttls),
                esc(&field(t, "transport")),
                esc(&field(t, "authoritative")),
                esc(&field(t, "soa_in_authority")),
            ),
        );
    }
    if let Some(w) = &want {
        for (i, name) in w.iter().enumerate().skip(tried.len()) {
            push(
                &mut out,
                format_args!(
                    "<tr class=\"miss\"><td>{}</td><td><code>{}</code> <span class=\"tag\">expected, not tried</span></td><td colspan=\"6\"></td></tr>",
                    i + 1,
                    esc(name)
                ),
            );
        }
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn record_sets_mark_missing_and_unexpected_records() {
        let e = json!({"name": "nginx", "rcode": ["NOERROR"], "records": ["A 10.0.0.5", "A 10.0.0.6"]});
        let a = json!({"rcode": "NOERROR", "records": ["A 10.0.0.6", "A 10.9.9.9"], "tried": []});
        let html = expected_vs_actual(Some(&e), Some(&a), None);
        assert!(
            html.contains("<li class=\"miss\"><code>A 10.0.0.5</code> <span class=\"tag\">missing</span>"),
            "{html}"
        );
        assert!(
            html.contains("<li class=\"extra\"><code>A 10.9.9.9</code> <span class=\"tag\">unexpected</span>"),
            "{html}"
        );
        assert!(html.contains("<tr class=\"differs\"><th scope=\"row\">records</th>"), "{html}");
        assert!(html.contains("<tr class=\"same\"><th scope=\"row\">rcode</th>"), "{html}");
    }

    #[test]
    fn record_order_is_not_a_difference_but_candidate_order_is() {
        assert_eq!(differs("records", Some(&json!(["b", "a"])), Some(&json!(["a", "b"]))), Some(false));
        assert_eq!(differs("candidates", Some(&json!(["b", "a"])), Some(&json!(["a.", "b."]))), Some(true));
        assert_eq!(differs("rcode", Some(&json!(["NXDOMAIN", "NODATA"])), Some(&json!("NODATA"))), Some(false));
        assert_eq!(differs("rcode", Some(&json!(["NXDOMAIN"])), Some(&json!("NODATA"))), Some(true));
        assert_eq!(differs("name", Some(&json!("x")), None), None);
    }

    #[test]
    fn candidates_show_what_was_tried_and_what_was_not() {
        let e = json!({"candidates": ["dns-version.test.svc.cluster.local", "dns-version.svc.cluster.local"]});
        let a = json!({"rcode": "NODATA", "records": [], "tried": [
            {"name": "dns-version.test.svc.cluster.local.", "rcode": "NODATA", "records": [], "ttls": []}]});
        let html = expected_vs_actual(Some(&e), Some(&a), None);
        assert!(html.contains("candidates (tried)"), "{html}");
        assert!(
            html.contains("dns-version.svc.cluster.local</code> <span class=\"tag\">expected, not tried"),
            "{html}"
        );
        assert!(html.contains("<td><code>dns-version.test.svc.cluster.local.</code></td><td>NODATA</td>"), "{html}");
    }

    #[test]
    fn user_text_is_escaped() {
        let e = json!({"name": "<img src=x onerror=alert(1)>"});
        let html = expected_vs_actual(Some(&e), None, None);
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}
