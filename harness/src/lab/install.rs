//! `svcbench lab install`: builds the pinned components from their Go modules into a cache outside the repository.
//!
//! Layout under the cache root (`SVCBENCH_LAB_CACHE`, else `$XDG_CACHE_HOME/svcbench/lab`, else
//! `~/.cache/svcbench/lab`): `gomod/` and `gobuild/` (GOMODCACHE, GOCACHE), `src/<module>/` (our wrapper modules),
//! `logs/<binary>.log` (the go command's output) and `bin/<bundle>/` (the binaries, one directory per version set).
//! Nothing is downloaded except through the Go module proxy, and a binary already built for its version is reused.
//!
//! `k8s.io/kubernetes` requires its ~30 staging modules at `v0.0.0`, so its wrapper module `replace`s each with the
//! published `v0.X.Y`; etcd's server module carries `replace` directives, so it gets a wrapper module too; CoreDNS has
//! none, so `go install module@version` builds it.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use super::versions::{
    self, CONTROL_PLANE, COREDNS_COMPONENT, Component, ETCD_COMPONENT, KUBE_PROXY, LabVersions, Release,
};

/// What went wrong, as one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// No `go` on PATH.
    #[error(
        "`go` not found on PATH: the lab builds Kubernetes, etcd and CoreDNS from their Go modules (install Go 1.24+)"
    )]
    NoGo,
    /// The module proxy did not answer.
    #[error("Go module proxy unreachable ({proxy}): {detail}")]
    ProxyUnreachable {
        /// GOPROXY in effect.
        proxy: String,
        /// The go command's first error line.
        detail: String,
    },
    /// A go command failed.
    #[error("building {what} failed: {detail} (full output: {log})")]
    Build {
        /// The binary or step.
        what: String,
        /// The go command's first error line.
        detail: String,
        /// Log file.
        log: String,
    },
    /// Filesystem trouble.
    #[error("{0}")]
    Io(String),
}

/// Where one lab's binaries are: each component at the release [`LabVersions`] gives it.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The releases these binaries are.
    pub versions: LabVersions,
    root: PathBuf,
}

/// Every binary a lab runs.
const COMPONENTS: [Component; 6] =
    [ETCD_COMPONENT, CONTROL_PLANE[0], CONTROL_PLANE[1], CONTROL_PLANE[2], KUBE_PROXY, COREDNS_COMPONENT];

/// The release `versions` gives a binary, and the `bin/` directory its builds go to (etcd, CoreDNS, Kubernetes).
fn release_of(binary: &str, versions: &LabVersions) -> (Release, &'static str) {
    match binary {
        "etcd" => (versions::ETCD, "etcd"),
        "coredns" => (versions.coredns, "coredns"),
        "kube-proxy" => (versions.kube_proxy, "kubernetes"),
        _ => (versions.control_plane, "kubernetes"),
    }
}

/// Where a binary at the release `versions` gives it lives under `bin/`: `kubernetes-v1.34.4/kube-proxy`,
/// `etcd-v3.6.5/etcd`, `coredns-v1.12.1/coredns`.
fn bin_path(root: &Path, binary: &str, versions: &LabVersions) -> PathBuf {
    let (release, family) = release_of(binary, versions);
    root.join("bin").join(format!("{family}-{release}")).join(binary)
}

impl Installation {
    /// Path of one binary.
    pub fn binary(&self, name: &str) -> PathBuf {
        bin_path(&self.root, name, &self.versions)
    }

    /// Cilium's directory: `cilium-agent`, `cilium-cni`, `lib/bpf/` (the datapath sources the agent compiles at
    /// run time) and `crds/` (its CustomResourceDefinitions).
    pub fn cilium_dir(&self) -> PathBuf {
        cilium_dir(&self.root)
    }

    /// Whether Cilium is built (`--proxy-mode cilium` needs it).
    pub fn has_cilium(&self) -> bool {
        let dir = self.cilium_dir();
        ["cilium-agent", "cilium-cni", "lib/bpf", "crds"].iter().all(|p| dir.join(p).exists())
    }

