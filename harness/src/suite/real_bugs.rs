//! The real-bug matrix: bugs that shipped in kube-proxy and CoreDNS releases, each with the scenario that must fail
//! on the last broken release and pass on the first fixed one. This module owns the catalogue
//! (`scenarios/real-bugs/bugs.yaml`: parsing with `file:line:column` errors), which labs a matrix needs, the verdict
//! of each run and the rendering (text for the terminal, HTML for the report folder). Running the labs is the
//! caller's (`svcbench real-bugs`, the `real-bug::` trials of `cargo test`).
//!
//! ```yaml
//! bugs:
//!   - id: coredns-5733                 # unique, a DNS-1035 label
//!     title: ExternalName Service named like a namespace answers for <svc>.<ns> names
//!     component: coredns               # coredns | kube-proxy
//!     links: [https://github.com/coredns/coredns/issues/5733]
//!     broken: 1.10.0                   # the last release with the bug
//!     fixed: 1.10.1                    # the first release without it
//!     scenario: externalname-like-namespace
//!     step: 12                         # optional: the scenario line that must fail on `broken`
//!     proxyMode: nftables              # optional (default nftables): the kube-proxy mode of both labs
//!     detectLocalMode: InterfaceNamePrefix  # optional (default ClusterCidr): kube-proxy's detectLocalMode
//! ```

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::{
    lab::{
        DnsMode, LabConfig, LocalTraffic, ProxyMode,
        versions::{LabVersions, Release},
    },
    report::{
        html::markup::esc,
        profile::{self, ProfileError},
    },
    results::{Outcome, ScenarioResult},
    scenario::names,
};

/// Where the catalogue lives, relative to the scenarios directory.
pub const CATALOGUE: &str = "real-bugs/bugs.yaml";

/// Which component a bug is in, so which release the two labs vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuggyComponent {
    /// CoreDNS (its kubernetes plugin, cache, …).
    Coredns,
    /// kube-proxy.
    KubeProxy,
}

/// One bug of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealBug {
    /// Unique id, e.g. `coredns-5733`.
    pub id: String,
    /// One line: what goes wrong.
    pub title: String,
    /// The component.
    pub component: BuggyComponent,
    /// Upstream issue and fix.
    pub links: Vec<String>,
    /// The last release with the bug.
    pub broken: Release,
    /// The first release without it.
    pub fixed: Release,
    /// The scenario that catches it.
    pub scenario: String,
    /// The scenario line that must fail on the broken release, if pinned.
    pub step: Option<u64>,
    /// The kube-proxy mode of both labs.
    pub proxy_mode: ProxyMode,
    /// kube-proxy's local-traffic detection in both labs.
    pub local_traffic: LocalTraffic,
    /// The broken release takes the component down for every scenario of its lab (a crash loop): that side runs on a
    /// lab of its own, so the bugs sharing the release are not judged by the outage.
    pub takes_down: bool,
    /// Where the entry starts in the catalogue.
    pub line: u64,
}

impl RealBug {
    /// The lab that runs `release` of the buggy component (everything else pinned).
    pub fn lab(&self, release: Release, nodes: u8) -> LabConfig {
        let versions = match self.component {
            BuggyComponent::Coredns => LabVersions::new(None, Some(release)),
            BuggyComponent::KubeProxy => LabVersions::new(Some(release), None),
        };
        LabConfig { local_traffic: self.local_traffic, ..LabConfig::new(self.proxy_mode, nodes) }
            .with_dns(DnsMode::Coredns)
            .with_versions(versions)
    }

