//! Reading a YAML source file (scenario or profile) as text, and serde-saphyr's errors as one-line reasons.

use std::path::Path;

/// A YAML source file as text; `Err((line, column, reason))` for an unreadable file (1:1) or the first byte that is
/// not UTF-8.
pub(crate) fn read_source(path: &Path) -> Result<String, (u64, u64, String)> {
    let bytes = std::fs::read(path).map_err(|e| (1, 1, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = valid.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        (line, column, "not UTF-8 text".into())
    })
}

/// The error's message on one line, without the location and snippet serde-saphyr renders.
pub(crate) fn yaml_reason(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr prefixes "error: line X column Y: "; keep only the reason.
    let reason = first.strip_prefix("error: ").unwrap_or(first);
    let reason = match reason.find(": ") {
        Some(i) if reason[..i].contains("line") => &reason[i + 2..],
        _ => reason,
    };
    // …and the trailing " at line X, column Y" some messages carry.
    let reason = match reason.rfind(" at line ") {
        Some(i) if reason[i..].contains("column") => &reason[..i],
        _ => reason,
    };
    reason.to_owned()
}
