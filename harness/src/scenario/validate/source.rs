//! Reading a YAML source file (scenario or profile) as text, bounded: only regular files, at most
//! [`MAX_SOURCE_BYTES`]; and serde-saphyr's parser options and errors as one-line reasons.

use std::{
    fs::{File, OpenOptions},
    io::Read,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::Path,
};

/// The largest scenario or profile file read (the shipped ones are a few KiB; 20,000 services are one step).
pub const MAX_SOURCE_BYTES: u64 = 4 * 1024 * 1024;

/// A YAML source file as text; `Err((line, column, reason))` for an unreadable, non-regular or oversized file (1:1)
/// or the first byte that is not UTF-8.
pub(crate) fn read_source(path: &Path) -> Result<String, (u64, u64, String)> {
    let bytes = read_bounded(path).map_err(|reason| (1, 1, reason))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = valid.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        (line, column, "not UTF-8 text".into())
    })
}

/// The bytes of a regular file of at most [`MAX_SOURCE_BYTES`].
///
/// The file is opened first and the *opened handle* is checked, so a path swapped between a check and the open
/// cannot slip a device or a FIFO in; `O_NONBLOCK` keeps the open of a FIFO without a writer from blocking (it does
/// not change reads from a regular file), and the read is capped, so a file growing meanwhile cannot exhaust memory.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!("cannot read: {what}, not a regular file"));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SOURCE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_large(len: u64) -> String {
    format!(
        "file is too large: {len} bytes, over the {} MiB limit for scenario and profile files",
        MAX_SOURCE_BYTES >> 20
    )
}

/// The parser options for scenario and profile files: a tag svcbench does not know (`!custom`) is an error rather
/// than silently dropped, as is a tag on a field name.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { reject_unsupported_tags: true, reject_tagged_field_names: true }
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
    match reason {
        // serde-saphyr names the Rust type only; say what may be written.
        "invalid u8" => format!("expected a whole number from 0 to {}", u8::MAX),
        "invalid u16" => format!("expected a whole number from 0 to {}", u16::MAX),
        "invalid u32" => format!("expected a whole number from 0 to {}", u32::MAX),
        "invalid u64" => format!("expected a whole number from 0 to {}", u64::MAX),
        // serde names the Rust type of an untagged enum; say what its forms are instead.
        r if r.ends_with("untagged enum RawPodSetOrEmpty") => "expected `[]` or a pod set: a map of `readyPodsOf`, \
             `podsOf` or `terminatingPodsOf` (a deployment, or `namespace/deployment`) and optionally `onNode`"
            .into(),
        r if r.ends_with("untagged enum RawTargetPort") => "expected a port number or a container port's name".into(),
        r if r.ends_with("untagged enum RawOneOrMany") => "expected an rcode or a list of rcodes".into(),
        _ => with_suggestion(reason),
    }
}

/// serde's "unknown field/variant `x`, expected one of a, b" becomes "…, did you mean `b`?" when one expected name
/// is close to what was written (a typo), and stays as it is otherwise.
fn with_suggestion(reason: &str) -> String {
    let Some((head, expected)) = reason.split_once(", expected ") else { return reason.to_owned() };
    let Some(written) = head.split('`').nth(1).filter(|_| head.starts_with("unknown ")) else {
        return reason.to_owned();
    };
    let names = expected.strip_prefix("one of ").unwrap_or(expected);
    let best = names
        .split(", ")
        .flat_map(|n| n.split(" or "))
        .map(|n| n.trim().trim_matches('`'))
        .filter(|n| !n.is_empty())
        .map(|n| (strsim::damerau_levenshtein(&written.to_lowercase(), &n.to_lowercase()), n))
        .min_by_key(|(distance, _)| *distance);
    match best {
        // A typo is a letter or two, or a third of a long name: beyond that a guess misleads more than it helps.
        Some((distance, name)) if distance <= 2.max(written.len() / 3) => {
            format!("{head}, did you mean `{name}`? (expected {expected})")
        }
        _ => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::with_suggestion;

    #[test]
    fn a_typo_gets_the_nearest_name_and_a_stranger_gets_the_list() {
        let typo = "unknown field `protocl`, expected one of name, port, targetPort, protocol, nodePort";
        assert_eq!(
            with_suggestion(typo),
            "unknown field `protocl`, did you mean `protocol`? (expected one of name, port, targetPort, protocol, nodePort)"
        );
        let variant = "unknown variant `expectDnss`, expected one of expectService, expectDns, expectUdp";
        assert!(with_suggestion(variant).contains("did you mean `expectDns`?"));
        let two = "unknown field `literl`, expected `name` or `literal`";
        assert!(with_suggestion(two).contains("did you mean `literal`?"), "{}", with_suggestion(two));
        let far = "unknown field `colour`, expected one of name, port";
        assert_eq!(with_suggestion(far), far);
        assert_eq!(with_suggestion("invalid type: string, expected u16"), "invalid type: string, expected u16");
    }
}