    /// Which lab runs `side`: bugs whose labs would be the same share one, except the broken side of a bug that takes
    /// its component down.
    pub fn lab_key(&self, side: Side, config: &LabConfig) -> String {
        match side {
            Side::Broken if self.takes_down => format!("{} (alone: {})", config.description(), self.id),
            _ => config.description(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    bugs: Vec<Spanned<RawBug>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBug {
    id: Spanned<String>,
    title: Spanned<String>,
    component: BuggyComponent,
    links: Spanned<Vec<String>>,
    broken: Spanned<String>,
    fixed: Spanned<String>,
    scenario: Spanned<String>,
    #[serde(default)]
    step: Option<u64>,
    #[serde(default)]
    proxy_mode: Option<Spanned<String>>,
    #[serde(default)]
    detect_local_mode: LocalTraffic,
    #[serde(default)]
    takes_down: bool,
}

/// Reads and validates the catalogue at `path`.
///
/// # Errors
/// Every problem found, each with `file:line:column`.
pub fn load(path: &Path) -> Result<Vec<RealBug>, Vec<ProfileError>> {
    parse(path, &profile::read(path)?)
}

/// Parses catalogue text read from `path`.
///
/// # Errors
/// Every problem found, each with `file:line:column`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<RealBug>, Vec<ProfileError>> {
    let raw: RawCatalogue = profile::from_yaml(path, text)?;
    let mut errors = Vec::new();
    let mut err = |at: &Location, reason: String| {
        errors.push(ProfileError { path: path.to_owned(), line: at.line(), column: at.column(), reason });
    };
    let mut bugs: Vec<RealBug> = Vec::new();
    for entry in &raw.bugs {
        let b = &entry.value;
        if let Err(why) = names::dns1035_label(&b.id.value) {
            err(&b.id.referenced, format!("id: {why}"));
        }
        if let Some(first) = bugs.iter().find(|o| o.id == b.id.value) {
            err(&b.id.referenced, format!("id `{}` is already used at line {}", b.id.value, first.line));
        }
        if let Err(why) = names::dns1035_label(&b.scenario.value) {
            err(&b.scenario.referenced, format!("scenario name: {why}"));
        }
        if b.title.value.trim().is_empty() {
            err(&b.title.referenced, "title must not be empty: say what goes wrong".into());
        }
        if b.links.value.is_empty() || b.links.value.iter().any(|l| !l.starts_with("https://")) {
            err(&b.links.referenced, "links: at least one, each an https:// URL (the upstream issue and fix)".into());
        }
        let mut release = |field: &Spanned<String>| match field.value.parse::<Release>() {
            Ok(r) => Some(r),
            Err(why) => {
                err(&field.referenced, why);
                None
            }
        };
        let (broken, fixed) = (release(&b.broken), release(&b.fixed));
        if let (Some(broken), Some(fixed)) = (broken, fixed)
            && broken >= fixed
        {
            err(&b.fixed.referenced, format!("fixed ({fixed}) must be a later release than broken ({broken})"));
        }
        let proxy_mode = match b.proxy_mode.as_ref().map(|m| (m, m.value.as_str())) {
            None | Some((_, "nftables")) => ProxyMode::Nftables,
            Some((_, "iptables")) => ProxyMode::Iptables,
            Some((m, other)) => {
                err(&m.referenced, format!("proxyMode `{other}`: one of nftables, iptables"));
                ProxyMode::Nftables
            }
        };
        bugs.push(RealBug {
            id: b.id.value.clone(),
            title: b.title.value.trim().to_owned(),
            component: b.component,
            links: b.links.value.clone(),
            broken: broken.unwrap_or(Release::new(0, 0, 0)),
            fixed: fixed.unwrap_or(Release::new(0, 0, 0)),
            scenario: b.scenario.value.clone(),
            step: b.step,
            proxy_mode,
            local_traffic: b.detect_local_mode,
            takes_down: b.takes_down,
            line: entry.referenced.line(),
        });
    }
    if errors.is_empty() { Ok(bugs) } else { Err(errors) }
}

/// Which side of a bug a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The last broken release: the scenario must fail.
    Broken,
    /// The first fixed release: the scenario must pass.
    Fixed,
}

impl Side {
    /// `broken` / `fixed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::Fixed => "fixed",
        }
    }
}

/// What one run of a bug's scenario showed.
#[derive(Debug, Clone)]
pub struct SideVerdict {
    /// Whether the run is what the matrix expects (fails on broken at the pinned step, passes on fixed).
    pub as_expected: bool,
    /// One line: what happened.
    pub detail: String,
}

/// Judges the scenario's result on one side of `bug`.
pub fn judge(bug: &RealBug, side: Side, result: &ScenarioResult) -> SideVerdict {
    let failure = result.first_failure();
    let at = failure.map(|s| format!("failed at line {}: {}", s.line, s.message.clone().unwrap_or_default()));
    match (side, result.outcome) {
        (Side::Fixed, Outcome::Passed) => SideVerdict { as_expected: true, detail: "passed".into() },
        (Side::Broken, Outcome::Failed) => match (bug.step, failure) {
            (Some(pinned), Some(step)) if step.line != pinned => SideVerdict {
                as_expected: false,
                detail: format!("failed, but at line {} instead of line {pinned}", step.line),
            },
            _ => SideVerdict { as_expected: true, detail: at.unwrap_or_else(|| "failed".into()) },
        },
        (_, Outcome::Failed) => SideVerdict { as_expected: false, detail: at.unwrap_or_else(|| "failed".into()) },
        (_, other) => SideVerdict { as_expected: false, detail: format!("{other:?}").to_lowercase() },
    }
}

/// One row of the matrix: a bug and its two runs (`None`: not run).
#[derive(Debug, Clone)]
pub struct Row {
    /// The bug.
    pub bug: RealBug,
    /// On the broken release.
    pub broken: Option<SideVerdict>,
    /// On the fixed release.
    pub fixed: Option<SideVerdict>,
}

impl Row {
    /// Both runs as the matrix expects.
    pub fn caught(&self) -> bool {
        self.broken.as_ref().is_some_and(|v| v.as_expected) && self.fixed.as_ref().is_some_and(|v| v.as_expected)
    }
}

fn mark(v: Option<&SideVerdict>) -> &'static str {
    match v {
        None => "·",
        Some(v) if v.as_expected => "✔",
        Some(_) => "✘",
    }
}