    /// The pinned CoreDNS, which plays the lab's upstream resolver whatever CoreDNS the cluster runs.
    pub fn upstream_dns(&self) -> PathBuf {
        bin_path(&self.root, COREDNS_COMPONENT.binary, &LabVersions::default())
    }

    /// The installation of `versions` if every binary it needs is built, else `None`.
    pub fn find(versions: &LabVersions) -> Option<Self> {
        let root = cache_root();
        adopt_legacy_bundle(&root);
        let found = Self { versions: *versions, root };
        let upstream = found.upstream_dns();
        (upstream.is_file() && COMPONENTS.iter().all(|c| found.binary(c.binary).is_file())).then_some(found)
    }

    /// What `svcbench lab install` would have to be told to build what is missing (for error messages).
    pub fn install_command(versions: &LabVersions) -> String {
        let mut cmd = String::from("svcbench lab install");
        if versions.kube_proxy != versions::KUBERNETES {
            cmd.push_str(&format!(" --kubernetes {}", versions.kube_proxy.bare()));
        }
        if versions.coredns != versions::COREDNS {
            cmd.push_str(&format!(" --coredns {}", versions.coredns.bare()));
        }
        cmd
    }
}

/// Before releases could be chosen, every binary lived in one `bin/k8s-…_etcd-…_coredns-…` bundle: link its
/// binaries where [`bin_path`] looks, so a warm cache stays warm (the bundle stays for older svcbench checkouts).
fn adopt_legacy_bundle(root: &Path) {
    let pinned = LabVersions::default();
    let legacy = root.join("bin").join(format!(
        "k8s-{}_etcd-{}_coredns-{}",
        versions::KUBERNETES,
        versions::ETCD,
        versions::COREDNS
    ));
    if !legacy.is_dir() {
        return;
    }
    for component in &COMPONENTS {
        let (old, new) = (legacy.join(component.binary), bin_path(root, component.binary, &pinned));
        if old.is_file() && !new.exists() && new.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok()) {
            let _ = std::fs::hard_link(&old, &new).or_else(|_| std::fs::copy(&old, &new).map(drop));
        }
    }
}

/// The cache root.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("SVCBENCH_LAB_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("svcbench").join("lab")
}

/// Builds whatever the pinned releases and each of `extra` need and is missing, printing one line per component
/// to stderr; each release is built once and kept beside the others.
///
/// # Errors
/// See [`InstallError`].
pub fn install(extra: &[LabVersions]) -> Result<Vec<Installation>, InstallError> {
    let go = Go::new()?;
    adopt_legacy_bundle(&go.root);
    let started = Instant::now();
    let mut wanted = vec![LabVersions::default()];
    wanted.extend(extra.iter().filter(|v| !v.is_default()));
    // What to build, each binary once per release: Kubernetes binaries grouped by release (one go build each),
    // CoreDNS releases, etcd.
    let mut kubernetes: Vec<(Release, Vec<&Component>)> = Vec::new();
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut coredns: Vec<Release> = Vec::new();
    let mut etcd = false;
    let mut built_any = false;
    for versions in &wanted {
        for component in &COMPONENTS {
            let path = bin_path(&go.root, component.binary, versions);
            let (release, _) = release_of(component.binary, versions);
            if path.is_file() || missing.contains(&path) {
                continue;
            }
            built_any = true;
            eprintln!("lab install: {} {release} missing", component.binary);
            missing.push(path);
            match component.binary {
                "etcd" => etcd = true,
                "coredns" if !coredns.contains(&release) => coredns.push(release),
                "coredns" => {}
                _ => match kubernetes.iter_mut().find(|(r, _)| *r == release) {
                    Some((_, list)) if list.contains(&component) => {}
                    Some((_, list)) => list.push(component),
                    None => kubernetes.push((release, vec![component])),
                },
            }
        }
    }
    if etcd {
        let src = go.wrapper(
            "etcd",
            &format!("require go.etcd.io/etcd/server/v3 {}\n", versions::ETCD),
            &["go.etcd.io/etcd/server/v3"],
        )?;
        let out = bin_path(&go.root, ETCD_COMPONENT.binary, &LabVersions::default());
        go.build("etcd", &src, out.parent().unwrap_or(&go.root), &[ETCD_COMPONENT.package], versions::ETCD)?;
    }
    for release in coredns {
        let out = bin_path(&go.root, COREDNS_COMPONENT.binary, &LabVersions::new(None, Some(release)));
        let dir = out.parent().unwrap_or(&go.root).to_path_buf();
        mkdir(&dir)?;
        go.install_module(
            "coredns",
            &format!("{}@{release}", COREDNS_COMPONENT.package),
            &dir,
            coredns_toolchain(release),
        )?;
    }
    for (release, components) in kubernetes {
        let requires = go.kubernetes_requires(release)?;
        let all: Vec<&str> = CONTROL_PLANE.iter().chain([&KUBE_PROXY]).map(|c| c.package).collect();
        let src = go.wrapper(&format!("kubernetes-{release}"), &requires, &all)?;
        let packages: Vec<&str> = components.iter().map(|c| c.package).collect();
        let names: Vec<&str> = components.iter().map(|c| c.binary).collect();
        let out = go.root.join("bin").join(format!("kubernetes-{release}"));
        mkdir(&out)?;
        go.build(&names.join(", "), &src, &out, &packages, release)?;
    }
    if !cilium_dir(&go.root).join("crds").is_dir() {
        built_any = true;
        build_cilium(&go)?;
    }
    if built_any {
        eprintln!("lab install: done in {:.0?} → {}", started.elapsed(), go.root.join("bin").display());
    }
    wanted
        .iter()
        .map(|versions| {
            let found = Installation::find(versions).ok_or_else(|| {
                InstallError::Io(format!("binaries of {} missing after the build", describe(versions)))
            })?;
            eprintln!("lab install: {} ready", describe(versions));
            Ok(found)
        })
        .collect()
}

