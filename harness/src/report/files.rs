//! Reports on disk: a run folder holds `results.json` (the source of truth), `index.html`, `junit.xml` and, when the
//! run used one, a copy of its expected-failure profile as `profile.yaml` — so the folder re-renders on its own.

use std::path::{Path, PathBuf};

use super::{
    compare::{Comparison, RunInput},
    html, json,
    json::ResultsError,
    junit,
    profile::{Profile, ProfileError, SIDECAR_NAME},
};

/// The results document's file name in a run folder.
pub const RESULTS_NAME: &str = "results.json";
/// The HTML report's file name.
pub const HTML_NAME: &str = "index.html";
/// The JUnit XML file name.
pub const JUNIT_NAME: &str = "junit.xml";

/// Why an input could not be loaded.
#[derive(Debug)]
pub enum InputError {
    /// The results file is unreadable, not JSON, or of an unknown schema.
    Results(ResultsError),
    /// A profile is invalid (every problem, with `file:line:column`).
    Profile(Vec<ProfileError>),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Results(e) => write!(f, "{e}"),
            InputError::Profile(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for InputError {}

/// Loads one run for rendering: `path` is a `results.json` or a run folder holding one. Its profile is `profile`
/// when given, else the folder's `profile.yaml` when there is one.
///
/// # Errors
/// Unreadable or invalid results, or an invalid sidecar profile.
pub fn load_input(path: &Path, profile: Option<&Profile>) -> Result<RunInput, InputError> {
    let file = if path.is_dir() { path.join(RESULTS_NAME) } else { path.to_owned() };
    let results = json::read(&file).map_err(InputError::Results)?;
    let profile = match profile {
        Some(p) => Some(p.clone()),
        None => {
            let sidecar = file.parent().map(|d| d.join(SIDECAR_NAME));
            match sidecar.filter(|s| s.is_file()) {
                Some(s) => Some(Profile::load(&s).map_err(InputError::Profile)?),
                None => None,
            }
        }
    };
    Ok(RunInput { results, profile, source: Some(file) })
}

/// The files [`write_rendered`] wrote.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `index.html`.
    pub html: PathBuf,
    /// `junit.xml`.
    pub junit: PathBuf,
}

/// Writes `index.html` and `junit.xml` for a comparison into `dir` (created if missing).
///
/// # Errors
/// The directory or a file cannot be written.
pub fn write_rendered(dir: &Path, c: &Comparison) -> Result<Rendered, ResultsError> {
    let io = |path: &Path, source| ResultsError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let generated = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    let html_path = dir.join(HTML_NAME);
    std::fs::write(&html_path, html::render(c, &generated)).map_err(|e| io(&html_path, e))?;
    let junit_path = dir.join(JUNIT_NAME);
    let xml = junit::render(c).map_err(|e| io(&junit_path, std::io::Error::other(e.to_string())))?;
    std::fs::write(&junit_path, xml).map_err(|e| io(&junit_path, e))?;
    Ok(Rendered { html: html_path, junit: junit_path })
}

/// Copies the run's profile into its folder as `profile.yaml`, so re-rendering the folder keeps the expectations.
///
/// # Errors
/// The file cannot be copied.
pub fn keep_profile(dir: &Path, profile: &Profile) -> Result<PathBuf, ResultsError> {
    let to = dir.join(SIDECAR_NAME);
    std::fs::copy(&profile.path, &to).map_err(|source| ResultsError::Io { path: to.display().to_string(), source })?;
    Ok(to)
}