/// The matrix as a text table.
pub fn render_text(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<28} {:<10} {:<9} {:<9} {:<34} {:<14} {}\n",
        "bug", "component", "broken", "fixed", "scenario", "broken fails", "fixed passes"
    );
    for r in rows {
        let b = &r.bug;
        let component = match b.component {
            BuggyComponent::Coredns => "CoreDNS".to_owned(),
            BuggyComponent::KubeProxy => format!("kp {}", b.proxy_mode.as_str()),
        };
        let _ = writeln!(
            out,
            "{:<28} {:<10} {:<9} {:<9} {:<34} {:<14} {}",
            b.id,
            component,
            b.broken.bare(),
            b.fixed.bare(),
            b.scenario,
            mark(r.broken.as_ref()),
            mark(r.fixed.as_ref())
        );
    }
    out
}

/// The matrix as a standalone HTML page (every text from the catalogue or a result escaped).
pub fn render_html(rows: &[Row], generated_at: &str) -> String {
    let caught = rows.iter().filter(|r| r.caught()).count();
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>svcbench real-bug matrix</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}\
         .ok{{color:#176117}}.bad{{color:#a11}}small{{color:#555}}</style></head><body>\
         <h1>Real-bug matrix</h1><p>{caught} of {} bugs caught: the scenario fails on the last broken release and \
         passes on the first fixed one, each run on a lab with only that component's release changed. Generated \
         {}.</p><table><thead><tr><th>bug</th><th>component</th><th>broken</th><th>fixed</th><th>scenario</th>\
         <th>broken: fails</th><th>fixed: passes</th></tr></thead><tbody>",
        rows.len(),
        esc(generated_at)
    );
    for r in rows {
        let b = &r.bug;
        let links: Vec<String> = b.links.iter().map(|l| format!("<a href=\"{0}\">{0}</a>", esc(l))).collect();
        let cell = |v: Option<&SideVerdict>| match v {
            None => "<td>not run</td>".to_owned(),
            Some(v) => format!(
                "<td class=\"{}\">{} <small>{}</small></td>",
                if v.as_expected { "ok" } else { "bad" },
                mark(Some(v)),
                esc(&v.detail)
            ),
        };
        let component = match b.component {
            BuggyComponent::Coredns => "CoreDNS".to_owned(),
            BuggyComponent::KubeProxy => format!("kube-proxy ({})", b.proxy_mode.as_str()),
        };
        let step = b.step.map(|s| format!(" <small>line {s}</small>")).unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td><b>{}</b><br>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}{step}</td>{}{}</tr>",
            esc(&b.id),
            esc(&b.title),
            links.join("<br>"),
            esc(&component),
            b.broken,
            b.fixed,
            esc(&b.scenario),
            cell(r.broken.as_ref()),
            cell(r.fixed.as_ref())
        );
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

/// The matrix as JSON: per bug, its releases and each side's verdict (`null`: not run).
pub fn rows_json(rows: &[Row]) -> serde_json::Value {
    let side = |v: &Option<SideVerdict>| {
        v.as_ref().map(|v| serde_json::json!({"as_expected": v.as_expected, "detail": v.detail}))
    };
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.bug.id, "scenario": r.bug.scenario, "broken_release": r.bug.broken.bare(),
                    "fixed_release": r.bug.fixed.bare(), "caught": r.caught(),
                    "broken": side(&r.broken), "fixed": side(&r.fixed),
                })
            })
            .collect(),
    )
}

/// The catalogue path for a scenarios directory.
pub fn catalogue_path(scenarios_dir: &Path) -> PathBuf {
    scenarios_dir.join(CATALOGUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "bugs:\n  - id: coredns-5733\n    title: t\n    component: coredns\n    links: [https://x/1]\n    broken: 1.10.0\n    fixed: 1.10.1\n    scenario: s\n";

    #[test]
    fn a_good_entry_parses() {
        let bugs = parse(Path::new("b.yaml"), GOOD).unwrap();
        assert_eq!(bugs[0].fixed, Release::new(1, 10, 1));
        assert_eq!(bugs[0].lab(bugs[0].broken, 2).versions.coredns, Release::new(1, 10, 0));
        assert_eq!(bugs[0].proxy_mode, ProxyMode::Nftables);
    }

    #[test]
    fn errors_name_line_and_column() {
        let swapped = GOOD.replace("broken: 1.10.0", "broken: 1.10.2");
        let e = parse(Path::new("b.yaml"), &swapped).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (7, 12), "{e:?}");
        assert!(e[0].reason.contains("later release"), "{e:?}");
        let typo = GOOD.replace("component: coredns", "component: kube-dns");
        let e = parse(Path::new("b.yaml"), &typo).unwrap_err();
        assert_eq!(e[0].line, 4, "{e:?}");
        let twice = format!("{GOOD}{}", &GOOD["bugs:\n".len()..]);
        let e = parse(Path::new("b.yaml"), &twice).unwrap_err();
        assert!(e[0].reason.contains("already used at line 2"), "{e:?}");
        let link = GOOD.replace("https://x/1", "x/1");
        assert!(parse(Path::new("b.yaml"), &link).unwrap_err()[0].reason.contains("https://"));
    }
}
