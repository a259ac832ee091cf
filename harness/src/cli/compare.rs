//! `svcbench compare`: the same scenarios on several implementations, one after another (each lab started for its
//! turn and stopped after it), and one report with a column per implementation: `index.html` and `junit.xml` in the
//! output folder, and `<implementation>/results.json` (with the profile it was judged by) beside them.
//!
//! `--reuse <dir>` takes a lab implementation's results from `<dir>/<implementation>/results.json` instead of running
//! it again, when they hold exactly these scenarios, step for step, from the same lab (components, versions, node
//! count) — what `cargo test` writes with `SVCBENCH_LAB_RESULTS`; anything else is run.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::ExitCode,
    str::FromStr,
    time::Instant,
};

use clap::Args;

use super::{
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID,
    run::{new_run_id, run_plans, start_factory},
    targets::TargetKind,
};
use crate::{
    lab::{
        DnsMode, LabConfig, ProxyMode,
        versions::{LabVersions, PINNED},
    },
    report::{
        compare::{Comparison, RunInput},
        files, json,
        profile::{Profile, Verdict, verdict},
    },
    results::{RunResults, SCHEMA_VERSION, TargetInfo},
    targets::embedded::EmbeddedConfig,
};

/// One implementation to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// svcbench's embedded reference (user-space proxy, reference DNS).
    Embedded,
    /// A lab: kube-proxy in a mode, with a cluster DNS, at some releases.
    Lab(ProxyMode, DnsMode, LabVersions),
}

impl Implementation {
    /// Every implementation the lab and the embedded target provide.
    pub const ALL: [Implementation; 6] = [
        Implementation::Embedded,
        Implementation::Lab(ProxyMode::Iptables, DnsMode::Coredns, PINNED),
        Implementation::Lab(ProxyMode::Nftables, DnsMode::Coredns, PINNED),
        Implementation::Lab(ProxyMode::Cilium, DnsMode::Coredns, PINNED),
        Implementation::Lab(ProxyMode::Iptables, DnsMode::Nodelocal, PINNED),
        Implementation::Lab(ProxyMode::Nftables, DnsMode::Nodelocal, PINNED),
    ];

    /// The default set: the reference, both kube-proxy modes with CoreDNS, and NodeLocal DNSCache on nftables
    /// (`lab-cilium` on request, until its battery's last flake is explained: issue #21).
    const DEFAULT: [Implementation; 4] = [
        Implementation::Embedded,
        Implementation::Lab(ProxyMode::Iptables, DnsMode::Coredns, PINNED),
        Implementation::Lab(ProxyMode::Nftables, DnsMode::Coredns, PINNED),
        Implementation::Lab(ProxyMode::Nftables, DnsMode::Nodelocal, PINNED),
    ];

    fn lab_config(self, nodes: u8) -> Option<LabConfig> {
        match self {
            Implementation::Embedded => None,
            Implementation::Lab(mode, dns, versions) => {
                Some(LabConfig::new(mode, nodes).with_dns(dns).with_versions(versions))
            }
        }
    }

    /// The profile files that may describe it, most specific first (see [`LabConfig::profile_files`]).
    fn profile_files(self) -> Vec<String> {
        self.lab_config(1).map(|c| c.profile_files()).unwrap_or_default()
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lab_config(1) {
            None => f.write_str("embedded"),
            Some(c) => f.write_str(&c.name()),
        }
    }
}

impl FromStr for Implementation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((base, suffix)) = s.split_once('@') {
            return match base.parse::<Implementation>()? {
                Implementation::Lab(ProxyMode::Cilium, _, _) if !suffix.starts_with("coredns-") => Err(format!(
                    "`{s}`: lab-cilium runs no kube-proxy; only its CoreDNS release can be chosen (`@coredns-1.15.0`)"
                )),
                Implementation::Lab(mode, dns, _) => {
                    LabVersions::from_suffix(suffix).map(|versions| Implementation::Lab(mode, dns, versions)).map_err(
                        |e| format!("`{s}`: {e} (releases: `@1.33.5`, `@coredns-1.10.1`, `@1.37.2+coredns-1.15.0`)"),
                    )
                }
                Implementation::Embedded => Err(format!("`{s}`: the embedded target has no releases to choose")),
            };
        }
        if let Some(found) = Self::ALL.iter().find(|i| i.to_string() == s) {
            return Ok(*found);
        }
        if s.starts_with("lab-ipvs") {
            return Err(ipvs_note());
        }
        let names: Vec<String> = Self::ALL.iter().map(ToString::to_string).collect();
        Err(format!("unknown implementation `{s}`: one of {}", names.join(", ")))
    }
}