/// `Kubernetes v1.34.4 (kube-proxy v1.33.5), etcd v3.6.5, CoreDNS v1.12.1`.
fn describe(versions: &LabVersions) -> String {
    let proxy = if versions.kube_proxy == versions.control_plane {
        String::new()
    } else {
        format!(" (kube-proxy {})", versions.kube_proxy)
    };
    format!("Kubernetes {}{proxy}, etcd {}, CoreDNS {}", versions.control_plane, versions::ETCD, versions.coredns)
}

fn cilium_dir(root: &Path) -> PathBuf {
    root.join("bin").join(format!("cilium-{}", versions::CILIUM))
}

/// Builds `cilium-agent` and `cilium-cni` inside Cilium's own module (its go.mod has `replace` directives, so `go
/// install module@version` refuses it), then copies the datapath sources and CRDs beside them; `crds/` last, as the
/// mark of a complete build.
///
/// The module pins `github.com/osrg/gobgp/v4` at a pseudo-version the module proxy does not serve; the agent builds
/// against the released v4.7.0 (only the BGP control plane uses it, and the lab does not enable it). The operator
/// is not built: it needs `sigs.k8s.io/mcs-api/controllers`, which the proxy does not serve, and the lab does its one
/// job it needs (registering the CRDs) itself.
fn build_cilium(go: &Go) -> Result<(), InstallError> {
    let release = versions::CILIUM;
    let module = format!("github.com/cilium/cilium@{release}");
    let mut cmd = go.command(&go.root);
    cmd.args(["mod", "download", "-json", &module]);
    let output = cmd.output().map_err(|e| InstallError::Io(format!("cannot run go: {e}")))?;
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let Some(module_dir) = info.get("Dir").and_then(|v| v.as_str()).filter(|_| output.status.success()) else {
        let detail = info.get("Error").and_then(|v| v.as_str()).unwrap_or("no module directory").to_owned();
        return Err(InstallError::ProxyUnreachable { proxy: go.proxy.clone(), detail });
    };
    // The module cache is read-only: build in a writable copy.
    let src = go.root.join("src").join(format!("cilium-{release}"));
    if !src.join("go.mod").is_file() {
        // A copy cut short earlier: `cp -r` into an existing folder would nest the module inside it.
        let _ = std::fs::remove_dir_all(&src);
        let status = Command::new("cp").arg("-r").arg(module_dir).arg(&src).status();
        let writable = Command::new("chmod").arg("-R").arg("u+w").arg(&src).status();
        if !status.is_ok_and(|s| s.success()) || !writable.is_ok_and(|s| s.success()) {
            return Err(InstallError::Io(format!("cannot copy {module_dir} to {}", src.display())));
        }
    }
    let mut cmd = go.command(&src);
    cmd.args(["mod", "edit", "-replace", "github.com/osrg/gobgp/v4=github.com/osrg/gobgp/v4@v4.7.0"]);
    go.run(cmd, "cilium (go.mod)", "cilium-mod-edit")?;
    let out = cilium_dir(&go.root);
    mkdir(&out)?;
    // Measured cold on 2 busy cores: the agent 909 s, the plugin 4 s once the agent's packages are built.
    for (binary, package, cold) in [
        ("cilium-agent", "./daemon", " (about 15 minutes on a cold cache)"),
        ("cilium-cni", "./plugins/cilium-cni", ""),
    ] {
        eprintln!("lab install: building {binary} {release}{cold} …");
        let started = Instant::now();
        let mut cmd = go.command(&src);
        cmd.args(["build", "-trimpath", "-tags", "osusergo", LDFLAGS, "-o"]).arg(out.join(binary)).arg(package);
        go.run(cmd, binary, binary)?;
        eprintln!("lab install: built {binary} in {:.0?}", started.elapsed());
    }
    let copy = |from: &Path, to: &Path| -> Result<(), InstallError> {
        let _ = std::fs::remove_dir_all(to);
        mkdir(to.parent().unwrap_or(&out))?;
        let ok = Command::new("cp").arg("-r").arg(from).arg(to).status().is_ok_and(|s| s.success());
        if ok { Ok(()) } else { Err(InstallError::Io(format!("cannot copy {} to {}", from.display(), to.display()))) }
    };
    copy(&src.join("bpf"), &out.join("lib").join("bpf"))?;
    let crds = out.join("crds.partial");
    let _ = std::fs::remove_dir_all(&crds);
    mkdir(&crds)?;
    for group in ["v2", "v2alpha1"] {
        let dir = src.join("pkg/k8s/apis/cilium.io/client/crds").join(group);
        for entry in std::fs::read_dir(&dir).map_err(|e| InstallError::Io(format!("{}: {e}", dir.display())))? {
            let path = entry.map_err(|e| InstallError::Io(e.to_string()))?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let to = crds.join(path.file_name().unwrap_or_default());
                std::fs::copy(&path, &to).map_err(|e| InstallError::Io(format!("{}: {e}", path.display())))?;
            }
        }
    }
    std::fs::rename(&crds, out.join("crds")).map_err(|e| InstallError::Io(format!("{}: {e}", crds.display())))?;
    Ok(())
}

