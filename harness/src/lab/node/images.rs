//! The images the lab can run, mapped to programs on this machine (the lab has no container runtime and pulls
//! nothing): agnhost (`netexec` → svcbench's netexec-compatible server), the svcbench agent image (→ `svcbench`),
//! CoreDNS (→ the built `coredns`). Any other image is a clear `ErrImagePull` on the pod.

use std::path::PathBuf;

use super::NodeContext;

/// The program a container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Program path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The repository part of an image reference (`registry.k8s.io/coredns/coredns:v1.12.1` → `…/coredns`).
fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    }
}

/// Resolves a container's image, command and args (Kubernetes semantics: `command` replaces the entrypoint, `args`
/// replaces the image's default arguments).
///
/// # Errors
/// The image is not one the lab knows: the message says which it runs.
pub fn resolve(
    ctx: &NodeContext,
    image: &str,
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Result<Launch, String> {
    let repo = repository(image);
    let agent_image = std::env::var("SVCBENCH_AGENT_IMAGE").unwrap_or_else(|_| "svcbench-agent".into());
    let (entrypoint, default_args): (PathBuf, Vec<String>) = if repo.ends_with("e2e-test-images/agnhost") {
        // agnhost's entrypoint is the agnhost binary; only its netexec subcommand is provided.
        let args = args.unwrap_or_default();
        if args.first().map(String::as_str) != Some("netexec") {
            return Err(format!("the lab runs agnhost only as `netexec`, not {args:?}"));
        }
        let mut full = vec!["lab".to_owned()];
        full.extend(args.iter().cloned());
        return Ok(Launch { program: ctx.svcbench.clone(), args: full });
    } else if repo == repository(&agent_image) || repo.ends_with("/svcbench-agent") || repo == "svcbench-agent" {
        (ctx.svcbench.clone(), vec!["agent".into()])
    } else if repo.ends_with("coredns/coredns") || repo == "coredns" {
        (ctx.installation.binary("coredns"), Vec::new())
    } else {
        return Err(format!(
            "the lab has no image {image}: it runs registry.k8s.io/e2e-test-images/agnhost (netexec), the svcbench \
             agent image and registry.k8s.io/coredns/coredns"
        ));
    };
    let (program, mut argv) = match command {
        Some([first, rest @ ..]) => (PathBuf::from(first), rest.to_vec()),
        _ => (entrypoint, Vec::new()),
    };
    match args {
        Some(args) => argv.extend(args.iter().cloned()),
        None if command.is_none() => argv.extend(default_args),
        None => {}
    }
    Ok(Launch { program, args: argv })
}

#[cfg(test)]
mod tests {
    use super::repository;

    #[test]
    fn repository_strips_tag_and_digest() {
        assert_eq!(repository("registry.k8s.io/coredns/coredns:v1.12.1"), "registry.k8s.io/coredns/coredns");
        assert_eq!(repository("localhost:5000/svcbench-agent"), "localhost:5000/svcbench-agent");
        assert_eq!(repository("svcbench-agent:dev"), "svcbench-agent");
        assert_eq!(repository("a/b@sha256:00"), "a/b");
    }
}
