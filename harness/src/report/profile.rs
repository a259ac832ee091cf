//! Expected-failure profiles: per implementation, the scenarios it is known not to pass, each with a reason (like
//! Gateway API's supported/exempt features). A profile turns a failure into an *expected* failure, which does not fail
//! the run, and flags an expected failure that passes.
//!
//! ```yaml
//! implementation: coredns            # what the profile describes
//! description: CoreDNS 1.12 with the Corefile Kubernetes ships
//! expectedFailures:
//!   - scenario: headless-recreate    # a scenario name (DNS-1035 label)
//!     reason: cached answers outlive the 10 s assertion timeout (`cache 30`)
//!     link: https://example.org/issue/1   # optional
//! ```
//!
//! `includes: [other.yaml]` (files beside it) adds another profile's entries: a data plane's profile includes its
//! cluster DNS's, so each difference is written once. An included file may not include others, and a scenario may
//! be listed only once across them.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::{
    results::{Outcome, ScenarioResult},
    scenario::names,
};

/// The file name a run folder keeps its profile under, so `svcbench report` picks it up when re-rendering.
pub const SIDECAR_NAME: &str = "profile.yaml";

/// One problem in a profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong, one line.
    pub reason: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.reason)
    }
}

impl std::error::Error for ProfileError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProfile {
    implementation: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    includes: Vec<Spanned<String>>,
    expected_failures: Vec<Spanned<RawExpectedFailure>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExpectedFailure {
    scenario: Spanned<String>,
    reason: Spanned<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    step: Option<u64>,
}

/// A validated expected-failure profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The implementation it describes (`coredns`, `kube-proxy-ipvs`).
    pub implementation: String,
    /// Free text (versions, configuration).
    pub description: String,
    /// The scenarios known not to pass.
    pub expected_failures: Vec<ExpectedFailure>,
}

/// One scenario an implementation is known not to pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedFailure {
    /// Scenario name.
    pub scenario: String,
    /// Why it fails there.
    pub reason: String,
    /// Optional link (issue, documentation).
    pub link: Option<String>,
    /// The scenario-file line of the step that must be the one failing; a failure anywhere else is a real failure.
    pub step: Option<u64>,
    /// Where the entry is written, for messages about it.
    pub line: u64,
    /// Its column.
    pub column: u64,
    /// The file it is written in, when that is an included profile rather than this one.
    pub included_from: Option<PathBuf>,
}

/// A scenario's outcome once a profile is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed and not listed.
    Passed,
    /// Failed and not listed: fails the run.
    Failed,
    /// Failed and listed: does not fail the run.
    ExpectedFail,
    /// Passed although listed: flagged so the profile gets updated; does not fail the run.
    UnexpectedPass,
    /// Not run because of an earlier problem.
    Skipped,
    /// A measurement could not be judged (the harness's own load generator fell behind): neither a pass nor a
    /// failure of the implementation, and it does not fail the run.
    Inconclusive,
}

impl Verdict {
    /// Whether this verdict fails a run.
    pub fn fails_run(self) -> bool {
        self == Verdict::Failed
    }

    /// Short lower-case label used in every report (`expected fail`).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Passed => "pass",
            Verdict::Failed => "fail",
            Verdict::ExpectedFail => "expected fail",
            Verdict::UnexpectedPass => "unexpected pass",
            Verdict::Skipped => "skipped",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Stable identifier for CSS classes and JUnit properties (`expected-fail`).
    pub fn slug(self) -> &'static str {
        match self {
            Verdict::Passed => "pass",
            Verdict::Failed => "fail",
            Verdict::ExpectedFail => "expected-fail",
            Verdict::UnexpectedPass => "unexpected-pass",
            Verdict::Skipped => "skipped",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Reads a YAML file of the harness's own (a profile, the real-bug catalogue) with bounded size, or says where
/// it could not.
///
/// # Errors
/// Unreadable, too large or not UTF-8, located at `path`.
pub fn read(path: &Path) -> Result<String, Vec<ProfileError>> {
    crate::scenario::validate::read_source(path)
        .map_err(|(line, column, reason)| vec![ProfileError { path: path.to_owned(), line, column, reason }])
}

/// Deserializes such a file's text with the scenario parser's YAML options, a syntax or shape error located at
/// its `file:line:column`.
///
/// # Errors
/// The YAML does not parse into `T`.
pub fn from_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Vec<ProfileError>> {
    serde_saphyr::from_str_with_options(text, crate::scenario::validate::yaml_options()).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        vec![ProfileError { path: path.to_owned(), line, column, reason: crate::scenario::validate::yaml_reason(&e) }]
    })
}

