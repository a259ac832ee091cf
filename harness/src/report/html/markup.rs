//! Small HTML-building helpers: escaping (everything that came from a results file is escaped), ids, number formats.

use std::fmt::Write;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A fragment id made of `[a-z0-9-]` only, so it is safe in `id`, `href` and CSS alike.
pub fn id(prefix: &str, parts: &[&str]) -> String {
    let mut out = prefix.to_owned();
    for p in parts {
        out.push('-');
        for c in p.chars() {
            let c = c.to_ascii_lowercase();
            out.push(if c.is_ascii_alphanumeric() { c } else { '-' });
        }
    }
    out
}

/// Milliseconds for people: `0.12 ms`, `12.3 ms`, `1.25 s`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// Microseconds for people, in the unit that keeps them short.
pub fn us(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// A statistic with a sensible number of digits; `∞` and `—` for the non-finite.
pub fn num(v: f64) -> String {
    // f64::MAX is how a written ∞ is read back (see `json::read`).
    if v.is_infinite() || v.abs() == f64::MAX {
        "∞".into()
    } else if v.is_nan() {
        "—".into()
    } else if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.2e}")
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Appends formatted text; writing to a `String` cannot fail.
pub fn push(out: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(id("sc", &["Web <1>", "a.b"]), "sc-web--1--a-b");
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(ms(0.123), "0.12 ms");
        assert_eq!(ms(1500.0), "1.50 s");
        assert_eq!(us(2500.0), "2.50 ms");
        assert_eq!(num(f64::INFINITY), "∞");
        assert_eq!(num(f64::MAX), "∞");
        assert_eq!(num(7.03e-165), "7.03e-165");
    }
}
