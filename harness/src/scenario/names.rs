//! Kubernetes name rules (apimachinery `validation.go`).

/// Checks a DNS-1035 label (Service and Namespace-like names): `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
///
/// # Errors
/// A one-line reason when the name breaks the rule.
pub fn dns1035_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!("`{name}` is longer than 63 characters"));
    }
    let bytes = name.as_bytes();
    if !bytes[0].is_ascii_lowercase() {
        return Err(format!("`{name}` must start with a lower-case letter (DNS-1035 label)"));
    }
    if !bytes[bytes.len() - 1].is_ascii_alphanumeric() || bytes[bytes.len() - 1].is_ascii_uppercase() {
        return Err(format!("`{name}` must end with a lower-case letter or digit (DNS-1035 label)"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!("`{name}` contains `{c}`: only a-z, 0-9 and `-` are allowed (DNS-1035 label)"));
    }
    Ok(())
}

/// Checks a DNS-1123 label (namespaces, deployments): like DNS-1035 but may start with a digit.
///
/// # Errors
/// A one-line reason when the name breaks the rule.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return dns1035_label(&format!("a{}", &name[1..])).map_err(|e| e.replacen("`a", "`", 1));
    }
    dns1035_label(name).map_err(|e| e.replace("DNS-1035", "DNS-1123"))
}

/// The longest DNS label (RFC 1035).
pub const MAX_LABEL: usize = 63;
/// The longest DNS name, without the trailing dot (RFC 1035: 255 octets on the wire).
pub const MAX_NAME: usize = 253;

/// Checks a DNS name written without the trailing dot (an ExternalName target): at most 253 characters of
/// DNS-1123 labels (case-insensitive), each at most 63.
///
/// # Errors
/// A one-line reason when the name breaks the rule.
pub fn dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("{} characters, over the {MAX_NAME} of a DNS name", name.len()));
    }
    for label in name.split('.') {
        if label.len() > MAX_LABEL {
            return Err(format!("a label has {} characters, over the {MAX_LABEL} of a DNS label", label.len()));
        }
        dns1123_label(&label.to_ascii_lowercase())?;
    }
    Ok(())
}

/// Checks an IANA_SVC_NAME (named ports): at most 15 characters, a-z0-9 and `-`, at least one letter, no `--`.
///
/// # Errors
/// A one-line reason when the name breaks the rule.
pub fn port_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("port name `{name}` must be 1-15 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(format!("port name `{name}` may contain only a-z, 0-9 and `-`"));
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(format!("port name `{name}` must contain at least one letter"));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!("port name `{name}` must not start or end with `-` or contain `--`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035() {
        assert!(dns1035_label("nginx").is_ok());
        assert!(dns1035_label("my-svc-2").is_ok());
        assert!(dns1035_label("2svc").unwrap_err().contains("start with a lower-case letter"));
        assert!(dns1035_label("Nginx").is_err());
        assert!(dns1035_label("svc-").is_err());
        assert!(dns1035_label("a_b").unwrap_err().contains("`_`"));
        assert!(dns1035_label(&"a".repeat(64)).is_err());
        assert!(dns1035_label(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn dns1123() {
        assert!(dns1123_label("2048-game").is_ok());
        assert!(dns1123_label("-x").is_err());
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_ok());
        assert!(port_name("h2c-1").is_ok());
        assert!(port_name("123").is_err());
        assert!(port_name("a--b").is_err());
        assert!(port_name("abcdefghijklmnop").is_err());
    }
}