impl Profile {
    /// Reads and validates a profile.
    ///
    /// # Errors
    /// Every problem found, each with `file:line:column`.
    pub fn load(path: &Path) -> Result<Self, Vec<ProfileError>> {
        Self::parse(path, &read(path)?)
    }

    /// Adds the entries of the files `includes` names (beside `path`).
    fn include(
        path: &Path,
        includes: &[Spanned<String>],
        into: &mut Vec<ExpectedFailure>,
        errors: &mut Vec<ProfileError>,
    ) {
        for include in includes {
            let at = |reason: String| ProfileError {
                path: path.to_owned(),
                line: include.referenced.line(),
                column: include.referenced.column(),
                reason,
            };
            let name = &include.value;
            if name.contains('/') || !name.ends_with(".yaml") {
                errors.push(at(format!("includes: `{name}` must be a profile file name beside this one (x.yaml)")));
                continue;
            }
            let file = path.with_file_name(name);
            let text = match read(&file) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(at(format!("includes: cannot read {name}: {}", e[0].reason)));
                    continue;
                }
            };
            let raw: RawProfile = match from_yaml(&file, &text) {
                Ok(raw) => raw,
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            };
            if let Some(nested) = raw.includes.first() {
                errors.push(ProfileError {
                    path: file.clone(),
                    line: nested.referenced.line(),
                    column: nested.referenced.column(),
                    reason: format!("an included profile may not include others ({} includes it)", path.display()),
                });
                // Not parsed further: following its includes could go round in a circle.
                continue;
            }
            match Self::parse(&file, &text) {
                Ok(included) => {
                    for mut entry in included.expected_failures {
                        if into.iter().any(|f| f.scenario == entry.scenario) {
                            errors.push(at(format!(
                                "scenario `{}` is listed more than once (again in {name}): list it once",
                                entry.scenario
                            )));
                        }
                        entry.included_from = Some(file.clone());
                        into.push(entry);
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
    }

    /// Parses and validates profile text read from `path`.
    ///
    /// # Errors
    /// Every problem found, each with `file:line:column`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<ProfileError>> {
        let raw: RawProfile = from_yaml(path, text)?;
        let mut errors = Vec::new();
        let mut err = |at: &Location, reason: String| {
            errors.push(ProfileError { path: path.to_owned(), line: at.line(), column: at.column(), reason });
        };
        if raw.implementation.value.trim().is_empty() {
            err(&raw.implementation.referenced, "implementation must not be empty".into());
        }
        let mut expected_failures: Vec<ExpectedFailure> = Vec::new();
        for entry in &raw.expected_failures {
            let e = &entry.value;
            if let Err(why) = names::dns1035_label(&e.scenario.value) {
                err(&e.scenario.referenced, format!("scenario name: {why}"));
            }
            if let Some(first) = expected_failures.iter().find(|f| f.scenario == e.scenario.value) {
                err(
                    &e.scenario.referenced,
                    format!("scenario `{}` is already listed at line {}", e.scenario.value, first.line),
                );
            }
            if e.reason.value.trim().is_empty() {
                err(&e.reason.referenced, "reason must not be empty: say why the implementation fails it".into());
            }
            expected_failures.push(ExpectedFailure {
                scenario: e.scenario.value.clone(),
                reason: e.reason.value.trim().to_owned(),
                link: e.link.clone().filter(|l| !l.trim().is_empty()),
                step: e.step,
                line: entry.referenced.line(),
                column: entry.referenced.column(),
                included_from: None,
            });
        }
        Self::include(path, &raw.includes, &mut expected_failures, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                path: path.to_owned(),
                implementation: raw.implementation.value,
                description: raw.description.trim().to_owned(),
                expected_failures,
            })
        } else {
            Err(errors)
        }
    }

    /// The entry for a scenario, if the profile lists it.
    pub fn expected_failure(&self, scenario: &str) -> Option<&ExpectedFailure> {
        self.expected_failures.iter().find(|f| f.scenario == scenario)
    }

    /// Entries naming scenarios outside `known`, as located errors (a typo would otherwise silently expect nothing).
    pub fn unknown_scenarios<'a>(&self, known: impl IntoIterator<Item = &'a str> + Clone) -> Vec<ProfileError> {
        self.expected_failures
            .iter()
            .filter(|f| !known.clone().into_iter().any(|k| k == f.scenario))
            .map(|f| ProfileError {
                path: f.included_from.clone().unwrap_or_else(|| self.path.clone()),
                line: f.line,
                column: f.column,
                reason: format!("scenario `{}` is not among the scenarios run", f.scenario),
            })
            .collect()
    }
}