fn mkdir(dir: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(dir).map_err(|e| InstallError::Io(format!("cannot create {}: {e}", dir.display())))
}

/// The Go a CoreDNS release needs when the local one cannot build it: 1.11.0 and 1.11.1 pin quic-go v0.37, which
/// no Go after 1.20 compiles; the module proxy serves Go 1.20.14 as a toolchain.
fn coredns_toolchain(release: Release) -> Option<&'static str> {
    (release.major == 1 && release.minor == 11 && release.patch <= 1).then_some("go1.20.14")
}

/// Stripped binaries; `-checklinkname=0` because older releases pin `golang.org/x/net` versions that `go:linkname`
/// into the runtime, which Go 1.23+ refuses to link by default (CoreDNS 1.10: "invalid reference to
/// syscall.recvmsg").
const LDFLAGS: &str = "-ldflags=-s -checklinkname=0";

/// The go command with the lab's caches.
struct Go {
    root: PathBuf,
    proxy: String,
}

impl Go {
    fn new() -> Result<Self, InstallError> {
        let ok = Command::new("go").arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !ok.is_ok_and(|s| s.success()) {
            return Err(InstallError::NoGo);
        }
        let proxy = std::env::var("GOPROXY").unwrap_or_else(|_| "https://proxy.golang.org,direct".into());
        let root = cache_root();
        for sub in ["gomod", "gobuild", "src", "logs"] {
            mkdir(&root.join(sub))?;
        }
        Ok(Self { root, proxy })
    }

    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new("go");
        cmd.current_dir(dir)
            .env("GOMODCACHE", self.root.join("gomod"))
            .env("GOCACHE", self.root.join("gobuild"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0");
        cmd
    }

    /// Runs a go command with its output in `logs/<log>.log`; on failure, the first error line.
    fn run(&self, mut cmd: Command, what: &str, log: &str) -> Result<(), InstallError> {
        let log_path = self.root.join("logs").join(format!("{log}.log"));
        let output = cmd.stdin(Stdio::null()).output().map_err(|e| InstallError::Io(format!("cannot run go: {e}")))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let _ = std::fs::File::create(&log_path).and_then(|mut f| f.write_all(text.as_bytes()));
        if output.status.success() {
            return Ok(());
        }
        let detail = text
            .lines()
            .filter(|l| !l.starts_with("go: downloading") && !l.trim().is_empty())
            .find(|l| l.contains("error") || l.contains("go: ") || l.contains(".go:"))
            .or_else(|| text.lines().last())
            .unwrap_or("no output")
            .trim()
            .to_owned();
        let unreachable = ["dial tcp", "no such host", "connection refused", "i/o timeout", "TLS handshake"];
        if unreachable.iter().any(|u| detail.contains(u)) {
            return Err(InstallError::ProxyUnreachable { proxy: self.proxy.clone(), detail });
        }
        Err(InstallError::Build { what: what.to_owned(), detail, log: log_path.display().to_string() })
    }

    /// Writes a wrapper module `src/<name>` that requires `requires` and blank-imports `packages` (so `go mod tidy`
    /// pins every dependency they need), then tidies it.
    fn wrapper(&self, name: &str, requires: &str, packages: &[&str]) -> Result<PathBuf, InstallError> {
        let dir = self.root.join("src").join(name);
        mkdir(&dir)?;
        let go_mod = format!("module svcbench.local/lab/{name}\n\ngo 1.24\n\n{requires}");
        let mut tools = String::from("//go:build tools\n\npackage tools\n\nimport (\n");
        for p in packages {
            let _ = writeln!(tools, "\t_ \"{p}\"");
        }
        tools.push_str(")\n");
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
                return Ok(());
            }
            std::fs::write(&path, text).map_err(|e| InstallError::Io(format!("cannot write {}: {e}", path.display())))
        };
        write("go.mod.in", &go_mod)?;
        // go.mod is rewritten by tidy; start from our template whenever the template changed or tidy never ran.
        if !dir.join("go.sum").exists()
            || std::fs::read_to_string(dir.join("go.mod.in")).ok()
                != std::fs::read_to_string(dir.join("go.mod.orig")).ok()
        {
            write("go.mod", &go_mod)?;
            write("tools.go", &tools)?;
            eprintln!("lab install: resolving {name} modules (go mod tidy) …");
            let mut cmd = self.command(&dir);
            cmd.args(["mod", "tidy"]);
            self.run(cmd, &format!("the {name} wrapper module"), &format!("{name}-tidy"))?;
            write("go.mod.orig", &go_mod)?;
        }
        Ok(dir)
    }

    fn build(
        &self,
        what: &str,
        dir: &Path,
        out: &Path,
        packages: &[&str],
        version: Release,
    ) -> Result<(), InstallError> {
        eprintln!("lab install: building {what} {version} (minutes on a cold cache) …");
        let started = Instant::now();
        let mut cmd = self.command(dir);
        cmd.args(["build", "-trimpath", LDFLAGS]).arg("-o");
        if packages.len() == 1 {
            cmd.arg(out.join(what));
        } else {
            cmd.arg(format!("{}/", out.display()));
        }
        cmd.args(packages);
        self.run(cmd, what, &what.replace(", ", "+"))?;
        eprintln!("lab install: built {what} in {:.0?}", started.elapsed());
        Ok(())
    }

    /// `go install module@version` into `out`, with the local Go or the older `toolchain` (fetched through the module
    /// proxy, whose linker predates `-checklinkname`).
    fn install_module(
        &self,
        what: &str,
        module: &str,
        out: &Path,
        toolchain: Option<&str>,
    ) -> Result<(), InstallError> {
        let with = toolchain.map(|t| format!(" with {t}")).unwrap_or_default();
        eprintln!("lab install: building {module}{with} (minutes on a cold cache) …");
        let started = Instant::now();
        let mut cmd = self.command(&self.root);
        let ldflags = if toolchain.is_some() { "-ldflags=-s" } else { LDFLAGS };
        cmd.env("GOBIN", out).env("GOFLAGS", "").args(["install", "-trimpath", ldflags, module]);
        if let Some(toolchain) = toolchain {
            cmd.env("GOTOOLCHAIN", toolchain);
        }
        self.run(cmd, what, what)?;
        eprintln!("lab install: built {what} in {:.0?}", started.elapsed());
        Ok(())
    }

    /// Whether the module proxy serves `module` at `version`.
    fn serves(&self, module: &str, version: &str) -> bool {
        let mut cmd = self.command(&self.root);
        cmd.args(["mod", "download", "-json", &format!("{module}@{version}")]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// `require k8s.io/kubernetes vX` plus a `replace` of every staging module its go.mod requires at `v0.0.0`.
    fn kubernetes_requires(&self, release: Release) -> Result<String, InstallError> {
        let module = format!("k8s.io/kubernetes@{release}");
        let mut cmd = self.command(&self.root);
        cmd.args(["mod", "download", "-json", &module]);
        let log = self.root.join("logs").join(format!("kubernetes-{release}-download.log"));
        let output = cmd.output().map_err(|e| InstallError::Io(format!("cannot run go: {e}")))?;
        let _ = std::fs::write(&log, [&output.stdout[..], &output.stderr[..]].concat());
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let go_mod = match info.get("GoMod").and_then(|v| v.as_str()) {
            Some(path) if output.status.success() => path.to_owned(),
            _ => {
                let detail =
                    info.get("Error").and_then(|v| v.as_str()).map(str::to_owned).unwrap_or_else(|| {
                        String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or("").to_owned()
                    });
                return Err(InstallError::ProxyUnreachable { proxy: self.proxy.clone(), detail });
            }
        };
        let text =
            std::fs::read_to_string(&go_mod).map_err(|e| InstallError::Io(format!("cannot read {go_mod}: {e}")))?;
        let mut out = format!("require k8s.io/kubernetes {release}\n\n");
        // The staging modules are published as v0.MINOR.PATCH of Kubernetes 1.MINOR.PATCH. Where the proxy does
        // not serve one at that patch (k8s.io/kube-proxy v0.33.6 here), the nearest earlier patch of the same minor
        // stands in: staging modules hold API types and libraries, the Service code under test is in the main module.
        for staging in staging_modules(&text) {
            let wanted = format!("v0.{}.{}", release.minor, release.patch);
            let served = (0..=release.patch)
                .rev()
                .map(|patch| format!("v0.{}.{patch}", release.minor))
                .find(|version| self.serves(staging, version))
                .ok_or_else(|| InstallError::Build {
                    what: format!("Kubernetes {release}"),
                    detail: format!("{staging} is not served at any v0.{}.x up to {wanted}", release.minor),
                    log: log.display().to_string(),
                })?;
            if served != wanted {
                eprintln!("lab install: {staging} {wanted} is not served by the module proxy: using {served}");
            }
            let _ = writeln!(out, "replace {staging} => {staging} {served}");
        }
        Ok(out)
    }
}

/// The `k8s.io/*` modules a Kubernetes go.mod requires at `v0.0.0` (its staging modules).
fn staging_modules(go_mod: &str) -> Vec<&str> {
    go_mod
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (module, version) = (parts.next()?, parts.next()?);
            (module.starts_with("k8s.io/") && version == "v0.0.0" && parts.next().is_none_or(|c| c == "//"))
                .then_some(module)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::staging_modules;

    #[test]
    fn finds_staging_modules_only() {
        let go_mod = "require (\n\tk8s.io/api v0.0.0\n\tk8s.io/utils v0.0.0-2025\n\tgithub.com/x/y v1.0.0\n\tk8s.io/kubelet v0.0.0 // indirect\n)\nreplace k8s.io/api => ./staging/src/k8s.io/api\n";
        assert_eq!(staging_modules(go_mod), ["k8s.io/api", "k8s.io/kubelet"]);
    }
}