/// Why kube-proxy's IPVS mode is not among the implementations.
fn ipvs_note() -> String {
    if Path::new("/proc/net/ip_vs").exists() {
        "kube-proxy ipvs: not compared — the lab runs the iptables and nftables modes (IPVS is deprecated upstream)"
            .into()
    } else {
        "kube-proxy ipvs: not compared — this kernel has no IPVS (no /proc/net/ip_vs: ip_vs is neither built in nor \
         loadable here)"
            .into()
    }
}

/// Arguments of `svcbench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Scenario files (default: every *.yaml in --scenarios-dir).
    scenarios: Vec<PathBuf>,
    /// Implementations, comma-separated (default: embedded, lab-iptables, lab-nftables, lab-nftables-nodelocal;
    /// the lab ones only where the lab can run).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    implementations: Vec<Implementation>,
    /// Where to find scenarios when none are given, and their `profiles/`.
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Folder for the report (created if missing).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Nodes of each lab.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    nodes: u8,
    /// Print every step.
    #[arg(short, long)]
    verbose: bool,
    /// Scenarios in flight at once on each implementation (default: each target's; scenarios whose figures
    /// neighbours would distort still run alone).
    #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Releases of every lab implementation not named with its own (`lab-nftables@1.33.5`).
    #[command(flatten)]
    releases: super::lab::ReleaseArgs,
    /// Take a lab implementation's results from DIR/<implementation>/results.json when they hold exactly these
    /// scenarios, step for step, instead of running them again.
    #[arg(long, value_name = "DIR")]
    reuse: Option<PathBuf>,
}

/// The results at `path` for `implementation` when they are of exactly `plans`, step for step, from the same lab;
/// else why not.
fn reusable(
    path: &Path,
    implementation: Implementation,
    nodes: u8,
    plans: &[crate::scenario::Plan],
) -> Result<RunResults, String> {
    let results = json::read(path).map_err(|e| e.to_string())?;
    if results.target.name != implementation.to_string() {
        return Err(format!("{} holds results of {}", path.display(), results.target.name));
    }
    // The same components at the same versions, on as many nodes.
    let wanted = implementation.lab_config(nodes).map(|c| c.description()).unwrap_or_default();
    if results.target.description != wanted {
        return Err(format!("{} is of another lab ({})", path.display(), results.target.description));
    }
    if results.scenarios.len() != plans.len() {
        return Err(format!("{} holds {} scenarios, not {}", path.display(), results.scenarios.len(), plans.len()));
    }
    for (plan, result) in plans.iter().zip(&results.scenarios) {
        let same_steps = plan.steps.len() == result.steps.len()
            && plan.steps.iter().zip(&result.steps).all(|(planned, ran)| {
                planned.line == ran.line && serde_json::to_value(&planned.kind).ok().as_ref() == Some(&ran.step)
            });
        if plan.name != result.name || !same_steps {
            return Err(format!("{}: `{}` is not the scenario of that name run there", path.display(), plan.name));
        }
    }
    Ok(results)
}