/// A scenario's verdict under an optional profile.
pub fn verdict(result: &ScenarioResult, profile: Option<&Profile>) -> Verdict {
    let entry = profile.and_then(|p| p.expected_failure(&result.name));
    // An entry pinned to a step only covers a failure of that step.
    let listed = entry.is_some_and(|e| e.step.is_none_or(|line| result.first_failure().is_none_or(|s| s.line == line)));
    match (result.outcome, listed) {
        (Outcome::Passed, false) => Verdict::Passed,
        (Outcome::Passed, true) => Verdict::UnexpectedPass,
        (Outcome::Failed, false) => Verdict::Failed,
        (Outcome::Failed, true) => Verdict::ExpectedFail,
        (Outcome::Skipped, _) => Verdict::Skipped,
        // Listed or not: what was measured says nothing either way.
        (Outcome::Inconclusive, _) => Verdict::Inconclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, Vec<ProfileError>> {
        Profile::parse(Path::new("p.yaml"), text)
    }

    #[test]
    fn an_entry_pinned_to_a_step_covers_only_that_step() {
        use crate::results::StepResult;
        let p = parse("implementation: x\nexpectedFailures:\n  - scenario: s\n    reason: r\n    step: 19\n").unwrap();
        let failing_at = |line: u64| ScenarioResult {
            name: "s".into(),
            description: String::new(),
            source: String::new(),
            target: "t".into(),
            outcome: Outcome::Failed,
            duration_ms: 0.0,
            steps: vec![StepResult {
                index: 1,
                line,
                kind: "assert".into(),
                summary: String::new(),
                step: serde_json::Value::Null,
                outcome: Outcome::Failed,
                duration_ms: 0.0,
                convergence_ms: None,
                attempts: 1,
                expected: None,
                actual: None,
                message: None,
                note: None,
                measurement: None,
            }],
        };
        assert_eq!(verdict(&failing_at(19), Some(&p)), Verdict::ExpectedFail);
        assert_eq!(verdict(&failing_at(20), Some(&p)), Verdict::Failed);
    }

    #[test]
    fn includes_add_the_other_files_entries_once() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("dns.yaml", "implementation: dns\nexpectedFailures:\n  - {scenario: a, reason: dns}\n");
        write("nested.yaml", "implementation: n\nincludes: [dns.yaml]\nexpectedFailures: []\n");
        let main = dir.path().join("dp.yaml");
        write(
            "dp.yaml",
            "implementation: dp\nincludes: [dns.yaml]\nexpectedFailures:\n  - {scenario: b, reason: dp}\n",
        );
        let p = Profile::load(&main).unwrap();
        assert_eq!(p.expected_failures.iter().map(|f| f.scenario.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(p.expected_failures[1].included_from.as_deref(), Some(dir.path().join("dns.yaml").as_path()));
        let cases = [
            (
                "includes: [dns.yaml]\nexpectedFailures:\n  - {scenario: a, reason: again}\n",
                2,
                "listed more than once (again in dns.yaml)",
            ),
            // A profile that includes itself is refused, not followed round in a circle.
            ("includes: [dp.yaml]\nexpectedFailures: []\n", 2, "may not include others"),
            ("includes: [missing.yaml]\nexpectedFailures: []\n", 2, "cannot read missing.yaml"),
            ("includes: [../dns.yaml]\nexpectedFailures: []\n", 2, "must be a profile file name"),
            ("includes: [nested.yaml]\nexpectedFailures: []\n", 2, "may not include others"),
        ];
        for (body, line, reason) in cases {
            write("dp.yaml", &format!("implementation: dp\n{body}"));
            let errors = Profile::load(&main).unwrap_err();
            assert!(errors.iter().any(|e| e.reason.contains(reason)), "{body}: {errors:?}");
            assert!(errors.iter().any(|e| e.line == line || e.path.ends_with("nested.yaml")), "{body}: {errors:?}");
        }
    }

    #[test]
    fn valid_profile_parses() {
        let p = parse(
            "implementation: coredns\ndescription: d\nexpectedFailures:\n  - scenario: headless-recreate\n    reason: cache\n    link: https://x\n",
        )
        .unwrap();
        assert_eq!(p.implementation, "coredns");
        let f = p.expected_failure("headless-recreate").unwrap();
        assert_eq!((f.reason.as_str(), f.line), ("cache", 4));
        assert!(p.expected_failure("other").is_none());
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            ("implementation: x\nexpectedFailures:\n  - scenario: a\n    reasn: r\n", 4, "unknown field `reasn`"),
            ("implementation: x\nexpectedFailures:\n  - scenario: Bad_Name\n    reason: r\n", 3, "DNS-1035"),
            ("implementation: x\nexpectedFailures:\n  - scenario: a\n    reason: ''\n", 4, "reason must not be empty"),
            (
                "implementation: x\nexpectedFailures:\n  - {scenario: a, reason: r}\n  - {scenario: a, reason: s}\n",
                4,
                "already listed at line 3",
            ),
            ("implementation: x\n", 1, "missing field `expectedFailures`"),
            ("implementation: x\nexpectedFailures: [\n", 2, "unclosed bracket"),
        ];
        for (text, line, reason) in cases {
            let errors = parse(text).unwrap_err();
            let first = errors[0].to_string();
            assert!(first.starts_with(&format!("p.yaml:{line}:")), "{text:?}: {first}");
            assert!(first.contains(reason), "{text:?}: {first}");
        }
    }

    #[test]
    fn verdicts_follow_the_profile() {
        let p = parse("implementation: x\nexpectedFailures:\n  - {scenario: listed, reason: r}\n").unwrap();
        let result = |name: &str, outcome| ScenarioResult {
            name: name.into(),
            description: String::new(),
            source: String::new(),
            target: "t".into(),
            outcome,
            duration_ms: 0.0,
            steps: Vec::new(),
        };
        assert_eq!(verdict(&result("listed", Outcome::Failed), Some(&p)), Verdict::ExpectedFail);
        assert_eq!(verdict(&result("listed", Outcome::Passed), Some(&p)), Verdict::UnexpectedPass);
        assert_eq!(verdict(&result("other", Outcome::Failed), Some(&p)), Verdict::Failed);
        assert_eq!(verdict(&result("listed", Outcome::Failed), None), Verdict::Failed);
        assert!(!Verdict::ExpectedFail.fails_run() && !Verdict::UnexpectedPass.fails_run());
        let unknown = p.unknown_scenarios(["other"]);
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].to_string(), "p.yaml:3:5: scenario `listed` is not among the scenarios run");
    }
}