/// Writes one implementation's `results.json` (and the profile it is judged by) into the report folder.
fn write_run(
    output: &Path,
    implementation: Implementation,
    results: &RunResults,
    profile: Option<&Profile>,
) -> Result<PathBuf, String> {
    let dir = output.join(implementation.to_string());
    let path = dir.join(files::RESULTS_NAME);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    json::write(&path, results).map_err(|e| e.to_string())?;
    if let Some(p) = profile {
        files::keep_profile(&dir, p).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

pub async fn compare(args: CompareArgs) -> ExitCode {
    let plans = match super::load_plans(&args.scenarios, &args.scenarios_dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut notes = vec![ipvs_note()];
    let implementations: Vec<Implementation> = if args.implementations.is_empty() {
        match crate::lab::unavailable() {
            None => Implementation::DEFAULT.to_vec(),
            Some(why) => {
                notes.push(format!("lab implementations: not compared — {why}"));
                vec![Implementation::Embedded]
            }
        }
    } else {
        if let Some(why) =
            crate::lab::unavailable().filter(|_| args.implementations.iter().any(|i| i.lab_config(1).is_some()))
        {
            eprintln!("error: {why}");
            return ExitCode::from(EXIT_INVALID);
        }
        // The same implementation twice would write one folder twice.
        let mut unique = Vec::new();
        for i in &args.implementations {
            if !unique.contains(i) {
                unique.push(*i);
            }
        }
        unique
    };
    // `--kubernetes`/`--coredns` move every lab implementation not named with releases of its own.
    let chosen = args.releases.versions();
    let implementations: Vec<Implementation> = implementations
        .into_iter()
        .map(|i| match i {
            Implementation::Lab(mode, dns, versions) if versions.is_default() => Implementation::Lab(mode, dns, chosen),
            other => other,
        })
        .collect();
    if let Some(missing) = implementations.iter().find_map(|i| {
        let config = i.lab_config(1)?;
        crate::lab::install::Installation::find(&config.versions)
            .is_none()
            .then(|| crate::lab::install::Installation::install_command(&config.versions))
    }) {
        eprintln!("error: the lab is not installed for these releases: run `{missing}`");
        return ExitCode::from(EXIT_INVALID);
    }
    if implementations.iter().any(|i| matches!(i, Implementation::Lab(_, DnsMode::Nodelocal, _))) {
        notes.push(
            "NodeLocal DNSCache: k8s.io/dns (node-cache) is not served by the Go module proxy here, so its binary \
             cannot be built; the lab runs its data path instead — the add-on's Corefile on CoreDNS, node-cache's \
             NOTRACK/ACCEPT rules, 169.254.20.10 per node (on the node's loopback with scope host, never a masquerade source, not a dummy interface: the \
             machines the lab was built on have no dummy driver) and kubelet clusterDNS pointed at it."
                .into(),
        );
    }
    // Every profile is read before the first lab starts: a typo should not cost a lab run.
    let mut profiles = Vec::new();
    for implementation in &implementations {
        let dir = args.scenarios_dir.join("profiles");
        let candidates = implementation.profile_files();
        let found = candidates.iter().find(|f| dir.join(f).exists());
        let pinned = matches!(implementation, Implementation::Lab(_, _, v) if v.is_default());
        let chosen = match (found, candidates.first()) {
            (_, None) => None,
            // The pinned releases' profile must be there (loading it reports its absence): a broken checkout.
            (None, Some(first)) if pinned => Some(first),
            // Releases nobody has measured yet: judged without a profile, and the report says so.
            (None, Some(_)) => {
                notes.push(format!(
                    "{implementation}: no measured profile (profiles/{}), so every failure counts as a failure",
                    candidates.join(" or profiles/")
                ));
                None
            }
            (Some(file), Some(first)) => {
                if file != first {
                    notes.push(format!(
                        "{implementation}: judged by profiles/{file} (its cluster DNS's); its kube-proxy release has no \
                         differences of its own on record (profiles/{first})"
                    ));
                }
                Some(file)
            }
        };
        let profile = match chosen.map(|file| Profile::load(&dir.join(file))).transpose() {
            Ok(p) => p,
            Err(errors) => {
                errors.iter().for_each(|e| eprintln!("{e}"));
                return ExitCode::from(EXIT_INVALID);
            }
        };
        profiles.push(profile);
    }
    if let Err(e) = std::fs::create_dir_all(&args.output) {
        eprintln!("error: cannot create {}: {e}", args.output.display());
        return ExitCode::from(EXIT_INVALID);
    }
    let mut inputs = Vec::new();
    for (implementation, profile) in implementations.iter().zip(profiles) {
        let kept = args
            .reuse
            .as_ref()
            .filter(|_| implementation.lab_config(1).is_some())
            .map(|dir| dir.join(implementation.to_string()).join(files::RESULTS_NAME))
            // Nothing kept for this one (cargo test keeps lab-nftables and lab-iptables): it simply runs.
            .filter(|path| path.exists());
        let reused = kept.as_ref().and_then(|path| match reusable(path, *implementation, args.nodes, &plans) {
            Ok(results) => Some((results, path.display())),
            Err(why) => {
                println!("\n{implementation}: not reused ({why}): running it");
                None
            }
        });
        if let Some((results, source)) = reused {
            println!("\n== {implementation}: {} scenarios reused from {source}", plans.len());
            notes.push(format!(
                "{implementation}: the results of an earlier run of the same scenarios on the same lab ({source}), not \
                 run again"
            ));
            match write_run(&args.output, *implementation, &results, profile.as_ref()) {
                Ok(path) => inputs.push(RunInput { results, profile, source: Some(path) }),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            }
            continue;
        }
        println!("\n== {implementation}: {} scenarios", plans.len());
        let started_at = jiff::Timestamp::now().to_string();
        let started = Instant::now();
        let (kind, lab) = match implementation.lab_config(args.nodes) {
            None => (TargetKind::Embedded, LabConfig::new(ProxyMode::Nftables, args.nodes)),
            Some(lab) => (TargetKind::Lab, lab),
        };
        let embedded = match EmbeddedConfig::from_env() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        };
        // A lab that fails to start is infrastructure, not a verdict: its error (with what its pods were doing) is
        // printed, and it gets one more try before the comparison gives up.
        let factory = match start_factory(kind, embedded.clone(), None, lab.clone()).await {
            Ok(f) => f,
            Err(code) if kind == TargetKind::Lab && code != ExitCode::from(EXIT_INTERRUPTED) => {
                eprintln!("{implementation}: the lab did not start (above); trying once more");
                match start_factory(kind, embedded, None, lab).await {
                    Ok(f) => f,
                    Err(code) => return code,
                }
            }
            Err(code) => return code,
        };
        let outcome = run_plans(&plans, &factory, args.verbose, profile.as_ref(), kind.jobs(args.jobs)).await;
        let name = factory.name();
        // The lab goes with its logs: when a verdict is a failure the profile does not expect, keep the components'
        // logs beside the report, to read what they did (kube-proxy runs at -v=2 and says why it chose endpoints).
        let unexpected = outcome
            .as_ref()
            .is_ok_and(|(scenarios, _)| scenarios.iter().any(|s| verdict(s, profile.as_ref()) == Verdict::Failed));
        if unexpected {
            let into = args.output.join(implementation.to_string()).join("logs");
            if let Some(copied) = factory.copy_logs(&into) {
                println!(
                    "{implementation}: a failure the profile does not expect; lab logs ({copied} files): {}",
                    into.display()
                );
                notes.push(format!("{implementation}: the lab's component logs are kept in {}", into.display()));
            }
        }
        factory.stop().await;
        let (scenarios, description) = match outcome {
            Ok(r) => r,
            Err(code) => return code,
        };
        let results = RunResults {
            schema_version: SCHEMA_VERSION,
            run_id: new_run_id(),
            started_at,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            target: TargetInfo { name, description },
            scenarios,
        };
        let path = match write_run(&args.output, *implementation, &results, profile.as_ref()) {
            Ok(path) => path,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        };
        inputs.push(RunInput { results, profile, source: Some(path) });
    }
    let comparison = Comparison::new(inputs).with_notes(notes);
    let rendered = match files::write_rendered(&args.output, &comparison) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    println!();
    let mut failed = false;
    for (i, run) in comparison.runs.iter().enumerate() {
        let n = comparison.counts(i);
        failed |= n.failed + n.skipped > 0;
        let ran = comparison.scenarios.iter().filter(|s| comparison.result(i, s).is_some()).count();
        println!(
            "{}: {}/{} passed, {} failed, {} not run, {} inconclusive, {} expected failures (profile), {} unexpected \
             passes; {:.0} s",
            run.label,
            n.passed + n.unexpected_pass,
            ran,
            n.failed,
            n.skipped,
            n.inconclusive,
            n.expected_fail,
            n.unexpected_pass,
            run.input.results.duration_ms / 1000.0
        );
    }
    let differing = comparison
        .scenarios
        .iter()
        .filter(|s| !crate::report::differences::scenario_differences(&comparison, s).is_empty())
        .count();
    println!("{differing} of {} scenarios differ between implementations", comparison.scenarios.len());
    for note in &comparison.notes {
        println!("note: {note}");
    }
    println!("report: {}\njunit:  {}", rendered.html.display(), rendered.junit.display());
    if failed { ExitCode::from(EXIT_FAILED) } else { ExitCode::SUCCESS }
}
